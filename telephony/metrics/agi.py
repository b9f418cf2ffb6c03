"""FastAGI session and command latency histograms (the server's ``AgiObserver``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Histogram

# A session lasts the greeting, the menu and the caller's choice: seconds to a minute and a
# half (agi_session_timeout). A command is milliseconds, or a prompt's length for GET DATA.
SESSION_BUCKETS: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
COMMAND_BUCKETS: Final = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                          10.0, 30.0)


class AgiTimings:
    """Observes every FastAGI session and command into histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._sessions = Histogram(
            "siaga112_agi_session_seconds", "FastAGI sessions, connect to end, by route and "
            "how they ended", ["route", "outcome"], buckets=SESSION_BUCKETS, registry=registry)
        self._commands = Histogram(
            "siaga112_agi_command_seconds", "FastAGI command round trips (sent to answered)",
            ["command"], buckets=COMMAND_BUCKETS, registry=registry)

    def session_ended(self, route: str, outcome: str, seconds: float) -> None:
        """A session ended (only routes the server knows reach here: bounded labels)."""
        self._sessions.labels(route, outcome).observe(seconds)

    def command_answered(self, verb: str, seconds: float) -> None:
        """A command was answered (verbs are our code's own: bounded labels)."""
        self._commands.labels(verb).observe(seconds)
