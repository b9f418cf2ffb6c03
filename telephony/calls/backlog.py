"""The facts tracked and not yet persisted: a bounded in-memory queue in front of the recorder.

Pure policy, no I/O. The AMI listener hands every tracked fact to the observers (the
wallboard) at once and then :meth:`FactBacklog.offer` s it here; its persistence task takes
batches from the head for the recorder. Beyond ``bound`` facts nothing more is held in memory:
:meth:`offer` gives back everything held plus the new facts, oldest first, for the recorder's
on-disk spool, which keeps them in order behind what is being written and ahead of whatever
comes later (the recorder sends later facts to the spool while anything is spooled).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from telephony.calls.facts import CallFact

DEFAULT_BOUND = 20_000  # facts: about 700 surge calls' worth, a few MB


class FactBacklog:
    """Facts waiting for the recorder, oldest first, at most ``bound`` of them."""

    def __init__(self, bound: int = DEFAULT_BOUND, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if bound < 1:
            raise ValueError("a backlog holds at least one fact")
        self.bound = bound
        self._clock = clock
        self._facts: deque[CallFact] = deque()
        self._since: deque[tuple[float, int]] = deque()  # (arrival, how many facts), in order
        self.spilled = 0  # facts ever given back for the spool

    def __len__(self) -> int:
        return len(self._facts)

    def offer(self, facts: Sequence[CallFact]) -> list[CallFact]:
        """Hold ``facts`` behind the others; or, if that would pass the bound, give back
        everything held plus ``facts`` (in order, the backlog is then empty) for the spool."""
        if not facts:
            return []
        if len(self._facts) + len(facts) <= self.bound:
            self._facts.extend(facts)
            self._since.append((self._clock(), len(facts)))
            return []
        spill = [*self._facts, *facts]
        self._facts.clear()
        self._since.clear()
        self.spilled += len(spill)
        return spill

    def take(self, limit: int) -> list[CallFact]:
        """Up to ``limit`` facts from the head (the oldest)."""
        count = min(limit, len(self._facts))
        batch = [self._facts.popleft() for _ in range(count)]
        while count and self._since:
            arrival, size = self._since[0]
            if size <= count:
                self._since.popleft()
                count -= size
            else:
                self._since[0] = (arrival, size - count)
                count = 0
        return batch

    def lag_seconds(self) -> float:
        """How long the oldest fact held has waited; 0 when none is held (also read from
        another thread than the one taking facts: a metrics scrape)."""
        try:
            oldest, _ = self._since[0]
        except IndexError:
            return 0.0
        return self._clock() - oldest
