"""The supervisor's reports on a long history: how long do the 31-day shift report, the daily
summary and the seed of the wallboard's live counters take at 1 M, 4 M and 10 M calls? (The
counters are kept from facts; they read the day's calls once a shift, at start and after a
resync: ``bench/wallboard_counters.py`` times what a fact costs them.)

Fills a private embedded PostgreSQL with the line's real schema through ``bench.history``
(9,000 calls a day, so 10 M calls are about three years and the last month is the same at
every size), growing the same history from one size to the next, VACUUM ANALYZE after each,
then reads through the service's own code path (``ReportService``: pool, SQL aggregates,
the report put together) and prints min-max of ``--runs`` runs. Indicative on a shared
machine. Targets at 10 M (issue 12): shift report <= 1 s, daily summary <= 100 ms.

Run: ``python bench/reports.py [--sizes 1000000,4000000,10000000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from history import grow_history  # bench/history.py: scripts here import their siblings

from telephony.calls.shifts import ShiftCalendar
from telephony.db.connection import Database
from telephony.db.embedded import temporary_cluster
from telephony.db.migrate import migrate
from telephony.reports import store
from telephony.reports.model import Period, shift_slots
from telephony.reports.service import ReportConfig, ReportService
from telephony.settings import load_settings
from telephony.wallboard.counters import ShiftCounters


async def timed(runs: int, work: Callable[[], Awaitable[Any]]) -> str:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms"


async def explain_shift_report(connection: asyncpg.Connection, calendar: ShiftCalendar,
                               month: Period, now: datetime, automatic: float) -> None:
    """The warm shift report's query alone, as EXPLAIN ANALYZE times it in the server."""
    args = store.report_args(shift_slots(calendar, month), now, automatic)
    async with connection.transaction():
        await connection.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
        plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {store.SHIFT_REPORT}", *args)
    lines = [row[0] for row in plan]
    print("\n".join(lines), flush=True)


async def run(dsn: str, state_dir: Path, sizes: list[int], runs: int, explain: bool) -> None:
    settings = replace(load_settings(environ={}), state_dir=state_dir, database_dsn=dsn)
    calendar = ShiftCalendar(settings.shifts, settings.timezone)
    now = datetime.now(UTC)
    connection = await asyncpg.connect(dsn)
    await migrate(connection)
    database = Database(settings)
    reports = ReportService(database, calendar, ReportConfig.from_settings(settings),
                            clock=lambda: now)
    today = calendar.slot_for(now).day
    have = 0
    print("calls in history | shift report, 31 days | daily summary | counters' seed")
    for size in sizes:
        started = time.monotonic()
        await grow_history(connection, calendar, settings.timezone, have=have, calls=size,
                           now=now)
        await connection.execute("VACUUM ANALYZE")
        have = size
        print(f"(built {size:,} calls in {time.monotonic() - started:.0f} s)", flush=True)
        month = Period(today - timedelta(days=30), today)
        # The first report of a month rolls up its closed shifts (migration 0016), as the
        # wallboard's counters do for the day's: timed apart, then the warm report.
        await connection.execute("DELETE FROM report_rollup_slots")  # cold, at every size
        cold = await timed(1, lambda: reports.shift_report(month))  # noqa: B023
        print(f"(first 31-day report, rolling up its closed shifts: {cold})", flush=True)
        shift = await timed(runs, lambda: reports.shift_report(month))  # noqa: B023
        daily = await timed(runs, lambda: reports.daily_summary(today - timedelta(days=1)))

        async def seed() -> None:
            ShiftCounters(calendar).seed(today, await reports.live_calls(today))

        live = await timed(runs, seed)
        print(f"{size:,} | {shift} | {daily} | {live}", flush=True)
        if explain:
            await explain_shift_report(connection, calendar, month, now,
                                       ReportConfig.from_settings(settings).wrapup_seconds)
    await connection.close()
    await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,4000000,10000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--explain", action="store_true",
                        help="also EXPLAIN ANALYZE the warm shift report's query")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    with temporary_cluster("siaga112-bench-reports-") as (root, cluster):
        asyncio.run(run(cluster.dsn(), root / "state", sizes, args.runs, args.explain))


if __name__ == "__main__":
    main()
