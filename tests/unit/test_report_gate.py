"""The reports' gate: one report at a time, and none while the call records trail (but never
longer than its bound). A fake clock that the gate's own sleep moves: no time passes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from telephony.reports.gate import POLL_SECONDS, RECORDING_WITHIN, GateConfig, ReportGate


class Clock:
    """Time that passes only when the gate sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def gate_with(lag: float | Callable[[], float], clock: Clock, max_wait: float = 20.0, *,
              share: float = 0.25, recording: Callable[[], bool] = lambda: False
              ) -> ReportGate:
    """``recording``: were call facts tracked within the last second, now?"""
    lagging = lag if callable(lag) else (lambda: lag)
    return ReportGate(lagging, GateConfig(lag_seconds=0.25, max_wait_seconds=max_wait,
                                          busy_share=share),
                      since_facts=lambda: 0.0 if recording() else RECORDING_WITHIN,
                      clock=clock, sleep=clock.sleep)


async def held_turn(gate: ReportGate, clock: Clock, seconds: float) -> float:
    """A report that clears its turn, then holds the database ``seconds``; how long it
    waited before that."""
    async with gate.turn("shift report") as turn:
        await turn.clear()
        clock.now += seconds
    return turn.waited


async def test_a_report_waits_while_the_records_trail_then_goes() -> None:
    clock = Clock()
    gate = gate_with(lambda: 2.0 if clock.now < 3.0 else 0.1, clock)
    async with gate.turn("shift report") as turn:
        await turn.clear()
        assert 3.0 <= clock.now < 3.0 + 2 * POLL_SECONDS
        await turn.clear()  # caught up: no more waiting
    assert turn.waited == pytest.approx(clock.now)


async def test_a_report_with_the_records_caught_up_does_not_wait() -> None:
    clock = Clock()
    gate = gate_with(0.25, clock)  # at the bound, not past it
    async with gate.turn("daily summary") as turn:
        await turn.clear()
    assert clock.now == 0.0 and not gate.behind() and gate.gave_way == 0


async def test_a_turn_waits_at_most_its_bound_in_all(caplog: pytest.LogCaptureFixture) -> None:
    """A day-long surge: the report still comes, after the bound; its later clears within
    the same turn wait no more."""
    clock = Clock()
    gate = gate_with(5.0, clock, max_wait=2.0)
    with caplog.at_level(logging.INFO, logger="telephony.reports"):
        async with gate.turn("shift report") as turn:
            await turn.clear()
            assert 2.0 <= clock.now < 2.0 + 2 * POLL_SECONDS
            spent = clock.now
            await turn.clear()
            assert clock.now == spent
    assert [r.getMessage() for r in caplog.records] == [
        f"shift report gave way to the call records for {spent:.1f} s"]
    assert (gate.gave_way, gate.gave_way_seconds) == (1, spent)


async def test_no_wait_when_waiting_is_off() -> None:
    clock = Clock()
    gate = gate_with(5.0, clock, max_wait=0.0)
    async with gate.turn("shift report") as turn:
        await turn.clear()
    assert clock.now == 0.0 and gate.behind()


async def test_one_report_at_a_time() -> None:
    gate = ReportGate.open()
    inside: list[str] = []
    first_in, first_may_go = asyncio.Event(), asyncio.Event()

    async def report(name: str, hold: asyncio.Event | None) -> None:
        async with gate.turn(name):
            inside.append(f"{name} in")
            if hold is not None:
                first_in.set()
                await hold.wait()
            inside.append(f"{name} out")

    first = asyncio.create_task(report("first", first_may_go))
    await first_in.wait()
    second = asyncio.create_task(report("second", None))
    await asyncio.sleep(0)  # the second asks for its turn
    assert gate.busy and inside == ["first in"]
    first_may_go.set()
    await asyncio.gather(first, second)
    assert inside == ["first in", "first out", "second in", "second out"]
    assert not gate.busy


async def test_a_report_that_fails_after_waiting_is_counted() -> None:
    clock = Clock()
    gate = gate_with(lambda: 2.0 if clock.now < 1.0 else 0.0, clock)
    with pytest.raises(ConnectionError):
        async with gate.turn("shift report") as turn:
            await turn.clear()
            raise ConnectionError("the database went away")
    assert gate.gave_way == 1 and gate.gave_way_seconds == pytest.approx(clock.now)
    assert not gate.busy


async def test_while_calls_are_recorded_a_report_after_another_rests_for_its_share() -> None:
    """Back to back in a surge: the second report waits three times what the first held
    (share 0.25), not counting the first's own wait; a third after a pause does not wait."""
    clock = Clock()
    gate = gate_with(lambda: 2.0 if clock.now < 0.5 else 0.0, clock, recording=lambda: True)
    assert await held_turn(gate, clock, 1.0) == pytest.approx(0.5, abs=POLL_SECONDS)
    ended = clock.now
    assert await held_turn(gate, clock, 0.2) == pytest.approx(3.0, abs=POLL_SECONDS)
    assert clock.now - ended == pytest.approx(3.2, abs=POLL_SECONDS)
    clock.now += 10.0  # a pause longer than the rest
    assert await held_turn(gate, clock, 0.2) == 0.0
    assert gate.gave_way == 2


async def test_a_quiet_line_has_no_rest() -> None:
    clock = Clock()
    gate = gate_with(0.0, clock, recording=lambda: False)
    await held_turn(gate, clock, 5.0)
    assert await held_turn(gate, clock, 1.0) == 0.0
    assert not gate.resting()


async def test_the_rest_ends_when_the_calls_stop_being_recorded() -> None:
    clock = Clock()
    gate = gate_with(0.0, clock, recording=lambda: clock.now < 6.0)
    await held_turn(gate, clock, 5.0)  # a rest of 15 s, were the surge to go on
    assert await held_turn(gate, clock, 0.1) == pytest.approx(1.0, abs=POLL_SECONDS)


async def test_the_rest_counts_towards_the_bound_and_a_full_share_has_none() -> None:
    clock = Clock()
    gate = gate_with(0.0, clock, max_wait=2.0, recording=lambda: True)
    await held_turn(gate, clock, 5.0)
    assert await held_turn(gate, clock, 0.1) == pytest.approx(2.0, abs=POLL_SECONDS)
    unshared = gate_with(0.0, clock, share=1.0, recording=lambda: True)
    await held_turn(unshared, clock, 5.0)
    assert await held_turn(unshared, clock, 0.1) == 0.0


async def test_the_rest_is_neither_a_turn_nor_a_trail() -> None:
    """What ``roll_up_recent`` reads apart: between turns the gate is free and the records
    caught up, yet resting (the skip itself: the reports store's loopback test)."""
    clock = Clock()
    gate = gate_with(0.0, clock, recording=lambda: True)
    await held_turn(gate, clock, 1.0)
    assert gate.resting() and not gate.busy and not gate.behind()
