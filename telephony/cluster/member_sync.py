"""A cluster node's line keeps its own Asterisk's operator queue members as the database says
(issue 15: either node rings any operator), whichever line an operator or admin used.

- A change (the desk's join, leave, pause, resume, logout, a lost softphone; an admin's new
  skills, a new menu) runs inside :meth:`MemberSync.changing`: this node's Asterisk is first
  brought to the stored memberships of those interfaces (so a pause through this line acts on
  queues joined through the other), the change is made, and the interfaces' memberships as
  this Asterisk then holds them are stored and NOTIFYed (``siaga112_desks``, the interface
  only). A change and a reconciliation never interleave (one lock).
- Every line LISTENs on a connection of its own and, on a notification, reconciles those
  interfaces: QueueStatus, the difference with the stored rows, and QueueAdd/QueueRemove/
  QueuePause/QueuePenalty for that difference only (:mod:`telephony.cluster.members`).
- All interfaces are reconciled at the start, after each AMI login (``FullyBooted``: an
  Asterisk that restarted, or a session lost meanwhile), after the LISTEN connection was
  made again (a database failover drops it, and notifications sent meanwhile are lost), and
  every ``interval`` seconds as a safety net (the LISTEN loop is
  :class:`telephony.cluster.listening.ChannelListener`, shared with the admin's follower).
- A change this line could not store (the database or the AMI session away) is stored
  again before the next reconciliation, which would otherwise take this node back to the
  old rows; unless another line stored that interface meanwhile (its notification), which
  is newer.

Failures (no AMI session, no database) are logged and retried; they never fail a request that
Asterisk carried out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Protocol

import asyncpg

from telephony.admin.errors import ApplyFailed
from telephony.admin.queues import Member, MemberChange
from telephony.cluster.listening import ChannelListener
from telephony.cluster.members import (
    CHANNEL,
    member_changes_to,
    parse_wanted,
    snapshot,
    valid_interface,
)
from telephony.cluster.members_store import DeskMemberRepository
from telephony.db.connection import Database, DatabaseUnavailable

log = logging.getLogger("telephony.cluster.member_sync")

# The LISTEN connection's name in pg_stat_activity.
LISTENER_NAME = "siaga112 desk members"
# More interfaces notified at once than this: reconcile them all instead of keeping a list.
MAX_PENDING = 1000


class QueueMembers(Protocol):
    """This node's Asterisk's queue members (``AsteriskAdmin``)."""

    async def members(self) -> list[Member]:
        """Every queue member (QueueStatus); raises ApplyFailed."""
        ...

    async def change_member(self, change: MemberChange) -> None:
        """Carry out one change; raises ApplyFailed."""
        ...


class MemberSync:
    """See the module's docstring."""

    def __init__(self, database: Database, asterisk: QueueMembers, node: str, *,
                 interval: float = 30.0, retry_seconds: float = 5.0,
                 repository: DeskMemberRepository | None = None) -> None:
        self._database = database
        self._asterisk = asterisk
        self._node = node
        self._retry = retry_seconds
        self._repo = repository or DeskMemberRepository()
        self._lock = asyncio.Lock()
        self._channel = ChannelListener(database, CHANNEL, LISTENER_NAME, self,
                                        interval=interval, retry_seconds=retry_seconds)
        self._everything = True  # at the start: every interface
        self._pending: set[str] = set()
        self._unpublished: set[str] = set()
        self._greeted = False  # no AMI session yet: nothing to reconcile with
        self.rounds = 0  # reconciliations done (tests wait on it)

    # -- the changes made through this line -----------------------------------------------

    @contextlib.asynccontextmanager
    async def changing(self, interfaces: Collection[str]) -> AsyncIterator[None]:
        """Around a change of ``interfaces``' memberships on this node's Asterisk: settle
        them first, store and announce them after (even if the change failed part way:
        what is stored is what Asterisk holds)."""
        chosen = sorted(i for i in interfaces if valid_interface(i))
        async with self._lock:
            if chosen:
                try:
                    await self._reconcile(chosen)
                except (ApplyFailed, DatabaseUnavailable) as exc:
                    log.warning("%s not brought to the cluster's memberships before a change: "
                                "%s", chosen, exc)
            try:
                yield
            finally:
                self._unpublished.update(chosen)
                await self._publish()

    async def _publish(self) -> bool:
        """Store the unpublished interfaces' memberships; whether all were."""
        if not self._unpublished:
            return True
        chosen = sorted(self._unpublished)
        try:
            members = await self._asterisk.members()
            for interface in chosen:
                mine = snapshot(interface, members)
                if await self._database.run(functools.partial(
                        self._repo.publish, interface=interface, members=mine,
                        node=self._node)):
                    log.info("%s's queues stored for the cluster: %s", interface,
                             [(m.queue, m.paused) for m in mine])
                self._unpublished.discard(interface)
        except (ApplyFailed, DatabaseUnavailable) as exc:
            log.error("queue memberships of %s not stored for the other nodes, retrying: %s",
                      chosen, exc)
            self._channel.wake()
            return False
        return True

    # -- the listener's subscriber and the database's notifications ---------------------------

    def booted(self, _event: Mapping[str, str]) -> None:
        """``FullyBooted`` (a new AMI session): reconcile every interface."""
        self._greeted = True
        self.resync()

    def resync(self) -> None:
        """Reconcile every interface soon (a queue a menu followed from another line added
        now exists here: the memberships in it that failed can be made)."""
        self._everything = True
        self._channel.wake()

    def notified(self, payload: str) -> None:
        """Another line stored ``payload``'s memberships (:class:`ChannelListener`)."""
        if not valid_interface(payload):
            log.warning("notification of a bad interface %r ignored", payload[:80])
            return
        # Another line stored this interface since this line failed to: that is newer than
        # anything this line still has to store of it.
        self._unpublished.discard(payload)
        if len(self._pending) >= MAX_PENDING:
            self._everything = True
        else:
            self._pending.add(payload)

    def listening(self) -> None:
        """The LISTEN connection was (re)made: every interface (notifications were lost)."""
        self._everything = True

    # -- the work ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile as described in the module's docstring, until cancelled."""
        await self._channel.run()

    async def round(self) -> bool:
        """One reconciliation (:class:`ChannelListener`): of the notified interfaces, else
        (the safety net's round, or a failure's retry) of every one."""
        if not self._pending and not self._unpublished:
            self._everything = True
        if not self._greeted:
            return True  # the first FullyBooted wakes the loop again
        everything, self._everything = self._everything, False
        pending, self._pending = self._pending, set()
        async with self._lock:
            try:
                if not await self._publish():
                    raise DatabaseUnavailable("this line's changes are not stored yet")
                await self._reconcile(None if everything else sorted(pending))
            except (ApplyFailed, DatabaseUnavailable) as exc:
                log.error("queue members not reconciled with the cluster's, retrying in "
                          "%.0f s: %s", self._retry, exc)
                self._everything = True
                return False
        return True

    async def _reconcile(self, interfaces: Collection[str] | None) -> list[MemberChange]:
        """Bring this Asterisk to the stored memberships of ``interfaces`` (``None``: all)."""

        async def work(connection: asyncpg.Connection) -> dict[str, object]:
            return await self._repo.wanted(connection, interfaces)

        rows = await self._database.run(work)
        wanted = {interface: found for interface, raw in rows.items()
                  if (found := parse_wanted(interface, raw)) is not None}
        self.rounds += 1
        if not wanted:
            return []
        changes = member_changes_to(wanted, await self._asterisk.members())
        done = []
        for change in changes:
            try:
                await self._asterisk.change_member(change)
            except ApplyFailed as exc:  # one refusal (a member gone meanwhile): the others go on
                log.warning("cluster membership of %s in %s not applied: %s",
                            change.interface, change.queue, exc.message)
                continue
            done.append(change)
        if done:
            log.info("queue members brought to the cluster's: %s",
                     [(c.action, c.queue, c.interface) for c in done])
        return done
