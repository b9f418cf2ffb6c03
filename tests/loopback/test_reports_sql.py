"""The reports' SQL against the reference implementation of the definitions
(``telephony.reports.model`` through tests/support/reports_oracle.py), on random histories in
a real PostgreSQL: overflowed, abandoned, vanished and still-waiting calls, answers with an
unknown join, relabelled calls (ties included), rung events recorded before their call row,
wrap-up pauses at the grace's edges and across queues, calls on both sides of shift
boundaries. Counts, ratios and the p90 must be equal; the two means are sums of floats in a
different order (exact integers in SQL), so they must agree to 1e-12 relatively."""

from __future__ import annotations

import asyncio
import json
import math
import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.reports.model import Figures, Period, PeriodFigures, shift_slots
from telephony.reports.store import ReportRepository
from telephony.settings import DEFAULT_SHIFTS
from tests.support.reports_oracle import reference_day, reference_period

JAKARTA = ZoneInfo("Asia/Jakarta")
CALENDAR = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
DAY = date(2025, 3, 10)
START = datetime(2025, 3, 10, 7, tzinfo=JAKARTA)  # the first pagi of the history
SPAN = timedelta(days=3)
OPERATORS = [f"PJSIP/op10{n:02d}" for n in range(1, 6)]
QUEUES = ["medical", "fire", "security", "all-operators"]
LABELS = ["genuine", "prank", "silent", "accidental", "test"]
AUTOMATIC = 5.0


def seconds(rng: random.Random, low: float, high: float) -> timedelta:
    """A random duration, in whole microseconds, now and then exactly on a threshold."""
    if rng.random() < 0.1:
        return timedelta(seconds=rng.choice([10, 20, 60, 0]))
    return timedelta(microseconds=rng.randint(int(low * 1e6), int(high * 1e6)))


async def build_history(connection: asyncpg.Connection, rng: random.Random, calls: int,
                        now: datetime) -> None:
    """``calls`` random calls arriving over :data:`SPAN` from :data:`START`, up to ``now``."""
    call_rows: list[dict[str, object]] = []
    events: list[tuple[str, str, str, datetime, str]] = []
    early_events: list[tuple[str, str, str, datetime, str]] = []
    labels: list[tuple[str, str, datetime]] = []
    changes: list[tuple[str, str, datetime, str, bool, str]] = []
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
        row: dict[str, object] = {
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
                    changes += wrapup_pause(rng, operator, done)
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
        call_rows.append(row)
        for operator in rng.sample(OPERATORS, rng.choice([0, 0, 1, 1, 2, 3])):
            for _ in range(rng.choice([1, 1, 2])):  # rung twice: counted once
                event = (f"rung-{call_id}-{operator}-{len(events) + len(early_events)}",
                         call_id, "operator_rung", arrived,
                         json.dumps({"operator": operator, "queue": row["queue"]}))
                (early_events if rng.random() < 0.2 else events).append(event)
        when = arrived + seconds(rng, 30, 4000)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            labels.append((call_id, rng.choice(LABELS), when))
            if rng.random() < 0.7:  # else the same instant: the later entry counts
                when += seconds(rng, -3000, 3000)
    for _ in range(calls // 5):  # pauses unrelated to any call
        at = START + rng.random() * SPAN
        changes += state(rng.choice(OPERATORS), at, rng.random() < 0.6,
                         rng.choice(["wrapup", "break", ""]))
    insert_event = ("INSERT INTO call_events (dedupe_key, call_id, kind, at, body) "
                    "VALUES ($1, $2, $3, $4, $5::jsonb)")
    # Some calls are first seen through a later fact: their rung events come before the row.
    await connection.executemany(insert_event, early_events)
    columns = list(call_rows[0])
    await connection.executemany(
        f"INSERT INTO calls ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
        [tuple(row[c] for c in columns) for row in call_rows])
    await connection.executemany(insert_event, events)
    await connection.executemany(
        "INSERT INTO call_labels (call_id, label, labelled_by, labelled_at) "
        "VALUES ($1, $2, 'sari', $3)", labels)
    await connection.executemany(
        "INSERT INTO operator_state_changes (operator, queue, at, state, paused, pause_reason,"
        " shift_day, shift_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING",
        [(*change, *astuple(CALENDAR.slot_for(change[2]))) for change in changes])


def astuple(slot: ShiftSlot) -> tuple[date, str]:
    return slot.day, slot.name


def state(operator: str, at: datetime, paused: bool, reason: str,
          queues: tuple[str, ...] = ("medical", "all-operators")
          ) -> list[tuple[str, str, datetime, str, bool, str]]:
    return [(operator, queue, at, "paused" if paused else "idle", paused,
             reason if paused else "") for queue in queues]


def wrapup_pause(rng: random.Random, operator: str, done: datetime
                 ) -> list[tuple[str, str, datetime, str, bool, str]]:
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


def same(sql: Figures, reference: Figures) -> None:
    def close(a: float | None, b: float | None) -> bool:
        return a is b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))

    # Floats, as the reference gives them (a Decimal would not serialise to JSON).
    assert all(value is None or type(value) is float for value in (
        sql.mean_wait, sql.p90_wait, sql.mean_talk, sql.mean_wrapup))
    assert (sql.calls, sql.offered, sql.answered, sql.abandoned, dict(sql.service_levels),
            sql.p90_wait, sql.mean_talk, sql.labelled, sql.nuisance) == (
        reference.calls, reference.offered, reference.answered, reference.abandoned,
        dict(reference.service_levels), reference.p90_wait, reference.mean_talk,
        reference.labelled, reference.nuisance)
    assert close(sql.mean_wait, reference.mean_wait), (sql.mean_wait, reference.mean_wait)
    assert close(sql.mean_wrapup, reference.mean_wrapup), (sql.mean_wrapup,
                                                           reference.mean_wrapup)


def same_period(sql: PeriodFigures, reference: PeriodFigures) -> None:
    same(sql.total, reference.total)
    for name in ("shifts", "queues", "operators"):
        mine, theirs = getattr(sql, name), getattr(reference, name)
        assert sorted(mine) == sorted(theirs), name
        for key in mine:
            same(mine[key], theirs[key])


async def compare_everything(connection: asyncpg.Connection, now: datetime) -> None:
    """Every report the SQL makes over the history equals the reference's."""
    repo = ReportRepository()
    periods = [Period(DAY - timedelta(days=1), DAY + timedelta(days=3)),
               Period(DAY + timedelta(days=1), DAY + timedelta(days=1), "siang"),
               Period(DAY, DAY, "malam"),
               Period(DAY + timedelta(days=20), DAY + timedelta(days=20))]  # no calls
    for period in periods:
        same_period(await repo.period_figures(connection, shift_slots(CALENDAR, period),
                                              now, AUTOMATIC),
                    await reference_period(connection, period, now, AUTOMATIC))
    for day in (DAY, DAY + timedelta(days=2), DAY + timedelta(days=20)):
        sql_day = await repo.day_figures(connection, day, now)
        reference = await reference_day(connection, Period(day, day), now)
        same(sql_day.figures, reference.figures)
        assert (sql_day.lines, sql_day.categories, sql_day.labels) == (
            reference.lines, reference.categories, reference.labels)
        for name in CALENDAR.names:
            shift, whole = await repo.live_figures(connection, ShiftSlot(day, name),
                                                   CALENDAR.names, now)
            same(whole, reference.figures)
            same(shift, (await reference_day(connection, Period(day, day, name), now)
                         ).figures)


ALL_SLOTS = shift_slots(CALENDAR, Period(DAY - timedelta(days=1), DAY + timedelta(days=4)))


@pytest.mark.parametrize("seed", range(6))
async def test_sql_figures_equal_the_reference_on_random_histories(
        database_dsn: str, seed: int) -> None:
    rng = random.Random(seed)
    now = START + SPAN * rng.uniform(0.6, 1.1)
    connection = await asyncpg.connect(database_dsn)
    try:
        await build_history(connection, rng, 400, now)
        await compare_everything(connection, now)
    finally:
        await connection.close()


async def rolled_up(connection: asyncpg.Connection) -> set[ShiftSlot]:
    rows = await connection.fetch("SELECT shift_day, shift_name FROM report_rollup_slots")
    return {ShiftSlot(row["shift_day"], row["shift_name"]) for row in rows}


async def late_facts(connection: asyncpg.Connection, rng: random.Random, now: datetime
                     ) -> set[ShiftSlot]:
    """Facts arriving after their slots were rolled up: a relabel, a pause change that ends
    (or starts) a wrap-up, a rung event, a call's late end and a call first seen late. The
    slots they must invalidate."""
    calls = await connection.fetch(
        "SELECT call_id, shift_day, shift_name, operator, completed_at, ended_at"
        " FROM report_rollups_probe ORDER BY call_id")
    touched: set[ShiftSlot] = set()

    def pick() -> asyncpg.Record:
        row = rng.choice(calls)
        touched.add(ShiftSlot(row["shift_day"], row["shift_name"]))
        return row

    relabelled = pick()
    await connection.execute(
        "INSERT INTO call_labels (call_id, label, labelled_by, labelled_at)"
        " VALUES ($1, $2, 'sari', $3)", relabelled["call_id"], rng.choice(LABELS),
        now + timedelta(days=1))
    rung = pick()
    await connection.execute(
        "INSERT INTO call_events (dedupe_key, call_id, kind, at, body)"
        " VALUES ($1, $2, 'operator_rung', $3, $4::jsonb)", f"late-rung-{rung['call_id']}",
        rung["call_id"], now, json.dumps({"operator": rng.choice(OPERATORS)}))
    done = [row for row in calls if row["completed_at"] is not None]
    for _ in range(3):  # late pause changes after calls that ended: their wrap-ups change
        call = rng.choice(done)
        start = call["completed_at"] + seconds(rng, 0, 50)
        changes = state(call["operator"], start, True, "wrapup")
        changes += state(call["operator"], start + seconds(rng, 1, 100), False, "")
        await connection.executemany(
            "INSERT INTO operator_state_changes (operator, queue, at, state, paused,"
            " pause_reason, shift_day, shift_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING",
            [(*change, *astuple(CALENDAR.slot_for(change[2]))) for change in changes])
        touched.update(await affected_by_pause(connection, start))
    ended = pick()
    await connection.execute(
        "UPDATE calls SET talk_seconds = coalesce(talk_seconds, 0) + 7, vanished = NOT vanished"
        " WHERE call_id = $1", ended["call_id"])
    first_seen = pick()
    await connection.execute(
        "INSERT INTO calls (call_id, line, arrived_at, shift_day, shift_name, queue,"
        " queue_joined_at, answered_at, operator, talk_seconds, completed_at, ended_at)"
        " VALUES ($1, '112', $2::timestamptz, $3, $4, 'fire', $2, $2 + interval '3 s',"
        " 'PJSIP/op1001', 40, $2 + interval '43 s', $2 + interval '43 s')",
        f"late-{first_seen['call_id']}", CALENDAR.bounds(
            ShiftSlot(first_seen["shift_day"], first_seen["shift_name"]))[0],
        first_seen["shift_day"], first_seen["shift_name"])
    return touched


async def affected_by_pause(connection: asyncpg.Connection, at: datetime) -> set[ShiftSlot]:
    rows = await connection.fetch(
        "SELECT shift_day, shift_name FROM report_rollup_slots_before"
        " WHERE wrap_lo <= $1 AND wrap_hi > $1", at)
    return {ShiftSlot(row["shift_day"], row["shift_name"]) for row in rows}


@pytest.mark.parametrize("seed", range(4))
async def test_rollups_stay_exact_through_late_facts(database_dsn: str, seed: int) -> None:
    """Closed shifts rolled up, then late facts for them: each invalidates its slot's rollup,
    the report reads those slots from their calls and stays equal to the reference; rolled
    up again, still equal. Rolling up twice changes nothing."""
    rng = random.Random(100 + seed)
    now = START + SPAN * rng.uniform(0.6, 1.1)
    connection = await asyncpg.connect(database_dsn)
    repo = ReportRepository()
    try:
        await build_history(connection, rng, 300, now)
        # Two refreshers at once (the wallboard's and a report's): no deadlock, each slot
        # rolled up once.
        other = await asyncpg.connect(database_dsn)
        try:
            counts = await asyncio.gather(
                repo.refresh_rollups(connection, ALL_SLOTS, now, AUTOMATIC),
                repo.refresh_rollups(other, ALL_SLOTS[::-1], now, AUTOMATIC))
        finally:
            await other.close()
        assert sum(counts) == len(await rolled_up(connection)) > 0
        assert await repo.refresh_rollups(connection, ALL_SLOTS, now, AUTOMATIC) == 0
        before = await rolled_up(connection)
        stored = await connection.fetchval("SELECT count(*) FROM report_rollups")
        assert stored > 0
        await compare_everything(connection, now)
        # Probes of the test's own (copies taken before the late facts).
        await connection.execute(
            "CREATE TEMP TABLE report_rollups_probe AS SELECT c.* FROM calls c"
            " JOIN report_rollup_slots r USING (shift_day, shift_name)"
            " WHERE c.operator IS NOT NULL")
        await connection.execute(
            "CREATE TEMP TABLE report_rollup_slots_before AS SELECT * FROM report_rollup_slots")
        touched = await late_facts(connection, rng, now)
        after = await rolled_up(connection)
        assert touched & after == set(), "a late fact left its slot's rollup in place"
        assert after < before
        await compare_everything(connection, now)
        await repo.refresh_rollups(connection, ALL_SLOTS, now, AUTOMATIC)
        assert await rolled_up(connection) >= before
        await compare_everything(connection, now)
        # Another automatic wrap-up: the rollups of the old one are not used.
        await repo.refresh_rollups(connection, ALL_SLOTS, now, AUTOMATIC + 2)
        await compare_everything(connection, now)
    finally:
        await connection.close()
