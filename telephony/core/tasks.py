"""Cancelling work without waiting for it to stop.

A task cancelled while it waits on a hung server (PostgreSQL stopped: the kernel takes
connections, nothing answers) stops only when asyncpg's pool gives up on the cancellation's
acknowledgement, its acquire timeout (3 s). Whoever gave the work a deadline (the IVR's
screening budget, a readiness check's) must not wait that long again for the cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

# Cancelled tasks still unwinding: the event loop keeps only weak references to tasks.
_UNWINDING: set[asyncio.Task[Any]] = set()


def let_unwind(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` if it still runs and let it stop on its own; what it raised is
    retrieved (asyncio would otherwise warn at collection): the caller has given up on it."""
    if task.done():
        _retrieve(task)
        return
    task.cancel()
    _UNWINDING.add(task)
    task.add_done_callback(_unwound)


async def within(seconds: float, work: Awaitable[T]) -> T:
    """What ``work`` returns (or raises), or :class:`TimeoutError` once ``seconds`` have
    passed: then the work is cancelled and left to stop on its own (:func:`let_unwind`)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait([task], timeout=seconds)
    finally:
        if not task.done():
            let_unwind(task)
    if not task.done() or task.cancelled():
        raise TimeoutError
    return task.result()


def _unwound(task: asyncio.Task[Any]) -> None:
    _UNWINDING.discard(task)
    _retrieve(task)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
