"""The recordings worker against a real PostgreSQL, real audio (sox) and real ffmpeg.

Calls are written through the call store as the AMI listener would; each test has its own
database and its own monitor, storage and quarantine directories.
"""

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydub import AudioSegment

from recordings.domain import CALL_KINDS, Kind, State, source_name, storage_relpath, temp_name
from recordings.files import refuses_files
from recordings.holder import process_started
from recordings.store import Job, Recording, RecordingRepository
from recordings.worker import Outcome, RecordingsConfig, RecordingWorker
from telephony.calls.facts import CallEnded, CallFact, CallStarted, IvrVariableSet, LegProgressed
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository, LegRepository
from telephony.db.connection import Database
from telephony.settings import DEFAULT_SHIFTS
from tests.support.disk import fill_up, read_only, tiny_tmpfs
from tests.support.polling import eventually
from tests.support.recording_worker import (
    children_of,
    ffmpeg_pids,
    group_members,
    realtime_ffmpeg,
    with_path_first,
    worker_argv,
)

CALLS = CallRepository(ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta"))
RECORDINGS = RecordingRepository()


def speech_like(path: Path) -> None:
    """8 s of 8 kHz mono WAV as MixMonitor writes it: 3 s of modulated tone, 2 s of silence,
    3 s of tone again."""
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
         "synth", "3", "sine", "300-900", "tremolo", "4", "60", "vol", "0.5", ":",
         "synth", "2", "sine", "440", "vol", "0", ":",
         "synth", "3", "sine", "500", "tremolo", "3", "70", "vol", "0.4"],
        check=True, capture_output=True,
    )


def new_call_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 1_000_000}"


async def ended_call(
    database: Database, call_id: str, *, ago: float = 5.0, category: str = "emergency",
    ended: bool = True,
) -> datetime:
    """A call that arrived 10 s before it ended, ``ago`` seconds ago; returns its arrival."""
    end = datetime.now(UTC) - timedelta(seconds=ago)
    start = end - timedelta(seconds=10)
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, "PJSIP/carrier-00000001", "081234567890", "", "112",
                    start),
        IvrVariableSet(call_id, "category", category, start + timedelta(seconds=3)),
    ]
    if ended:
        facts.append(CallEnded(call_id, 16, "Normal Clearing", end))
    await database.run(lambda c: CALLS.apply(c, facts))
    return start


async def recording_of(database: Database, call_id: str) -> Recording:
    found = await database.run(lambda c: RECORDINGS.recording(c, call_id))
    assert found is not None, f"no recording row for {call_id}"
    return found


async def time_passes(database: Database, call_id: str) -> None:
    """The job's lease, or its retry delay, runs out now rather than later."""
    await database.run(lambda c: c.execute(
        "UPDATE recordings SET lease_until = now() - interval '1 second' WHERE call_id = $1",
        call_id))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def config(tmp_path: Path) -> RecordingsConfig:
    incoming = tmp_path / "monitor"
    incoming.mkdir()
    return RecordingsConfig(
        incoming_dir=incoming, storage_dir=tmp_path / "store",
        quarantine_dir=tmp_path / "quarantine", fmt="opus", timezone="Asia/Jakarta",
        poll_seconds=0.1, settle_seconds=0.0, missing_after_seconds=30.0, lookback_hours=48,
        lease_seconds=60.0, process_timeout=30.0, max_attempts=3, retry_seconds=0.0,
    )


@pytest.mark.parametrize(("fmt", "container", "magic"),
                         [("opus", "ogg", b"OggS"), ("mp3", "mp3", b"ID3")])
async def test_ended_call_is_paired_measured_transcoded_and_stored(
    database: Database, config: RecordingsConfig, fmt: str, container: str, magic: bytes
) -> None:
    config = replace(config, fmt=fmt)
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    speech_like(config.incoming_dir / f"{call_id}.wav")
    worker = RecordingWorker(database, config)

    outcomes = await worker.run_once()

    relpath = storage_relpath(call_id, started, "Asia/Jakarta", fmt).as_posix()
    assert [(o.state, o.detail) for o in outcomes] == [
        (State.PENDING, f"{call_id}.wav"), (State.DONE, relpath)]
    row = await recording_of(database, call_id)
    stored = config.storage_dir / relpath
    assert (row.state, row.format, row.storage_path, row.attempts) == (State.DONE, fmt, relpath, 1)
    assert row.started_at == started
    assert row.duration_seconds == pytest.approx(8.0, abs=0.05)
    assert row.silence_share == pytest.approx(0.25, abs=0.03)
    assert row.loudness_dbfs is not None and -25 < row.loudness_dbfs < -5
    assert row.sha256 == sha256(stored) and row.size_bytes == stored.stat().st_size
    assert stored.read_bytes()[:4].startswith(magic)
    with stored.open("rb") as handle:
        decoded = AudioSegment.from_file(handle, format=container)
    assert len(decoded) / 1000 == pytest.approx(8.0, abs=0.1)
    # Only the stored file is left: no temporary file, Asterisk's copy removed.
    assert files_under(config.storage_dir) == [stored]
    assert files_under(config.incoming_dir) == []
    assert await worker.run_once() == []


async def test_a_file_still_being_written_waits(
    database: Database, config: RecordingsConfig
) -> None:
    config = replace(config, settle_seconds=60.0)
    call_id = new_call_id()
    await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    speech_like(source)
    worker = RecordingWorker(database, config)
    assert await worker.run_once() == []
    old = time.time() - 61
    os.utime(source, (old, old))
    assert [o.state for o in await worker.run_once()] == [State.PENDING, State.DONE]


async def test_calls_in_progress_are_left_alone(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id, ended=False)
    speech_like(config.incoming_dir / f"{call_id}.wav")
    assert await RecordingWorker(database, config).run_once() == []
    assert await database.run(lambda c: RECORDINGS.recording(c, call_id)) is None


async def test_a_call_that_ended_without_a_file_is_reported_once(
    database: Database, config: RecordingsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    recent, old = new_call_id(), new_call_id()
    await ended_call(database, recent, ago=1)
    await ended_call(database, old, ago=120)
    worker = RecordingWorker(database, config)
    with caplog.at_level(logging.WARNING, logger="recordings"):
        first = await worker.run_once()
        second = await worker.run_once()
    assert [(o.call_id, o.state) for o in first] == [(old, State.MISSING)]
    assert second == []
    assert [r.getMessage() for r in caplog.records].count(
        f"call {old} ended 120 s ago without a recording in {config.incoming_dir}") == 1
    assert (await recording_of(database, old)).reason == "the call ended without a recording file"
    # The recent call may still get its file.
    assert await database.run(lambda c: RECORDINGS.recording(c, recent)) is None


@pytest.mark.parametrize(
    "call_id", ["../../../etc/passwd", "1.2/../../x", "Sys-1.2", "a-b-1.2", "1.2\n"])
async def test_a_call_id_that_is_no_unique_id_is_refused_with_one_log_line(
    database: Database, config: RecordingsConfig, caplog: pytest.LogCaptureFixture,
    call_id: str,
) -> None:
    await ended_call(database, call_id)
    worker = RecordingWorker(database, config)
    with caplog.at_level(logging.ERROR, logger="recordings"):
        first = await worker.run_once()
        assert await worker.run_once() == []
    assert [(o.call_id, o.state) for o in first] == [(call_id, State.FAILED)]
    refusals = [r for r in caplog.records if "not an Asterisk unique id" in r.getMessage()]
    assert len(refusals) == 1
    row = await recording_of(database, call_id)
    assert (row.state, row.source_file, row.quarantine_path) == (State.FAILED, "", None)
    assert files_under(config.storage_dir) == files_under(config.quarantine_dir) == []


async def test_a_corrupt_file_fails_and_is_kept_in_quarantine(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id)
    garbage = b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(4000)
    (config.incoming_dir / f"{call_id}.wav").write_bytes(garbage)

    outcomes = await RecordingWorker(database, config).run_once()

    assert [o.state for o in outcomes] == [State.PENDING, State.FAILED]
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts, row.sha256, row.storage_path) == (
        State.FAILED, 1, None, None)
    assert row.reason is not None and row.reason.startswith(f"cannot decode {call_id}.wav")
    kept = config.quarantine_dir / f"{call_id}.wav"
    assert row.quarantine_path == str(kept)
    assert kept.read_bytes() == garbage  # kept exactly as Asterisk wrote it
    assert files_under(config.incoming_dir) == files_under(config.storage_dir) == []


async def test_transient_errors_are_retried_then_the_file_is_quarantined(
    database: Database, config: RecordingsConfig
) -> None:
    config = replace(config, transcoder=("false",), retry_seconds=3600.0)
    call_id = new_call_id()
    await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    speech_like(source)
    worker = RecordingWorker(database, config)

    assert [o.state for o in await worker.run_once()] == [State.PENDING, State.PENDING]
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.PENDING, 1)
    assert row.reason == "processing exited with 1: "
    assert await worker.process_next() is None  # not again before the retry delay

    states = []
    for _ in range(2):
        await time_passes(database, call_id)
        outcome = await worker.process_next()
        assert outcome is not None
        states.append(outcome.state)
    assert states == [State.PENDING, State.FAILED]
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.FAILED, 3)
    assert row.quarantine_path == str(config.quarantine_dir / f"{call_id}.wav")
    assert not source.exists() and Path(row.quarantine_path).exists()


async def test_a_full_disk_keeps_recordings_waiting_uncounted_until_there_is_room(
    database: Database, config: RecordingsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """A full storage disk is the site's, not the recording's: however long it lasts, the
    calls wait (their sources where Asterisk left them, no attempt counted, one log line) and
    are stored once there is room, never given up on and quarantined."""
    calls = [new_call_id() for _ in range(2)]
    for call_id in calls:
        await ended_call(database, call_id)
        speech_like(config.incoming_dir / f"{call_id}.wav")
    with tiny_tmpfs(config.storage_dir, size_kb=256):
        filler = fill_up(config.storage_dir)
        worker = RecordingWorker(database, config)
        with caplog.at_level(logging.WARNING, logger="recordings"):
            for _ in range(config.max_attempts + 2):
                outcomes = await worker.run_once()
                # One job tried per pass: the others would fail alike.
                assert [o.state for o in outcomes if not o.detail.endswith(".wav")] == [
                    State.PENDING], outcomes
                for call_id in calls:
                    await time_passes(database, call_id)
        rows = [await recording_of(database, call_id) for call_id in calls]
        assert [(r.state, r.attempts, r.quarantine_path) for r in rows] == [
            (State.PENDING, 0, None)] * 2
        # The oldest job is the one tried each time; the other was not even started.
        assert [(r.reason or "")[:8] for r in rows] == ["no space", ""]
        assert all((config.incoming_dir / f"{call_id}.wav").exists() for call_id in calls)
        assert files_under(config.quarantine_dir) == []
        assert [f for f in files_under(config.storage_dir) if f != filler] == []
        full = [r for r in caplog.records if "no space" in r.getMessage()]
        assert len(full) == 1, [r.getMessage() for r in full]

        filler.unlink()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="recordings"):
            outcomes = await worker.run_once()
        assert sorted(o.call_id for o in outcomes if o.state is State.DONE) == sorted(calls)
        assert any("room" in r.getMessage() for r in caplog.records)
        for call_id in calls:
            row = await recording_of(database, call_id)
            assert (row.state, row.attempts, row.reason) == (State.DONE, 1, None)
            assert row.storage_path is not None
            assert row.sha256 == sha256(config.storage_dir / row.storage_path)
        assert files_under(config.incoming_dir) == []


async def test_a_read_only_storage_keeps_recordings_waiting_not_quarantined(
    database: Database, config: RecordingsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """A storage disk the kernel remounted read-only (errors on it), or one mounted so: every
    attempt failed alike, was counted, and after max_attempts each call's recording was
    quarantined and marked failed, as if the recording were bad, though nothing was wrong
    with any of them. They wait uncounted, as on a full disk, and are stored once it can be
    written again."""
    call_id = new_call_id()
    await ended_call(database, call_id)
    speech_like(config.incoming_dir / f"{call_id}.wav")
    with tiny_tmpfs(config.storage_dir, size_kb=4096):
        worker = RecordingWorker(database, config)
        with read_only(config.storage_dir), caplog.at_level(logging.WARNING,
                                                            logger="recordings"):
            for _ in range(config.max_attempts + 2):
                outcomes = await worker.run_once()
                assert [o.state for o in outcomes if not o.detail.endswith(".wav")] == [
                    State.PENDING], outcomes
                await time_passes(database, call_id)
            row = await recording_of(database, call_id)
            assert (row.state, row.attempts, row.quarantine_path) == (State.PENDING, 0, None)
            assert (row.reason or "").startswith("its storage is read-only")
            assert files_under(config.quarantine_dir) == []
            said = [r for r in caplog.records if "read-only" in r.getMessage()]
            assert len(said) == 1, [r.getMessage() for r in said]
        outcomes = await worker.run_once()
        assert [o.state for o in outcomes] == [State.DONE], outcomes
        row = await recording_of(database, call_id)
        assert (row.state, row.attempts, row.reason) == (State.DONE, 1, None)
        assert row.sha256 == sha256(config.storage_dir / (row.storage_path or ""))


async def test_crash_mid_file_then_restart_processes_it_exactly_once(
    database: Database, config: RecordingsConfig, tmp_path: Path
) -> None:
    """Worker A writes its temporary file and is killed before storing it; once A's lease has
    run out, worker B processes the file: one stored file, checksum as recorded."""
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    speech_like(source)
    written = tmp_path / "temporary-written"
    # A's child transcodes for real, then hangs as if the machine froze before the rename.
    hanging = ("sh", "-c", f'"{sys.executable}" -m recordings.audio "$@" && touch "{written}" '
               "&& exec sleep 600", "transcoder")
    doomed = RecordingWorker(database, replace(config, transcoder=hanging))
    assert [o.state for o in await doomed.enqueue()] == [State.PENDING]
    crashing = asyncio.create_task(doomed.process_next())
    deadline = time.monotonic() + 30
    while not written.exists():
        assert time.monotonic() < deadline and not crashing.done(), "A never wrote its file"
        await asyncio.sleep(0.05)
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing

    final = config.storage_dir / storage_relpath(call_id, started, "Asia/Jakarta", "opus")
    leftovers = files_under(config.storage_dir)
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")  # A's temporary file
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.PROCESSING, 1)

    restarted = RecordingWorker(database, config)
    assert await restarted.process_next() is None  # A's lease still holds
    await time_passes(database, call_id)
    outcome = await restarted.process_next()

    assert outcome is not None and outcome.state is State.DONE
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.DONE, 2)
    assert files_under(config.storage_dir) == [final]
    assert row.sha256 == sha256(final)
    assert not source.exists()
    assert await restarted.process_next() is None
    assert await restarted.run_once() == []


async def test_a_worker_whose_lease_was_taken_over_cannot_store(database: Database) -> None:
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    await database.run(lambda c: RECORDINGS.add(c, call_id, State.PENDING, started_at=started,
                                                 source_file=f"{call_id}.wav"))
    first = await database.run(lambda c: RECORDINGS.claim(c, uuid.uuid4(), 0.0))
    assert first is not None
    await asyncio.sleep(0.01)  # the zero-second lease is over
    second = await database.run(lambda c: RECORDINGS.claim(c, uuid.uuid4(), 60.0))
    assert second is not None and (second.recording_id, second.attempts) == (
        first.recording_id, 2)

    async def try_hold(connection: asyncpg.Connection, job: Job) -> bool:
        async with connection.transaction():
            return await RECORDINGS.hold_claim(connection, job)

    assert not await database.run(lambda c: try_hold(c, first))
    assert await database.run(lambda c: try_hold(c, second))
    assert not await database.run(lambda c: RECORDINGS.release(c, first, "late", 0.0))


async def test_restart_sweeps_sources_of_recordings_already_stored(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    speech_like(source)
    worker = RecordingWorker(database, config)
    assert [o.state for o in await worker.run_once()] == [State.PENDING, State.DONE]
    # As if the worker had stopped between recording the result and removing the source.
    speech_like(source)
    unknown = config.incoming_dir / f"{new_call_id()}.wav"
    other = config.incoming_dir / "operator-notes.wav"
    for path in (unknown, other):
        path.write_bytes(b"not ours")
    assert await RecordingWorker(database, config).sweep_incoming() == 1
    assert files_under(config.incoming_dir) == sorted([unknown, other])


async def test_the_background_loop_stores_recordings_until_cancelled(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id)
    speech_like(config.incoming_dir / f"{call_id}.wav")
    running = asyncio.create_task(RecordingWorker(database, config).run())
    try:
        deadline = time.monotonic() + 30
        while (row := await database.run(lambda c: RECORDINGS.recording(c, call_id))) is None \
                or row.state is not State.DONE:
            assert time.monotonic() < deadline, f"not stored: {row}"
            await asyncio.sleep(0.1)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


# ----------------------------------------------------------------- separate legs


def leg_file(config: RecordingsConfig, call_id: str, kind: Kind) -> Path:
    return config.incoming_dir / source_name(call_id, kind)


async def recordings_of(database: Database, call_id: str) -> dict[Kind, Recording]:
    """Every recording of the call (as the API lists them), by kind."""
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id]))
    return {row.kind: row for row in rows}


async def test_legs_are_processed_with_the_mix_and_stored_next_to_it(
    database: Database, config: RecordingsConfig
) -> None:
    config = replace(config, separate_legs=True)
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    for kind in CALL_KINDS:
        speech_like(leg_file(config, call_id, kind))
    worker = RecordingWorker(database, config)

    outcomes = await worker.run_once()

    assert sorted((o.kind, o.state) for o in outcomes) == sorted(
        [(kind, state) for kind in CALL_KINDS for state in (State.PENDING, State.DONE)])
    rows = await recordings_of(database, call_id)
    assert set(rows) == set(CALL_KINDS)
    stored = []
    for kind, row in rows.items():
        relpath = storage_relpath(call_id, started, "Asia/Jakarta", "opus", kind).as_posix()
        path = config.storage_dir / relpath
        assert (row.state, row.storage_path, row.started_at) == (State.DONE, relpath, started)
        assert row.duration_seconds == pytest.approx(8.0, abs=0.05)
        assert row.sha256 == sha256(path) and row.size_bytes == path.stat().st_size
        stored.append(path)
    assert {p.parent for p in stored} == {stored[0].parent}  # one dated directory
    assert files_under(config.storage_dir) == sorted(stored)
    assert files_under(config.incoming_dir) == []
    assert await worker.run_once() == []


async def test_a_broken_or_missing_leg_is_reported_and_kept_and_the_mix_is_stored(
    database: Database, config: RecordingsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = replace(config, separate_legs=True)
    call_id = new_call_id()
    await ended_call(database, call_id)
    speech_like(leg_file(config, call_id, Kind.MIXED))
    garbage = b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(4000)
    leg_file(config, call_id, Kind.CALLER).write_bytes(garbage)  # no -line.wav at all
    worker = RecordingWorker(database, config)

    with caplog.at_level(logging.WARNING, logger="recordings"):
        outcomes = await worker.run_once()
        assert await worker.run_once() == []

    assert {(o.kind, o.state) for o in outcomes if o.state is not State.PENDING} == {
        (Kind.MIXED, State.DONE), (Kind.CALLER, State.FAILED), (Kind.LINE, State.MISSING)}
    rows = await recordings_of(database, call_id)
    assert rows[Kind.MIXED].state is State.DONE
    broken = rows[Kind.CALLER]
    kept = config.quarantine_dir / f"{call_id}-caller.wav"
    assert (broken.state, broken.quarantine_path) == (State.FAILED, str(kept))
    assert kept.read_bytes() == garbage  # never deleted
    assert (rows[Kind.LINE].state, rows[Kind.LINE].reason) == (
        State.MISSING, "the call ended without its line leg's file")
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count(
        f"call {call_id} ended 5 s ago without its line leg in {config.incoming_dir}") == 1
    assert sum(m.startswith(f"caller leg of call '{call_id}' failed") for m in messages) == 1
    assert files_under(config.incoming_dir) == []


async def test_legs_found_with_the_setting_off_are_still_stored_and_none_missed(
    database: Database, config: RecordingsConfig
) -> None:
    """Switched off while calls recorded with legs are still in the monitor directory."""
    call_id = new_call_id()
    await ended_call(database, call_id)
    speech_like(leg_file(config, call_id, Kind.MIXED))
    speech_like(leg_file(config, call_id, Kind.LINE))
    await RecordingWorker(database, config).run_once()
    rows = await recordings_of(database, call_id)
    assert {kind: row.state for kind, row in rows.items()} == {
        Kind.MIXED: State.DONE, Kind.LINE: State.DONE}


async def test_a_leg_job_spares_the_temporary_file_of_its_mix_in_progress(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    speech_like(leg_file(config, call_id, Kind.CALLER))
    await database.run(lambda c: RECORDINGS.add(
        c, call_id, State.PENDING, kind=Kind.CALLER, started_at=started,
        source_file=f"{call_id}-caller.wav"))
    day = (config.storage_dir / storage_relpath(call_id, started, "Asia/Jakarta", "opus")).parent
    day.mkdir(parents=True)
    mixing = day / temp_name(call_id, uuid.uuid4().hex)  # another worker's, still writing
    mixing.write_bytes(b"half a mix")
    outcome = await RecordingWorker(database, config).process_next()
    assert outcome is not None and (outcome.kind, outcome.state) == (Kind.CALLER, State.DONE)
    assert mixing.exists()


async def test_restart_sweeps_leg_sources_of_stored_legs_only(
    database: Database, config: RecordingsConfig
) -> None:
    config = replace(config, separate_legs=True)
    call_id = new_call_id()
    await ended_call(database, call_id)
    for kind in CALL_KINDS:
        speech_like(leg_file(config, call_id, kind))
    assert len(await RecordingWorker(database, config).run_once()) == 6
    for kind in CALL_KINDS:  # as if the worker had stopped before removing the sources
        speech_like(leg_file(config, call_id, kind))
    other = config.incoming_dir / f"{new_call_id()}-caller.wav"  # a call not stored yet
    other.write_bytes(b"not yet")
    assert await RecordingWorker(database, config).sweep_incoming() == 3
    assert files_under(config.incoming_dir) == [other]


# ----------------------------------------------------------------- call-backs


async def ended_callback(database: Database, call_id: str, *, answered: bool = True,
                         dialled: bool = True, channel_id: str = "1.99") -> int:
    """An operator's call-back of the call's caller that has ended: the caller answered it, so
    the dialplan recorded it, unless not ``answered`` (busy, no answer; not even ``dialled``:
    the operator did not answer their phone); returns the leg. ``channel_id``: the Uniqueid
    of the channel that reported it (on a cluster, of the node that placed it)."""
    leg_id = await database.run(lambda c: LegRepository().open(
        c, kind=LegKind.CALLBACK, call_id=call_id, incident_id=None, operator="PJSIP/op1001",
        actor="op1001", number="081234567890", target="penelepon"))
    now = datetime.now(UTC)
    states = [*(["dialling"] if dialled else []), *(["answered"] if answered else []), "ended"]
    status = "ANSWER" if answered else "BUSY"
    facts = [LegProgressed(leg_id, state, status if state == "ended" else "", channel_id,
                           now - timedelta(seconds=2)) for state in states]
    await database.run(lambda c: CALLS.apply(c, facts))
    return leg_id


async def test_call_backs_are_recordings_of_the_called_back_call_one_per_call_back(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    speech_like(config.incoming_dir / source_name(call_id))
    first, second = [await ended_callback(database, call_id) for _ in range(2)]
    # A call-back the caller (or the operator) never answered was not recorded and is not
    # looked for.
    await ended_callback(database, call_id, answered=False)
    await ended_callback(database, call_id, answered=False, dialled=False)
    for leg_id in (first, second):
        speech_like(config.incoming_dir / source_name(call_id, Kind.CALLBACK, leg_id))
    worker = RecordingWorker(database, config)

    outcomes = [o for o in await worker.run_once() if o.state is State.DONE]

    assert sorted((o.leg_id or 0, o.kind) for o in outcomes) == [
        (0, Kind.MIXED), (first, Kind.CALLBACK), (second, Kind.CALLBACK)]
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id]))
    assert [(r.kind, r.leg_id, r.state) for r in rows] == [
        (Kind.MIXED, None, State.DONE), (Kind.CALLBACK, first, State.DONE),
        (Kind.CALLBACK, second, State.DONE)]
    for row in rows[1:]:
        # Filed beside the call's own recording, dated and retained by the call's arrival.
        assert row.started_at == started
        assert row.storage_path == storage_relpath(
            call_id, started, "Asia/Jakarta", "opus", Kind.CALLBACK,
            leg_id=row.leg_id).as_posix()
        assert (config.storage_dir / row.storage_path).is_file()
    assert files_under(config.incoming_dir) == []
    assert await worker.run_once() == []
    # The call's own recording is still the one a call's page plays.
    assert (await recording_of(database, call_id)).kind is Kind.MIXED


async def test_files_of_calls_that_ended_before_the_lookback_are_still_stored(
    database: Database, config: RecordingsConfig
) -> None:
    """The line was down longer than ``lookback_hours`` while Asterisk went on answering and
    recording (the backfill then writes those calls with their real ends): their files, and
    their call-backs', are stored, not left in the monitor directory for good with nobody
    told. Calls that old without a file are still not reported missing."""
    long_ago = (config.lookback_hours + 24) * 3600.0
    call_id, fileless = new_call_id(), new_call_id()
    started = await ended_call(database, call_id, ago=long_ago)
    await ended_call(database, fileless, ago=long_ago)
    speech_like(config.incoming_dir / source_name(call_id))
    leg_id = await ended_callback(database, call_id)
    await database.run(lambda c: c.execute(
        "UPDATE call_legs SET ended_at = now() - make_interval(secs => $2) WHERE leg_id = $1",
        leg_id, long_ago))
    speech_like(config.incoming_dir / source_name(call_id, Kind.CALLBACK, leg_id))
    # Asterisk wrote them last as the calls ended.
    for name in (source_name(call_id), source_name(call_id, Kind.CALLBACK, leg_id)):
        os.utime(config.incoming_dir / name, (time.time() - long_ago,) * 2)
    worker = RecordingWorker(database, config)

    outcomes = await worker.run_once()

    assert sorted(o.kind for o in outcomes if o.state is State.DONE) == [
        Kind.CALLBACK, Kind.MIXED]
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id, fileless]))
    assert [(r.call_id, r.kind, r.leg_id, r.state, r.started_at) for r in rows] == [
        (call_id, Kind.MIXED, None, State.DONE, started),
        (call_id, Kind.CALLBACK, leg_id, State.DONE, started)]
    assert files_under(config.incoming_dir) == []
    assert await worker.run_once() == []


async def test_a_call_back_without_its_file_is_missing_once_it_is_long_over(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id, ago=60)
    speech_like(config.incoming_dir / source_name(call_id))
    leg_id = await ended_callback(database, call_id)
    # Busy: the dialplan records from the caller's answer, so it has no file to miss.
    busy = await ended_callback(database, call_id, answered=False)
    worker = RecordingWorker(database, config)
    assert [(o.kind, o.state) for o in await worker.enqueue()] == [(Kind.MIXED, State.PENDING)]
    await database.run(lambda c: c.execute(
        "UPDATE call_legs SET ended_at = now() - interval '60 seconds'"
        " WHERE leg_id = ANY($1::bigint[])", [leg_id, busy]))

    assert [(o.kind, o.leg_id, o.state) for o in await worker.enqueue()] == [
        (Kind.CALLBACK, leg_id, State.MISSING)]


# ----------------------------------------------------------------- crashes and leases


def tone(path: Path, seconds: float) -> None:
    """``seconds`` of 8 kHz mono 16-bit tone, as MixMonitor writes a call."""
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                    "synth", str(seconds), "sine", "440", "vol", "0.4"],
                   check=True, capture_output=True)


def running(pid: int) -> bool:
    """True while ``pid`` runs (a killed process waiting to be reaped runs no more)."""
    return process_started(pid) is not None


async def gone(pid: int, within: float = 2.0) -> None:
    """Wait until ``pid`` runs no more (SIGKILL takes effect when the process is next run)."""
    async def probe() -> bool | None:
        return None if running(pid) else True
    await eventually(f"process {pid} to die", probe, within=within, interval=0.02)


async def started_ffmpeg(shims: Path, within: float = 30.0) -> int:
    """The pid of the first (real-time) ffmpeg, once it runs."""
    async def probe() -> int | None:
        pids = ffmpeg_pids(shims)
        return pids[0] if pids and running(pids[0]) else None
    return await eventually("ffmpeg to start", probe, within=within, interval=0.05)


async def slow_job(database: Database, config: RecordingsConfig, tmp_path: Path,
                   seconds: float) -> tuple[str, Path]:
    """An ended call whose WAV holds ``seconds`` of tone, and the ffmpeg shims that transcode
    it in real time (so a job lasts as long as the call): the call id and the shims."""
    call_id = new_call_id()
    await ended_call(database, call_id)
    tone(config.incoming_dir / f"{call_id}.wav", seconds)
    return call_id, realtime_ffmpeg(tmp_path / "slow")


async def test_a_killed_worker_takes_its_ffmpeg_along_and_its_job_is_taken_over_at_once(
    database: Database, config: RecordingsConfig, tmp_path: Path, database_dsn: str
) -> None:
    """Worker A, a process of its own, is SIGKILLed while its ffmpeg encodes a 20 s call in real
    time. Its ffmpeg dies with it (it would otherwise write for another 20 s); worker B on the
    same host sees A gone and takes the job over at once, not after A's lease (600 s before,
    30 s now) ran out; the call is stored once."""
    call_id = new_call_id()
    started = await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    tone(source, 20)
    shims = realtime_ffmpeg(tmp_path / "slow")
    slow = with_path_first(replace(config, lease_seconds=30.0, heartbeat_seconds=10.0), shims)
    doomed = await asyncio.create_subprocess_exec(
        *worker_argv(slow, database_dsn, tmp_path / "a.json"))
    try:
        ffmpeg = await started_ffmpeg(shims)
        row = await recording_of(database, call_id)
        assert (row.state, row.attempts) == (State.PROCESSING, 1)
    finally:
        doomed.kill()
        await doomed.wait()
    killed = time.monotonic()

    await gone(ffmpeg, within=5.0)
    orphan_seconds = time.monotonic() - killed
    outcome = await RecordingWorker(database, config).run_once()
    taken_over = time.monotonic() - killed

    assert [(o.state, o.kind) for o in outcome] == [(State.DONE, Kind.MIXED)]
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.DONE, 2)
    assert row.duration_seconds == pytest.approx(20.0, abs=0.05)
    final = config.storage_dir / storage_relpath(call_id, started, "Asia/Jakarta", "opus")
    assert files_under(config.storage_dir) == [final]  # A's half-written file is gone
    assert row.sha256 == sha256(final)
    assert not source.exists()
    assert taken_over < 15, taken_over  # well inside even the new 30 s lease
    print(f"\nffmpeg gone {orphan_seconds:.2f} s after the kill; job stored by B "
          f"{taken_over:.2f} s after it (lease 30 s)")


async def test_a_worker_killed_while_its_child_starts_leaves_nothing_running(
    database: Database, config: RecordingsConfig, tmp_path: Path, database_dsn: str
) -> None:
    """bench/faults.py's scenario 6 as the line runs it: the process that runs the worker (serve)
    is SIGKILLed the moment its transcoder appears, before that child could ask the kernel to
    be told of its parent's death, and whoever started the worker reaps it late (a shell, a
    busy supervisor): a zombie for a while. The child must still notice and take its whole
    process group down, rather than start an ffmpeg that writes a 20 s call for nobody."""
    _call_id, shims = await slow_job(database, config, tmp_path, 20)
    slow = with_path_first(replace(config, lease_seconds=30.0, heartbeat_seconds=10.0), shims)
    # Popen, not asyncio: asyncio's child watcher would reap the killed worker at once.
    with subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; reaped once killed
            worker_argv(slow, database_dsn, tmp_path / "a.json")) as doomed:
        try:
            async def first_child() -> int | None:
                children = children_of(doomed.pid)
                return children[0] if children else None
            child = await eventually("the worker's transcoder", first_child, within=30.0,
                                     interval=0.005)
        finally:
            doomed.kill()
        killed = time.monotonic()
        try:
            async def group_gone() -> bool | None:
                return None if group_members(child) else True
            await eventually("the transcoder's process group to end", group_gone,
                             within=5.0, interval=0.01)
            lingered = time.monotonic() - killed
        finally:
            doomed.wait()
    assert not [pid for pid in ffmpeg_pids(shims) if running(pid)]
    print(f"\ntranscoder (and ffmpeg, if any) gone {lingered:.3f} s after the kill")


async def test_a_dead_worker_on_another_host_is_taken_over_when_its_short_lease_runs_out(
    database: Database, config: RecordingsConfig, tmp_path: Path, database_dsn: str
) -> None:
    """The holder's host is not ours, so nobody can tell it died: its lease bounds the wait."""
    call_id, shims = await slow_job(database, config, tmp_path, 20)
    lease = 4.0
    slow = with_path_first(replace(config, lease_seconds=lease, heartbeat_seconds=1.0), shims)
    doomed = await asyncio.create_subprocess_exec(
        *worker_argv(slow, database_dsn, tmp_path / "a.json"))
    try:
        await started_ffmpeg(shims)
    finally:
        doomed.kill()
        await doomed.wait()
    killed = time.monotonic()
    await database.run(lambda c: c.execute(
        "UPDATE recordings SET claim_host = 'elsewhere/boot' WHERE call_id = $1", call_id))
    worker = RecordingWorker(database, config)

    async def stored() -> list[Outcome] | None:
        return [o for o in await worker.run_once() if o.state is State.DONE] or None

    outcomes = await eventually("the job to be taken over", stored, within=lease + 15)
    waited = time.monotonic() - killed

    assert [o.call_id for o in outcomes] == [call_id]
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.DONE, 2)
    assert len(files_under(config.storage_dir)) == 1
    # Not before the lease A last renewed (at most one heartbeat before the kill) ran out.
    assert lease - 1.0 - 0.5 <= waited < lease + 10, waited
    print(f"\ntaken over {waited:.2f} s after the kill (lease {lease:g} s)")


async def test_the_heartbeat_keeps_a_job_longer_than_its_lease(
    database: Database, config: RecordingsConfig, tmp_path: Path
) -> None:
    """A 6 s transcode under a 1.5 s lease: renewed every 0.5 s, nobody else claims it."""
    call_id, shims = await slow_job(database, config, tmp_path, 6)
    slow = with_path_first(replace(config, lease_seconds=1.5, heartbeat_seconds=0.5), shims)
    holder = RecordingWorker(database, slow)
    other = RecordingWorker(database, replace(config, lease_seconds=1.5, heartbeat_seconds=0.5))
    assert [o.state for o in await holder.enqueue()] == [State.PENDING]
    working = asyncio.create_task(holder.process_next())
    await started_ffmpeg(shims)
    claims = 0
    while not working.done():
        claims += await other.process_next() is not None
        await asyncio.sleep(0.2)
    outcome = await working
    assert outcome is not None and outcome.state is State.DONE
    assert claims == 0
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts) == (State.DONE, 1)


async def test_a_long_call_slow_to_transcode_is_given_time_by_its_length(
    database: Database, config: RecordingsConfig, tmp_path: Path
) -> None:
    """The transcoder runs at the lowest priority: on a machine busy with calls it gets a few
    per cent of a core, and an hour-long call (53 s of CPU alone) takes many minutes. A flat
    bound per file (``process_timeout``, 300 s) then cut every long call during a surge, three
    times, and quarantined it. Each file gets the bound plus its own length: here an ffmpeg
    as slow as the call itself (6 s; it cannot be quicker) under a bound of 5 s still stores
    it, at the first try."""
    call_id, shims = await slow_job(database, config, tmp_path, 6)
    slow = with_path_first(replace(config, process_timeout=5.0), shims)
    worker = RecordingWorker(database, slow)
    assert [o.state for o in await worker.enqueue()] == [State.PENDING]

    outcome = await worker.process_next()

    assert outcome is not None and outcome.state is State.DONE, outcome
    row = await recording_of(database, call_id)
    assert (row.state, row.attempts, row.reason) == (State.DONE, 1, None)
    assert row.duration_seconds == pytest.approx(6.0, abs=0.05)


async def test_a_worker_whose_lease_is_taken_kills_its_child_and_stores_nothing(
    database: Database, config: RecordingsConfig, tmp_path: Path
) -> None:
    call_id, shims = await slow_job(database, config, tmp_path, 20)
    slow = with_path_first(replace(config, lease_seconds=3.0, heartbeat_seconds=0.5), shims)
    worker = RecordingWorker(database, slow)
    assert [o.state for o in await worker.enqueue()] == [State.PENDING]
    working = asyncio.create_task(worker.process_next())
    ffmpeg = await started_ffmpeg(shims)
    # As if its lease had run out during a database outage and another worker had claimed it.
    await database.run(lambda c: c.execute(
        "UPDATE recordings SET claim_token = gen_random_uuid() WHERE call_id = $1", call_id))
    outcome = await asyncio.wait_for(working, 5.0)
    assert outcome is not None and (outcome.state, outcome.detail) == (
        State.PROCESSING, "taken over by another worker")
    await gone(ffmpeg)
    assert files_under(config.storage_dir) == []
    assert (config.incoming_dir / f"{call_id}.wav").exists()


async def test_cancelling_the_worker_kills_and_reaps_its_child(
    database: Database, config: RecordingsConfig, tmp_path: Path
) -> None:
    _call_id, shims = await slow_job(database, config, tmp_path, 20)
    worker = RecordingWorker(database, with_path_first(config, shims))
    running_loop = asyncio.create_task(worker.run())
    ffmpeg = await started_ffmpeg(shims)
    children = set(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split())
    running_loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running_loop
    await gone(ffmpeg)
    # The transcoding child was reaped: it is no longer a child of ours, not even a zombie.
    after = set(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split())
    assert children and not after & children


# ----------------------------------------------------------------- unfinished WAV headers


def zero_header_sizes(path: Path) -> None:
    """What a WAV looks like when Asterisk died before closing it: RIFF and data sizes 0."""
    data = bytearray(path.read_bytes())
    assert data[36:40] == b"data", "sox writes the 44-byte header Asterisk writes"
    data[4:8] = data[40:44] = bytes(4)
    path.write_bytes(bytes(data))


async def test_a_wav_whose_header_was_never_finalised_is_repaired_and_stored(
    database: Database, config: RecordingsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    speech_like(source)
    zero_header_sizes(source)
    with caplog.at_level(logging.WARNING, logger="recordings"):
        outcomes = await RecordingWorker(database, config).run_once()
    assert [o.state for o in outcomes] == [State.PENDING, State.DONE]
    row = await recording_of(database, call_id)
    assert row.duration_seconds == pytest.approx(8.0, abs=0.05)
    assert row.silence_share == pytest.approx(0.25, abs=0.03)
    assert files_under(config.quarantine_dir) == []
    assert any("header was never finalised" in r.getMessage() for r in caplog.records)


async def test_a_wav_with_a_truncated_header_is_still_quarantined(
    database: Database, config: RecordingsConfig
) -> None:
    call_id = new_call_id()
    await ended_call(database, call_id)
    source = config.incoming_dir / f"{call_id}.wav"
    speech_like(source)
    zero_header_sizes(source)
    truncated = source.read_bytes()[:30]  # cut inside the fmt chunk
    source.write_bytes(truncated)
    outcomes = await RecordingWorker(database, config).run_once()
    assert [o.state for o in outcomes] == [State.PENDING, State.FAILED]
    kept = config.quarantine_dir / f"{call_id}.wav"
    assert (await recording_of(database, call_id)).quarantine_path == str(kept)
    assert kept.read_bytes() == truncated


async def test_a_cluster_nodes_worker_takes_only_its_own_calls(
    database: Database, config: RecordingsConfig,
) -> None:
    """Two nodes' workers share the database; each call's file is in its own node's monitor
    directory, so the other node's worker must neither pair it (it would call it missing)
    nor claim its job."""
    mine, theirs = f"node1-{new_call_id()}", f"node2-{new_call_id()}"
    for call_id in (mine, theirs):
        await ended_call(database, call_id)
        speech_like(config.incoming_dir / f"{call_id}.wav")
    node1 = RecordingWorker(database, replace(config, node="node1"))
    outcomes = await node1.run_once()
    assert {o.call_id for o in outcomes} == {mine}
    assert (await recording_of(database, mine)).state is State.DONE
    # node2's call has no row yet: its file is node2's worker's to pair.
    assert await database.run(lambda c: RECORDINGS.recording(c, theirs)) is None


async def test_a_call_back_placed_by_another_node_is_that_nodes_to_store(
    database: Database, config: RecordingsConfig, tmp_path: Path
) -> None:
    """node1 took the call and went away; an operator called the caller back through node2,
    whose Asterisk recorded the call-back into its own monitor directory. node2's worker stores
    it (filed with node1's call); node1's, whose directory has no such file, neither calls it
    missing nor takes its job."""
    call_id = f"node1-{new_call_id()}"
    await ended_call(database, call_id)
    leg_id = await ended_callback(database, call_id, channel_id="node2-1790000001.5")
    node2_dir = tmp_path / "node2-monitor"
    node2_dir.mkdir()
    speech_like(node2_dir / source_name(call_id, Kind.CALLBACK, leg_id))
    node1 = RecordingWorker(database, replace(config, node="node1"))
    node2 = RecordingWorker(database, replace(config, node="node2", incoming_dir=node2_dir))

    assert [o for o in await node1.run_once() if o.kind is Kind.CALLBACK] == []
    outcomes = await node2.run_once()

    assert [(o.kind, o.leg_id, o.state) for o in outcomes if o.state is State.DONE] == [
        (Kind.CALLBACK, leg_id, State.DONE)]
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id]))
    assert [(r.kind, r.state) for r in rows if r.kind is Kind.CALLBACK] == [
        (Kind.CALLBACK, State.DONE)]
    assert [o for o in await node1.run_once() if o.kind is Kind.CALLBACK] == []


def test_a_monitor_disk_full_or_read_only_is_told_from_one_with_room(tmp_path: Path) -> None:
    """What pairing asks of Asterisk's monitor directory when a call has no file (a real file
    system: a tiny tmpfs)."""
    with tiny_tmpfs(tmp_path / "monitor") as monitor:
        assert not refuses_files(monitor)
        filler = fill_up(monitor)
        assert refuses_files(monitor)
        filler.unlink()
        assert not refuses_files(monitor)
        with read_only(monitor):
            assert refuses_files(monitor)
    assert not refuses_files(tmp_path / "gone")
