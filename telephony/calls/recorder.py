"""Records call facts in PostgreSQL, or keeps them on disk until PostgreSQL takes them.

This is the AMI listener's sink. Order matters (a hang-up after an answer), so once anything
is spooled, every later fact goes to the spool behind it until the spool is drained.

The listener calls :meth:`CallRecorder.record` from one task, one batch at a time, and
:meth:`CallRecorder.overflow` (from its tracking task, never waiting) when its in-memory
backlog is full. Overflowing facts are newer than the batch ``record`` may be writing at that
moment; the spool then reserves a segment for that batch, so that if the database refuses it
for being away it still lands ahead of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from telephony.calls.facts import CallFact
from telephony.calls.spool import FactSpool
from telephony.calls.store import CallRepository
from telephony.db.connection import Database, DatabaseUnavailable

log = logging.getLogger("telephony.calls.recorder")

_BATCH = 500


class CallRecorder:
    """Writes facts through a :class:`CallRepository`; spools them while the database is away."""

    def __init__(
        self,
        database: Database,
        repository: CallRepository,
        spool: FactSpool,
        *,
        retry_seconds: float,
    ) -> None:
        self._database = database
        self._repository = repository
        self._spool = spool
        self._retry_seconds = retry_seconds
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._database_down = False
        self._unplaced = 0  # record() calls whose facts are neither written nor spooled yet
        self.overflowed = 0  # facts spooled because the listener's backlog was full

    async def record(self, facts: Sequence[CallFact]) -> None:
        """Record ``facts`` in order. Never raises for a database outage."""
        if not facts:
            return
        self._unplaced += 1
        try:
            async with self._lock:
                if self._spool.is_empty():
                    try:
                        await self._write(facts)
                    except DatabaseUnavailable as exc:
                        self._note_down(exc)
                    else:
                        self._spool.release()  # written: what overflowed meanwhile comes next
                        return
                # Into the segment reserved for them if facts overflowed while they waited.
                self._spool.fill(facts)
                self._drain_soon()
        finally:
            self._unplaced -= 1
            if not self._unplaced:
                self._spool.release()  # never left behind by an unexpected error

    @property
    def writing(self) -> bool:
        """A batch handed to :meth:`record` is neither written nor spooled yet."""
        return self._unplaced > 0

    def overflow(self, facts: Sequence[CallFact]) -> None:
        """Spool ``facts`` at once, behind everything already handed to :meth:`record`
        (the listener's backlog is full). Never waits; never raises for the database."""
        if not facts:
            return
        if self._unplaced:
            self._spool.reserve()
        self._spool.append(facts)
        self.overflowed += len(facts)
        self._drain_soon()

    def _drain_soon(self) -> None:
        if not self._database_down:
            # Spooled only to keep order behind earlier facts: drain now. While the database
            # is down, the flusher retries on its own pace instead of once per event.
            self._wake.set()

    async def open_call_ids(self) -> set[str]:
        """Calls the database believes are in progress.

        Empty when the database cannot say: no call is declared vanished on a guess.
        """
        try:
            return await self._database.run(self._repository.open_call_ids)
        except DatabaseUnavailable as exc:
            self._note_down(exc)
            return set()

    def pending(self) -> int:
        """How many facts wait in the spool for the database."""
        return self._spool.pending_count()

    def _note_down(self, exc: Exception) -> None:
        if not self._database_down:
            log.error("database unavailable, keeping call facts in %s: %s",
                      self._spool.directory, exc)
        self._database_down = True

    async def flush(self) -> int:
        """Write every spooled fact to the database; returns how many were written.

        Raises :class:`DatabaseUnavailable` if the database is still away (nothing is lost).
        """
        written = 0
        while True:
            async with self._lock:
                segments = self._spool.seal()
                if not segments:
                    if self._database_down and written:
                        log.info("database back: wrote %d spooled call facts", written)
                    self._database_down = False
                    return written
            for segment in segments:
                written += await self._write_segment(segment)

    async def _write_segment(self, segment: Path) -> int:
        facts = self._spool.read(segment)
        for start in range(0, len(facts), _BATCH):
            await self._write(facts[start : start + _BATCH])
        self._spool.remove(segment)
        return len(facts)

    async def _write(self, facts: Sequence[CallFact]) -> None:
        """Apply ``facts`` in one transaction.

        If the database refuses the batch for what is in it (not for being away), the facts go
        one by one so that one bad fact costs only itself; it is kept in the spool's rejected
        file. :class:`DatabaseUnavailable` propagates: the caller spools.
        """

        async def apply(connection: asyncpg.Connection) -> int:
            return await self._repository.apply(connection, facts)

        try:
            await self._database.run(apply)
        except asyncpg.PostgresError as exc:
            if len(facts) == 1:
                self._spool.reject(facts[0], f"{type(exc).__name__}: {exc}")
                return
            for fact in facts:
                await self._write([fact])

    async def run_flusher(self) -> None:
        """Drain the spool whenever something is in it, retrying at a steady pace."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if self._spool.is_empty():
                continue
            try:
                await self.flush()
            except DatabaseUnavailable as exc:
                self._note_down(exc)
