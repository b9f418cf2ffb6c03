"""LoopThread (telephony/core/threads.py): an event loop on a thread of its own, driven from
the main loop: work runs there in the order handed over, a stop cancels what still runs
there, and a thread stopped starts again with a new loop. OneAtATime: blocking work on a
thread of its own, never two runs at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from telephony.core.threads import LoopThread, OneAtATime


async def test_work_runs_on_the_thread_in_the_order_handed_over() -> None:
    thread = LoopThread("unit-loop")
    await thread.start()
    try:
        seen: list[tuple[str, str]] = []

        def note(what: str) -> None:
            seen.append((what, threading.current_thread().name))

        async def work(what: str) -> asyncio.AbstractEventLoop:
            note(what)
            return asyncio.get_running_loop()

        thread.call(note, "first")
        loop = await thread.run(work("second"))
        assert loop is thread.loop
        assert loop is not asyncio.get_running_loop()
        assert seen == [("first", "unit-loop"), ("second", "unit-loop")]
    finally:
        await thread.stop()
    assert thread.loop is None
    assert "unit-loop" not in {t.name for t in threading.enumerate()}


async def test_cancelling_the_wait_cancels_the_work_there() -> None:
    thread = LoopThread("unit-loop")
    await thread.start()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    try:
        waiting = asyncio.create_task(thread.run(forever()))
        await asyncio.sleep(0.05)  # it starts on the other loop
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await asyncio.to_thread(cancelled.wait, 5)
    finally:
        await thread.stop()


async def test_a_stop_cancels_what_still_runs_there_and_a_new_start_has_a_new_loop() -> None:
    thread = LoopThread("unit-loop")
    await thread.start()
    first = thread.loop
    ended = threading.Event()

    async def background() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    async def spawn() -> None:
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)  # it starts waiting

    await thread.run(spawn())
    await thread.stop()
    assert ended.is_set()
    await thread.stop()  # a no-op
    await thread.start()
    try:
        assert thread.loop is not None and thread.loop is not first
    finally:
        await thread.stop()


async def test_work_handed_to_a_thread_not_running_is_refused() -> None:
    thread = LoopThread("unit-loop")
    with pytest.raises(RuntimeError, match="not running"):
        await thread.run(asyncio.sleep(0))
    with pytest.raises(RuntimeError, match="not running"):
        thread.call(print)


async def test_a_failing_preparation_fails_the_start() -> None:
    def refuse() -> None:
        raise OSError(1, "refused")

    thread = LoopThread("unit-loop", prepare=refuse)
    with pytest.raises(OSError, match="refused"):
        await thread.start()
    assert thread.loop is None
    with pytest.raises(OSError, match="refused"):  # not "already running": nothing is left
        await thread.start()


async def test_one_at_a_time_waits_on_the_run_still_going_and_outlives_a_cancelled_wait(
) -> None:
    release = threading.Event()
    runs: list[str] = []

    def blocking() -> int:
        runs.append(threading.current_thread().name)
        assert release.wait(5)
        return len(runs)

    work = OneAtATime(blocking, "unit-once")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await work()  # the wait is given up; the run goes on
    second = asyncio.create_task(work())  # waits on that same run
    await asyncio.sleep(0)  # the task has asked by now
    assert runs == ["unit-once"]
    release.set()
    assert await second == 1
    assert await work() == 2  # the last one done: a new run

    def broken() -> int:
        raise OSError("stale file handle")

    with pytest.raises(OSError, match="stale file handle"):
        await OneAtATime(broken, "unit-broken")()
