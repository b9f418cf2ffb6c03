"""SQL for dispatches: the agencies sent to each incident, their steps, and the incidents
past their dispatch target. Plain reads and writes; every method takes the connection to run
on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import asyncpg

from telephony.calls.legs import LegOutcome
from telephony.db.rows import from_row
from telephony.incidents.dispatches import (
    CANCELLABLE_DISPATCH_STATES,
    FINISHED_DISPATCH_STATES,
    Dispatch,
    DispatchState,
    UnansweredPhone,
)
from telephony.incidents.model import Incident, ReportType
from telephony.incidents.store import OPEN, incident_from_row

# Dispatch.phone_ringing: a by-phone dispatch whose call to the agency rings still, and no
# call of it was answered (transfer_legs_dispatch_idx, migration 0050).
_DISPATCH_SELECT = """
    SELECT d.*, a.name AS agency_name,
           d.by_phone
           AND EXISTS (SELECT 1 FROM transfer_legs t JOIN call_legs l USING (leg_id)
                       WHERE t.dispatch_id = d.dispatch_id
                         AND l.answered_at IS NULL AND l.ended_at IS NULL)
           AND NOT EXISTS (SELECT 1 FROM transfer_legs t JOIN call_legs l USING (leg_id)
                           WHERE t.dispatch_id = d.dispatch_id
                             AND l.answered_at IS NOT NULL) AS phone_ringing
    FROM dispatches d JOIN agencies a ON a.code = d.agency_code
"""


class DispatchStore:
    """Reads and writes the dispatches table. Holds no connection: callers pass one in."""

    # -- dispatches ----------------------------------------------------------------------------

    async def has_dispatches(self, connection: asyncpg.Connection, incident_id: int) -> bool:
        """Whether any agency was ever dispatched to the incident."""
        return bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM dispatches WHERE incident_id = $1)", incident_id
        ))

    async def insert_dispatch(
        self, connection: asyncpg.Connection, incident_id: int, agency_code: str, actor: str,
        note: str, *, by_phone: bool = False,
    ) -> int:
        """Record that the agency was notified; returns the dispatch id."""
        value = await connection.fetchval(
            """
            INSERT INTO dispatches (incident_id, agency_code, dispatched_by, note, by_phone)
            VALUES ($1, $2, $3, $4, $5) RETURNING dispatch_id
            """,
            incident_id, agency_code, actor, note, by_phone,
        )
        return int(value)

    async def active_dispatch_id(
        self, connection: asyncpg.Connection, incident_id: int, agency_code: str
    ) -> int | None:
        """The agency's dispatch to the incident that is not done or cancelled, if any."""
        value = await connection.fetchval(
            "SELECT dispatch_id FROM dispatches "
            "WHERE incident_id = $1 AND agency_code = $2 AND NOT state = ANY($3::text[])",
            incident_id, agency_code, sorted(FINISHED_DISPATCH_STATES),
        )
        return int(value) if value is not None else None

    async def called_off_candidates(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[Dispatch]:
        """The incident's dispatches whose team may still be on its way (notified or
        acknowledged), their rows locked for this transaction."""
        rows = await connection.fetch(
            _DISPATCH_SELECT + " WHERE d.incident_id = $1 AND d.state = ANY($2::text[]) "
                               "ORDER BY d.dispatch_id FOR UPDATE OF d",
            incident_id, sorted(CANCELLABLE_DISPATCH_STATES))
        return [from_row(Dispatch, row) for row in rows]

    async def mark_by_phone(self, connection: asyncpg.Connection, dispatch_id: int) -> None:
        """The dispatch was (also) made by phone."""
        await connection.execute(
            "UPDATE dispatches SET by_phone = true WHERE dispatch_id = $1", dispatch_id)

    async def clear_by_phone(self, connection: asyncpg.Connection, dispatch_id: int) -> None:
        """The agency was not reached by phone after all."""
        await connection.execute(
            "UPDATE dispatches SET by_phone = false WHERE dispatch_id = $1", dispatch_id)

    async def unanswered_phone_dispatches(self, connection: asyncpg.Connection,
                                          ring_over_before: datetime) -> list[int]:
        """The by-phone dispatches still under way every call of which to the agency (the
        transfer legs that recorded or marked them) ended unanswered, or was not answered
        and began ringing before ``ring_over_before``, its end unrecorded
        (:func:`~telephony.calls.legs.ring_over_before`). Of any incident: a closed one's
        too, or its dispatch read "by phone", still ringing, for good."""
        rows = await connection.fetch(
            """
            SELECT d.dispatch_id FROM dispatches d
            WHERE d.by_phone AND d.state = ANY($1::text[])
              AND EXISTS (SELECT 1 FROM transfer_legs t WHERE t.dispatch_id = d.dispatch_id)
              AND NOT EXISTS (SELECT 1 FROM transfer_legs t JOIN call_legs l USING (leg_id)
                              WHERE t.dispatch_id = d.dispatch_id
                                AND (l.answered_at IS NOT NULL
                                     OR (l.ended_at IS NULL
                                         AND COALESCE(l.rang_at, l.requested_at) >= $2)))
            ORDER BY d.dispatch_id
            """,
            sorted(CANCELLABLE_DISPATCH_STATES), ring_over_before)
        return [row["dispatch_id"] for row in rows]

    async def unanswered_phone(self, connection: asyncpg.Connection, dispatch_id: int,
                               ring_over_before: datetime) -> UnansweredPhone | None:
        """What settling the by-phone dispatch takes, if every call of it to the agency
        ended unanswered, or rang out with its end unrecorded (as
        :meth:`unanswered_phone_dispatches`; read with its row locked: a call may have begun
        since); else ``None``. It was made by the call if that call was asked for before it
        was recorded (the transfer opens its leg, then dispatches); one marked was recorded
        before. The last call's outcome is ``None`` when its end went unrecorded."""
        row = await connection.fetchrow(
            """
            SELECT min(l.requested_at) <= d.notified_at AS made_by_phone,
                   EXISTS (SELECT 1 FROM notification_outbox o
                           WHERE o.dispatch_id = d.dispatch_id AND o.state <> 'withdrawn'
                             AND o.payload->>'kind' IS DISTINCT FROM 'stand_down') AS messaged,
                   (array_agg(CASE WHEN l.ended_at IS NOT NULL
                                   THEN COALESCE(l.outcome, 'failed') END
                              ORDER BY l.leg_id DESC))[1] AS outcome
            FROM dispatches d
            JOIN transfer_legs t ON t.dispatch_id = d.dispatch_id
            JOIN call_legs l USING (leg_id)
            WHERE d.dispatch_id = $1 AND d.by_phone
            GROUP BY d.dispatch_id
            HAVING bool_and(l.answered_at IS NULL
                            AND (l.ended_at IS NOT NULL
                                 OR COALESCE(l.rang_at, l.requested_at) < $2))
            """,
            dispatch_id, ring_over_before)
        if row is None:
            return None
        outcome = None if row["outcome"] is None else LegOutcome(row["outcome"])
        return UnansweredPhone(row["made_by_phone"], row["messaged"], outcome)

    async def dispatch_incident_id(
        self, connection: asyncpg.Connection, dispatch_id: int
    ) -> int | None:
        """The incident a dispatch belongs to."""
        value = await connection.fetchval(
            "SELECT incident_id FROM dispatches WHERE dispatch_id = $1", dispatch_id
        )
        return int(value) if value is not None else None

    async def dispatch(
        self, connection: asyncpg.Connection, dispatch_id: int, *, lock: bool = False
    ) -> Dispatch | None:
        """One dispatch (its row locked for this transaction when asked)."""
        suffix = " WHERE d.dispatch_id = $1" + (" FOR UPDATE OF d" if lock else "")
        row = await connection.fetchrow(_DISPATCH_SELECT + suffix, dispatch_id)
        return from_row(Dispatch, row) if row is not None else None

    async def set_dispatch_state(
        self, connection: asyncpg.Connection, dispatch_id: int, state: DispatchState
    ) -> None:
        """Move a dispatch to ``state``, stamping that step's instant."""
        await connection.execute(
            """
            UPDATE dispatches SET
                state = $2,
                acknowledged_at = CASE WHEN $2 = 'acknowledged' THEN now()
                                       ELSE acknowledged_at END,
                on_scene_at = CASE WHEN $2 = 'on_scene' THEN now() ELSE on_scene_at END,
                done_at = CASE WHEN $2 = 'done' THEN now() ELSE done_at END,
                cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END
            WHERE dispatch_id = $1
            """,
            dispatch_id, state.value,
        )

    async def dispatches(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[Dispatch]:
        """Every dispatch of an incident, in order."""
        rows = await connection.fetch(
            _DISPATCH_SELECT + " WHERE d.incident_id = $1 ORDER BY d.dispatch_id", incident_id
        )
        return [from_row(Dispatch, row) for row in rows]

    # -- service levels ------------------------------------------------------------------------

    async def past_dispatch_target(
        self, connection: asyncpg.Connection, targets: Mapping[ReportType, timedelta],
        now: datetime,
    ) -> list[tuple[Incident, timedelta]]:
        """Open incidents whose dispatch target passed before they were dispatched (or
        before ``now``, if not dispatched yet), with their target; oldest answer first."""
        rows = await connection.fetch(
            """
            SELECT i.*, t.target
            FROM incident_overview i
            JOIN unnest($1::text[], $2::interval[]) AS t (report_type, target) USING (report_type)
            WHERE i.status = ANY($3::text[])
              AND i.answered_at IS NOT NULL
              AND i.answered_at + t.target < COALESCE(i.dispatched_at, $4)
            ORDER BY i.answered_at
            """,
            [kind.value for kind in targets], list(targets.values()), OPEN, now,
        )
        return [(incident_from_row(row), row["target"]) for row in rows]
