"""How late each of the line's event loops runs: a probe sleeps a fixed interval and records
how much later than asked it woke (``siaga112_event_loop_stall_seconds{loop}``).

A late wake is time in which nothing else on that loop ran either: a FastAGI reply, an AMI
read. The call path's loop is the one a caller waits on: it runs in a process of its own
(telephony/callpath_child.py), which probes itself with :func:`probe` and sends the stalls to
the line (:meth:`LoopStalls.observe`). The AMI listener's is the one the wallboard and the call
records wait on (telephony/ami/threaded.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Histogram

PROBE_INTERVAL: Final = 0.1  # ten wakes a second: cheap, and a stall of any length is seen
STALL_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopStalls:
    """Measures the stalls of any loop it is started on (:meth:`watch` runs on that loop)."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = PROBE_INTERVAL) -> None:
        self._interval = interval
        self._stalls = Histogram(
            "siaga112_event_loop_stall_seconds", "How much later than asked an event loop "
            "woke a sleeping probe, by loop (callpath: the FastAGI IVR's; ami: the AMI "
            "listener's and recorder's; main: the rest)",
            ["loop"], buckets=STALL_BUCKETS, registry=registry)

    async def watch(self, loop_name: str) -> None:
        """Probe the running loop until cancelled."""
        await probe(self._interval, self._stalls.labels(loop_name).observe)

    def observe(self, loop_name: str, stall: float) -> None:
        """A stall another process measured on its loop (the call path's)."""
        self._stalls.labels(loop_name).observe(stall)


async def probe(interval: float, sample: Callable[[float], None]) -> None:
    """Sleep ``interval`` over and over on the running loop until cancelled; ``sample`` gets
    each wake's lateness (seconds)."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        sample(max(0.0, loop.time() - before - interval))
