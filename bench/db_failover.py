"""The PostgreSQL primary killed under a stream of calls: failover time and how long the
spool held the line's facts (issue 15).

Each run starts etcd and a Patroni pair (primary and synchronous replica) on loopback in a
temp dir (telephony/lab/patroni.py), a whole line writing to it through its multi-host DSN,
and a fake Asterisk streaming ``--calls`` calls' AMI events (the synthetic answered call of
tests/fixtures, renumbered) at ``--rate`` calls/s; ``--kill-after`` seconds in, the primary is
killed (telephony/lab/failover.py):

- ``postgres``: kill -9 of the primary's postmaster; its Patroni lives and fails over at once
  (``primary_start_timeout`` 0);
- ``node``: kill -9 of the primary's Patroni and postmaster together, as a machine lost; the
  replica takes over when the leader key expires (``patroni_ttl``);
- ``freeze`` (only with ``--only freeze``): SIGSTOP of the primary's Patroni, postmaster and
  backends, as a machine that hangs: the same failover, but the line's open connections to it
  go silent instead of closing.

Printed per run as a Markdown table (or ``--json``): failover (kill -> Patroni reports the
replica running as primary), spool held (first fact spooled -> spool empty again), spool peak
(facts), calls stored / lost / duplicated (a call with fewer or more stored facts than the
first one, or no end), AMI logins (1: the call stream never broke). Exit status 0 only when
every run lost and duplicated nothing.

Run (root, or a user that can run PostgreSQL): ``python bench/db_failover.py [--runs 3]
[--calls 300] [--rate 20] [--only node] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from telephony.ami.testing import read_events
from telephony.db.embedded import free_loopback_port
from telephony.lab.failover import ALL_FAULTS, FAULTS, FailoverResult, Fault, run_failover
from telephony.lab.patroni import patroni_cluster
from telephony.settings import load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
TRANSCRIPT = FIXTURES / "ami_synthetic_call_answered.txt"


def table(results: Sequence[FailoverResult]) -> str:
    lines = ["| fault | failover | spool held | spool peak | calls stored | lost | "
             "duplicated | AMI logins |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        failover = "n/a" if r.failover_seconds is None else f"{r.failover_seconds:.1f} s"
        lines.append(f"| {r.fault} | {failover} | {r.spool_held_seconds:.1f} s | "
                     f"{r.spool_peak} facts | {r.stored_calls}/{r.calls} | {len(r.lost)} | "
                     f"{len(r.duplicated)} | {r.ami_logins} |")
    return "\n".join(lines)


async def one_run(fault: Fault, args: argparse.Namespace) -> FailoverResult:
    with tempfile.TemporaryDirectory(prefix="siaga112-db-failover-") as state:
        base = replace(load_settings(environ={}), state_dir=Path(state) / "state",
                       http_port=0, agi_port=free_loopback_port(),
                       ami_port=free_loopback_port(),
                       recordings_incoming_dir=Path(state) / "monitor",
                       asterisk_etc_dir=Path(state) / "asterisk-etc",
                       asterisk_sounds_dir=Path(state) / "sounds",
                       db_retry_seconds=args.retry_seconds)
        with patroni_cluster(base, prefix="siaga112-bench-patroni-") as lab:
            return await run_failover(lab, base, read_events(TRANSCRIPT), fault=fault,
                                      calls=args.calls, rate=args.rate,
                                      kill_after=args.kill_after)


async def run(args: argparse.Namespace) -> list[FailoverResult]:
    results = []
    for _ in range(args.runs):
        for fault in args.only or FAULTS:
            result = await one_run(fault, args)
            print(f"{fault}: failover {result.failover_seconds}, spool held "
                  f"{result.spool_held_seconds:.2f} s, intact {result.intact}",
                  file=sys.stderr)
            results.append(result)
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds into the stream")
    parser.add_argument("--retry-seconds", type=float, default=2.0,
                        help="the line's db_retry_seconds (the spool's retry pace)")
    parser.add_argument("--only", action="append", choices=ALL_FAULTS,
                        help=f"a fault to run (repeatable; default: {', '.join(FAULTS)})")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        print(table(results))
    return 0 if all(r.intact for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
