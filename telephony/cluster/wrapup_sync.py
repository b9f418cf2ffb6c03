"""A cluster node's line holds an operator's wrap-up after a call on another node, so that
its Asterisk does not ring them during it (the rules and why: :mod:`telephony.cluster.wrapup`).

- **Announcing.** When this node's Asterisk ends a queue call (AMI ``AgentComplete``), the
  line reads the queue's stored wrap-up seconds and sends ``NOTIFY siaga112_wrapup`` (node,
  device, queue, seconds, when the call ended). A queue without wrap-up announces nothing.
  An operator who leaves a three-way call with an agency ("Keluar", or hanging up in it: the
  transfer service's ``on_left``) has ended their call for this node's app_queue then (their
  phone went idle: ``update_status``), though the caller talks on with the agency: their
  wrap-up is announced at the leave, with the queue they answered the call in, and the
  call's ``AgentComplete`` at its end announces none (app_queue starts none then either).
  Before, the other nodes offered them their callers at once after the leave, and held them
  after the call's end instead.
- **Holding.** Every line LISTENs on a connection of its own
  (:class:`~telephony.cluster.listening.ChannelListener`); a peer's announcement makes it
  PUBLISH the device ``INUSE`` under the wrap-up entity id to its own Asterisk (the
  ``siaga112-line`` publication, from the node's own address), and ``UNKNOWN`` once the
  seconds have passed, counted from the arrival. Its own announcements it ignores: its own
  app_queue counts its calls' wrap-up.
- **Starting again.** At every AMI login (``FullyBooted``: the line or its Asterisk started
  again) the wrap-up state of every queue member's device is released, but those held now (a
  line killed during a wrap-up left its Asterisk holding it), and those held are published
  again (an Asterisk that restarted forgot them). A line that stops releases what it holds.

What this cannot do: an announcement lost (no database, the LISTEN connection being made
again) leaves that wrap-up to the node of the call alone, as before; a line killed during a
wrap-up leaves the operator held on its Asterisk until it starts again (its ``FullyBooted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from telephony.ami.actions import AmiActionError, AmiListActions
from telephony.ami.originate import printable
from telephony.calls.facts import OperatorLeft
from telephony.cluster.listening import ChannelListener
from telephony.cluster.members import valid_queue
from telephony.cluster.publish import DeviceState, publish_states
from telephony.cluster.watch import member_devices
from telephony.cluster.wrapup import (
    CHANNEL,
    WRAPUP_EID,
    Changes,
    WrapHolds,
    WrapUp,
    completed_call,
    left_call,
    parse_wrapup,
    timed,
)
from telephony.cluster.wrapup_store import WrapUpRepository
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.settings import Settings

log = logging.getLogger("telephony.cluster.wrapup")

AGENT_COMPLETE = "AgentComplete"
# The LISTEN connection's name in pg_stat_activity.
LISTENER_NAME = "siaga112 wrap-ups"
# Calls ended and not yet announced, at most (the database away): the oldest are dropped.
MAX_WAITING = 1000


@dataclass(frozen=True)
class _Ended:
    """A queue call's end on this node, to announce: its ``wrap`` (seconds not yet read),
    the call, and whether it is the operator's leave of its three-way call (``left``: its
    queue not yet read either) rather than Asterisk's ``AgentComplete``."""

    wrap: WrapUp
    call_id: str
    left: bool = False


@dataclass(frozen=True)
class _Arrival:
    """A held wrap-up as it arrived (for the log's figures)."""

    wrap: WrapUp
    monotonic: float


class WrapUpSync:
    """See the module's docstring."""

    def __init__(self, database: Database, ami: AmiListActions, *, node: str,
                 peers: Sequence[str], own_host: str, sip_port: int, default_seconds: int,
                 interval: float = 30.0, retry_seconds: float = 5.0,
                 reply_timeout: float = 1.0, repository: WrapUpRepository | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._ami = ami
        self._node = node
        self._own_host = own_host
        self._sip_port = sip_port
        self._default = default_seconds
        self._retry = retry_seconds
        self._reply_timeout = reply_timeout
        self._repo = repository or WrapUpRepository()
        self._clock = clock
        self._wall = wall_clock
        self._holds = WrapHolds(node, frozenset(peers))
        self._arrivals: dict[str, _Arrival] = {}
        self._ended: asyncio.Queue[_Ended] = asyncio.Queue(MAX_WAITING)
        self._work = asyncio.Event()
        self._relearn = False
        self._channel = ChannelListener(database, CHANNEL, LISTENER_NAME, self,
                                        interval=interval, retry_seconds=retry_seconds)

    @classmethod
    def from_settings(cls, ami: AmiListActions, database: Database, settings: Settings
                      ) -> WrapUpSync | None:
        """This node's wrap-up sync; ``None`` for a single node."""
        me = settings.cluster_self
        if me is None or not settings.cluster_peers:
            return None
        return cls(database, ami, node=me.name,
                   peers=[peer.name for peer in settings.cluster_peers], own_host=me.host,
                   sip_port=me.sip_port, default_seconds=settings.queue_wrapup_seconds)

    # -- the AMI listener's subscribers (on the main loop: note, return) -------------------

    def agent_complete(self, event: Mapping[str, Any]) -> None:
        """``AgentComplete``: a queue call this node carried ended; announce its wrap-up."""
        fields = {name: printable(event.get(name)) for name in ("Interface", "Queue",
                                                               "Timestamp", "Uniqueid",
                                                               "DestLinkedid")}
        wrap = completed_call(fields, self._node, self._wall())
        if wrap is None:
            log.debug("AgentComplete of %r in %r: no operator's wrap-up to share",
                      fields["Interface"], fields["Queue"])
            return
        # The caller's Uniqueid is the call's id (without a caller snapshot, the operator
        # leg's DestLinkedid is: telephony/ami/tracker.py).
        self._put(_Ended(wrap, fields["Uniqueid"] or fields["DestLinkedid"]))

    def left(self, fact: OperatorLeft) -> None:
        """The transfer service recorded an operator's leave of a three-way call this node
        carries: announce their wrap-up from it."""
        wrap = left_call(fact.operator, self._node, fact.at.timestamp())
        if wrap is not None:
            self._put(_Ended(wrap, fact.call_id, left=True))

    def _put(self, ended: _Ended) -> None:
        if self._ended.full():
            dropped = self._ended.get_nowait()
            log.error("wrap-up of %s after call %s not announced: too many waiting",
                      dropped.wrap.device, dropped.call_id)
        self._ended.put_nowait(ended)

    def booted(self, _event: Mapping[str, Any]) -> None:
        """``FullyBooted`` (a new AMI session): release what a previous line left held."""
        self._relearn = True
        self._work.set()

    # -- the channel's follower (ChannelListener) ------------------------------------------

    def notified(self, payload: str) -> None:
        """A line announced a wrap-up (runs inside asyncpg's callback: note it, return)."""
        try:
            wrap = parse_wrapup(payload)
        except ValueError as exc:
            log.warning("wrap-up notification %r ignored: %s", payload[:120], exc)
            return
        if self._holds.announced(wrap, self._clock()):
            self._arrivals[wrap.device] = _Arrival(wrap, self._clock())
            self._work.set()
        elif wrap.node != self._node:
            log.warning("wrap-up notification from %r ignored: not a peer node (or too many "
                        "held)", wrap.node)

    def listening(self) -> None:
        """The LISTEN connection was (re)made: what was announced meanwhile is lost, and those
        wrap-ups are the node of the call's alone (nothing stored to catch up with)."""

    async def round(self) -> bool:
        """Nothing to bring to a stored state: the holds are published as they come."""
        return True

    # -- the work ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen, announce and hold, until cancelled; then release what is held."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._channel.run())
                tasks.create_task(self._announcing())
                tasks.create_task(self._holding())
        finally:
            held = self._holds.held()
            if held:
                with contextlib.suppress(OSError, ValueError):
                    await asyncio.to_thread(self._publish, Changes(release=tuple(held)))
                log.info("wrap-ups released on stopping: %s", held)

    async def _announcing(self) -> None:
        while True:
            ended = await self._ended.get()
            try:
                sent = await self._database.run(functools.partial(self._announce, ended))
            except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
                log.error("wrap-up of %s after call %s not announced to the other nodes (they "
                          "may ring them meanwhile): %s", ended.wrap.device, ended.call_id, exc)
                continue
            if sent is not None:
                log.info("wrap-up of %s after %s in %s announced: %d s", sent.device,
                         "their leave of a three-way call" if ended.left else "its call",
                         sent.queue, sent.seconds)

    async def _announce(self, ended: _Ended, connection: asyncpg.Connection
                        ) -> WrapUp | None:
        wrap = ended.wrap
        if ended.left:
            queue = await self._repo.answered_queue(connection, ended.call_id, wrap.device)
            if queue is None or not valid_queue(queue):
                log.warning("leave of call %s by %s: the queue it was answered in is not "
                            "known; no wrap-up announced", ended.call_id, wrap.device)
                return None
            wrap = replace(wrap, queue=queue)
        elif ended.call_id and await self._repo.left(connection, ended.call_id, wrap.device):
            log.info("call %s ended: %s left its three-way call before, where their wrap-up "
                     "began; none announced now", ended.call_id, wrap.device)
            return None
        sent = timed(wrap, await self._repo.wrapup_seconds(connection, wrap.queue),
                     self._default)
        if sent is not None:
            await self._repo.announce(connection, sent)
        return sent

    async def _holding(self) -> None:
        while True:
            end = self._holds.next_end()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if end is None
                                           else max(0.0, end - self._clock())):
                    await self._work.wait()
            self._work.clear()
            if self._relearn:
                self._relearn = False
                try:
                    self._holds.relearn(await member_devices(self._ami))
                except AmiActionError as exc:
                    log.error("wrap-up states left by an earlier line not released yet, again "
                              "in %.0f s: %s", self._retry, exc)
                    self._relearn = True
                    self._later(self._retry)
            changes = self._holds.due(self._clock())
            if not changes:
                continue
            try:
                taken = await asyncio.to_thread(self._publish, changes)
            except (OSError, ValueError) as exc:
                taken = [False] * len(changes.states())
                log.error("wrap-up states not published: %s", exc)
            if not all(taken):
                states = changes.states()
                missed = {device for (device, _), ok in zip(states, taken, strict=True)
                          if not ok}
                failed = Changes(tuple(d for d in changes.hold if d in missed),
                                 tuple(d for d in changes.release if d in missed))
                self._holds.failed(failed)
                log.error("wrap-up states not taken by Asterisk, again in %.0f s: held %s, "
                          "released %s", self._retry, list(failed.hold), list(failed.release))
                self._later(self._retry)
            self._report(changes, taken)

    def _later(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self._work.set)

    def _publish(self, changes: Changes) -> list[bool]:
        return publish_states(self._own_host, self._sip_port,
                              [DeviceState(device, state, WRAPUP_EID)
                               for device, state in changes.states()],
                              reply_timeout=self._reply_timeout)

    def _report(self, changes: Changes, taken: list[bool]) -> None:
        now, wall = self._clock(), self._wall()
        done = dict(zip((device for device, _ in changes.states()), taken, strict=True))
        for device in changes.hold:
            arrival = self._arrivals.get(device)
            if done[device] and arrival is not None:
                log.info("wrap-up of %s after its call on %s in %s held here for %d s: %.0f ms "
                         "after the call ended there (%.0f ms after the announcement came)",
                         device, arrival.wrap.node, arrival.wrap.queue, arrival.wrap.seconds,
                         (wall - arrival.wrap.ended_at) * 1000,
                         (now - arrival.monotonic) * 1000)
        released = [device for device in changes.release if done[device]]
        for device in released:
            self._arrivals.pop(device, None)
        if released:
            log.info("wrap-up state released here: %s", ", ".join(released[:20])
                     + (f" and {len(released) - 20} more" if len(released) > 20 else ""))
