"""Operators logging in to the queues of their skills, through AMI.

A skill maps to the queues the IVR routes that skill to (read from the menu, so a new skill
queue in the menu needs no code change); every logged-in operator is also a member of the
overflow queue ``all-operators``. A skill level 1-5 becomes the member's queue penalty
(level 5 = penalty 0), so Asterisk rings the most skilled free operator first. A pause
(break, wrap-up, meeting) holds the operator's phone quiet in every queue at once; its reason
goes to Asterisk, so the AMI events, and with them the operator state log, carry it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Final

from ivr.menu import IvrMenu
from telephony.ami.actions import AmiActions
from telephony.core.errors import SiagaError
from telephony.core.labels import LabelledStrEnum

OVERFLOW_QUEUE = "all-operators"
MAX_LEVEL = 5
# The endpoint name starts with a letter or digit: "PJSIP/-x" or "PJSIP/.." would be a name
# that reads as an option or a path wherever it is passed on (a CLI, a phone's account).
_INTERFACE = re.compile(r"PJSIP/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class OperatorError(SiagaError, ValueError):
    """A login names an invalid interface, an unknown skill or an invalid level."""


class PauseReason(LabelledStrEnum):
    """Why an operator is paused; the code is what Asterisk and the state log keep."""

    BREAK = "break", "Istirahat"
    WRAPUP = "wrapup", "Wrap-up (pascapanggilan)"
    MEETING = "meeting", "Rapat"


# What operators read for the IVR's skills. An unknown code (a skill an admin added to the
# menu) is shown as it is.
SKILL_LABELS: Final[Mapping[str, str]] = {
    "general": "Umum", "medical": "Medis", "fire": "Kebakaran", "security": "Keamanan",
    "disaster": "Bencana", "javanese": "Bahasa Jawa", "madurese": "Bahasa Madura"}


# The pause the line itself gives a browser desk whose softphone went away, on its way out of
# the queues (telephony/desks/service.py); not one an operator picks.
PHONE_LOST_REASON: Final = "phone-lost"
_LINE_PAUSES: Final[Mapping[str, str]] = {PHONE_LOST_REASON: "Softphone terputus"}


def pause_label(reason: str) -> str:
    """A pause reason as operators read it (one set outside the console as it is)."""
    try:
        return PauseReason(reason).label
    except ValueError:
        return _LINE_PAUSES.get(reason, reason)


def check_interface(interface: str) -> str:
    """``interface`` if it is an operator's PJSIP interface (it is spliced into AMI actions)."""
    # fullmatch: ``$`` would also match before a trailing newline, one that ends an AMI line.
    if not _INTERFACE.fullmatch(interface):
        raise OperatorError(f"not an operator interface: {interface[:80]!r}")
    return interface


def skill_queues(menu: IvrMenu) -> dict[str, set[str]]:
    """Skill -> the queues the menu routes that skill to."""
    mapping: dict[str, set[str]] = {}
    routes = [entry.route for entry in menu.lines.values() if entry.route is not None]
    for sub in menu.menus.values():
        routes.append(sub.default)
        routes.extend(option.route for option in sub.options.values() if option.route)
    for route in routes:
        mapping.setdefault(route.skill, set()).add(route.queue)
    return mapping


class OperatorDesk:
    """Logs operators in and out of their skill queues on the running Asterisk."""

    def __init__(self, ami: AmiActions, menu: IvrMenu) -> None:
        self._ami = ami
        self._skills = skill_queues(menu)

    def plan(self, interface: str, skills: Mapping[str, int]) -> dict[str, int]:
        """Queue -> penalty for a login; validates everything before anything is sent."""
        check_interface(interface)
        queues: dict[str, int] = {}
        for skill, level in skills.items():
            if skill not in self._skills:
                raise OperatorError(f"unknown skill {skill[:40]!r}; known: {sorted(self._skills)}")
            if isinstance(level, bool) or not 1 <= level <= MAX_LEVEL:
                raise OperatorError(f"skill {skill}: level must be 1 to {MAX_LEVEL}")
            for queue in self._skills[skill]:
                penalty = MAX_LEVEL - level
                queues[queue] = min(penalty, queues.get(queue, penalty))
        if not queues:
            raise OperatorError("an operator needs at least one skill")
        queues.setdefault(OVERFLOW_QUEUE, MAX_LEVEL - 1)
        return queues

    async def log_in(self, interface: str, skills: Mapping[str, int], name: str = "",
                     already: Collection[str] = ()) -> list[str]:
        """Add the operator to every queue of their skills but those ``already`` joined
        (Asterisk refuses a second QueueAdd); returns the queues joined now."""
        queues = {queue: penalty for queue, penalty in self.plan(interface, skills).items()
                  if queue not in already}
        for queue, penalty in sorted(queues.items()):
            await self._ami.send_action({
                "Action": "QueueAdd", "Queue": queue, "Interface": interface,
                "Penalty": str(penalty), "MemberName": name or interface,
                "Paused": "false",
            })
        return sorted(queues)

    async def log_out(self, interface: str, queues: list[str]) -> None:
        """Remove the operator from ``queues``."""
        check_interface(interface)
        for queue in queues:
            await self._ami.send_action(
                {"Action": "QueueRemove", "Queue": queue, "Interface": interface})

    async def pause(self, interface: str, reason: PauseReason) -> None:
        """Pause the operator in every queue they are in, saying why."""
        await self._ami.send_action({
            "Action": "QueuePause", "Interface": check_interface(interface), "Paused": "true",
            "Reason": reason.value,
        })

    async def resume(self, interface: str) -> None:
        """End the operator's pause in every queue they are in."""
        await self._ami.send_action({
            "Action": "QueuePause", "Interface": check_interface(interface), "Paused": "false",
        })
