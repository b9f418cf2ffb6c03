"""The wallboard's live counters against the call store and the reports' reference in a real
PostgreSQL: random histories told as facts (interleaved, some replayed, some calls first seen
through a later sighting) written by the call store in random batches and labelled; the
counters kept from those facts alone, and the counters seeded from the database's calls, both
equal the reports' definitions over the rows the store wrote. On a cluster node, the wallboard
follows the other nodes' calls as the call store writes them, with no seed: their counters and
their callers waiting (on the board until answered, abandoned or ended on their node, or until
their node is lost)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import pytest

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    OperatorAnswered,
    OperatorCompleted,
    OperatorLeft,
    QueueAbandoned,
    QueueJoined,
)
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftSlot
from telephony.calls.store import CallRepository, LegRepository
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.reports.model import ChangedCalls, Figures, LiveCall, Period, day_bounds
from telephony.reports.service import ReportConfig, ReportService
from telephony.reports.store import ReportRepository
from telephony.settings import Settings
from telephony.transfers.model import Step
from telephony.transfers.store import TransferStore
from telephony.wallboard.counters import ShiftCounters
from telephony.wallboard.service import WallboardService
from telephony.wallboard.state import LiveBoard
from tests.support.polling import eventually
from tests.support.report_histories import (
    CALENDAR,
    DAY,
    SPAN,
    START,
    browser_phone,
    call_facts,
    dead_phone_calls,
    interleaved,
    random_history,
    same,
)
from tests.support.reports_oracle import reference_day
from tests.support.web import make_context

T = TypeVar("T")


@pytest.mark.parametrize("seed", range(3))
async def test_counters_kept_from_facts_equal_the_reports_over_the_stored_calls(
        database_dsn: str, seed: int) -> None:
    rng = random.Random(500 + seed)
    now = START + SPAN * rng.uniform(0.6, 1.1)
    history = random_history(rng, 200, now)
    # Only the calls facts can tell: the store then holds no other.
    told = {row["call_id"]: facts for row in history.calls
            if (facts := call_facts(row, rng)) is not None}
    stream = interleaved(rng, list(told.values()))
    from_facts = ShiftCounters(CALENDAR)
    from_facts.seed(DAY, [])
    connection = await asyncpg.connect(database_dsn)
    try:
        written = 0
        while written < len(stream):  # as the listener's recorder: batches of any size
            batch = stream[written:written + rng.choice([1, 7, 50, 500])]
            await CallRepository(CALENDAR).apply(connection, batch)
            from_facts.apply(batch)
            written += len(batch)
        labels = [entry for entry in history.labels if entry[0] in told]
        await connection.executemany(
            "INSERT INTO call_labels (call_id, label, labelled_by, labelled_at) "
            "VALUES ($1, $2, 'sari', $3)", labels)
        for _, _, (call_id, label, _) in sorted(
                (entry[2], index, entry) for index, entry in enumerate(labels)):
            from_facts.labelled(call_id, label)
        for day in (DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)):
            seeded = ShiftCounters(CALENDAR)
            seeded.seed(day, await ReportRepository().live_calls(connection, day))
            first, last = day_bounds(CALENDAR, day)
            for at in sorted([first + (last - first) * rng.random() for _ in range(2)]
                             + [CALENDAR.bounds(ShiftSlot(day, name))[0] + timedelta(hours=3)
                                for name in CALENDAR.names]):
                slot = CALENDAR.slot_for(at)
                whole = (await reference_day(connection, Period(day, day), at)).figures
                shift = (await reference_day(connection, Period(day, day, slot.name), at)
                         ).figures
                for counters in (from_facts, seeded):
                    live = counters.live(at, {})
                    assert live is not None and live.shift == slot
                    same(live.day_figures, whole)
                    same(live.shift_figures, shift)
    finally:
        await connection.close()


@pytest.mark.parametrize("completion_first", [False, True])
async def test_a_three_way_call_the_operator_left_counts_as_the_database_records_it(
        database_dsn: str, completion_first: bool) -> None:
    """The operator leaves a three-way call 30.2 s after answering; Asterisk's completion
    at the call's end says 120 s. The counters kept from the facts and the leave, and those
    seeded from the rows (then given Asterisk's completion again, as the journal does), both
    equal the reports over the rows migration 0047 ended at the leave, whichever of the leave
    and the completion came first."""
    call, operator = "1741570000.1", "PJSIP/op1001"
    answered = START + timedelta(hours=2, seconds=8.4)
    told: list[CallFact] = [
        CallStarted(call, call, "PJSIP/carrier-1", "0812", "", "112", answered - timedelta(
            seconds=8)),
        QueueJoined(call, "fire", 1, answered - timedelta(seconds=3)),
        OperatorAnswered(call, "fire", operator, 3, 1, answered)]
    completed = OperatorCompleted(call, "fire", operator, 3, 120, "caller",
                                  answered + timedelta(seconds=120))
    store = CallRepository(CALENDAR)
    from_facts = ShiftCounters(CALENDAR)
    from_facts.seed(DAY, [])
    from_facts.apply(told)
    connection = await asyncpg.connect(database_dsn)
    try:
        await store.apply(connection, told)
        leg_id = await LegRepository().open(
            connection, kind=LegKind.CONFERENCE, call_id=call, incident_id=None,
            operator=operator, actor="sari", number="0275321113", target="")

        async def leave() -> None:
            at = await TransferStore().add_step(connection, leg_id, Step.LEAVE, "sari",
                                                answered + timedelta(seconds=30.2))
            from_facts.apply([OperatorLeft(call, operator, at)])

        async def complete() -> None:
            await store.apply(connection, [completed])
            from_facts.apply([completed])

        for step in (complete, leave) if completion_first else (leave, complete):
            await step()
        seeded = ShiftCounters(CALENDAR)
        seeded.seed(DAY, await ReportRepository().live_calls(connection, DAY))
        seeded.apply([completed])
        now = answered + timedelta(minutes=5)
        reference = (await reference_day(connection, Period(DAY, DAY), now)).figures
        assert reference.mean_talk == 30.0
        for counters in (from_facts, seeded):
            live = counters.live(now, {})
            assert live is not None
            same(live.day_figures, reference)
    finally:
        await connection.close()


@pytest.mark.parametrize("completion_first", [False, True])
async def test_a_call_two_operators_answered_counts_their_talks_added_up_as_the_reports(
        database_dsn: str, completion_first: bool) -> None:
    """A answers and blind-transfers the caller to an agency that does not answer (Asterisk
    completes A's talk, 40 s); the caller queues again and B answers, takes an agency into a
    three-way call and leaves it 30.2 s after answering; Asterisk's completion at the call's
    end says 200 s. The reports count the call once with its talk A's and B's added up, B's
    ended at the leave: 70 s. The counters kept from the facts, those seeded after A's part
    (B's facts then followed live), those seeded at the end (Asterisk's completion applied
    again) and those following the rows as another cluster node's all say the same."""
    call, first, second = "1741570100.1", "PJSIP/op1001", "PJSIP/op1002"
    answered = START + timedelta(hours=2, seconds=8.4)
    again = answered + timedelta(seconds=80)
    before: list[CallFact] = [
        CallStarted(call, call, "PJSIP/carrier-1", "0812", "", "112", answered - timedelta(
            seconds=8)),
        QueueJoined(call, "fire", 1, answered - timedelta(seconds=3)),
        OperatorAnswered(call, "fire", first, 3, 1, answered),
        OperatorCompleted(call, "fire", first, 3, 40, "transfer",
                          answered + timedelta(seconds=40)),
        QueueJoined(call, "fire", 1, answered + timedelta(seconds=70)),
        OperatorAnswered(call, "fire", second, 13, 1, again)]
    completed = OperatorCompleted(call, "fire", second, 13, 200, "caller",
                                  again + timedelta(seconds=200))
    ended = CallEnded(call, 16, "Normal Clearing", again + timedelta(seconds=200))
    store = CallRepository(CALENDAR)
    from_facts = ShiftCounters(CALENDAR)
    from_facts.seed(DAY, [])
    from_facts.apply(before)
    connection = await asyncpg.connect(database_dsn)
    try:
        await store.apply(connection, before[:4])
        # Restarted after A's part: the seed carries it, B's part is followed live.
        restarted = ShiftCounters(CALENDAR)
        restarted.seed(DAY, await ReportRepository().live_calls(connection, DAY))
        restarted.apply(before[4:])
        await store.apply(connection, before[4:])
        leg_id = await LegRepository().open(
            connection, kind=LegKind.CONFERENCE, call_id=call, incident_id=None,
            operator=second, actor="budi", number="0275321113", target="")

        async def leave() -> None:
            at = await TransferStore().add_step(connection, leg_id, Step.LEAVE, "budi",
                                                again + timedelta(seconds=30.2))
            for counters in (from_facts, restarted):
                counters.apply([OperatorLeft(call, second, at)])

        async def complete() -> None:
            await store.apply(connection, [completed, ended])
            for counters in (from_facts, restarted):
                counters.apply([completed, ended])

        for step in (complete, leave) if completion_first else (leave, complete):
            await step()
        seeded = ShiftCounters(CALENDAR)
        seeded.seed(DAY, await ReportRepository().live_calls(connection, DAY))
        seeded.apply([completed, ended])
        followed = ShiftCounters(CALENDAR)
        followed.seed(DAY, [])
        for row in (await ReportRepository().changed_calls(
                connection, "node9", START - timedelta(days=1))).calls:
            followed.follow(row)
        now = again + timedelta(minutes=5)
        reference = (await reference_day(connection, Period(DAY, DAY), now)).figures
        assert (reference.answered, reference.mean_talk) == (1, 70.0)
        for counters in (from_facts, restarted, seeded, followed):
            live = counters.live(now, {})
            assert live is not None
            same(live.day_figures, reference)
            same(live.shift_figures, reference)
    finally:
        await connection.close()


@pytest.mark.parametrize("hangup_first", [False, True])
async def test_the_talk_of_a_phone_that_died_counts_as_the_database_records_it(
        database_dsn: str, hangup_first: bool) -> None:
    """A desk phone dies 40 s into a call and a browser 60 s into its part of a call handed
    on (report_histories.dead_phone_calls): Asterisk counts 60 and 30 s more, up to its
    hang-ups for silence (cause 44), and migration 0055 ends the rows' talks where the media
    stopped. The counters kept from the facts, those seeded halfway (the rest followed
    live), those seeded at the end (every fact applied again, as the journal does) and those
    following the rows as another cluster node's all equal the reports over the rows,
    whichever of the completions and the hang-ups came first."""
    desk, browser = "PJSIP/op1001", "PJSIP/op1002"
    talked, ends = dead_phone_calls(START + timedelta(hours=1), desk, browser)
    first, rest = (ends, talked) if hangup_first else (talked, ends)
    store = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await browser_phone(connection, browser)
        timeouts = await ReportRepository().rtp_timeouts(connection)
        from_facts = ShiftCounters(CALENDAR)
        from_facts.seed(DAY, [], timeouts)
        await store.apply(connection, first)
        from_facts.apply(first)
        restarted = ShiftCounters(CALENDAR)
        restarted.seed(DAY, await ReportRepository().live_calls(connection, DAY), timeouts)
        restarted.apply(first)
        await store.apply(connection, rest)
        for counters in (from_facts, restarted):
            counters.apply(rest)
        seeded = ShiftCounters(CALENDAR)
        seeded.seed(DAY, await ReportRepository().live_calls(connection, DAY), timeouts)
        seeded.apply([*talked, *ends])
        followed = ShiftCounters(CALENDAR)
        followed.seed(DAY, [])
        for row in (await ReportRepository().changed_calls(
                connection, "node9", START - timedelta(days=1))).calls:
            followed.follow(row)
        now = START + timedelta(hours=3)
        reference = (await reference_day(connection, Period(DAY, DAY), now)).figures
        # 40 s, and the second's 20 s and 60 s.
        assert (reference.answered, reference.mean_talk) == (2, 60.0)
        for counters in (from_facts, restarted, seeded, followed):
            live = counters.live(now, {})
            assert live is not None
            same(live.day_figures, reference)
            same(live.shift_figures, reference)
    finally:
        await connection.close()


async def test_an_operator_who_answered_a_call_twice_counts_once_and_talks_since_the_last(
        database_dsn: str) -> None:
    """A answers and blind-transfers the caller to an agency that does not answer (Asterisk
    completes A's talk, 40 s); the caller queues again, B answers (30 s) and tries another
    agency, in vain; the caller queues again and A answers again. The line restarts (or
    its AMI session resyncs): the counters are seeded from the rows and the journal's facts
    applied again. Asterisk's completion of A's first talk, applied again, counted it a
    second time (160 s for 120), and the board showed A talking since their first answer,
    2 minutes too early. After A's second talk (50 s) the counters say what the reports say,
    and the board has A talking since their second answer."""
    call, first, second = "1741570200.1", "PJSIP/op1001", "PJSIP/op1002"
    answered = START + timedelta(hours=2, seconds=8.4)
    middle = answered + timedelta(seconds=60)
    again = answered + timedelta(seconds=120)
    journal: list[CallFact] = [
        CallStarted(call, call, "PJSIP/carrier-1", "0812", "", "112", answered - timedelta(
            seconds=8)),
        QueueJoined(call, "fire", 1, answered - timedelta(seconds=3)),
        OperatorAnswered(call, "fire", first, 3, 1, answered),
        OperatorCompleted(call, "fire", first, 3, 40, "transfer",
                          answered + timedelta(seconds=40)),
        QueueJoined(call, "fire", 1, answered + timedelta(seconds=55)),
        OperatorAnswered(call, "fire", second, 8, 1, middle),
        OperatorCompleted(call, "fire", second, 8, 30, "transfer",
                          middle + timedelta(seconds=30)),
        QueueJoined(call, "fire", 1, middle + timedelta(seconds=45)),
        OperatorAnswered(call, "fire", first, 13, 1, again)]
    completed = OperatorCompleted(call, "fire", first, 13, 50, "caller",
                                  again + timedelta(seconds=50))
    ended = CallEnded(call, 16, "Normal Clearing", again + timedelta(seconds=50))
    store = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await store.apply(connection, journal)
        picture = await ReportRepository().live_picture(connection, again + timedelta(
            seconds=5))
        board = LiveBoard(wrapup_seconds=0)
        board.seed(picture)
        (talking,) = [view for view in board.view(again + timedelta(seconds=5)).operators
                      if view.operator == first]
        assert (talking.state.value, talking.since) == ("talking", again)
        seeded = ShiftCounters(CALENDAR)
        seeded.seed(DAY, await ReportRepository().live_calls(connection, DAY))
        seeded.apply(journal)  # the journal's facts, applied again after the seed
        await store.apply(connection, [completed, ended])
        seeded.apply([completed, ended])
        now = again + timedelta(minutes=5)
        reference = (await reference_day(connection, Period(DAY, DAY), now)).figures
        assert (reference.answered, reference.mean_talk) == (1, 120.0)
        live = seeded.live(now, {})
        assert live is not None
        same(live.day_figures, reference)
    finally:
        await connection.close()


async def test_an_operator_who_alone_answered_a_call_again_is_talking_after_a_restart(
        database_dsn: str) -> None:
    """A answers, a blind transfer nobody takes sends the caller back to the queues and A
    answers again, out of every queue by then. After a restart the board did not list A at
    all: the call's row keeps the first talk's completion. A is talking since the second
    answer."""
    call, operator = "1741570300.1", "PJSIP/op1001"
    answered = START + timedelta(hours=2, seconds=8.4)
    again = answered + timedelta(seconds=80)
    connection = await asyncpg.connect(database_dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, [
            CallStarted(call, call, "PJSIP/carrier-1", "0812", "", "112",
                        answered - timedelta(seconds=8)),
            QueueJoined(call, "fire", 1, answered - timedelta(seconds=3)),
            OperatorAnswered(call, "fire", operator, 3, 1, answered),
            OperatorCompleted(call, "fire", operator, 3, 40, "transfer",
                              answered + timedelta(seconds=40)),
            QueueJoined(call, "fire", 1, answered + timedelta(seconds=70)),
            OperatorAnswered(call, "fire", operator, 13, 1, again)])
        board = LiveBoard(wrapup_seconds=0)
        board.seed(await ReportRepository().live_picture(connection,
                                                         again + timedelta(seconds=5)))
        views = board.view(again + timedelta(seconds=5)).operators
        assert [(v.operator, v.state.value, v.since) for v in views] == [
            (operator, "talking", again)]
    finally:
        await connection.close()


@pytest.mark.parametrize("seed", range(2))
async def test_random_answers_and_leaves_of_several_operators_count_as_the_reports(
        database_dsn: str, seed: int) -> None:
    """Calls answered by up to three phones in turn (each now and then answering again,
    the tracker restating a completion, leaving a three-way call before or after Asterisk's
    completion, answer facts tracked twice, half the calls ended by the last phone dying,
    a browser or a desk phone, its hang-up for silence recorded before or after Asterisk's
    completion): the counters kept from the facts and those seeded mid-way equal the
    reports' reference over what the database recorded."""
    rng = random.Random(900 + seed)
    store = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await browser_phone(connection, "PJSIP/op1002")
        timeouts = await ReportRepository().rtp_timeouts(connection)
        from_facts = ShiftCounters(CALENDAR)
        from_facts.seed(DAY, [], timeouts)
        steps: list[CallFact | OperatorLeft] = []
        for n in range(12):
            dead = rng.random() < 0.5  # the last phone dies: its leg ends the call, cause 44
            call = f"1741571000.{n}"
            t = START + timedelta(hours=1, minutes=5 * n, microseconds=rng.randint(0, 10**6))
            steps += [CallStarted(call, call, "PJSIP/c", "0812", "", "112", t),
                      QueueJoined(call, "fire", 1, t + timedelta(seconds=2))]
            t += timedelta(seconds=5)
            for operator in rng.sample(["PJSIP/op1001", "PJSIP/op1002", "PJSIP/op1003"],
                                       rng.randint(1, 3)):
                for _ in range(rng.choice([1, 1, 2])):
                    t += timedelta(microseconds=rng.randint(10**6, 20 * 10**6))
                    answer = OperatorAnswered(call, "fire", operator, 3, 1, t)
                    last = len(steps)  # the last talk's steps start here
                    steps.append(answer)
                    talk = timedelta(microseconds=rng.randint(5 * 10**6, 90 * 10**6))
                    leave = t + talk * rng.random()
                    done = t + talk
                    # Left a three-way call: recorded before Asterisk's completion, after
                    # it, or not at all.
                    left = rng.choice(["before", "after", None])
                    if left == "before":
                        steps.append(OperatorLeft(call, operator, leave))
                    completion = OperatorCompleted(call, "fire", operator, 3,
                                                   round(talk.total_seconds()),
                                                   "transfer" if dead else "caller", done)
                    steps.append(completion)
                    if rng.random() < 0.2:  # restated by the tracker
                        steps.append(replace(
                            completion, talk_seconds=completion.talk_seconds + 3,
                            at=done + timedelta(seconds=3)))
                        done += timedelta(seconds=3)
                    if left == "after":
                        steps.append(OperatorLeft(call, operator, leave))
                    if rng.random() < 0.2:
                        steps.append(answer)  # tracked twice
                    t = done
            if not dead:
                steps.append(CallEnded(call, 16, "", t))
                continue
            # The last completion (and its restatement) was the dead phone's leg ending it.
            steps[last:] = [replace(step, ended_by="agent")
                            if isinstance(step, OperatorCompleted) else step
                            for step in steps[last:]]
            ended = CallEnded(call, 44, "Requested channel not available", t)
            if rng.random() < 0.5:  # the hang-up recorded before the completion
                completed = next(i for i in range(last, len(steps))
                                 if isinstance(steps[i], OperatorCompleted))
                steps.insert(completed, ended)
            else:
                steps.append(ended)
        restarted: ShiftCounters | None = None
        middle = len(steps) // 2
        for index, step in enumerate(steps):
            if index == middle:
                restarted = ShiftCounters(CALENDAR)
                restarted.seed(DAY, await ReportRepository().live_calls(connection, DAY),
                               timeouts)
            if isinstance(step, OperatorLeft):
                leg_id = await LegRepository().open(
                    connection, kind=LegKind.CONFERENCE, call_id=step.call_id,
                    incident_id=None, operator=step.operator, actor="sari",
                    number="0275321113", target="")
                recorded = await TransferStore().add_step(connection, leg_id, Step.LEAVE,
                                                          "sari", step.at)
                told: CallFact | OperatorLeft = replace(step, at=recorded)
            else:
                await store.apply(connection, [step])
                told = step
            for counters in (from_facts, restarted):
                if counters is not None:
                    counters.apply([told])
        now = START + timedelta(hours=3)
        reference = (await reference_day(connection, Period(DAY, DAY), now)).figures
        assert restarted is not None
        for counters in (from_facts, restarted):
            live = counters.live(now, {})
            assert live is not None
            same(live.day_figures, reference)
    finally:
        await connection.close()


async def write(dsn: str, *facts: CallFact) -> None:
    """What a node's recorder does with its facts: the call store writes them."""
    connection = await asyncpg.connect(dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, facts)
    finally:
        await connection.close()


@pytest.fixture
async def node_wallboard(database_dsn: str, settings: Settings
                         ) -> AsyncIterator[tuple[WallboardService, ReportService]]:
    """The wallboard of cluster node ``node1``, running, seeded once."""
    async with running_node_wallboard(database_dsn, settings) as running:
        yield running


@contextlib.asynccontextmanager
async def running_node_wallboard(database_dsn: str, settings: Settings
                                 ) -> AsyncIterator[tuple[WallboardService, ReportService]]:
    """The wallboard of cluster node ``node1``, running, seeded once."""
    database = Database(replace(settings, database_dsn=database_dsn))
    reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=0))
    wallboard = WallboardService(
        LiveBoard(wrapup_seconds=0), reports,
        make_context(replace(settings, database_dsn=database_dsn), database).dispatches,
        refresh_seconds=30.0, min_refresh_seconds=0.05, node="node1", follow_seconds=0.2)
    running = asyncio.create_task(wallboard.run())
    try:
        async def seeded() -> bool | None:
            return True if wallboard.snapshot().counters is not None else None
        await eventually("the first seed", seeded, within=10, interval=0.05)
        yield wallboard, reports
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()


async def test_a_cluster_nodes_counters_follow_the_other_nodes_calls_without_a_seed(
        node_wallboard: tuple[WallboardService, ReportService], database_dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    wallboard, reports = node_wallboard

    async def no_seed(day: object) -> list[LiveCall]:
        raise AssertionError("the counters were seeded again")

    monkeypatch.setattr(reports, "live_calls", no_seed)
    now = datetime.now(UTC)
    answered, abandoned = "node2-1741600400.1", "node3-1741600400.2"
    await write(database_dsn,
                CallStarted(answered, answered, "PJSIP/c", "0812", "", "112", now),
                QueueJoined(answered, "medical", 1, now + timedelta(seconds=1)))
    await write(database_dsn,
                CallStarted(abandoned, abandoned, "PJSIP/c", "0813", "", "112", now),
                QueueJoined(abandoned, "fire", 1, now + timedelta(seconds=1)),
                QueueAbandoned(abandoned, "fire", 1, 1, 30, now + timedelta(seconds=31)),
                CallEnded(abandoned, 16, "", now + timedelta(seconds=31)))
    # This node's own call, written but never tracked here: the facts tell it, not the rows.
    own = "node1-1741600400.3"
    await write(database_dsn, CallStarted(own, own, "PJSIP/c", "0814", "", "112", now),
                QueueJoined(own, "fire", 1, now))

    async def shift_figures(expected: tuple[int, ...]) -> Figures | None:
        counters = wallboard.snapshot().counters
        assert counters is not None
        figured = counters.shift_figures
        return figured if (figured.offered, figured.answered, figured.abandoned,
                           figured.nuisance) == expected else None

    await eventually("the other nodes' calls counted", lambda: shift_figures((2, 0, 1, 0)),
                     within=5, interval=0.05)
    # A later fact of node2's call, then a label given on node2's console.
    await write(database_dsn, OperatorAnswered(answered, "medical", "PJSIP/op1001", 4, 1,
                                               now + timedelta(seconds=5)))
    figured = await eventually("the answer counted", lambda: shift_figures((2, 1, 1, 0)),
                               within=5, interval=0.05)
    assert figured.mean_wait == 4.0
    connection = await asyncpg.connect(database_dsn)
    try:
        await connection.execute(
            "INSERT INTO call_labels (call_id, label, labelled_by, labelled_at) "
            "VALUES ($1, 'prank', 'sari', now())", answered)
    finally:
        await connection.close()
    await eventually("the label counted", lambda: shift_figures((2, 1, 1, 1)),
                     within=5, interval=0.05)


async def test_a_single_node_never_follows(database_dsn: str, settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    database = Database(replace(settings, database_dsn=database_dsn))
    reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=0))

    async def no_follow(node: str, since: datetime | None) -> None:
        raise AssertionError("a single node read other nodes' calls")

    monkeypatch.setattr(reports, "changed_calls", no_follow)
    wallboard = WallboardService(
        LiveBoard(wrapup_seconds=0), reports,
        make_context(replace(settings, database_dsn=database_dsn), database).dispatches)
    try:
        assert await wallboard.seed_counters()
    finally:
        await database.close()


async def test_a_failed_follow_is_logged_once_and_retried(
        node_wallboard: tuple[WallboardService, ReportService], database_dsn: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    wallboard, reports = node_wallboard
    real = reports.changed_calls
    failures = 0

    async def down(node: str, since: datetime | None) -> ChangedCalls:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise DatabaseUnavailable("PostgreSQL unavailable: test")
        return await real(node, since)

    monkeypatch.setattr(reports, "changed_calls", down)
    call_id = "node2-1741600400.9"
    now = datetime.now(UTC)
    await write(database_dsn, CallStarted(call_id, call_id, "PJSIP/c", "0812", "", "112", now),
                QueueJoined(call_id, "medical", 1, now))

    async def offered() -> int | None:
        counters = wallboard.snapshot().counters
        assert counters is not None
        return counters.shift_figures.offered or None

    assert await eventually("the call counted after the outage", offered, within=5,
                            interval=0.05) == 1
    assert failures == 3
    messages = [record.getMessage() for record in caplog.records
                if record.name == "telephony.wallboard"]
    assert sum("other nodes' calls not read" in message for message in messages) == 1
    assert sum("following the other nodes' calls again" in message for message in messages) == 1


async def test_a_seed_that_meets_a_database_outage_is_logged_once_and_retried(
        database_dsn: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # A line started during a database outage, or resynced in one, tries the seeds again
    # every few seconds for as long as it lasts: one line each said so at every try.
    database = Database(replace(settings, database_dsn=database_dsn))
    reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=0))
    real_picture, real_calls = reports.live_picture, reports.live_calls
    failures = {"board": 0, "counters": 0}

    def down(name: str, real: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def read(*args: object) -> T:
            if failures[name] < 5:
                failures[name] += 1
                raise DatabaseUnavailable("PostgreSQL unavailable: test")
            return await real(*args)
        return read

    monkeypatch.setattr(reports, "live_picture", down("board", real_picture))
    monkeypatch.setattr(reports, "live_calls", down("counters", real_calls))
    wallboard = WallboardService(
        LiveBoard(wrapup_seconds=0), reports,
        make_context(replace(settings, database_dsn=database_dsn), database).dispatches,
        seed_retry_seconds=0.01, min_refresh_seconds=0.01)
    running = asyncio.create_task(wallboard.run())
    try:
        async def seeded() -> bool | None:
            return True if wallboard.snapshot().counters is not None else None

        await eventually("the counters seeded after the outage", seeded, within=5,
                         interval=0.05)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()
    assert failures == {"board": 5, "counters": 5}
    messages = [record.getMessage() for record in caplog.records
                if record.name == "telephony.wallboard"]
    assert sum("wallboard not seeded" in message for message in messages) == 1, messages
    assert sum("counters not seeded" in message for message in messages) == 1, messages


async def queue_callers(wallboard: WallboardService, queue: str, count: int
                       ) -> list[tuple[int, str | None, str | None]] | None:
    """For :func:`eventually`: ``queue``'s callers on the board (position, node, line) once
    there are ``count``."""
    found = [q for q in wallboard.snapshot().board.queues if q.queue == queue]
    shown = [(c.position, c.node, c.line) for c in (found[0].callers if found else [])]
    return shown if len(shown) == count else None


async def test_a_cluster_nodes_board_shows_the_other_nodes_waiting_callers_until_they_leave(
        database_dsn: str, settings: Settings) -> None:
    now = datetime.now(UTC)
    early = "node2-1741600500.1"  # waiting before the wallboard starts: its seed has it
    await write(database_dsn,
                CallStarted(early, early, "PJSIP/c", "0812", "", "112", now),
                QueueJoined(early, "medical", 1, now))
    async with running_node_wallboard(database_dsn, settings) as (wallboard, _):
        assert await eventually("the caller waiting before the start", lambda: queue_callers(
            wallboard, "medical", 1), within=5, interval=0.05) == [(1, "node2", "112")]
        answered, abandoned, lost = ("node2-1741600500.2", "node3-1741600500.3",
                                     "node3-1741600500.4")
        for call_id, queue, second in ((answered, "medical", 2), (abandoned, "medical", 3),
                                       (lost, "fire", 4)):
            await write(database_dsn,
                        CallStarted(call_id, call_id, "PJSIP/c", "0812", "", "119", now),
                        QueueJoined(call_id, queue, 1, now + timedelta(seconds=second)))
        shown = await eventually("the other nodes' callers waiting", lambda: queue_callers(
            wallboard, "medical", 3), within=5, interval=0.05)
        assert [node for _, node, _ in shown] == ["node2", "node2", "node3"]
        # Written last, it may come in a later read than the medical ones.
        assert await eventually("the fire caller waiting", lambda: queue_callers(
            wallboard, "fire", 1), within=5, interval=0.05) == [(1, "node3", "119")]
        await write(database_dsn, OperatorAnswered(answered, "medical", "PJSIP/op1001", 4, 1,
                                                   now + timedelta(seconds=6)))
        await write(database_dsn,
                    QueueAbandoned(abandoned, "medical", 2, 1, 4, now + timedelta(seconds=7)),
                    CallEnded(abandoned, 16, "", now + timedelta(seconds=7)))
        await write(database_dsn, CallEnded(early, 16, "", now + timedelta(seconds=8)))
        await eventually("answered, abandoned and ended off the board", lambda: _no_queue(
            wallboard, "medical"), within=5, interval=0.05)
        # node3's Asterisk no longer answers this node's: its caller went with it, though
        # its row stays open.
        wallboard.node_liveness("node3", False)
        assert await _no_queue(wallboard, "fire")


async def _no_queue(wallboard: WallboardService, queue: str) -> bool | None:
    return None if any(q.queue == queue for q in wallboard.snapshot().board.queues) else True
