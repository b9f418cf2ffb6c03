"""A durable, ordered on-disk queue of call facts, for when the database cannot take them.

Facts are appended as JSON lines to numbered segment files and fsync'd before ``append``
returns: a fact the listener saw is never only in memory. The writer always appends to the
newest segment; the flusher first *seals* it (later appends start a new segment), then replays
sealed segments oldest first and deletes each one only after the database accepted all of it.
A crash mid-replay replays that segment again, which the database's dedupe key makes harmless.

A segment number can be *reserved* for facts still on their way to the database, so that facts
spooled meanwhile (when the in-memory backlog overflows) go behind them: ``seal`` then stops
before the reservation until it is filled or released.

A line that cannot be decoded (e.g. cut short by a crash while being written) is moved to
``rejected.jsonl`` beside the segments and reported, never silently dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from telephony.calls.facts import CallFact, FactDecodeError, fact_from_json, fact_to_json

log = logging.getLogger("telephony.calls.spool")

_SUFFIX = ".jsonl"


class FactSpool:
    """Segment files ``NNNNNNNNNN.jsonl`` in one directory, owned by one process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rejected_path = directory / "rejected.jsonl"
        numbers = [n for n, _ in self._segments()]
        # Start a fresh segment: whatever a previous process left is sealed by definition.
        self._current = (max(numbers) + 1) if numbers else 1
        self._reserved: int | None = None

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob(f"*{_SUFFIX}"):
            if path.stem.isdigit():
                found.append((int(path.stem), path))
        return sorted(found)

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:010d}{_SUFFIX}"

    def append(self, facts: Sequence[CallFact]) -> None:
        """Durably append ``facts`` to the current segment."""
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
            self._current += 1

    def fill(self, facts: Sequence[CallFact]) -> None:
        """Durably write ``facts`` to the reserved segment (or append them if none is) and end
        the reservation."""
        number, self._reserved = self._reserved, None
        self._write(self._current if number is None else number, facts)

    def release(self) -> None:
        """End the reservation without using it."""
        self._reserved = None

    def _write(self, number: int, facts: Sequence[CallFact]) -> None:
        if not facts:
            return
        data = "".join(fact_to_json(fact) + "\n" for fact in facts).encode("utf-8")
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def is_empty(self) -> bool:
        """True when no fact is waiting."""
        return not self._segments()

    def seal(self) -> list[Path]:
        """Close the current segment; return every sealed segment, oldest first."""
        if self._path(self._current).exists():
            self._current += 1
        limit = self._current if self._reserved is None else self._reserved
        return [path for number, path in self._segments() if number < limit]

    def read(self, segment: Path) -> list[CallFact]:
        """The facts of a sealed segment; undecodable lines go to ``rejected.jsonl``."""
        facts: list[CallFact] = []
        with segment.open("r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    facts.append(fact_from_json(line))
                except FactDecodeError as exc:
                    log.error("spool %s line %d kept in %s: %s", segment.name, number,
                              self.rejected_path.name, exc)
                    self._keep_rejected(line)
        return facts

    def reject(self, fact: CallFact, reason: str) -> None:
        """Keep a fact the database refused, for an engineer to look at; never drop it."""
        log.error("call fact kept in %s: %s: %s", self.rejected_path, reason,
                  fact_to_json(fact)[:300])
        self._keep_rejected(fact_to_json(fact))

    def _keep_rejected(self, line: str) -> None:
        fd = os.open(self.rejected_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, segment: Path) -> None:
        """Delete a segment whose facts are all in the database."""
        segment.unlink(missing_ok=True)

    def pending_count(self) -> int:
        """Facts waiting, counted line by line (for status output and tests)."""
        total = 0
        for _, path in self._segments():
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total
