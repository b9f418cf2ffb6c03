"""A spool that cannot be written (a real full file system: a tiny tmpfs) while PostgreSQL
is away: facts are held in memory and retried, a fallback directory takes them if there is
one, the alarm is up while they are held only in memory, and past the memory bound the loss is
counted once and a resync requested. Nothing else is lost; the order holds; each fact once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import pytest

from telephony.app import running_line
from telephony.calls import spool as spool_module
from telephony.calls.facts import CallFact
from telephony.calls.recorder import CallRecorder
from telephony.calls.spool import FactSpool
from telephony.calls.store import CallRepository, dedupe_key
from telephony.db.connection import DatabaseUnavailable
from telephony.metrics.live import SpoolCollector
from telephony.settings import Settings
from tests.support.ami import eventually
from tests.support.calls import CALENDAR, call_facts
from tests.support.db import OutageDatabase, fetch
from tests.support.disk import fill_up, tiny_tmpfs


@dataclass
class Rig:
    database: OutageDatabase
    spool: FactSpool
    recorder: CallRecorder
    losses: list[int]

    def metric(self, name: str) -> float:
        for family in SpoolCollector(self.recorder).collect():
            for sample in family.samples:
                if sample.name == name:
                    return sample.value
        raise AssertionError(f"no {name}")


class RigFactory(Protocol):
    def __call__(self, directory: Path, *, fallback: Path | None = None,
                 memory_bound: int = 50_000) -> Rig: ...


@pytest.fixture
async def rig_factory(database_dsn: str, settings: Settings, tmp_path: Path
                      ) -> AsyncIterator[RigFactory]:
    started: list[tuple[Rig, asyncio.Task[None]]] = []

    def start(directory: Path, *, fallback: Path | None = None,
              memory_bound: int = 50_000) -> Rig:
        database = OutageDatabase(replace(settings, database_dsn=database_dsn))
        database.down = True
        spool = FactSpool(directory, fallback=fallback, memory_bound=memory_bound)
        recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.05)
        rig = Rig(database, spool, recorder, [])
        recorder.after_spool_failure(lambda: rig.losses.append(len(rig.losses) + 1))
        started.append((rig, asyncio.create_task(recorder.run_flusher())))
        return rig

    yield start
    for rig, flusher in started:
        flusher.cancel()
        await asyncio.wait([flusher])
        await rig.database.close()


def batches(count: int) -> list[list[CallFact]]:
    """``count`` calls' facts, one batch per call (as the persister hands them over)."""
    return [call_facts(f"sf.{n}") for n in range(count)]


async def stored_keys(database_dsn: str) -> list[str]:
    rows = await fetch(database_dsn, "SELECT dedupe_key FROM call_events ORDER BY event_id")
    return [row["dedupe_key"] for row in rows]


def keys(facts: Sequence[CallFact]) -> list[str]:
    return list(dict.fromkeys(dedupe_key(fact) for fact in facts))


async def test_a_full_spool_holds_facts_in_memory_and_writes_them_later_in_order(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path
) -> None:
    with tiny_tmpfs(tmp_path / "spool") as directory:
        rig = rig_factory(directory)
        calls = batches(6)
        await rig.recorder.record(calls[0])  # the database is away: spooled on disk
        assert not rig.spool.failing
        filler = fill_up(directory)
        rig.spool.seal()  # the next write needs a new page: a file of its own
        rig.spool.seal()  # the next write needs a new page: a file of its own
        await rig.recorder.record(calls[1])
        rig.recorder.overflow(calls[2])  # the listener's backlog overflowing, too
        await rig.recorder.record(calls[3])
        # Held only in memory: the alarm is up.
        assert rig.recorder.failing and rig.recorder.held == sum(map(len, calls[1:4]))
        assert rig.metric("siaga112_spool_failing") == 1
        filler.unlink()  # space again: the flusher moves them to disk, in order
        await eventually(lambda: not rig.recorder.failing)
        assert rig.metric("siaga112_spool_failing") == 0
        await rig.recorder.record(calls[4])
        on_disk = [f for n in rig.spool.seal() for f in rig.spool.read(n)]
        assert on_disk == [f for call in calls[:5] for f in call]  # in order, each once
        rig.database.down = False
        await eventually(rig.spool.is_empty)
        await rig.recorder.record(calls[5])
    expected = [f for call in calls for f in call]
    assert await stored_keys(database_dsn) == keys(expected)
    # Writing works again: one resync all the same, though nothing was lost.
    assert rig.losses == [1] and rig.recorder.dropped == 0


async def test_the_database_back_takes_what_memory_holds(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path
) -> None:
    """The disk stays full; the database coming back is enough, and the order holds across
    disk and memory."""
    with tiny_tmpfs(tmp_path / "spool") as directory:
        rig = rig_factory(directory)
        calls = batches(4)
        await rig.recorder.record(calls[0])
        fill_up(directory)
        rig.spool.seal()  # the next write needs a new page: a file of its own
        for call in calls[1:3]:
            await rig.recorder.record(call)
        assert rig.recorder.failing
        rig.database.down = False
        await eventually(lambda: rig.spool.is_empty() and not rig.recorder.failing)
        await rig.recorder.record(calls[3])
    assert await stored_keys(database_dsn) == keys([f for call in calls for f in call])
    assert rig.losses == [1]


async def test_the_fallback_directory_takes_what_the_spool_cannot(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path
) -> None:
    with tiny_tmpfs(tmp_path / "spool") as directory:
        fallback = tmp_path / "fallback"
        rig = rig_factory(directory, fallback=fallback)
        calls = batches(4)
        await rig.recorder.record(calls[0])
        filler = fill_up(directory)
        rig.spool.seal()  # the next write needs a new page: a file of its own
        rig.spool.seal()  # the next write needs a new page: a file of its own
        await rig.recorder.record(calls[1])
        rig.recorder.overflow(calls[2])
        assert not rig.recorder.failing  # on disk, in the fallback: no alarm
        assert list(fallback.glob("*.jsonl"))
        filler.unlink()
        await rig.recorder.record(calls[3])  # the spool's own directory again
        assert rig.spool.pending_count() == sum(map(len, calls))
        rig.database.down = False
        await eventually(rig.spool.is_empty)
    assert await stored_keys(database_dsn) == keys([f for call in calls for f in call])
    assert not list(fallback.glob("*.jsonl"))


async def test_past_the_memory_bound_the_loss_is_logged_once_and_a_resync_requested(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "telephony.calls")
    with tiny_tmpfs(tmp_path / "spool") as directory:
        rig = rig_factory(directory, memory_bound=10)
        fill_up(directory)
        rig.spool.seal()  # the next write needs a new page: a file of its own
        calls = batches(5)
        for call in calls:
            await rig.recorder.record(call)
        held = [f for call in calls for f in call][:10]
        dropped = sum(map(len, calls)) - 10
        assert rig.recorder.held == 10 and rig.recorder.dropped == dropped
        assert rig.metric("siaga112_spool_facts_dropped_total") == dropped
        rig.database.down = False
        await eventually(lambda: rig.losses == [1])
    assert await stored_keys(database_dsn) == keys(held)
    lost = [r.getMessage() for r in caplog.records if "were lost" in r.getMessage()]
    assert lost == [f"{dropped} call facts were lost while neither PostgreSQL nor the spool "
                    "could take them (memory bound 10); resyncing from Asterisk to restore "
                    "the live calls"]
    bound = [r for r in caplog.records if "reached the bound" in r.getMessage()]
    assert len(bound) == 1
    # For 30 facts: the database away, the directory failing, holding, the bound, the count;
    # one line each per episode, not one per fact.
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 5


async def test_a_spool_directory_replaced_by_a_file_holds_facts_until_it_is_back(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path
) -> None:
    """No mount needed: the spool's directory turns into a plain file (a botched mount or
    clean-up); facts are held in memory, then written once it is a directory again."""
    directory = tmp_path / "spool"
    rig = rig_factory(directory)
    calls = batches(3)
    await rig.recorder.record(calls[0])
    rig.spool.seal()
    moved = directory.rename(tmp_path / "spool.moved")
    directory.write_bytes(b"not a directory")
    await rig.recorder.record(calls[1])
    assert rig.recorder.failing
    directory.unlink()
    moved.rename(directory)
    await eventually(lambda: not rig.recorder.failing)
    await rig.recorder.record(calls[2])
    rig.database.down = False
    await eventually(rig.spool.is_empty)
    assert await stored_keys(database_dsn) == keys([f for call in calls for f in call])


async def test_a_spool_directory_that_is_a_file_at_start_holds_facts_until_it_can_be_made(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path
) -> None:
    """The spool's path is a plain file before the line even starts (a botched mount or
    clean-up): the spool is made all the same, holds facts in memory while the database is
    away, and writes them to a directory made there once the file is gone."""
    directory = tmp_path / "spool"
    directory.write_bytes(b"not a directory")
    rig = rig_factory(directory)
    calls = batches(2)
    await rig.recorder.record(calls[0])
    assert rig.recorder.failing and rig.recorder.held == len(calls[0])
    directory.unlink()
    await eventually(lambda: not rig.recorder.failing)
    assert directory.is_dir() and rig.spool.pending_count() == len(calls[0])
    await rig.recorder.record(calls[1])
    rig.database.down = False
    await eventually(rig.spool.is_empty)
    assert await stored_keys(database_dsn) == keys([f for call in calls for f in call])


async def test_the_line_starts_with_a_file_where_its_spool_directory_should_be(
    line_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a crash with a traceback (no IVR for any caller until an engineer comes): the line
    takes calls, and says once what is wrong."""
    caplog.set_level(logging.INFO, "telephony")
    line_settings.spool_dir.parent.mkdir(parents=True, exist_ok=True)
    line_settings.spool_dir.write_bytes(b"not a directory")
    async with running_line(line_settings) as line:
        assert line.callpath.serving
        assert line.recorder.pending() == 0 and not line.recorder.failing
    said = [r for r in caplog.records if str(line_settings.spool_dir) in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.ERROR and said[0].exc_info is None, [
        r.getMessage() for r in said]


async def test_a_long_outage_grows_few_bounded_segments_and_replays_them_in_order(
    rig_factory: RigFactory, database_dsn: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Days without the database: the flusher tries every db_retry_seconds and each try used
    to start a segment file of its own (20,000 after half a day of busy hours, every later try
    and scrape slower by the file). Now the segment the first try sealed waits, the next one
    grows, closed at its size bound so that a replay never reads days of facts at once, and
    the replay is still oldest first, each fact once."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 16 * 1024)
    rig = rig_factory(tmp_path / "spool")
    calls = batches(120)
    for call in calls:
        await rig.recorder.record(call)
        with pytest.raises(DatabaseUnavailable):
            await rig.recorder.flush()  # the flusher's try, as every db_retry_seconds
    segments = sorted(p for p in (tmp_path / "spool").glob("*.jsonl"))
    sizes = [p.stat().st_size for p in segments]
    total = sum(sizes)
    # By size, not by try: about one file per bound, each within the bound and one batch.
    assert len(segments) <= total // (16 * 1024) + 2, (len(segments), total)
    assert max(sizes) < 16 * 1024 + 4096
    rig.database.down = False
    await eventually(rig.spool.is_empty)
    assert await stored_keys(database_dsn) == keys([f for call in calls for f in call])
