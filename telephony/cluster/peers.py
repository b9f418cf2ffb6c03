"""Pure rules for a node's peers (``Settings.cluster_peers``): their entity ids, the AOR this
node qualifies each by, when a peer counts as dead or back, and the PUBLISH that tells this
node's Asterisk that a dead peer has no calls.

Why the line has to say it: Asterisk's distributed device state over SIP
(res_pjsip_publish_asterisk) caches each peer's last published state of every device under the
peer's entity id, and nothing removes it. A PUBLISH without a body (a refresh or a removal) is
ignored by the module, it registers no ``publish_expire`` handler (so a publication that runs
out changes nothing), and ``ast_device_state_clear_cache`` clears only this node's own entity
id. An operator whom a dead peer last published "In use" therefore stays "In use" in this
node's queues until that peer publishes again, possibly never. The cure uses the same module:
a devicestate PUBLISH whose body names the dead peer's entity id and the state ``UNKNOWN``,
which ranks below every real state in Asterisk's aggregate of a device's states, so the
operator's state here is again this node's own and the live peers' (and where this node has
none at all, UNKNOWN is one app_queue rings, as a peer that came back knowing nothing would
say; ``INVALID`` would rank lower still, but app_queue never rings it).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from enum import Enum

# The line's own endpoint and publication resource at its node's Asterisk
# (pjsip_cluster.conf): the only sender this node takes a dead peer's states from but the peer.
LINE_PUBLISHER = "siaga112-line"
# A device the PUBLISH may name: an operator's PJSIP endpoint, and nothing spliced.
DEVICE = re.compile(r"PJSIP/[A-Za-z0-9_.+-]{1,64}")
# A state that adds nothing to a device's aggregate but for nothing else (main/devicestate.c:
# rank 1 of 0..8, below UNAVAILABLE and NOT_INUSE).
NO_STATE = "UNKNOWN"
# A state that makes app_queue take the device for busy (``ringinuse = no``), whatever the
# other entity ids say (it ranks above NOT_INUSE and UNKNOWN in the aggregate): an operator's
# wrap-up after a call on another node (telephony/cluster/wrapup.py).
BUSY_STATE = "INUSE"
PUBLISHED_STATES = frozenset({NO_STATE, BUSY_STATE})
# DEVICE_STATE() values of a phone on a call (main/devicestate.c's names), as a node's
# Asterisk aggregates them from every node's: a phone on a call through another node is one.
IN_USE_STATES = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
RINGING_STATE = "RINGING"
# An entity id as Asterisk writes one (six bytes, hex, colons).
EID = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def entity_id(systemname: str) -> str:
    """An Asterisk entity id (``asterisk.conf`` ``entityid``) of the node's own: two nodes
    must not share one, and Asterisk's default, the first network card's MAC address, is the
    same for every node on one host or cloned image. A locally administered unicast address
    made from the name: the same node gets the same id on every start, and every other node
    knows it from the name alone."""
    digest = bytearray(hashlib.sha256(systemname.encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{byte:02x}" for byte in digest)


def peer_aor(name: str) -> str:
    """The AOR (and endpoint) of peer node ``name`` at this node: qualified every second, its
    contact's status (AMI ContactStatus) says whether the peer answers."""
    return f"peer-{name}"


def peer_of_aor(aor: str) -> str | None:
    """The peer an AOR of :func:`peer_aor` stands for, else None."""
    name = aor.removeprefix("peer-")
    return name if name != aor and name else None


class PeerMove(Enum):
    """What the line does when a peer's liveness changes."""

    FORGET = "forget"  # it died: its cached states count for nothing here
    RELEARN = "relearn"  # it answers again: ask it for its whole state


@dataclass
class PeerLiveness:
    """Each peer's last known liveness, from its contact's status. A peer is dead once its
    qualify goes unanswered (``Unreachable``); alive again once it answers (``Reachable``).
    Only changes move anything: the first ``Reachable`` of a peer that never died is not a
    return."""

    peers: frozenset[str]
    dead: set[str] = field(default_factory=set)

    def seen(self, aor: str, status: str) -> PeerMove | None:
        """The move for a ContactStatus of ``aor`` (None: nothing to do)."""
        name = peer_of_aor(aor)
        if name is None or name not in self.peers:
            return None
        if status == "Unreachable" and name not in self.dead:
            self.dead.add(name)
            return PeerMove.FORGET
        if status == "Reachable" and name in self.dead:
            self.dead.discard(name)
            return PeerMove.RELEARN
        return None


def forget_request(*, device: str, peer: str, target: tuple[str, int],
                   source: tuple[str, int], expires: int = 60) -> bytes:
    """The SIP PUBLISH that sets ``device``'s state under ``peer``'s entity id to
    :data:`NO_STATE` (:func:`state_request`)."""
    return state_request(device=device, state=NO_STATE, eid=entity_id(peer), target=target,
                         source=source, expires=expires)


def state_request(*, device: str, state: str, eid: str, target: tuple[str, int],
                  source: tuple[str, int], expires: int = 60) -> bytes:
    """The SIP PUBLISH (RFC 3903, event ``asterisk-devicestate``, res_pjsip_publish_asterisk's
    JSON body) that sets ``device``'s state under entity id ``eid`` to ``state`` (one of
    :data:`PUBLISHED_STATES`), to this node's Asterisk at ``target`` from the line's socket at
    ``source``. The module takes the entity id from the body, whoever sends it: the
    ``siaga112-line`` publication only accepts this node's own address."""
    if not DEVICE.fullmatch(device):
        raise ValueError(f"not an operator device: {device!r}")
    if state not in PUBLISHED_STATES:
        raise ValueError(f"not a state the line publishes: {state!r}")
    if not EID.fullmatch(eid):
        raise ValueError(f"not an entity id: {eid!r}")
    body = json.dumps({"type": "devicestate", "device": device, "state": state,
                       "cachable": 1, "eid": eid}, separators=(",", ":"))
    host, port = target
    src_host, src_port = source
    tag = uuid.uuid4().hex
    lines = [
        f"PUBLISH sip:{LINE_PUBLISHER}@{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {src_host}:{src_port};branch=z9hG4bK{tag[:20]};rport",
        "Max-Forwards: 70",
        f"From: <sip:{LINE_PUBLISHER}@{src_host}>;tag={tag[20:]}",
        f"To: <sip:{LINE_PUBLISHER}@{host}>",
        f"Call-ID: {tag}@{src_host}",
        "CSeq: 1 PUBLISH",
        "Event: asterisk-devicestate",
        f"Expires: {expires}",
        "Content-Type: application/json",
        f"Content-Length: {len(body.encode())}",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def call_id_of(reply: bytes) -> str:
    """The Call-ID of a SIP message ("" if none)."""
    for line in reply.decode(errors="replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("call-id", "i"):
            return value.strip()
    return ""
