"""The line's watch over its node's peers: when one dies, its operators are offered calls here
again at once; when it answers again, this node relearns its whole state.

Asterisk qualifies each peer every second (its AOR in ``pjsip_cluster.conf``) and reports the
contact's status on AMI (ContactStatus). On ``Unreachable`` the :class:`PeerWatch` asks this
node's queues for their members (QueueStatus) and PUBLISHes, for each operator device, the
state ``UNKNOWN`` under the dead peer's entity id to this node's own Asterisk, from the node's
own address (the ``siaga112-line`` publication): the dead peer's last "In use" no longer
counts (see :mod:`telephony.cluster.peers` for why Asterisk never drops it by itself). On
``Reachable`` again it reloads res_pjsip_publish_asterisk, whose reload sends every peer a
refresh request, and the peer answers with its whole device state (a peer that restarted
sends its own anyway; one that was only cut off did not know it had to). Either change is also
told to whoever asked (:meth:`PeerWatch.on_liveness`: the wallboard drops a dead peer's
waiting callers).

Events alone are not enough, so every :data:`RECHECK_SECONDS` the watch also looks at every
peer's contact and forgets each dead peer's states again: a forget can fail (its QueueStatus
unanswered, a PUBLISH lost), a ContactStatus can go unseen, and an operator who joins a queue
here after the peer died was never among the devices forgotten, while the dead peer's last
"In use" for their phone still counts. Publishing ``UNKNOWN`` again changes nothing where it
was taken, so the recheck is harmless when all went well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from telephony.ami.actions import AmiActionError, AmiListActions
from telephony.ami.originate import printable
from telephony.cluster.peers import (
    DEVICE,
    NO_STATE,
    PeerLiveness,
    PeerMove,
    entity_id,
    peer_aor,
)
from telephony.cluster.publish import DeviceState, publish_states
from telephony.settings import Settings

log = logging.getLogger("telephony.cluster.watch")

CONTACT_STATUS = "ContactStatus"
FULLY_BOOTED = "FullyBooted"  # also sent to the line at every AMI login
PUBLISH_MODULE = "res_pjsip_publish_asterisk.so"
# Between two looks at every peer's contact and forgets of the dead ones' states (see the
# module's docstring): an operator wrongly held busy here is offered calls within this.
RECHECK_SECONDS = 5.0


class PeerWatch:
    """Subscribed to the AMI listener's ContactStatus events (see the module's docstring)."""

    def __init__(self, ami: AmiListActions, *, peers: Sequence[str], own_host: str,
                 sip_port: int, reply_timeout: float = 1.0,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._ami = ami
        self._recheck_seconds = recheck_seconds
        self._liveness = PeerLiveness(frozenset(peers))
        self._own_host = own_host.strip("[]")
        self._sip_port = sip_port
        self._reply_timeout = reply_timeout
        # (move, peer), or None: look at every peer's contact now.
        self._moves: asyncio.Queue[tuple[PeerMove, str] | None] = asyncio.Queue()
        self._liveness_hooks: list[Callable[[str, bool], None]] = []

    @classmethod
    def from_settings(cls, ami: AmiListActions, settings: Settings) -> PeerWatch | None:
        """The watch of this node's peers; None for a single node."""
        me = settings.cluster_self
        if me is None or not settings.cluster_peers:
            return None
        return cls(ami, peers=[peer.name for peer in settings.cluster_peers], own_host=me.host,
                   sip_port=me.sip_port)

    def contact_status(self, event: Mapping[str, Any]) -> None:
        """A ContactStatus event (runs inside the listener's data callback: queue, return)."""
        aor = printable(event.get("AOR"))
        self._seen(aor, printable(event.get("ContactStatus")))

    def logged_in(self, event: Mapping[str, Any]) -> None:
        """FullyBooted, at every AMI login: a peer may have died while the line was away (no
        ContactStatus then), so every peer's contact is looked at once."""
        self._moves.put_nowait(None)

    @property
    def peers(self) -> frozenset[str]:
        """The peer nodes watched."""
        return self._liveness.peers

    def alive(self, peer: str) -> bool:
        """Whether ``peer`` answers this node's qualify (so far as the last status said; a
        peer is alive until one says otherwise). A plain read: safe from another thread."""
        return peer not in self._liveness.dead

    def on_liveness(self, hook: Callable[[str, bool], None]) -> None:
        """Also call ``hook(peer, alive)`` when a peer dies or answers again (at once, before
        this node's Asterisk is told; it must return at once)."""
        self._liveness_hooks.append(hook)

    def _seen(self, aor: str, status: str) -> None:
        move = self._liveness.seen(aor, status)
        if move is not None:
            peer = aor.removeprefix("peer-")
            self._moves.put_nowait((move, peer))
            for hook in self._liveness_hooks:
                try:
                    hook(peer, move is PeerMove.RELEARN)
                except Exception:  # one hook's bug must not stop the watch
                    log.exception("peer node %s: a liveness hook failed", peer)

    async def run(self) -> None:
        """Forever: act on each peer's death and return, and recheck them all every
        ``recheck_seconds``."""
        next_recheck = time.monotonic() + self._recheck_seconds
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_recheck - time.monotonic())):
                    item = await self._moves.get()
            except TimeoutError:
                await self.recheck()
                next_recheck = time.monotonic() + self._recheck_seconds
                continue
            if item is None:
                try:
                    await self.look()
                except AmiActionError as exc:
                    log.error("could not read the peer nodes' contacts: %s", exc)
                continue
            move, peer = item
            try:
                if move is PeerMove.FORGET:
                    await self.forget(peer)
                else:
                    await self.relearn(peer)
            except (AmiActionError, OSError) as exc:
                log.error("peer node %s: could not %s its device state: %s", peer,
                          move.value, exc)

    async def recheck(self) -> None:
        """Every peer's contact looked at again (a death or return seen here is acted on as
        the events' are), and the states of each peer dead before and since forgotten again,
        quietly unless that finds something to say."""
        dead = set(self._liveness.dead)
        try:
            await self.look()
        except AmiActionError as exc:
            log.error("could not read the peer nodes' contacts: %s", exc)
        for peer in sorted(dead & self._liveness.dead):
            try:
                await self.forget(peer, again=True)
            except (AmiActionError, OSError) as exc:
                log.error("peer node %s: could not forget its device state again: %s", peer,
                          exc)

    async def look(self) -> None:
        """Every peer's contact status now: its endpoint's ContactStatusDetail (AOR, Status).

        Not PJSIPShowContacts: it lists only contacts that registered, never a peer's
        (configured on its AOR), and answers "No Contacts found" when no phone registered
        at this node (a cluster's phones register at the front): every recheck then failed,
        logging an error every few seconds, and no dead peer was ever found by one.
        A peer that cannot be looked at does not keep the others from being looked at."""
        failures = []
        for peer in sorted(self._liveness.peers):
            try:
                details = await self._ami.send_list_action(
                    {"Action": "PJSIPShowEndpoint", "Endpoint": peer_aor(peer)})
            except AmiActionError as exc:
                failures.append(f"{peer}: {exc.message}")
                continue
            for detail in details:
                if detail.get("Event") == "ContactStatusDetail":
                    self._seen(printable(detail.get("AOR")), printable(detail.get("Status")))
        if failures:
            raise AmiActionError("; ".join(failures))

    async def forget(self, peer: str, *, again: bool = False) -> int:
        """Make this node's Asterisk forget ``peer``'s states of every queue member's device;
        the number of devices it took. ``again``: a recheck's, logged only if a device's
        PUBLISH went unanswered."""
        started = time.monotonic()
        devices = await member_devices(self._ami)
        eid = entity_id(peer)
        taken = sum(await asyncio.to_thread(
            publish_states, self._own_host, self._sip_port,
            [DeviceState(device, NO_STATE, eid) for device in devices],
            reply_timeout=self._reply_timeout))
        if again and taken == len(devices):
            return taken
        log.warning("peer node %s unreachable: its device states of %d operators no longer "
                    "count here (%d taken, %.0f ms)%s", peer, len(devices), taken,
                    (time.monotonic() - started) * 1000, " (again)" if again else "")
        return taken

    async def relearn(self, peer: str) -> None:
        """Ask every peer (``peer`` among them) for its whole device state again."""
        await self._ami.send_action({"Action": "ModuleLoad", "LoadType": "reload",
                                     "Module": PUBLISH_MODULE})
        log.warning("peer node %s reachable again: asked for its device state", peer)


async def member_devices(ami: AmiListActions) -> list[str]:
    """The operator devices (``PJSIP/...`` state interfaces) of every member of this node's
    queues (QueueStatus); raises :class:`AmiActionError`."""
    members = await ami.send_list_action({"Action": "QueueStatus"})
    return sorted({device for event in members if event.get("Event") == "QueueMember"
                   and DEVICE.fullmatch(device := printable(
                       event.get("StateInterface") or event.get("Location")
                       or event.get("Interface")))})
