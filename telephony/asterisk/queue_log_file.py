"""Reading Asterisk's queue_log from a cursor, across rotations (file I/O; the lines are
parsed by :mod:`telephony.asterisk.queue_log`)."""

from __future__ import annotations

import logging
from pathlib import Path

from telephony.asterisk.queue_log import Chunk, Cursor, parse_chunk

log = logging.getLogger("telephony.asterisk")

MAX_READ = 16 * 1024 * 1024  # bytes read per catch-up; the rest waits for the next one


def _read_from(path: Path, offset: int, budget: int) -> tuple[bytes, int, bool]:
    """Up to ``budget`` bytes from ``offset``, cut after the last newline; and whether the
    budget ran out (more may follow)."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(budget)
    cut = data.rfind(b"\n") + 1
    return data[:cut], offset + cut, len(data) >= budget


def _rotated(path: Path, inode: int) -> Path | None:
    """The file that was ``path`` when the cursor was taken: a sibling with its inode."""
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return None
    for sibling in sorted(siblings):
        if sibling.name.startswith(path.name) and sibling != path:
            try:
                if sibling.stat().st_ino == inode:
                    return sibling
            except OSError:
                continue
    return None


def is_log_file(path: Path, inode: int) -> bool:
    """Whether a cursor at ``inode`` was taken on ``path``: the file itself, or its rotated
    predecessor still beside it."""
    try:
        if path.stat().st_ino == inode:
            return True
    except OSError:
        return False
    return _rotated(path, inode) is not None


def read_since(path: Path, cursor: Cursor | None, *, budget: int = MAX_READ) -> Chunk | None:
    """Everything ``path`` gained since ``cursor``; ``None`` when the file cannot be read.

    No cursor: start at the end (the line was just installed; what Asterisk logged before it
    is not its history). A rotated file (another inode at ``path``) is first read to its end
    under its new name, found by inode among ``path``'s siblings, then the new file from its
    start. A file shorter than the cursor was truncated in place: read from its start.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        # Asterisk creates it at its first queue event: nothing logged yet.
        return Chunk([], cursor or Cursor(0, 0))
    except OSError as exc:
        log.warning("queue_log %s cannot be read: %s", path, exc)
        return None
    if cursor is None or cursor.inode == 0:
        return Chunk([], Cursor(stat.st_ino, stat.st_size))
    chunk = Chunk([], cursor)
    try:
        offset = cursor.offset
        if cursor.inode != stat.st_ino:
            old = _rotated(path, cursor.inode)
            if old is None:
                chunk.lost = True
                log.warning("queue_log %s was rotated and its previous file (inode %d) is gone:"
                            " calls logged after byte %d of it cannot be backfilled",
                            path, cursor.inode, cursor.offset)
            else:
                data, old_end, more = _read_from(old, offset, budget)
                parse_chunk(data, offset, cursor.inode, chunk)
                if more:  # the budget ran out: the rest next time
                    chunk.end = Cursor(cursor.inode, old_end)
                    chunk.more = True
                    return chunk
                # A partial last line there was cut by the crash that made it: skipped.
                budget -= len(data)
            offset = 0
        elif stat.st_size < offset:
            log.warning("queue_log %s is shorter than the cursor (truncated): reading it from "
                        "its start", path)
            offset = 0
        data, end, chunk.more = _read_from(path, offset, max(budget, 1))
        parse_chunk(data, offset, stat.st_ino, chunk)
        chunk.end = Cursor(stat.st_ino, end)
    except OSError as exc:
        log.warning("queue_log %s cannot be read: %s", path, exc)
        return None
    return chunk
