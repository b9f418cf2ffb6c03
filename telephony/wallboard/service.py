"""The wallboard service: the live board from the AMI listener, plus the shift's and day's
counters and the overdue incidents from the database, and a signal to every open wallboard
when any of it changes.

It observes the listener (``AmiListener.observe``): facts move the live board as soon as they
are tracked, before the database has them. The counters are read back from the database, so
facts that change them (a join, an answer, an abandon, an end) ask for a counter refresh only
once they are persisted (``AmiListener.after_persisted``); refreshes are spaced at least
``min_refresh_seconds`` apart, so a surge costs a query a second, not a query a fact. Counters
are refreshed every ``refresh_seconds`` anyway (labels and incidents change without call
facts). At start the board is seeded from the
database, unless the listener's first resync got there first. A database outage keeps the
last counters, marked stale, and is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from telephony.ami.tracker import QueueSnapshot
from telephony.callbacks.model import Backlog
from telephony.calls.facts import (
    CallFact,
    IvrVariableSet,
    IvrVariablesSet,
    OperatorRung,
    OperatorStateChanged,
)
from telephony.db.connection import DatabaseUnavailable
from telephony.incidents.dispatch_service import DispatchService, SlaBreach
from telephony.reports.service import LiveCounters, ReportService
from telephony.wallboard.state import BoardView, LiveBoard

log = logging.getLogger("telephony.wallboard")

# Facts that move only the live board, never the counters.
_LIVE_ONLY = (IvrVariableSet, IvrVariablesSet, OperatorRung, OperatorStateChanged)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WallboardSnapshot:
    """Everything one wallboard shows, at one instant."""

    board: BoardView
    counters: LiveCounters | None  # None until the database has answered once
    counters_stale: bool  # the last refresh failed; ``counters`` are older
    overdue: list[SlaBreach]
    connected: bool  # the listener is logged in to Asterisk: the live part is current
    callbacks: Backlog | None = None  # callers waiting for a call-back (None: not read yet)


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
    ) -> None:
        self._board = board
        self._reports = reports
        self._dispatches = dispatches
        self._connected = connected
        self._callbacks = callbacks
        self._backlog: Backlog | None = None
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._min_refresh = min_refresh_seconds
        self._seed_retry = seed_retry_seconds
        self._counters: LiveCounters | None = None
        self._overdue: list[SlaBreach] = []
        self._stale = False
        self._refresh = asyncio.Event()
        self._subscribers: set[asyncio.Event] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # -- the listener's observer ----------------------------------------------------------

    def recorded(self, facts: Sequence[CallFact]) -> None:
        """Facts the listener just tracked: move the board."""
        self._board.apply(facts)
        self._changed()

    def persisted(self, facts: Sequence[CallFact]) -> None:
        """Facts the database now has (``AmiListener.after_persisted``): refresh the counters
        if they count. Earlier, a refresh could read the day without them."""
        if any(not isinstance(fact, _LIVE_ONLY) for fact in facts):
            self._refresh.set()

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """The listener resynced: take the whole queue picture."""
        self._board.resync(queues)
        self._refresh.set()
        self._changed()

    # -- readers ------------------------------------------------------------------------------

    def snapshot(self) -> WallboardSnapshot:
        """The wallboard now."""
        return WallboardSnapshot(
            board=self._board.view(self._clock()), counters=self._counters,
            counters_stale=self._stale, overdue=list(self._overdue),
            connected=self._connected(), callbacks=self._backlog)

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
        """Seed the board, then keep the counters fresh, until cancelled."""
        try:
            await self._seed()
            self._refresh.set()  # the counters at once, not a refresh period later
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._refresh_seconds):
                        await self._refresh.wait()
                self._refresh.clear()
                await self.refresh()
                await asyncio.sleep(self._min_refresh)
        finally:
            if self._timer is not None:
                self._timer.cancel()

    async def _seed(self) -> None:
        while True:
            try:
                picture = await self._reports.live_picture()
            except DatabaseUnavailable as exc:
                log.warning("wallboard not seeded from the database (%s); retrying", exc)
                await asyncio.sleep(self._seed_retry)
                continue
            if self._board.seed(picture):
                log.info("wallboard seeded: %d waiting, %d queue members",
                         len(picture.waiting), len(picture.members))
                self._changed()
            return

    async def refresh(self) -> None:
        """Read the counters, overdue incidents and call-back backlog again; on an outage
        keep the old ones."""
        try:
            counters = await self._reports.live_counters()
            overdue = await self._dispatches.sla_breaches()
            callbacks = await self._callbacks() if self._callbacks is not None else None
        except DatabaseUnavailable as exc:
            if not self._stale:
                log.error("wallboard counters not refreshed, database unavailable: %s", exc)
            self._stale = True
        except Exception:  # a bug in one refresh must not freeze every wallboard for good
            log.exception("wallboard refresh failed")
            self._stale = True
        else:
            self._counters, self._overdue, self._stale = counters, overdue, False
            self._backlog = callbacks
        self._changed()
