"""What every cluster follower shares (telephony/cluster/member_sync.py: operators' queue
members; telephony/cluster/admin_sync.py: an admin's queues, menus and settings): a change is
stored and NOTIFYed on a channel; every line LISTENs on it, on a connection of its own, and
runs its follower's round

- on a notification (the follower takes the payload first: :meth:`Follower.notified`),
- when the LISTEN connection was made (at the start, and again after it broke: a database
  failover drops it, and notifications sent meanwhile are lost: :meth:`Follower.listening`),
- whenever the follower asks (:meth:`ChannelListener.wake`: an AMI login, a retry),
- and every ``interval`` seconds as a safety net (the round is woken with nothing notified).

A round that fails is run again after ``retry_seconds``. The database is the source of truth:
a round brings this node to what is stored, idempotently, so a round too many costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import asyncpg

from telephony.db.connection import TRANSIENT_ERRORS, Database, DatabaseUnavailable

log = logging.getLogger("telephony.cluster")

CHECK_SECONDS = 5.0  # how long a LISTEN connection may take to answer its safety-net probe


class Follower(Protocol):
    """What a :class:`ChannelListener` runs."""

    def notified(self, payload: str) -> None:
        """A notification on the channel (runs inside asyncpg's callback: note it, return)."""
        ...

    def listening(self) -> None:
        """The LISTEN connection was (re)made: what was notified before may be lost."""
        ...

    async def round(self) -> bool:
        """Bring this node to the stored state; ``False``: failed, run again after a while."""
        ...


class ChannelListener:
    """LISTENs on ``channel`` and runs ``follower``'s rounds (see the module's docstring)."""

    def __init__(self, database: Database, channel: str, name: str, follower: Follower, *,
                 interval: float, retry_seconds: float) -> None:
        self._database = database
        self._channel = channel
        self._name = name  # the LISTEN connection's name in pg_stat_activity
        self._follower = follower
        self.interval = interval
        self._retry = retry_seconds
        self._wake = asyncio.Event()
        self._listening: asyncpg.Connection | None = None

    def wake(self) -> None:
        """Run a round soon (callable from any callback on this loop)."""
        self._wake.set()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: object
                  ) -> None:
        if not isinstance(payload, str):
            log.warning("%s: notification without a text payload ignored", self._name)
            return
        self._follower.notified(payload)
        self._wake.set()

    def _dropped(self, _connection: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Listen and run rounds, until cancelled."""
        try:
            while True:
                await self._listen()
                try:
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
                except TimeoutError:
                    await self._check_listening()
                self._wake.clear()
                if not await self._follower.round():
                    await asyncio.sleep(self._retry)
                    self._wake.set()
        finally:
            await self._unlisten()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own; made again when it broke."""
        connection = self._listening
        if connection is not None and not connection.is_closed():
            return
        self._listening = None
        try:
            connection = await self._database.connect(self._name)
        except DatabaseUnavailable as exc:
            log.warning("%s: cannot LISTEN (a round every %.0f s meanwhile): %s", self._name,
                        self.interval, exc)
            return
        try:
            connection.add_termination_listener(self._dropped)
            await connection.add_listener(self._channel, self._notified)
        except TRANSIENT_ERRORS as exc:
            log.warning("%s: cannot LISTEN: %s", self._name, exc)
            with contextlib.suppress(*TRANSIENT_ERRORS):
                connection.terminate()
            return
        self._listening = connection
        self._follower.listening()
        self._wake.set()

    async def _check_listening(self) -> None:
        """A LISTEN connection whose server vanished without a word (a machine lost) is
        noticed by no one: asked once each safety-net round, dropped if it does not answer
        (made again by :meth:`_listen`)."""
        connection = self._listening
        if connection is None or connection.is_closed():
            return
        try:
            await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=CHECK_SECONDS)
        except TRANSIENT_ERRORS as exc:
            log.warning("%s: the LISTEN connection does not answer (%s); connecting again",
                        self._name, exc)
            self._listening = None
            connection.terminate()

    async def _unlisten(self) -> None:
        connection, self._listening = self._listening, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await asyncio.wait_for(connection.close(), timeout=5)
