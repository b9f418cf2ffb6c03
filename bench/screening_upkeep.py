"""The screening's post-call upkeep with nothing to score: what each 2-second pass costs.

Fills a fresh database of a private embedded PostgreSQL cluster with ``--history`` calls of
generated history (``bench/history.py``, 9,000 a day: the last three days hold about 27,000
ended calls), gives the recent ones their recording rows and post-call scores as a running
site has them (as ``bench/surge.py --history`` does), then:

- times ``ScreeningService.rescore_ended_calls`` ``--passes`` times through the line's pool
  (whichever code ``PYTHONPATH`` names: run it with main's checkout for the window scan);
- prints EXPLAIN (ANALYZE, BUFFERS) of the window scan as main ran it (:data:`WINDOW_SCAN_SQL`,
  kept here for the comparison) and, where migration 0032 exists, of the queue's read.

A shared machine's neighbours move these figures.

Run: ``python bench/screening_upkeep.py [--history 100000] [--passes 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
from history import (  # bench/ is the script directory: sys.path[0]
    as_a_running_site,
    fresh_database,
    grow_history,
)

from telephony.calls.shifts import ShiftCalendar
from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.screening import store
from telephony.screening.score import ScoreConfig
from telephony.screening.service import SCORING_BATCH, SCORING_MAX_AGE, ScreeningService
from telephony.settings import DEFAULT_SHIFTS, load_settings

TIMEZONE = "Asia/Jakarta"

# ScreeningRepository.calls_to_score as it was before migration 0032: every pass read this.
WINDOW_SCAN_SQL = """
SELECT c.call_id, c.caller_number, c.line, c.arrived_at, c.ended_at, c.answered_at,
       c.talk_seconds, c.ended_by, c.ivr_outcome, c.ivr_first_key_ms,
       c.ivr_invalid_keys, c.queue, r.silence_share
FROM calls c
LEFT JOIN call_screening s ON s.call_id = c.call_id
LEFT JOIN recordings r ON r.call_id = c.call_id AND r.kind = 'mixed'
WHERE c.ended_at >= now() - make_interval(secs => $1)
  AND (s.call_id IS NULL
       OR (r.silence_share IS NOT NULL
           AND s.silence_share IS DISTINCT FROM r.silence_share))
ORDER BY c.ended_at, c.call_id
LIMIT $2
"""


class FixedConfig:
    """The shipped weights, never changing."""

    def current(self) -> ScoreConfig:
        return ScoreConfig()


async def build(cluster: EmbeddedPostgres, history: int) -> str:
    """A fresh, migrated database with ``history`` calls, the recent ones scored."""
    dsn = await fresh_database(cluster)
    connection = await asyncpg.connect(dsn)
    try:
        await grow_history(connection, ShiftCalendar(DEFAULT_SHIFTS, TIMEZONE), TIMEZONE,
                           have=0, calls=history, now=datetime.now(UTC))
        await as_a_running_site(connection)  # as bench/surge.py --history leaves it
    finally:
        await connection.close()
    return dsn


async def explain(connection: asyncpg.Connection, title: str, sql: str) -> None:
    rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}",
                                  SCORING_MAX_AGE.total_seconds(), SCORING_BATCH)
    print(f"\n{title}:")
    for row in rows:
        print("  " + row[0])


async def run(history: int, passes: int) -> None:
    with temporary_cluster("siaga112-bench-upkeep-") as (_root, cluster):
        started = time.monotonic()
        dsn = await build(cluster, history)
        connection = await asyncpg.connect(dsn)
        try:
            window = await connection.fetchval(
                "SELECT count(*) FROM calls WHERE ended_at >= now() - make_interval(secs => $1)",
                SCORING_MAX_AGE.total_seconds())
            print(f"{history:,} calls of history, {window:,} ended within "
                  f"{SCORING_MAX_AGE.days} days, all scored "
                  f"(built in {time.monotonic() - started:.0f} s)")
            settings = replace(load_settings(environ={}), database_dsn=dsn)
            database = Database(settings)
            service = ScreeningService(database, FixedConfig(), TIMEZONE)
            try:
                for _ in range(10):  # warm: the pool, prepared statements, the cache
                    assert await service.rescore_ended_calls() == 0
                times = []
                for _ in range(passes):
                    begun = time.perf_counter()
                    assert await service.rescore_ended_calls() == 0
                    times.append((time.perf_counter() - begun) * 1000)
            finally:
                await database.close()
            times.sort()
            print(f"rescore_ended_calls, nothing to score, {passes} passes: "
                  f"p50 {statistics.median(times):.2f} ms, "
                  f"p90 {times[int(len(times) * 0.9)]:.2f} ms, max {times[-1]:.2f} ms")
            await explain(connection, "the window scan (before migration 0032)",
                          WINDOW_SCAN_SQL)
            due_sql: str | None = getattr(store, "DUE_SQL", None)
            if due_sql is not None:
                await explain(connection, "the queue's read (migration 0032)", due_sql)
        finally:
            await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=100_000,
                        help="calls of generated history (default 100,000: 11 days)")
    parser.add_argument("--passes", type=int, default=200, help="passes timed (default 200)")
    args = parser.parse_args(argv)
    asyncio.run(run(args.history, args.passes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
