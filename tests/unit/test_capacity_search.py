"""The capacity search of bench/capacity.py (``bench/surge.py --find-capacity``): which rate
it tries next given what passed and failed, when it stops, what it reports, and the
dialplan-only IVR it derives from the menu."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.menu import load_menu

# bench/ is not a package: its scripts import each other as top-level modules, as they do
# when run as `python bench/surge.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from capacity import (
    Bounds,
    StepResult,
    Trial,
    answered_calls,
    arrived_second,
    asked_span,
    bracket,
    dialplan_only_commands,
    next_rate,
    overloads,
    retransmissions,
    search,
    span,
    trials,
)
from surge import CallerGroup

from telephony.lab.sipp import SippResult

BOUNDS = Bounds(start=10, floor=1, ceiling=160, resolution=2)


def run_search(capacity: float, bounds: Bounds = BOUNDS) -> list[float]:
    """The rates tried against a line that holds exactly ``capacity`` calls/s."""
    history: list[Trial] = []
    while (rate := next_rate(history, bounds)) is not None:
        assert rate not in [t.rate for t in history], f"{rate} tried twice"
        assert len(history) < 30, "the search does not converge"
        history.append(Trial(rate, rate <= capacity))
    return [t.rate for t in history]


def test_starts_at_the_start_rate() -> None:
    assert next_rate([], BOUNDS) == 10


def test_doubles_while_every_step_passes() -> None:
    assert next_rate([Trial(10, True)], BOUNDS) == 20
    assert next_rate([Trial(10, True), Trial(20, True)], BOUNDS) == 40


def test_doubling_stops_at_the_ceiling_and_ends_there() -> None:
    history = [Trial(10, True), Trial(20, True), Trial(40, True), Trial(80, True)]
    assert next_rate(history, BOUNDS) == 160
    assert next_rate([*history, Trial(160, True)], BOUNDS) is None


def test_bisects_between_the_highest_pass_and_the_lowest_fail() -> None:
    history = [Trial(10, True), Trial(20, True), Trial(40, False)]
    assert next_rate(history, BOUNDS) == 30
    assert next_rate([*history, Trial(30, False)], BOUNDS) == 25
    assert next_rate([*history, Trial(30, True)], BOUNDS) == 35


def test_stops_when_pass_and_fail_are_within_the_resolution() -> None:
    assert next_rate([Trial(20, True), Trial(22, False)], BOUNDS) is None
    assert next_rate([Trial(20, True), Trial(22.1, False)], BOUNDS) == 21.1


def test_halves_down_to_the_floor_when_the_start_fails() -> None:
    assert next_rate([Trial(10, False)], BOUNDS) == 5
    assert next_rate([Trial(10, False), Trial(5, False)], BOUNDS) == 2.5
    assert next_rate([Trial(10, False), Trial(2.5, False)], BOUNDS) == 1.25
    assert next_rate([Trial(10, False), Trial(1.25, False)], BOUNDS) == 1  # not below
    assert next_rate([Trial(10, False), Trial(1.25, False), Trial(1, False)], BOUNDS) is None


def test_a_pass_above_a_failure_does_not_raise_the_figure() -> None:
    # A noisy machine: 30 failed, then 35 passed. Capacity is what held below every failure.
    history = [Trial(10, True), Trial(20, True), Trial(40, False), Trial(30, False),
               Trial(35, True)]
    assert bracket(history) == (20, 30)
    assert next_rate(history, BOUNDS) == 25


@pytest.mark.parametrize("capacity", [0.5, 1, 3.7, 10, 17, 33.3, 99, 159, 160, 500])
def test_converges_to_within_the_resolution(capacity: float) -> None:
    tried = run_search(capacity)
    passed = [r for r in tried if r <= capacity]
    failed = [r for r in tried if r > capacity]
    assert len(tried) <= 12
    if not passed:
        assert min(failed) == BOUNDS.floor  # below the floor: says so, does not go on
    elif not failed:
        assert max(passed) == BOUNDS.ceiling
    else:
        assert min(failed) - max(passed) <= BOUNDS.resolution
        assert max(passed) <= capacity < min(failed)


@pytest.mark.parametrize("bounds", [
    Bounds(start=0, floor=0, ceiling=10, resolution=2),
    Bounds(start=20, floor=1, ceiling=10, resolution=2),
    Bounds(start=5, floor=8, ceiling=10, resolution=2),
    Bounds(start=5, floor=1, ceiling=10, resolution=0.1),
])
def test_bounds_it_cannot_work_with_are_refused(bounds: Bounds) -> None:
    with pytest.raises(ValueError, match=r"rate|resolution"):
        bounds.check()


GOOD = StepResult(rate=10.0, requested=100, placed=100, failed=0, reached=100,
                  to_queue=tuple([2.0] * 99 + [3.9]))


def test_a_step_passes_only_when_every_call_got_through_in_time() -> None:
    assert GOOD.passed
    assert not replace(GOOD, failed=1).passed  # sipp could not complete a call
    assert not replace(GOOD, placed=99).passed  # sipp did not place every call
    assert not replace(GOOD, reached=99).passed  # one caller never reached an operator
    assert not replace(GOOD, to_queue=tuple([2.0] * 98 + [4.1, 4.1])).passed  # p99 above 4 s
    assert replace(GOOD, to_queue=tuple([2.0] * 99 + [9.0])).passed  # p99 is the 99th of 100
    assert not replace(GOOD, to_queue=()).passed
    assert not replace(GOOD, note="LabError: boot").passed


def test_the_dialplan_only_ivr_follows_the_menu() -> None:
    menu = load_menu()
    commands = dialplan_only_commands(menu, "112", 60, "/srv/siaga112/x/log/calls.log")
    added = [c.removeprefix("dialplan add extension ") for c in commands]
    assert all(c.startswith("dialplan add extension ") for c in commands)
    # Entered only through the bench's own extension, added at run time.
    entry = [a for a in added if a.endswith(" into from-carrier")]
    assert [a.split(",")[0] for a in entry] == ["capacitybench"] * 3
    main = menu.menus["utama"]
    for key, option in main.options.items():
        if option.route is not None:
            assert (f"{key},1,Goto(siaga112-capacity-queue,{option.route.queue},1) "
                    "into siaga112-capacity-utama") in added
        else:
            assert (f"{key},1,Goto(siaga112-capacity-{option.submenu},s,1) "
                    "into siaga112-capacity-utama") in added
    assert ("s,1,Background(siaga112/salam-112&siaga112/menu-utama) "
            "into siaga112-capacity-utama") in added
    assert "2,1,Goto(siaga112-capacity-queue,fire,1) into siaga112-capacity-darurat" in added
    assert "fire,2,Queue(fire,rt,,,60,,siaga112-capacity-answered) into siaga112-capacity-queue" \
        in added
    # No FastAGI, no recording, no screening.
    assert not [a for a in added if "AGI(" in a or "MixMonitor" in a or "Detect" in a]


def test_the_dialplan_only_ivr_refuses_a_path_that_could_break_the_command() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        dialplan_only_commands(load_menu(), "112", 60, "/tmp/a b,c")


def test_answered_calls_reads_the_records_the_dialplan_appends() -> None:
    text = ("siaga112-capacity-call:1000.250:1002.500;siaga112-capacity-call:1001:1004.75;"
            "siaga112-capacity-call:1002.1:")  # a record cut short by a crash: not counted
    assert answered_calls(text) == [(1000.25, 2.25), (1001.0, 3.75)]


def test_a_step_whose_calls_came_slower_than_its_rate_fails() -> None:
    """Asked for 100 calls at 10/s in two groups of 5/s (the first to the last 9.8 s apart),
    the calls must come within 10% and a second of that; calls Asterisk took late tested a
    lower rate. The line's arrivals are its channels' creation seconds."""
    groups = [CallerGroup("a", "3", "information", {}, "0899", 50, 5.0),
              CallerGroup("b", "12", "fire", {}, "0898", 50, 5.0)]
    asked = asked_span(groups)
    assert asked == pytest.approx(9.8)
    on_time = replace(GOOD, asked_span=asked, arrival_span=span([100.0, 104.0, 110.2]))
    assert on_time.passed and "arrivals over 10.2 s (asked 9.8 s)" in on_time.line()
    assert replace(on_time, arrival_span=asked * 1.1 + 1.0).passed
    assert not replace(on_time, arrival_span=asked * 1.1 + 1.1).passed
    assert not replace(on_time, arrival_span=None).passed  # asked, and not seen
    assert GOOD.asked_span is None and GOOD.passed  # a step that does not measure it
    assert span([5.0]) is None and span([]) is None
    assert [arrived_second(c) for c in ("1795430334.0", "node2-1795430345.1207")] == [
        1795430334.0, 1795430345.0]


def test_a_step_tells_why_its_calls_came_late() -> None:
    """Asterisk's high-water warnings (while one holds, res_pjsip ignores new INVITEs) and
    the SIP messages sipp had to send again. The lines are as the lab's messages.log has
    them."""
    warnings = [
        "[2026-12-06 13:01:02.707] WARNING[1234] taskprocessor.c: Taskprocessor "
        "'stasis/m:manager:core-00000006' queue reached 3000 scheduled tasks "
        "(high water mark: 3000).",
        "[2026-12-06 13:01:09.831] WARNING[1234] taskprocessor.c: Taskprocessor "
        "'stasis/p:channel:all-00000093' queue reached 500 scheduled tasks "
        "(high water mark: 500) again.",
        "[2026-12-06 13:01:10.002] WARNING[1240] res_pjsip_session.c: something else",
    ]
    assert overloads(warnings) == 2 and overloads([]) == 0
    results = [SippResult(0, 10, 0, stats={"Retransmissions(C)": "37"}),
               SippResult(0, 10, 0, stats={"Retransmissions(C)": ""}), SippResult(0, 10, 0)]
    assert retransmissions(results) == 37
    late = replace(GOOD, retransmissions=37, overloads=2)
    assert late.passed  # they explain; they do not judge
    assert late.line().endswith(
        ", SIP retransmissions 37, Asterisk task queues over high water 2x")
    assert "retransmissions" not in GOOD.line()


def test_a_rate_passes_when_any_of_its_tries_passed() -> None:
    assert trials([(10, True), (20, False), (20, True), (40, False), (40, False)]) == [
        Trial(10, True), Trial(20, True), Trial(40, False)]


def line_holding(
    capacity: float, flaky: frozenset[float] = frozenset()
) -> tuple[list[float], Callable[[float], Awaitable[StepResult]]]:
    """A fake step: passes up to ``capacity``; fails the first try of each rate in ``flaky``."""
    tried: list[float] = []

    async def step(rate: float) -> StepResult:
        first_try = rate not in tried
        tried.append(rate)
        ok = rate <= capacity and not (first_try and rate in flaky)
        return StepResult(rate, 10, 10, 0, 10 if ok else 9, (2.0,))

    return tried, step


async def test_the_search_finds_the_capacity_and_retries_a_failed_step_once() -> None:
    tried, step = line_holding(33, flaky=frozenset({20}))
    result = await search("fake", step, BOUNDS, budget=60, pause=0, retries=1)
    assert tried[:3] == [10, 20, 20]  # 20 failed once, passed on its second try
    assert result.capacity is not None and 31 <= result.capacity <= 33
    assert not result.capped and not result.at_ceiling
    assert tried.count(40) == 2  # a real failure is tried twice too


async def test_without_retries_a_failed_step_stands() -> None:
    tried, step = line_holding(33, flaky=frozenset({20}))
    result = await search("fake", step, BOUNDS, budget=60, pause=0, retries=0)
    assert tried[:3] == [10, 20, 15]
    assert result.capacity is not None and result.capacity < 20


async def test_a_step_that_raises_is_a_failed_step_with_its_reason() -> None:
    async def broken(rate: float) -> StepResult:
        raise RuntimeError("port taken")

    result = await search("fake", broken, Bounds(10, 5, 20, 2), budget=60, pause=0, retries=0)
    assert [s.rate for s in result.steps] == [10, 5]
    assert result.steps[0].note == "RuntimeError: port taken" and result.capacity is None


async def test_the_time_cap_ends_the_search_with_what_it_found() -> None:
    async def slow_above_ten(rate: float) -> StepResult:
        if rate > 10:
            await asyncio.sleep(10)
        return StepResult(rate, 10, 10, 0, 10, (2.0,))

    result = await search("fake", slow_above_ten, BOUNDS, budget=0.2, pause=0, retries=0)
    assert result.capped and result.capacity == 10
    assert [s.rate for s in result.steps] == [10]  # the step the cap cut is not counted


async def test_a_timeout_inside_a_step_is_a_failed_step_not_the_time_cap() -> None:
    """Seen on 2026-12-06: dialplan-only's 160/s step raised a TimeoutError of its own after
    247 s of a 1,800 s budget, and the search stopped there as if capped."""
    async def times_out_above_twenty(rate: float) -> StepResult:
        if rate > 20:
            raise TimeoutError
        return StepResult(rate, 10, 10, 0, 10, (2.0,))

    result = await search("fake", times_out_above_twenty, BOUNDS, budget=60, pause=0,
                          retries=0)
    assert not result.capped
    assert result.capacity is not None and 20 <= result.capacity < 40
    failed = [s for s in result.steps if not s.passed]
    assert failed and all(s.note == "TimeoutError" for s in failed)
