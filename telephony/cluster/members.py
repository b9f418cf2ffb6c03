"""Operators' queue memberships kept alike on every node of a cluster: the rules (pure).

Each node's Asterisk keeps its own dynamic queue members (QueueAdd), but an operator logs in,
pauses, resumes or logs out through one line only (the one nginx sent the request to), and
an admin changes skills through one line too. So the line that made a change writes the
operator's memberships as its own Asterisk then holds them (:func:`snapshot`) into the
database (``cluster_desk_members``, migration 0027), and every line brings its own Asterisk
to what is stored there (:func:`member_changes_to`): a node rings an operator who logged in
through the other, and stops ringing one who paused or left there.

What the database says is checked before it goes into an AMI action (:func:`parse_wanted`):
the rows are written by lines, but a row is text from a shared database; an interface, a
queue, a penalty, a name or a reason of the wrong shape is dropped with one log line.

Only dynamic members of interfaces with a stored row are touched: a member from queues.conf
(static) and an interface no cluster line ever changed (logged in by hand on one node) are
left as each Asterisk has them, and callers are never touched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ivr.menu import NAME as QUEUE_NAME
from telephony.admin.queues import Member, MemberChange
from telephony.desks.operators import OVERFLOW_QUEUE, OperatorError, check_interface

log = logging.getLogger("telephony.cluster.members")

# The NOTIFY channel of a change; its payload is the interface only (checked, then looked up).
CHANNEL: Final = "siaga112_desks"
MAX_PENALTY: Final = 99
# A member's name goes into QueueAdd's MemberName: printable, no line break, bounded.
_MEMBER_NAME = re.compile(r"[^\x00-\x1f\x7f]{0,80}")
# A pause reason: the desk's codes (break, wrapup, meeting, phone-lost) or an admin's word.
_PAUSE_REASON = re.compile(r"[A-Za-z0-9_.-]{0,40}")


@dataclass(frozen=True)
class WantedMember:
    """One queue an operator's interface is to be a dynamic member of, as on the line that
    last changed it."""

    queue: str
    penalty: int
    name: str
    paused: bool
    pause_reason: str

    def as_json(self) -> dict[str, object]:
        """The row's JSON form (``cluster_desk_members.members`` items)."""
        return {"queue": self.queue, "penalty": self.penalty, "name": self.name,
                "paused": self.paused, "reason": self.pause_reason}


def valid_queue(queue: str) -> bool:
    """Whether ``queue`` has a queue name's shape (a menu's, or the overflow queue)."""
    return queue == OVERFLOW_QUEUE or QUEUE_NAME.fullmatch(queue) is not None


def valid_interface(interface: str) -> bool:
    """Whether ``interface`` is an operator's PJSIP interface (:func:`check_interface`)."""
    try:
        check_interface(interface)
    except OperatorError:
        return False
    return True


def snapshot(interface: str, members: Sequence[Member]) -> list[WantedMember]:
    """``interface``'s dynamic memberships among Asterisk's ``members`` (QueueStatus), by
    queue: what the line that changed them stores."""
    return [WantedMember(m.queue, m.penalty, m.name, m.paused,
                         m.pause_reason if m.paused else "")
            for m in sorted(members, key=lambda m: m.queue)
            if m.interface == interface and m.dynamic]


def parse_wanted(interface: str, raw: object) -> list[WantedMember] | None:
    """A stored row's memberships, each checked; ``None`` (one log line) if the interface is
    not an operator's or the value is not a list. An item of the wrong shape is left out
    (one log line), the others kept."""
    if not valid_interface(interface):
        log.warning("cluster desk row of a bad interface %r ignored", interface[:80])
        return None
    if not isinstance(raw, list):
        log.warning("cluster desk row of %s is not a list; ignored", interface)
        return None
    wanted: dict[str, WantedMember] = {}
    for item in raw:
        member = _member(item)
        if member is None or member.queue in wanted:
            log.warning("cluster desk row of %s: bad or repeated member %r left out",
                        interface, str(item)[:120])
            continue
        wanted[member.queue] = member
    return [wanted[queue] for queue in sorted(wanted)]


def _member(item: object) -> WantedMember | None:
    if not isinstance(item, Mapping):
        return None
    fields: Mapping[str, Any] = item
    queue, penalty, name = fields.get("queue"), fields.get("penalty"), fields.get("name", "")
    paused, reason = fields.get("paused", False), fields.get("reason", "")
    if not (isinstance(queue, str) and valid_queue(queue)):
        return None
    if isinstance(penalty, bool) or not isinstance(penalty, int) or not (
            0 <= penalty <= MAX_PENALTY):
        return None
    if not (isinstance(name, str) and _MEMBER_NAME.fullmatch(name)):
        return None
    if not (isinstance(paused, bool) and isinstance(reason, str)
            and _PAUSE_REASON.fullmatch(reason)):
        return None
    return WantedMember(queue, penalty, name, paused, reason if paused else "")


def member_changes_to(wanted: Mapping[str, Sequence[WantedMember]],
                      actual: Iterable[Member]) -> list[MemberChange]:
    """The AMI actions that bring this node's Asterisk (``actual``, QueueStatus's members)
    to ``wanted`` (interface -> its stored memberships), for those interfaces only; ``[]``
    when it is there already.

    Pauses first (a paused operator is never rung meanwhile), then additions (which carry
    the pause), penalties, and removals last (never out of every queue in between). A queue
    where the interface is a static member is left alone (QueueAdd would be refused)."""
    members = list(actual)
    pauses: list[MemberChange] = []
    adds: list[MemberChange] = []
    penalties: list[MemberChange] = []
    removals: list[MemberChange] = []
    for interface in sorted(wanted):
        if not valid_interface(interface):
            continue
        static = {m.queue for m in members if m.interface == interface and not m.dynamic}
        mine = {m.queue: m for m in members if m.interface == interface and m.dynamic}
        targets = {w.queue: w for w in wanted[interface]
                   if valid_queue(w.queue) and w.queue not in static}
        for queue, want in sorted(targets.items()):
            have = mine.get(queue)
            if have is None:
                adds.append(MemberChange("add", queue, interface, want.penalty, want.paused,
                                         want.pause_reason, want.name or interface))
                continue
            if have.paused != want.paused or (
                    want.paused and have.pause_reason != want.pause_reason):
                pauses.append(MemberChange("pause", queue, interface, want.penalty,
                                           want.paused, want.pause_reason))
            if have.penalty != want.penalty:
                penalties.append(MemberChange("penalty", queue, interface, want.penalty))
        removals += [MemberChange("remove", queue, interface)
                     for queue in sorted(mine) if queue not in targets]
    return [*pauses, *adds, *penalties, *removals]
