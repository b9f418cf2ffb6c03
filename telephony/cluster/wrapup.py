"""Pure rules for an operator's wrap-up on every node of a cluster (issue 15).

app_queue's ``wrapuptime`` (a queue's setting, ``queue_settings``) keeps an operator from
being offered a call for that many seconds after a queue call ends; but it is counted by the
node that carried the call only (the member's ``lastcall`` lives in that node's app_queue),
and the other nodes see the operator's device ``Not in use`` the moment the call ends: they
would ring them during their wrap-up. So the node whose Asterisk ends a queue call (AMI
``AgentComplete``: Queue, Interface) announces it to every line (``NOTIFY siaga112_wrapup``,
:class:`WrapUp`, with the wrap-up seconds of that call's queue as stored), and each other line
tells its own Asterisk, through Asterisk's own distributed device state
(res_pjsip_publish_asterisk, the ``siaga112-line`` publication), that the device is ``INUSE``
under an entity id of its own (:data:`WRAPUP_EID`), and ``UNKNOWN`` once the seconds have
passed. ``INUSE`` ranks above every state but busy and ringing in Asterisk's aggregate of a
device's states (main/devicestate.c), so with ``ringinuse = no`` app_queue offers the operator
nothing there meanwhile; ``UNKNOWN`` ranks below every real one, so afterwards the device's
state is again this node's and its peers' own.

Why the seconds of the call's queue: with ``shared_lastcall = yes`` (queues.conf) the node that
carried the call holds the operator in every queue for the wrap-up of the queue of their last
call, which is what a device's state does on the others. Why counted from the announcement's
arrival, not from the call's end on the other machine: no clock is compared across machines;
the announcement arrives within milliseconds, and app_queue counts whole seconds anyway.

:class:`WrapHolds` is a line's book of the wrap-ups it holds on its Asterisk and what it still
has to publish; :mod:`telephony.cluster.wrapup_sync` does the I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from telephony.admin.queues import WRAPUP
from telephony.cluster.members import valid_queue
from telephony.cluster.peers import BUSY_STATE, DEVICE, NO_STATE, entity_id

# Announced by the line whose Asterisk ended the call, heard by every line (its own too).
CHANNEL = "siaga112_wrapup"
# The entity id of every wrap-up a line holds on its Asterisk: no node's (a systemname has no
# space), so a wrap-up never masks nor is masked by a node's own states.
WRAPUP_EID = entity_id("siaga112 wrap-up")
MAX_SECONDS = WRAPUP[1]  # the longest wrap-up an admin may set
# More devices held at once than this are not held (a flood of announcements: the line's
# memory stays bounded; a centre has far fewer operators).
MAX_HELD = 5000

_NODE = r"[a-z0-9][a-z0-9_]{0,31}"  # a systemname (Settings: asterisk_systemname)
_PAYLOAD = re.compile(
    rf"(?P<node>{_NODE}) (?P<device>\S{{1,80}}) (?P<queue>\S{{1,80}}) "
    r"(?P<seconds>[0-9]{1,4}) (?P<ended>[0-9]{9,11}(\.[0-9]{1,6})?)")


@dataclass(frozen=True)
class WrapUp:
    """A queue call that ended at ``node``: its operator's ``device``, its ``queue``, that
    queue's wrap-up ``seconds``, and when it ended there (``ended_at``, AgentComplete's
    Timestamp, seconds since the epoch: only for the figure of how late the news arrived)."""

    node: str
    device: str
    queue: str
    seconds: int
    ended_at: float

    def payload(self) -> str:
        """The notification's text (:func:`parse_wrapup` reads it)."""
        return f"{self.node} {self.device} {self.queue} {self.seconds} {self.ended_at:.6f}"


def parse_wrapup(payload: str) -> WrapUp:
    """The wrap-up a notification announces; :class:`ValueError` (a one-line reason) for
    anything else."""
    found = _PAYLOAD.fullmatch(payload)
    if found is None:
        raise ValueError("not a wrap-up announcement")
    device, queue = found["device"], found["queue"]
    if not DEVICE.fullmatch(device):
        raise ValueError(f"not an operator device: {device!r}")
    if not valid_queue(queue):
        raise ValueError(f"not a queue: {queue!r}")
    seconds = int(found["seconds"])
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"wrap-up of {seconds} s is out of 1-{MAX_SECONDS}")
    return WrapUp(found["node"], device, queue, seconds, float(found["ended"]))


def completed_call(event: Mapping[str, str], node: str, now: float) -> WrapUp | None:
    """The wrap-up an ``AgentComplete`` of this ``node``'s Asterisk starts, its seconds not yet
    known (0: the stored queue settings say, :func:`timed`); it ended at the event's
    Timestamp, else ``now`` (seconds since the epoch). ``None`` if the member is not an
    operator's PJSIP device in a queue (a Local channel member, a malformed event)."""
    device = event.get("Interface", "")
    queue = event.get("Queue", "")
    if not DEVICE.fullmatch(device) or not valid_queue(queue):
        return None
    try:
        ended = float(event.get("Timestamp", ""))
    except ValueError:
        ended = now
    if not math.isfinite(ended) or not 1e9 <= ended < 1e11:
        ended = now
    return WrapUp(node, device, queue, 0, ended)


def left_call(operator: str, node: str, at: float) -> WrapUp | None:
    """The wrap-up an operator's leave of a three-way call on this ``node`` starts at ``at``
    (seconds since the epoch), its queue and seconds not yet known (the database says which
    queue they answered the call in). app_queue ends the member's call when their phone goes
    idle there (``update_status``), so their wrap-up runs from the leave, and the call's
    ``AgentComplete`` at its end starts none. ``None`` if ``operator`` is not a PJSIP device."""
    if not DEVICE.fullmatch(operator):
        return None
    return WrapUp(node, operator, "", 0, at)


def timed(wrap: WrapUp, stored: int | None, default: int) -> WrapUp | None:
    """``wrap`` with its queue's wrap-up seconds: an admin's (``stored``), else the settings'
    ``default`` (as the rendered queues.conf has it); ``None`` when the queue has none (then
    there is nothing to hold anywhere)."""
    seconds = default if stored is None else stored
    if seconds <= 0:
        return None
    return WrapUp(wrap.node, wrap.device, wrap.queue, min(seconds, MAX_SECONDS), wrap.ended_at)


@dataclass(frozen=True)
class Changes:
    """What a line is to publish to its Asterisk now: devices to hold (:data:`BUSY_STATE`)
    and to release (:data:`NO_STATE`), all under :data:`WRAPUP_EID`."""

    hold: tuple[str, ...] = ()
    release: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hold or self.release)

    def states(self) -> list[tuple[str, str]]:
        """(device, state) of every change, holds first."""
        return [*((device, BUSY_STATE) for device in self.hold),
                *((device, NO_STATE) for device in self.release)]


@dataclass
class WrapHolds:
    """The wrap-ups ``node``'s line holds on its own Asterisk, for its ``peers``' calls.

    - :meth:`announced`: a peer's call ended; hold its operator for the queue's seconds from
      ``now`` (a newer call's wrap-up replaces an older one's, as a member's ``lastcall``
      does in app_queue). This node's own calls are its own app_queue's business.
    - :meth:`due`: what to publish now: the holds not yet published, the wrap-ups over.
    - :meth:`failed`: what Asterisk did not take is due again (a hold only while it lasts, a
      release only while no new hold replaced it).
    - :meth:`relearn`: a new AMI session (the line or its Asterisk started again): every
      wrap-up state its Asterisk may still hold is released, but those this line holds now.

    ``now`` is a monotonic clock's, in seconds.
    """

    node: str
    peers: frozenset[str]
    _ends: dict[str, float] = field(default_factory=dict)  # device -> when its hold ends
    _to_hold: set[str] = field(default_factory=set)
    _to_release: set[str] = field(default_factory=set)

    def announced(self, wrap: WrapUp, now: float) -> bool:
        """Hold ``wrap``'s device if a peer's call ended; whether it is held."""
        if wrap.node == self.node or wrap.node not in self.peers:
            return False
        if wrap.device not in self._ends and len(self._ends) >= MAX_HELD:
            return False
        self._ends[wrap.device] = now + wrap.seconds
        self._to_hold.add(wrap.device)
        self._to_release.discard(wrap.device)
        return True

    def due(self, now: float) -> Changes:
        """What to publish now; taken off the book (see :meth:`failed`)."""
        over = [device for device, end in self._ends.items() if end <= now]
        for device in over:
            del self._ends[device]
            self._to_hold.discard(device)
            self._to_release.add(device)
        changes = Changes(tuple(sorted(self._to_hold)), tuple(sorted(self._to_release)))
        self._to_hold.clear()
        self._to_release.clear()
        return changes

    def failed(self, changes: Changes) -> None:
        """``changes`` (of :meth:`due`) that Asterisk did not take: due again."""
        self._to_hold.update(device for device in changes.hold if device in self._ends)
        self._to_release.update(device for device in changes.release
                                if device not in self._ends)

    def relearn(self, devices: Collection[str]) -> None:
        """A new AMI session: every one of ``devices`` (the queues' members) is released, and
        every held one held again (an Asterisk that restarted lost them)."""
        self._to_release.update(device for device in devices
                                if device not in self._ends and DEVICE.fullmatch(device))
        self._to_hold.update(self._ends)

    def next_end(self) -> float | None:
        """When the first hold ends (``None``: none held)."""
        return min(self._ends.values(), default=None)

    def held(self) -> list[str]:
        """The devices held now."""
        return sorted(self._ends)

    def ends_in(self, device: str, now: float) -> float | None:
        """Seconds until ``device``'s hold ends (``None``: not held)."""
        end = self._ends.get(device)
        return None if end is None else max(0.0, end - now)
