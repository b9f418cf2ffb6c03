"""Capacity as a figure: the highest call rate the line handles, beside dialplan-only Asterisk.

``python bench/surge.py --find-capacity`` raises the call rate step by step: doubling from
``--start-rate`` until a step fails (or ``--max-rate`` passes), then bisecting between the
highest passing and the lowest failing rate until they are ``--resolution`` calls/s apart (or
halving down to ``--min-rate`` when the first step already fails). Each step is a surge of
``--step-seconds`` of arrivals (the callers of bench/surge.py: half press 3, half 1 then 2) on a
freshly started lab, so no step inherits the previous one's backlog. A step passes when every
call sipp placed completed, an operator answered every one of them, answer -> queue p99 is
at most 4 s, and the calls really came at the step's rate: Asterisk created the first and the
last caller channel within 10% (plus a second) of the span sipp was asked for. Before this
check, dialplan-only Asterisk "passed" 160/s on 2026-12-06 with 2,400 calls in a step that
took 49 s, where the 80/s step took 29 s (15 s of arrivals, the key, the talk, the lab's
start): by that length, its calls came over about 35 s, not 15.

Why calls come late: Asterisk defers them. While any of its task queues is over its
high-water mark (a taskprocessor warning in its log), res_pjsip ignores every new INVITE
(``taskprocessor_overload_trigger``, "global" by default) and the callers' retransmissions
bring them in later. Each step's line counts both, the warnings and sipp's retransmissions.
Measured on 2026-12-06: with sipp at a higher priority than everything else (nice -10), the
line's 90/s step still came over 31 s for 15 asked, so sipp was not what fell behind; with
the trigger set to "pjsip_only", the same step came over 15 s, its answer -> queue p99 was
9.5 s (5.4 s with sipp at nice -10 and the default) and 92 callers gave up in the queue: the
calls wait in the IVR instead of before the answer (the line then held 67.5/s against
dialplan-only's 88.6: 0.76x). asterisk-conf/pjsip.conf keeps the default, which keeps the
IVR fast, and on a cluster a node that defers a call lets the front offer it to the other
node. Almost all the warnings come from app_queue, in both searches: each answered queue
call subscribes to every channel's hang-up requests and every bridge entry
("stasis/p:channel:all", "stasis/p:bridge:all").

The search runs twice, on the same lab, callers, operators, prompts and keys:

1. the line as bench/surge.py runs it (FastAGI IVR, screening, recording, AMI listener and
   recorder): :func:`line_step`;
2. dialplan-only Asterisk (:func:`dialplan_only_commands`): Answer, Background of the same prompt
   files, the key -> queue mapping of the menu, Queue; no FastAGI, no recording, no screening,
   no AMI client during the calls. That is the physical limit of Asterisk + sipp here.

and prints both rates and their ratio (target: the line >= 0.8x dialplan-only).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import asyncpg
import surge  # bench/ is sys.path[0] when bench/surge.py runs as a script
from rig import bench_settings, build_prompts, start_lab

from ivr.keys import prompt_file
from ivr.menu import IvrMenu, load_menu
from telephony.app import running_line
from telephony.db.embedded import DATABASE_NAME, EmbeddedPostgres
from telephony.lab.chroot import Lab
from telephony.lab.sipp import SippResult, operator
from telephony.settings import Settings

P99_LIMIT_SECONDS = 4.0  # answer -> queue, the caller's 2 s before the key included
# The calls' arrivals may spread this much more than asked (a fraction, then seconds) before
# the step counts as placed slower than its rate.
ARRIVAL_SLACK = 0.1
ARRIVAL_GRACE_SECONDS = 1.0  # the line's arrivals are known to the second (arrived_second)
TARGET_RATIO = 0.8
ASTERISK_GONE = "Asterisk was not running at the end of the step"
# The extension the dialplan-only callers dial. It exists only in a lab the bench started and
# only while the bench runs: it is added with the CLI (never written to extensions.conf), so
# the carrier cannot reach the dialplan-only IVR on a real line. Letters only: from-carrier's
# catch-all patterns (_X!, _+!, _*!, _#!) never match it, so without this runtime entry the
# number gets 404 as any lettered one does.
BENCH_EXTEN = "capacitybench"
CONTEXT_PREFIX = "siaga112-capacity"
ANSWERED_CONTEXT = f"{CONTEXT_PREFIX}-answered"
QUEUE_CONTEXT = f"{CONTEXT_PREFIX}-queue"
OVERFLOW_QUEUE = "all-operators"
LOG_MARK = "siaga112-capacity-call"
CALLS_FILE = "capacity-calls.log"
_LOG_LINE = re.compile(LOG_MARK + r":([0-9]+(?:\.[0-9]+)?):([0-9]+(?:\.[0-9]+)?)")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PATH = re.compile(r"^/[A-Za-z0-9/._-]+$")
_KEY = re.compile(r"^[0-9]$")  # a literal extension; * and # would need a pattern
_NOW = "${STRFTIME(,,%s.%3q)}"  # the channel's clock with milliseconds
# taskprocessor.c: "Taskprocessor '<name>' queue reached <n> scheduled tasks (high water ...".
_OVERLOAD = re.compile(r"Taskprocessor '[^']*' queue reached [0-9]+ scheduled tasks")


# ----------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class Trial:
    """One step of a search: the rate tried and whether the line kept up."""

    rate: float
    passed: bool


@dataclass(frozen=True)
class Bounds:
    """Where a search starts and stops (calls/s)."""

    start: float
    floor: float
    ceiling: float
    resolution: float  # stop bisecting when the pass and the fail are this close

    def check(self) -> None:
        """Refuse bounds the search cannot work with."""
        if not 0 < self.floor <= self.start <= self.ceiling:
            raise ValueError("need 0 < min rate <= start rate <= max rate")
        if self.resolution < 0.5:
            raise ValueError("resolution below 0.5 calls/s is finer than a step can tell")


def trials(tries: Iterable[tuple[float, bool]]) -> list[Trial]:
    """One trial per rate from every try (rate, passed): a rate passed if any try passed.

    A failed step may be tried again (``--retries``): on a shared machine another job's
    burst can fail a step the line would have passed, and a pass shows it can be done.
    """
    passed: dict[float, bool] = {}
    for rate, ok in tries:
        passed[rate] = passed.get(rate, False) or ok
    return [Trial(rate, ok) for rate, ok in passed.items()]


def bracket(history: Sequence[Trial]) -> tuple[float | None, float | None]:
    """(highest passing rate below every failure, lowest failing rate).

    A pass above a failure (a noisy machine) does not raise the figure: capacity is what
    held every time it was tried below the first rate that did not.
    """
    lowest_fail = min((t.rate for t in history if not t.passed), default=None)
    highest_pass = max(
        (t.rate for t in history
         if t.passed and (lowest_fail is None or t.rate < lowest_fail)),
        default=None,
    )
    return highest_pass, lowest_fail


def next_rate(history: Sequence[Trial], bounds: Bounds) -> float | None:
    """The rate to try next given what passed and failed so far; None when the search is done.

    Doubling from ``start`` while every step passes (capped at ``ceiling``), halving down to
    ``floor`` while every step fails, then bisecting (to 0.1 calls/s) until the highest pass
    and the lowest fail are at most ``resolution`` apart.
    """
    if not history:
        return bounds.start
    passed, failed = bracket(history)
    if failed is None:
        assert passed is not None  # history is not empty: something passed
        return None if passed >= bounds.ceiling else min(passed * 2, bounds.ceiling)
    if passed is None:
        return None if failed <= bounds.floor else max(failed / 2, bounds.floor)
    if failed - passed <= bounds.resolution:
        return None
    return round((passed + failed) / 2, 1)


# ----------------------------------------------------------------------------- one step


@dataclass(frozen=True)
class StepResult:
    """What one step measured."""

    rate: float
    requested: int
    placed: int
    failed: int  # calls sipp did not complete (FailedCall, or never finished)
    reached: int  # calls an operator answered
    to_queue: tuple[float, ...]  # answer -> queue, seconds, per call that got there
    seconds: float = 0.0
    note: str = ""  # why the step could not be run, if it could not
    unreached: str = ""  # what became of the calls that did not get through, when known
    # First to last arrival, as asked of sipp and as Asterisk saw it (None: not measured).
    asked_span: float | None = None
    arrival_span: float | None = None
    # Why calls came late (None: not measured): SIP messages sipp sent again, unanswered, and
    # Asterisk's warnings that a task queue passed its high-water mark (see the module's doc).
    retransmissions: int | None = None
    overloads: int | None = None

    @property
    def p99(self) -> float | None:
        """Answer -> queue p99 (nearest rank)."""
        return surge.percentile(self.to_queue, 0.99)

    @property
    def on_rate(self) -> bool:
        """Did the calls arrive at the step's rate (when it was measured)?"""
        if self.asked_span is None:
            return True
        return (self.arrival_span is not None and self.arrival_span
                <= self.asked_span * (1 + ARRIVAL_SLACK) + ARRIVAL_GRACE_SECONDS)

    @property
    def passed(self) -> bool:
        """Every call placed at the rate, completed, answered by an operator, queued within
        the limit."""
        p99 = self.p99
        return (not self.note and self.failed == 0 and self.placed == self.requested
                and self.reached >= self.placed and p99 is not None
                and p99 <= P99_LIMIT_SECONDS and self.on_rate)

    def line(self) -> str:
        """One line for the printout."""
        p99 = "-" if self.p99 is None else f"{self.p99:.2f} s"
        text = (f"{self.rate:6.1f}/s  {'pass' if self.passed else 'FAIL'}  "
                f"placed {self.placed}/{self.requested}, sipp failed {self.failed}, "
                f"reached an operator {self.reached}, answer->queue p99 {p99}, "
                f"{self.seconds:.0f} s")
        if self.asked_span is not None:
            came = "-" if self.arrival_span is None else f"{self.arrival_span:.1f} s"
            text += f", arrivals over {came} (asked {self.asked_span:.1f} s)"
        if self.retransmissions is not None:
            text += f", SIP retransmissions {self.retransmissions}"
        if self.overloads is not None:
            text += f", Asterisk task queues over high water {self.overloads}x"
        if self.unreached:
            text += f"; not reached: {self.unreached}"
        return text + (f"  ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Plan:
    """What every step of both searches shares."""

    step_seconds: float
    talk: float
    key_delay: float
    root: Path
    cluster: EmbeddedPostgres
    tally: surge.LogTally


def step_setup(
    rate: float, plan: Plan
) -> tuple[list[surge.CallerGroup], list[int], Settings]:
    """The callers, operators per group and lab settings of a step at ``rate``."""
    calls = max(2, math.ceil(rate * plan.step_seconds))
    groups = surge.caller_groups(calls, rate, f"{random.randrange(10_000):04d}")
    base = bench_settings(plan.root / "state", plan.cluster.dsn(), plan.cluster.port, 1)
    counts = [surge.operators_needed(g.rate, plan.talk, base.queue_wrapup_seconds)
              for g in groups]
    # Its own lab instance and ports: a plain bench/surge.py run (or another helper's) on the
    # "surge" instance would restart this lab under a running step.
    return groups, counts, replace(
        base, lab_operators=sum(counts), lab_instance="capacity", sip_port=36060,
        ami_port=36038, agi_port=36573, lab_operator_sip_port=36070)


def asked_span(groups: Sequence[surge.CallerGroup]) -> float:
    """First to last call as sipp is asked to place them: the groups run side by side."""
    return max((g.calls - 1) / g.rate for g in groups)


def arrived_second(call_id: str) -> float:
    """When Asterisk created a call's channel, to the second: its unique id's epoch part.
    Not the row's ``arrived_at``, the AMI event's Timestamp: that comes through Asterisk's
    event queues, whose backlog a saturated step can add to it (their taskprocessor warnings),
    while dialplan-only's instant is the channel's own clock at its first dialplan step."""
    return float(call_id.rpartition("-")[2].partition(".")[0])


def span(instants: Iterable[float]) -> float | None:
    """First to last of ``instants``, seconds; None for fewer than two."""
    seen = sorted(instants)
    return seen[-1] - seen[0] if len(seen) > 1 else None


def overloads(asterisk_warnings: Iterable[str]) -> int:
    """How many of Asterisk's warnings say a task queue passed its high-water mark."""
    return sum(1 for line in asterisk_warnings if _OVERLOAD.search(line))


def retransmissions(results: Iterable[SippResult]) -> int:
    """Messages the caller sipps sent again for want of an answer (their last statistics)."""
    return sum(int(r.stats.get("Retransmissions(C)", "0") or 0) for r in results)


def _placed(result: SippResult) -> int:
    return int(result.stats.get("OutgoingCall(C)", "0") or 0)


def _sipp_failed(groups: Sequence[surge.CallerGroup], results: Sequence[SippResult]) -> int:
    # A call sipp never finished (killed at its timeout) is as failed as a FailedCall.
    return sum(g.calls - r.successful for g, r in zip(groups, results, strict=True))


def _sipp_errors(groups: Sequence[surge.CallerGroup], results: Sequence[SippResult]) -> str:
    """The first error line of each caller sipp that failed calls (what went wrong)."""
    shown = []
    for group, result in zip(groups, results, strict=True):
        # sipp notes each pcap it loads ("In pcap ..., npkts 10"): not an error.
        lines = [line for line in result.errors.splitlines()
                 if line.strip() and not line.startswith("In pcap ")]
        if result.successful < group.calls and lines:
            shown.append(f"sipp {group.label} exit {result.returncode}: {lines[0][:160]}")
    return "; ".join(shown)


async def _fresh_database(cluster: EmbeddedPostgres) -> None:
    """An empty database for the step: the previous step's calls would otherwise still be
    worked through during this one (their incidents, post-call scores and recordings), and its
    queue_members rows would fake this step's logins, which the surge waits for."""
    maintenance = cluster.dsn().rsplit("/", 1)[0] + "/postgres"
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        await connection.close()


async def line_step(rate: float, plan: Plan) -> StepResult:
    """One surge through the whole line (bench/surge.py's own), on a fresh lab."""
    groups, counts, settings = step_setup(rate, plan)
    started = time.monotonic()
    await _fresh_database(plan.cluster)
    lab = Lab(settings)
    try:
        await start_lab(lab)  # inside the try: a failure half-way still stops it
        outcome = await surge.surge(lab, plan.cluster, settings, groups, counts, plan.talk,
                                    plan.key_delay, plan.tally)
        note = "" if lab.is_running() else ASTERISK_GONE
    finally:
        await asyncio.to_thread(lab.stop)
    to_queue = tuple((r["queue_joined_at"] - r["arrived_at"]).total_seconds()
                     for r in outcome.rows
                     if r["queue_joined_at"] is not None and r["arrived_at"] is not None)
    placed = sum(_placed(r) for r in outcome.results)
    # The database says why (ended in the IVR: a lost key; abandoned in a queue; ...).
    unreached = Counter(str(r["disposition"]) for r in outcome.rows if r["operator"] is None)
    if placed > len(outcome.rows):
        unreached["no row in the database"] = placed - len(outcome.rows)
    return StepResult(
        rate, sum(g.calls for g in groups), placed, _sipp_failed(groups, outcome.results),
        sum(1 for r in outcome.rows if r["operator"] is not None), to_queue,
        time.monotonic() - started,
        unreached="; ".join(filter(None, (
            ", ".join(f"{k} {v}" for k, v in unreached.most_common()),
            _sipp_errors(groups, outcome.results)))),
        note=note, asked_span=asked_span(groups),
        arrival_span=span(arrived_second(str(r["call_id"])) for r in outcome.rows),
        retransmissions=retransmissions(outcome.results),
        overloads=overloads(outcome.asterisk_warnings),
    )


# ----------------------------------------------------------------------------- dialplan only


def _menu_context(name: str) -> str:
    return f"{CONTEXT_PREFIX}-{name}"


def _checked(name: str) -> str:
    # Menu and queue names become context and extension names in CLI commands.
    if not _NAME.match(name):
        raise ValueError(f"{name!r} cannot name a dialplan context")
    return name


def dialplan_only_commands(
    menu: IvrMenu, line: str, queue_max_wait: int, calls_file: str
) -> list[str]:
    """CLI commands that add the dialplan-only IVR of ``line`` to a running lab.

    Everything comes from ``menu`` (the menu the line's IVR serves), so the two cannot
    drift. Each menu is a context whose ``s`` plays the same prompt files with Background
    and waits the menu's timeout (the greeting before the first menu's prompt, as the IVR
    asks); its key extensions go where the menu's options go (a sub-menu's context, or a
    queue); no key and an invalid one go to the menu's default queue (the IVR asks again
    first; the bench's callers press only valid keys). A queue is the production one:
    Queue(q, rt) for the queue's max wait, then all-operators, round again.

    When an operator answers, Queue's gosub on the operator's channel appends the caller's
    answer and queue-join times (STRFTIME, ms) to ``calls_file`` (a path as Asterisk sees
    it; FILE() of func_env, as the lab loads no app_verbose for Log): one record per call
    that reached an operator (";"-terminated: a value cannot hold a newline).
    """
    entry = menu.entry_for(line)
    commands: list[str] = []

    def add(context: str, exten: str, *apps: str) -> None:
        for priority, app in enumerate(apps, start=1):
            commands.append(f"dialplan add extension {exten},{priority},{app} into {context}")

    queues: set[str] = set()

    def to_queue(queue: str) -> str:
        queues.add(_checked(queue))
        return f"Goto({QUEUE_CONTEXT},{queue},1)"

    if entry.route is not None:
        lead = [f"Playback({prompt_file(entry.greeting)})"] if entry.greeting else []
        first = [*lead, to_queue(entry.route.queue)]
    else:
        assert entry.menu is not None  # validated: a line has a menu or a route
        first = [f"Goto({_menu_context(_checked(entry.menu))},s,1)"]
    # __ : inherited by the operator's channel, where the answered gosub runs.
    add("from-carrier", BENCH_EXTEN, f"Set(__T0={_NOW})", "Answer()", *first)

    pending = [entry.menu] if entry.menu is not None else []
    done: set[str] = set()
    while pending:
        name = pending.pop()
        if name in done:
            continue
        done.add(name)
        current = menu.menus[name]
        context = _menu_context(_checked(name))
        prompts = [current.prompt]
        if name == entry.menu and entry.greeting:
            prompts.insert(0, entry.greeting)
        # Background + WaitExten, not Read: the lab does not load app_read, and a key
        # pressed during the prompt jumps to its extension at once either way.
        add(context, "s", f"Background({'&'.join(prompt_file(p) for p in prompts)})",
            f"WaitExten({current.timeout_ms / 1000:g})")
        add(context, "t", to_queue(current.default.queue))  # no key
        add(context, "i", to_queue(current.default.queue))  # a key with no option
        for key, option in sorted(current.options.items()):
            if not _KEY.match(key):
                raise ValueError(f"menu {name}: key {key!r} cannot be an extension")
            if option.route is not None:
                add(context, key, to_queue(option.route.queue))
            else:
                assert option.submenu is not None
                pending.append(option.submenu)
                add(context, key, f"Goto({_menu_context(_checked(option.submenu))},s,1)")

    for queue in sorted(queues):
        add(QUEUE_CONTEXT, queue,
            f"Set(__TQ={_NOW})",
            f"Queue({queue},rt,,,{queue_max_wait},,{ANSWERED_CONTEXT})",
            f"Queue({OVERFLOW_QUEUE},rtC,,,{queue_max_wait},,{ANSWERED_CONTEXT})",
            f"Goto({queue},2)")
    if not _PATH.match(calls_file):
        raise ValueError(f"{calls_file!r}: an absolute path of letters, digits and /._- please")
    add(ANSWERED_CONTEXT, "s", f"Set(FILE({calls_file},,,a)={LOG_MARK}:${{T0}}:${{TQ}};)",
        "Return()")
    return commands


def answered_calls(log_text: str) -> list[tuple[float, float]]:
    """When each call the dialplan-only IVR wrote down as answered came (epoch seconds), and
    its answer -> queue seconds."""
    return [(float(m.group(1)), float(m.group(2)) - float(m.group(1)))
            for m in _LOG_LINE.finditer(log_text)]


async def dialplan_step(rate: float, plan: Plan) -> StepResult:
    """One surge through dialplan-only Asterisk, on a fresh lab with the same operators."""
    groups, counts, settings = step_setup(rate, plan)
    started = time.monotonic()
    await _fresh_database(plan.cluster)
    lab = Lab(settings)
    try:
        await start_lab(lab)  # inside the try: a failure half-way still stops it
        menu = load_menu(settings.menu_file)
        # The instance's log directory, as Asterisk (in its chroot) and as we see it.
        calls_file = lab.messages_log.parent / CALLS_FILE
        calls_file.unlink(missing_ok=True)
        for command in dialplan_only_commands(menu, menu.default_line, settings.queue_max_wait,
                                              f"{lab.instance_dir}/log/{CALLS_FILE}"):
            await lab.acli(command)
        # The line only logs the operators in (AMI QueueAdd, as the surge does) and stops:
        # queue members stay in Asterisk, and no FastAGI, AMI client or recorder runs during
        # the calls.
        async with running_line(settings) as line:
            async with asyncio.timeout(30):
                await line.listener.wait_ready()
            await surge.log_in_operators(line, groups, counts)
        log_offset = lab.messages_log.stat().st_size if lab.messages_log.exists() else 0
        longest = max(g.calls / g.rate for g in groups) + plan.key_delay + plan.talk
        async with operator(settings.lab_operator_sip_port, timeout=longest + 600):
            results = list(await asyncio.gather(*(
                surge.place(settings, g, plan.talk, plan.key_delay, number=BENCH_EXTEN)
                for g in groups)))
        note = "" if lab.is_running() else ASTERISK_GONE
        warnings = surge.new_log_lines(lab.messages_log, log_offset)
        # Written on the operator's answer, before the callers' talk: all there by now.
        answered = answered_calls(
            calls_file.read_text(encoding="utf-8", errors="replace")
            if calls_file.exists() else "")
    finally:
        await asyncio.to_thread(lab.stop)
    return StepResult(
        rate, sum(g.calls for g in groups), sum(_placed(r) for r in results),
        _sipp_failed(groups, results), len(answered), tuple(q for _, q in answered),
        time.monotonic() - started, unreached=_sipp_errors(groups, results), note=note,
        asked_span=asked_span(groups), arrival_span=span(came for came, _ in answered),
        retransmissions=retransmissions(results), overloads=overloads(warnings),
    )


# ----------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class SearchResult:
    """One finished (or cut short) search."""

    name: str
    steps: tuple[StepResult, ...]
    seconds: float
    capped: bool  # the time cap ended it before the search was done

    @property
    def capacity(self) -> float | None:
        """The highest rate that passed below every failure."""
        return bracket(trials((s.rate, s.passed) for s in self.steps))[0]

    @property
    def at_ceiling(self) -> bool:
        """True when nothing failed: the capacity is at least the figure, maybe more."""
        return all(t.passed for t in trials((s.rate, s.passed) for s in self.steps))


async def search(
    name: str, step: Callable[[float], Awaitable[StepResult]], bounds: Bounds,
    budget: float, pause: float, retries: int,
) -> SearchResult:
    """Run steps at the rates :func:`next_rate` picks, until it is done or ``budget`` s pass.

    A failed step is tried up to ``retries`` more times (see :func:`trials`). A step that
    raises (the lab did not boot, a port was taken) is a failed step with its reason shown;
    a step cut by the budget is not counted at all.
    """
    started = time.monotonic()
    steps: list[StepResult] = []
    capped = False
    print(f"\n=== capacity search: {name} ===")
    while not capped and (
        rate := next_rate(trials((s.rate, s.passed) for s in steps), bounds)
    ) is not None:
        for attempt in range(retries + 1):
            remaining = budget - (time.monotonic() - started)
            if remaining <= 0:
                capped = True
                break
            print(f"--- {name}: step at {rate:g} calls/s"
                  + (f", try {attempt + 1}" if attempt else ""))
            step_started = time.monotonic()
            cap = asyncio.timeout(remaining)
            try:
                async with cap:
                    result = await step(rate)
            except TimeoutError as exc:
                if not cap.expired():  # a timeout inside the step (sipp, the database...)
                    result = _broken_step(rate, step_started, exc)
                else:
                    capped = True
                    print(f"--- {name}: time cap ({budget:g} s) hit during the step at "
                          f"{rate:g}/s")
                    break
            except Exception as exc:  # one broken step is a failed step, its reason shown
                result = _broken_step(rate, step_started, exc)
            steps.append(result)
            print(f"--- {name}: {result.line()}")
            # Every step starts its own lab and line; the pause lets the previous one's
            # processes exit and the kernel's sockets drain before the next surge.
            await asyncio.sleep(pause)
            if result.passed:
                break
    return SearchResult(name, tuple(steps), time.monotonic() - started, capped)


def _broken_step(rate: float, started: float, exc: BaseException) -> StepResult:
    """A step that raised: failed, with its reason shown."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return StepResult(rate, 0, 0, 0, 0, (), time.monotonic() - started, note=reason[:300])


def _figure(result: SearchResult) -> str:
    capacity = result.capacity
    if not result.steps:
        text = "not measured"
    elif capacity is None:
        text = "below the lowest rate tried"
    else:
        text = f"{capacity:g} calls/s" + (" (or more: nothing failed)" if result.at_ceiling
                                          else "")
    return text + (" [time cap hit]" if result.capped else "")


def report(results: Sequence[SearchResult], bounds: Bounds, plan: Plan) -> int:
    """Print both searches and the ratio; 0 when the line reaches the target ratio."""
    print(f"\nCapacity (step {plan.step_seconds:g} s of arrivals, talk {plan.talk:g} s, "
          f"pass: every call answered by an operator and answer->queue p99 <= "
          f"{P99_LIMIT_SECONDS:g} s; rates {bounds.floor:g}..{bounds.ceiling:g}/s, "
          f"resolution {bounds.resolution:g}/s):")
    for result in results:
        print(f"\n  {result.name}: {_figure(result)}; {len(result.steps)} steps in "
              f"{result.seconds:.0f} s")
        for step in sorted(result.steps, key=lambda s: s.rate):
            print(f"    {step.line()}")
    line, limit = results
    if line.capacity is None or limit.capacity is None:
        print("\n  ratio: - (a search found no passing rate)")
        return 1
    ratio = line.capacity / limit.capacity
    # A search that never failed found a lower bound, not the capacity.
    if line.at_ceiling and limit.at_ceiling:
        print(f"\n  ratio line / dialplan-only: - (both held the highest rate tried; raise "
              f"--max-rate above {bounds.ceiling:g})")
        return 0
    bound = ">= " if line.at_ceiling else "<= " if limit.at_ceiling else ""
    print(f"\n  ratio line / dialplan-only: {bound}{ratio:.2f} (target >= {TARGET_RATIO:g})")
    return 0 if ratio >= TARGET_RATIO else 1


async def find_capacity(
    args: argparse.Namespace, root: Path, cluster: EmbeddedPostgres, tally: surge.LogTally
) -> int:
    """Both searches, then the figures."""
    bounds = Bounds(args.start_rate, args.min_rate, args.max_rate, args.resolution)
    plan = Plan(args.step_seconds, args.talk, args.key_delay, root, cluster, tally)
    settings = step_setup(bounds.start, plan)[2]
    await build_prompts(settings)
    results = []
    for name, step in (("line (recording + screening)", line_step),
                       ("dialplan-only Asterisk", dialplan_step)):
        results.append(await search(name, partial(step, plan=plan), bounds,
                                    args.max_search_seconds, args.step_pause, args.retries))
    return report(results, bounds, plan)
