"""SQL for the call family of tables: calls, call_events, queue_visits, operator states.

Every fact is first appended to ``call_events`` under a key derived from its content; a fact
already there (a replayed or duplicated AMI event, a spool replayed after a crash) is skipped.
The projections into ``calls`` and friends are written so that applying a fact again would
change nothing either: first-seen values are kept with COALESCE, instants with LEAST.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
    fact_to_json,
)
from telephony.calls.ids import parse_caller_id
from telephony.calls.legs import Leg, LegKind, LegState, leg_outcome
from telephony.calls.shifts import ShiftCalendar
from telephony.db.rows import from_row
from telephony.settings import ShiftDefinition

log = logging.getLogger("telephony.db")

_INT4_MAX = 2**31 - 1


def _text(value: str) -> str | None:
    return value or None


def _count(value: str) -> int | None:
    """A non-negative whole number that fits an ``integer`` column; "" is unknown."""
    if not value:
        return None
    number = int(value)  # ValueError for anything but an optional sign and digits
    if not 0 <= number <= _INT4_MAX:
        raise ValueError("out of range")
    return number


def _share(value: str) -> float | None:
    """A score in [0, 1]; "" is unknown."""
    if not value:
        return None
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError("not within [0, 1]")
    return number


def _screening(value: str) -> str | None:
    """How the caller passed the screening prompt, as the dialplan sets it."""
    if value and value not in ("pressed", "spoke", "timeout"):
        raise ValueError("not pressed, spoke or timeout")
    return value or None


@dataclass(frozen=True)
class IvrColumn:
    """Where an IVR variable is kept, and how its text becomes the column's value."""

    column: str
    parse: Callable[[str], object]  # raises ValueError for a malformed value


# IVR variable name (lower case, without IVR_) -> column. Anything else stays in the event log.
IVR_COLUMNS = {
    "choice": IvrColumn("ivr_choice", _text),
    "outcome": IvrColumn("ivr_outcome", _text),
    "category": IvrColumn("ivr_category", _text),
    "skill": IvrColumn("ivr_skill", _text),
    "queue": IvrColumn("ivr_queue", _text),
    "first_key_ms": IvrColumn("ivr_first_key_ms", _count),
    "invalid_keys": IvrColumn("ivr_invalid_keys", _count),
    "score": IvrColumn("prank_score", _share),
    "reasons": IvrColumn("prank_reasons", _text),
    "priority": IvrColumn("queue_priority", _count),
    "screening": IvrColumn("screening", _screening),
}


def dedupe_key(fact: CallFact) -> str:
    """Content hash of a fact: equal facts share it."""
    return hashlib.sha256(fact_to_json(fact).encode("utf-8")).hexdigest()


_ENSURE_CALL = "INSERT INTO calls (call_id) VALUES ($1) ON CONFLICT (call_id) DO NOTHING"


class CallRepository:
    """Writes call facts and reads call records. Holds no connection: callers pass one in."""

    def __init__(self, shifts: ShiftCalendar) -> None:
        self._shifts = shifts

    async def apply(self, connection: asyncpg.Connection, facts: Sequence[CallFact]) -> int:
        """Apply ``facts`` in order in one transaction; returns how many were new."""
        new = 0
        async with connection.transaction():
            for fact in facts:
                if await self._append_event(connection, fact):
                    await self._project(connection, fact)
                    new += 1
        return new

    async def _append_event(self, connection: asyncpg.Connection, fact: CallFact) -> bool:
        call_id = getattr(fact, "call_id", None)
        inserted = await connection.fetchval(
            """
            INSERT INTO call_events (dedupe_key, call_id, kind, at, body)
            VALUES ($1, $2, $3, $4, $5::jsonb)
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING true
            """,
            dedupe_key(fact), call_id, fact.kind, fact.at, fact_to_json(fact),
        )
        return bool(inserted)

    async def _project(self, connection: asyncpg.Connection, fact: CallFact) -> None:
        match fact:
            case CallStarted():
                await self._call_started(connection, fact)
            case IvrVariableSet():
                await self._ivr_variable(connection, fact)
            case QueueJoined():
                await self._queue_joined(connection, fact)
            case QueueLeft():
                await self._queue_left(connection, fact)
            case OperatorRung():
                pass  # ring attempts are kept in the event log only
            case OperatorAnswered():
                await self._operator_answered(connection, fact)
            case OperatorCompleted():
                await self._operator_completed(connection, fact)
            case QueueAbandoned():
                await self._queue_abandoned(connection, fact)
            case CallEnded():
                await self._call_ended(connection, fact)
            case CallVanished():
                await self._call_vanished(connection, fact)
            case OperatorStateChanged():
                await self._operator_state(connection, fact)
            case LegProgressed():
                await LegRepository().progress(connection, fact)

    async def _call_started(self, connection: asyncpg.Connection, fact: CallStarted) -> None:
        slot = self._shifts.slot_for(fact.at)
        await connection.execute(
            """
            INSERT INTO calls (call_id, linked_id, channel, caller_number, caller_name, line,
                               arrived_at, shift_day, shift_name, caller_key)
            VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10)
            ON CONFLICT (call_id) DO UPDATE SET
                linked_id = COALESCE(calls.linked_id, EXCLUDED.linked_id),
                channel = COALESCE(calls.channel, EXCLUDED.channel),
                -- The key follows whichever number is kept.
                caller_key = CASE WHEN NULLIF(calls.caller_number, '') IS NULL
                                  THEN EXCLUDED.caller_key ELSE calls.caller_key END,
                caller_number = COALESCE(NULLIF(calls.caller_number, ''), EXCLUDED.caller_number),
                caller_name = COALESCE(NULLIF(calls.caller_name, ''), EXCLUDED.caller_name),
                line = COALESCE(calls.line, EXCLUDED.line),
                -- The earliest sighting is the arrival; the shift follows the arrival.
                shift_day = CASE WHEN calls.arrived_at IS NULL
                                   OR EXCLUDED.arrived_at < calls.arrived_at
                                 THEN EXCLUDED.shift_day ELSE calls.shift_day END,
                shift_name = CASE WHEN calls.arrived_at IS NULL
                                    OR EXCLUDED.arrived_at < calls.arrived_at
                                  THEN EXCLUDED.shift_name ELSE calls.shift_name END,
                arrived_at = LEAST(calls.arrived_at, EXCLUDED.arrived_at),
                updated_at = now()
            """,
            fact.call_id, fact.linked_id, fact.channel, fact.caller_number, fact.caller_name,
            fact.line, fact.at, slot.day, slot.name, parse_caller_id(fact.caller_number).key,
        )

    async def _ivr_variable(self, connection: asyncpg.Connection, fact: IvrVariableSet) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        if fact.name == "line":
            await connection.execute(
                "UPDATE calls SET line = COALESCE(line, NULLIF($2, '')), updated_at = now() "
                "WHERE call_id = $1",
                fact.call_id, fact.value,
            )
            return
        target = IVR_COLUMNS.get(fact.name)
        if target is None:
            return
        try:
            value = target.parse(fact.value)
        except ValueError as exc:
            # A bad value loses only itself: the fact is kept, the rest of the call recorded.
            log.warning("call %s: IVR_%s=%r is malformed (%s), stored as NULL",
                        fact.call_id, fact.name.upper(), fact.value[:80], exc)
            value = None
        # The column name comes from the fixed mapping above, never from the event.
        await connection.execute(
            f"UPDATE calls SET {target.column} = $2, updated_at = now() "  # noqa: S608
            "WHERE call_id = $1",
            fact.call_id, value,
        )

    async def _queue_joined(self, connection: asyncpg.Connection, fact: QueueJoined) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        # A resync re-reports a caller still waiting, with a join time estimated from its wait;
        # an open visit to the same queue is that same visit.
        await connection.execute(
            """
            INSERT INTO queue_visits (call_id, queue, joined_at, join_position)
            SELECT $1, $2, $3, $4
            WHERE NOT EXISTS (
                SELECT 1 FROM queue_visits
                WHERE call_id = $1 AND queue = $2 AND left_at IS NULL
            )
            ON CONFLICT DO NOTHING
            """,
            fact.call_id, fact.queue, fact.at, fact.position,
        )
        await connection.execute(
            """
            UPDATE calls SET
                queue = COALESCE(queue, $2),
                queue_position = CASE WHEN queue IS NULL THEN $4 ELSE queue_position END,
                queue_joined_at = CASE WHEN queue IS NULL THEN $3 ELSE queue_joined_at END,
                updated_at = now()
            WHERE call_id = $1
            """,
            fact.call_id, fact.queue, fact.at, fact.position,
        )

    async def _close_visit(
        self, connection: asyncpg.Connection, call_id: str, queue: str, at: datetime,
        position: int | None,
    ) -> None:
        await connection.execute(
            """
            UPDATE queue_visits SET left_at = $3, left_position = $4
            WHERE call_id = $1 AND queue = $2 AND left_at IS NULL
            """,
            call_id, queue, at, position,
        )

    async def _queue_left(self, connection: asyncpg.Connection, fact: QueueLeft) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        await self._close_visit(connection, fact.call_id, fact.queue, fact.at, fact.position)
        await connection.execute(
            "UPDATE calls SET queue_left_at = GREATEST(queue_left_at, $2), updated_at = now() "
            "WHERE call_id = $1",
            fact.call_id, fact.at,
        )

    async def _operator_answered(
        self, connection: asyncpg.Connection, fact: OperatorAnswered
    ) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        await connection.execute(
            """
            UPDATE calls SET
                answered_queue = COALESCE(answered_queue, $2),
                operator = COALESCE(operator, $3),
                wait_seconds = COALESCE(wait_seconds, $4),
                ring_seconds = COALESCE(ring_seconds, $5),
                answered_at = LEAST(answered_at, $6),
                updated_at = now()
            WHERE call_id = $1
            """,
            fact.call_id, fact.queue, fact.operator, fact.wait_seconds, fact.ring_seconds,
            fact.at,
        )
        await self._ensure_operator(connection, fact.operator)

    async def _operator_completed(
        self, connection: asyncpg.Connection, fact: OperatorCompleted
    ) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        # AgentComplete stands alone: if the listener missed AgentConnect (it was restarting),
        # the answer instant is the completion minus the talk time.
        await connection.execute(
            """
            UPDATE calls SET
                answered_queue = COALESCE(answered_queue, $2),
                operator = COALESCE(operator, $3),
                wait_seconds = COALESCE(wait_seconds, $4),
                talk_seconds = $5,
                ended_by = $6,
                completed_at = $7,
                answered_at = COALESCE(
                    answered_at, $7::timestamptz - make_interval(secs => $5::integer)
                ),
                updated_at = now()
            WHERE call_id = $1
            """,
            fact.call_id, fact.queue, fact.operator, fact.wait_seconds, fact.talk_seconds,
            fact.ended_by, fact.at,
        )
        await self._ensure_operator(connection, fact.operator)

    async def _queue_abandoned(self, connection: asyncpg.Connection, fact: QueueAbandoned) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        await self._close_visit(
            connection, fact.call_id, fact.queue, fact.at, fact.final_position
        )
        await connection.execute(
            """
            UPDATE calls SET
                abandoned_at = $2, abandon_queue = $3,
                abandon_original_position = $4, abandon_final_position = $5,
                abandon_wait_seconds = $6, updated_at = now()
            WHERE call_id = $1
            """,
            fact.call_id, fact.at, fact.queue, fact.original_position, fact.final_position,
            fact.wait_seconds,
        )

    async def _call_ended(self, connection: asyncpg.Connection, fact: CallEnded) -> None:
        await connection.execute(_ENSURE_CALL, fact.call_id)
        await connection.execute(
            """
            UPDATE calls SET ended_at = $2, hangup_cause = $3, hangup_cause_text = $4,
                             vanished = false, updated_at = now()
            WHERE call_id = $1
            """,
            fact.call_id, fact.at, fact.cause, fact.cause_text,
        )

    async def _call_vanished(self, connection: asyncpg.Connection, fact: CallVanished) -> None:
        await connection.execute(
            """
            UPDATE calls SET vanished = true, ended_at = $2, updated_at = now()
            WHERE call_id = $1 AND ended_at IS NULL
            """,
            fact.call_id, fact.at,
        )

    async def _ensure_operator(self, connection: asyncpg.Connection, operator: str) -> None:
        await connection.execute(
            "INSERT INTO operators (operator) VALUES ($1) ON CONFLICT DO NOTHING", operator
        )

    async def _operator_state(
        self, connection: asyncpg.Connection, fact: OperatorStateChanged
    ) -> None:
        await self._ensure_operator(connection, fact.operator)
        slot = self._shifts.slot_for(fact.at)
        await connection.execute(
            """
            INSERT INTO operator_state_changes
                (operator, queue, at, state, paused, pause_reason, shift_day, shift_name)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT DO NOTHING
            """,
            fact.operator, fact.queue, fact.at, fact.state, fact.paused, fact.pause_reason,
            slot.day, slot.name,
        )
        await connection.execute(
            """
            INSERT INTO queue_members (operator, queue, state, paused, pause_reason, since)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (operator, queue) DO UPDATE SET
                state = EXCLUDED.state, paused = EXCLUDED.paused,
                pause_reason = EXCLUDED.pause_reason, since = EXCLUDED.since
            WHERE queue_members.since <= EXCLUDED.since
            """,
            fact.operator, fact.queue, fact.state, fact.paused, fact.pause_reason, fact.at,
        )

    async def open_call_ids(self, connection: asyncpg.Connection) -> set[str]:
        """Calls the database believes are still in progress."""
        rows = await connection.fetch("SELECT call_id FROM calls WHERE ended_at IS NULL")
        return {row["call_id"] for row in rows}

    async def call_records(
        self, connection: asyncpg.Connection, *, since: datetime | None = None, limit: int = 100,
        until: datetime | None = None, line: str | None = None,
        caller_number: str | None = None, disposition: str | None = None,
    ) -> list[CallRecord]:
        """The most recent calls with their disposition, newest first; a filter given as
        ``None`` does not filter."""
        rows = await connection.fetch(
            """
            SELECT * FROM call_outcomes
            WHERE ($1::timestamptz IS NULL OR arrived_at >= $1)
              AND ($3::timestamptz IS NULL OR arrived_at < $3)
              AND ($4::text IS NULL OR line = $4)
              AND ($5::text IS NULL OR caller_number = $5)
              AND ($6::text IS NULL OR disposition = $6)
            ORDER BY arrived_at DESC NULLS LAST
            LIMIT $2
            """,
            since, limit, until, line, caller_number, disposition,
        )
        return [from_row(CallRecord, row) for row in rows]

    async def call_record(self, connection: asyncpg.Connection, call_id: str) -> CallRecord | None:
        """One call by its id."""
        row = await connection.fetchrow("SELECT * FROM call_outcomes WHERE call_id = $1", call_id)
        return from_row(CallRecord, row) if row is not None else None

    async def queue_figures(
        self, connection: asyncpg.Connection, *, since: datetime | None = None
    ) -> list[QueueFigures]:
        """Per queue: offered, answered, abandoned, mean and longest wait, mean talk."""
        rows = await connection.fetch(
            """
            SELECT v.queue,
                   count(DISTINCT v.call_id) AS offered,
                   count(DISTINCT c.call_id) FILTER (WHERE c.answered_queue = v.queue)
                       AS answered,
                   count(DISTINCT c.call_id) FILTER (WHERE c.abandon_queue = v.queue)
                       AS abandoned,
                   avg(c.wait_seconds) FILTER (WHERE c.answered_queue = v.queue) AS mean_wait,
                   max(c.wait_seconds) FILTER (WHERE c.answered_queue = v.queue) AS max_wait,
                   avg(c.talk_seconds) FILTER (WHERE c.answered_queue = v.queue) AS mean_talk
            FROM queue_visits v JOIN calls c USING (call_id)
            WHERE $1::timestamptz IS NULL OR c.arrived_at >= $1
            GROUP BY v.queue
            ORDER BY v.queue
            """,
            since,
        )
        return [from_row(QueueFigures, row) for row in rows]


@dataclass(frozen=True)
class CallRecord:
    """One call as the database holds it."""

    call_id: str
    line: str | None
    caller_number: str
    arrived_at: datetime | None
    shift_day: Any
    shift_name: str | None
    ivr_choice: str | None
    ivr_outcome: str | None
    ivr_category: str | None
    ivr_skill: str | None
    queue: str | None
    queue_position: int | None
    answered_queue: str | None
    operator: str | None
    wait_seconds: int | None
    talk_seconds: int | None
    abandon_original_position: int | None
    abandon_final_position: int | None
    hangup_cause: int | None
    hangup_cause_text: str | None
    ended_at: datetime | None
    disposition: str

    def as_json(self) -> str:
        """A JSON line for scripts and logs."""
        return json.dumps(
            {name: getattr(self, name) for name in self.__dataclass_fields__},
            default=str, ensure_ascii=False,
        )


@dataclass(frozen=True)
class QueueFigures:
    """Per-queue totals."""

    queue: str
    offered: int
    answered: int
    abandoned: int
    mean_wait: Any
    max_wait: int | None
    mean_talk: Any

async def sync_shifts(connection: asyncpg.Connection, shifts: Sequence[ShiftDefinition]) -> None:
    """Make the ``shifts`` table hold exactly the configured roster."""
    async with connection.transaction():
        await connection.execute("DELETE FROM shifts")
        await connection.executemany(
            "INSERT INTO shifts (name, starts_at) VALUES ($1, $2)",
            [(shift.name, shift.start) for shift in shifts],
        )


class LegRepository:
    """The legs the line places itself (``call_legs``, ``telephony/calls/legs.py``)."""

    async def open(
        self, connection: asyncpg.Connection, *, kind: LegKind, call_id: str,
        incident_id: int | None, operator: str, actor: str, number: str, target: str,
    ) -> int:
        """Record that ``actor`` asks for a leg; returns its id (given to the dialplan)."""
        leg_id: int = await connection.fetchval(
            """
            INSERT INTO call_legs (kind, call_id, incident_id, operator, actor, number, target)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING leg_id
            """,
            kind.value, call_id, incident_id, operator, actor, number, target,
        )
        return leg_id

    async def refused(self, connection: asyncpg.Connection, leg_id: int, status: str) -> None:
        """Asterisk would not dial the leg at all: it ends now, failed, with why."""
        await connection.execute(
            """
            UPDATE call_legs SET ended_at = COALESCE(ended_at, now()),
                                 outcome = COALESCE(outcome, 'failed'), status = $2
            WHERE leg_id = $1
            """,
            leg_id, status[:200],
        )

    async def progress(self, connection: asyncpg.Connection, fact: LegProgressed) -> None:
        """What the dialplan reported; the first report of each state wins (a replay, or
        the same state reported by a second channel of the leg, changes nothing)."""
        state = LegState(fact.state)
        unanswered = leg_outcome(fact.status, answered=False).value
        await connection.execute(
            """
            UPDATE call_legs SET
                channel_id = COALESCE(channel_id, $2),
                rang_at = CASE WHEN $3 = 'dialling' THEN LEAST(rang_at, $4) ELSE rang_at END,
                answered_at = CASE WHEN $3 = 'answered' THEN LEAST(answered_at, $4)
                                   ELSE answered_at END,
                ended_at = CASE WHEN $3 = 'ended' THEN COALESCE(ended_at, $4) ELSE ended_at END,
                outcome = CASE
                    WHEN $3 = 'answered' AND outcome IS NOT NULL THEN 'answered'
                    WHEN $3 <> 'ended' OR outcome IS NOT NULL THEN outcome
                    WHEN answered_at IS NOT NULL THEN 'answered'
                    ELSE $5 END,
                status = CASE WHEN $3 = 'ended' AND status = '' THEN $6 ELSE status END
            WHERE leg_id = $1
            """,
            fact.leg_id, fact.channel_id, state.value, fact.at, unanswered, fact.status,
        )

    async def legs(self, connection: asyncpg.Connection, call_ids: Sequence[str]) -> list[Leg]:
        """The legs of these calls, oldest first."""
        rows = await connection.fetch(
            "SELECT * FROM call_legs WHERE call_id = ANY($1::text[]) ORDER BY leg_id", call_ids)
        return [from_row(Leg, row) for row in rows]

    async def leg(self, connection: asyncpg.Connection, leg_id: int) -> Leg | None:
        """One leg by its id."""
        row = await connection.fetchrow("SELECT * FROM call_legs WHERE leg_id = $1", leg_id)
        return from_row(Leg, row) if row is not None else None
