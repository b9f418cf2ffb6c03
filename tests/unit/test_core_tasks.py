"""Work given a deadline is not waited for past it: a read cancelled on a hung PostgreSQL
stops only seconds later (telephony/core/tasks.py), and neither the scrape nor the IVR may
wait for that."""

from __future__ import annotations

import asyncio

import pytest

from telephony.core.tasks import within
from telephony.metrics.registry import LineMetrics
from tests.support.db import HungRead
from tests.support.polling import eventually


async def stopped(read: HungRead) -> bool | None:
    return True if read.stopped else None


async def test_within_gives_the_result_or_the_failure_of_work_done_in_time() -> None:
    async def answer() -> int:
        return 7

    async def failure() -> int:
        raise ValueError("refused")

    assert await within(1.0, answer()) == 7
    with pytest.raises(ValueError, match="refused"):
        await within(1.0, failure())


async def test_within_times_out_at_the_bound_without_waiting_for_the_work_to_stop() -> None:
    read = HungRead(unwind=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await within(0.1, read())
    assert loop.time() - started < 0.1 + 0.2
    # It stops on its own; what it raised then is retrieved (warnings are errors).
    await eventually("the cancelled read stopped", lambda: stopped(read), 2)


async def test_a_scrape_leaves_out_a_hung_source_within_the_bound() -> None:
    # The database-backed figures of a line whose PostgreSQL hung: the scrape waited for the
    # cancelled read to stop (the pool's acquire timeout, 3 s) beyond the sources' 2 s.
    read = HungRead(unwind=0.5)

    async def refresh() -> None:
        await read()

    metrics = LineMetrics(refresh_timeout=0.1)
    metrics.add_refresher("recordings", refresh)
    loop = asyncio.get_running_loop()
    started = loop.time()
    body, _ = await metrics.render("text/plain")
    assert loop.time() - started < 0.1 + 0.2
    assert b'siaga112_metrics_source_up{source="recordings"} 0.0' in body
    await eventually("the cancelled read stopped", lambda: stopped(read), 2)
