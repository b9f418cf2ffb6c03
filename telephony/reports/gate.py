"""Reports give way to the call records: one report at a time, and none while the records trail.

Why: a 31-day shift report costs PostgreSQL a fraction of a second of CPU (the month's first,
which rolls its shifts up, seconds), and the database shares the site's cores with Asterisk,
the line and the recorder. Measured in a surge with reports asked for back to back (README,
issue 12), the reports kept one core's worth of PostgreSQL busy and the recorder's batches
waited for CPU beside them: AMI -> database p99 of 1-2.7 s where the same surge without
reports kept 130-450 ms. The call records are the line's first duty and a report can be
late; so a report waits, with bounded polling, while the oldest call fact not yet written has
waited more than ``lag_seconds``, and never more than ``max_wait_seconds`` in all (after which
it runs anyway: a supervisor asking during a day-long disaster still gets the figures).
A report of many shifts not yet rolled up passes the gate again between its roll-ups, so the
month's first report after an upgrade paces itself too.

One turn at a time: two supervisors asking together would otherwise put two cores' worth of
PostgreSQL on the two the site has; the second waits for the first (a report is seconds at
most), and the wallboard's background roll-up skips its round while a report has the turn or
the records trail (it comes back every 10 s).

A share of the time while calls are being recorded (call facts tracked within the last
``RECORDING_WITHIN`` seconds: a sample of "facts waiting now" misses most of a surge, whose
facts come in bursts and are written in milliseconds). The lag above is a symptom, seen only
once the records already trail. Reports asked for back to back during a surge kept a whole
core of PostgreSQL busy (README, issue 12) even through the gate, because each report found
the records caught up when it started and then held its core for its whole run. So while calls
are being recorded, a turn after another rests first: a report that held the
turn for t seconds makes the next one wait t * (1 / share - 1) after it ended (share 0.25: 3t),
which keeps reports to about that share of one core. On a quiet line, or for a report after
a pause, there is no rest; the rest counts towards ``max_wait_seconds`` like any wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from telephony.settings import Settings

log = logging.getLogger("telephony.reports")

POLL_SECONDS = 0.05  # how often a waiting report looks at the records' lag again
RECORDING_WITHIN = 1.0  # call facts tracked this recently: calls are being recorded


@dataclass(frozen=True)
class GateConfig:
    """When a report gives way. ``max_wait_seconds`` 0: never waits (one turn at a time
    still)."""

    lag_seconds: float = 0.25
    max_wait_seconds: float = 20.0
    busy_share: float = 0.25  # of the time, while calls are being recorded; 1: no rest

    @classmethod
    def from_settings(cls, settings: Settings) -> GateConfig:
        """The configuration described by ``settings``."""
        return cls(lag_seconds=settings.report_yield_lag_ms / 1000,
                   max_wait_seconds=settings.report_max_wait_seconds,
                   busy_share=settings.report_busy_share)


class ReportTurn:
    """A report's turn: :meth:`clear` before each heavy read."""

    def __init__(self, gate: ReportGate, deadline: float) -> None:
        self._gate = gate
        self._deadline = deadline
        self.waited = 0.0  # seconds this turn gave way, in all

    async def clear(self) -> None:
        """Return once the records no longer trail, or at once if this turn has used up its
        wait."""
        gate = self._gate
        started = gate.clock()
        while (gate.behind() or gate.resting()) and gate.clock() < self._deadline:
            await gate.sleep(POLL_SECONDS)
        self.waited += gate.clock() - started


class ReportGate:
    """The line's reports take turns here. ``lag`` is how long the oldest call fact (or AMI
    event) not yet written has waited, in seconds: the AMI listener's
    ``max(fact_lag_seconds, event_lag_seconds)``; ``since_facts`` how long ago it last tracked
    call facts (its ``seconds_since_facts``), which tells when turns share the time."""

    def __init__(self, lag: Callable[[], float], config: GateConfig = GateConfig(), *,
                 since_facts: Callable[[], float] = lambda: float("inf"),
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._lag = lag
        self._since_facts = since_facts
        self._config = config
        self.clock = clock
        self.sleep = sleep
        self._turns = asyncio.Lock()
        self._rest_until = float("-inf")  # the end of the last turn's rest (while recording)
        self.gave_way = 0  # turns that waited for the records, since the start
        self.gave_way_seconds = 0.0  # and how long, in all

    @classmethod
    def open(cls) -> ReportGate:
        """A gate that never makes a report wait for the records (a line without an AMI
        listener: the benchmarks' and tools' report services)."""
        return cls(lambda: 0.0)

    def behind(self) -> bool:
        """Do the call records trail by more than the configured lag?"""
        return self._lag() > self._config.lag_seconds

    def resting(self) -> bool:
        """Is the last turn's rest still running while call facts are being recorded?"""
        return (self.clock() < self._rest_until
                and self._since_facts() < RECORDING_WITHIN)

    @property
    def busy(self) -> bool:
        """Is a report holding the turn?"""
        return self._turns.locked()

    @contextlib.asynccontextmanager
    async def turn(self, what: str) -> AsyncIterator[ReportTurn]:
        """Wait for the turn (one report at a time), then hold it for the block; ``what`` names
        the report in the log line of a turn that gave way."""
        async with self._turns:
            began = self.clock()
            turn = ReportTurn(self, began + self._config.max_wait_seconds)
            try:
                yield turn
            finally:  # a report that failed after waiting waited all the same
                ended = self.clock()
                held = max(0.0, ended - began - turn.waited)
                self._rest_until = ended + held * (1 / self._config.busy_share - 1)
                if turn.waited >= POLL_SECONDS:
                    self.gave_way += 1
                    self.gave_way_seconds += turn.waited
                    log.info("%s gave way to the call records for %.1f s", what, turn.waited)
