"""When a desk's phone counts as gone: the pure rule of :mod:`telephony.desks.watch`.

Asterisk reports a phone it cannot reach as a queue member status ``unavailable`` (device
state 5): at once when a softphone's WebSocket closes (its registration goes with it), or when
qualify goes unanswered. A page that reloads registers again within a second or two, so an
interface counts as gone only once it stayed unreachable for a grace period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from telephony.ami.tracker import LOGGED_OUT
from telephony.calls.facts import OperatorStateChanged

UNAVAILABLE = "unavailable"  # the tracker's name for device state 5


@dataclass
class LostPhones:
    """Which interfaces have been unreachable for ``grace`` seconds (times are a monotonic
    clock's). An interface is due once per outage: it must be seen available (or leave
    every queue) before it can be due again."""

    grace: float
    _since: dict[str, float] = field(default_factory=dict)  # unreachable since
    _handled: set[str] = field(default_factory=set)

    def seen(self, states: Iterable[OperatorStateChanged], now: float) -> None:
        """Queue member states as Asterisk reported them (in order)."""
        for state in states:
            interface = state.operator
            if state.state == UNAVAILABLE:
                self._since.setdefault(interface, now)
            else:
                # Available again, or out of the queue: a new outage starts a new grace.
                self._since.pop(interface, None)
                self._handled.discard(interface)
            if state.state == LOGGED_OUT:
                self._handled.discard(interface)

    def due(self, now: float) -> list[str]:
        """The interfaces unreachable for at least ``grace`` and not yet handed out; each
        is handed out once."""
        found = sorted(interface for interface, since in self._since.items()
                       if now - since >= self.grace and interface not in self._handled)
        self._handled.update(found)
        return found

    def retry(self, interface: str) -> None:
        """Handing ``interface`` out failed (Asterisk or the database was away): due again
        at the next look, if it is still unreachable."""
        self._handled.discard(interface)

    def next_due(self, now: float) -> float | None:
        """Seconds until the next interface becomes due (0: one is); ``None``: none waits."""
        waiting = [since + self.grace - now for interface, since in self._since.items()
                   if interface not in self._handled]
        return max(0.0, min(waiting)) if waiting else None
