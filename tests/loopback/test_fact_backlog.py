"""The listener's bounded backlog against a real PostgreSQL: while the database is held up,
the facts beyond the bound go to the spool, and everything arrives in order, exactly once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import asyncpg

from telephony.ami.testing import fake_asterisk
from telephony.calls.facts import fact_to_json
from telephony.calls.recorder import CallRecorder
from telephony.calls.spool import FactSpool
from telephony.calls.store import CallRepository, dedupe_key
from telephony.db.connection import Database, DatabaseUnavailable, DatabaseWork, T
from telephony.settings import Settings
from tests.support.ami import (
    ABANDONED,
    ANSWERED,
    SeenFacts,
    eventually,
    expected_facts,
    listener,
)
from tests.support.calls import CALENDAR, call_facts


async def test_a_held_up_database_spills_the_backlog_to_the_spool_in_order(
    database_dsn: str, database_owner_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    database = Database(replace(settings, database_dsn=database_dsn))
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    flusher = asyncio.create_task(recorder.run_flusher())
    seen = SeenFacts()
    # ACCESS EXCLUSIVE is the owner's to take (a migration, a maintenance job).
    blocker = await asyncpg.connect(database_owner_dsn)
    try:
        async with fake_asterisk() as server:
            ami = listener(server.port, recorder, backlog_bound=4)
            ami.observe(seen)
            async with ami:
                async with asyncio.timeout(5):
                    await ami.wait_ready()
                # The database holds every write up (a long lock, as under a heavy report).
                lock = blocker.transaction()
                await lock.start()
                await blocker.execute("LOCK TABLE call_events IN ACCESS EXCLUSIVE MODE")
                # A first fact is being written when the others come in, too many to hold
                # (the call's start comes with its first dialplan step, its second event).
                first = next(n for n in range(1, len(ANSWERED) + 1)
                             if expected_facts(ANSWERED[:n]))
                await server.send_frames(ANSWERED[:first])
                await eventually(lambda: recorder.writing)
                await server.send_frames(ANSWERED[first:])
                await server.send_frames(ABANDONED)
                # The wallboard's side does not wait for the database.
                await eventually(lambda: len(seen.facts) == len(
                    expected_facts(ANSWERED) + expected_facts(ABANDONED)))
                await eventually(lambda: recorder.overflowed > 0)
                assert ami.facts_waiting <= 4 + 1  # the bound, plus the fact being written
                assert recorder.writing
                assert not spool.is_empty()
                await lock.rollback()
                await eventually(lambda: ami.facts_waiting == 0 and spool.is_empty(), 10)
        rows = await blocker.fetch("SELECT dedupe_key, body::text FROM call_events "
                                   "ORDER BY event_id")
    finally:
        flusher.cancel()
        await blocker.close()
        await database.close()
    assert ami.facts_overflowed == recorder.overflowed > 0
    # In the order the listener learned them, each once (a repeated fact is one event).
    expected = list(dict.fromkeys(dedupe_key(fact) for fact in seen.facts))
    assert [row["dedupe_key"] for row in rows] == expected
    bodies = {dedupe_key(fact): fact_to_json(fact) for fact in seen.facts}
    assert all(bodies[row["dedupe_key"]] for row in rows)


async def test_stop_records_what_was_received(
    database_dsn: str, database_owner_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """Stopping while the database holds a write up: stop returns only once every fact
    received is written (or spooled), in order."""
    database = Database(replace(settings, database_dsn=database_dsn))
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    seen = SeenFacts()
    # ACCESS EXCLUSIVE is the owner's to take (a migration, a maintenance job).
    blocker = await asyncpg.connect(database_owner_dsn)
    try:
        async with fake_asterisk() as server:
            ami = listener(server.port, recorder, backlog_bound=1000)
            ami.observe(seen)
            await ami.start()
            async with asyncio.timeout(5):
                await ami.wait_ready()
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("LOCK TABLE call_events IN ACCESS EXCLUSIVE MODE")
            await server.send_frames(ANSWERED)
            await eventually(lambda: len(seen.facts) == len(expected_facts(ANSWERED)))
            stopping = asyncio.create_task(ami.stop())
            # Bounded: stop must still be waiting for the write when this times out.
            done, _ = await asyncio.wait({stopping}, timeout=0.3)
            assert not done
            await lock.rollback()
            async with asyncio.timeout(10):
                await stopping
            assert ami.facts_waiting == 0
        await recorder.flush()
        rows = await blocker.fetch("SELECT dedupe_key FROM call_events ORDER BY event_id")
    finally:
        await blocker.close()
        await database.close()
    assert [row["dedupe_key"] for row in rows] == list(
        dict.fromkeys(dedupe_key(fact) for fact in seen.facts))


class HeldDatabase(Database):
    """A database that holds each write until let go, then turns out to be away."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gate = asyncio.Event()
        self.writing = asyncio.Event()

    async def run(self, work: DatabaseWork[T]) -> T:
        self.writing.set()
        await self.gate.wait()
        raise DatabaseUnavailable("held, then gone")


async def test_facts_overflowing_during_a_failed_write_go_behind_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The batch being written is older than what overflows meanwhile: when the database
    turns out to be away, the batch still lands in the spool ahead of them."""
    database = HeldDatabase(settings)
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    first, second, third = call_facts("o.1")[:3], call_facts("o.2")[:3], call_facts("o.3")[:2]
    writing = asyncio.create_task(recorder.record(first))
    await database.writing.wait()
    recorder.overflow(second)  # the listener's backlog is full meanwhile
    assert spool.seal() == []  # nothing may be drained ahead of the batch being written
    database.gate.set()
    await writing
    recorder.overflow(third)
    replayed = [fact for segment in spool.seal() for fact in spool.read(segment)]
    assert replayed == [*first, *second, *third]
