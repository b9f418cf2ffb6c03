"""Browser desks whose softphone went away: the line takes them out of their queues.

An operator whose browser closes, crashes or loses its network leaves a queue member whose
phone is gone. Asterisk does not ring an unreachable member (``ringinuse = no``), but the
queue still counts them in, the wallboard shows them logged in and a caller waits for a
desk nobody sits at. Asterisk reports the phone unreachable as a queue member status
``unavailable`` (device state 5): at once when the WebSocket closes (the registration over it
is removed), or when qualify (every 5 s for browsers) goes unanswered.

:class:`~telephony.desks.presence.LostPhones` is the rule, pure: an interface reported
unavailable and not available again within ``grace`` (a reloaded page registers again within a
second or two) is due. The :class:`PhoneWatcher` observes the AMI listener's facts (as the
wallboard does), feeds the rule, and hands each due interface to
:meth:`DeskService.phone_lost`, which acts only on a browser desk: a desk phone that reboots
keeps its operator in the queues (it is not rung while it is down, and rings again once it
registers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from telephony.ami.actions import AmiActionError
from telephony.ami.tracker import QueueSnapshot
from telephony.calls.facts import CallFact, OperatorStateChanged
from telephony.db.connection import DatabaseUnavailable
from telephony.desks.presence import LostPhones

log = logging.getLogger("telephony.desks.watch")

class LostPhoneHandler(Protocol):
    """What is done with a due interface (:meth:`DeskService.phone_lost`)."""

    async def phone_lost(self, interface: str) -> list[str] | None:
        """Take a browser desk out of its queues; ``None`` if nothing was done."""
        ...


class PhoneWatcher:
    """Observes the AMI listener (``AmiListener.observe``) and takes browser desks whose
    softphone went away out of their queues (see the module's docstring)."""

    def __init__(self, desks: LostPhoneHandler, grace: float, *,
                 clock: Callable[[], float] | None = None, retry_seconds: float = 5.0
                 ) -> None:
        self._desks = desks
        self._rule = LostPhones(grace)
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._retry = retry_seconds
        self._wake = asyncio.Event()

    # -- the listener's observer (returns at once) ----------------------------------------------

    def recorded(self, facts: Sequence[CallFact]) -> None:
        """Facts the listener just recorded: the queue members' states move the rule."""
        states = [fact for fact in facts if isinstance(fact, OperatorStateChanged)]
        if states:
            self._rule.seen(states, self._clock())
            self._wake.set()

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """After a (re)connection, every member's state: one unreachable while the line was
        away gets its grace from now."""
        if queues is not None:
            self._rule.seen(queues.members, self._clock())
            self._wake.set()

    # -- the work -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Hand out due interfaces until cancelled."""
        while True:
            wait = self._rule.next_due(self._clock())
            self._wake.clear()
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            for interface in self._rule.due(self._clock()):
                await self._handle(interface)

    async def _handle(self, interface: str) -> None:
        try:
            await self._desks.phone_lost(interface)
        except (AmiActionError, DatabaseUnavailable) as exc:
            log.error("could not take %s out of its queues (its softphone is unreachable): "
                      "%s; trying again in %.0f s", interface, exc, self._retry)
            await asyncio.sleep(self._retry)
            self._rule.retry(interface)
