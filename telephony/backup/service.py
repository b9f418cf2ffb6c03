"""Writing a backup of a site and restoring one, with PostgreSQL's own tools.

``back_up``: ``pg_dump --format=custom`` of the database, then a copy of every file area
(recordings, quarantine, attachments, the published IVR files, recorded prompts), each file
hashed as it is copied, then the manifest. It is all written into a hidden sibling directory
and renamed into place at the end, so a backup that exists is whole; a crash leaves only a
``.NAME.partial-*`` directory that no restore accepts (it has no manifest until the end, and
its name is not the one asked for), and that the next backup's pruning removes (the writer
holds a lock on it until the rename; telephony/backup/pruning.py).

The dump comes first and the files after: the worker stores a recording's file before it
marks the recording done, so every file the dump points to was on disk before the copy
began. The one exception is a file removed in between (retention's run beside a nightly
backup): it is left out, logged, and the restored site's row of it finds no file, as the old
site's would have a moment later.

``restore``: reads the manifest and verifies every file's size and SHA-256 before anything
changes; refuses a database a line is still connected to (even with ``force``), a backup of
a newer schema, a database that already holds records (calls, incidents, recordings,
accounts, audit) and files that would be overwritten with other
content, unless ``force``. The database is then replaced in one transaction (``pg_restore``
to SQL, relayed into ``psql --single-transaction`` after dropping the ``public`` schema, whose
input ends, and so commits, only if pg_restore succeeded), so a restore that fails leaves the
database as it was. Files are copied back through a temporary
name and each is verified again after the rename. Last, migrations bring an older backup's
schema up to this software's, and the line's role is granted again.

Both run as the schema's owner (telephony/db/roles.py): the dump must read every table, and
the restored tables must belong to the owner, never to the line's role. Grants are not in the
dump (``--no-acl``): the owner gives the line's role what this software's roles.py says, and
the line's next start gives Asterisk's role its views again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from telephony.backup.errors import BackupError
from telephony.backup.model import (
    DUMP_NAME,
    MANIFEST_NAME,
    RECORD_TABLES,
    FileEntry,
    Manifest,
    check_schema_level,
    human_size,
)
from telephony.backup.store import OBJECT_TYPE as BACKUP_OBJECT
from telephony.backup.store import record_backup, site_identity
from telephony.core.storage import StoredFileError, fsync_dir, stored_file
from telephony.core.text import os_reason
from telephony.db.connection import (
    DatabaseUnavailable,
    connect_owner,
    libpq_connect_timeout,
    line_role,
    resolve_owner_dsn,
)
from telephony.db.embedded import EmbeddedDatabaseError, find_postgres_bindir
from telephony.db.migrate import MigrationError, bundled_migrations
from telephony.db.roles import prepare_schema
from telephony.settings import Settings

log = logging.getLogger("telephony.backup")

_CHUNK = 1024 * 1024
# A running line holds locks on the tables; the restore waits this long, then gives up with
# nothing changed instead of queueing behind it forever.
_LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class SiteAreas:
    """Where each area of a backup lives on this site."""

    directories: Mapping[str, Path]

    @classmethod
    def from_settings(cls, settings: Settings) -> SiteAreas:
        """The site's directories, by area name (see :mod:`telephony.backup.model`)."""
        return cls({
            "recordings": settings.recordings_dir,
            "recordings-quarantine": settings.recordings_quarantine_dir,
            "attachments": settings.attachments_dir,
            "ivr": settings.state_dir / "ivr",
            "prompts-recorded": settings.prompt_overrides_dir,
        })

    def destination(self, entry: FileEntry) -> Path:
        """Where ``entry`` goes back to on this site."""
        return self.directories[entry.area] / entry.within_area


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did."""

    manifest: Manifest
    files: int
    migrations_applied: int


# ------------------------------------------------------------------ PostgreSQL's tools


def postgres_tool(name: str) -> str:
    """The client program ``name`` (pg_dump, pg_restore, psql): the embedded cluster's own
    binaries when the server is installed (they match it), else the one on the PATH (a site
    with only the client package)."""
    try:
        candidate = find_postgres_bindir() / name
        if candidate.exists():
            return str(candidate)
    except (EmbeddedDatabaseError, OSError, subprocess.CalledProcessError):
        pass
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"Program PostgreSQL '{name}' tidak ditemukan; pasang paket "
                          "postgresql-client.")
    return found


def connection_target(dsn: str | None, *, connect_timeout: int
                      ) -> tuple[list[str], dict[str, str]]:
    """The ``--dbname`` argument and environment for a libpq tool. The password moves from
    the URI into ``PGPASSWORD``, so it never shows in the process list; with no DSN libpq's
    own ``PG*`` variables decide. ``connect_timeout`` (seconds, each host's attempt) goes in
    ``PGCONNECT_TIMEOUT`` unless the environment sets it (a DSN's own ``connect_timeout``
    overrides both, as libpq has it): a cluster's backup whose first node's machine is off
    used to wait about two minutes in pg_dump (a restore as long in psql) before libpq tried
    the next node."""
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", str(connect_timeout))
    if dsn is None:
        return [], env
    parts = urlsplit(dsn)
    if parts.password is None:
        return [f"--dbname={dsn}"], env
    env["PGPASSWORD"] = unquote(parts.password)
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    return [f"--dbname={urlunsplit(parts._replace(netloc=netloc))}"], env


_ERROR_LINE = re.compile(r"\b(error|ERROR|FATAL|PANIC):")
_DETAIL_LINE = re.compile(r"\b(detail|DETAIL|HINT):")


def tool_reason(stderr: str) -> str:
    """Why a PostgreSQL tool failed, in one line: its first error and the detail lines right
    after it. Its last line alone was often only the detail ("Query was: LOCK TABLE ...")
    and never said the error (permission denied for that table, a server newer than the
    client)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "tanpa pesan"
    first = next((i for i, line in enumerate(lines) if _ERROR_LINE.search(line)), None)
    if first is None:
        return lines[-1]
    details = []
    for line in lines[first + 1:]:
        if not _DETAIL_LINE.search(line):
            break
        details.append(line)
    return lines[first] + (f" ({'; '.join(details)})" if details else "")


async def _run_tool(argv: list[str], env: Mapping[str, str], what: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise BackupError(f"{what} gagal ({process.returncode}): "
                          f"{tool_reason(stderr.decode(errors='replace'))}")
    return stdout.decode(errors="replace")


async def schema_level(connection: asyncpg.Connection) -> int:
    """The highest migration applied, 0 for a database never migrated."""
    if await connection.fetchval("SELECT to_regclass('public.schema_migrations')") is None:
        return 0
    level = await connection.fetchval("SELECT max(version) FROM schema_migrations")
    return int(level or 0)


async def tables_with_records(connection: asyncpg.Connection) -> list[str]:
    """The record tables (calls, incidents ...) that hold at least one row."""
    found = []
    for table in RECORD_TABLES:
        if await connection.fetchval("SELECT to_regclass($1)", f"public.{table}") is None:
            continue
        # A backup's own audit entry is not a record: a new site backed up by its nightly job
        # before the old site's backup is restored into it still takes that backup unforced.
        where = f" WHERE object_type <> '{BACKUP_OBJECT}'" if table == "audit_log" else ""
        # The name is one of RECORD_TABLES, never input.
        query = f"SELECT EXISTS (SELECT 1 FROM public.{table}{where})"  # noqa: S608
        if await connection.fetchval(query):
            found.append(table)
    return found


async def line_sessions(connection: asyncpg.Connection, role: str) -> list[str]:
    """Who else is connected to this database as the line's ``role``: a running line (or a
    cluster node's), by application name and address. Visible to every role in
    ``pg_stat_activity``."""
    rows = await connection.fetch(
        "SELECT coalesce(nullif(application_name, ''), 'siaga112') AS name,"
        " coalesce(host(client_addr), 'lokal') AS address, count(*) AS sessions"
        " FROM pg_stat_activity"
        " WHERE datname = current_database() AND usename = $1 AND pid <> pg_backend_pid()"
        " GROUP BY 1, 2 ORDER BY 1, 2", role)
    return [f"{row['name']} dari {row['address']} ({row['sessions']} sesi)" for row in rows]


# ------------------------------------------------------------------ files


def copy_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to ``target`` (created, fsync'd); the SHA-256 and size of the bytes
    written, so the manifest describes the copy even if the source changed meanwhile."""
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, target.open("xb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of ``path``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def area_files(root: Path) -> Iterator[Path]:
    """The regular files under ``root`` worth keeping, sorted. Hidden names are skipped:
    they are files being written (the worker's ``.<call>.<token>.tmp``, an admin's
    ``.menu.json.tmp``), whole only once renamed. Symbolic links are not followed."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def _mismatch(entry: FileEntry, path: Path) -> str | None:
    """Why ``path`` is not ``entry``'s file, or None when it is."""
    if path.is_symlink() or not path.is_file():
        return f"{entry.path}: tidak ada"
    try:
        digest, size = file_digest(path)
    except OSError as exc:  # a backup disk failing (EIO), a copy only root may read
        return f"{entry.path}: tidak dapat dibaca ({os_reason(exc)})"
    if size != entry.size:
        return f"{entry.path}: ukuran {size}, manifes {entry.size}"
    if digest != entry.sha256:
        return f"{entry.path}: SHA-256 tidak cocok"
    return None


def _in_backup(source: Path, entry: FileEntry) -> Path | None:
    """``entry``'s file in the backup at ``source`` with every link followed; ``None`` when it
    is missing or a link (a directory's too: ``recordings`` -> ``/``) leads out of the backup.
    Otherwise a hostile backup whose manifest lists the right checksums would have a restore
    copy any file the restoring user can read into the site."""
    try:
        return stored_file(source, entry.path)
    except StoredFileError:
        return None


def verify(source: Path, manifest: Manifest) -> list[str]:
    """Every problem with the backup's files against its manifest (empty: all verified)."""
    problems = []
    for entry in manifest.every_file:
        path = _in_backup(source, entry)
        problem = (f"{entry.path}: tidak ada di dalam cadangan" if path is None
                   else _mismatch(entry, path))
        if problem is not None:
            problems.append(problem)
    return problems


def _refuse_unverified(problems: list[str], what: str) -> None:
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (dan {len(problems) - 5} lagi)" if len(problems) > 5 else ""
        raise BackupError(f"{what}: {len(problems)} berkas tidak cocok dengan manifes: "
                          f"{shown}{more}")


# ------------------------------------------------------------------ backup


def _software_version() -> str:
    try:
        return metadata.version("siaga112")
    except metadata.PackageNotFoundError:
        return "unknown"


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BackupError(f"{target} sudah ada dan bukan direktori kosong.")
    if target.is_dir() and any(target.iterdir()):
        raise BackupError(f"{target} sudah berisi; cadangan ditulis ke direktori baru "
                          "atau kosong.")


def _refuse_inside_areas(areas: SiteAreas, target: Path) -> None:
    """A backup written into an area it copies (the recordings volume, the biggest disk of a
    site) is copied again by the next backup, which is copied by the one after: each night's
    holds every earlier one, until the disk is full."""
    where = target.resolve()
    for area, root in areas.directories.items():
        if where.is_relative_to(root.resolve()):
            raise BackupError(f"{target} ada di dalam area cadangan {area} ({root}): cadangan "
                              "berikutnya akan ikut menyalinnya. Tulis cadangan di luar "
                              "direktori itu, sebaiknya di disk lain.")


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take the advisory lock of the directory open as ``fd`` unless another holds it (until
    ``fd`` is closed). A backup being written holds its hidden directory's, a restore its
    source's (shared), so the pruning of old backups beside a new one removes neither
    (telephony/backup/pruning.py); a container on the same host sees the same lock."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        # A file system that keeps no locks (an NFS mount without its lock daemon: ENOLCK):
        # backups and restores go on as they did before there were any, rather than fail.
        log.debug("no lock on a backup directory: %s", exc)
    return True


def _open_partial(target: Path) -> tuple[Path, int]:
    """A hidden sibling of ``target`` to write the backup into (same file system, so the
    final rename is one step), and a descriptor holding its lock while it is written."""
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    partial.mkdir(mode=0o700)
    writing = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    # Pruning leaves a partial directory younger than its grace alone, so nobody holds this
    # one yet.
    try_lock(writing)
    return partial, writing


def _seal(partial: Path, target: Path) -> None:
    """Make the finished backup appear under its name, durably."""
    for directory in sorted({p.parent for p in partial.rglob("*")} | {partial}, reverse=True):
        fsync_dir(directory)
    _check_target(target)  # nothing appeared there meanwhile
    # rename(2) replaces an empty directory in one step.
    partial.rename(target)
    fsync_dir(target.parent)


async def back_up(settings: Settings, target: Path) -> Manifest:
    """Write a whole backup of the site to ``target`` (new or empty), atomically."""
    target = await asyncio.to_thread(target.absolute)
    await asyncio.to_thread(_refuse_inside_areas, SiteAreas.from_settings(settings), target)
    try:
        partial, writing = await asyncio.to_thread(_open_partial, target)
        try:
            manifest = await _write_backup(settings, partial, target)
            await asyncio.to_thread(_seal, partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        finally:
            os.close(writing)
    except DatabaseUnavailable:
        raise  # an OSError too (ConnectionError), but nothing wrong with where it is written
    except OSError as exc:
        # A parent that is a file or not writable, a full disk: the IT staff's to fix, said
        # in one line rather than a traceback (nothing half-written is left).
        raise BackupError(f"Cadangan tidak dapat ditulis ke {target}: "
                          f"{os_reason(exc)}.") from exc
    await _note_backup(settings, target, manifest)
    log.info("backup written to %s: schema %d, %d files", target, manifest.schema_version,
             len(manifest.files))
    return manifest


async def _note_backup(settings: Settings, target: Path, manifest: Manifest) -> None:
    """The audit log's entry the line's backup-age metric reads (telephony/backup/store.py).
    A backup it could not note is whole, but the site's alert would say it is missing: the
    command fails, so a scheduled run is seen to fail too."""
    try:
        connection = await connect_owner(settings)
        try:
            await record_backup(connection, str(target), manifest)
        finally:
            await connection.close()
    except (DatabaseUnavailable, asyncpg.PostgresError, OSError) as exc:
        raise BackupError(f"Cadangan ditulis utuh ke {target}, tetapi tidak tercatat di basis "
                          f"data ({exc}); peringatan cadangan terlambat tetap akan berbunyi. "
                          "Ulangi pencadangan.") from exc


async def _write_backup(settings: Settings, into: Path, target: Path) -> Manifest:
    """The backup of ``target`` written into ``into`` (its hidden sibling)."""
    connection = await connect_owner(settings)
    try:
        level = await schema_level(connection)
        site = await site_identity(connection)
    finally:
        await connection.close()
    if level == 0:
        raise BackupError("Basis data belum dimigrasi; tidak ada yang dicadangkan.")
    created_at = datetime.now(UTC)
    pg_dump = postgres_tool("pg_dump")
    version = (await _run_tool([pg_dump, "--version"], os.environ, "pg_dump --version")).strip()
    target_args, env = connection_target(resolve_owner_dsn(settings),
                                         connect_timeout=libpq_connect_timeout(settings))
    dump = into / DUMP_NAME
    await asyncio.to_thread(_check_room, settings, into)
    await _run_tool([pg_dump, "--format=custom", f"--file={dump}", *target_args], env,
                    "pg_dump")
    await asyncio.to_thread(_check_room, settings, into)  # the dump took its share meanwhile
    digest, size = await asyncio.to_thread(file_digest, dump)
    database = FileEntry(DUMP_NAME, digest, size)
    files = await asyncio.to_thread(_copy_areas, SiteAreas.from_settings(settings), into)
    manifest = Manifest(created_at, level, database, tuple(files), _software_version(), version,
                        site, str(target))
    await asyncio.to_thread(_write_manifest, into, manifest)
    return manifest


# The disk alert's threshold (docker/prometheus/alerts.yml, Siaga112DiskNearlyFull): what a backup
# leaves free on a file system the line itself writes to.
LINE_DISK_RESERVE = 0.10


def _line_devices(settings: Settings) -> set[int]:
    """The file systems the line writes calls to: state (the spool, recordings, the embedded
    database), and the spool's fallback."""
    devices = set()
    for directory in (settings.state_dir, settings.spool_dir, settings.spool_fallback_dir,
                      settings.recordings_dir, settings.embedded_pg_dir):
        if directory is None:
            continue
        try:
            devices.add(directory.stat().st_dev)
        except OSError:
            continue  # not made yet (no fallback, an external database): nothing written there
    return devices


def _area_bytes(areas: SiteAreas) -> int:
    total = 0
    for root in areas.directories.values():
        for path in area_files(root):
            with contextlib.suppress(FileNotFoundError):  # retention's removal meanwhile
                total += path.stat().st_size
    return total


def _check_room(settings: Settings, into: Path) -> None:
    """Refuse, before writing it, a backup its file system has no room for, and one that would
    leave a disk the line records calls on under the disk alert's threshold.

    A nightly backup into a directory on the line's own disk (``/var/lib/siaga112/backups``)
    used to fill it for the hours of its copy: PostgreSQL's writes failed, calls went to the
    spool and then to memory, recordings waited, until the backup failed at the end and freed
    the space again. Measured here: the files still to copy against the free space now."""
    needed = _area_bytes(SiteAreas.from_settings(settings))
    usage = shutil.disk_usage(into)
    shared = into.stat().st_dev in _line_devices(settings)
    reserve = int(usage.total * LINE_DISK_RESERVE) if shared else 0
    if needed > usage.free:
        raise BackupError(f"Cadangan tidak ditulis: ruang disk di {into.parent} tidak cukup: "
                          f"perlu {human_size(needed)}, tersedia {human_size(usage.free)}.")
    if needed + reserve > usage.free:
        raise BackupError(
            f"Cadangan tidak ditulis: disk {into.parent} juga dipakai saluran untuk merekam "
            f"panggilan dan harus tetap menyisakan {human_size(reserve)} "
            f"({LINE_DISK_RESERVE:.0%}); berkas perlu {human_size(needed)}, tersedia "
            f"{human_size(usage.free)}. Tulis cadangan di disk lain.")


def _write_manifest(into: Path, manifest: Manifest) -> None:
    with (into / MANIFEST_NAME).open("x", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())


def _copy_areas(areas: SiteAreas, into: Path) -> list[FileEntry]:
    files = []
    for area, root in areas.directories.items():
        for source in area_files(root):
            relative = source.relative_to(root)
            copy = into / area / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                digest, size = copy_hashed(source, copy)
            except FileNotFoundError as exc:
                if exc.filename != str(source):
                    raise
                # Removed since it was listed: retention's run, or an engineer moving a
                # quarantined file away, beside a nightly backup of a line that runs. No
                # longer part of the site; the whole backup used to fail for it.
                log.info("%s was removed while the backup was written; left out", source)
                continue
            except OSError as exc:
                if exc.filename != str(source):
                    raise  # the backup's side: its disk full, its directory not writable
                # A site file the backup cannot read (Asterisk's 0600 recording moved to the
                # quarantine, run as another user): named, where the message said the backup
                # could not be written to its own directory.
                raise BackupError(f"Berkas situs {source} tidak dapat dibaca: "
                                  f"{os_reason(exc)}; tidak ada cadangan yang ditulis.") from exc
            files.append(FileEntry((Path(area) / relative).as_posix(), digest, size))
    return files


# ------------------------------------------------------------------ restore


def read_manifest(source: Path) -> Manifest:
    """The backup's manifest; :class:`BackupError` if there is none or it is malformed."""
    path = source / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(f"{source} bukan cadangan yang utuh: tidak ada {MANIFEST_NAME}.") \
            from None
    except OSError as exc:
        raise BackupError(f"Manifes {path} tidak dapat dibaca: {os_reason(exc)}.") from exc
    except UnicodeDecodeError as exc:
        raise BackupError(f"Manifes {path} bukan teks UTF-8.") from exc
    return Manifest.from_json(text)


def _conflicting_files(areas: SiteAreas, manifest: Manifest) -> list[str]:
    """Site files the restore would overwrite with other content."""
    conflicts = []
    for entry in manifest.files:
        destination = areas.destination(entry)
        exists = destination.exists() or destination.is_symlink()
        if exists and _mismatch(entry, destination) is not None:
            conflicts.append(str(destination))
    return conflicts


def _nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its ancestors that exists (a fresh site has no areas yet)."""
    while not (path.exists() or path.is_symlink()) and path.parent != path:
        path = path.parent
    return path


def _unwritable(areas: SiteAreas, manifest: Manifest) -> list[str]:
    """Why the site cannot take the backup's files, found before anything changes: a place
    where a directory must go that is something else, or a file system without room for
    what is copied onto it. Otherwise the database was replaced first and the restore died
    among the files (a fresh machine's smaller recordings disk), with a traceback."""
    problems: list[str] = []
    needed: dict[int, int] = {}  # bytes by file system (st_dev)
    beside: dict[int, int] = {}
    room: dict[int, tuple[Path, int]] = {}
    for entry in manifest.files:
        destination = areas.destination(entry)
        if destination.is_dir():
            problems.append(f"{destination} adalah direktori")
            continue
        existing = _nearest_existing(destination.parent)
        if not existing.is_dir():
            problems.append(f"{existing} bukan direktori")
            continue
        device = existing.stat().st_dev
        # What the file system holds more at the end, and at the worst moment: a file that
        # replaces one there is copied beside it first (the largest such copy). A restore
        # over the same recordings (--force after a database failure) needs little room.
        old = destination.stat().st_size if destination.is_file() else None
        grows = entry.size if old is None else max(0, entry.size - old)
        needed[device] = needed.get(device, 0) + grows
        if old is not None:
            beside[device] = max(beside.get(device, 0), entry.size)
        if device not in room:
            room[device] = (existing, shutil.disk_usage(existing).free)
    for device, where_free in room.items():
        where, free = where_free
        size = needed.get(device, 0) + beside.get(device, 0)
        if size > free:
            problems.append(f"ruang disk di {where} tidak cukup: perlu {human_size(size)}, "
                            f"tersedia {human_size(free)}")
    return problems


async def restore(settings: Settings, source: Path, *, force: bool = False) -> RestoreReport:
    """Restore the backup in ``source`` into the site ``settings`` describe."""
    source = await asyncio.to_thread(source.absolute)
    manifest = await asyncio.to_thread(read_manifest, source)
    try:
        reading = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise BackupError(f"Cadangan {source} tidak dapat dibuka: {os_reason(exc)}.") from exc
    try:
        # Held to the end: a nightly backup's pruning keeps a backup being restored, however
        # old (a restore of last month's, the files half copied back, found it deleted).
        if not try_lock(reading, shared=True):
            raise BackupError(f"Cadangan {source} sedang dihapus oleh pencadangan lain "
                              "(lebih tua dari batas simpannya); tidak ada yang diubah.")
        return await _restore_locked(settings, source, manifest, force=force)
    finally:
        os.close(reading)


async def _restore_locked(settings: Settings, source: Path, manifest: Manifest, *,
                          force: bool) -> RestoreReport:
    _refuse_unverified(await asyncio.to_thread(verify, source, manifest),
                       "Cadangan ditolak, tidak ada yang diubah")
    check_schema_level(manifest.schema_version, bundled_migrations()[-1].version)
    areas = SiteAreas.from_settings(settings)
    connection = await connect_owner(settings)
    try:
        holding = await tables_with_records(connection)
        role = line_role(settings)
        # The line connects as the owner itself when there is no separate owner.
        running = await line_sessions(connection, role.name if role is not None
                                      else str(await connection.fetchval("SELECT current_user")))
    finally:
        await connection.close()
    if running:
        # A line still connected keeps recording calls into the database being replaced:
        # what it writes before the swap is dropped with the old schema, and what it holds in
        # memory (the wallboard, open calls) no longer matches. --force does not override this.
        raise BackupError(
            "Layanan siaga112 masih tersambung ke basis data tujuan "
            f"({'; '.join(running)}); tidak ada yang diubah. Hentikan layanan (serve) di "
            "setiap node dulu, lalu ulangi pemulihan.")
    if holding and not force:
        raise BackupError(
            f"Basis data tujuan sudah berisi data ({', '.join(holding)}); tidak ada yang "
            "diubah. Pakai --force untuk menggantinya seluruhnya dengan cadangan.")
    conflicts = await asyncio.to_thread(_conflicting_files, areas, manifest)
    if conflicts and not force:
        raise BackupError(
            f"{len(conflicts)} berkas di situs ini akan tertimpa dengan isi lain (misalnya "
            f"{conflicts[0]}); tidak ada yang diubah. Pakai --force untuk menimpanya.")
    try:
        unwritable = await asyncio.to_thread(_unwritable, areas, manifest)
    except OSError as exc:
        unwritable = [f"{exc.filename or 'situs'}: {os_reason(exc)}"]
    if unwritable:
        raise BackupError(f"Berkas cadangan tidak dapat ditulis ke situs ini "
                          f"({'; '.join(unwritable[:3])}); tidak ada yang diubah.")
    await _restore_database(settings, source / DUMP_NAME)
    # The files come back whatever happens next to the database, and the database is migrated
    # and granted whatever happened to the files: either failing, the other half is done and
    # the message says how to finish (a migration that cannot apply is fixed in the database
    # and 'migrate' run again: a second restore would bring back what stopped it).
    try:
        await asyncio.to_thread(_restore_files, areas, source, manifest)
        files_failure = None
    except OSError as exc:
        where = f" ke {exc.filename}" if exc.filename else ""
        files_failure = (f"berkas cadangan tidak dapat ditulis{where}: {os_reason(exc)}. "
                         "Perbaiki, lalu ulangi pemulihan dengan --force.")
    except BackupError as exc:  # a file that read back other than it was written
        files_failure = f"{exc.message}. Ulangi pemulihan dengan --force."
    connection = await connect_owner(settings)
    try:
        applied = await prepare_schema(connection, line_role(settings))
    except MigrationError as exc:
        raise BackupError(
            f"Basis data (skema versi {manifest.schema_version}) "
            + ("dipulihkan, tetapi " + files_failure if files_failure else
               f"dan {len(manifest.files)} berkas dipulihkan")
            + f"; migrasinya belum selesai: {exc}") from exc
    finally:
        await connection.close()
    if files_failure is not None:
        raise BackupError(f"Basis data sudah dipulihkan, tetapi {files_failure}")
    log.info("backup %s restored: schema %d (+%d migrations), %d files", source,
             manifest.schema_version, applied, len(manifest.files))
    return RestoreReport(manifest, len(manifest.files), applied)


async def _restore_database(settings: Settings, dump: Path) -> None:
    pg_restore = postgres_tool("pg_restore")
    psql = postgres_tool("psql")
    target_args, env = connection_target(resolve_owner_dsn(settings),
                                         connect_timeout=libpq_connect_timeout(settings))
    # Owners and grants are the old site's; here the owner owns what it restores, and the
    # line's role is granted afresh after it (restore).
    to_sql = [pg_restore, "--no-owner", "--no-acl", "--file=-", str(dump)]
    apply_sql = [
        psql, "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1",
        f"--command=SET lock_timeout = '{_LOCK_TIMEOUT}'",
        "--command=DROP SCHEMA IF EXISTS public CASCADE",
        "--command=CREATE SCHEMA public",
        "--file=-", *target_args,
    ]

    produced, applied, reason = await asyncio.to_thread(_pipe, to_sql, apply_sql, env)
    if produced != 0 or applied != 0:
        last = tool_reason(reason)
        raise BackupError(f"Pemulihan basis data gagal, basis data tidak berubah: {last}")


def _pipe(to_sql: list[str], apply_sql: list[str], env: Mapping[str, str]
          ) -> tuple[int, int, str]:
    """Run ``to_sql``'s output into ``apply_sql``; both exit codes and the reason of the
    first that failed.

    The SQL is relayed here rather than through a pipe between the two: psql commits its
    single transaction when its input ends, and a pg_restore that fails (a dump of a newer
    pg_dump, a dump cut short) ends that input like one that succeeded, so psql would commit
    the DROP SCHEMA and whatever SQL came before the failure. psql's input is closed only
    once pg_restore has exited 0; otherwise psql is killed with its input still open, and
    the server rolls the transaction back."""
    with (tempfile.TemporaryFile() as producer_err, tempfile.TemporaryFile() as consumer_err,
          subprocess.Popen(to_sql, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=producer_err, env=env) as producer,
          subprocess.Popen(apply_sql, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=consumer_err, env=env) as consumer):
        assert producer.stdout is not None and consumer.stdin is not None
        psql_stopped = False
        try:
            shutil.copyfileobj(producer.stdout, consumer.stdin, _CHUNK)
        except BrokenPipeError:
            psql_stopped = True  # at an error of its own: its exit code and words say which
        producer.stdout.close()  # pg_restore, if still writing, sees EPIPE and stops
        if producer.wait() == 0:
            with contextlib.suppress(BrokenPipeError):
                consumer.stdin.close()  # the end of the SQL: psql commits
        else:
            consumer.kill()
            with contextlib.suppress(BrokenPipeError):
                consumer.stdin.close()
        consumer.wait()
        # A failed pg_restore is the cause (psql was killed for it), unless psql stopped
        # first (pg_restore then failed only to write to it).
        stream = producer_err if producer.returncode and not psql_stopped else consumer_err
        stream.seek(0)
        reason = stream.read().decode(errors="replace").strip()
    return producer.returncode, consumer.returncode, reason


def _restore_files(areas: SiteAreas, source: Path, manifest: Manifest) -> None:
    problems = []
    for entry in manifest.files:
        origin = _in_backup(source, entry)  # verified, but read again: it may have changed
        if origin is None:
            problems.append(f"{entry.path}: tidak ada di dalam cadangan")
            continue
        destination = areas.destination(entry)
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.restore-{secrets.token_hex(4)}")
        try:
            copy_hashed(origin, temporary)
            temporary.replace(destination)
        finally:
            temporary.unlink(missing_ok=True)
        problem = _mismatch(entry, destination)  # read back from where it now lives
        if problem is not None:
            problems.append(problem)
    for directory in {areas.destination(entry).parent for entry in manifest.files}:
        fsync_dir(directory)
    _refuse_unverified(problems, "Berkas yang dipulihkan tidak cocok")
