"""The call-back worklist on a busy day: how long does reading it take (the list page, and the
wallboard, which reads it at every refresh, at most once a second)?

Fills a private embedded PostgreSQL with the line's real schema: ``--window`` calls in the last
24 hours (default 50,000, a surge day for a regency line) on top of ``--older`` calls of the
year before, 30% of the day's callers calling more than once. Of the day's calls, 15% are
abandoned in a queue, 2% end in the IVR after choosing an emergency, 1% are lost to a network
cause, 4% withheld; the rest are answered. A tenth of the abandoning callers have been called
back (half reached), a few entries closed. Then it reads the worklist through the service's
own code path (``CallbackService.worklist``: pool, four range scans, the pure rules) and its
backlog, and prints p50/p99/max and the list's size.

Run: ``python bench/callback_worklist.py [--window 50000] [--older 500000] [--samples 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from telephony.callbacks.service import CallbackConfig, CallbackService
from telephony.db.connection import Database
from telephony.db.embedded import temporary_cluster
from telephony.db.migrate import migrate
from telephony.desks.store import Assignment
from telephony.settings import load_settings

FILL = """
INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at, answered_at, ended_at,
                   queue, abandoned_at, ivr_category, hangup_cause)
SELECT call_id, number, CASE WHEN withheld THEN NULL ELSE '62' || substr(number, 2) END,
       '112', arrived,
       CASE WHEN kind >= 22 THEN arrived + interval '20 seconds' END,
       arrived + interval '90 seconds',
       CASE WHEN kind < 15 OR kind >= 22 THEN 'fire' END,
       CASE WHEN kind < 15 THEN arrived + interval '60 seconds' END,
       CASE WHEN kind >= 15 AND kind < 17 THEN 'emergency'
            WHEN kind >= 17 AND kind < 22 THEN 'information' ELSE 'emergency' END,
       CASE WHEN kind = 21 THEN 38 ELSE 16 END
FROM (
    SELECT n || '.' || $4 AS call_id,
           now() - $2::interval * random() - $3::interval AS arrived,
           (n % 100) AS kind,
           (n % 25 = 0) AS withheld,
           CASE WHEN n % 25 = 0 THEN 'anonymous'
                WHEN n % 10 < 3 THEN '0812' || lpad((n % 4999)::text, 8, '0')
                ELSE '0813' || lpad(n::text, 8, '0') END AS number
    FROM generate_series(1, $1) AS n
) AS made
"""
LEGS = """
INSERT INTO call_legs (kind, call_id, operator, actor, number, target, requested_at,
                       rang_at, answered_at, ended_at, outcome, status)
SELECT 'callback', call_id, 'PJSIP/op1001', 'op1001', caller_number, 'penelepon',
       ended_at + interval '5 minutes', ended_at + interval '5 minutes',
       CASE WHEN n % 2 = 0 THEN ended_at + interval '6 minutes' END,
       ended_at + interval '8 minutes',
       CASE WHEN n % 2 = 0 THEN 'answered' ELSE 'no_answer' END, 'ANSWER'
FROM (SELECT c.*, row_number() OVER () AS n FROM calls c
      WHERE abandoned_at IS NOT NULL AND caller_key IS NOT NULL
        AND arrived_at > now() - interval '20 hours' AND random() < 0.1) AS picked
"""
CLOSE = """
INSERT INTO callback_closures (call_id, reason, note, closed_by)
SELECT call_id, 'handled', '', 'spv1' FROM calls
WHERE abandoned_at IS NOT NULL AND arrived_at > now() - interval '20 hours' AND random() < 0.01
ON CONFLICT DO NOTHING
"""


class NoAmi:
    """Reading the worklist needs no Asterisk."""

    def subscribe(self, event: str, handler: Any) -> None:
        pass

    async def send_action(self, action: Mapping[str, str]) -> Any:
        raise AssertionError("not used")

    async def send_list_action(self, action: Mapping[str, str]) -> list[Any]:
        raise AssertionError("not used")


class NoDesks:
    async def desk_of(self, account: Any) -> Assignment:
        raise AssertionError("not used")


class NoAudit:
    async def audit(self, **_: Any) -> None:
        raise AssertionError("not used")


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms")


async def run(dsn: str, state_dir: Path, window: int, older: int, samples: int) -> None:
    settings = replace(load_settings(environ={}), state_dir=state_dir, database_dsn=dsn)
    database = Database(settings)
    started = time.monotonic()

    async def fill(connection: Any) -> None:
        await migrate(connection)
        await connection.execute(FILL, older, timedelta(days=365), timedelta(days=1), "o")
        await connection.execute(FILL, window, timedelta(hours=24), timedelta(0), "w")
        await connection.execute(LEGS)
        await connection.execute(CLOSE)
        await connection.execute("ANALYZE")

    await database.run(fill)
    print(f"filled {older + window} calls in {time.monotonic() - started:.1f} s")
    service = CallbackService(database, NoAmi(), NoDesks(), NoAudit(), CallbackConfig())
    entries = await service.worklist()
    callable_ = sum(1 for e in entries if e.possible)
    print(f"worklist: {len(entries)} entries ({callable_} callable, "
          f"{len(entries) - callable_} not possible), "
          f"{sum(len(e.calls) for e in entries)} calls")
    uncached = replace(service.config, cache_seconds=0)
    service = CallbackService(database, NoAmi(), NoDesks(), NoAudit(), uncached)
    for what, read in (("worklist", service.worklist), ("backlog", service.backlog)):
        times = []
        for _ in range(samples):
            begun = time.perf_counter()
            await read()
            times.append(time.perf_counter() - begun)
        print(f"{what}: {figures(times)}")
    await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=50_000)
    parser.add_argument("--older", type=int, default=500_000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    with temporary_cluster("siaga112-bench-cb-") as (root, cluster):
        asyncio.run(run(cluster.dsn(), root / "state", args.window, args.older, args.samples))


if __name__ == "__main__":
    main()
