"""The line's metrics registry: collectors read at scrape time, after the sources that must
ask the database (asynchronously) have refreshed, each within a bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from telephony.core.tasks import within

log = logging.getLogger("telephony.metrics")

Refresh = Callable[[], Awaitable[None]]

# A scrape must answer even with the database away: each source gets this long.
REFRESH_TIMEOUT: Final = 2.0


class LineMetrics:
    """One running line's metrics: its own registry (two lines in one process, as in the
    tests, never share a series), the sources refreshed before each scrape, and whether each
    source answered (``siaga112_metrics_source_up``)."""

    def __init__(self, *, refresh_timeout: float = REFRESH_TIMEOUT) -> None:
        self.registry = CollectorRegistry()
        self._timeout = refresh_timeout
        self._refreshers: dict[str, Refresh] = {}
        self._up: dict[str, bool] = {}
        self.registry.register(self)

    def add(self, collector: Collector) -> None:
        """Read ``collector`` at every scrape."""
        self.registry.register(collector)

    def add_refresher(self, name: str, refresh: Refresh) -> None:
        """Await ``refresh`` before every scrape (a source that must ask the database);
        a failure or timeout is logged once per outage and shows as ``source_up`` 0."""
        self._refreshers[name] = refresh

    async def refresh(self) -> None:
        """Refresh every source, concurrently, each within the bound."""
        names = list(self._refreshers)
        results = await asyncio.gather(*(self._refresh(name) for name in names))
        self._up.update(zip(names, results, strict=True))

    async def _refresh(self, name: str) -> bool:
        try:
            # Past the bound the figure is left out at once; a source's read cancelled on a
            # hung PostgreSQL would hold the scrape until it unwound (telephony/core/tasks.py).
            await within(self._timeout, self._refreshers[name]())
        except Exception as exc:  # a source's outage must not cost the other figures
            if self._up.get(name, True):
                log.warning("metrics source %s unavailable: %s", name, exc or type(exc).__name__)
            return False
        if not self._up.get(name, True):
            log.info("metrics source %s available again", name)
        return True

    async def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition for a scraper's ``Accept`` header, and its content type."""
        await self.refresh()
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def collect(self) -> Iterable[Metric]:
        """``siaga112_metrics_source_up``: whether each refreshed source answered."""
        family = GaugeMetricFamily("siaga112_metrics_source_up",
                                   "1 if the source answered the last scrape in time",
                                   labels=["source"])
        for name, up in sorted(self._up.items()):
            family.add_metric([name], 1.0 if up else 0.0)
        yield family
