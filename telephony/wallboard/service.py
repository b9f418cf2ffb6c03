"""The wallboard service: the live board and the shift's and day's counters from the AMI
listener, the overdue incidents and the call-back backlog from the database, and a signal to
every open wallboard when any of it changes.

It observes the listener (``AmiListener.observe``): facts move the live board and the
counters (``telephony.wallboard.counters``) as soon as they are tracked, before the database
has them; the counters are never read back from the day's calls per refresh. They are seeded
from the database once at start, again at each new shift and after each resync (a
reconnection may have missed facts: the database then has what the backfill restored). A seed
reads the database behind the facts tracked so far, so every fact tracked since a while
before it (:data:`JOURNAL_FACTS`, more than the listener holds unwritten) is applied again on
top: a fact the calls already reflect changes nothing. Operator labels come from the
screening service (:meth:`WallboardService.labelled`); an operator's leave of a three-way call
with an agency, which Asterisk tells nothing of, from the transfer service
(:meth:`WallboardService.left`), journalled with the listener's facts.

On a cluster node (``node`` given: its systemname) the listener tracks only this node's calls,
so the other nodes' calls are followed from the database: about every ``follow_seconds`` the
calls of other nodes whose row changed since the last read (by ``calls.updated_at``, less
``follow_overlap_seconds``: ``updated_at`` is a transaction's start, which may commit after a
newer one) replace what the counters keep of them (:meth:`ShiftCounters.follow`), and their
callers still waiting replace what the board keeps of them (:meth:`LiveBoard.follow`; each seed
of the counters reads every other node's waiting caller afresh). One read at a time: a seed
and a follow never interleave, so no older row lands after a newer read. Reads run in the
background (a follow bounded by a timeout): the board answers from memory, never waiting for
the database. A node this node's Asterisk no longer reaches (the peer watch,
:meth:`WallboardService.node_liveness`) leaves the board with its callers at once.

The rest is read from the database: after call facts are persisted
(``AmiListener.after_persisted``), at most every ``min_refresh_seconds``, and every
``refresh_seconds`` anyway (incidents change without call facts); the periodic refresh also
rolls up a few closed shifts for the reports. A database outage keeps the last of those,
marked stale, and is logged once; the counters go on from the facts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from telephony.ami.tracker import QueueSnapshot
from telephony.callbacks.model import Backlog
from telephony.calls.facts import (
    CallFact,
    IvrVariableSet,
    IvrVariablesSet,
    LiveFact,
    OperatorLeft,
    OperatorRung,
    OperatorStateChanged,
)
from telephony.calls.shifts import ShiftSlot
from telephony.db.connection import DatabaseUnavailable
from telephony.incidents.dispatch_service import DispatchService, SlaBreach
from telephony.reports.service import ReportService
from telephony.wallboard.counters import LiveCounters, ShiftCounters
from telephony.wallboard.state import BoardView, LiveBoard

log = logging.getLogger("telephony.wallboard")

# Facts that move only the live board: they ask for no refresh of the database's part.
_LIVE_ONLY = (IvrVariableSet, IvrVariablesSet, OperatorRung, OperatorStateChanged)
# Facts kept to apply again after a seed: more than the listener holds before writing them
# (telephony.calls.backlog.DEFAULT_BOUND) and a batch being written.
JOURNAL_FACTS: Final = 25_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WallboardSnapshot:
    """Everything one wallboard shows, at one instant."""

    board: BoardView
    counters: LiveCounters | None  # None until seeded from the database once
    counters_stale: bool  # the last read of the database failed; its part is older
    overdue: list[SlaBreach]
    connected: bool  # logged in to Asterisk, which answers its Pings: the live part is current
    callbacks: Backlog | None = None  # callers waiting for a call-back (None: not read yet)
    # When the database's part (names, overdue incidents, call-backs) was last read whole:
    # while it cannot be (``counters_stale``) that part is as of then, the counters are not.
    refreshed_at: datetime | None = None


class WallboardService:
    """Keeps the wallboard and tells subscribers when it changed."""

    def __init__(
        self, board: LiveBoard, reports: ReportService, dispatches: DispatchService, *,
        connected: Callable[[], bool] = lambda: True,
        callbacks: Callable[[], Awaitable[Backlog]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        refresh_seconds: float = 10.0,
        min_refresh_seconds: float = 1.0,
        seed_retry_seconds: float = 5.0,
        node: str | None = None,
        follow_seconds: float = 1.0,
        follow_overlap_seconds: float = 5.0,
    ) -> None:
        self._board = board
        self._counters = ShiftCounters(reports.calendar)
        self._reports = reports
        self._dispatches = dispatches
        self._connected = connected
        self._callbacks = callbacks
        self._backlog: Backlog | None = None
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._min_refresh = min_refresh_seconds
        self._seed_retry = seed_retry_seconds
        self._names: Mapping[str, str] = {}
        self._overdue: list[SlaBreach] = []
        self._stale = False
        self._refreshed_at: datetime | None = None
        self._journal: deque[LiveFact] = deque(maxlen=JOURNAL_FACTS)
        self._seeded_slot: ShiftSlot | None = None
        self._reseed = True  # the counters' next seed is due
        self._seed_failing = False  # the last seed met a database outage (logged once)
        self._node = node  # a cluster node's systemname: follow the other nodes' calls
        self._follow_seconds = follow_seconds
        self._follow_overlap = timedelta(seconds=follow_overlap_seconds)
        self._cursor: datetime | None = None  # the database's clock before the last read
        self._following = True  # the last follow worked (a failure is logged once)
        self._reading = asyncio.Lock()  # a seed or a follow: one at a time
        self._refresh = asyncio.Event()
        self._subscribers: set[asyncio.Event] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # -- the listener's observer ----------------------------------------------------------

    def recorded(self, facts: Sequence[LiveFact]) -> None:
        """Facts the listener just tracked: move the board and the counters."""
        self._board.apply(facts)
        self._counters.apply(facts)
        self._journal.extend(facts)
        if any(isinstance(fact, OperatorStateChanged) and fact.operator not in self._names
               for fact in facts):
            self._refresh.set()  # a new operator: their name
        self._changed()

    def persisted(self, facts: Sequence[CallFact]) -> None:
        """Facts the database now has (``AmiListener.after_persisted``): read its part again
        (the call-back backlog follows the calls) if they are more than the live board's."""
        if any(not isinstance(fact, _LIVE_ONLY) for fact in facts):
            self._refresh.set()

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """The listener resynced: take the whole queue picture, and seed the counters again
        (facts may have been missed while it was away)."""
        self._board.resync(queues)
        self._reseed = True
        self._refresh.set()
        self._changed()

    def left(self, fact: OperatorLeft) -> None:
        """An operator left a three-way call with an agency, as recorded
        (``TransferService.on_left``): their talk ends and their wrap-up starts there."""
        self.recorded([fact])

    def labelled(self, call_id: str, label: str) -> None:
        """An operator labelled a call (``ScreeningService.on_labelled``)."""
        self._counters.labelled(call_id, label)
        self._changed()

    # -- readers ------------------------------------------------------------------------------

    @property
    def seed_due(self) -> bool:
        """The counters are to be seeded from the database again (a resync, a failed seed)."""
        return self._reseed

    def snapshot(self) -> WallboardSnapshot:
        """The wallboard now."""
        now = self._clock()
        return WallboardSnapshot(
            board=self._board.view(now), counters=self._counters.live(now, self._names),
            counters_stale=self._stale, overdue=list(self._overdue),
            connected=self._connected(), callbacks=self._backlog,
            refreshed_at=self._refreshed_at)

    def subscribe(self) -> asyncio.Event:
        """An event set whenever the wallboard changes (clear it after reading)."""
        event = asyncio.Event()
        self._subscribers.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        """Stop signalling ``event``."""
        self._subscribers.discard(event)

    @property
    def closed(self) -> bool:
        """The line is stopping: open wallboards should say goodbye."""
        return self._closed

    def close(self) -> None:
        """Wake every subscriber one last time, with :attr:`closed` set (a web server waits
        for open WebSockets before it stops; they should not make it wait)."""
        self._closed = True
        for event in self._subscribers:
            event.set()

    def _changed(self) -> None:
        for event in self._subscribers:
            event.set()
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        """Signal again when a wrap-up runs out: no fact marks that instant."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        due = self._board.next_change(now)
        if due is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later((due - now).total_seconds(), self._changed)

    # -- the background task -----------------------------------------------------------------

    async def run(self) -> None:
        """Seed the board and the counters, then keep the database's part fresh and seed the
        counters again when due, until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                if self._node is not None:
                    group.create_task(self._follow_other_nodes())
                await self._seed_board()
                periodic = True
                while True:
                    if self._reseed or self._calendar_slot() != self._seeded_slot:
                        await self.seed_counters()
                    await self.refresh(periodic=periodic)
                    await asyncio.sleep(self._min_refresh)
                    periodic = False
                    try:
                        async with asyncio.timeout(self._until_next_wake()):
                            await self._refresh.wait()
                    except TimeoutError:
                        periodic = True
                    self._refresh.clear()
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _calendar_slot(self) -> ShiftSlot:
        return self._reports.calendar.slot_for(self._clock())

    def _until_next_wake(self) -> float:
        """The periodic refresh, or sooner: the next shift's start (seed the counters then),
        or a seed's retry."""
        ends = self._reports.calendar.bounds(self._calendar_slot())[1]
        wait = min(self._refresh_seconds, (ends - self._clock()).total_seconds() + 0.001)
        if self._reseed:
            wait = min(wait, self._seed_retry)
        return max(0.0, wait)

    async def _seed_board(self) -> None:
        failed = False  # said once: a line started during an outage retries until its end
        while True:
            try:
                picture = await self._reports.live_picture()
            except DatabaseUnavailable as exc:
                if not failed:
                    log.warning("wallboard not seeded from the database (%s); retrying every "
                                "%.0f s", exc, self._seed_retry)
                failed = True
                await asyncio.sleep(self._seed_retry)
                continue
            if self._board.seed(picture, node=self._node):
                log.info("wallboard seeded: %d waiting, %d queue members",
                         len(picture.waiting), len(picture.members))
                self._changed()
            return

    async def seed_counters(self) -> bool:
        """Seed the counters from the database's calls of the current operational day, then
        apply again the facts of the journal (tracked before and while the database answered);
        whether it was done: on an outage the counters go on from the facts, and the seed is
        tried again later."""
        async with self._reading:
            slot = self._calendar_slot()
            self._reseed = False
            try:
                # On a cluster node: the clock first, the other nodes' calls are followed from
                # there (a row changed after it may be missing from the seed), with every
                # other node's caller waiting now.
                start = (await self._reports.changed_calls(self._node, None)
                         if self._node is not None else None)
                calls = await self._reports.live_calls(slot.day)
                timeouts = await self._reports.rtp_timeouts()
            except Exception as exc:  # an outage, or a bug: the wallboard must keep going
                if not isinstance(exc, DatabaseUnavailable):
                    log.exception("wallboard counters not seeded")
                elif not self._seed_failing:  # retried every few seconds until it is back
                    log.warning("wallboard counters not seeded from the database (%s); "
                                "retrying every %.0f s", exc, self._seed_retry)
                self._seed_failing = isinstance(exc, DatabaseUnavailable)
                self._reseed = True
                return False
            self._seed_failing = False
            self._counters.seed(slot.day, calls, timeouts)
            self._counters.apply(self._journal)
            self._seeded_slot = slot
            if start is not None:
                self._cursor = start.at
                self._board.follow(start)
        log.info("wallboard counters seeded: %d calls of %s, %d facts applied again",
                 len(calls), slot.day.isoformat(), len(self._journal))
        self._changed()
        return True

    async def _follow_other_nodes(self) -> None:
        """Follow the other cluster nodes' calls until cancelled."""
        while True:
            await asyncio.sleep(self._follow_seconds)
            try:
                await self.follow_other_nodes()
            except Exception:  # a bug in one row must not stop the wallboard for good
                log.exception("wallboard: following the other nodes' calls failed")

    async def follow_other_nodes(self) -> bool:
        """On a cluster node, read the other nodes' calls changed since the last read (less
        the overlap) into the counters; whether it was done (not on a single node, not before
        a seed; on a failure, logged once, the next read covers the missed changes: the
        cursor stays)."""
        async with self._reading:
            node = self._node
            if node is None or self._cursor is None:
                return False  # not seeded yet: the seed reads every node's calls
            try:
                async with asyncio.timeout(max(5.0, 5 * self._follow_seconds)):
                    changed = await self._reports.changed_calls(
                        node, self._cursor - self._follow_overlap)
            except Exception as exc:  # an outage, or a bug: the counters go on from the facts
                if self._following:
                    if isinstance(exc, DatabaseUnavailable | TimeoutError):
                        log.warning("wallboard: other nodes' calls not read (%s); retrying",
                                    str(exc) or "timed out")
                    else:
                        log.exception("wallboard: other nodes' calls not read; retrying")
                self._following = False
                return False
            if not self._following:
                log.info("wallboard: following the other nodes' calls again")
            self._following = True
            moved = [self._counters.follow(row) for row in changed.calls]
            moved.append(self._board.follow(changed))
            self._cursor = changed.at
        if any(moved):  # the overlap reads the same rows again: they move nothing
            self._changed()
        return True

    def node_liveness(self, node: str, alive: bool) -> None:
        """This node's Asterisk reaches cluster node ``node`` again, or no longer does
        (``PeerWatch.on_liveness``): a lost node's waiting callers went with it."""
        if alive:
            self._board.node_back(node)
        elif self._board.node_lost(node):
            log.warning("wallboard: the callers waiting on node %s left the board with it",
                        node)
            self._changed()

    async def refresh(self, *, periodic: bool = False) -> None:
        """Read the operator names, queues' wrap-ups, overdue incidents and call-back backlog
        again (and, if ``periodic``, roll up a few closed shifts for the reports); on an
        outage keep the old ones."""
        began = self._clock()
        try:
            names = await self._reports.operator_names()
            wrapups = await self._reports.queue_wrapups()
            overdue = await self._dispatches.sla_breaches()
            callbacks = await self._callbacks() if self._callbacks is not None else None
            if periodic:
                await self._reports.roll_up_recent()
        except DatabaseUnavailable as exc:
            if not self._stale:
                log.error("wallboard not refreshed, database unavailable: %s", exc)
            self._stale = True
        except Exception:  # a bug in one refresh must not freeze every wallboard for good
            log.exception("wallboard refresh failed")
            self._stale = True
        else:
            self._names, self._overdue, self._stale = names, overdue, False
            self._board.set_wrapups(wrapups)
            self._backlog, self._refreshed_at = callbacks, began
        self._changed()
