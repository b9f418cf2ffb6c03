"""The vanish check: calls the database still has open that Asterisk no longer has.

The resync on every AMI login declares vanished the calls the store has open and Asterisk
no longer has; but it asks the store once, and if PostgreSQL is down at that moment (``serve``
restarted during a database outage) it sees no open call at all, and calls whose hang-up was
missed would stay open for good. :class:`VanishWatch` therefore asks again: every
``interval`` seconds, and while the store cannot answer, every ``retry`` seconds until it
can (so within ``retry`` of the database coming back). Asterisk is asked only when the store
has open calls, after the store (a call it lists had started before Asterisk's answer, so if
Asterisk no longer has it, it ended). The listener decides, in order with the events it
tracks (:meth:`~telephony.ami.listener.AmiListener.vanish_check`). Nothing is checked until
the AMI session's own resync has run: its backfill ends properly, from the queue_log, the calls
that ended while the line was away, and those must not vanish first. When the last resync could
not read the store at all, the watch asks for a whole resync instead, once the store answers:
that also runs the backfill from the queue_log the failed one skipped (telephony/calls/backfill.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from telephony.ami.actions import AmiActionError

log = logging.getLogger("telephony.ami.vanish")


class VanishCheckPort(Protocol):
    """What the watch needs of the listener."""

    async def send_list_action(self, action: Mapping[str, str]) -> list[Any]:
        """An AMI list action's reply (CoreShowChannels)."""

    def vanish_check(self, channels: Sequence[Any], open_call_ids: Collection[str]
                     ) -> int:
        """Close as vanished the open calls ``channels`` no longer has; how many."""

    @property
    def resynced(self) -> bool:
        """Logged in, and this session's resync (with its backfill) has run."""

    @property
    def resync_incomplete(self) -> bool:
        """The last resync could not read the store."""

    def request_resync(self) -> None:
        """Resync from Asterisk's snapshots (and its queue_log) again."""


class VanishWatch:
    """Runs the vanish check periodically, and as soon as the store answers again."""

    def __init__(self, listener: VanishCheckPort,
                 open_calls: Callable[[], Awaitable[set[str] | None]], *,
                 interval: float, retry: float) -> None:
        self._listener = listener
        self._open_calls = open_calls
        self._interval = interval
        self._retry = retry

    async def check(self) -> bool:
        """One check; False if the store or Asterisk could not answer (try again soon)."""
        if not self._listener.resynced:
            # The session's resync has yet to run its backfill, which ends from the queue_log
            # the calls that ended while the line was away (cause, talk): vanished before it,
            # they would get the worse end and a vanish event after their real end (the
            # first check after a restart ran during the resync's read of the log).
            return False
        open_ids = await self._open_calls()
        if open_ids is None:
            return False
        if self._listener.resync_incomplete:
            log.info("the store answers again: resyncing from Asterisk")
            self._listener.request_resync()
            return False  # look again soon: that resync may be put off again
        if not open_ids:
            return True
        try:
            channels = await self._listener.send_list_action({"Action": "CoreShowChannels"})
        except AmiActionError as exc:
            log.debug("vanish check postponed: %s", exc)
            return False
        self._listener.vanish_check(channels, open_ids)
        return True

    async def run(self) -> None:
        """Check forever (until cancelled)."""
        waiting = False  # the last check could not be made
        while True:
            try:
                done = await self.check()
            except Exception:  # a bug in one check must not end the watch
                log.exception("vanish check failed")
                done = True
            if done and waiting:
                log.info("vanish check made again after the store or AMI came back")
            waiting = not done
            await self._pause(self._interval if done else self._retry)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less once a resync could not read the store (the AMI session
        came back while the database was away): the store may be back long before the next
        period, and that resync's backfill and vanishing wait for the watch to ask again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, self._retry))
            if self._listener.resync_incomplete:
                return
