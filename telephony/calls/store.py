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
from typing import Any, TypeVar

import asyncpg

from telephony.calls.facts import (
    CallBackfilled,
    CallEnded,
    CallFact,
    CallLost,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
    fact_to_json,
    ivr_variables,
)
from telephony.calls.ids import parse_caller_id
from telephony.calls.legs import Leg, LegKind, LegState, leg_outcome
from telephony.calls.outage_store import write_outage_facts
from telephony.calls.outages import lost_with_node
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
    sql_type: str = "text"


# IVR variable name (lower case, without IVR_) -> column. Anything else stays in the event log.
IVR_COLUMNS = {
    "choice": IvrColumn("ivr_choice", _text),
    "outcome": IvrColumn("ivr_outcome", _text),
    "category": IvrColumn("ivr_category", _text),
    "skill": IvrColumn("ivr_skill", _text),
    "queue": IvrColumn("ivr_queue", _text),
    "first_key_ms": IvrColumn("ivr_first_key_ms", _count, "integer"),
    "invalid_keys": IvrColumn("ivr_invalid_keys", _count, "integer"),
    "score": IvrColumn("prank_score", _share, "real"),
    "reasons": IvrColumn("prank_reasons", _text),
    "priority": IvrColumn("queue_priority", _count, "integer"),
    "screening": IvrColumn("screening", _screening),
}


def dedupe_key(fact: CallFact) -> str:
    """Content hash of a fact: equal facts share it."""
    return _key_of(fact_to_json(fact))


def _key_of(body: str) -> str:
    """The dedupe key of a fact serialised as ``body`` (``fact_to_json``)."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class CallRepository:
    """Writes call facts and reads call records. Holds no connection: callers pass one in."""

    def __init__(self, shifts: ShiftCalendar) -> None:
        self._shifts = shifts

    async def apply(self, connection: asyncpg.Connection, facts: Sequence[CallFact]) -> int:
        """Apply ``facts`` in order in one transaction; returns how many were new.

        The result is the same as applying them one by one (``tests/loopback`` checks it on
        random batches), at about one round trip per kind of statement instead of two or three
        per fact: see :class:`_Batch` for why each reordering is safe.
        """
        async with connection.transaction():
            new = await self._append_events(connection, facts)
            if new:
                await _Batch(self._shifts, new).write(connection)
        return len(new)

    async def _append_events(
        self, connection: asyncpg.Connection, facts: Sequence[CallFact]
    ) -> list[CallFact]:
        """Insert the facts' events; the facts that were not there yet, in order."""
        unique: dict[str, tuple[CallFact, str]] = {}
        for fact in facts:
            # Serialised once, for its key and its body (this runs on the AMI listener's loop).
            body = fact_to_json(fact)
            # A repeat within the batch is a duplicate, as it would be one fact later.
            unique.setdefault(_key_of(body), (fact, body))
        keys = list(unique)
        rows = await connection.fetch(
            """
            INSERT INTO call_events (dedupe_key, call_id, kind, at, body)
            SELECT k, c, kd, a, b::jsonb
            FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                 WITH ORDINALITY AS e(k, c, kd, a, b, n)
            ORDER BY n
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING dedupe_key
            """,
            keys,
            [getattr(fact, "call_id", None) for fact, _ in unique.values()],
            [fact.kind for fact, _ in unique.values()],
            [fact.at for fact, _ in unique.values()],
            [body for _, body in unique.values()],
        )
        inserted = {row["dedupe_key"] for row in rows}
        return [fact for key, (fact, _) in unique.items() if key in inserted]

    async def open_call_ids(self, connection: asyncpg.Connection, *,
                            node: str | None = None) -> set[str]:
        """Calls the database believes are still in progress; only those of the cluster node
        whose systemname is ``node`` (call ids ``<node>-<epoch>.<seq>``), if given."""
        rows = await connection.fetch(
            "SELECT call_id FROM calls WHERE ended_at IS NULL"
            " AND ($1::text IS NULL OR starts_with(call_id, $1 || '-'))", node)
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

# Facts whose projection first makes sure the call's row exists (as _ENSURE_CALL did per fact).
_ENSURING = (CallStarted, IvrVariableSet, IvrVariablesSet, QueueJoined, QueueLeft,
             OperatorAnswered, OperatorCompleted, QueueAbandoned, CallEnded, CallBackfilled)

# The column names and types come from the fixed mapping above, never from an event.
_IVR_SETS = "".join(
    f"{column.column} = CASE WHEN ${3 + 2 * index} THEN ${4 + 2 * index}::{column.sql_type} "
    f"ELSE {column.column} END, "
    for index, column in enumerate(IVR_COLUMNS.values())
)
_IVR_UPDATE = (
    f"UPDATE calls SET line = COALESCE(line, $2), {_IVR_SETS}"  # noqa: S608
    "updated_at = now() WHERE call_id = $1"
)


_F = TypeVar("_F")


class _Batch:
    """The projections of a batch of new facts, grouped by statement, in an order that gives
    the same tables as the facts applied one by one.

    Why the grouping is exact: each statement below runs with ``executemany`` over its facts in
    their order, so facts writing the same columns keep their order. Statements of different
    groups write disjoint columns (or commute: LEAST, GREATEST, inserts that do nothing on
    conflict), except where noted:

    - Every call row is made to exist first. One by one, each fact's statements ran after its
      own "ensure"; running all of them first only changes CallStarted's path from INSERT to
      its DO UPDATE, which sets the same values on a row with nothing else in it, and
      CallVanished, which needs the row: it gets whether the row existed at its turn.
    - ``line`` is kept first-set-wins by both CallStarted and IVR_LINE: each call's first
      non-empty candidate in the batch is computed here and given to both statements.
    - The answer (OperatorAnswered, OperatorCompleted), the end (CallEnded, CallVanished) and
      the queue visits (joined, left, abandoned) read what the other kinds of their group
      wrote, so each group is one statement run over its facts in order.
    """

    def __init__(self, shifts: ShiftCalendar, facts: Sequence[CallFact]) -> None:
        self.facts = facts
        self.shifts = shifts
        self.lines: dict[str, str] = {}  # call -> first non-empty line candidate in the batch
        for fact in facts:
            if isinstance(fact, CallStarted):
                candidate = fact.line
            elif isinstance(fact, IvrVariableSet | IvrVariablesSet):
                candidate = dict(ivr_variables(fact)).get("line", "")
            else:
                continue
            if candidate:
                self.lines.setdefault(fact.call_id, candidate)

    async def write(self, connection: asyncpg.Connection) -> None:
        facts = self.facts
        ensured: list[str] = []
        seen: set[str] = set()
        vanished: list[tuple[CallVanished, bool]] = []  # (fact, ensured earlier in the batch)
        for fact in facts:
            if isinstance(fact, _ENSURING) and fact.call_id not in seen:
                seen.add(fact.call_id)
                ensured.append(fact.call_id)
            elif isinstance(fact, CallVanished):
                vanished.append((fact, fact.call_id in seen))
        existing: set[str] = set()
        unsure = [fact.call_id for fact, known in vanished if not known]
        if unsure:
            rows = await connection.fetch(
                "SELECT call_id FROM calls WHERE call_id = ANY($1::text[])", unsure)
            existing = {row["call_id"] for row in rows}
        if ensured:
            await connection.execute(
                "INSERT INTO calls (call_id) SELECT unnest($1::text[]) "
                "ON CONFLICT (call_id) DO NOTHING", ensured)
        operators = list(dict.fromkeys(
            fact.operator for fact in facts
            if isinstance(fact, OperatorAnswered | OperatorCompleted | OperatorStateChanged)))
        if operators:
            await connection.execute(
                "INSERT INTO operators (operator) SELECT unnest($1::text[]) "
                "ON CONFLICT DO NOTHING", operators)
        await self._calls_started(connection)
        await self._calls_lost(connection)
        await self._ivr(connection)
        await self._queues(connection)
        await self._answers(connection)
        await self._ends(connection, [(f, known or f.call_id in existing) for f, known in vanished])
        await self._operator_states(connection)
        await self._legs(connection)
        await write_outage_facts(connection, facts)  # cuts after the ends they amend
        await self._backfilled(connection)

    def _of(self, kind: type[_F]) -> list[_F]:
        return [fact for fact in self.facts if isinstance(fact, kind)]

    @staticmethod
    async def _many(connection: asyncpg.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await connection.executemany(sql, rows)

    async def _calls_started(self, connection: asyncpg.Connection) -> None:
        rows = []
        for fact in self._of(CallStarted):
            slot = self.shifts.slot_for(fact.at)
            rows.append((fact.call_id, fact.linked_id, fact.channel, fact.caller_number,
                         fact.caller_name, self.lines.get(fact.call_id, ""), fact.at, slot.day,
                         slot.name, parse_caller_id(fact.caller_number).key, fact.sip_call_id))
        await self._many(connection, """
            INSERT INTO calls (call_id, linked_id, channel, caller_number, caller_name, line,
                               arrived_at, shift_day, shift_name, caller_key, sip_call_id)
            VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10, NULLIF($11, ''))
            ON CONFLICT (call_id) DO UPDATE SET
                linked_id = COALESCE(calls.linked_id, EXCLUDED.linked_id),
                sip_call_id = COALESCE(calls.sip_call_id, EXCLUDED.sip_call_id),
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
            """, rows)

    async def _calls_lost(self, connection: asyncpg.Connection) -> None:
        # A record of its own for a call its node lost (telephony/cluster/front.py): ended
        # where it arrived, vanished, cut with the node. One per Call-ID (the partial unique
        # index of 0026), and none if a node recorded the call meanwhile.
        rows = []
        for fact in self._of(CallLost):
            slot = self.shifts.slot_for(fact.at)
            rows.append((fact.call_id, fact.caller_number, parse_caller_id(fact.caller_number).key,
                         fact.line, fact.at, slot.day, slot.name, fact.sip_call_id,
                         lost_with_node(fact.node)))
        await self._many(connection, """
            INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at, shift_day,
                               shift_name, ended_at, vanished, cut_reason, sip_call_id,
                               hangup_cause_text)
            SELECT $1, $2, $3, NULLIF($4, ''), $5, $6, $7, $5, true, 'node_lost', $8, $9
            WHERE NOT EXISTS (SELECT 1 FROM calls WHERE sip_call_id = $8)
            ON CONFLICT DO NOTHING
            """, rows)

    async def _ivr(self, connection: asyncpg.Connection) -> None:
        rows: list[tuple[Any, ...]] = []
        for fact in self.facts:
            if not isinstance(fact, IvrVariableSet | IvrVariablesSet):
                continue
            values = dict(ivr_variables(fact))
            if "line" not in values and values.keys().isdisjoint(IVR_COLUMNS):
                continue  # kept in the event log only (IVR_CALL_ID...)
            row: list[Any] = [fact.call_id, self.lines.get(fact.call_id) if "line" in values
                              else None]
            for name, target in IVR_COLUMNS.items():
                if name not in values:
                    row += [False, None]
                    continue
                try:
                    value = target.parse(values[name])
                except ValueError as exc:
                    # A bad value loses only itself: the fact is kept, the call recorded.
                    log.warning("call %s: IVR_%s=%r is malformed (%s), stored as NULL",
                                fact.call_id, name.upper(), values[name][:80], exc)
                    value = None
                row += [True, value]
            rows.append(tuple(row))
        await self._many(connection, _IVR_UPDATE, rows)

    async def _queues(self, connection: asyncpg.Connection) -> None:
        joined = self._of(QueueJoined)
        await self._many(connection, """
            UPDATE calls SET
                queue = COALESCE(queue, $2),
                queue_position = CASE WHEN queue IS NULL THEN $4 ELSE queue_position END,
                queue_joined_at = CASE WHEN queue IS NULL THEN $3 ELSE queue_joined_at END,
                updated_at = now()
            WHERE call_id = $1
            """, [(f.call_id, f.queue, f.at, f.position) for f in joined])
        # A resync re-reports a caller still waiting, with a join time estimated from its wait;
        # an open visit to the same queue is that same visit. Leaving closes the open visit.
        visits: list[tuple[Any, ...]] = []
        for fact in self.facts:
            match fact:
                case QueueJoined():
                    visits.append((fact.call_id, fact.queue, fact.at, fact.position, True))
                case QueueLeft():
                    visits.append((fact.call_id, fact.queue, fact.at, fact.position, False))
                case QueueAbandoned():
                    visits.append((fact.call_id, fact.queue, fact.at, fact.final_position,
                                   False))
        await self._many(connection, """
            WITH closed AS (
                UPDATE queue_visits SET left_at = $3, left_position = $4
                WHERE NOT $5::boolean AND call_id = $1 AND queue = $2 AND left_at IS NULL
            )
            INSERT INTO queue_visits (call_id, queue, joined_at, join_position)
            SELECT $1, $2, $3, $4
            WHERE $5::boolean AND NOT EXISTS (
                SELECT 1 FROM queue_visits
                WHERE call_id = $1 AND queue = $2 AND left_at IS NULL
            )
            ON CONFLICT DO NOTHING
            """, visits)
        await self._many(connection,
            "UPDATE calls SET queue_left_at = GREATEST(queue_left_at, $2), updated_at = now() "
            "WHERE call_id = $1", [(f.call_id, f.at) for f in self._of(QueueLeft)])
        await self._many(connection, """
            UPDATE calls SET
                abandoned_at = $2, abandon_queue = $3,
                abandon_original_position = $4, abandon_final_position = $5,
                abandon_wait_seconds = $6, updated_at = now()
            WHERE call_id = $1
            """, [(f.call_id, f.at, f.queue, f.original_position, f.final_position,
                   f.wait_seconds) for f in self._of(QueueAbandoned)])

    async def _answers(self, connection: asyncpg.Connection) -> None:
        rows: list[tuple[Any, ...]] = []
        for fact in self.facts:
            match fact:
                case OperatorAnswered():
                    rows.append((fact.call_id, fact.queue, fact.operator, fact.wait_seconds,
                                 fact.ring_seconds, fact.at, None, None, False))
                case OperatorCompleted():
                    rows.append((fact.call_id, fact.queue, fact.operator, fact.wait_seconds,
                                 None, fact.at, fact.ended_by, fact.talk_seconds, True))
        # $9: a completion. AgentComplete stands alone: if the listener missed AgentConnect
        # (it was restarting), the answer instant is the completion minus the talk time.
        await self._many(connection, """
            UPDATE calls SET
                answered_queue = COALESCE(answered_queue, $2),
                operator = COALESCE(operator, $3),
                wait_seconds = COALESCE(wait_seconds, $4),
                ring_seconds = CASE WHEN $9::boolean THEN ring_seconds
                                    ELSE COALESCE(ring_seconds, $5::integer) END,
                answered_at = CASE WHEN $9::boolean
                    THEN COALESCE(answered_at,
                                  $6::timestamptz - make_interval(secs => $8::integer))
                    ELSE LEAST(answered_at, $6::timestamptz) END,
                talk_seconds = CASE WHEN $9::boolean THEN $8::integer ELSE talk_seconds END,
                ended_by = CASE WHEN $9::boolean THEN $7::text ELSE ended_by END,
                completed_at = CASE WHEN $9::boolean THEN $6::timestamptz
                                    ELSE completed_at END,
                updated_at = now()
            WHERE call_id = $1
            """, rows)

    async def _ends(
        self, connection: asyncpg.Connection, vanished: list[tuple[CallVanished, bool]]
    ) -> None:
        existed = {id(fact): there for fact, there in vanished}
        rows: list[tuple[Any, ...]] = []
        for fact in self.facts:
            match fact:
                case CallEnded():
                    rows.append((fact.call_id, fact.at, fact.cause, fact.cause_text, False,
                                 True))
                case CallVanished():
                    rows.append((fact.call_id, fact.at, None, None, True, existed[id(fact)]))
        # $5: vanished (only while no end is known, and only if the row existed at its turn).
        await self._many(connection, """
            UPDATE calls SET
                ended_at = $2,
                hangup_cause = CASE WHEN $5::boolean THEN hangup_cause ELSE $3::integer END,
                hangup_cause_text = CASE WHEN $5::boolean THEN hangup_cause_text
                                         ELSE $4::text END,
                vanished = $5::boolean, updated_at = now()
            WHERE call_id = $1 AND (NOT $5::boolean OR (ended_at IS NULL AND $6::boolean))
            """, rows)

    async def _operator_states(self, connection: asyncpg.Connection) -> None:
        states = self._of(OperatorStateChanged)
        rows = []
        for fact in states:
            slot = self.shifts.slot_for(fact.at)
            rows.append((fact.operator, fact.queue, fact.at, fact.state, fact.paused,
                         fact.pause_reason, slot.day, slot.name))
        await self._many(connection, """
            INSERT INTO operator_state_changes
                (operator, queue, at, state, paused, pause_reason, shift_day, shift_name)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT DO NOTHING
            """, rows)
        # The latest state wins; of two at the same instant, the later fact.
        await self._many(connection, """
            INSERT INTO queue_members (operator, queue, state, paused, pause_reason, since)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (operator, queue) DO UPDATE SET
                state = EXCLUDED.state, paused = EXCLUDED.paused,
                pause_reason = EXCLUDED.pause_reason, since = EXCLUDED.since
            WHERE queue_members.since <= EXCLUDED.since
            """, [(f.operator, f.queue, f.state, f.paused, f.pause_reason, f.at)
                  for f in states])

    async def _backfilled(self, connection: asyncpg.Connection) -> None:
        # Only ever set: a call rebuilt from Asterisk's log stays marked as such.
        await self._many(connection,
            "UPDATE calls SET backfilled = true, updated_at = now() "
            "WHERE call_id = $1 AND NOT backfilled",
            [(f.call_id,) for f in self._of(CallBackfilled)])

    async def _legs(self, connection: asyncpg.Connection) -> None:
        await self._many(connection, LegRepository.PROGRESS, [
            LegRepository.progress_row(fact) for fact in self._of(LegProgressed)])


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

    # What the dialplan reported; the first report of each state wins (a replay, or the same
    # state reported by a second channel of the leg, changes nothing).
    PROGRESS = """
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
        """

    @staticmethod
    def progress_row(fact: LegProgressed) -> tuple[Any, ...]:
        """The parameters of :attr:`PROGRESS` for one report (applied by the call store)."""
        state = LegState(fact.state)
        unanswered = leg_outcome(fact.status, answered=False).value
        return (fact.leg_id, fact.channel_id, state.value, fact.at, unanswered, fact.status)

    async def legs(self, connection: asyncpg.Connection, call_ids: Sequence[str]) -> list[Leg]:
        """The legs of these calls, oldest first."""
        rows = await connection.fetch(
            "SELECT * FROM call_legs WHERE call_id = ANY($1::text[]) ORDER BY leg_id", call_ids)
        return [from_row(Leg, row) for row in rows]

    async def leg(self, connection: asyncpg.Connection, leg_id: int) -> Leg | None:
        """One leg by its id."""
        row = await connection.fetchrow("SELECT * FROM call_legs WHERE leg_id = $1", leg_id)
        return from_row(Leg, row) if row is not None else None
