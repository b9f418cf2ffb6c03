"""What a backup is, as data: its layout on disk and its manifest (pure, no I/O).

A backup is one directory::

    manifest.json        this module's Manifest: every other file with its SHA-256 and size
    database.dump        pg_dump's custom format of the whole database
    recordings/...       the stored recordings (Settings.recordings_dir), same relative paths
    recordings-quarantine/...   recordings the worker could not process (evidence, kept)
    attachments/...      incident attachments (Settings.attachments_dir)
    ivr/...              the menu and screening files an admin published (<state_dir>/ivr)
    prompts-recorded/... recorded prompts dropped in by hand (Settings.prompt_overrides_dir)

The manifest is read back from a directory anyone could have edited, so every path in it is
checked here before a restore touches the file system: relative, no ``..``, inside one of
the areas above.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from telephony.backup.errors import BackupError

FORMAT = "siaga112-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DUMP_NAME = "database.dump"
# The directories a backup carries, by the name they have inside it.
AREAS = ("recordings", "recordings-quarantine", "attachments", "ivr", "prompts-recorded")
# Tables whose rows are a site's records: a database holding any of them is not "empty" (a
# freshly migrated one already holds shifts, agencies and places seeded by the migrations).
RECORD_TABLES = ("calls", "incidents", "recordings", "accounts", "audit_log")

_SHA256 = re.compile(r"[0-9a-f]{64}")


def checked_path(text: object) -> PurePosixPath:
    """A manifest path, refused unless it is relative, plain and inside one area (or is the
    database dump). Raises :class:`BackupError`."""
    if not isinstance(text, str) or not text or "\\" in text or "\0" in text:
        raise BackupError(f"Jalur berkas tidak sah di manifes: {text!r}")
    path = PurePosixPath(text)
    parts = path.parts
    if path.is_absolute() or any(part in ("", ".", "..") for part in parts):
        raise BackupError(f"Jalur berkas tidak sah di manifes: {text!r}")
    if path.as_posix() != text:  # "a//b", "a/./b", a trailing slash
        raise BackupError(f"Jalur berkas tidak sah di manifes: {text!r}")
    if text == DUMP_NAME:
        return path
    if len(parts) < 2 or parts[0] not in AREAS:
        raise BackupError(f"Berkas di luar area cadangan di manifes: {text!r}")
    return path


@dataclass(frozen=True)
class FileEntry:
    """One file of the backup: its path inside the backup, SHA-256 (hex) and size in bytes."""

    path: str
    sha256: str
    size: int

    @property
    def area(self) -> str:
        """The area the file belongs to (``recordings`` ...); the dump's own name for it."""
        return PurePosixPath(self.path).parts[0]

    @property
    def within_area(self) -> PurePosixPath:
        """The path relative to its area's directory."""
        return PurePosixPath(*PurePosixPath(self.path).parts[1:])

    def to_json(self) -> dict[str, Any]:
        """As it is written in the manifest."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, raw: object) -> FileEntry:
        """One entry of a manifest; :class:`BackupError` if it is malformed."""
        if not isinstance(raw, dict):
            raise BackupError("Entri berkas di manifes bukan objek.")
        path = checked_path(raw.get("path"))
        digest = raw.get("sha256")
        size = raw.get("size")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise BackupError(f"SHA-256 tidak sah untuk {path} di manifes.")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BackupError(f"Ukuran tidak sah untuk {path} di manifes.")
        return cls(path.as_posix(), digest, size)


@dataclass(frozen=True)
class Manifest:
    """What a backup holds and where it came from."""

    created_at: datetime  # aware, UTC
    schema_version: int  # the highest migration applied to the dumped database
    database: FileEntry
    files: tuple[FileEntry, ...]
    software: str  # siaga112's version that wrote it
    pg_dump: str  # pg_dump's own version line
    # Whose backup it is, for pruning (telephony/backup/pruning.py): the database it was
    # dumped from (:func:`telephony.backup.store.site_identity`) and the directory it was
    # written as. Empty in a backup of an older version.
    site: str = ""
    written_to: str = ""

    @property
    def every_file(self) -> tuple[FileEntry, ...]:
        """The dump and every area file: what a restore verifies."""
        return (self.database, *self.files)

    def to_json(self) -> str:
        """The manifest file's text (stable order, one entry per line for a human diff)."""
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at.isoformat(),
            "schema_version": self.schema_version,
            "software": self.software,
            "pg_dump": self.pg_dump,
            "site": self.site,
            "written_to": self.written_to,
            "database": self.database.to_json(),
            "files": [entry.to_json() for entry in sorted(self.files, key=lambda e: e.path)],
        }
        return json.dumps(document, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse and check a manifest; :class:`BackupError` says what is wrong."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BackupError(f"Manifes bukan JSON yang sah: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BackupError("Manifes ini bukan manifes cadangan siaga112.")
        if document.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"Versi format cadangan {document.get('format_version')!r} tidak dikenal "
                f"(yang dikenal: {FORMAT_VERSION}).")
        try:
            created_at = datetime.fromisoformat(str(document.get("created_at")))
        except ValueError as exc:
            raise BackupError("Waktu pembuatan di manifes tidak sah.") from exc
        if created_at.tzinfo is None:
            raise BackupError("Waktu pembuatan di manifes tanpa zona waktu.")
        schema_version = document.get("schema_version")
        if not isinstance(schema_version, int) or isinstance(schema_version, bool):
            raise BackupError("Tingkat migrasi skema di manifes tidak sah.")
        database = FileEntry.from_json(document.get("database"))
        if database.path != DUMP_NAME:
            raise BackupError(f"Berkas basis data di manifes harus {DUMP_NAME}.")
        raw_files = document.get("files")
        if not isinstance(raw_files, list):
            raise BackupError("Daftar berkas di manifes tidak sah.")
        files = tuple(FileEntry.from_json(raw) for raw in raw_files)
        paths = [entry.path for entry in files]
        if DUMP_NAME in paths or len(set(paths)) != len(paths):
            raise BackupError("Manifes mencantumkan satu berkas dua kali.")
        return cls(created_at, schema_version, database, files,
                   str(document.get("software", "")), str(document.get("pg_dump", "")),
                   str(document.get("site", "")), str(document.get("written_to", "")))


def human_size(total: int) -> str:
    """``total`` bytes as the IT staff read them: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    amount = float(total)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def check_schema_level(backup: int, known: int) -> None:
    """A backup of a newer schema than this software knows cannot be restored by it (the
    older code would run on tables it does not understand); an older one is migrated
    forward after the restore."""
    if backup > known:
        raise BackupError(
            f"Cadangan berasal dari skema versi {backup}, lebih baru dari yang dikenal perangkat "
            f"lunak ini ({known}); pulihkan dengan versi siaga112 yang sama atau lebih baru.")


def expired(created_at: datetime, *, now: datetime, keep_days: int) -> bool:
    """Whether a backup written at ``created_at`` is past the site's ``backup_keep_days`` at
    ``now``. 0 keeps every backup (a site that prunes them by its own schedule); a backup
    stamped in the future (a clock set back since) is not past anything."""
    return keep_days > 0 and now - created_at > timedelta(days=keep_days)
