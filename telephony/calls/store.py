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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from telephony.asterisk.causes import NETWORK_CAUSES
from telephony.calls.facts import (
    IVR_VALUES,
    AsteriskReturned,
    AsteriskShutdown,
    CallBackfilled,
    CallCut,
    CallEnded,
    CallFact,
    CallLost,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    LegCut,
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
from telephony.calls.outages import OutageKind, lost_with_node
from telephony.calls.shifts import ShiftCalendar
from telephony.db.rows import from_row
from telephony.settings import ShiftDefinition

log = logging.getLogger("telephony.db")



async def operator_open_call(connection: asyncpg.Connection, interface: str, *,
                             since: datetime, answered_only: bool) -> str | None:
    """What the operator at ``interface`` is on as the records have it, on any cluster node:
    the latest call they answered since ``since`` that has not ended, or call-back leg of
    theirs asked for since then and not ended (the Uniqueid of its channel, whose node placed
    it; the called-back call's id until the channel reported); ``None`` if none. With
    ``answered_only``, a call-back not yet answered (their phone ringing) does not count.
    On a cluster, another node's Asterisk has no channel of it: what a line asked about an
    operator on such a call reads here."""
    found: str | None = await connection.fetchval(
        """
        SELECT id FROM (
            SELECT call_id AS id, answered_at AS at FROM calls
            WHERE operator = $1 AND answered_at >= $2 AND ended_at IS NULL
            UNION ALL
            SELECT COALESCE(channel_id, call_id), COALESCE(answered_at, requested_at)
            FROM call_legs
            WHERE kind = 'callback' AND operator = $1 AND ended_at IS NULL
              AND requested_at >= $2 AND (answered_at IS NOT NULL OR NOT $3)
        ) live
        ORDER BY at DESC
        LIMIT 1
        """,
        interface, since, answered_only)
    return found



@dataclass(frozen=True)
class IvrColumn:
    """Where an IVR variable is kept, and how its text becomes the column's value."""

    column: str
    parse: Callable[[str], object]  # raises ValueError for a malformed value


# IVR variable name (lower case, without IVR_) -> column. Anything else stays in the event log.
_IVR_COLUMN_NAMES = {
    "choice": "ivr_choice",
    "outcome": "ivr_outcome",
    "category": "ivr_category",
    "skill": "ivr_skill",
    "queue": "ivr_queue",
    "first_key_ms": "ivr_first_key_ms",
    "invalid_keys": "ivr_invalid_keys",
    "score": "prank_score",
    "reasons": "prank_reasons",
    "priority": "queue_priority",
    "screening": "screening",
}
IVR_COLUMNS = {name: IvrColumn(column, IVR_VALUES[name])
               for name, column in _IVR_COLUMN_NAMES.items()}


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

    @property
    def calendar(self) -> ShiftCalendar:
        """The shifts the calls it writes are attributed to."""
        return self._shifts

    async def apply(self, connection: asyncpg.Connection, facts: Sequence[CallFact]) -> int:
        """Apply ``facts`` in order, atomically, in one round trip; returns how many were new.

        The result is the same as applying them one by one (``tests/loopback`` checks it on
        random batches): see :class:`FactBatch` for why each reordering is safe.
        """
        batch = FactBatch(self._shifts, facts)
        fresh: list[bool] = await connection.fetchval(_RECORD, *batch.arguments())
        return len(batch.new_facts(fresh))

    async def started_call_ids(self, connection: asyncpg.Connection,
                               call_ids: Collection[str]) -> set[str]:
        """Those of ``call_ids`` whose start is stored (a ``call_started`` event)."""
        rows = await connection.fetch(
            "SELECT DISTINCT call_id FROM call_events"
            " WHERE kind = $2 AND call_id = ANY($1::text[])", list(call_ids), CallStarted.kind)
        return {row["call_id"] for row in rows}

    async def open_visits(self, connection: asyncpg.Connection,
                          call_ids: Collection[str]) -> set[tuple[str, str]]:
        """(call id, queue) of each of ``call_ids``' stored queue visits not left yet: the
        queues the store has them waiting in."""
        if not call_ids:
            return set()
        rows = await connection.fetch(
            "SELECT DISTINCT call_id, queue FROM queue_visits"
            " WHERE call_id = ANY($1::text[]) AND left_at IS NULL", list(call_ids))
        return {(row["call_id"], row["queue"]) for row in rows}

    async def open_call_waits(self, connection: asyncpg.Connection, *,
                              node: str | None = None) -> dict[str, set[str]]:
        """:meth:`open_call_ids`, each with the queues the store has it waiting in (its
        visits not left)."""
        rows = await connection.fetch(
            "SELECT c.call_id, v.queue FROM calls c"
            " LEFT JOIN queue_visits v ON v.call_id = c.call_id AND v.left_at IS NULL"
            " WHERE c.ended_at IS NULL"
            " AND ($1::text IS NULL OR starts_with(c.call_id, $1 || '-'))", node)
        waits: dict[str, set[str]] = {}
        for row in rows:
            queues = waits.setdefault(row["call_id"], set())
            if row["queue"] is not None:
                queues.add(row["queue"])
        return waits

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
        ``None`` does not filter.

        ``caller_number`` finds the calls presented exactly so, and those of the same caller
        however the carrier wrote the number (its :func:`parse_caller_id` key): an operator
        who types ``0812…`` must also find the calls that came as ``+62812…`` or ``0062812…``.
        """
        key = None if caller_number is None else parse_caller_id(caller_number).key
        rows = await connection.fetch(
            """
            SELECT * FROM call_outcomes
            WHERE ($1::timestamptz IS NULL OR arrived_at >= $1)
              AND ($3::timestamptz IS NULL OR arrived_at < $3)
              AND ($4::text IS NULL OR line = $4)
              AND ($5::text IS NULL OR caller_number = $5 OR caller_key = $7)
              AND ($6::text IS NULL OR disposition = $6)
            ORDER BY arrived_at DESC NULLS LAST
            LIMIT $2
            """,
            since, limit, until, line, caller_number, disposition, key,
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

# One round trip: the function of migration 0033 runs every statement of the batch.
_RECORD = """
    SELECT record_call_facts($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                             $6::boolean[], $7::text[], $8::text[], $9::jsonb)
"""


def _json_value(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")


class FactBatch:
    """A batch of facts as :func:`record_call_facts` (migration 0033) takes them: each distinct
    fact once, in order, with the rows of the statements that project it. Pure: no I/O.

    The server projects only the facts whose event was not stored yet, statement by statement,
    each over its facts in their order. That gives the tables the facts applied one by one
    give (``tests/loopback/test_call_store_batches.py``), because statements of different
    kinds write disjoint columns (or commute: LEAST, GREATEST, inserts that do nothing on
    conflict), except where noted:

    - Every call row is made to exist first. One by one, each fact's statements ran after its
      own "ensure"; running all of them first only changes CallStarted's path from INSERT to
      its DO UPDATE, which sets the same values on a row with nothing else in it, and
      CallVanished, which needs the row: it gets whether the row existed at its turn.
    - ``line`` is kept first-set-wins by both CallStarted and the IVR's ``line``: the server
      takes each call's first non-empty candidate among the new facts for both statements.
    - The answer (OperatorAnswered, OperatorCompleted), the end (CallEnded, CallVanished) and
      the queue visits (joined, left, abandoned) read what the other kinds of their group
      wrote, so each group is one statement run over its facts in order.
    - Cuts amend ends, so they come after them.
    """

    def __init__(self, shifts: ShiftCalendar, facts: Sequence[CallFact]) -> None:
        unique: dict[str, tuple[CallFact, str]] = {}
        for fact in facts:
            # Serialised once, for its key and its body (this runs on the AMI listener's loop).
            body = fact_to_json(fact)
            # A repeat within the batch is a duplicate, as it would be one fact later.
            unique.setdefault(_key_of(body), (fact, body))
        self.keys = list(unique)
        self.facts = [fact for fact, _ in unique.values()]
        self.bodies = [body for _, body in unique.values()]
        self._shifts = shifts
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.lines: list[str] = []  # per fact: the line it proposes for its call, or ""
        self.malformed: dict[int, list[str]] = {}  # fact ordinal -> what the log says of it
        for n, fact in enumerate(self.facts, 1):
            self.lines.append(self._add(n, fact))

    def arguments(self) -> tuple[Any, ...]:
        """The parameters of :data:`_RECORD`."""
        facts = self.facts
        return (
            self.keys,
            [getattr(fact, "call_id", None) for fact in facts],
            [fact.kind for fact in facts],
            [fact.at for fact in facts],
            self.bodies,
            [isinstance(fact, _ENSURING) for fact in facts],
            [fact.operator if isinstance(
                fact, OperatorAnswered | OperatorCompleted | OperatorStateChanged) else None
             for fact in facts],
            self.lines,
            json.dumps(self.rows, default=_json_value, ensure_ascii=False),
        )

    def new_facts(self, fresh: Sequence[bool]) -> list[CallFact]:
        """The facts the server found new (``fresh``, as it returned), and log what was
        malformed in them: a replay logs nothing again."""
        new = []
        for n, (fact, is_new) in enumerate(zip(self.facts, fresh, strict=True), 1):
            if is_new:
                new.append(fact)
                for line in self.malformed.get(n, ()):
                    log.warning("%s", line)
        return new

    def _row(self, statement: str, n: int, **values: Any) -> None:
        self.rows.setdefault(statement, []).append({"n": n, **values})

    def _slot(self, at: datetime) -> dict[str, Any]:
        slot = self._shifts.slot_for(at)
        return {"shift_day": slot.day, "shift_name": slot.name}

    def _add(self, n: int, fact: CallFact) -> str:
        """Add the rows of fact ``n``; returns the line it proposes for its call."""
        match fact:
            case CallStarted():
                self._row("started", n, call_id=fact.call_id, linked_id=fact.linked_id,
                          channel=fact.channel, caller_number=fact.caller_number,
                          caller_name=fact.caller_name, at=fact.at, **self._slot(fact.at),
                          caller_key=parse_caller_id(fact.caller_number).key,
                          sip_call_id=fact.sip_call_id)
                return fact.line
            case CallLost():
                self._row("lost", n, call_id=fact.call_id, caller_number=fact.caller_number,
                          caller_key=parse_caller_id(fact.caller_number).key, line=fact.line,
                          at=fact.at, **self._slot(fact.at), sip_call_id=fact.sip_call_id,
                          cause_text=lost_with_node(fact.node))
            case IvrVariableSet() | IvrVariablesSet():
                return self._ivr(n, fact)
            case QueueJoined():
                self._row("joined", n, call_id=fact.call_id, queue=fact.queue, at=fact.at,
                          position=fact.position)
                self._row("visits", n, call_id=fact.call_id, queue=fact.queue, at=fact.at,
                          position=fact.position, joining=True)
            case QueueLeft():
                self._row("visits", n, call_id=fact.call_id, queue=fact.queue, at=fact.at,
                          position=fact.position, joining=False)
                self._row("left", n, call_id=fact.call_id, at=fact.at)
            case QueueAbandoned():
                self._row("visits", n, call_id=fact.call_id, queue=fact.queue, at=fact.at,
                          position=fact.final_position, joining=False)
                self._row("abandoned", n, call_id=fact.call_id, at=fact.at, queue=fact.queue,
                          original_position=fact.original_position,
                          final_position=fact.final_position, wait_seconds=fact.wait_seconds)
            case OperatorAnswered():
                self._row("answers", n, call_id=fact.call_id, queue=fact.queue,
                          operator=fact.operator, wait_seconds=fact.wait_seconds,
                          ring_seconds=fact.ring_seconds, at=fact.at, completion=False)
            case OperatorCompleted():
                self._row("answers", n, call_id=fact.call_id, queue=fact.queue,
                          operator=fact.operator, wait_seconds=fact.wait_seconds, at=fact.at,
                          ended_by=fact.ended_by, talk_seconds=fact.talk_seconds,
                          completion=True)
            case CallEnded():
                self._row("ends", n, call_id=fact.call_id, at=fact.at, cause=fact.cause,
                          cause_text=fact.cause_text, vanished=False)
            case CallVanished():
                self._row("ends", n, call_id=fact.call_id, at=fact.at, vanished=True)
            case OperatorStateChanged():
                self._row("states", n, operator=fact.operator, queue=fact.queue, at=fact.at,
                          state=fact.state, paused=fact.paused, pause_reason=fact.pause_reason,
                          **self._slot(fact.at))
            case LegProgressed():
                self._row("legs", n, leg_id=fact.leg_id, channel_id=fact.channel_id,
                          state=LegState(fact.state).value, at=fact.at,
                          unanswered=leg_outcome(fact.status, answered=False).value,
                          status=fact.status, cause=fact.cause or None,
                          lost=fact.cause in NETWORK_CAUSES)
            case AsteriskShutdown():
                kind = OutageKind.RESTART if fact.restart else OutageKind.STOP
                self._row("shutdowns", n, kind=kind.value, at=fact.at)
            case AsteriskReturned():
                self._row("returns", n, outage=fact.outage, began_at=fact.began_at,
                          lost_at=fact.lost_at, booted_at=fact.booted_at, at=fact.at,
                          calls_cut=fact.calls_cut)
            case CallCut():
                self._row("cuts", n, call_id=fact.call_id, reason=fact.reason, at=fact.at)
            case LegCut():
                self._row("leg_cuts", n, leg_id=fact.leg_id, reason=fact.reason, at=fact.at)
            case CallBackfilled():
                self._row("backfilled", n, call_id=fact.call_id)
        return ""

    def _ivr(self, n: int, fact: IvrVariableSet | IvrVariablesSet) -> str:
        values = dict(ivr_variables(fact))
        if "line" not in values and values.keys().isdisjoint(IVR_COLUMNS):
            return ""  # kept in the event log only (IVR_CALL_ID...)
        columns: dict[str, object] = {}
        for name, target in IVR_COLUMNS.items():
            if name not in values:
                continue
            try:
                columns[target.column] = target.parse(values[name])
            except ValueError as exc:
                # A bad value loses only itself: the fact is kept, the call recorded.
                self.malformed.setdefault(n, []).append(
                    f"call {fact.call_id}: IVR_{name.upper()}={values[name][:80]!r} is "
                    f"malformed ({exc}), stored as NULL")
                columns[target.column] = None
        self._row("ivr", n, call_id=fact.call_id, sets_line="line" in values, v=columns)
        return values.get("line", "")


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
        """Asterisk would not dial the leg at all: it ends now, failed, with why. A leg the
        line ended itself keeps why (a call-back called off while the operator's phone rang
        ends its Originate as failed)."""
        await connection.execute(
            """
            UPDATE call_legs SET ended_at = COALESCE(ended_at, now()),
                                 outcome = COALESCE(outcome, 'failed'),
                                 status = CASE WHEN ended_at IS NULL OR status = '' THEN $2
                                               ELSE status END
            WHERE leg_id = $1
            """,
            leg_id, status[:200],
        )

    async def legs(self, connection: asyncpg.Connection, call_ids: Sequence[str]) -> list[Leg]:
        """The legs of these calls, oldest first."""
        rows = await connection.fetch(
            "SELECT * FROM call_legs WHERE call_id = ANY($1::text[]) ORDER BY leg_id", call_ids)
        return [from_row(Leg, row) for row in rows]

    async def outlived_call_backs(self, connection: asyncpg.Connection,
                                  legs: Sequence[Leg]) -> set[int]:
        """Which of these call-backs, answered and never reported ended, their operator has
        since moved on from: they answered a call, or took another call-back, after it was
        answered (nobody does while still on one; ``callbacks.model.pending``)."""
        open_ids = [leg.leg_id for leg in legs
                    if leg.answered_at is not None and leg.ended_at is None]
        if not open_ids:
            return set()
        rows = await connection.fetch(
            """
            SELECT l.leg_id FROM call_legs l
            WHERE l.leg_id = ANY($1::bigint[])
              AND (EXISTS (SELECT 1 FROM calls c
                           WHERE c.operator = l.operator AND c.answered_at > l.answered_at)
                   OR EXISTS (SELECT 1 FROM call_legs o
                              WHERE o.kind = 'callback' AND o.operator = l.operator
                                AND o.requested_at > l.answered_at AND o.rang_at IS NOT NULL))
            """,
            open_ids)
        return {row["leg_id"] for row in rows}

    async def operator_callback(self, connection: asyncpg.Connection, operator: str,
                                within: timedelta) -> Leg | None:
        """The latest call-back the operator at ``operator`` took on their phone (the
        dialplan began dialling the caller) within ``within``, ended or not."""
        row = await connection.fetchrow(
            """
            SELECT * FROM call_legs
            WHERE kind = 'callback' AND operator = $1 AND rang_at IS NOT NULL
              AND requested_at > now() - $2::interval
            ORDER BY rang_at DESC, leg_id DESC
            LIMIT 1
            """,
            operator, within)
        return from_row(Leg, row) if row is not None else None

    async def leg(self, connection: asyncpg.Connection, leg_id: int) -> Leg | None:
        """One leg by its id."""
        row = await connection.fetchrow("SELECT * FROM call_legs WHERE leg_id = $1", leg_id)
        return from_row(Leg, row) if row is not None else None
