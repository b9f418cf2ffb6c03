"""The ``OriginateResponse`` events of one service's Originates, applied one at a time.

A service that places calls with an ``Async`` Originate (an operator's call-back, a
supervisor's listening-in) learns how each went only from its ``OriginateResponse``
(``telephony.ami.originate``). The AMI listener hands events over inside its data callback,
which must not wait: :class:`OriginateResponses` keeps the service's own events in a queue
there, and :meth:`OriginateResponses.run` applies them in order from the service's background
task. An event that cannot be applied is logged and the next one goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from telephony.ami.originate import ORIGINATE_RESPONSE, printable
from telephony.db.connection import DatabaseUnavailable

log = logging.getLogger("telephony.ami")

AmiEvent = Mapping[str, Any]


class EventSource(Protocol):
    """What this needs of the AMI listener: its events by name."""

    def subscribe(self, event: str, handler: Callable[[AmiEvent], None]) -> None:
        """Hand every ``event`` to ``handler`` as it arrives."""
        ...


class OriginateResponses:
    """The OriginateResponses whose ActionID ``ours`` accepts, queued as they arrive."""

    def __init__(self, ami: EventSource, ours: Callable[[str], bool]) -> None:
        self._ours = ours
        self._events: asyncio.Queue[AmiEvent] = asyncio.Queue()
        ami.subscribe(ORIGINATE_RESPONSE, self._keep)

    def _keep(self, event: AmiEvent) -> None:
        """Runs inside the listener's data callback: queue, return."""
        if self._ours(printable(event.get("ActionID"))):
            self._events.put_nowait(event)

    async def run(self, apply: Callable[[AmiEvent], Awaitable[object]]) -> None:
        """Forever: ``apply`` each event, in the order Asterisk sent them."""
        while True:
            event = await self._events.get()
            action = printable(event.get("ActionID"))
            try:
                await apply(event)
            except DatabaseUnavailable as exc:
                # What the event would have recorded is lost; the service's own rules bound
                # what that costs (a call-back's leg stops counting as ringing in time).
                log.error("OriginateResponse of %s not recorded, database unavailable: %s",
                          action, exc)
            except Exception:
                log.exception("OriginateResponse of %s not applied", action)
