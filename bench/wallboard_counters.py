"""What a call fact costs the wallboard's live counters (``telephony.wallboard.counters``),
and what reading them and seeding them cost, on one core, with no database.

A day of calls is seeded (``--day-calls``, 17,000 by default: the issue's busy day), then
surge calls are told as the listener tracks them (started, IVR, joined, rung, answered or
abandoned, completed, ended, and the operator's state changes: about 10 facts a call); it
prints facts per second and microseconds per fact, the cost of one reading of the figures
(what every wallboard push does), and of a seed with the journal applied again (once a
shift and after each resync). Before, the counters were one grouped query over the current
shift's calls after each persisted batch, about 0.27 s at 17,000 calls a day (issue 12).

Run: ``python bench/wallboard_counters.py [--day-calls 17000] [--calls 20000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    IvrVariablesSet,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.shifts import ShiftCalendar
from telephony.reports.model import LiveCall
from telephony.settings import DEFAULT_SHIFTS
from telephony.wallboard.counters import ShiftCounters
from telephony.wallboard.service import JOURNAL_FACTS

CALENDAR = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
OPERATORS = [f"PJSIP/op{1001 + n}" for n in range(20)]


def surge(rng: random.Random, calls: int, start: datetime) -> list[CallFact]:
    """``calls`` calls arriving 50 a second, their facts interleaved as time orders them."""
    timed: list[tuple[datetime, int, CallFact]] = []
    for n in range(calls):
        call_id = f"{1765000000 + n}.{n}"
        arrived = start + timedelta(seconds=n / 50)
        joined = arrived + timedelta(seconds=rng.uniform(2, 6))
        answered = joined + timedelta(seconds=rng.uniform(0, 40))
        operator = rng.choice(OPERATORS)
        talk = rng.randint(20, 200)
        facts: list[tuple[datetime, CallFact]] = [
            (arrived, CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112",
                                  arrived)),
            (joined, IvrVariablesSet(call_id, (("category", "emergency"), ("queue", "medical")),
                                     joined)),
            (joined, QueueJoined(call_id, "medical", 1, joined)),
            (joined, OperatorRung(call_id, "medical", operator, joined)),
        ]
        if rng.random() < 0.15:
            facts += [(answered, QueueAbandoned(call_id, "medical", 1, 1, 9, answered)),
                      (answered, CallEnded(call_id, 16, "Normal Clearing", answered))]
        else:
            done = answered + timedelta(seconds=talk)
            facts += [
                (answered, OperatorStateChanged(operator, "medical", "talking", False, "",
                                                answered)),
                (answered, OperatorAnswered(call_id, "medical", operator, 9, 1, answered)),
                (answered, QueueLeft(call_id, "medical", 1, answered)),
                (done, OperatorCompleted(call_id, "medical", operator, 9, talk, "caller",
                                         done)),
                (done, CallEnded(call_id, 16, "Normal Clearing", done)),
                (done, OperatorStateChanged(operator, "medical", "idle", False, "", done))]
        timed += [(at, index, fact) for index, (at, fact) in enumerate(facts, len(timed))]
    return [fact for _, _, fact in sorted(timed, key=lambda entry: entry[:2])]


def seed_rows(rng: random.Random, calls: int, start: datetime) -> list[LiveCall]:
    """A day's calls as the database gives them to the seed (ended, most answered)."""
    rows = []
    for n in range(calls):
        arrived = start + timedelta(seconds=rng.uniform(0, 6 * 3600))
        slot = CALENDAR.slot_for(arrived)
        joined = arrived + timedelta(seconds=5)
        answered = joined + timedelta(seconds=rng.uniform(0, 30)) if rng.random() < 0.85 \
            else None
        ended = (answered or joined) + timedelta(seconds=60)
        rows.append(LiveCall(
            f"seed-{n}", arrived, slot.day, slot.name, "medical", joined, answered,
            ended if answered else None, None if answered else ended, ended, False,
            9, 60 if answered else None, rng.choice([None, None, "genuine", "prank"])))
    return rows


def best(runs: int, work: list[float]) -> str:
    return f"{min(work):.3f}-{max(work):.3f}" if runs > 1 else f"{work[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day-calls", type=int, default=17_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(12)
    start = datetime(2026, 12, 5, 0, 30, tzinfo=UTC)  # 07:30 in Jakarta: pagi
    rows = seed_rows(rng, args.day_calls, start)
    facts = surge(rng, args.calls, start + timedelta(hours=7))
    per_fact, per_read, seeds = [], [], []
    now = start + timedelta(hours=7, minutes=30)
    for _ in range(args.runs):
        counters = ShiftCounters(CALENDAR)
        began = time.perf_counter()
        counters.seed(CALENDAR.slot_for(now).day, rows)
        counters.apply(facts[:JOURNAL_FACTS])
        seeds.append(time.perf_counter() - began)
        counters = ShiftCounters(CALENDAR)
        counters.seed(CALENDAR.slot_for(now).day, rows)
        began = time.perf_counter()
        counters.apply(facts)
        per_fact.append((time.perf_counter() - began) / len(facts) * 1e6)
        began = time.perf_counter()
        for _ in range(1000):
            counters.live(now, {})
        per_read.append((time.perf_counter() - began) / 1000 * 1e6)
    live = counters.live(now, {})
    assert live is not None
    print(f"{args.day_calls:,} calls seeded, {len(facts):,} facts of {args.calls:,} surge calls"
          f" ({live.day_figures.calls:,} calls counted today)")
    print(f"per fact: {best(args.runs, per_fact)} us "
          f"({1e6 / max(per_fact):,.0f}-{1e6 / min(per_fact):,.0f} facts/s)")
    print(f"one reading of the figures: {best(args.runs, per_read)} us")
    print(f"seed ({args.day_calls:,} calls) + {min(JOURNAL_FACTS, len(facts)):,} facts again: "
          f"{best(args.runs, [s * 1000 for s in seeds])} ms")


if __name__ == "__main__":
    main()
