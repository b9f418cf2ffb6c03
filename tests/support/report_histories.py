"""Random call histories for the reports' tests: overflowed, abandoned, vanished and
still-waiting calls, answers with an unknown join, relabelled calls (ties included), rung
events recorded before their call row, wrap-up pauses at the grace's edges and across
queues, calls on both sides of shift boundaries, calls two operators answered (a blind
transfer nobody took, the caller queued again), one of them now and then twice.

:func:`random_history` makes one (pure: the ``calls`` rows and the other rows as plain
values), :func:`build_history` stores one in PostgreSQL, :func:`call_rows` gives the
reference's rows (``telephony.reports.model.CallRow``) of its calls, and :func:`same`
compares two :class:`~telephony.reports.model.Figures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariablesSet,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.desks.phones import PhoneKind
from telephony.desks.store import DeskRepository
from telephony.reports.model import CallRow, Figures, LiveCall
from telephony.reports.store import ReportRepository
from telephony.screening.features import Label
from telephony.settings import DEFAULT_SHIFTS
from tests.support.polling import eventually

JAKARTA: Final = ZoneInfo("Asia/Jakarta")
CALENDAR: Final = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
DAY: Final = date(2025, 3, 10)
START: Final = datetime(2025, 3, 10, 7, tzinfo=JAKARTA)  # the first pagi of the history
SPAN: Final = timedelta(days=3)
OPERATORS: Final = [f"PJSIP/op10{n:02d}" for n in range(1, 6)]
QUEUES: Final = ["medical", "fire", "security", "all-operators"]
LABELS: Final = ["genuine", "prank", "silent", "accidental", "test"]

Event = tuple[str, str, str, datetime, str]  # dedupe key, call id, kind, at, JSON body
Change = tuple[str, str, datetime, str, bool, str]  # operator, queue, at, state, paused, reason


@dataclass
class History:
    """One random history, as the rows of its tables."""

    calls: list[dict[str, Any]] = field(default_factory=list)  # calls columns
    events: list[Event] = field(default_factory=list)  # rung events after their call row
    early_events: list[Event] = field(default_factory=list)  # ... and before it
    labels: list[tuple[str, str, datetime]] = field(default_factory=list)  # call, label, at
    changes: list[Change] = field(default_factory=list)  # operator state changes
    answers: list[Event] = field(default_factory=list)  # answer facts of shared calls


def seconds(rng: random.Random, low: float, high: float) -> timedelta:
    """A random duration, in whole microseconds, now and then exactly on a threshold."""
    if rng.random() < 0.1:
        return timedelta(seconds=rng.choice([10, 20, 60, 0]))
    return timedelta(microseconds=rng.randint(int(low * 1e6), int(high * 1e6)))


def astuple(slot: ShiftSlot) -> tuple[date, str]:
    return slot.day, slot.name


def state(operator: str, at: datetime, paused: bool, reason: str,
          queues: tuple[str, ...] = ("medical", "all-operators")) -> list[Change]:
    return [(operator, queue, at, "paused" if paused else "idle", paused,
             reason if paused else "") for queue in queues]


def wrapup_pause(rng: random.Random, operator: str, done: datetime) -> list[Change]:
    """Often a wrap-up pause after a call: in the grace or just out of it, in both queues or
    one (a pause in one queue only is not a pause), ended or not."""
    if rng.random() < 0.4:
        return []
    start = done + rng.choice([timedelta(0), timedelta(seconds=59, microseconds=999999),
                               timedelta(seconds=60), seconds(rng, 0, 70)])
    queues = ("medical", "all-operators") if rng.random() < 0.9 else ("medical",)
    result = state(operator, start, True, rng.choice(["wrapup", "wrapup", "break"]), queues)
    if rng.random() < 0.85:
        result += state(operator, start + seconds(rng, 0.000001, 200),
                        rng.random() < 0.2, rng.choice(["wrapup", "break"]))
    return result


def random_history(rng: random.Random, calls: int, now: datetime) -> History:
    """``calls`` random calls arriving over :data:`SPAN` from :data:`START`, up to ``now``."""
    history = History()
    events, early_events = history.events, history.early_events
    for n in range(calls):
        call_id = f"{1741560000 + n}.{n}"
        if rng.random() < 0.05:  # right at a shift boundary
            arrived = CALENDAR.bounds(CALENDAR.slot_for(START + rng.random() * SPAN))[1] \
                - timedelta(microseconds=rng.choice([1, 0]))
        else:
            arrived = START + rng.random() * SPAN
        if arrived > now:
            arrived = now - seconds(rng, 0, 40)
        slot = CALENDAR.slot_for(arrived)
        row: dict[str, Any] = {
            "call_id": call_id, "line": rng.choice(["112", "119", None]),
            "arrived_at": arrived, "shift_day": slot.day, "shift_name": slot.name,
            "ivr_category": rng.choice(["emergency", "complaint", "information", None]),
            "queue": None, "queue_joined_at": None, "answered_at": None, "operator": None,
            "wait_seconds": None, "talk_seconds": None, "completed_at": None,
            "abandoned_at": None, "ended_at": None, "vanished": False,
        }
        fate = rng.random()
        if rng.random() < 0.8:  # offered
            row["queue"] = rng.choice(QUEUES)
            joined = arrived + seconds(rng, 1, 8)
            row["queue_joined_at"] = joined if rng.random() > 0.1 else None
            if fate < 0.55 and joined < now:  # answered
                answered = joined + seconds(rng, 0, 35)
                operator = rng.choice(OPERATORS)
                row["operator"] = operator
                row["answered_at"] = answered if rng.random() > 0.05 else None
                row["wait_seconds"] = rng.choice([None, rng.randint(0, 40)])
                talk = rng.randint(0, 300)
                if rng.random() < 0.9 and answered + timedelta(seconds=talk) < now:
                    done = answered + timedelta(seconds=talk)
                    row["talk_seconds"] = talk if rng.random() > 0.05 else None
                    row["completed_at"] = done
                    row["ended_at"] = done
                    history.changes += wrapup_pause(rng, operator, done)
                    if talk >= 12 and row["answered_at"] is not None and rng.random() < 0.2:
                        history.answers += shared_answers(rng, history, row, answered, done)
                elif row["answered_at"] is None:
                    row["answered_at"] = answered
            elif fate < 0.75:
                row["abandoned_at"] = joined + seconds(rng, 0, 60)
                row["ended_at"] = row["abandoned_at"]
            elif fate < 0.78:
                row["vanished"] = True
                row["ended_at"] = joined + seconds(rng, 0, 60)
            elif fate < 0.85:
                row["ended_at"] = joined + seconds(rng, 0, 60)  # ended in the queue
            # else still waiting
        elif fate < 0.8:
            row["ended_at"] = arrived + seconds(rng, 1, 30)  # ended in the IVR
        history.calls.append(row)
        for operator in rng.sample(OPERATORS, rng.choice([0, 0, 1, 1, 2, 3])):
            for _ in range(rng.choice([1, 1, 2])):  # rung twice: counted once
                event = (f"rung-{call_id}-{operator}-{len(events) + len(early_events)}",
                         call_id, "operator_rung", arrived,
                         json.dumps({"operator": operator, "queue": row["queue"]}))
                (early_events if rng.random() < 0.2 else events).append(event)
        when = arrived + seconds(rng, 30, 4000)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            history.labels.append((call_id, rng.choice(LABELS), when))
            if rng.random() < 0.7:  # else the same instant: the later entry counts
                when += seconds(rng, -3000, 3000)
    for _ in range(calls // 5):  # pauses unrelated to any call
        at = START + rng.random() * SPAN
        history.changes += state(rng.choice(OPERATORS), at, rng.random() < 0.6,
                                 rng.choice(["wrapup", "break", ""]))
    return history


def shared_answers(rng: random.Random, history: History, row: dict[str, Any],
                   answered: datetime, done: datetime) -> list[Event]:
    """The answer facts of a call its operator answered and blind-transferred, which another
    operator answered from the queues afterwards (its row keeps the first operator and the
    last talk, as the call store writes it): the first talk now and then amended (the
    operator talked again with the caller the transfer brought back), the first operator
    now and then answering it twice, the second one's talk now and then never completed."""
    first, second = row["operator"], rng.choice([op for op in OPERATORS if op != row["operator"]])
    call_id, queue = row["call_id"], row["queue"]
    events: list[Event] = []

    def fact(kind: str, operator: str, at: datetime, talk: int | None = None) -> None:
        body: dict[str, Any] = {"kind": kind, "queue": queue, "operator": operator,
                                "at": at.isoformat()}
        if talk is not None:
            body["talk_seconds"] = talk
        events.append((f"{kind}-{call_id}-{len(events)}", call_id, kind, at, json.dumps(body)))

    span = (done - answered).total_seconds()
    first_done = answered + timedelta(seconds=rng.randint(1, int(span / 3)))
    fact("operator_answered", first, answered)
    fact("operator_completed", first, first_done, round((first_done - answered).total_seconds()))
    if rng.random() < 0.3:  # amended: a talk after the transfer's return adds to it
        amended = first_done + timedelta(seconds=rng.randint(1, 3))
        fact("operator_completed", first, amended, round((amended - answered).total_seconds()))
        first_done = amended
    history.changes += wrapup_pause(rng, first, first_done)
    second_answer = first_done + timedelta(seconds=rng.randint(1, int(span / 3)))
    if rng.random() < 0.2:  # the first operator answers it again from the queues
        again = second_answer
        second_answer = again + timedelta(seconds=2)
        fact("operator_answered", first, again)
        fact("operator_completed", first, again + timedelta(seconds=1), 1)
    fact("operator_answered", second, second_answer)
    if rng.random() < 0.9:
        fact("operator_completed", second, done, round((done - second_answer).total_seconds()))
        history.changes += wrapup_pause(rng, second, done)
    return events


# Queues an admin gave a wrap-up of their own (the others: the settings file's).
QUEUE_WRAPUPS: Final = {"fire": 30, "security": 0}


async def build_history(connection: asyncpg.Connection, rng: random.Random, calls: int,
                        now: datetime) -> History:
    """A :func:`random_history`, stored; answered in the queue joined or the overflow, with
    accounts moving between the phones (some at none) while its calls are recorded."""
    history = random_history(rng, calls, now)
    for row in history.calls:
        row["answered_queue"] = (rng.choice([row["queue"], "all-operators"])
                                 if row["operator"] is not None else None)
    await connection.executemany(
        "INSERT INTO queue_settings (queue, strategy, ring_timeout_seconds, retry_seconds, "
        "wrapup_seconds, announce_position, announce_holdtime, announce_frequency_seconds, "
        "max_wait_seconds, updated_by) VALUES ($1, 'ringall', 15, 1, $2, false, false, 0, "
        "300, 'admin')", list(QUEUE_WRAPUPS.items()))
    # Phones no call rings: where an account waits while the desks change hands (parked), or
    # works at no queue phone (away).
    parked = [f"PJSIP/parked{n}" for n in range(4)]
    away = [f"PJSIP/away{n}" for n in range(2)]
    await connection.executemany(
        "INSERT INTO operators (operator) VALUES ($1) ON CONFLICT DO NOTHING",
        [(operator,) for operator in [*OPERATORS, *parked, *away]])
    accounts = [await connection.fetchval(
        "INSERT INTO accounts (username, role, password_hash) VALUES ($1, 'operator', 'x') "
        "RETURNING account_id", f"op{n}") for n in range(4)]
    await connection.executemany(
        "INSERT INTO account_operators (account_id, operator) VALUES ($1, $2)",
        list(zip(accounts, parked, strict=True)))
    insert_event = ("INSERT INTO call_events (dedupe_key, call_id, kind, at, body) "
                    "VALUES ($1, $2, $3, $4, $5::jsonb)")
    # Some calls are first seen through a later fact: their rung events come before the row.
    await connection.executemany(insert_event, history.early_events)
    columns = list(history.calls[0])
    chunk = max(1, len(history.calls) // 4)
    for start in range(0, len(history.calls), chunk):
        # The desks change hands between the calls recorded before and after.
        move = "UPDATE account_operators SET operator = $2 WHERE account_id = $1"
        await connection.executemany(move, list(zip(accounts, parked, strict=True)))
        await connection.executemany(move, list(zip(
            accounts, rng.sample([*OPERATORS, *away], len(accounts)), strict=True)))
        chunk_calls = history.calls[start:start + chunk]
        await connection.executemany(
            f"INSERT INTO calls ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
            [tuple(row[c] for c in columns) for row in chunk_calls])
        # Their answer facts are recorded as the call store records them, the desks as now.
        ids = {row["call_id"] for row in chunk_calls}
        await connection.executemany(insert_event, [
            event for event in history.answers if event[1] in ids])
    await connection.executemany(insert_event, history.events)
    await connection.executemany(
        "INSERT INTO call_labels (call_id, label, labelled_by, labelled_at) "
        "VALUES ($1, $2, 'sari', $3)", history.labels)
    await connection.executemany(
        "INSERT INTO operator_state_changes (operator, queue, at, state, paused, pause_reason,"
        " shift_day, shift_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING",
        [(*change, *astuple(CALENDAR.slot_for(change[2]))) for change in history.changes])
    return history


def current_labels(history: History) -> dict[str, str]:
    """Call id -> its current label: the latest by instant, then by order of entry."""
    latest: dict[str, tuple[datetime, int, str]] = {}
    for index, (call_id, label, at) in enumerate(history.labels):
        if call_id not in latest or (at, index) > latest[call_id][:2]:
            latest[call_id] = (at, index, label)
    return {call_id: label for call_id, (_, _, label) in latest.items()}


def disposition(row: dict[str, Any]) -> str:
    """``call_outcomes.disposition`` of a ``calls`` row (migration 0015's view)."""
    if row["answered_at"] is not None or row["completed_at"] is not None:
        return "answered"
    if row["abandoned_at"] is not None:
        return "abandoned"
    if row["vanished"]:
        return "vanished"
    if row["queue"] is None and row["ended_at"] is not None:
        return "ended_in_ivr"
    if row["ended_at"] is None:
        return "in_progress"
    return "ended_in_queue"


def call_rows(history: History) -> list[CallRow]:
    """The reference's rows of the history's calls (no rung operators)."""
    labels = current_labels(history)
    return [CallRow(
        call_id=row["call_id"], line=row["line"], shift_day=row["shift_day"],
        shift_name=row["shift_name"], category=row["ivr_category"], queue=row["queue"],
        joined_at=row["queue_joined_at"], answered_at=row["answered_at"],
        operator=row["operator"], hold_seconds=row["wait_seconds"],
        talk_seconds=row["talk_seconds"], completed_at=row["completed_at"],
        ended_at=row["ended_at"], disposition=disposition(row),
        label=Label(labels[row["call_id"]]) if row["call_id"] in labels else None,
    ) for row in history.calls]


def live_call(row: dict[str, Any], label: str | None) -> LiveCall:
    """A history's ``calls`` row as the wallboard's counters read it when seeded."""
    return LiveCall(
        call_id=row["call_id"], arrived_at=row["arrived_at"], shift_day=row["shift_day"],
        shift_name=row["shift_name"], queue=row["queue"], joined_at=row["queue_joined_at"],
        answered_at=row["answered_at"], completed_at=row["completed_at"],
        abandoned_at=row["abandoned_at"], ended_at=row["ended_at"], vanished=row["vanished"],
        hold_seconds=row["wait_seconds"], talk_seconds=row["talk_seconds"], label=label)


def same(mine: Figures, reference: Figures) -> None:
    """Equal figures: counts, ratios and the p90 exactly; the two means are sums of floats in
    a different order (exact integers elsewhere), so they agree to 1e-12 relatively."""
    def close(a: float | None, b: float | None) -> bool:
        return a is b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))

    # Floats, as the reference gives them (a Decimal would not serialise to JSON).
    assert all(value is None or type(value) is float for value in (
        mine.mean_wait, mine.p90_wait, mine.mean_talk, mine.mean_wrapup))
    assert (mine.calls, mine.offered, mine.answered, mine.abandoned, dict(mine.service_levels),
            mine.p90_wait, mine.mean_talk, mine.labelled, mine.nuisance) == (
        reference.calls, reference.offered, reference.answered, reference.abandoned,
        dict(reference.service_levels), reference.p90_wait, reference.mean_talk,
        reference.labelled, reference.nuisance)
    assert close(mine.mean_wait, reference.mean_wait), (mine.mean_wait, reference.mean_wait)
    assert close(mine.mean_wrapup, reference.mean_wrapup), (mine.mean_wrapup,
                                                            reference.mean_wrapup)


def call_facts(row: dict[str, Any], rng: random.Random) -> list[CallFact] | None:
    """Facts the listener could have tracked for a ``calls`` row of a random history, in
    order, that make the call store write a row with the same figures; None for a row no
    facts make (an answer with no instant, a completion with no talk time, a queue with no
    join: rows of older versions or of the backfill)."""
    call_id, arrived = row["call_id"], row["arrived_at"]
    answered = row["operator"] is not None
    if (row["queue"] is not None and row["queue_joined_at"] is None) or (
            answered and (row["answered_at"] is None or row["queue"] is None)) or (
            row["completed_at"] is not None and row["talk_seconds"] is None):
        return None
    first_seen = arrived
    if rng.random() < 0.1:  # first seen later (a resync), the arrival learnt afterwards
        first_seen = arrived + seconds(rng, 0, 30)
    facts: list[CallFact] = [CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}",
                                         "081234567890", "", row["line"] or "", first_seen)]
    if first_seen != arrived:
        facts.append(CallStarted(call_id, call_id, "", "", "", "", arrived))
    facts.append(IvrVariablesSet(call_id, (("category", row["ivr_category"] or ""),),
                                 arrived + timedelta(seconds=1)))
    queue = row["queue"]
    if queue is not None:
        joined = row["queue_joined_at"]
        facts.append(QueueJoined(call_id, queue, 1, joined))
        if rng.random() < 0.2:  # overflowed: the first queue counts
            facts += [QueueLeft(call_id, queue, 1, joined + timedelta(seconds=1)),
                      QueueJoined(call_id, "all-operators", 1, joined + timedelta(seconds=1))]
        for operator in rng.sample(OPERATORS, rng.choice([0, 1, 2])):
            facts.append(OperatorRung(call_id, queue, operator, joined))
    hold = row["wait_seconds"] if row["wait_seconds"] is not None else rng.randint(0, 40)
    if answered:
        facts.append(OperatorAnswered(call_id, queue, row["operator"], hold, 1,
                                      row["answered_at"]))
        if rng.random() < 0.1:  # reported again later (another queue's member): the first wins
            facts.append(OperatorAnswered(call_id, "all-operators", rng.choice(OPERATORS),
                                          hold + 5, 1, row["answered_at"] + timedelta(seconds=5)))
        if row["completed_at"] is not None:
            facts.append(OperatorCompleted(call_id, queue, row["operator"], hold,
                                           row["talk_seconds"], "caller", row["completed_at"]))
    if row["abandoned_at"] is not None:
        facts.append(QueueAbandoned(call_id, queue or "", 1, 1, 5, row["abandoned_at"]))
    if row["ended_at"] is not None:
        facts.append(CallVanished(call_id, row["ended_at"]) if row["vanished"]
                     else CallEnded(call_id, 16, "Normal Clearing", row["ended_at"]))
    return facts


def interleaved(rng: random.Random, calls: list[list[CallFact]]) -> list[CallFact]:
    """The calls' facts interleaved at random, each call's in its order, with some facts
    tracked twice (a replay after a reconnection) and operator state changes between."""
    queues = [list(facts) for facts in calls if facts]
    stream: list[CallFact] = []
    while queues:
        index = rng.randrange(len(queues))
        fact = queues[index].pop(0)
        stream.append(fact)
        if not queues[index]:
            queues.pop(index)
        if rng.random() < 0.05:
            stream.append(rng.choice(stream))  # a replayed fact changes nothing
        if rng.random() < 0.05:
            stream.append(OperatorStateChanged(rng.choice(OPERATORS), "medical", "idle",
                                               False, "", fact.at))
    return stream


# -- holding the rollup refresher mid-way ----------------------------------------------------

_GATE_KEY: Final = 1_120_012  # an advisory lock key of the tests' own


class RollupGate:
    """Holds every rollup refresher of a test database just before it stores a rollup: its
    snapshot taken, its rollup about to be computed and inserted. A statement trigger on
    report_rollups (installed as the schema's owner: the line may not) waits for an advisory
    lock the gate holds while shut. Writes never fire it (they only delete rollup rows)."""

    def __init__(self, holder: asyncpg.Connection) -> None:
        self._holder = holder

    @classmethod
    async def shut(cls, owner_dsn: str) -> RollupGate:
        """A gate on the database of ``owner_dsn``, shut."""
        holder = await asyncpg.connect(owner_dsn)
        await holder.execute(f"""
            CREATE OR REPLACE FUNCTION test_rollup_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock_shared({_GATE_KEY});
                RETURN NULL;
            END
            $$;
            CREATE OR REPLACE TRIGGER test_rollup_gate BEFORE INSERT ON report_rollups
                FOR EACH STATEMENT EXECUTE FUNCTION test_rollup_gate();
            SELECT pg_advisory_lock({_GATE_KEY});
        """)
        return cls(holder)

    async def open(self) -> None:
        """Let the refreshers through, and every later one."""
        if not self._holder.is_closed():
            await self._holder.execute(f"SELECT pg_advisory_unlock({_GATE_KEY})")
            await self._holder.close()


async def waiting_for_lock(connection: asyncpg.Connection, pid: int) -> str | None:
    """What the backend ``pid`` waits for, if a lock (``advisory`` at a shut
    :class:`RollupGate`, ``relation`` at a table lock, ...): None while it does not."""
    found: str | None = await connection.fetchval(
        "SELECT wait_event FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
        pid)
    return found


@contextlib.asynccontextmanager
async def refresh_at_the_gate(owner_dsn: str, refresher: asyncpg.Connection,
                              watcher: asyncpg.Connection, slot: ShiftSlot, now: datetime,
                              automatic: float) -> AsyncIterator[asyncio.Task[int]]:
    """A refresh of ``slot`` on ``refresher``, held at a shut :class:`RollupGate` (its
    snapshot taken, its rollup not yet stored) for the block, as ``watcher`` sees it; let
    through when the block ends. The task gives how many slots it rolled up."""
    gate = await RollupGate.shut(owner_dsn)
    try:
        refresh = asyncio.create_task(
            ReportRepository().refresh_rollups(refresher, [slot], now, automatic))
        await eventually("the refresher at the gate", lambda: waiting_for_lock(
            watcher, refresher.get_server_pid()))
        yield refresh
    finally:
        await gate.open()


async def browser_phone(connection: asyncpg.Connection, interface: str) -> None:
    """The phone at ``interface`` is a browser softphone (rtp_timeout 30 s; a phone not so
    registered is a desk phone, 60 s)."""
    await connection.execute(
        "INSERT INTO operators (operator) VALUES ($1) ON CONFLICT DO NOTHING", interface)
    await DeskRepository().set_phone_secret(connection, interface, "asterisk", "0" * 32,
                                            PhoneKind.BROWSER)


def dead_phone_calls(at: datetime, desk: str, browser: str
                     ) -> tuple[list[CallFact], list[CallFact]]:
    """Two calls whose operator's phone died mid-call: Asterisk hung its leg up for silence,
    so the operator's leg ended the talk ('agent') and the caller's channel ended with cause
    44. The first arrives at ``at``: ``desk`` answers 10 s later and its phone dies, Asterisk
    counting 100 s of talk (the media stopped 60 s before: 40 s). The second an hour later:
    ``desk`` answers 10 s in and blind-transfers the caller 20 s later to an agency that does
    not answer; the caller queues again at 70 s, ``browser`` answers at 80 s and its browser
    dies, Asterisk counting 90 s (the media stopped 30 s before: 60 s). Each call's facts but
    its end, and the ends."""
    cause = (44, "Requested channel not available")
    first, second = "1741572000.1", "1741575600.2"
    done = at + timedelta(seconds=110)
    later = at + timedelta(hours=1)
    handed = later + timedelta(seconds=30)
    again = later + timedelta(seconds=80)
    dead = again + timedelta(seconds=90)
    talked: list[CallFact] = [
        CallStarted(first, first, f"PJSIP/carrier-{first}", "081234567890", "", "112", at),
        QueueJoined(first, "medical", 1, at + timedelta(seconds=5)),
        OperatorAnswered(first, "medical", desk, 5, 1, at + timedelta(seconds=10)),
        OperatorCompleted(first, "medical", desk, 5, 100, "agent", done),
        CallStarted(second, second, f"PJSIP/carrier-{second}", "081234567891", "", "112",
                    later),
        QueueJoined(second, "medical", 1, later + timedelta(seconds=5)),
        OperatorAnswered(second, "medical", desk, 5, 1, later + timedelta(seconds=10)),
        OperatorCompleted(second, "medical", desk, 5, 20, "transfer", handed),
        QueueJoined(second, "medical", 1, later + timedelta(seconds=70)),
        OperatorAnswered(second, "medical", browser, 10, 1, again),
        OperatorCompleted(second, "medical", browser, 10, 90, "agent", dead)]
    return talked, [CallEnded(first, *cause, done), CallEnded(second, *cause, dead)]
