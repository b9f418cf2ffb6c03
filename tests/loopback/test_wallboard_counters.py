"""The wallboard's live counters against the call store and the reports' reference in a real
PostgreSQL: random histories told as facts (interleaved, some replayed, some calls first seen
through a later sighting) written by the call store in random batches and labelled; the
counters kept from those facts alone, and the counters seeded from the database's calls, both
equal the reports' definitions over the rows the store wrote."""

from __future__ import annotations

import random
from datetime import timedelta

import asyncpg
import pytest

from telephony.calls.shifts import ShiftSlot
from telephony.calls.store import CallRepository
from telephony.reports.model import Period, day_bounds
from telephony.reports.store import ReportRepository
from telephony.wallboard.counters import ShiftCounters
from tests.support.report_histories import (
    CALENDAR,
    DAY,
    SPAN,
    START,
    call_facts,
    interleaved,
    random_history,
    same,
)
from tests.support.reports_oracle import reference_day


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
