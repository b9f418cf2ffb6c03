"""SQL of the call-backs: the worklist's raw material (the window's calls that may belong on
it, their callers' answered calls, the call-backs placed, the closings) and closings.

The worklist is read often (every operator's and supervisor's list, and the wallboard at most
once a second), so every read is a range scan of an index: the window's calls by arrival
(``calls_arrived_at_idx``), a caller's answered calls by ``caller_key``
(``calls_caller_history_idx``), the window's call-backs (``call_legs_callback_idx``) and
closings (``callback_closures_closed_at_idx``). Which calls truly belong is decided by
:mod:`telephony.callbacks.model`; the first query only leaves out what cannot (answered calls
that did not end with a network cause nor were cut, calls still going on).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import asyncpg

from telephony.asterisk.causes import NETWORK_CAUSES
from telephony.callbacks.model import (
    CALLER_RANG,
    EMERGENCY,
    Attempt,
    Closure,
    ClosureReason,
    EndedCall,
)
from telephony.calls.legs import Leg
from telephony.db.rows import from_row

_CALL_COLUMNS = """
    c.call_id, c.caller_number, c.caller_key, c.line, c.arrived_at,
    COALESCE(c.answered_at, c.completed_at) AS answered_at, c.ended_at, c.queue,
    c.abandoned_at, c.ivr_category, c.hangup_cause, ic.incident_id, c.cut_reason
"""


class CallbackRepository:
    """Reads for the worklist and writes closings. Holds no connection: callers pass one."""

    async def ended_calls(
        self, connection: asyncpg.Connection, *, since: datetime, key: str | None = None,
        call_id: str | None = None,
    ) -> list[EndedCall]:
        """Ended calls that arrived since ``since`` and may belong on the worklist; only
        those of caller ``key``, or only the call ``call_id`` (a caller without a key), when
        given. The conditions are :func:`~telephony.callbacks.model.reason_for`'s, so the
        many calls that end in the IVR without a choice (pocket dials, silent calls) are not
        fetched at all; the model still decides."""
        rows = await connection.fetch(
            f"""
            SELECT {_CALL_COLUMNS}
            FROM calls c LEFT JOIN incident_calls ic USING (call_id)
            WHERE c.arrived_at >= $1 AND c.ended_at IS NOT NULL
              AND ((c.answered_at IS NULL AND c.completed_at IS NULL
                    AND (c.queue IS NOT NULL OR c.abandoned_at IS NOT NULL
                         OR c.ivr_category = $5))
                   OR c.hangup_cause = ANY($2::int[]) OR c.cut_reason IS NOT NULL)
              AND ($3::text IS NULL OR c.caller_key = $3)
              AND ($4::text IS NULL OR c.call_id = $4)
            """,  # noqa: S608 - the column list is a constant
            since, sorted(NETWORK_CAUSES), key, call_id, EMERGENCY,
        )
        return [from_row(EndedCall, row) for row in rows]

    async def answered_calls(
        self, connection: asyncpg.Connection, keys: Collection[str], *, since: datetime
    ) -> list[EndedCall]:
        """The answered calls of these callers that arrived since ``since``."""
        if not keys:
            return []
        rows = await connection.fetch(
            f"""
            SELECT {_CALL_COLUMNS}
            FROM calls c LEFT JOIN incident_calls ic USING (call_id)
            WHERE c.caller_key = ANY($1::text[]) AND c.arrived_at >= $2
              AND (c.answered_at IS NOT NULL OR c.completed_at IS NOT NULL)
            """,  # noqa: S608 - the column list is a constant
            sorted(keys), since,
        )
        return [from_row(EndedCall, row) for row in rows]

    async def attempts(
        self, connection: asyncpg.Connection, *, since: datetime, key: str | None = None,
        call_id: str | None = None,
    ) -> list[Attempt]:
        """The call-backs asked for since ``since`` (of caller ``key``, or of the call
        ``call_id``, when given), with the key of the caller each was for."""
        rows = await connection.fetch(
            """
            SELECT l.leg_id, l.call_id, c.caller_key, l.operator, l.actor, l.requested_at,
                   l.rang_at, l.answered_at, l.ended_at, l.outcome, l.status,
                   l.hangup_cause, l.unreached_at, l.unreached_by, l.cut_reason, l.number
            FROM call_legs l JOIN calls c USING (call_id)
            WHERE l.kind = 'callback' AND l.requested_at >= $1
              AND ($2::text IS NULL OR c.caller_key = $2)
              AND ($3::text IS NULL OR l.call_id = $3)
            """,
            since, key, call_id,
        )
        return [from_row(Attempt, row) for row in rows]

    async def closures(
        self, connection: asyncpg.Connection, *, since: datetime, key: str | None = None,
        call_id: str | None = None,
    ) -> list[Closure]:
        """The closings made since ``since`` (of caller ``key``, or of the call ``call_id``,
        when given), with the closed call's caller and arrival."""
        rows = await connection.fetch(
            """
            SELECT x.call_id, c.caller_key, c.arrived_at, x.reason, x.note, x.closed_by,
                   x.closed_at
            FROM callback_closures x JOIN calls c USING (call_id)
            WHERE x.closed_at >= $1
              AND ($2::text IS NULL OR c.caller_key = $2)
              AND ($3::text IS NULL OR x.call_id = $3)
            """,
            since, key, call_id,
        )
        return [from_row(Closure, row) for row in rows]

    async def caller_key(self, connection: asyncpg.Connection, call_id: str
                         ) -> tuple[bool, str | None]:
        """Whether the call exists, and its caller's key."""
        row = await connection.fetchrow("SELECT caller_key FROM calls WHERE call_id = $1",
                                        call_id)
        return (False, None) if row is None else (True, row["caller_key"])

    async def on_the_line(self, connection: asyncpg.Connection, key: str, *,
                          since: datetime) -> bool:
        """Whether a call of the caller ``key``, arrived since ``since``, has not ended: they
        are calling the line right now."""
        return bool(await connection.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM calls WHERE caller_key = $1 AND arrived_at >= $2
                                                 AND ended_at IS NULL)
            """,
            key, since))

    async def overtaken(self, connection: asyncpg.Connection, call_ids: Sequence[str], *,
                        since: datetime) -> list[Leg]:
        """The call-backs asked for since ``since``, neither answered nor ended, whose caller
        made one of the calls ``call_ids``: they rang the line again meanwhile."""
        rows = await connection.fetch(
            """
            SELECT l.* FROM call_legs l
            JOIN calls called USING (call_id)
            WHERE l.kind = 'callback' AND l.requested_at >= $2
              AND l.answered_at IS NULL AND l.ended_at IS NULL
              AND EXISTS (SELECT 1 FROM calls c WHERE c.call_id = ANY($1::text[])
                                                 AND c.call_id <> l.call_id
                                                 AND c.caller_key = called.caller_key)
            """,
            list(call_ids), since)
        return [from_row(Leg, row) for row in rows]

    async def call_off(self, connection: asyncpg.Connection, leg_id: int) -> bool:
        """End call-back ``leg_id`` as called off because its caller rang again (before
        Asterisk reports its end, which then keeps this); ``False`` if it was answered or
        ended meanwhile."""
        return bool(await connection.fetchval(
            """
            UPDATE call_legs SET ended_at = now(), outcome = 'cancelled', status = $2
            WHERE leg_id = $1 AND answered_at IS NULL AND ended_at IS NULL
            RETURNING true
            """,
            leg_id, CALLER_RANG))

    async def lock_caller(self, connection: asyncpg.Connection, key: str) -> None:
        """Hold the caller's entry until the transaction ends: two operators calling the
        same caller back, or a call-back and a closing, take turns."""
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('callback:' || $1, 0))", key)

    async def close(
        self, connection: asyncpg.Connection, *, call_id: str, reason: ClosureReason,
        note: str, closed_by: str,
    ) -> bool:
        """Close the entry at ``call_id``; ``False`` if it was closed there already."""
        inserted = await connection.fetchval(
            """
            INSERT INTO callback_closures (call_id, reason, note, closed_by)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (call_id) DO NOTHING
            RETURNING true
            """,
            call_id, reason.value, note, closed_by,
        )
        return bool(inserted)

    async def mark_unreached(self, connection: asyncpg.Connection, leg_id: int, *,
                             by: str) -> bool:
        """Record that call-back ``leg_id`` did not reach its caller, said by ``by``;
        ``False`` if it was said already (the first word stands)."""
        marked = await connection.fetchval(
            """
            UPDATE call_legs SET unreached_by = $2, unreached_at = now()
            WHERE leg_id = $1 AND kind = 'callback' AND unreached_at IS NULL
            RETURNING true
            """,
            leg_id, by,
        )
        return bool(marked)
