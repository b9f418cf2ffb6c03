"""Facts held in memory when no spool directory takes them: the bound, and the episode's
count of what was dropped, handed over once."""

from __future__ import annotations

import pytest

from telephony.calls.holding import HeldFacts
from tests.support.calls import call_facts


def test_the_newest_facts_past_the_bound_are_dropped_and_counted() -> None:
    held = HeldFacts(bound=5)
    facts = call_facts("h.1")[:4]
    assert held.hold(7, facts) == 0
    assert held.hold(9, facts) == 3
    assert held.numbers() == [7, 9] and held.facts(9) == facts[:1]
    assert len(held) == 5 and held.dropping and held.dropped_total == 3


def test_an_episode_ends_once_nothing_is_held_and_its_count_is_given_once() -> None:
    held = HeldFacts(bound=2)
    assert held.end_episode() is None  # no episode ran
    held.hold(1, call_facts("h.2")[:3])
    assert held.end_episode() is None  # still holding
    held.release(1)
    assert held.end_episode() == 1
    assert held.end_episode() is None
    held.hold(2, call_facts("h.3")[:1])
    held.release(2)
    assert held.end_episode() == 0  # an episode without loss
    assert held.dropped_total == 1


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HeldFacts(bound=0)
