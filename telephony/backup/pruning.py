"""Old backups removed once a new one is whole (``backup_keep_days``).

A site's nightly job writes one backup after another into the same directory (``/backups``
of the compose files); nothing removed the old ones, so the backup disk filled and every
backup after that was refused. After ``back_up`` has written and noted a backup, the
directory that holds it is pruned: every sibling that is one of our backups and older than
``backup_keep_days`` (by its manifest's time) is removed, and so is the hidden
``.NAME.partial-*`` directory a crashed backup left. What is ours is decided from the
database's own record and what is on disk, never from a name alone:

- a backup: one this site's audit log says it wrote there, at that manifest time
  (telephony/backup/store.py; a backup copied in from another site, an old host's waiting to
  be restored, is not ours), or whose manifest says this database wrote it at this very path
  (:func:`~telephony.backup.store.site_identity`): the backups a site wrote after the one it
  restored are not in the restored audit log, and were never removed. Either way in a real
  directory holding nothing but that manifest, the files it lists and their directories. One
  an engineer put anything else in (a note, a link) is kept, and named in the log line; a
  copy under another name (one an engineer set aside) is not at the path its manifest names;
- a half-written backup: a real hidden directory named as ``back_up`` names them, holding only
  regular files and directories under a backup's own names (the dump, the manifest, the
  areas), that no backup is writing any more (its writer holds its lock until the rename) and
  that nothing touched for :data:`PARTIAL_GRACE_SECONDS`.

Symbolic links are never followed: a link beside the backups is not a backup, and a link
inside one makes it not ours. Every directory is opened relative to its parent's descriptor
with ``O_NOFOLLOW``, so one swapped for a link meanwhile is not followed either. A backup
being restored holds a shared lock on it and is kept; the new backup is never a candidate.
The manifest is removed last, so a removal cut short (a crash, a file it may not delete) is
still a backup the next run finishes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Final

import asyncpg

from telephony.backup.errors import BackupError
from telephony.backup.model import AREAS, DUMP_NAME, MANIFEST_NAME, Manifest, expired, human_size
from telephony.backup.service import try_lock
from telephony.backup.store import recorded_backups, site_identity
from telephony.core.text import os_reason
from telephony.db.connection import DatabaseUnavailable, connect_owner
from telephony.settings import Settings

log = logging.getLogger("telephony.backup")

# A writer locks its hidden directory right after making it; one younger than this may be
# in that instant, and is left for the next run.
PARTIAL_GRACE_SECONDS: Final = 600.0
_PARTIAL = re.compile(r"\..+\.partial-\d+-[0-9a-f]{8}")
_OWN_NAMES: Final = frozenset((DUMP_NAME, MANIFEST_NAME, *AREAS))
_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# A manifest is a few hundred bytes a file; a "manifest" past this is not one of ours.
_MANIFEST_LIMIT: Final = 256 * 1024 * 1024
_NAMED: Final = 10  # names in one log line, the rest counted


class _Kept(Exception):
    """An expired backup (or a half-written one) that stays, and why (for the log line)."""


@dataclass(frozen=True)
class PruneReport:
    """What pruning did in ``directory``."""

    directory: Path
    keep_days: int
    removed: tuple[str, ...]  # whole backups, by name
    partials: tuple[str, ...]  # half-written ones
    freed: int  # bytes
    kept: tuple[str, ...]  # "name: why", expired ones left alone (not ours whole, in use)
    failed: tuple[str, ...]  # "name: why", expired ones that could not be removed

    def log_line(self) -> str:
        """The one line the log gets, in English like the rest of the log."""
        if self.keep_days == 0:
            return f"backups in {self.directory}: none removed (backup_keep_days = 0)"
        line = (f"backups in {self.directory} older than {self.keep_days} days: "
                f"{len(self.removed)} removed{_names(self.removed)}")
        if self.partials:
            line += f", {len(self.partials)} half-written removed{_names(self.partials)}"
        line += f", {human_size(self.freed)} freed"
        if self.kept:
            line += f"; {len(self.kept)} kept{_names(self.kept)}"
        if self.failed:
            line += f"; {len(self.failed)} could not be removed{_names(self.failed)}"
        return line

    def summary(self) -> str | None:
        """What the command prints (Bahasa Indonesia); None when nothing was removed or kept."""
        if not (self.removed or self.partials or self.kept or self.failed):
            return None
        parts = []
        if self.removed or self.partials:
            parts.append(f"{len(self.removed)} cadangan lebih dari {self.keep_days} hari"
                         + (f" dan {len(self.partials)} cadangan setengah jadi" if self.partials
                            else "")
                         + f" dihapus dari {self.directory} ({human_size(self.freed)})")
        for names, what in ((self.kept, "dibiarkan"), (self.failed, "gagal dihapus")):
            if names:
                parts.append(f"{len(names)} {what}: {'; '.join(names[:3])}"
                             + (" ..." if len(names) > 3 else ""))
        return "; ".join(parts) + "."


def _names(names: tuple[str, ...]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:_NAMED])
    more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
    return f" ({shown}{more})"


async def prune_backups(settings: Settings, written: Path) -> PruneReport:
    """Prune the directory holding the backup just ``written``; one log line says what went.
    Never raises for what it finds: what it leaves or cannot remove is in the report."""
    written = await asyncio.to_thread(written.absolute)
    unrecorded = None
    recorded: frozenset[tuple[str, datetime]] = frozenset()
    site = None
    if settings.backup_keep_days > 0:
        try:
            connection = await connect_owner(settings)
            try:
                recorded = await recorded_backups(connection, str(written.parent))
                site = await site_identity(connection)
            finally:
                await connection.close()
        except (DatabaseUnavailable, asyncpg.PostgresError, OSError) as exc:
            # Gone since the backup was noted a moment ago: no backup is known to be ours,
            # none is removed this time.
            unrecorded = "basis data: " + " ".join(str(exc).split())
    report = await asyncio.to_thread(
        prune, written.parent, keep_days=settings.backup_keep_days, now=datetime.now(UTC),
        written=written.name, recorded=recorded, site=site)
    if unrecorded is not None:
        report = dataclasses.replace(report, failed=(*report.failed, unrecorded))
    # A warning when one could not be removed (the backup disk then fills); one an engineer
    # put a note in is kept on purpose.
    log.log(logging.WARNING if report.failed else logging.INFO, "%s", report.log_line())
    return report


def prune(directory: Path, *, keep_days: int, now: datetime, written: str,
          recorded: frozenset[tuple[str, datetime]], site: str | None = None) -> PruneReport:
    """Remove from ``directory`` our backups (``recorded``: by name and manifest time, as this
    site noted writing them; or written by the database ``site`` at their path, as their
    manifest says) older than ``keep_days`` at ``now``, and the half-written backups no one
    is writing; never the one named ``written``."""
    removed: list[str] = []
    partials: list[str] = []
    kept: list[str] = []
    failed: list[str] = []
    freed = 0
    if keep_days == 0:
        return PruneReport(directory, keep_days, (), (), 0, (), ())
    try:
        parent = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return PruneReport(directory, keep_days, (), (), 0, (),
                           (f"{directory}: {os_reason(exc)}",))
    try:
        with os.scandir(parent) as entries:
            names = sorted(entry.name for entry in entries
                           if entry.name != written and entry.is_dir(follow_symlinks=False))
        for name in names:
            partial = _PARTIAL.fullmatch(name) is not None
            try:
                size = (_remove_partial(parent, name, now=time.time()) if partial
                        else _remove_backup(parent, name, now=now, keep_days=keep_days,
                                            recorded=recorded, site=site,
                                            path=str(directory / name)))
            except _Kept as exc:
                kept.append(f"{name}: {exc}")
                continue
            except OSError as exc:
                failed.append(f"{name}: {os_reason(exc)}")
                continue
            if size is not None:
                (partials if partial else removed).append(name)
                freed += size
    except OSError as exc:  # the directory itself unreadable meanwhile
        failed.append(f"{directory}: {os_reason(exc)}")
    finally:
        os.close(parent)
    return PruneReport(directory, keep_days, tuple(removed), tuple(partials), freed,
                       tuple(kept), tuple(failed))


def _ours(manifest: Manifest, name: str, path: str, *,
          recorded: frozenset[tuple[str, datetime]], site: str | None) -> bool:
    """Whether the backup ``name`` (at ``path``) with ``manifest`` is this site's own: noted in
    its audit log, or written by its database at that very path."""
    if (name, manifest.created_at) in recorded:
        return True
    return site is not None and manifest.site == site and manifest.written_to == path


def _remove_backup(parent: int, name: str, *, now: datetime, keep_days: int,
                   recorded: frozenset[tuple[str, datetime]], site: str | None,
                   path: str) -> int | None:
    """Remove the backup ``name`` (at ``path``) if it is ours and expired: the bytes freed,
    or None when it is left alone (not ours, or young enough). Raises :class:`_Kept`."""
    fd = os.open(name, _DIRECTORY, dir_fd=parent)
    try:
        manifest = _manifest(fd)
        if manifest is None or not _ours(manifest, name, path, recorded=recorded, site=site) \
                or not expired(manifest.created_at, now=now, keep_days=keep_days):
            return None
        if not try_lock(fd):
            raise _Kept("sedang dipakai (dipulihkan)")
        files, directories = _inventory(fd)
        listed = {entry.path for entry in manifest.every_file} | {MANIFEST_NAME}
        parents = {str(p) for path in listed for p in PurePosixPath(path).parents} - {"."}
        foreign = sorted(set(files) - listed) + sorted(directories - parents)
        if foreign:
            raise _Kept(f"berisi berkas yang bukan bagian cadangan ({foreign[0]})")
        _empty(fd, last=MANIFEST_NAME)
        os.unlink(MANIFEST_NAME, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
    return sum(files.values())


def _remove_partial(parent: int, name: str, *, now: float) -> int | None:
    """Remove the half-written backup ``name`` if a crash left it: the bytes freed, or None
    when it is left alone (being written, or too young to tell). Raises :class:`_Kept`."""
    fd = os.open(name, _DIRECTORY, dir_fd=parent)
    try:
        if now - os.fstat(fd).st_mtime < PARTIAL_GRACE_SECONDS or not try_lock(fd):
            return None
        files, directories = _inventory(fd)
        tops = {PurePosixPath(path).parts[0] for path in (*files, *directories)}
        if not tops <= _OWN_NAMES:
            raise _Kept(f"berisi berkas yang bukan bagian cadangan "
                        f"({sorted(tops - _OWN_NAMES)[0]})")
        _empty(fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
    return sum(files.values())


def _manifest(fd: int) -> Manifest | None:
    """The manifest of the directory open as ``fd``; None when there is none we read (not a
    backup of ours: it is left alone)."""
    try:
        # Not blocking: a FIFO by that name would hold the nightly backup for ever.
        handle = os.open(MANIFEST_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                         dir_fd=fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            return None
        with os.fdopen(handle, "rb") as reader:
            text = reader.read(_MANIFEST_LIMIT + 1)
        if len(text) > _MANIFEST_LIMIT:
            return None
        return Manifest.from_json(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, BackupError):
        return None


def _inventory(fd: int) -> tuple[dict[str, int], set[str]]:
    """Every regular file (relative path: size) and directory under the directory open as
    ``fd``. Raises :class:`_Kept` at anything else (a symbolic link, a socket): not ours."""
    files: dict[str, int] = {}
    directories: set[str] = set()

    def walk(at: int, prefix: str) -> None:
        with os.scandir(at) as entries:
            for entry in entries:
                path = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    directories.add(path)
                    sub = os.open(entry.name, _DIRECTORY, dir_fd=at)
                    try:
                        walk(sub, path + "/")
                    finally:
                        os.close(sub)
                elif entry.is_file(follow_symlinks=False):
                    files[path] = entry.stat(follow_symlinks=False).st_size
                else:
                    raise _Kept(f"berisi tautan atau berkas khusus ({path})")

    walk(fd, "")
    return files, directories


def _empty(fd: int, *, last: str | None = None) -> None:
    """Remove everything in the directory open as ``fd`` but the entry ``last``. Nothing is
    followed: a link (only one swapped in since the inventory) is unlinked itself, and a
    directory is opened with O_NOFOLLOW."""
    with os.scandir(fd) as entries:
        found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_directory in found:
        if name == last:
            continue
        if is_directory:
            sub = os.open(name, _DIRECTORY, dir_fd=fd)
            try:
                _empty(sub)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
