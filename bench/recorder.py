"""The recorder's write rate: call facts per second into a real PostgreSQL.

The facts are what the call tracker makes of the recorded AMI transcripts of
``tests/fixtures`` (the real Asterisk 22 lab's bytes), renumbered into ``--calls`` distinct
calls as ``bench/ami_ingest.py`` does: call facts plus the operators' state changes, in the
order a surge's AMI stream gives them. They are written into a fresh, migrated database of an
embedded PostgreSQL cluster (``telephony/db/embedded.py``), two ways, ``--runs`` times each,
interleaved:

- ``one per transaction``: ``CallRepository.apply`` with one fact at a time, as the recorder
  wrote each event when nothing was queued (and as a batch the database refused is retried);
- ``batched``: ``CallRepository.apply`` with the listener's batches of
  ``MAX_BATCH_FACTS`` (one statement, one round trip: ``record_call_facts``).

Prints facts/s, min-max over the runs. A shared machine's neighbours move these figures.

Run: ``python bench/recorder.py [--calls 1000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

import asyncpg
from ami_ingest import build_stream  # bench/ is the script directory: sys.path[0]
from history import fresh_database

from telephony.ami.framing import AmiFrame, AmiFrameDecoder
from telephony.ami.listener import MAX_BATCH_FACTS
from telephony.ami.tracker import CallTracker
from telephony.calls.facts import CallFact
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.settings import DEFAULT_SHIFTS

FRAMES_PER_CALL = 60  # about one call of the transcripts (with its share of the resync)


def surge_facts(calls: int) -> list[CallFact]:
    """The facts of about ``calls`` calls (the transcripts' resync and operator legs make
    some frames that start no call), in stream order."""
    stream, _ = build_stream(calls * FRAMES_PER_CALL)
    tracker = CallTracker()
    facts: list[CallFact] = []
    for frame in AmiFrameDecoder().feed(stream):
        if isinstance(frame, AmiFrame) and frame.get("Event"):
            with contextlib.suppress(ValueError):  # a resync reply's events: not live ones
                facts.extend(tracker.handle(frame.to_message()))
    return facts


async def write(dsn: str, facts: Sequence[CallFact], batch: int) -> float:
    """Seconds to write ``facts`` in transactions of ``batch`` facts."""
    repository = CallRepository(ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta"))
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for start in range(0, len(facts), batch):
            await repository.apply(connection, facts[start:start + batch])
        return time.perf_counter() - started
    finally:
        await connection.close()


async def run(args: argparse.Namespace, cluster: EmbeddedPostgres) -> int:
    facts = surge_facts(args.calls)
    calls = len({getattr(fact, "call_id", None) for fact in facts} - {None})
    print(f"{len(facts)} facts of {calls} calls ({len(facts) / max(calls, 1):.1f} per call, "
          "operator states included)")
    ways = {"one per transaction": 1, f"batched ({MAX_BATCH_FACTS})": MAX_BATCH_FACTS}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):
        for name, batch in ways.items():
            dsn = await fresh_database(cluster)
            rates[name].append(len(facts) / await write(dsn, facts, batch))
    for name, values in rates.items():
        print(f"{name:>24}: {min(values):8.0f} - {max(values):8.0f} facts/s")
    slow, fast = (rates[name] for name in ways)
    print(f"{'batched / one by one':>24}: {min(fast) / max(slow):.1f}x - "
          f"{max(fast) / min(slow):.1f}x")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000, help="surge calls (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each way (default 3)")
    args = parser.parse_args(argv)
    with temporary_cluster("siaga112-recorder-") as (_root, cluster):
        return asyncio.run(run(args, cluster))


if __name__ == "__main__":
    sys.exit(main())
