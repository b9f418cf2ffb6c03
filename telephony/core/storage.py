"""Durable, confined files: what we store is on disk before we say so, and a path the database
holds never leads outside its storage root.

A stored path is trusted no more than user input: it must be relative, made of plain parts,
and still lead inside the storage root once every symbolic link is followed. Recordings and
incident attachments both keep files this way.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path, PurePosixPath

from telephony.core.errors import SiagaError


class StoredFileError(SiagaError):
    """The stored path is unsafe, or its file is not there; the reason is for the log."""


def checked_relpath(stored: str) -> PurePosixPath:
    """A storage path read back from the database, refused unless it is one we could have made.

    Retention deletes what this returns; a relative path of plain parts is the only kind that
    cannot reach outside the storage directory. Raises :class:`StoredFileError`.
    """
    path = PurePosixPath(stored)
    if (not stored or path.is_absolute() or any(p in ("", ".", "..") for p in path.parts)
            or "\\" in stored or "\x00" in stored):
        raise StoredFileError(f"unsafe stored path {stored!r}")
    return path


def stored_file(root: Path, stored: str) -> Path:
    """The regular file ``stored`` names under ``root``, fully resolved.

    Raises :class:`StoredFileError` for an absolute path, ``..`` or empty parts, a path that a
    symbolic link leads out of ``root``, or a file that is missing or not a regular file.
    """
    relative = checked_relpath(stored)
    base = root.resolve()
    try:
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, or a symlink loop
        raise StoredFileError(f"stored file {stored!r} not found: {exc}") from exc
    if not path.is_relative_to(base):
        raise StoredFileError(f"stored path {stored!r} leads outside {base}")
    if not path.is_file():
        raise StoredFileError(f"stored path {stored!r} is not a regular file")
    return path


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries, so a rename in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_durably(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` (which must not exist), across file systems if need be.

    Asterisk's monitor directory (in the lab, inside its root filesystem) and our state
    directory are often on different file systems, where a rename fails; the file is then
    copied, flushed, renamed into place and only then removed from where it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source.rename(target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.partial")
        with source.open("rb") as reader, partial.open("wb") as writer:
            shutil.copyfileobj(reader, writer)
            writer.flush()
            os.fsync(writer.fileno())
        partial.rename(target)
        fsync_dir(target.parent)
        source.unlink()
        return
    fsync_dir(target.parent)
