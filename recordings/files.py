"""Durable file moves for recordings: what is renamed or moved is on disk before we say so
(with ``telephony.core.storage``'s durable moves)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from recordings.domain import Kind, Source, is_temp_of, parse_source, source_name
from telephony.core.storage import fsync_dir, move_durably


def free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2`` ... whichever does not exist yet."""
    candidate = path
    n = 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def discard(path: Path) -> None:
    """Remove a file of ours if it is there."""
    path.unlink(missing_ok=True)


def put_in_place(temporary: Path, final: Path, call_id: str, kind: Kind,
                 leg_id: int | None = None) -> None:
    """Rename a finished temporary file to its final name, durably.

    Earlier attempts at the same recording that stopped midway left their own temporary files
    beside it; the caller holds the job, so nobody is still writing them.
    """
    for leftover in final.parent.iterdir():
        if leftover != temporary and is_temp_of(leftover.name, call_id, kind, leg_id):
            leftover.unlink(missing_ok=True)
    temporary.replace(final)
    fsync_dir(final.parent)


def quarantine(source: Path, quarantine_dir: Path) -> Path | None:
    """Move an unprocessable source to the quarantine directory; where it went, if it existed."""
    if not source.exists():
        return None
    kept = free_name(quarantine_dir / source.name)
    move_durably(source, kept)
    return kept


def refuses_files(directory: Path) -> bool:
    """The file system of ``directory`` takes no new file now: read-only, or no block or inode
    left for an unprivileged writer (a file system that counts no inodes at all, as btrfs,
    is not out of them)."""
    try:
        fs = os.statvfs(directory)
    except OSError:
        return False  # gone or hung: nothing to say of it
    return (bool(fs.f_flag & os.ST_RDONLY) or (fs.f_blocks > 0 and fs.f_bavail == 0)
            or (fs.f_files > 0 and fs.f_favail == 0))


def incoming_sources(incoming_dir: Path) -> list[Source]:
    """Whose each MixMonitor file in ``incoming_dir`` is (other files are not ours)."""
    if not incoming_dir.is_dir():
        return []
    return sorted(found for entry in incoming_dir.iterdir()
                  if (found := parse_source(entry.name)) is not None)


def unchanged_sources(incoming_dir: Path, seconds: float) -> list[Source]:
    """The MixMonitor files in ``incoming_dir`` that have not changed for ``seconds``: their
    calls ended at least that long ago (Asterisk writes a call's file until it ends)."""
    before = time.time() - seconds
    found = []
    for source in incoming_sources(incoming_dir):
        try:
            mtime = (incoming_dir / source_name(*source)).stat().st_mtime
        except OSError:
            continue  # gone meanwhile: stored by another worker
        if mtime <= before:
            found.append(source)
    return found
