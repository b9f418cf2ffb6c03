"""A durable, ordered on-disk queue of call facts, for when the database cannot take them.

Facts are appended as JSON lines to numbered segment files and fsync'd before ``append``
returns. The writer always appends to the newest segment; the flusher first *seals* it (later
appends start a new segment), then replays sealed segments oldest first and deletes each one
only after the database accepted all of it. A crash mid-replay replays that segment again,
which the database's dedupe key makes harmless. While sealed segments still wait (the database
is away), the flusher's tries leave the newest one open; it is closed at
:data:`SEGMENT_BYTES`, so a days-long outage leaves a file a MiB, not one a try.

A segment number can be *reserved* for facts still on their way to the database, so that facts
spooled meanwhile (when the in-memory backlog overflows) go behind them: ``seal`` then stops
before the reservation until it is filled or released.

When the spool directory cannot be written (a full disk, a read-only or vanished mount), the
facts go to the same segment number in the *fallback* directory if one is configured, and
failing that are held in memory (:class:`~telephony.calls.holding.HeldFacts`, bounded) under
that number, so a segment is always: its primary file, then its fallback file, then what memory
holds for it. After a failed write the writer moves on to a new segment, so nothing newer ever
lands in an earlier part of a segment. :meth:`FactSpool.retry_held` moves held facts to disk
as soon as a directory takes them; the flusher writes them to the database as soon as it is
back. A write cut short is truncated back, so a fact is never half on disk and half in memory.

A line that cannot be decoded (e.g. cut short by a crash while being written) is moved to
``rejected.jsonl`` beside the segments and reported, never silently dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from telephony.calls.facts import (
    CallFact,
    CallStarted,
    FactDecodeError,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
    fact_from_json,
    fact_to_json,
)
from telephony.calls.holding import DEFAULT_MEMORY_BOUND, HeldFacts
from telephony.core.text import ascii_digits

log = logging.getLogger("telephony.calls.spool")

_SUFFIX = ".jsonl"
_REJECTED = "rejected.jsonl"
# A segment is closed past this size even while the database is away: a replay reads a whole
# segment into memory (some 3,000 facts a MiB), and a segment of a days-long outage must not
# take a gigabyte to replay.
SEGMENT_BYTES = 1024 * 1024


@dataclass
class SpooledCall:
    """What the spool says of one call: a call the line followed (the tracker gives a call's
    facts only once it gave its start), its start if spooled (seen live, to the sub-second),
    and the queues it joined and has not left, as far as the spool goes."""

    started_at: datetime | None = None
    waiting: set[str] = field(default_factory=set)


# The kinds whose whole fact :func:`_note_line` needs; of the others only the call id.
_NOTED: Final = {cls.kind for cls in (CallStarted, QueueJoined, QueueLeft, QueueAbandoned)}


def _note_line(found: dict[str, SpooledCall], line: str) -> None:
    """Note one spooled line in ``found``. Most lines only name their call: a long outage
    spools many facts, and decoding each whole would hold the line's loop up. A line that
    does not decode is left to :meth:`FactSpool.read`, which keeps it as rejected."""
    try:
        body = json.loads(line)
    except ValueError:
        return
    if not isinstance(body, dict) or not isinstance(call_id := body.get("call_id"), str):
        return
    if body.get("kind") not in _NOTED:
        found.setdefault(call_id, SpooledCall())
        return
    with contextlib.suppress(FactDecodeError):
        _note(found, fact_from_json(line))


def _note(found: dict[str, SpooledCall], fact: CallFact) -> None:
    call_id = getattr(fact, "call_id", None)
    if not isinstance(call_id, str):
        return
    call = found.setdefault(call_id, SpooledCall())
    match fact:
        case CallStarted() if call.started_at is None:
            call.started_at = fact.at
        case QueueJoined():
            call.waiting.add(fact.queue)
        case QueueLeft() | QueueAbandoned():
            call.waiting.discard(fact.queue)


def _write_file(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` durably, or leave the file as it was and raise OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)  # a fallback mount may come back empty
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:  # a full disk can take part of a write and refuse the rest
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                if size == 0:
                    path.unlink()
            raise
    finally:
        os.close(fd)


class FactSpool:
    """Segment files ``NNNNNNNNNN.jsonl`` in one directory (and the same numbers in the
    fallback directory, if any), owned by one process."""

    def __init__(self, directory: Path, *, fallback: Path | None = None,
                 memory_bound: int = DEFAULT_MEMORY_BOUND) -> None:
        self.directory = directory
        self.fallback = fallback
        self.rejected_path = directory / _REJECTED
        self.held = HeldFacts(memory_bound)
        self._failing: set[Path] = set()  # directories whose last write failed
        # A directory that cannot be made now (a file in its place, a read-only or missing
        # mount) must not stop the line: it is only needed while the database is away, and
        # every write makes it again. Said once here; its first failed write says nothing more.
        for path in self._directories:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.error("spool directory %s not usable (%s): call facts are held in memory "
                          "while the database is away, until it can be written", path, exc)
                self._failing.add(path)
        # True while nothing was written since a look found the directories empty. The recorder
        # asks before every batch, and the glob of two directories was 5 % of the AMI thread's
        # samples in a profile of a 50/s surge. Only this process writes segments (above).
        self._seen_empty = False
        numbers = self._numbers()
        # Start a fresh segment: whatever a previous process left is sealed by definition.
        self._current = (max(numbers) + 1) if numbers else 1
        self._current_bytes = 0  # written to the current segment's primary file
        self._reserved: int | None = None

    @property
    def _directories(self) -> tuple[Path, ...]:
        return (self.directory,) if self.fallback is None else (self.directory, self.fallback)

    def _numbers(self) -> list[int]:
        found = set(self.held.numbers())
        for directory in self._directories:
            with contextlib.suppress(OSError):  # a vanished fallback holds nothing we can read
                found.update(int(path.stem) for path in directory.glob(f"*{_SUFFIX}")
                             if ascii_digits(path.stem))
        return sorted(found)

    def _path(self, directory: Path, number: int) -> Path:
        return directory / f"{number:010d}{_SUFFIX}"

    def segment_paths(self, number: int) -> list[Path]:
        """The files of segment ``number`` that exist, primary first."""
        return [path for directory in self._directories
                if (path := self._path(directory, number)).exists()]

    def append(self, facts: Sequence[CallFact]) -> None:
        """Durably append ``facts`` to the current segment (or hold them, see the module)."""
        self._write(self._current, facts)

    @property
    def reserved(self) -> bool:
        """A segment is reserved (see :meth:`reserve`)."""
        return self._reserved is not None

    def reserve(self) -> None:
        """Keep the current segment for facts older than any appended from now on; they go
        there with :meth:`fill`, or :meth:`release` gives it up. Until then :meth:`seal` keeps
        to the segments before it. Does nothing if a segment is already reserved."""
        if self._reserved is None:
            self._reserved = self._current
            self._next_segment()

    def fill(self, facts: Sequence[CallFact]) -> None:
        """Durably write ``facts`` to the reserved segment (or append them if none is) and end
        the reservation."""
        number, self._reserved = self._reserved, None
        self._write(self._current if number is None else number, facts)

    def release(self) -> None:
        """End the reservation without using it."""
        self._reserved = None

    @property
    def failing(self) -> bool:
        """Facts are held only in memory: neither directory could take them."""
        return len(self.held) > 0

    def _write(self, number: int, facts: Sequence[CallFact]) -> None:
        if not facts:
            return
        self._seen_empty = False
        data = "".join(fact_to_json(fact) + "\n" for fact in facts).encode("utf-8")
        written = self._write_disk(number, data, self._directories)
        if number == self._current:
            if written is not self.directory:
                # The primary file of this segment must not get anything newer than what went
                # elsewhere: later facts start a new segment.
                self._next_segment()
            else:
                self._current_bytes += len(data)
                if self._current_bytes >= SEGMENT_BYTES:
                    self._next_segment()
        if written is None:
            self._hold(number, facts)

    def _next_segment(self) -> None:
        self._current += 1
        self._current_bytes = 0

    def _write_disk(self, number: int, data: bytes, directories: Sequence[Path]
                    ) -> Path | None:
        """The directory that took ``data`` for segment ``number``, or None."""
        for directory in directories:
            try:
                _write_file(self._path(directory, number), data)
            except OSError as exc:
                if directory not in self._failing:
                    log.error("cannot write call facts to the spool in %s: %s", directory, exc)
                self._failing.add(directory)
                continue
            if directory in self._failing:
                self._failing.discard(directory)
                log.info("the spool in %s takes call facts again", directory)
            return directory
        return None

    def _hold(self, number: int, facts: Sequence[CallFact]) -> None:
        if not self.held.episode:
            log.error("no spool directory takes call facts: holding them in memory (up to %d) "
                      "until the spool or PostgreSQL takes them", self.held.bound)
        dropping = self.held.dropping
        if self.held.hold(number, facts) and not dropping:
            log.error("call facts held in memory reached the bound of %d: newer facts are lost "
                      "until the spool or PostgreSQL takes them again (the count is logged "
                      "then, and a resync restores the live calls)", self.held.bound)

    def retry_held(self) -> None:
        """Move the facts held in memory to disk, oldest segment first, if a directory takes
        them now (while the database is away)."""
        for number in self.held.numbers():
            data = "".join(fact_to_json(f) + "\n" for f in self.held.facts(number)).encode()
            fallback_used = (self.fallback is not None
                             and self._path(self.fallback, number).exists())
            # Held facts come after the segment's fallback part: never into its primary file
            # if the fallback has a part.
            directories = (self._directories[1:] if fallback_used else self._directories)
            if self._write_disk(number, data, directories) is None:
                return
            self.held.release(number)

    def end_episode(self) -> int | None:
        """See :meth:`HeldFacts.end_episode`."""
        return self.held.end_episode()

    def is_empty(self) -> bool:
        """True when no fact is waiting (on disk or held in memory)."""
        if not self._seen_empty:
            self._seen_empty = not self._numbers()
        return self._seen_empty

    def _has(self, number: int) -> bool:
        return bool(self.segment_paths(number)) or number in self.held.numbers()

    def seal(self, *, behind_waiting: bool = False) -> list[int]:
        """Close the current segment; return every sealed segment number, oldest first.

        ``behind_waiting`` (the flusher's every try): leave the current segment open while
        sealed ones still wait before it. They mean the last try failed (the database is
        away): the current segment goes on growing (up to :data:`SEGMENT_BYTES`) rather than a
        new one being started at every try. It was a file per ``db_retry_seconds`` with facts
        in it: 20,000 after half a day of an outage in busy hours, each try's look at them
        49 ms on the AMI thread and the spool's metric 0.8 s, growing by the day. Once they are
        written the flusher seals again and the current one follows them, in order.
        """
        limit = self._current if self._reserved is None else self._reserved
        numbers = self._numbers()
        if behind_waiting and any(number < limit for number in numbers):
            return [number for number in numbers if number < limit]
        if self._has(self._current):
            self._next_segment()
            limit = self._current if self._reserved is None else self._reserved
            numbers = self._numbers()
        return [number for number in numbers if number < limit]

    def read(self, number: int) -> list[CallFact]:
        """The facts of a sealed segment, in order; undecodable lines go to the rejected
        file."""
        facts: list[CallFact] = []
        for path in self.segment_paths(number):
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        facts.append(fact_from_json(line))
                    except FactDecodeError as exc:
                        log.error("spool %s line %d kept in %s: %s", path, line_number,
                                  _REJECTED, exc)
                        self._keep_rejected(line)
        return [*facts, *self.held.facts(number)]

    def reject(self, fact: CallFact, reason: str) -> None:
        """Keep a fact the database refused, for an engineer to look at; never drop it."""
        log.error("call fact kept in %s: %s: %s", self.rejected_path, reason,
                  fact_to_json(fact)[:300])
        self._keep_rejected(fact_to_json(fact))

    def _keep_rejected(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        for directory in self._directories:
            with contextlib.suppress(OSError):
                _write_file(directory / _REJECTED, data)
                return
        # Nowhere on disk: the log is the last place it can be kept, whole.
        log.error("rejected call fact could not be kept on disk: %s", line.rstrip("\n"))

    def remove(self, number: int) -> None:
        """Delete a segment whose facts are all in the database."""
        for path in self.segment_paths(number):
            path.unlink(missing_ok=True)
        self.held.release(number)

    def pending_count(self) -> int:
        """Facts waiting on disk and in memory, counted line by line (for status output)."""
        total = len(self.held)
        for number in self._numbers():
            for path in self.segment_paths(number):
                try:
                    with path.open("rb") as handle:
                        total += sum(1 for line in handle if line.strip())
                except FileNotFoundError:
                    # Written and removed meanwhile: a metrics scrape reads this from another
                    # thread than the flusher's (telephony/ami/threaded.py).
                    continue
        return total

    def calls(self) -> dict[str, SpooledCall]:
        """Every call a fact waiting here names (on disk or held in memory), by call id: what
        the line knows of it that the database does not yet (see :class:`SpooledCall`)."""
        found: dict[str, SpooledCall] = {}
        for number in self._numbers():
            for path in self.segment_paths(number):
                try:
                    with path.open("r", encoding="utf-8", errors="replace") as handle:
                        for line in handle:
                            _note_line(found, line)
                except FileNotFoundError:
                    continue  # written to the database and removed meanwhile
            for fact in self.held.facts(number):
                _note(found, fact)
        return found

    def rejected_count(self) -> int:
        """Facts kept in the rejected files (the database refused them, or they could not be
        decoded): records missing from the database until an engineer deals with them, so
        counted from the files, which outlive the process, not since start."""
        total = 0
        for directory in self._directories:
            try:
                with (directory / _REJECTED).open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            except OSError:  # none kept there (or a vanished fallback, which holds none)
                continue
        return total
