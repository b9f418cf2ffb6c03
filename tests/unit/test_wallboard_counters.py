"""The wallboard's live counters (telephony/wallboard/counters.py), kept from facts, against
the reports' definitions (``telephony.reports.model.figures``) over the same calls: random
histories (tests/support/report_histories.py) told as interleaved facts, some replayed, some
calls first seen through a later sighting, the counters seeded from the calls' rows before,
between and after the facts; and the cases one at a time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from telephony.calls.facts import (
    CallCut,
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    LiveFact,
    OperatorAnswered,
    OperatorCompleted,
    OperatorLeft,
    QueueAbandoned,
    QueueJoined,
)
from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.reports.model import CallRow, LiveCall, day_bounds, figures
from telephony.settings import DEFAULT_SHIFTS
from telephony.wallboard.counters import LiveCounters, ShiftCounters
from tests.support.report_histories import (
    CALENDAR,
    DAY,
    SPAN,
    START,
    call_facts,
    call_rows,
    current_labels,
    interleaved,
    live_call,
    random_history,
    same,
)


def check(counters: ShiftCounters, rows: list[CallRow], day: date, at: datetime) -> None:
    """The counters at ``at`` equal the reference over ``rows``."""
    live = counters.live(at, {})
    assert live is not None
    slot = CALENDAR.slot_for(at)
    assert live.shift == slot and slot.day == day
    same(live.day_figures, figures([r for r in rows if r.shift_day == day], at))
    same(live.shift_figures, figures([r for r in rows if (r.shift_day, r.shift_name) == (
        slot.day, slot.name)], at))


@pytest.mark.parametrize("seed", range(40))
def test_the_counters_equal_the_reports_definitions_on_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    now = START + SPAN * rng.uniform(0.6, 1.1)
    history = random_history(rng, 250, now)
    rows = call_rows(history)
    labels = current_labels(history)
    told = {row["call_id"]: call_facts(row, rng) for row in history.calls}
    stream = interleaved(rng, [facts for facts in told.values() if facts is not None])
    day = DAY + timedelta(days=rng.randrange(3))
    counters = ShiftCounters(CALENDAR)
    assert counters.live(now, {}) is None  # nothing to show before the seed
    counters.apply(stream[:rng.randrange(len(stream) + 1)])  # the seed replaces these
    if rng.random() < 0.5:
        # Seeded from what only the database knows, then every fact tracked so far again.
        counters.seed(day, [live_call(row, labels.get(row["call_id"]))
                            for row in history.calls if told[row["call_id"]] is None])
        counters.apply(stream)
    else:
        # Seeded from the database with every call, then the facts it may not have had yet:
        # a fact the calls already reflect changes nothing.
        counters.seed(day, [live_call(row, labels.get(row["call_id"]))
                            for row in history.calls])
        counters.apply(stream[rng.randrange(len(stream) + 1):])
    # Labels as they are given: the newest is the call's (of two at one instant, the later).
    for _, _, (call_id, label, _) in sorted(
            (entry[2], index, entry) for index, entry in enumerate(history.labels)):
        counters.labelled(call_id, label)
    first, last = day_bounds(CALENDAR, day)
    for at in sorted([first + (last - first) * rng.random() for _ in range(3)]
                     + [CALENDAR.bounds(ShiftSlot(day, name))[0] + timedelta(hours=4)
                        for name in CALENDAR.names]):
        check(counters, rows, day, at)


def earlier(row: LiveCall, rng: random.Random) -> LiveCall:
    """A row a call had before ``row``: later stages not reached yet, no label yet, maybe
    first seen later (its arrival, and so its shift, learnt afterwards) or through a later
    fact (no shift yet)."""
    stage = rng.randrange(4)
    changes: dict[str, Any] = {"label": None, "ended_at": None, "vanished": False}
    if stage < 3:
        changes |= {"completed_at": None, "talk_seconds": None}
    if stage < 2:
        changes |= {"answered_at": None, "hold_seconds": None, "abandoned_at": None}
    if stage < 1:
        changes |= {"queue": None, "joined_at": None}
    if row.arrived_at is not None and rng.random() < 0.3:
        first_seen = row.arrived_at + timedelta(seconds=rng.uniform(0, 600))
        slot = CALENDAR.slot_for(first_seen)
        changes |= {"arrived_at": first_seen, "shift_day": slot.day, "shift_name": slot.name}
    elif rng.random() < 0.1:
        changes |= {"arrived_at": None, "shift_day": None, "shift_name": None}
    return replace(row, **changes)


@pytest.mark.parametrize("seed", range(30))
def test_other_nodes_calls_followed_by_their_rows_equal_the_reports_definitions(
        seed: int) -> None:
    """A cluster node keeps its own calls from facts and the other nodes' calls from their
    rows as the database has them at each read: earlier rows, read again, in any order
    between calls and before the seed, then each call's last row (maybe twice)."""
    rng = random.Random(1000 + seed)
    now = START + SPAN * rng.uniform(0.6, 1.1)
    history = random_history(rng, 250, now)
    labels = current_labels(history)
    final = {row["call_id"]: live_call(row, labels.get(row["call_id"]))
             for row in history.calls}
    told = {row["call_id"]: call_facts(row, rng) for row in history.calls}
    foreign = [call_id for call_id, facts in told.items() if facts is None or rng.random() < 0.5]
    own = [facts for call_id, facts in told.items() if facts is not None
           and call_id not in foreign]
    day = DAY + timedelta(days=rng.randrange(3))
    counters = ShiftCounters(CALENDAR)
    assert not counters.follow(final[foreign[0]])  # not seeded: nothing kept
    # A seed read before some rows changed, then the reads and the own facts interleaved.
    counters.seed(day, [earlier(final[call_id], rng)
                        for call_id in rng.sample(foreign, len(foreign) // 3)])
    reads: list[list[LiveCall | CallFact]] = [
        [*(earlier(final[call_id], rng) for _ in range(rng.randrange(4))),
         *[final[call_id]] * rng.randint(1, 2)] for call_id in foreign]
    reads += [list(facts) for facts in own]
    while reads:
        index = rng.randrange(len(reads))
        item = reads[index].pop(0)
        if not reads[index]:
            reads.pop(index)
        if isinstance(item, LiveCall):
            counters.follow(item)
        else:
            counters.apply([item])
    for _, _, (call_id, label, _) in sorted(
            (entry[2], index, entry) for index, entry in enumerate(history.labels)
            if entry[0] not in foreign):
        counters.labelled(call_id, label)
    rows = call_rows(history)
    first, last = day_bounds(CALENDAR, day)
    for at in sorted([first + (last - first) * rng.random() for _ in range(3)]
                     + [CALENDAR.bounds(ShiftSlot(day, name))[0] + timedelta(hours=4)
                        for name in CALENDAR.names]):
        check(counters, rows, day, at)
    # Reading the same rows again (the overlap) moves nothing.
    assert not any(counters.follow(final[call_id]) for call_id in foreign)


def test_a_followed_call_moves_with_its_rows_and_is_forgotten_on_an_earlier_day() -> None:
    counters = seeded(day=DAY)
    waiting = LiveCall("node2-1.1", at(9), DAY, "pagi", "fire", at(9, 0, 5), None, None, None,
                       None, False, None, None, None)
    assert counters.follow(waiting)
    assert not counters.follow(waiting)
    assert live(counters, at(9, 1)).shift_figures.service_levels[10].denominator == 1
    answered = replace(waiting, answered_at=at(9, 0, 8), hold_seconds=3, label="prank")
    assert counters.follow(answered)
    figured = live(counters, at(9, 1)).shift_figures
    assert (figured.offered, figured.answered, figured.nuisance, figured.mean_wait) == (
        1, 1, 1, 3.0)
    yesterday = replace(answered, shift_day=DAY - timedelta(days=1))
    assert counters.follow(yesterday)
    assert (live(counters, at(9, 1)).day_figures.calls, len(counters)) == (0, 0)


def started(call_id: str, at: datetime) -> CallStarted:
    return CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112", at)


def at(hour: int, minute: int = 0, second: float = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=START.tzinfo) \
        + timedelta(seconds=second)


def seeded(*facts: LiveFact, day: date = DAY) -> ShiftCounters:
    counters = ShiftCounters(CALENDAR)
    counters.seed(day, [])
    counters.apply(facts)
    return counters


def live(counters: ShiftCounters, when: datetime) -> LiveCounters:
    result = counters.live(when, {"PJSIP/op1001": "Sari"})
    assert result is not None
    return result


def test_a_waiting_caller_becomes_a_miss_once_past_each_threshold() -> None:
    counters = seeded(started("1", at(8)), QueueJoined("1", "medical", 1, at(8, 0, 5)))
    levels = [live(counters, at(8, 0, 5 + wait)).shift_figures.service_levels
              for wait in (10, 10.000001, 20, 20.000001)]
    assert [(lv[10].denominator, lv[20].denominator) for lv in levels] == [
        (0, 0), (1, 0), (1, 0), (1, 1)]
    counters.apply([OperatorAnswered("1", "medical", "PJSIP/op1001", 25, 1, at(8, 0, 30))])
    figured = live(counters, at(9)).shift_figures
    assert (figured.answered, figured.mean_wait, figured.p90_wait) == (1, 25.0, 25.0)
    assert (figured.service_levels[10].numerator, figured.service_levels[20].denominator) == (
        0, 1)
    assert live(counters, at(9)).names == {"PJSIP/op1001": "Sari"}


def test_a_call_counts_in_the_shift_it_arrived_in_even_answered_in_the_next() -> None:
    counters = seeded(started("1", at(14, 59)), QueueJoined("1", "fire", 1, at(14, 59, 30)),
                      OperatorAnswered("1", "fire", "PJSIP/op1001", 60, 1, at(15, 0, 30)))
    evening = live(counters, at(15, 1))
    assert evening.shift == ShiftSlot(DAY, "siang")
    assert (evening.shift_figures.calls, evening.day_figures.answered) == (0, 1)
    # An earlier sighting of a call first seen in siang moves it to pagi, as the store does.
    counters.apply([started("2", at(15, 0, 10)), QueueJoined("2", "fire", 1, at(15, 0, 20))])
    assert live(counters, at(15, 1)).shift_figures.offered == 1
    counters.apply([started("2", at(14, 59, 50))])
    after = live(counters, at(15, 1))
    assert (after.shift_figures.offered, after.day_figures.offered) == (0, 2)


def test_a_new_day_starts_from_its_own_calls() -> None:
    counters = seeded(started("1", at(20)), QueueJoined("1", "fire", 1, at(20, 0, 5)),
                      started("2", at(7, 30, day=DAY + timedelta(days=1))))
    assert live(counters, at(22)).day_figures.calls == 1
    tomorrow = live(counters, at(8, day=DAY + timedelta(days=1)))
    assert tomorrow.shift == ShiftSlot(DAY + timedelta(days=1), "pagi")
    assert (tomorrow.day_figures.calls, tomorrow.shift_figures.calls) == (1, 1)
    # Yesterday's caller is answered today: still yesterday's call, in no figure of today.
    counters.apply([OperatorAnswered("1", "fire", "PJSIP/op1001", 9, 1,
                                     at(7, 31, day=DAY + timedelta(days=1)))])
    assert live(counters, at(8, day=DAY + timedelta(days=1))).day_figures.answered == 0
    # Yesterday's calls are forgotten: the late answer keeps a call of no shift, and today's.
    assert len(counters) == 2


def test_after_midnight_the_board_says_since_when_its_shift_and_day_count() -> None:
    """A centre in Jayapura (WIT, UTC+9) on a machine whose clock is UTC: at 00:30 local on
    the 11th the night shift began at 23:00 on the 10th and ends at 07:00, and "today" is
    still the operational day that began at 07:00 on the 10th, not the calendar day."""
    wit = ZoneInfo("Asia/Jayapura")
    counters = ShiftCounters(ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jayapura"))
    counters.seed(DAY, [])
    counters.apply([started("1", datetime(2025, 3, 10, 22, 0, tzinfo=wit)),
                    started("2", datetime(2025, 3, 11, 0, 10, tzinfo=wit))])
    now = datetime(2025, 3, 10, 15, 30, tzinfo=UTC)  # 00:30 on the 11th in Jayapura
    board = counters.live(now, {})
    assert board is not None
    assert board.shift == ShiftSlot(DAY, "malam")
    assert (board.shift_started, board.shift_ends, board.day_started) == (
        datetime(2025, 3, 10, 23, tzinfo=wit), datetime(2025, 3, 11, 7, tzinfo=wit),
        datetime(2025, 3, 10, 7, tzinfo=wit))
    assert (board.shift_figures.calls, board.day_figures.calls) == (1, 2)


def test_ends_abandons_vanishes_and_cuts_as_the_store_writes_them() -> None:
    counters = seeded(
        started("1", at(9)), QueueJoined("1", "medical", 1, at(9, 0, 5)),
        QueueAbandoned("1", "medical", 1, 1, 30, at(9, 0, 35)), CallEnded("1", 16, "", at(9, 1)),
        started("2", at(9)), QueueJoined("2", "medical", 1, at(9, 0, 5)),
        OperatorAnswered("2", "medical", "PJSIP/op1001", 3, 1, at(9, 0, 8)),
        CallVanished("2", at(9, 30)), CallCut("2", "asterisk_crash", at(9, 10, 0.5)),
        CallVanished("3", at(9, 30)),  # a call the store never had: nothing
        started("4", at(9)), OperatorCompleted("4", "fire", "PJSIP/op1001", 4, 60, "caller",
                                               at(9, 5)))
    figured = live(counters, at(10)).shift_figures
    assert (figured.calls, figured.offered, figured.answered, figured.abandoned) == (3, 2, 1, 1)
    assert figured.mean_talk == 593.0  # answered 9:00:08, cut 9:10:00.5: 592.5 s, half up
    assert (figured.service_levels[10].numerator, figured.service_levels[10].denominator) == (
        1, 2)
    counters.labelled("2", "prank")
    counters.labelled("1", "genuine")
    counters.labelled("9", "prank")  # not a call of the day: nothing
    counters.labelled("2", "genuine")
    figured = live(counters, at(10)).shift_figures
    assert (figured.labelled, figured.nuisance, figured.prank_share.percent) == (2, 0, 0.0)


OP = "PJSIP/op1001"
# A call answered at 9:00:08.4, its three-way call left at 9:00:38.6 (30.2 s of the
# operator's talk), its caller with the agency until 9:02:08.4 (Asterisk's 120 s).
THREE_WAY: tuple[LiveFact, ...] = (
    started("1", at(9)), QueueJoined("1", "fire", 1, at(9, 0, 5)),
    OperatorAnswered("1", "fire", OP, 3, 1, at(9, 0, 8.4)))
LEAVE = OperatorLeft("1", OP, at(9, 0, 38.6))
COMPLETE = OperatorCompleted("1", "fire", OP, 3, 120, "caller", at(9, 2, 8.4))


@pytest.mark.parametrize("completion_first", [False, True])
def test_an_operators_talk_ends_where_they_left_a_three_way_call(completion_first: bool
                                                                 ) -> None:
    # The talk figure is the operator's, as migration 0047 records it, not Asterisk's whole
    # call (the caller's talk with the agency): from the leave on, whichever comes first.
    counters = seeded(*THREE_WAY)
    counters.apply([LEAVE] if not completion_first else [COMPLETE])
    if not completion_first:
        assert live(counters, at(9, 1)).shift_figures.mean_talk == 30.0
    counters.apply([COMPLETE] if not completion_first else [LEAVE])
    assert live(counters, at(9, 3)).shift_figures.mean_talk == 30.0
    counters.apply([COMPLETE, LEAVE])  # applied again after a seed: nothing moves
    assert live(counters, at(9, 3)).day_figures.mean_talk == 30.0


def test_a_seeded_call_whose_talk_the_database_ended_at_the_leave_stays_capped() -> None:
    # The seed's row has its talk ended at the leave; the journal then applies Asterisk's
    # completion again (the leave itself may not be in it: told before a restart).
    row = LiveCall("1", at(9), DAY, "pagi", "fire", at(9, 0, 5), at(9, 0, 8.4), at(9, 0, 38.6),
                   None, None, False, 3, 30, None, OP, None, left_at=at(9, 0, 38.6))
    counters = ShiftCounters(CALENDAR)
    counters.seed(DAY, [row])
    counters.apply([COMPLETE])
    assert live(counters, at(9, 3)).shift_figures.mean_talk == 30.0


def test_a_leave_after_the_completion_or_of_an_unknown_call_changes_nothing() -> None:
    counters = seeded(*THREE_WAY, COMPLETE, OperatorLeft("1", OP, at(9, 3)))
    assert live(counters, at(9, 4)).shift_figures.mean_talk == 120.0
    counters.apply([OperatorLeft("2", OP, at(9, 3))])  # no such call: nothing
    assert len(counters) == 1
