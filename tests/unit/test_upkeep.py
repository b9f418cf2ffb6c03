"""The background loop: an outage is logged once, a bug costs one pass, neither stops it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from telephony.core.loops import run_passes
from telephony.db.connection import DatabaseUnavailable


async def test_outage_logged_once_bug_logged_each_time_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Exception | None] = [
        DatabaseUnavailable("down"), DatabaseUnavailable("still down"), None,
        ValueError("bug"), DatabaseUnavailable("down again"), None,
    ]
    done = asyncio.Event()
    passes = 0

    async def one_pass() -> None:
        nonlocal passes
        passes += 1
        outcome = outcomes.pop(0) if outcomes else None
        if not outcomes:
            done.set()
        if outcome is not None:
            raise outcome

    async def pause() -> None:
        await asyncio.sleep(0)

    log = logging.getLogger("test.upkeep")
    with caplog.at_level(logging.ERROR, "test.upkeep"):
        task = asyncio.create_task(run_passes("test upkeep", one_pass, pause, log))
        await asyncio.wait_for(done.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "test upkeep paused, database unavailable: down",
        "test upkeep pass failed",
        "test upkeep paused, database unavailable: down again",
    ]
    assert passes >= 6
