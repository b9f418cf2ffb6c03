"""Records call facts in PostgreSQL, or keeps them on disk until PostgreSQL takes them.

This is the AMI listener's sink. Order matters (a hang-up after an answer), so once anything
is spooled, every later fact goes to the spool behind it until the spool is drained.

The listener calls :meth:`CallRecorder.record` from one task, one batch at a time, and
:meth:`CallRecorder.overflow` (from its tracking task, never waiting) when its in-memory
backlog is full. Overflowing facts are newer than the batch ``record`` may be writing at that
moment; the spool then reserves a segment for that batch, so that if the database refuses it
for being away it still lands ahead of them.

When no spool directory can be written either, the spool holds facts in memory (bounded) and
the flusher keeps retrying them, to disk or to the database, in order. If the bound was passed
meanwhile, the facts dropped are counted in one log line when writing works again. Either way
the hooks given to :meth:`CallRecorder.after_spool_failure` then run (the line forces an AMI
resync, which restores the live calls any lost facts described).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import asyncpg

from telephony.calls.facts import CallFact, CallStarted, QueueAbandoned, QueueJoined, QueueLeft
from telephony.calls.spool import FactSpool, SpooledCall
from telephony.calls.store import CallRepository
from telephony.db.connection import Database, DatabaseConflict, DatabaseUnavailable, DatabaseWork

log = logging.getLogger("telephony.calls.recorder")

_BATCH = 500
# A batch the server rolled back against another transaction (a deadlock with another
# node's recorder, a serialization failure) is tried again at once this many times in all,
# a little later each time; then it waits in the spool like an outage's, never rejected.
_CONFLICT_TRIES = 3
_CONFLICT_PAUSE_SECONDS = 0.05


class CallRecorder:
    """Writes facts through a :class:`CallRepository`; spools them while the database is away."""

    def __init__(
        self,
        database: Database,
        repository: CallRepository,
        spool: FactSpool,
        *,
        retry_seconds: float,
        node: str | None = None,
    ) -> None:
        self._database = database
        # A cluster node's systemname: its open calls are the only ones this line's resync and
        # vanish check may close (another node's are alive in that node's Asterisk).
        self._node = node
        self._repository = repository
        self._spool = spool
        self._retry_seconds = retry_seconds
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._database_down = False
        self._unplaced = 0  # record() calls whose facts are neither written nor spooled yet
        self.overflowed = 0  # facts spooled because the listener's backlog was full
        self._spool_failure_hooks: list[Callable[[], None]] = []

    def after_spool_failure(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when writing works again after facts had to be held in memory (no
        spool directory took them; some may have been lost past the memory bound): the line
        resyncs from Asterisk then, which restores anything the facts missed (a replay of
        what they did say changes nothing)."""
        self._spool_failure_hooks.append(hook)

    @property
    def failing(self) -> bool:
        """Facts are held only in memory: neither PostgreSQL nor a spool directory took
        them (an alarm: they are lost if the process ends now)."""
        return self._spool.failing

    @property
    def held(self) -> int:
        """Facts held only in memory."""
        return len(self._spool.held)

    @property
    def dropped(self) -> int:
        """Facts lost since start because even the memory bound was passed."""
        return self._spool.held.dropped_total

    @property
    def rejected(self) -> int:
        """Facts kept in the spool's rejected files: refused by the database or undecodable."""
        return self._spool.rejected_count()

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

    def spooled_calls(self) -> dict[str, SpooledCall]:
        """The calls facts waiting in the spool for the database name (see
        :meth:`FactSpool.calls`)."""
        return self._spool.calls()

    async def open_calls(self) -> dict[str, set[str]]:
        """Calls the database believes are in progress, each with the queues it has them
        waiting in.

        Empty when the database cannot say: no call is declared vanished on a guess.
        """
        try:
            return await self._database.run(
                lambda connection: self._repository.open_call_waits(connection,
                                                                    node=self._node))
        except DatabaseUnavailable as exc:
            self._note_down(exc)
            return {}

    async def stored_open_call_ids(self) -> set[str] | None:
        """Calls the database believes are in progress, or ``None`` if it cannot say."""
        try:
            return await self._database.run(
                lambda connection: self._repository.open_call_ids(connection, node=self._node))
        except DatabaseUnavailable as exc:
            self._note_down(exc)
            return None

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
                segments = self._spool.seal(behind_waiting=True)
                if not segments:
                    if self._database_down and written:
                        log.info("database back: wrote %d spooled call facts", written)
                    self._database_down = False
                    return written
            for segment in segments:
                written += await self._write_segment(segment)

    async def _write_segment(self, segment: int) -> int:
        facts = await self._without_repeats(self._spool.read(segment))
        for start in range(0, len(facts), _BATCH):
            await self._write(facts[start : start + _BATCH])
        self._spool.remove(segment)
        return len(facts)

    async def _without_repeats(self, facts: list[CallFact]) -> list[CallFact]:
        """``facts`` without what a restarted line's resync repeated of what is stored
        already. A line restarted while the database was away resyncs from Asterisk without
        knowing which of the live calls the database has (those the spool names it knows):
        it starts each other one again, at its Uniqueid's whole second, and joins it again
        to the queues it waits in, at an instant estimated from its wait. The start and the
        join stored first are the ones seen live; a second start would put a second
        call_started in the event log and move the arrival before the real one, a second
        join a second queue_joined (the call's history showing it queued twice). Raises
        :class:`DatabaseUnavailable` as a write does."""
        started = {fact.call_id for fact in facts if isinstance(fact, CallStarted)}
        joined = {fact.call_id for fact in facts if isinstance(fact, QueueJoined)}
        if not started and not joined:
            return facts

        async def stored(connection: asyncpg.Connection,
                         ) -> tuple[set[str], set[tuple[str, str]]]:
            return (await self._repository.started_call_ids(connection, started),
                    await self._repository.open_visits(connection, joined))

        known, waiting = await self._database.run(stored)
        return without_repeats(facts, known, waiting)

    async def _write(self, facts: Sequence[CallFact]) -> None:
        """Apply ``facts`` in one transaction.

        If the database refuses the batch for what is in it (not for being away), the facts go
        one by one so that one bad fact costs only itself; it is kept in the spool's rejected
        file. :class:`DatabaseUnavailable` propagates: the caller spools.
        """

        async def apply(connection: asyncpg.Connection) -> int:
            return await self._repository.apply(connection, facts)

        try:
            await self._run_through_conflicts(apply)
        except asyncpg.PostgresError as exc:
            if len(facts) == 1:
                self._spool.reject(facts[0], f"{type(exc).__name__}: {exc}")
                return
            for fact in facts:
                await self._write([fact])

    async def _run_through_conflicts(self, apply: DatabaseWork[int]) -> None:
        """``apply`` in the database, done again when a concurrent transaction made the server
        roll it back; :class:`DatabaseConflict` (a :class:`DatabaseUnavailable`) if it still
        is after the last try."""
        for attempt in range(1, _CONFLICT_TRIES + 1):
            try:
                await self._database.run(apply)
            except DatabaseConflict as exc:
                if attempt == _CONFLICT_TRIES:
                    raise
                log.warning("call facts rolled back (%s); writing them again", exc)
                # The other transaction holds its locks until it ends: let it.
                await asyncio.sleep(_CONFLICT_PAUSE_SECONDS * attempt)
            else:
                return

    async def run_flusher(self) -> None:
        """Drain the spool whenever something is in it, retrying at a steady pace."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if not self._spool.is_empty():
                try:
                    await self.flush()
                except DatabaseUnavailable as exc:
                    self._note_down(exc)
                    self._spool.retry_held()
            self._after_episode()

    def _after_episode(self) -> None:
        """Once nothing is held in memory any more: say what the episode lost, once, and let
        the line learn it afresh."""
        dropped = self._spool.end_episode()
        if dropped is None:
            return
        if not dropped:
            log.info("call facts held in memory are all written again; none was lost; "
                     "resyncing from Asterisk all the same")
        else:
            log.error("%d call facts were lost while neither PostgreSQL nor the spool could "
                      "take them (memory bound %d); resyncing from Asterisk to restore the live "
                      "calls", dropped, self._spool.held.bound)
        for hook in self._spool_failure_hooks:
            try:
                hook()
            except Exception:
                log.exception("after-loss hook %r failed", hook)

    async def close(self) -> None:
        """At stop: write what is held to the database, or at least to disk; say what is
        lost if neither takes it."""
        try:
            await self.flush()
        except DatabaseUnavailable:
            self._spool.retry_held()
        if self._spool.failing:
            log.error("stopping with %d call facts neither written nor spooled: they are lost",
                      len(self._spool.held))


def without_repeats(facts: Sequence[CallFact], stored_starts: set[str],
                    stored_waits: set[tuple[str, str]]) -> list[CallFact]:
    """``facts`` (spooled, in order) without the starts of the calls in ``stored_starts``
    (their start is stored) and without the joins to a queue the call waits in, as the
    store has it (``stored_waits``: call id and queue of each open visit) or as ``facts``
    have it by then: the store takes such a join for that same wait (migration 0033's
    visits), so what is left out changes no row, only the event log. A join after the call
    left that queue is a new wait and stays. Pure."""
    waits = set(stored_waits)
    kept: list[CallFact] = []
    for fact in facts:
        match fact:
            case CallStarted() if fact.call_id in stored_starts:
                continue
            case QueueJoined():
                if (fact.call_id, fact.queue) in waits:
                    continue
                waits.add((fact.call_id, fact.queue))
            case QueueLeft() | QueueAbandoned():
                waits.discard((fact.call_id, fact.queue))
        kept.append(fact)
    return kept
