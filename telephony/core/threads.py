"""An event loop on a thread of its own, started, used and stopped from the main loop.

The line runs one besides its main loop: the AMI listener's (its reading, tracking and
recording, telephony/ami/threaded.py), so that it does not wait behind HTTP, the reports or
the console (the call path, the FastAGI IVR, has a process of its own: telephony/callpath.py).
Whatever a part needs from another loop crosses with :func:`in_loop`
(a coroutine run there, its result awaited here) or :meth:`LoopThread.call` (a callback run
there, in the order asked).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

log = logging.getLogger("telephony.threads")

T = TypeVar("T")


async def in_loop(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on ``loop`` (another thread's) and wait for its result here; cancelling
    the wait cancels the work."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))


class LoopThread:
    """A daemon thread running an event loop that does only what it is handed.

    :meth:`start` returns once the loop runs; :meth:`run` and :meth:`call` hand it work;
    :meth:`stop` ends the loop (tasks still running there are cancelled and awaited, as
    :func:`asyncio.run` does) and joins the thread. All three are called from another loop
    (the main one). A thread stopped may be started again, with a new loop.
    ``prepare`` runs on the thread before its loop starts.
    """

    def __init__(self, name: str, *, prepare: Callable[[], None] | None = None) -> None:
        self._name = name
        self._prepare = prepare
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def name(self) -> str:
        """The thread's name (as ``threading.enumerate`` lists it)."""
        return self._name

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The thread's event loop while it runs."""
        return self._loop

    async def start(self) -> None:
        """Start the thread and wait until its loop runs."""
        if self._thread is not None:
            raise RuntimeError(f"the {self._name} thread is already running")
        started: concurrent.futures.Future[asyncio.AbstractEventLoop] = (
            concurrent.futures.Future())
        thread = threading.Thread(target=self._run, args=(started,), name=self._name,
                                  daemon=True)
        self._thread = thread
        thread.start()
        try:
            self._loop = await asyncio.wrap_future(started)
        except BaseException:
            await asyncio.to_thread(thread.join)
            self._thread = None
            raise

    async def stop(self) -> None:
        """End the loop and the thread; a no-op when not running."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed on its own
                loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join)
        self._loop = None

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the thread's loop and wait for its result (cancelling the wait
        cancels the work)."""
        loop = self._loop
        if loop is None:
            work.close()
            raise RuntimeError(f"the {self._name} thread is not running")
        return await in_loop(loop, work)

    def call(self, callback: Callable[..., object], *args: object) -> None:
        """Call ``callback(*args)`` on the thread's loop soon, after what was handed to it
        before (by :meth:`call` or :meth:`run`); returns at once."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"the {self._name} thread is not running")
        loop.call_soon_threadsafe(callback, *args)

    def _run(self, started: concurrent.futures.Future[asyncio.AbstractEventLoop]) -> None:
        try:
            if self._prepare is not None:
                self._prepare()
            asyncio.run(self._main(started))
        except BaseException as exc:  # the starting loop waits for the outcome: tell it
            if not started.done():
                started.set_exception(exc)
            log.exception("the %s thread stopped on an error", self._name)

    async def _main(self, started: concurrent.futures.Future[asyncio.AbstractEventLoop]
                    ) -> None:
        self._stop = asyncio.Event()
        started.set_result(asyncio.get_running_loop())
        await self._stop.wait()


class OneAtATime(Generic[T]):
    """Blocking work the main loop must never wait on (a file system's figures: a hung mount,
    an NFS server gone, holds a stat or a directory walk forever) run on a daemon thread of its
    own, one at a time: a call while the last run is still going waits for that run instead of
    starting another, so a hung mount holds one thread, never one per call (nor the default
    executor's, which the rest of the line shares). Cancelling a wait leaves the run going."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._work = work
        self._name = name
        self._running: concurrent.futures.Future[T] | None = None

    async def __call__(self) -> T:
        """The result of a run started now, or of the one still going."""
        if self._running is None or self._running.done():
            running: concurrent.futures.Future[T] = concurrent.futures.Future()
            running.set_running_or_notify_cancel()  # a cancelled wait cannot cancel it
            threading.Thread(target=self._run, args=(running,), name=self._name,
                             daemon=True).start()
            self._running = running
        return await asyncio.wrap_future(self._running)

    def _run(self, running: concurrent.futures.Future[T]) -> None:
        try:
            running.set_result(self._work())
        except BaseException as exc:  # the waiter reports it
            running.set_exception(exc)
