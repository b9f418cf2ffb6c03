"""Bounded polling for tests that wait on a real system (the lab, the docker site): never a
bare sleep, never an unbounded wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]],
                     within: float = 30.0, interval: float = 0.2) -> T:
    """``probe()``'s first result that is not None; fails naming ``what`` after ``within``
    seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)


async def throughout(what: str, probe: Callable[[], Awaitable[bool]], seconds: float,
                     interval: float = 0.5) -> None:
    """``probe()`` holds at every poll for ``seconds``; fails naming ``what`` at the first
    poll it does not."""
    deadline = time.monotonic() + seconds
    while True:
        assert await probe(), f"no longer true: {what}"
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
