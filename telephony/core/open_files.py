"""One log line, not a flood, when a listening server runs out of file descriptors.

A flood of connections (a console left open in hundreds of tabs, a client that opens sockets
and never closes them) can take every descriptor the process may open (``RLIMIT_NOFILE``).
asyncio then refuses to accept (``EMFILE``) and reports it through the loop's exception
handler, whose default logs the whole traceback; and Python 3.11's accept loop does not stop at
the first refusal but tries the rest of its backlog: measured in the lab (aiohttp's backlog of
128, a soft limit of 88 descriptors), 2,918 tracebacks in 20 s, some 140 a second, which pushes
everything else out of a size-capped log within minutes. The refusal itself is harmless: the
connections wait in the kernel's backlog, and asyncio listens again a second later, so the
server takes them as soon as descriptors are free.

:func:`guard_accepts` puts a handler on the loop that says it in one line per
:data:`REPEAT_SECONDS` (with how many refusals it stands for) and hands every other report to
the handler that was there before.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger("telephony.open_files")

# asyncio's message (selector_events.BaseSelectorEventLoop._accept_connection).
ACCEPT_EXHAUSTED: Final = "socket.accept() out of system resource"
REPEAT_SECONDS: Final = 60.0

_Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class _AcceptGuard:
    """The loop's exception handler while a server of ours listens on it."""

    def __init__(self, previous: _Handler | None, clock: Callable[[], float]) -> None:
        self._previous = previous
        self._clock = clock
        self._said_at: float | None = None
        self._unsaid = 0  # refusals since the last line

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_EXHAUSTED:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self._unsaid += 1
        now = self._clock()
        if self._said_at is not None and now - self._said_at < REPEAT_SECONDS:
            return
        exc = context.get("exception")
        sock = context.get("socket")
        where = sock.getsockname() if sock is not None else "a listening socket"
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        log.error("cannot accept connections on %s: %s (this process may open %d files, all "
                  "in use: too many connections, or a leak); new connections wait until some "
                  "close; %d refusals since the last such line", where, exc, soft, self._unsaid)
        self._said_at = now
        self._unsaid = 0


# Where the hard limit is unlimited, a soft limit of this many (the kernel's usual nr_open).
UNLIMITED_SOFT: Final = 1 << 20


def raise_open_files_limit() -> None:
    """Raise the process's soft ``RLIMIT_NOFILE`` to its hard limit, as the line starts.

    Why: a service's soft limit is 1,024 under systemd (the hard one 524,288), and the console
    keeps to half of it (telephony/web/server.py): 512 connections, which a large call centre's
    desks, wallboards and their keep-alive connections can reach. The limit is low only for
    programs that use ``select()``; asyncio uses epoll, and the processes the line starts
    close what they do not need.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_SOFT if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files limit left at %d (cannot raise it to %d: %s)", soft, target,
                    exc)
        return
    log.info("open files limit raised from %d to %d", soft, target)


def guard_accepts(loop: asyncio.AbstractEventLoop | None = None,
                  clock: Callable[[], float] = time.monotonic) -> None:
    """Put the guard on ``loop`` (the running loop if None); once per loop."""
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if isinstance(previous, _AcceptGuard):
        return
    loop.set_exception_handler(_AcceptGuard(previous, clock))
