"""Readiness: the parts a call needs from the line, each checked now (``/readyz``), and as
``siaga112_ready{part}`` at every scrape."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from telephony.ami.threaded import ThreadedListener
from telephony.calls.recorder import CallRecorder
from telephony.core.tasks import within
from telephony.db.connection import Database

CHECK_TIMEOUT: Final = 2.0

Check = Callable[[], Awaitable[bool]]


class Listening(Protocol):
    """A server that is listening or not (the line's FastAGI call path)."""

    @property
    def serving(self) -> bool:
        """True while it listens."""
        ...


class Readiness:
    """Checks named parts; a part is ready when its check says so within the bound."""

    def __init__(self, checks: Mapping[str, Check], *, timeout: float = CHECK_TIMEOUT) -> None:
        self._checks = dict(checks)
        self._timeout = timeout
        self._last: dict[str, bool] = {}

    @classmethod
    def of_line(cls, database: Database, listener: ThreadedListener, agi: Listening,
                recorder: CallRecorder) -> Readiness:
        """The line's parts: PostgreSQL answers, AMI is logged in, FastAGI listens, and the
        call facts have somewhere durable to go (not held only in memory)."""

        async def database_up() -> bool:
            await database.ping()
            return True

        async def ami_up() -> bool:
            return listener.logged_in

        async def fastagi_up() -> bool:
            return agi.serving

        async def spool_up() -> bool:
            return not recorder.failing

        return cls({"database": database_up, "ami": ami_up, "fastagi": fastagi_up,
                    "spool": spool_up})

    async def check(self) -> dict[str, bool]:
        """Every part's state now, concurrently."""
        names = list(self._checks)
        states = await asyncio.gather(*(self._check(name) for name in names))
        self._last = dict(zip(names, states, strict=True))
        return dict(self._last)

    async def _check(self, name: str) -> bool:
        """The part's check within the bound. A check past it is down at once, and is left
        to stop on its own: a ping cancelled on a hung PostgreSQL unwound only at the pool's
        acquire timeout (3 s), so /readyz took 5 s and the container's health probe (3 s)
        failed, a line whose database hung counted unhealthy (telephony/metrics/probe.py)."""
        try:
            return await within(self._timeout, self._checks[name]())
        except Exception:  # an unreachable part is the answer, not an error
            return False

    async def refresh(self) -> None:
        """Check before a scrape."""
        await self.check()

    def collect(self) -> Iterable[Metric]:
        """``siaga112_ready{part}`` as last checked."""
        family = GaugeMetricFamily("siaga112_ready", "1 if the part was up at the scrape "
                                   "(database, ami, fastagi, spool)", labels=["part"])
        for name, up in sorted(self._last.items()):
            family.add_metric([name], 1.0 if up else 0.0)
        yield family
