"""Serving files we stored earlier (recordings, attachments) from a path the database holds.

A stored path is trusted no more than user input: it must be relative, made of plain parts,
and still lead inside the storage root once every symbolic link is followed.
"""

from __future__ import annotations

from pathlib import Path

from recordings.domain import RecordingNameError, checked_relpath
from telephony.core.errors import SiagaError


class StoredFileError(SiagaError):
    """The stored path is unsafe, or its file is not there; the reason is for the log."""


def stored_file(root: Path, stored: str) -> Path:
    """The regular file ``stored`` names under ``root``, fully resolved.

    Raises :class:`StoredFileError` for an absolute path, ``..`` or empty parts, a path that a
    symbolic link leads out of ``root``, or a file that is missing or not a regular file.
    """
    try:
        relative = checked_relpath(stored)
    except RecordingNameError as exc:
        raise StoredFileError(f"unsafe stored path {stored!r}") from exc
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
