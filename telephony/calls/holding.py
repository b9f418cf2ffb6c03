"""Call facts that could be written neither to the database nor to any spool directory.

Pure policy, no I/O. The spool (telephony/calls/spool.py) keeps such facts here, under the
segment number they would have had on disk, so they keep their place in the order: segment
*n* is primary file *n*, then fallback file *n*, then what is held for *n*. At most ``bound``
facts are held; beyond it the newest are dropped and counted. An *episode* runs from the first
fact held to the moment nothing is held any more: :meth:`HeldFacts.end_episode` then hands the
count dropped in it once (for one log line and a resync), never one report per fact.
"""

from __future__ import annotations

from collections.abc import Sequence

from telephony.calls.facts import CallFact

DEFAULT_MEMORY_BOUND = 50_000  # facts: about 1,700 surge calls' worth, some 25 MB


class HeldFacts:
    """Facts held in memory by segment number, at most ``bound`` of them in all."""

    def __init__(self, bound: int = DEFAULT_MEMORY_BOUND) -> None:
        if bound < 1:
            raise ValueError("memory holds at least one fact")
        self.bound = bound
        self._segments: dict[int, list[CallFact]] = {}
        self._count = 0
        self._dropped = 0  # in the current episode
        self.dropped_total = 0  # since start, for the metrics
        self.episode = False  # something was held since the last end_episode()

    def __len__(self) -> int:
        return self._count

    @property
    def dropping(self) -> bool:
        """Facts were dropped in the current episode."""
        return self._dropped > 0

    def hold(self, number: int, facts: Sequence[CallFact]) -> int:
        """Hold ``facts`` behind what segment ``number`` already holds; returns how many of
        them did not fit under the bound and were dropped (the newest ones)."""
        room = max(0, self.bound - self._count)
        kept, dropped = list(facts[:room]), len(facts) - min(room, len(facts))
        if kept:
            self._segments.setdefault(number, []).extend(kept)
            self._count += len(kept)
        self._dropped += dropped
        self.dropped_total += dropped
        self.episode = True
        return dropped

    def numbers(self) -> list[int]:
        """The segment numbers holding facts, oldest first."""
        return sorted(self._segments)

    def facts(self, number: int) -> list[CallFact]:
        """What segment ``number`` holds (a copy; empty if nothing)."""
        return list(self._segments.get(number, ()))

    def release(self, number: int) -> None:
        """Forget segment ``number``'s facts: they are on disk or in the database now."""
        self._count -= len(self._segments.pop(number, ()))

    def end_episode(self) -> int | None:
        """If an episode ran and nothing is held any more: end it and return how many facts it
        dropped (0 if none). ``None`` while facts are still held or no episode ran."""
        if not self.episode or self._count:
            return None
        dropped, self._dropped, self.episode = self._dropped, 0, False
        return dropped
