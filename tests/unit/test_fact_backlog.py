"""The bounded backlog between tracking and the recorder: what it holds, and what it spills."""

from datetime import UTC, datetime

import pytest

from telephony.calls.backlog import FactBacklog
from telephony.calls.facts import CallEnded, CallFact

AT = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def facts(*numbers: int) -> list[CallFact]:
    return [CallEnded(f"1.{n}", 16, "", AT) for n in numbers]


def test_holds_up_to_its_bound_in_order() -> None:
    backlog = FactBacklog(5)
    assert backlog.offer(facts(1, 2, 3)) == []
    assert backlog.offer(facts(4, 5)) == []
    assert len(backlog) == 5
    assert backlog.take(2) == facts(1, 2)
    assert backlog.take(10) == facts(3, 4, 5)
    assert backlog.take(10) == []


def test_beyond_its_bound_gives_everything_back_oldest_first() -> None:
    """Nothing is held beyond the bound, and the spill keeps the order: what was held, then
    the new facts; what comes next is held again (the recorder keeps it behind the spool)."""
    backlog = FactBacklog(4)
    backlog.offer(facts(1, 2, 3))
    assert backlog.offer(facts(4, 5)) == facts(1, 2, 3, 4, 5)
    assert len(backlog) == 0
    assert backlog.spilled == 5
    assert backlog.offer(facts(6)) == []
    assert backlog.take(10) == facts(6)


def test_one_offer_larger_than_the_bound_is_spilled_whole() -> None:
    backlog = FactBacklog(2)
    assert backlog.offer(facts(1, 2, 3)) == facts(1, 2, 3)


def test_lag_is_the_oldest_fact_still_held() -> None:
    now = [100.0]
    backlog = FactBacklog(10, clock=lambda: now[0])
    assert backlog.lag_seconds() == 0.0
    backlog.offer(facts(1, 2))
    now[0] = 101.0
    backlog.offer(facts(3))
    now[0] = 103.0
    assert backlog.lag_seconds() == 3.0
    backlog.take(1)
    assert backlog.lag_seconds() == 3.0  # fact 2 arrived with fact 1
    backlog.take(1)
    assert backlog.lag_seconds() == 2.0
    backlog.take(1)
    assert backlog.lag_seconds() == 0.0


def test_a_backlog_holds_something() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FactBacklog(0)
