"""Pruning old backups beside a new one, on a real file system: only our backups past the
keep days and half-written ones no one writes go; nothing else, and no link is followed.
(tests/loopback/test_backup.py runs it through ``siaga112 backup`` with real backups.)"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telephony.backup.model import MANIFEST_NAME, FileEntry, Manifest, expired
from telephony.backup.pruning import PARTIAL_GRACE_SECONDS, prune, prune_backups
from telephony.backup.service import try_lock
from telephony.settings import SettingsError, load_settings
from tests.support.net import free_port

NOW = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
DIGEST = "ab" * 32
SITE = "7716588858512969982/16385"  # this site's database (telephony/backup/store.py)
FILES = {"database.dump": b"PGDMP dump", "recordings/2026/12/01/1.1.opus": b"opus",
         "attachments/2026/12/x.png": b"png"}


def write_backup(path: Path, days_old: float, *, site: str = "", written_to: str = "") -> Path:
    """A backup as back_up leaves one (the checksums do not matter to pruning)."""
    for relative, data in FILES.items():
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        (path / relative).write_bytes(data)
    entries = [FileEntry(relative, DIGEST, len(data)) for relative, data in FILES.items()]
    manifest = Manifest(NOW - timedelta(days=days_old), 47, entries[0], tuple(entries[1:]),
                        "0.1.0", "pg_dump (PostgreSQL) 15.8", site, written_to)
    (path / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return path


def noted(*backups: Path) -> frozenset[tuple[str, datetime]]:
    """What the site's audit log says it wrote (telephony/backup/store.py): these backups."""
    return frozenset(
        (path.name, Manifest.from_json((path / MANIFEST_NAME).read_text(encoding="utf-8"))
         .created_at) for path in backups)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``, links by their target, without following them."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[relative] = path.read_bytes()
    return found


def test_a_backup_is_past_the_keep_days_by_its_manifest_time() -> None:
    assert expired(NOW - timedelta(days=7, seconds=1), now=NOW, keep_days=7)
    assert not expired(NOW - timedelta(days=6, hours=23), now=NOW, keep_days=7)
    assert not expired(NOW - timedelta(days=400), now=NOW, keep_days=0)  # 0: keep all
    assert not expired(NOW + timedelta(days=30), now=NOW, keep_days=7)  # clock set back


def test_the_keep_days_default_to_a_week_and_are_checked() -> None:
    assert load_settings(environ={}).backup_keep_days == 30
    assert load_settings(environ={"SIAGA112_BACKUP_KEEP_DAYS": "0"}).backup_keep_days == 0
    for bad in ("-1", "3651"):
        with pytest.raises(SettingsError, match="backup_keep_days must be between 0 and 3650"):
            load_settings(environ={"SIAGA112_BACKUP_KEEP_DAYS": bad})


def test_only_our_expired_backups_go_and_never_the_one_just_written(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    old = write_backup(backups / "2026-11-20", 17)
    recent = write_backup(backups / "2026-12-04", 3)
    # The one just written: whatever its manifest says, it is never a candidate.
    tonight = write_backup(backups / "2026-12-07", 30)
    # A backup of another site's, copied here to be restored: not in this site's record.
    copied = write_backup(backups / "lama-situs-pusat", 60)
    # A removal cut short (a crash): the manifest, removed last, still says it is ours.
    interrupted = write_backup(backups / "2026-11-19", 18)
    (interrupted / "database.dump").unlink()
    (interrupted / "recordings" / "2026" / "12" / "01" / "1.1.opus").unlink()
    # Ours once, but an engineer added a note: kept, and said.
    annotated = write_backup(backups / "2026-11-18", 19)
    (annotated / "CATATAN.txt").write_text("cadangan sebelum upgrade, jangan dihapus")
    # A link inside one, to the site's recordings: kept, and nothing followed.
    site = tmp_path / "site" / "recordings"
    (site / "2026").mkdir(parents=True)
    (site / "2026" / "1.2.opus").write_bytes(b"site")
    linked = write_backup(backups / "2026-11-17", 20)
    (linked / "recordings" / "2026" / "12" / "01" / "1.1.opus").unlink()
    os.rmdir(linked / "recordings" / "2026" / "12" / "01")
    os.rmdir(linked / "recordings" / "2026" / "12")
    os.rmdir(linked / "recordings" / "2026")
    os.rmdir(linked / "recordings")
    (linked / "recordings").symlink_to(site, target_is_directory=True)
    # A link beside them to an old backup elsewhere, a site's own directory and file, another
    # tool's manifest: none of them ours.
    elsewhere = write_backup(tmp_path / "arsip" / "2026-01-01", 340)
    (backups / "arsip").symlink_to(elsewhere, target_is_directory=True)
    (backups / "skrip").mkdir()
    (backups / "skrip" / "cadangan.sh").write_text("#!/bin/sh\n")
    (backups / "BACA.txt").write_text("cadangan malam\n")
    (backups / "lain").mkdir()
    (backups / "lain" / MANIFEST_NAME).write_text('{"format": "lain", "created_at": "2020"}')
    # A FIFO by the manifest's name: opening it to read used to wait for a writer for ever.
    (backups / "antrean").mkdir()
    os.mkfifo(backups / "antrean" / MANIFEST_NAME)
    before = {path: tree(path) for path in (tmp_path / "site", tmp_path / "arsip",
                                            backups / "skrip", backups / "lain")}

    freed = sum(path.stat().st_size for backup in (old, interrupted)
                for path in backup.rglob("*") if path.is_file())

    report = prune(backups, keep_days=7, now=NOW, written="2026-12-07",
                   recorded=noted(old, recent, tonight, interrupted, annotated, linked, elsewhere))

    assert report.removed == ("2026-11-19", "2026-11-20")
    assert report.freed == freed
    assert report.kept == (
        "2026-11-17: berisi tautan atau berkas khusus (recordings)",
        "2026-11-18: berisi berkas yang bukan bagian cadangan (CATATAN.txt)")
    assert sorted(p.name for p in backups.iterdir()) == [
        "2026-11-17", "2026-11-18", "2026-12-04", "2026-12-07", "BACA.txt", "antrean", "arsip",
        "lain", "lama-situs-pusat", "skrip"]
    assert tree(copied)
    assert not old.exists() and recent.is_dir()
    assert {path: tree(path) for path in before} == before
    assert (linked / "recordings").is_symlink() and "CATATAN.txt" in tree(annotated)
    line = report.log_line()
    assert line.startswith(f"backups in {backups} older than 7 days: 2 removed "
                           "(2026-11-19, 2026-11-20), ")
    assert "; 2 kept (2026-11-17: " in line and "\n" not in line


def test_a_backup_its_manifest_says_this_database_wrote_there_is_ours(tmp_path: Path) -> None:
    # The backups written after the one a site restored: not in the restored audit log.
    backups = tmp_path / "backups"
    ours = write_backup(backups / "2026-11-01", 36, site=SITE,
                        written_to=str(backups / "2026-11-01"))
    write_backup(backups / "disimpan", 36, site=SITE, written_to=str(backups / "2026-11-02"))
    write_backup(backups / "situs-lain", 36, site="1/2", written_to=str(backups / "situs-lain"))
    write_backup(backups / "lama", 36)  # an older version's: names no database
    left = tree(backups)
    report = prune(backups, keep_days=30, now=NOW, written="2026-12-07", recorded=frozenset(),
                   site=SITE)
    assert report.removed == ("2026-11-01",)
    assert not ours.exists()
    assert tree(backups) == {name: data for name, data in left.items()
                             if not name.startswith("2026-11-01")}


def test_half_written_backups_go_unless_written_now_or_not_ours(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    old = time.time() - 86400

    def partial(name: str, *files: str, age: float = old) -> Path:
        path = backups / name
        for relative in files:
            (path / relative).parent.mkdir(parents=True, exist_ok=True)
            (path / relative).write_bytes(b"x" * 100)
        path.mkdir(exist_ok=True)
        os.utime(path, (age, age))
        return path

    crashed = partial(".2026-12-06.partial-4242-0badcafe", "database.dump",
                      "recordings/2026/1.1.opus")
    being_written = partial(".2026-12-06.partial-77-0badf00d", "database.dump")
    young = partial(".2026-12-06.partial-78-00000000", "database.dump",
                    age=time.time() - PARTIAL_GRACE_SECONDS / 2)
    foreign = partial(".2026-12-06.partial-79-11111111", "database.dump", "pribadi.txt")
    hidden = partial(".ssh", "id_ed25519")  # not named as ours at all
    writer = os.open(being_written, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(writer, fcntl.LOCK_EX)  # as back_up holds it
        report = prune(backups, keep_days=7, now=NOW, written="2026-12-07",
                       recorded=frozenset())
    finally:
        os.close(writer)

    assert report.partials == (crashed.name,) and report.removed == ()
    assert report.freed == 200
    assert report.kept == (f"{foreign.name}: berisi berkas yang bukan bagian cadangan "
                           "(pribadi.txt)",)
    assert not crashed.exists()
    assert all(path.is_dir() for path in (being_written, young, foreign, hidden))
    assert "1 half-written removed (.2026-12-06.partial-4242-0badcafe)" in report.log_line()


def test_a_backup_that_cannot_be_removed_is_named_and_the_next_run_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups = tmp_path / "backups"
    stuck = write_backup(backups / "2026-11-01", 36)
    recorded = noted(stuck, write_backup(backups / "2026-11-02", 35))
    unlink = os.unlink
    refusals = [True]  # the first backup's recording (the oldest goes first)

    def refused(path: str, *, dir_fd: int | None = None) -> None:
        if path == "1.1.opus" and refusals:  # a file the command may not delete
            refusals.pop()
            raise PermissionError(13, "Permission denied", path)
        unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", refused)
    report = prune(backups, keep_days=7, now=NOW, written="2026-12-07", recorded=recorded)
    assert report.removed == ("2026-11-02",)
    assert report.failed == ("2026-11-01: izin ditolak",)
    assert report.log_line().endswith("; 1 could not be removed (2026-11-01: izin ditolak)")
    assert "1 gagal dihapus: 2026-11-01: izin ditolak" in str(report.summary())
    # The manifest goes last: what is left is still a backup of ours, finished next time.
    assert (stuck / MANIFEST_NAME).is_file()
    monkeypatch.undo()
    assert prune(backups, keep_days=7, now=NOW, written="2026-12-07",
                 recorded=recorded).removed == ("2026-11-01",)
    assert list(backups.iterdir()) == []


def test_keep_days_zero_removes_nothing(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    recorded = noted(write_backup(backups / "2020-01-01", 2000))
    crashed = backups / ".2020-01-02.partial-1-00000000"
    crashed.mkdir()
    os.utime(crashed, (0, 0))
    report = prune(backups, keep_days=0, now=NOW, written="2026-12-07", recorded=recorded)
    assert (report.removed, report.partials, report.kept) == ((), (), ())
    assert sorted(p.name for p in backups.iterdir()) == [crashed.name, "2020-01-01"]
    assert report.log_line() == f"backups in {backups}: none removed (backup_keep_days = 0)"
    assert report.summary() is None


async def test_a_database_gone_since_the_backup_removes_no_backup_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Which backups are the site's own is the database's record: without it none is, and
    # the command says why nothing went (a warning), not a traceback.
    backups = tmp_path / "backups"
    write_backup(backups / "2020-01-01", 2000)
    crashed = backups / ".2020-01-02.partial-1-00000000"
    crashed.mkdir()
    os.utime(crashed, (0, 0))
    nowhere = f"postgresql://siaga112@127.0.0.1:{free_port()}/siaga112"
    settings = replace(load_settings(environ={}), state_dir=tmp_path / "state",
                       database_dsn=nowhere, db_connect_timeout=2.0)
    report = await prune_backups(settings, backups / "2026-12-07")
    assert report.removed == () and report.partials == (crashed.name,)
    (failure,) = report.failed
    assert failure.startswith("basis data: cannot connect to PostgreSQL") and "\n" not in failure
    (record,) = [r for r in caplog.records if r.name == "telephony.backup"]
    assert record.levelname == "WARNING" and "could not be removed (basis data: " in \
        record.getMessage()
    assert (backups / "2020-01-01").is_dir()


def test_a_file_system_without_locks_does_not_stop_a_backup_or_a_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An NFS backup mount without its lock daemon: flock fails with ENOLCK, which came out of
    # a restore as a traceback. Without locks they go on as before there were any.
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert try_lock(fd) and try_lock(fd, shared=True)
    finally:
        os.close(fd)
