"""The pre-queue prank score against a history of millions of calls: how long does the IVR wait?

Fills a PostgreSQL database (a private embedded cluster by default; ``--pg-env``: the server
libpq's ``PG*`` variables name, in a scratch database created and dropped there) with
``--calls`` calls (default 10,000,000) of the line's real schema, then scores callers through
the line's own code path (``ScreeningService.pre_queue``: pool, history query, score).

The history is skewed as the published figures describe (Gresik: many numbers calling more than
ten times; Jakarta and Semarang: a quarter to a third prank or silent), scaled to ``--calls``:

* 0.4% of calls from a few extreme numbers (about 2,000 calls each at 10M), within 90 days;
* 3% from heavy repeat callers (about 300 calls each), within 90 days, mostly silent;
* 30% from repeat callers (about 10 calls each), within a year;
* the rest from numbers that call once, within a year; 3% of those withheld.

Heavy callers' calls crowd the recent past (age ~ 90 d x U^2). 5% of calls carry an operator
label (prank and silent for heavy callers, mostly genuine for the others), a tenth of those a
later correction; every ended call has its post-call result, as the upkeep leaves it.

Loading uses generate_series on two connections (one per core) with the bulk secondary
indexes dropped, recreated afterwards exactly as the migrations define them, then
VACUUM ANALYZE (in production autovacuum keeps the visibility map current; index-only scans
need it). The embedded cluster runs with fsync off for the load: it is scratch data.

Printed: build time per step, rows and sizes of the tables and indexes, the plan of the
heaviest caller's history query, and p50/p99/max latency of (a) the history query alone and
(b) the whole pre-queue score, for callers met at random calls (what the line sees), for
first-time numbers, and for the heaviest callers.

Run: ``python bench/screening_history.py [--calls 10000000] [--samples 2000] [--pg-env]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg

from telephony.db.connection import Database
from telephony.db.embedded import temporary_cluster
from telephony.db.migrate import migrate
from telephony.screening.features import DEFAULT_LOOKBACK
from telephony.screening.score import ScoreConfig
from telephony.screening.service import ScreeningService
from telephony.screening.store import HISTORY_SQL, ScreeningRepository
from telephony.settings import load_settings

BULK_TABLES = ("calls", "call_labels", "call_screening")
# Scratch data: durability buys nothing here, load speed does. Reads are measured with the
# embedded cluster's own shared_buffers (128 MB), as a line would run it.
BULK_CONF = (
    "fsync = off\nfull_page_writes = off\n"
    "maintenance_work_mem = '1GB'\nmax_wal_size = '20GB'\ncheckpoint_timeout = '30min'\n"
    "autovacuum = off\n"
)
WARMUP = 200
SUSPECT = ScoreConfig().post_call_threshold  # what the line passes as the suspect score


@dataclass(frozen=True)
class Mix:
    """Call id ranges of each kind of caller, and how many callers share each range."""

    calls: int
    extreme_end: int
    extreme_callers: int
    heavy_end: int
    heavy_callers: int
    repeat_end: int
    repeat_callers: int

    @classmethod
    def for_calls(cls, calls: int) -> Mix:
        """The published skew scaled to ``calls``."""
        extreme = round(calls * 0.004)
        heavy = round(calls * 0.03)
        repeat = round(calls * 0.30)
        return cls(
            calls,
            extreme, max(1, round(extreme / 2000)),
            extreme + heavy, max(1, round(heavy / 300)),
            extreme + heavy + repeat, max(1, round(repeat / 10)),
        )

    def extreme_keys(self) -> list[str]:
        """The heaviest callers' history keys."""
        return [f"62819{k:08d}" for k in range(min(self.extreme_callers, self.extreme_end))]


def call_id(n: int) -> str:
    """Call ids grow with n, so each loader appends to the primary key's right edge."""
    return f"b{n:010d}"


FILL_CALLS = """
INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at, ended_at, answered_at,
                   talk_seconds, ended_by, ivr_outcome, ivr_first_key_ms, ivr_invalid_keys, queue)
SELECT 'b' || lpad(id::text, 10, '0'),
       CASE WHEN key IS NULL THEN '' ELSE '0' || substr(key, 3) END,
       key, line, arrived,
       arrived + make_interval(secs => CASE WHEN answered THEN wait + talk + 3 ELSE wait END),
       CASE WHEN answered THEN arrived + make_interval(secs => wait) END,
       CASE WHEN answered THEN talk END,
       CASE WHEN answered THEN CASE WHEN r5 < 0.5 THEN 'caller' ELSE 'agent' END END,
       outcome,
       CASE WHEN pressed THEN 500 + floor(r3 * 5000)::int END,
       CASE WHEN pressed THEN floor(r5 * 2)::int END,
       CASE WHEN outcome IS NULL THEN NULL ELSE 'emergency-general' END
FROM (
    SELECT id, key, arrived, r3, r5,
           CASE WHEN r6 < 0.85 THEN '112' ELSE '119' END AS line,
           r1 < CASE WHEN nuisance THEN 0.2 ELSE 0.7 END AS pressed,
           r2 < 0.6 AS answered,
           5 + r3 * 60 AS wait,
           CASE WHEN nuisance THEN floor(r4 * 10) ELSE 20 + floor(r4 * 280) END AS talk,
           CASE WHEN r1 < CASE WHEN nuisance THEN 0.2 ELSE 0.7 END THEN 'chosen'
                WHEN r3 < 0.7 THEN 'no_input' END AS outcome
    FROM (
        SELECT id,
               CASE WHEN id < $3 THEN '62819' || lpad((id % $4)::text, 8, '0')
                    WHEN id < $5 THEN '62817' || lpad(((id - $3) % $6)::text, 8, '0')
                    WHEN id < $7 THEN '62815' || lpad(((id - $5) % $8)::text, 8, '0')
                    WHEN random() < 0.03 THEN NULL
                    ELSE '62813' || lpad(id::text, 9, '0') END AS key,
               id < $5 AS nuisance,
               $9::timestamptz - make_interval(secs => CASE
                   WHEN id < $5 THEN 7776000 * power(random(), 2)
                   ELSE 31536000 * random() END) AS arrived,
               random() AS r1, random() AS r2, random() AS r3, random() AS r4,
               random() AS r5, random() AS r6
        FROM generate_series($1::bigint, $2::bigint - 1) AS id
    ) base
) shaped
"""

FILL_LABELS = """
INSERT INTO call_labels (call_id, caller_key, label, labelled_by, labelled_at)
SELECT call_id, caller_key,
       CASE WHEN left(caller_key, 5) IN ('62819', '62817')
            THEN CASE WHEN r < 0.6 THEN 'prank' WHEN r < 0.9 THEN 'silent' ELSE 'genuine' END
            ELSE CASE WHEN r < 0.5 THEN 'genuine' WHEN r < 0.7 THEN 'prank'
                      WHEN r < 0.85 THEN 'silent' WHEN r < 0.95 THEN 'accidental'
                      ELSE 'test' END END,
       'op' || (1 + floor(random() * 40))::int,
       ended_at + make_interval(secs => 60 + random() * 3600)
FROM (SELECT call_id, caller_key, ended_at, random() AS r FROM calls) c
WHERE random() < 0.05
"""

FILL_CORRECTIONS = """
INSERT INTO call_labels (call_id, caller_key, label, labelled_by, labelled_at)
SELECT call_id, caller_key, CASE WHEN label = 'genuine' THEN 'prank' ELSE 'genuine' END, 'spv1',
       labelled_at + interval '20 hours'
FROM call_labels WHERE random() < 0.1
"""

FILL_SCREENING = """
INSERT INTO call_screening (call_id, caller_key, arrived_at, looked_silent, post_score,
                            post_reasons, scored_at)
SELECT call_id, caller_key, arrived_at, looks_silent, random(), '[]',
       ended_at + interval '2 seconds'
FROM calls WHERE call_id >= $1 AND call_id < $2
ORDER BY call_id
"""


class Stopwatch:
    """Named wall-clock steps, printed as they finish."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    async def step(self, name: str, work: Awaitable[object]) -> None:
        """Run ``work`` and note how long it took."""
        started = time.perf_counter()
        await work
        seconds = time.perf_counter() - started
        self.steps.append((name, seconds))
        print(f"  {name:44} {seconds:7.1f} s", flush=True)

    @property
    def total(self) -> float:
        """Seconds over every step."""
        return sum(seconds for _, seconds in self.steps)


Statement = tuple[str, tuple[object, ...]]


async def on_two(dsn: str | None, jobs: Sequence[Sequence[Statement]]) -> None:
    """Run ``jobs`` two at a time, each on a connection (a core) of its own, its statements in
    order, triggers and foreign-key checks off (scratch data, references hold by construction).
    """
    queue = list(jobs)

    async def worker() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("SET session_replication_role = replica")
            # Two jobs already use both cores: no parallel workers on top.
            await connection.execute("SET max_parallel_maintenance_workers = 0")
            while queue:
                for sql, args in queue.pop(0):
                    await connection.execute(sql, *args)
        finally:
            await connection.close()

    await asyncio.gather(worker(), worker())


async def build(dsn: str | None, mix: Mix, now: datetime, seed: int) -> Stopwatch:
    """Migrate, fill, index and analyse; returns the steps' times."""
    watch = Stopwatch()
    connection = await asyncpg.connect(dsn)
    try:
        await watch.step("migrations", migrate(connection))
        # The bulk tables' plain indexes, as the migrations made them; constraints stay.
        indexes = await connection.fetch(
            """
            SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS sql
            FROM pg_index i
            WHERE i.indrelid = ANY($1::regclass[])
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            list(BULK_TABLES),
        )
        for index in indexes:
            await connection.execute(f"DROP INDEX {index['name']}")
        half = mix.calls // 2
        arguments = (mix.extreme_end, mix.extreme_callers, mix.heavy_end, mix.heavy_callers,
                     mix.repeat_end, mix.repeat_callers, now)
        seeds = [(random.Random(seed + part).random() * 2 - 1,) for part in (0, 1)]
        await watch.step(f"calls: {mix.calls:,} rows", on_two(dsn, [
            [("SELECT setseed($1)", seeds[0]), (FILL_CALLS, (0, half, *arguments))],
            [("SELECT setseed($1)", seeds[1]), (FILL_CALLS, (half, mix.calls, *arguments))],
        ]))
        middle = call_id(half)
        await watch.step("labels (5% of calls), post-call results", on_two(dsn, [
            [(FILL_LABELS, ()), (FILL_CORRECTIONS, ())],
            [(FILL_SCREENING, (call_id(0), middle)),
             (FILL_SCREENING, (middle, call_id(mix.calls)))],
        ]))
        await watch.step(f"recreate {len(indexes)} indexes", on_two(dsn, [
            [(index["sql"], ())] for index in indexes]))
        await watch.step("VACUUM ANALYZE", on_two(dsn, [
            [(f"VACUUM (ANALYZE) {table}", ())] for table in BULK_TABLES]))
    finally:
        await connection.close()
    return watch


@dataclass(frozen=True)
class Figures:
    """Latencies of one group of callers, in milliseconds."""

    name: str
    latencies: list[float]
    rows: list[int]

    def line(self) -> str:
        """One printed line."""
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
        rows = f"history rows mean {statistics.fmean(self.rows):7.1f} max {max(self.rows):5d}"
        return (f"  {self.name:34} n={len(ordered):5d}  p50 {p50:6.2f}  p99 {p99:6.2f}  "
                f"max {ordered[-1]:6.2f} ms   {rows}")


async def measure(dsn: str | None, mix: Mix, now: datetime, samples: int, seed: int) -> None:
    """Score callers through the line's code path; print the latencies."""
    rng = random.Random(seed)
    connection = await asyncpg.connect(dsn)
    try:
        picked = [call_id(rng.randrange(mix.calls)) for _ in range(samples)]
        rows = await connection.fetch(
            "SELECT caller_key FROM calls WHERE call_id = ANY($1) AND caller_key IS NOT NULL",
            picked)
        met = [row["caller_key"] for row in rows]
        fresh = [f"62811{rng.randrange(10**8):08d}" for _ in range(max(100, samples // 4))]
        heaviest = mix.extreme_keys() * max(1, samples // (10 * mix.extreme_callers))
        groups = [("callers met at random calls", met), ("first-time numbers", fresh),
                  ("heaviest callers", heaviest)]
        repo = ScreeningRepository()
        lookback = DEFAULT_LOOKBACK

        for key in met[:WARMUP]:  # prepared statement, plan cache, hot index pages
            await repo.history(connection, key, now, lookback, suspect_score=SUSPECT)
        print("\nHistory query alone (one connection, sequential):")
        sizes: dict[str, list[int]] = {}
        for name, keys in groups:
            latencies, counts = [], []
            for key in keys:
                started = time.perf_counter()
                history = await repo.history(connection, key, now, lookback, suspect_score=SUSPECT)
                latencies.append((time.perf_counter() - started) * 1000)
                counts.append(history.calls)
            sizes[name] = counts
            print(Figures(name, latencies, counts).line())

        calls_of = dict(zip(heaviest, sizes["heaviest callers"], strict=True))
        heaviest_key = max(calls_of, key=lambda key: calls_of[key])
        plan = await connection.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + HISTORY_SQL, heaviest_key, now,
            lookback.total_seconds(), SUSPECT)
        print(f"\nPlan of the heaviest caller's history ({heaviest_key}):")
        for line in plan:
            print("  " + line[0])
    finally:
        await connection.close()

    settings = replace(load_settings(environ={}), database_dsn=dsn)
    database = Database(settings)
    service = ScreeningService(database, _Defaults(), settings.timezone)
    try:
        for key in met[:WARMUP]:
            await service.pre_queue("112", "0" + key[2:], now)
        print("\nPre-queue score (ScreeningService.pre_queue: pool + history + score):")
        for name, keys in groups:
            latencies = []
            for key in keys:
                started = time.perf_counter()
                await service.pre_queue("112", "0" + key[2:], now)
                latencies.append((time.perf_counter() - started) * 1000)
            print(Figures(name, latencies, sizes[name]).line())
    finally:
        await database.close()


class _Defaults:
    def current(self) -> ScoreConfig:
        return ScoreConfig()


async def report_sizes(dsn: str | None) -> None:
    """Rows and on-disk sizes of the screening tables and their indexes."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """
            SELECT c.relname, c.relkind, c.reltuples::bigint AS estimated_rows,
                   pg_relation_size(c.oid) AS bytes
            FROM pg_class c
            LEFT JOIN pg_index i ON i.indexrelid = c.oid
            WHERE c.relname = ANY($1) OR i.indrelid = ANY($1::regclass[])
            ORDER BY c.relkind DESC, c.relname
            """,
            list(BULK_TABLES),
        )
    finally:
        await connection.close()
    print("\nTables and indexes (rows as ANALYZE estimates them):")
    for row in rows:
        kind = "table" if row["relkind"] == "r" else "index"
        print(f"  {kind:5} {row['relname']:34} ~{row['estimated_rows']:>11,} rows "
              f"{row['bytes'] / 2**20:9.1f} MiB")


async def run(args: argparse.Namespace, dsn: str | None) -> None:
    """Build, size, measure."""
    mix = Mix.for_calls(args.calls)
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"Building {mix.calls:,} calls: {mix.extreme_callers} extreme callers "
          f"(~{mix.extreme_end // mix.extreme_callers} calls each), {mix.heavy_callers} heavy "
          f"(~{(mix.heavy_end - mix.extreme_end) // mix.heavy_callers}), {mix.repeat_callers:,} "
          "repeat (~10), the rest once")
    watch = await build(dsn, mix, now, args.seed)
    print(f"  {'total build':44} {watch.total:7.1f} s")
    await report_sizes(dsn)
    await measure(dsn, mix, now, args.samples, args.seed)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10_000_000,
                        help="calls in the history table (default 10,000,000)")
    parser.add_argument("--samples", type=int, default=2000,
                        help="callers scored per group (default 2000)")
    parser.add_argument("--seed", type=int, default=112)
    parser.add_argument("--pg-env", action="store_true",
                        help="use the server libpq's PG* variables name (a scratch database is "
                             "created there and dropped afterwards) instead of an embedded one")
    args = parser.parse_args(argv)
    if args.calls < 1000 or args.samples < 1:
        parser.error("--calls must be at least 1000 and --samples positive")
    return args


async def _with_scratch_database(body: Callable[[str | None], Awaitable[None]]) -> None:
    name = f"siaga112_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    os.environ["PGDATABASE"] = name
    try:
        await body(None)
    finally:
        os.environ.pop("PGDATABASE")
        admin = await asyncpg.connect()
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    if args.pg_env:
        asyncio.run(_with_scratch_database(lambda dsn: run(args, dsn)))
        return 0
    with temporary_cluster("siaga112-screening-bench-", conf=BULK_CONF) as (_root, cluster):
        asyncio.run(run(args, cluster.dsn()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
