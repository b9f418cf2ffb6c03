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
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from telephony.calls.shifts import ShiftSlot
from telephony.reports.model import Period, PeriodFigures, shift_slots
from telephony.reports.store import ReportRepository
from tests.support.polling import eventually
from tests.support.report_histories import (
    CALENDAR,
    DAY,
    LABELS,
    OPERATORS,
    SPAN,
    START,
    astuple,
    build_history,
    refresh_at_the_gate,
    same,
    seconds,
    state,
    waiting_for_lock,
)
from tests.support.reports_oracle import reference_day, reference_period

AUTOMATIC = 5.0


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
        figured = await ReportRepository().period_figures(connection, ALL_SLOTS, now,
                                                          AUTOMATIC)
        # Both kinds of operator were compared: accounts at phones, and phones with none.
        assert {key.split("/")[0] for key in figured.operators} >= {"PJSIP"}
        assert any(key.startswith("#") for key in figured.operators)
        # Calls two operators answered were compared, one operator answering twice too.
        shared = await connection.fetch(
            "SELECT call_id, max(talk_before) > 0 AS again FROM call_answers"
            " GROUP BY call_id HAVING count(*) > 1")
        assert len(shared) > 5 and any(row["again"] for row in shared)
    finally:
        await connection.close()


async def rolled_up(connection: asyncpg.Connection) -> set[ShiftSlot]:
    rows = await connection.fetch(
        "SELECT shift_day, shift_name FROM report_rollup_slots WHERE claim IS NULL")
    return {ShiftSlot(row["shift_day"], row["shift_name"]) for row in rows}


async def late_facts(connection: asyncpg.Connection, rng: random.Random, now: datetime
                     ) -> set[ShiftSlot]:
    """Facts arriving after their slots were rolled up: a relabel, a pause change that ends
    (or starts) a wrap-up, a rung event, a call's late end, an operator's leaving a three-way
    call mid-talk, a second operator's answer and a call first seen late. The slots they
    must invalidate."""
    calls = await connection.fetch(
        "SELECT call_id, shift_day, shift_name, operator, answered_at, completed_at, ended_at,"
        " talk_seconds"
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
    # The operator left the call's three-way call before its end: their talk ends there
    # (migration 0047), so the slot's talk and wrap-up change.
    left = rng.choice([row for row in done if row["answered_at"] is not None
                       and row["completed_at"] - row["answered_at"] >= timedelta(seconds=4)])
    touched.add(ShiftSlot(left["shift_day"], left["shift_name"]))
    leg_id = await connection.fetchval(
        "INSERT INTO call_legs (kind, call_id, operator, actor, number)"
        " VALUES ('conference', $1, $2, 'sari', '0275321113') RETURNING leg_id",
        left["call_id"], left["operator"])
    await connection.execute(
        "INSERT INTO transfer_steps (leg_id, step, actor, at) VALUES ($1, 'leave', 'sari', $2)",
        leg_id, left["answered_at"] + (left["completed_at"] - left["answered_at"]) / 2)
    # A second operator's answer of a call recorded late (a spool drained after an outage):
    # that operator answered it too, with their talk and wrap-up.
    shared = rng.choice([row for row in done if row["operator"] is not None])
    touched.add(ShiftSlot(shared["shift_day"], shared["shift_name"]))
    other = rng.choice([op for op in OPERATORS if op != shared["operator"]])
    await connection.executemany(
        "INSERT INTO call_events (dedupe_key, call_id, kind, at, body)"
        " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING",
        [(f"late-{n}-{shared['call_id']}", shared["call_id"], kind, at,
          json.dumps({"operator": op, "queue": "medical", "talk_seconds": talk}))
         for n, (kind, op, at, talk) in enumerate((
             ("operator_completed", shared["operator"], shared["completed_at"],
              shared["talk_seconds"] or 0),
             ("operator_answered", other, shared["completed_at"] + timedelta(seconds=9), None),
             ("operator_completed", other, shared["completed_at"] + timedelta(seconds=70),
              61)))])
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


# -- the refresher against concurrent writes (migration 0030) -------------------------------

# A write of the recorder takes milliseconds; one that waits for a refresh waits until the
# test lets the refresher go.
WRITE_WITHIN = 5.0


async def rolled_up_history(connection: asyncpg.Connection, seed: int
                            ) -> tuple[datetime, asyncpg.Record, ShiftSlot]:
    """A random history, every closed slot of it rolled up, and one answered call of a
    rolled-up slot, whose rollup is then dropped for the test's refresher to compute again:
    the history's ``now``, that call and its slot."""
    rng = random.Random(200 + seed)
    now = START + SPAN * 1.1  # every slot of the history closed
    await build_history(connection, rng, 300, now)
    assert await ReportRepository().refresh_rollups(connection, ALL_SLOTS, now, AUTOMATIC) > 0
    calls = await connection.fetch(
        "SELECT c.call_id, c.shift_day, c.shift_name, c.operator, c.completed_at, r.wrap_lo,"
        "       r.wrap_hi"
        " FROM calls c JOIN report_rollup_slots r USING (shift_day, shift_name)"
        " WHERE c.completed_at IS NOT NULL AND c.operator IS NOT NULL AND c.queue IS NOT NULL"
        "   AND c.talk_seconds IS NOT NULL ORDER BY c.call_id")
    call = rng.choice(calls)
    await connection.execute(
        "DELETE FROM report_rollup_slots WHERE shift_day = $1 AND shift_name = $2",
        call["shift_day"], call["shift_name"])
    return now, call, ShiftSlot(call["shift_day"], call["shift_name"])


async def write_to_call(connection: asyncpg.Connection, call: asyncpg.Record) -> None:
    """A late fact of ``call``: its talk time changes (so would its slot's mean talk)."""
    await connection.execute(
        "UPDATE calls SET talk_seconds = talk_seconds + 7 WHERE call_id = $1", call["call_id"])


async def pause_after(connection: asyncpg.Connection, call: asyncpg.Record) -> None:
    """A late wrap-up pause of ``call``'s operator right after it ended (its wrap-up, and its
    slot's mean wrap-up, change), inside the slot's wrap-up window."""
    start = call["completed_at"] + timedelta(seconds=1)
    changes = (state(call["operator"], start, True, "wrapup")
               + state(call["operator"], start + timedelta(seconds=95), False, ""))
    await connection.executemany(
        "INSERT INTO operator_state_changes (operator, queue, at, state, paused,"
        " pause_reason, shift_day, shift_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING",
        [(*change, *astuple(CALENDAR.slot_for(change[2]))) for change in changes])


@pytest.fixture
async def sessions(database_dsn: str) -> AsyncIterator[tuple[asyncpg.Connection, ...]]:
    """Three sessions of the line on the test database: the one that builds the history and
    watches, a refresher's and a writer's."""
    opened = [await asyncpg.connect(database_dsn) for _ in range(3)]
    try:
        yield tuple(opened)
    finally:
        for connection in opened:
            await connection.close()


async def test_writes_do_not_wait_for_a_refresh(sessions: tuple[asyncpg.Connection, ...],
                                                database_owner_dsn: str) -> None:
    """The recorder's writes while a refresher holds its transaction open mid-way (its
    snapshot taken, its rollup not yet stored): a call of the current shift, a late fact of
    a call of the very slot being rolled up, a pause change in its wrap-up window. None
    waits (0016's table lock made each wait for the whole refresh), and the refresher keeps
    nothing of the snapshot they made stale."""
    connection, refresher, _ = sessions
    repo = ReportRepository()
    now, call, slot = await rolled_up_history(connection, 0)
    async with refresh_at_the_gate(database_owner_dsn, refresher, connection, slot, now,
                                   AUTOMATIC) as refresh:
        current = CALENDAR.slot_for(now)
        await asyncio.wait_for(connection.execute(
            "INSERT INTO calls (call_id, line, arrived_at, shift_day, shift_name)"
            " VALUES ('surge-1', '112', $1, $2, $3)", now, current.day, current.name),
            WRITE_WITHIN)
        await asyncio.wait_for(write_to_call(connection, call), WRITE_WITHIN)
        await asyncio.wait_for(pause_after(connection, call), WRITE_WITHIN)
    assert await refresh == 0
    assert slot not in await rolled_up(connection)
    await compare_everything(connection, now)
    assert await repo.refresh_rollups(connection, [slot], now, AUTOMATIC) == 1
    await compare_everything(connection, now)


@pytest.mark.parametrize("write", [write_to_call, pause_after])
async def test_a_write_after_the_refreshers_snapshot_drops_its_rollup(
        sessions: tuple[asyncpg.Connection, ...], database_owner_dsn: str,
        write: Callable[[asyncpg.Connection, asyncpg.Record], Coroutine[Any, Any, None]]) -> None:
    """A write that invalidates the slot lands between the refresher's snapshot and its
    store (or waits for the store, where the refresher locks): the rollup computed without
    it is not kept, and the report stays exact."""
    connection, refresher, writer = sessions
    repo = ReportRepository()
    now, call, slot = await rolled_up_history(connection, 1)
    async with refresh_at_the_gate(database_owner_dsn, refresher, connection, slot, now,
                                   AUTOMATIC) as refresh:
        written = asyncio.create_task(write(writer, call))

        async def written_or_waiting() -> bool | str | None:
            return written.done() or await waiting_for_lock(
                connection, writer.get_server_pid())

        await eventually("the write done or waiting", written_or_waiting)
    await written
    await refresh  # rolled up or not: what counts is that no stale rollup stays
    assert slot not in await rolled_up(connection)
    await compare_everything(connection, now)
    assert await repo.refresh_rollups(connection, [slot], now, AUTOMATIC) == 1
    await compare_everything(connection, now)


async def refresher_waits_for_writers(connection: asyncpg.Connection, pid: int) -> bool | None:
    """Whether the refresher ``pid`` waits for the writers in progress at its claim (it looked
    at its snapshot and let it go: its last statement a ROLLBACK, or that look), or for a
    table lock a writer holds: None while it does neither."""
    waits: bool | None = await connection.fetchval(
        "SELECT true FROM pg_stat_activity WHERE pid = $1"
        " AND (wait_event_type = 'Lock' OR query LIKE 'ROLLBACK%'"
        "      OR query LIKE '%pg_visible_in_snapshot%')", pid)
    return waits


async def test_a_write_in_progress_at_the_claim_is_in_the_rollup(
        sessions: tuple[asyncpg.Connection, ...]) -> None:
    """A write whose trigger ran before the refresher claimed the slot (so did not see the
    claim, and deleted nothing) and that commits only later: the refresher takes its
    snapshot after that commit, and its rollup holds the write."""
    connection, refresher, writer = sessions
    repo = ReportRepository()
    now, call, slot = await rolled_up_history(connection, 2)
    async with writer.transaction():
        await write_to_call(writer, call)
        refresh = asyncio.create_task(repo.refresh_rollups(refresher, [slot], now, AUTOMATIC))


        async def waiting_or_done() -> bool | None:
            # Done would be wrong (it cannot have seen the write), as the checks below
            # then show.
            return refresh.done() or await refresher_waits_for_writers(
                connection, refresher.get_server_pid())

        await eventually("the refresher waiting for the writer, or done", waiting_or_done)
    assert await refresh == 1
    assert slot in await rolled_up(connection)
    await compare_everything(connection, now)


async def test_a_claim_is_no_rollup_and_an_abandoned_one_gives_way(
        sessions: tuple[asyncpg.Connection, ...]) -> None:
    """A slot claimed by a refresher still at work is read from its calls, and no other
    refresher takes it; a claim left by a refresher that died gives way after a while."""
    connection = sessions[0]
    repo = ReportRepository()
    now, call, slot = await rolled_up_history(connection, 3)
    await connection.execute(
        "INSERT INTO report_rollup_slots (shift_day, shift_name, automatic_us, wrap_lo,"
        " wrap_hi, claim) VALUES ($1, $2, $3, $4, $5, gen_random_uuid())",
        slot.day, slot.name, round(AUTOMATIC * 1e6), call["wrap_lo"], call["wrap_hi"])
    await write_to_call(connection, call)  # its trigger deletes the claim
    assert await connection.fetchval("SELECT count(*) FROM report_rollup_slots WHERE"
                                     " claim IS NOT NULL") == 0
    await connection.execute(
        "INSERT INTO report_rollup_slots (shift_day, shift_name, automatic_us, wrap_lo,"
        " wrap_hi, claim) VALUES ($1, $2, $3, $4, $5, gen_random_uuid())",
        slot.day, slot.name, round(AUTOMATIC * 1e6), call["wrap_lo"], call["wrap_hi"])
    assert await repo.refresh_rollups(connection, [slot], now, AUTOMATIC) == 0
    assert slot not in await rolled_up(connection)
    await compare_everything(connection, now)
    await connection.execute(
        "UPDATE report_rollup_slots SET computed_at = now() - interval '11 minutes'")
    assert await repo.refresh_rollups(connection, [slot], now, AUTOMATIC) == 1
    assert slot in await rolled_up(connection)
    await compare_everything(connection, now)
