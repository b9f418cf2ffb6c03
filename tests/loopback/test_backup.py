"""``siaga112 backup`` and ``restore`` against a real PostgreSQL, real pg_dump / pg_restore,
and a recording stored by the real worker (sox, ffmpeg).

A site with calls, incidents, a recording and an attachment is backed up through the command
line and restored into a fresh database and an empty state directory: the same calls and
incidents are there and the recording plays the same bytes. A tampered backup, a database
that already holds records and a half-written backup are refused or never appear.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from recordings.domain import State
from recordings.library import RecordingLibrary
from recordings.store import RecordingRepository
from recordings.worker import RecordingsConfig, RecordingWorker
from telephony.app import running_line
from telephony.backup import service as backup_service
from telephony.backup.errors import BackupError
from telephony.backup.model import MANIFEST_NAME, Manifest
from telephony.backup.pruning import prune
from telephony.backup.service import back_up, connection_target, restore
from telephony.backup.store import record_backup
from telephony.db.connection import Database
from telephony.db.embedded import SUPERUSER, EmbeddedPostgres
from telephony.settings import Settings
from tests.support import net
from tests.support.calls import add_calls, call_facts
from tests.support.db import (
    create_database,
    create_empty_database,
    drop_database,
    fetch,
    line_dsn,
    owner_dsn,
)
from tests.support.incidents import make_service

REPOSITORY = Path(__file__).resolve().parents[2]
CALLS = ("1750000001.1", "1750000002.2", "1750000003.3")
ATTACHMENT = b"\x89PNG\r\n\x1a\n stand-in photo of the scene"


@dataclass(frozen=True)
class Site:
    settings: Settings
    recording_id: int
    recording_bytes: bytes
    incident_ids: tuple[int, ...]


async def table(dsn: str, query: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await fetch(dsn, query)]


async def site_state(dsn: str) -> tuple[list[dict[str, Any]], ...]:
    """What the test compares before and after: calls, incidents and their timelines,
    recordings, the schema level."""
    return (
        await table(dsn, "SELECT * FROM calls ORDER BY call_id"),
        await table(dsn, "SELECT * FROM incidents ORDER BY incident_id"),
        await table(dsn, "SELECT * FROM incident_calls ORDER BY 1, 2"),
        await table(dsn, "SELECT * FROM incident_events ORDER BY 1"),
        await table(dsn, "SELECT * FROM recordings ORDER BY recording_id"),
        await table(dsn, "SELECT version, name, checksum FROM schema_migrations ORDER BY 1"),
    )


@pytest.fixture
async def site(settings: Settings, database_dsn: str, database_owner_dsn: str,
               tmp_path: Path) -> AsyncIterator[Site]:
    """A site that took three calls, opened incidents, stored one recording through the
    worker and keeps one attachment."""
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    configured = replace(settings, database_dsn=database_dsn,
                         database_owner_dsn=database_owner_dsn, state_dir=tmp_path / "site-a",
                         recordings_incoming_dir=monitor, recordings_settle_seconds=0.0)
    await add_calls(database_dsn, *(call_facts(call_id, f"08120000000{i}", key="1")
                                    for i, call_id in enumerate(CALLS)))
    database = Database(configured)
    try:
        incidents = make_service(database).incidents
        incident_ids = tuple([(await incidents.create_for_call(call_id)).incident_id
                              for call_id in CALLS[:2]])
        # A recording as Asterisk's MixMonitor leaves it, stored by the worker itself.
        sox = await asyncio.create_subprocess_exec(
            "sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(monitor / f"{CALLS[0]}.wav"),
            "synth", "2", "sine", "440")
        assert await sox.wait() == 0
        worker = RecordingWorker(database, RecordingsConfig.from_settings(configured))
        for _ in range(100):  # bounded: the worker needs one or two passes
            if any(o.state is State.DONE for o in await worker.run_once()):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the worker did not store the recording")
        recording = await database.run(
            lambda c: RecordingRepository().recording(c, CALLS[0]))
        assert recording is not None and recording.storage_path is not None
        stored = configured.recordings_dir / recording.storage_path
        attachment = configured.attachments_dir / "2025" / "01" / "scene.png"
        attachment.parent.mkdir(parents=True)
        attachment.write_bytes(ATTACHMENT)
    finally:
        # The line is stopped before a restore, and a restore refuses while it is connected.
        await database.close()
    yield Site(configured, recording.recording_id, stored.read_bytes(), incident_ids)


@pytest.fixture
async def fresh(settings: Settings, pg_cluster: EmbeddedPostgres, tmp_path: Path
                ) -> AsyncIterator[Settings]:
    """Another site: an empty database and an empty state directory. The line connects as
    its own role, which exists (roles are the cluster's) but has no grant here yet; backup and
    restore run as the owner."""
    dsn = await create_empty_database(pg_cluster)
    yield replace(settings, database_dsn=line_dsn(pg_cluster, dsn), database_owner_dsn=dsn,
                  state_dir=tmp_path / "site-b")
    await drop_database(pg_cluster, dsn)


def siaga112(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command line, as the IT staff (or the compose file) run it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environ["PYTHONPATH"] = str(REPOSITORY)
    sets = ["--set", f"database_dsn={settings.database_dsn}",
            "--set", f"state_dir={settings.state_dir}"]
    if settings.database_owner_dsn is not None:
        sets += ["--set", f"database_owner_dsn={settings.database_owner_dsn}"]
    return subprocess.run([sys.executable, "-m", "telephony", *sets, *argv], env=environ,
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=120,
                          check=False)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_a_backup_restored_into_a_fresh_site_has_the_same_calls_incidents_and_recordings(
    site: Site, fresh: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "backups" / "2025-06-01"
    done = siaga112(site.settings, "backup", str(target))
    assert done.returncode == 0, done.stderr
    assert f"Cadangan ditulis ke {target}" in done.stdout
    manifest = Manifest.from_json((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest.schema_version >= 9
    assert {entry.area for entry in manifest.files} == {"recordings", "attachments"}
    assert manifest.database.size == (target / "database.dump").stat().st_size
    # Nothing half-written is left beside it.
    assert [p.name for p in target.parent.iterdir()] == [target.name]

    done = siaga112(fresh, "restore", str(target))
    assert done.returncode == 0, done.stderr
    assert "dipulihkan" in done.stdout

    assert fresh.database_dsn is not None and site.settings.database_dsn is not None
    assert await site_state(fresh.database_dsn) == await site_state(site.settings.database_dsn)
    assert len((await site_state(fresh.database_dsn))[1]) == len(site.incident_ids) == 2
    # The recording plays: the library the audio endpoint uses finds the same bytes.
    database = Database(fresh)
    try:
        library = RecordingLibrary(database, fresh.recordings_dir)
        audio = library.audio(await library.get(site.recording_id))
        assert audio.path.read_bytes() == site.recording_bytes
        assert audio.path.is_relative_to(fresh.recordings_dir)
    finally:
        await database.close()
    assert (fresh.attachments_dir / "2025" / "01" / "scene.png").read_bytes() == ATTACHMENT
    # The owner owns what it restored, and the line's role got its grants again, no more.
    assert fresh.database_owner_dsn is not None
    owners = await table(fresh.database_owner_dsn,
                         "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class "
                         "WHERE relnamespace = 'public'::regnamespace")
    assert owners == [{"owner": SUPERUSER}]
    for statement in ("TRUNCATE audit_log", "DELETE FROM audit_log", "DROP TABLE calls CASCADE"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await table(fresh.database_dsn, statement)

    # Restoring again over what is now a site with records is refused without --force.
    done = siaga112(fresh, "restore", str(target))
    assert done.returncode == 1
    assert "sudah berisi data" in done.stderr and "Traceback" not in done.stderr
    done = siaga112(fresh, "restore", "--force", str(target))
    assert done.returncode == 0, done.stderr
    assert await site_state(fresh.database_dsn) == await site_state(site.settings.database_dsn)


async def test_a_tampered_backup_is_refused_and_nothing_changes(
    site: Site, fresh: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    await back_up(site.settings, target)
    manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    (recording,) = [e["path"] for e in manifest["files"] if e["path"].startswith("recordings/")]
    tampered = target / recording
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    tampered.write_bytes(bytes(data))

    with pytest.raises(BackupError, match=f"{recording}: SHA-256 tidak cocok"):
        await restore(fresh, target)
    assert fresh.database_dsn is not None
    assert await fetch(fresh.database_dsn,
                       "SELECT 1 FROM pg_tables WHERE schemaname = 'public'") == []
    assert files_under(fresh.state_dir) == []

    # The same through the command line: one line in Bahasa Indonesia, exit 1.
    done = siaga112(fresh, "restore", "--force", str(target))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "SHA-256 tidak cocok" in done.stderr
    # A missing file and a manifest that points outside the backup are refused too.
    tampered.unlink()
    with pytest.raises(BackupError, match=f"{recording}: tidak ada"):
        await restore(fresh, target)
    manifest["files"][0]["path"] = "recordings/../../etc/passwd"
    (target / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BackupError, match="tidak sah"):
        await restore(fresh, target)
    assert files_under(fresh.state_dir) == []


async def test_a_backup_whose_area_links_out_of_it_is_refused(
    site: Site, fresh: Settings, tmp_path: Path
) -> None:
    """A hostile backup: its recordings directory is a link to a directory elsewhere, holding
    a file its manifest lists with the right checksum. Restore reads nothing through it."""
    target = tmp_path / "backup"
    await back_up(site.settings, target)
    manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    (entry,) = [e for e in manifest["files"] if e["path"].startswith("recordings/")]
    elsewhere = tmp_path / "elsewhere"
    shutil.move(target / "recordings", elsewhere)
    (target / "recordings").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(BackupError, match=f"{entry['path']}: tidak ada di dalam cadangan"):
        await restore(fresh, target, force=True)
    assert files_under(fresh.state_dir) == []


async def test_a_database_with_records_is_kept_unless_forced(site: Site, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    await back_up(site.settings, target)
    assert site.settings.database_dsn is not None
    before = await site_state(site.settings.database_dsn)
    with pytest.raises(BackupError, match="calls, incidents, recordings"):
        await restore(site.settings, target)
    # --force replaces it with the backup: here, the same records.
    report = await restore(site.settings, target, force=True)
    assert report.files == 2
    assert await site_state(site.settings.database_dsn) == before


async def test_a_new_site_its_nightly_job_backed_up_still_takes_a_backup_unforced(
    site: Site, settings: Settings, pg_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    # Each backup is noted in the audit log (the line's backup-age metric reads it); that
    # note alone must not make a new site's database one "with records".
    dsn = await create_database(pg_cluster)
    new = replace(settings, database_dsn=dsn, database_owner_dsn=owner_dsn(pg_cluster, dsn),
                  state_dir=tmp_path / "site-c")
    try:
        await back_up(new, tmp_path / "new-site-nightly")
        target = tmp_path / "backup"
        await back_up(site.settings, target)
        await restore(new, target)
        assert len((await site_state(dsn))[0]) == len(CALLS)
    finally:
        await drop_database(pg_cluster, dsn)


async def test_a_restore_onto_a_running_line_is_refused_even_forced_and_nothing_changes(
    site: Site, line_settings: Settings, tmp_path: Path
) -> None:
    # The line kept recording into the database being replaced: a call it recorded meanwhile
    # was dropped with the old schema, and its wallboard and open calls no longer matched.
    target = tmp_path / "backup"
    await back_up(site.settings, target)
    assert site.settings.database_dsn is not None
    await add_calls(site.settings.database_dsn, call_facts("1750000009.9", "081200000009"))
    calls = (await site_state(site.settings.database_dsn))[0]
    async with running_line(replace(line_settings, state_dir=tmp_path / "line")):
        with pytest.raises(BackupError, match=r"masih tersambung ke basis data tujuan \(.*sesi"):
            await restore(site.settings, target, force=True)
        done = siaga112(site.settings, "restore", "--force", str(target))
        assert done.returncode == 1
        assert "Hentikan layanan" in done.stderr and "Traceback" not in done.stderr
    # The call recorded after the backup is still there (the running line's own upkeep may
    # have touched the incidents meanwhile: not compared).
    assert (await site_state(site.settings.database_dsn))[0] == calls
    # Stopped, the same restore goes through.
    await restore(site.settings, target, force=True)
    assert len((await site_state(site.settings.database_dsn))[0]) == len(CALLS)


async def test_a_dump_pg_restore_cannot_read_leaves_the_database_as_it_was(
    site: Site, tmp_path: Path
) -> None:
    # A dump of a newer pg_dump (its header's format version), with a manifest that matches
    # it: every checksum passes, pg_restore gives up at the header. psql used to read the
    # end of its input as the end of the SQL and commit the DROP SCHEMA: every record gone,
    # and the restore said the database had not changed.
    target = tmp_path / "backup"
    await back_up(site.settings, target)
    dump = target / "database.dump"
    data = bytearray(dump.read_bytes())
    assert data[:5] == b"PGDMP"
    data[6] = 99  # the format's minor version
    dump.write_bytes(bytes(data))
    manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["database"]["sha256"] = hashlib.sha256(data).hexdigest()
    (target / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    assert site.settings.database_dsn is not None
    before = await site_state(site.settings.database_dsn)

    with pytest.raises(BackupError) as refused:
        await restore(site.settings, target, force=True)
    assert await site_state(site.settings.database_dsn) == before
    # The reason is pg_restore's, not a notice psql printed while dropping the schema.
    assert "basis data tidak berubah: " in refused.value.message
    assert "unsupported version" in refused.value.message


async def test_a_failed_backup_leaves_nothing_that_looks_whole(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(source: Path, target: Path) -> tuple[str, int]:
        raise OSError("disk full")

    monkeypatch.setattr(backup_service, "copy_hashed", broken)
    target = tmp_path / "backups" / "tonight"
    with pytest.raises(BackupError, match=r"tidak dapat ditulis ke .*tonight: disk full"):
        await back_up(site.settings, target)
    assert list((tmp_path / "backups").iterdir()) == []
    # A site file the backup may not read is named: "cannot be written to tonight" it said.
    def unreadable(source: Path, target: Path) -> tuple[str, int]:
        raise PermissionError(errno.EACCES, "Permission denied", str(source))

    monkeypatch.setattr(backup_service, "copy_hashed", unreadable)
    with pytest.raises(BackupError, match=r"Berkas situs .*/recordings/.* tidak dapat dibaca: "
                                          r"izin ditolak; tidak ada cadangan yang ditulis"):
        await back_up(site.settings, target)
    assert list((tmp_path / "backups").iterdir()) == []
    # A target the system refuses is one line and exit 1 on the command line, no traceback.
    (tmp_path / "a-file").write_text("x")
    done = siaga112(site.settings, "backup", str(tmp_path / "a-file" / "tonight"))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "tidak dapat ditulis" in done.stderr
    # A directory that is not a backup is refused by restore, and backup never overwrites.
    target.mkdir()
    (target / "notes.txt").write_text("x")
    with pytest.raises(BackupError, match="bukan cadangan yang utuh"):
        await restore(site.settings, target)
    monkeypatch.undo()
    with pytest.raises(BackupError, match="sudah berisi"):
        await back_up(site.settings, target)


async def test_a_site_that_cannot_take_the_files_is_refused_before_anything_changes(
    site: Site, fresh: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database was replaced first and the restore then died among the files with a
    # traceback: a fresh machine whose attachments volume was mounted as a file, or whose
    # recordings disk is smaller than the old one's.
    target = tmp_path / "backup"
    await back_up(site.settings, target)
    assert fresh.database_dsn is not None
    fresh.attachments_dir.parent.mkdir(parents=True)
    fresh.attachments_dir.write_text("not a directory")
    done = siaga112(fresh, "restore", str(target))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{fresh.attachments_dir} bukan direktori" in done.stderr
    assert "tidak ada yang diubah" in done.stderr
    assert await fetch(fresh.database_dsn,
                       "SELECT 1 FROM pg_tables WHERE schemaname = 'public'") == []
    fresh.attachments_dir.unlink()

    # A file system with less room than the files take: refused, unchanged.
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1024))
    with pytest.raises(BackupError, match=r"ruang disk di .* tidak cukup: perlu .*tersedia "
                                          r"1\.0 KiB\); tidak ada yang diubah"):
        await restore(fresh, target)
    assert await fetch(fresh.database_dsn,
                       "SELECT 1 FROM pg_tables WHERE schemaname = 'public'") == []
    assert files_under(fresh.state_dir) == []
    monkeypatch.undo()

    # Room that runs out during the copy all the same (another writer on that disk): said in
    # one sentence, and the restored database is already migrated and granted to the line.
    def full(source: Path, target: Path) -> tuple[str, int]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup_service, "copy_hashed", full)
    with pytest.raises(BackupError, match=r"Basis data sudah dipulihkan, tetapi berkas cadangan "
                                          r"tidak dapat ditulis: ruang disk habis.*--force"):
        await restore(fresh, target)
    assert len(await fetch(fresh.database_dsn, "SELECT call_id FROM calls")) == len(CALLS)
    monkeypatch.undo()
    report = await restore(fresh, target, force=True)
    assert report.files == 2
    assert (fresh.attachments_dir / "2025" / "01" / "scene.png").read_bytes() == ATTACHMENT
    # Over the same files again, the room of the largest one's copy is enough.
    largest = max(entry.size for entry in report.manifest.files)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=largest))
    assert (await restore(fresh, target, force=True)).files == 2


async def test_a_file_removed_while_the_backup_copies_is_left_out_and_the_backup_is_whole(
    site: Site, fresh: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retention (or an engineer clearing the quarantine) removed a file after the backup
    # listed its area and before it was copied: the whole nightly backup failed, "berkas
    # atau direktori tidak ada", and the site had none that night.
    listed = backup_service.area_files
    removed = site.settings.attachments_dir / "2025" / "01" / "scene.png"

    def removed_meanwhile(root: Path) -> Iterator[Path]:
        found = list(listed(root))
        if removed in found:
            removed.unlink()
        yield from found

    monkeypatch.setattr(backup_service, "area_files", removed_meanwhile)
    target = tmp_path / "backup"
    manifest = await back_up(site.settings, target)
    assert [entry.area for entry in manifest.files] == ["recordings"]
    assert not (target / "attachments" / "2025" / "01" / "scene.png").exists()
    report = await restore(fresh, target)
    assert report.files == 1
    assert (fresh.recordings_dir / manifest.files[0].within_area).read_bytes() == \
        site.recording_bytes


async def test_a_backup_by_a_role_that_cannot_read_everything_says_which_table(
    settings: Settings, database_dsn: str, tmp_path: Path
) -> None:
    # A site with the line's own role and no database_owner_dsn: pg_dump stops at the first
    # table the role may not read, and the command said only "Query was: LOCK TABLE ...".
    as_line = replace(settings, database_dsn=database_dsn)
    done = siaga112(as_line, "backup", str(tmp_path / "backup"))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "pg_dump gagal (1): pg_dump: error: query failed: ERROR:  permission denied for " \
           "table " in done.stderr
    assert list(tmp_path.glob("*backup*")) == []


async def test_a_backup_into_an_area_it_copies_is_refused(settings: Settings) -> None:
    # Written onto the recordings volume (a site's biggest disk), each night's backup copied
    # every earlier one again, as recordings, until the disk was full. Refused before the
    # database is asked anything.
    stored = settings.recordings_dir / "2025" / "06" / "01" / "1750000001.1.opus"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"opus")
    target = settings.recordings_dir / "cadangan" / "malam-ini"
    with pytest.raises(BackupError, match=r"di dalam area cadangan recordings"):
        await back_up(settings, target)
    assert files_under(settings.recordings_dir) == [stored]


async def test_a_backup_that_would_fill_the_lines_disk_is_refused_before_it_is_written(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nightly backup into a directory on the disk the line records calls on: it used to
    fill that disk for the hours of its copy (PostgreSQL failing, calls spooled, recordings
    waiting), then fail. Refused at once, before the dump, when it would leave that disk under
    the disk alert's 10%; the same room on another disk, or plenty here, is fine."""
    target = tmp_path / "backups" / "tonight"
    target.parent.mkdir()
    files = sum(p.stat().st_size for p in files_under(site.settings.state_dir))
    real = shutil.disk_usage
    # Room for the files, but the disk (the state directory's: a shared device) has 1 GiB and
    # only 50 MiB free: less than the 10% the line must keep.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(
        total=1 << 30, free=50 << 20))
    dumps: list[list[str]] = []
    run_tool = backup_service._run_tool

    async def counted(args: list[str], *rest: Any) -> str:
        dumps.append(args)
        return await run_tool(args, *rest)

    monkeypatch.setattr(backup_service, "_run_tool", counted)
    with pytest.raises(BackupError, match=r"juga dipakai saluran .* menyisakan 102\.4 MiB "
                                          r"\(10%\).*Tulis cadangan di disk lain"):
        await back_up(site.settings, target)
    assert list(target.parent.iterdir()) == []
    assert not any("--format=custom" in " ".join(args) for args in dumps)  # refused first

    # A disk with no room for the files at all: said in one line, nothing left.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(
        free=files // 2))
    with pytest.raises(BackupError, match=r"ruang disk di .* tidak cukup: perlu"):
        await back_up(site.settings, target)
    assert list(target.parent.iterdir()) == []

    # Plenty of room on the line's disk: written as before.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(
        total=1 << 30, free=500 << 20))
    assert len((await back_up(site.settings, target)).files) == 2


def aged(backup: Path, days: float) -> Path:
    """``backup`` as if it had been written ``days`` ago (its manifest's time; the manifest
    is not among the files it checks)."""
    path = backup / MANIFEST_NAME
    document = json.loads(path.read_text(encoding="utf-8"))
    document["created_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    path.write_text(json.dumps(document), encoding="utf-8")
    return backup


async def written_days_ago(settings: Settings, backup: Path, days: float) -> Path:
    """``backup`` as the site would have written it ``days`` ago: its manifest's time, and
    the entry the site's audit log has of it (pruning removes only the site's own)."""
    manifest = Manifest.from_json((aged(backup, days) / MANIFEST_NAME).read_text(
        encoding="utf-8"))
    assert settings.database_owner_dsn is not None
    connection = await asyncpg.connect(settings.database_owner_dsn)
    try:
        await record_backup(connection, str(backup), manifest)
    finally:
        await connection.close()
    return backup


async def test_a_nightly_backup_removes_the_old_backups_beside_it_and_nothing_else(
    site: Site, tmp_path: Path
) -> None:
    """A site that ran `siaga112 backup /backups/<date>` every night filled its backup disk:
    nothing removed the old ones. Now the command removes, once the new one is whole, the
    backups beside it older than backup_keep_days (30) and what a crashed backup left, says
    so in one log line, and leaves everything else alone (an old host's backup copied in to
    be restored included)."""
    backups = tmp_path / "backups"
    first = backups / "2025-05-01"
    await back_up(site.settings, first)
    for name in ("2025-05-02", "2025-05-20", "catatan", "situs-lama"):
        shutil.copytree(first, backups / name)
    await written_days_ago(site.settings, first, 40)
    await written_days_ago(site.settings, backups / "2025-05-02", 35)
    await written_days_ago(site.settings, backups / "2025-05-20", 20)
    (await written_days_ago(site.settings, backups / "catatan", 60) / "CATATAN.txt"
     ).write_text("sebelum upgrade, simpan")
    # An old host's backup copied here to be restored: whole and old, but not this site's.
    aged(backups / "situs-lama", 70)
    # A link to an old backup kept elsewhere, and the site's own things: not ours.
    elsewhere = tmp_path / "arsip" / "2025-01-01"
    shutil.copytree(first, elsewhere)
    aged(elsewhere, 150)
    (backups / "arsip").symlink_to(elsewhere, target_is_directory=True)
    (backups / "BACA.txt").write_text("cadangan malam, disalin ke luar tiap Senin\n")
    # A backup the machine crashed in the middle of (the line's disk, last night).
    crashed = backups / ".2025-05-19.partial-4242-0badcafe"
    crashed.mkdir()
    (crashed / "database.dump").write_bytes((first / "database.dump").read_bytes()[:1000])
    os.utime(crashed, (0, 0))
    untouched = {path: files_under(path) for path in (elsewhere, site.settings.state_dir)}
    contents = {path: path.read_bytes() for paths in untouched.values() for path in paths}

    tonight = backups / "2025-05-21"
    done = siaga112(site.settings, "backup", str(tonight))

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in backups.iterdir()) == [
        "2025-05-20", "2025-05-21", "BACA.txt", "arsip", "catatan", "situs-lama"]
    assert Manifest.from_json((tonight / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert {path: files_under(path) for path in untouched} == untouched
    assert all(path.read_bytes() == data for path, data in contents.items())
    (line,) = [line for line in done.stderr.splitlines() if "older than" in line]
    assert f"backups in {backups} older than 30 days: 2 removed (2025-05-01, 2025-05-02), " \
        f"1 half-written removed ({crashed.name}), " in line
    assert "; 1 kept (catatan: berisi berkas yang bukan bagian cadangan (CATATAN.txt))" in line
    assert "Traceback" not in done.stderr
    assert (f"Cadangan lama: 2 cadangan lebih dari 30 hari dan 1 cadangan setengah jadi dihapus "
            f"dari {backups}") in done.stdout

    # A site that prunes them itself: backup_keep_days = 0 removes nothing.
    await written_days_ago(site.settings, backups / "2025-05-20", 60)
    done = siaga112(site.settings, "--set", "backup_keep_days=0", "backup",
                    str(backups / "2025-05-22"))
    assert done.returncode == 0, done.stderr
    assert (backups / "2025-05-20").is_dir() and "Cadangan lama" not in done.stdout


async def test_the_backups_written_after_the_one_a_site_restored_are_pruned_too(
    site: Site, tmp_path: Path
) -> None:
    """A site restored an old backup: its audit log is then the restored one's, which knows
    neither that backup (its entry was written after its dump) nor the ones written after it,
    so they were never pruned and the README told sites to remove them by hand. Each backup's
    manifest now names the database that wrote it and where; nothing else is taken for ours."""
    backups = tmp_path / "backups"
    restored, later = backups / "2025-04-01", backups / "2025-04-20"
    await back_up(site.settings, restored)
    await back_up(site.settings, later)
    aged(restored, 60)
    aged(later, 40)
    # Set aside by an engineer under another name, and another database's backup written
    # here (another site's, a staging copy's): old, whole, but not this site's own.
    shutil.copytree(later, backups / "sebelum-upgrade")
    shutil.copytree(later, backups / "situs-lain")
    document = json.loads((backups / "situs-lain" / MANIFEST_NAME).read_text("utf-8"))
    document.update(site="7716588858512969982/16385", written_to=str(backups / "situs-lain"))
    (backups / "situs-lain" / MANIFEST_NAME).write_text(json.dumps(document), "utf-8")
    assert (await restore(site.settings, restored, force=True)).files == 2

    done = siaga112(site.settings, "backup", str(backups / "2025-05-21"))

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in backups.iterdir()) == [
        "2025-05-21", "sebelum-upgrade", "situs-lain"]
    assert "2 removed (2025-04-01, 2025-04-20)" in done.stderr


async def test_a_backup_being_restored_is_kept_however_old(
    site: Site, fresh: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restore of last month's backup while the nightly backup ran on that host: its pruning
    # removed the backup under the restore, which then failed among the files with the
    # database already replaced.
    backups = tmp_path / "backups"
    old = backups / "2025-04-01"
    await back_up(site.settings, old)
    recorded = frozenset({(old.name, Manifest.from_json(
        (aged(old, 60) / MANIFEST_NAME).read_text(encoding="utf-8")).created_at)})
    pruned = []
    restore_database = backup_service._restore_database

    async def nightly_meanwhile(settings: Settings, dump: Path) -> None:
        pruned.append(prune(backups, keep_days=7, now=datetime.now(UTC), written="tonight",
                            recorded=recorded))
        await restore_database(settings, dump)

    monkeypatch.setattr(backup_service, "_restore_database", nightly_meanwhile)
    assert (await restore(fresh, old)).files == 2
    assert pruned[0].removed == ()
    assert pruned[0].kept == ("2025-04-01: sedang dipakai (dipulihkan)",)
    # Once restored it is an old backup like any other.
    assert prune(backups, keep_days=7, now=datetime.now(UTC), written="tonight",
                 recorded=recorded).removed == ("2025-04-01",)


async def test_a_cluster_whose_first_node_is_switched_off_backs_up_and_restores_in_seconds(
        site: Site, fresh: Settings, tmp_path: Path) -> None:
    # The cluster's owner DSN lists both nodes; the first one's machine is off (no answer,
    # not a refusal). pg_dump and psql had no connect timeout: each spent the kernel's SYN
    # retries, about two minutes, on the dead node before libpq tried the next.
    with net.silent_port() as port:
        backup = tmp_path / "backups" / "2026-12-07"
        for settings, step in ((site.settings, back_up), (fresh, restore)):
            assert settings.database_owner_dsn is not None
            through_dead_node = replace(settings, db_connect_timeout=1.0,
                                        database_owner_dsn=net.behind_silent_node(
                                            settings.database_owner_dsn, port))
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(40):  # a failure in 40 s, not in minutes
                await step(through_dead_node, backup)
            # libpq's shortest timeout is 2 s: the dead node costs pg_dump (psql) that once.
            assert asyncio.get_running_loop().time() - started < 15
    calls = "SELECT call_id FROM calls ORDER BY 1"
    assert await table(fresh.database_owner_dsn or "", calls) == \
        await table(site.settings.database_owner_dsn or "", calls)


def test_the_password_travels_in_the_environment_not_the_arguments() -> None:
    args, env = connection_target("postgresql://siaga:s%40cret@127.0.0.1:5432/siaga112",
                                  connect_timeout=3)
    assert args == ["--dbname=postgresql://siaga@127.0.0.1:5432/siaga112"]
    assert env["PGPASSWORD"] == "s@cret"
    assert env["PGCONNECT_TIMEOUT"] == "3"
    assert connection_target(None, connect_timeout=3)[0] == []
