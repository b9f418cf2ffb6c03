"""Retention against a real PostgreSQL: expired recordings go, held and younger ones stay."""

import asyncio
import contextlib
import functools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from recordings.domain import CALL_KINDS, LEGS, Kind, RetentionPolicy, State
from recordings.retention import apply_retention, run_retention
from recordings.store import Processed, RecordingRepository
from telephony.calls.facts import CallEnded, CallFact, CallStarted, IvrVariableSet
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository, LegRepository
from telephony.cli import main
from telephony.db.connection import Database
from telephony.settings import DEFAULT_SHIFTS
from tests.support.disk import read_only, tiny_tmpfs
from tests.support.incidents import make_service
from tests.support.polling import eventually

CALLS = CallRepository(ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta"))
RECORDINGS = RecordingRepository()
NOW = datetime.now(UTC)
POLICY = RetentionPolicy(emergency_days=3650, complaint_days=730, information_days=365,
                         default_days=3650)


async def stored_recording(
    database: Database, storage: Path, category: str | None, days_old: float
) -> tuple[str, Path]:
    """A call of ``category`` that started ``days_old`` days ago, with a stored recording."""
    call_id = f"{1_700_000_000 + uuid.uuid4().int % 100_000_000}.{uuid.uuid4().int % 1000}"
    start = NOW - timedelta(days=days_old)
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112", start),
        CallEnded(call_id, 16, "Normal Clearing", start + timedelta(minutes=2)),
    ]
    if category:
        facts.insert(1, IvrVariableSet(call_id, "category", category, start))
    relpath = f"{start:%Y/%m/%d}/{call_id}.opus"
    (storage / relpath).parent.mkdir(parents=True, exist_ok=True)
    (storage / relpath).write_bytes(b"OggS stand-in")

    async def work(connection: asyncpg.Connection) -> None:
        await CALLS.apply(connection, facts)
        await RECORDINGS.add(connection, call_id, State.PENDING, started_at=start,
                             source_file=f"{call_id}.wav")
        job = await RECORDINGS.claim(connection, uuid.uuid4(), 60)
        assert job is not None and job.call_id == call_id
        assert await RECORDINGS.mark_done(connection, job, Processed(
            60.0, 0.1, -20.0, "opus", relpath, 13, "ab" * 32))

    await database.run(work)
    return call_id, storage / relpath


async def test_expired_recordings_are_removed_held_and_younger_ones_stay(
    database: Database, tmp_path: Path
) -> None:
    storage = tmp_path / "store"
    old_info, old_info_file = await stored_recording(database, storage, "information", 400)
    held, held_file = await stored_recording(database, storage, "information", 400)
    old_emergency, emergency_file = await stored_recording(database, storage, "emergency", 400)
    fresh, fresh_file = await stored_recording(database, storage, "complaint", 10)
    ancient, ancient_file = await stored_recording(database, storage, None, 4000)
    assert await database.run(lambda c: RECORDINGS.set_legal_hold(c, held, True))

    preview = await apply_retention(database, POLICY, storage, NOW, dry_run=True)
    assert {r.call_id for r in preview} == {old_info, ancient}
    assert old_info_file.exists() and ancient_file.exists()  # a dry run removes nothing

    removed = await apply_retention(database, POLICY, storage, NOW)

    assert sorted((r.call_id, r.category, r.file_found) for r in removed) == sorted(
        [(old_info, "information", True), (ancient, None, True)])
    assert not old_info_file.exists() and not ancient_file.exists()
    assert held_file.exists() and emergency_file.exists() and fresh_file.exists()
    row = await database.run(lambda c: RECORDINGS.recording(c, old_info))
    assert row is not None and row.state is State.EXPIRED and row.expired_at is not None
    assert row.sha256 == "ab" * 32  # the record of what existed stays
    for kept in (held, old_emergency, fresh):
        row = await database.run(functools.partial(RECORDINGS.recording, call_id=kept))
        assert row is not None and row.state is State.DONE
    assert await apply_retention(database, POLICY, storage, NOW) == []

    # Lifting the hold lets the policy apply.
    assert await database.run(lambda c: RECORDINGS.set_legal_hold(c, held, False))
    assert [r.call_id for r in await apply_retention(database, POLICY, storage, NOW)] == [held]


async def test_a_file_already_gone_is_marked_and_a_tampered_path_is_refused(
    database: Database, tmp_path: Path
) -> None:
    storage = tmp_path / "store"
    gone, gone_file = await stored_recording(database, storage, "information", 400)
    gone_file.unlink()
    tampered, _ = await stored_recording(database, storage, "information", 400)
    canary = tmp_path / "canary.opus"
    canary.write_bytes(b"outside the storage")
    await database.run(lambda c: c.execute(
        "UPDATE recordings SET storage_path = '../canary.opus' WHERE call_id = $1", tampered))

    removed = await apply_retention(database, POLICY, storage, NOW)

    assert [(r.call_id, r.file_found) for r in removed] == [(gone, False)]
    assert canary.exists()
    row = await database.run(lambda c: RECORDINGS.recording(c, tampered))
    assert row is not None and row.state is State.DONE


async def test_retention_and_hold_commands(
    database: Database, database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    storage = state / "recordings"
    expired, expired_file = await stored_recording(database, storage, "information", 400)
    held, held_file = await stored_recording(database, storage, "information", 400)
    common = ["--set", f"database_dsn={database_dsn}", "--set", f"state_dir={state}"]

    assert await asyncio.to_thread(main, [*common, "recordings", "hold", held]) == 0
    assert capsys.readouterr().out.strip() == (
        f"Penahanan hukum dipasang pada rekaman panggilan {held}.")
    assert await asyncio.to_thread(main, [*common, "recordings", "hold", "9.9"]) == 1
    assert "tidak punya rekaman" in capsys.readouterr().out

    assert await asyncio.to_thread(main, [*common, "recordings", "retention"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Retensi: 1 rekaman (0.0 MB) dihapus:"
    assert out[1].split()[:3] == [expired, "gabungan", "information"]
    assert not expired_file.exists() and held_file.exists()

    assert await asyncio.to_thread(main, [*common, "recordings", "retention", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == (
        "Retensi: tidak ada rekaman yang melewati masa simpannya.")


async def test_files_that_cannot_be_removed_are_named_kept_and_tried_again(
    database: Database, database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recordings disk the kernel remounted read-only (a failing disk): retention says which
    recordings it could not remove and why, in one line each, marks none of them removed,
    goes on with the others, and removes them on a later run."""
    state = tmp_path / "state"
    storage = state / "recordings"
    common = ["--set", f"database_dsn={database_dsn}", "--set", f"state_dir={state}"]
    with tiny_tmpfs(storage, size_kb=256):
        first, first_file = await stored_recording(database, storage, "information", 400)
        second, second_file = await stored_recording(database, storage, "information", 401)
        with read_only(storage):
            assert await asyncio.to_thread(main, [*common, "recordings", "retention"]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "Retensi: 2 rekaman tidak dapat dihapus (dicoba lagi berikutnya):"
        assert sorted(line.split()[0] for line in out[1:]) == sorted([first, second])
        assert all(line.endswith(": sistem berkas hanya-baca") for line in out[1:]), out
        assert first_file.exists() and second_file.exists()
        rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [first, second]))
        assert [r.state for r in rows] == [State.DONE, State.DONE]

        assert await asyncio.to_thread(main, [*common, "recordings", "retention"]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "Retensi: 2 rekaman (0.0 MB) dihapus:"
        assert not first_file.exists() and not second_file.exists()


async def stored_legs(database: Database, storage: Path, call_id: str) -> list[Path]:
    """Both legs of a call with a stored recording, stored next to it."""
    mixed = await database.run(lambda c: RECORDINGS.recording(c, call_id))
    assert mixed is not None and mixed.storage_path is not None
    paths = []
    for leg in LEGS:
        relpath = mixed.storage_path.replace(".opus", f"-{leg.value}.opus")
        (storage / relpath).write_bytes(b"OggS leg stand-in")

        async def work(connection: asyncpg.Connection, leg: Kind = leg,
                       relpath: str = relpath) -> None:
            await RECORDINGS.add(connection, call_id, State.PENDING, kind=leg,
                                 started_at=mixed.started_at,
                                 source_file=f"{call_id}-{leg.value}.wav")
            job = await RECORDINGS.claim(connection, uuid.uuid4(), 60)
            assert job is not None and (job.call_id, job.kind) == (call_id, leg)
            assert await RECORDINGS.mark_done(connection, job, Processed(
                60.0, 0.1, -20.0, "opus", relpath, 17, "cd" * 32))

        await database.run(work)
        paths.append(storage / relpath)
    return paths


async def test_legs_are_removed_with_their_mix_and_held_with_it(
    database: Database, tmp_path: Path
) -> None:
    storage = tmp_path / "store"
    expired, expired_file = await stored_recording(database, storage, "information", 400)
    expired_legs = await stored_legs(database, storage, expired)
    held, held_file = await stored_recording(database, storage, "information", 400)
    held_legs = await stored_legs(database, storage, held)
    assert await database.run(lambda c: RECORDINGS.set_legal_hold(c, held, True))

    removed = await apply_retention(database, POLICY, storage, NOW)

    assert [(r.call_id, r.kind) for r in removed] == [
        (expired, Kind.MIXED), (expired, Kind.CALLER), (expired, Kind.LINE)]
    assert not any(p.exists() for p in [expired_file, *expired_legs])
    assert all(p.exists() for p in [held_file, *held_legs])
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [expired, held]))
    assert sorted((r.call_id, r.kind, r.state, r.legal_hold) for r in rows) == sorted(
        [(expired, kind, State.EXPIRED, False) for kind in CALL_KINDS]
        + [(held, kind, State.DONE, True) for kind in CALL_KINDS])


async def stored_callback(database: Database, storage: Path, call_id: str) -> Path:
    """An operator's call-back of the call's caller, recorded and stored next to the call's
    recording (filed and dated by the call, as the worker does)."""
    mixed = await database.run(lambda c: RECORDINGS.recording(c, call_id))
    assert mixed is not None and mixed.storage_path is not None
    mixed_path, started = mixed.storage_path, mixed.started_at

    async def work(connection: asyncpg.Connection) -> str:
        leg_id = await LegRepository().open(
            connection, kind=LegKind.CALLBACK, call_id=call_id, incident_id=None,
            operator="PJSIP/op1001", actor="op1001", number="0812", target="penelepon")
        relpath = mixed_path.replace(".opus", f"-callback{leg_id}.opus")
        (storage / relpath).write_bytes(b"OggS call-back stand-in")
        await RECORDINGS.add(connection, call_id, State.PENDING, kind=Kind.CALLBACK,
                             leg_id=leg_id, started_at=started,
                             source_file=f"{call_id}-callback{leg_id}.wav")
        job = await RECORDINGS.claim(connection, uuid.uuid4(), 60)
        assert job is not None and (job.call_id, job.leg_id) == (call_id, leg_id)
        assert await RECORDINGS.mark_done(connection, job, Processed(
            30.0, 0.1, -20.0, "opus", relpath, 23, "ef" * 32))
        return relpath

    return storage / await database.run(work)


async def test_a_call_back_recorded_after_the_hold_is_held_with_the_call(
    database: Database, tmp_path: Path
) -> None:
    """A hold is on the call: an operator's call-back of its caller, recorded days after the
    hold was set, is evidence of the same case and must not expire from under it."""
    storage = tmp_path / "store"
    held, held_file = await stored_recording(database, storage, "information", 400)
    assert await database.run(lambda c: RECORDINGS.set_legal_hold(c, held, True))
    later = await stored_callback(database, storage, held)
    # The hold command and the call-back's pairing may cross: the row's own flag missed it.
    crossed = await stored_callback(database, storage, held)
    await database.run(lambda c: c.execute(
        "UPDATE recordings SET legal_hold = false WHERE storage_path = $1",
        crossed.relative_to(storage).as_posix()))

    assert await apply_retention(database, POLICY, storage, NOW, dry_run=True) == []
    assert await apply_retention(database, POLICY, storage, NOW) == []

    assert held_file.exists() and later.exists() and crossed.exists()
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [held]))
    assert [(r.kind, r.state, r.legal_hold) for r in rows] == [
        (Kind.MIXED, State.DONE, True), (Kind.CALLBACK, State.DONE, True),
        (Kind.CALLBACK, State.DONE, False)]
    # Lifting the hold lets the policy apply to all of them.
    assert await database.run(lambda c: RECORDINGS.set_legal_hold(c, held, False))
    removed = await apply_retention(database, POLICY, storage, NOW)
    assert [r.kind for r in removed] == [Kind.MIXED, Kind.CALLBACK, Kind.CALLBACK]
    assert not any(p.exists() for p in (held_file, later, crossed))


async def test_an_incident_still_worked_on_keeps_its_calls_recordings(
    database: Database, tmp_path: Path
) -> None:
    """A complaint two years old whose incident is still being worked on (a case in court, a
    dispute over the response) keeps its recordings without anyone remembering to hold them;
    once the incident has ended, its calls are kept for their category's retention counted
    from that end, then removed as any other."""
    storage = tmp_path / "store"
    incidents = make_service(database).incidents
    open_case, open_file = await stored_recording(database, storage, "complaint", 800)
    open_incident = await incidents.create_for_call(open_case, actor="op1001")
    linked, linked_file = await stored_recording(database, storage, "information", 400)
    await incidents.link_call(open_incident.incident_id, linked, actor="op1001")
    closed_lately, closed_lately_file = await stored_recording(
        database, storage, "complaint", 800)
    closed_long_ago, closed_long_ago_file = await stored_recording(
        database, storage, "complaint", 800)
    for call_id, days in ((closed_lately, 100), (closed_long_ago, 740)):
        incident = await incidents.create_for_call(call_id, actor="op1001")

        async def close(connection: asyncpg.Connection, incident_id: int = incident.incident_id,
                        days: int = days) -> None:
            await connection.execute(
                "UPDATE incidents SET status = 'closed', status_changed_at = now() "
                "- make_interval(days => $2) WHERE incident_id = $1", incident_id, days)

        await database.run(close)

    preview = await apply_retention(database, POLICY, storage, NOW, dry_run=True)
    assert [r.call_id for r in preview] == [closed_long_ago]
    removed = await apply_retention(database, POLICY, storage, NOW)

    assert [r.call_id for r in removed] == [closed_long_ago]
    assert not closed_long_ago_file.exists()
    assert open_file.exists() and linked_file.exists() and closed_lately_file.exists()
    # Resolved is not the end: it waits for closing (and the caller's rating).
    await database.run(lambda c: c.execute(
        "UPDATE incidents SET status = 'resolved', status_changed_at = now() - interval "
        "'800 days' WHERE incident_id = $1", open_incident.incident_id))
    assert await apply_retention(database, POLICY, storage, NOW) == []
    await database.run(lambda c: c.execute(
        "UPDATE incidents SET status = 'closed', status_changed_at = now() - interval "
        "'800 days' WHERE incident_id = $1", open_incident.incident_id))
    assert sorted(r.call_id for r in await apply_retention(database, POLICY, storage, NOW)) == (
        sorted([open_case, linked]))


async def test_a_call_linked_to_an_open_incident_after_the_listing_stays(
    database: Database, tmp_path: Path
) -> None:
    """An operator links an old call to an open incident while retention is running: the
    row re-read under lock sees the link, and the recording stays."""
    storage = tmp_path / "store"
    call_id, path = await stored_recording(database, storage, "information", 400)
    other, _ = await stored_recording(database, storage, "emergency", 1)
    candidates = await database.run(lambda c: RECORDINGS.retention_candidates(
        c, started_before=NOW - timedelta(days=365)))
    [candidate] = [c for c in candidates if c.call_id == call_id]
    assert not candidate.incident_open
    incidents = make_service(database).incidents
    incident = await incidents.create_for_call(other, actor="op1001")
    await incidents.link_call(incident.incident_id, call_id, actor="op1001")

    async def hold(connection: asyncpg.Connection) -> bool:
        async with connection.transaction():
            return await RECORDINGS.hold_for_expiry(connection, candidate)

    assert not await database.run(hold)
    assert path.exists()


async def test_the_line_applies_retention_itself_at_start_and_every_interval(
    database: Database, tmp_path: Path
) -> None:
    """serve runs retention itself (recordings_retention_interval_hours): nobody has to
    remember a cron job before the disk fills. Each pass reads only what its category's
    retention may have expired: not every emergency call kept for ten years."""
    storage = tmp_path / "store"
    expired, expired_file = await stored_recording(database, storage, "information", 400)
    kept, kept_file = await stored_recording(database, storage, "emergency", 400)
    by_category, others = POLICY.cutoffs(NOW)
    candidates = await database.run(lambda c: RECORDINGS.retention_candidates(
        c, started_before=POLICY.earliest_cutoff(NOW), by_category=by_category,
        others_before=others))
    assert {c.call_id for c in candidates} == {expired}

    task = asyncio.create_task(run_retention(database, POLICY, storage, 0.2))
    try:
        await eventually("the first pass", lambda: asyncio.to_thread(
            lambda: True if not expired_file.exists() else None), within=10)
        later, later_file = await stored_recording(database, storage, "complaint", 800)
        await eventually("a later pass", lambda: asyncio.to_thread(
            lambda: True if not later_file.exists() else None), within=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert kept_file.exists()
    rows = await database.run(lambda c: RECORDINGS.recordings_of_calls(c, [expired, later, kept]))
    assert sorted((r.call_id, r.state) for r in rows) == sorted(
        [(expired, State.EXPIRED), (later, State.EXPIRED), (kept, State.DONE)])
