"""The line container's health check (telephony/metrics/probe.py, the compose files'
``healthcheck``) against the line's real /readyz route: a line whose database or Asterisk is
away is healthy (it still takes calls, or has none to take); one whose FastAGI or spool is
down, or that does not answer, is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from telephony.metrics.health import CHECK_TIMEOUT, Check, Readiness
from telephony.metrics.http import MonitoringApi
from telephony.metrics.probe import probe, readyz_url
from telephony.metrics.registry import LineMetrics
from tests.support.db import HungRead
from tests.support.net import free_port
from tests.support.polling import eventually

PARTS = ("database", "ami", "fastagi", "spool")
Serve = Callable[..., Awaitable[str]]


def state(up: bool) -> Check:
    async def check() -> bool:
        return up
    return check


@pytest.fixture
async def line_http() -> AsyncIterator[Serve]:
    """Serves the line's /readyz with the given parts down; returns its URL."""
    runners: list[web.AppRunner] = []

    async def serve(down: set[str], *, bound: float = CHECK_TIMEOUT, **checks: Check) -> str:
        """``checks`` replace the parts' own (named by part), ``bound`` bounds each."""
        readiness = Readiness({name: checks.get(name, state(name not in down))
                               for name in PARTS}, timeout=bound)
        api = MonitoringApi(LineMetrics(), readiness, ())
        app = web.Application()
        app.router.add_get("/readyz", api.readyz)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return readyz_url({"SIAGA112_HTTP_HOST": "127.0.0.1", "SIAGA112_HTTP_PORT": str(port)})

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_a_hung_database_is_down_within_the_bound_and_the_line_healthy(
        line_http: Serve) -> None:
    # Scaled down: the bound 2 s, the unwinding 3 s, the probe's timeout 3 s. /readyz waited
    # for the cancelled ping to stop, 5 s, and the probe said the line did not answer: a line
    # whose database hung counted unhealthy.
    ping = HungRead(unwind=0.6)
    url = await line_http(set(), bound=0.3, database=ping)
    assert await asyncio.to_thread(probe, url, 0.6) is None

    async def stopped() -> bool | None:
        return True if ping.stopped else None

    await eventually("the cancelled ping stopped", stopped, 2)


@pytest.mark.parametrize("down", [set(), {"database"}, {"ami"}, {"database", "ami"}])
async def test_a_line_without_its_database_or_asterisk_is_healthy(
        line_http: Serve, down: set[str]) -> None:
    # The database away: the line still runs the IVR and spools the facts (fail open); a
    # health check that said "unhealthy" would point at the wrong container, and anything
    # acting on it (a restart) would take the calls away.
    url = await line_http(down)
    assert await asyncio.to_thread(probe, url) is None


@pytest.mark.parametrize("down", [{"fastagi"}, {"spool"}, {"database", "fastagi"}])
async def test_a_line_whose_own_parts_are_down_is_unhealthy(
        line_http: Serve, down: set[str]) -> None:
    url = await line_http(down)
    reason = await asyncio.to_thread(probe, url)
    own = sorted(down - {"database"})
    assert reason == f"the line's own parts are down: {', '.join(own)}"


async def test_a_line_that_does_not_answer_is_unhealthy() -> None:
    url = readyz_url({"SIAGA112_HTTP_PORT": str(free_port())})
    reason = await asyncio.to_thread(probe, url, 1.0)
    assert reason is not None and reason.startswith(f"{url} did not answer"), reason


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"),
    ("", "127.0.0.1"), ("::1", "[::1]"), ("10.0.0.5", "10.0.0.5")])
def test_the_probe_asks_where_the_line_listens(host: str, expected: str) -> None:
    assert readyz_url({"SIAGA112_HTTP_HOST": host, "SIAGA112_HTTP_PORT": "8113"}) == (
        f"http://{expected}:8113/readyz")
    assert readyz_url({}) == "http://127.0.0.1:8112/readyz"
