"""A surge of calls through the whole line: does every call get through and get recorded?

Starts a private Asterisk lab, a private embedded PostgreSQL cluster and the line's services
(FastAGI IVR, AMI listener, recorder), logs in enough operators (all answered by one sipp UAS)
and has sipp place ``--calls`` calls at ``--rate`` calls/s. Every caller presses a key
``--key-delay`` s after the answer (barge-in into the greeting), so the IVR takes a second or
two, stays ``--talk`` s after the last key and hangs up. Half the callers press ``3``
(information), half ``1`` then ``2`` (emergency, fire: the sub-menu too); each half is its own
sipp process with its own caller number, which is how the run's calls are found in the
database.

Printed:

* failed calls: sipp's ``FailedCall`` plus calls it never completed;
* calls missing from the database (placed, no row in ``calls``) and incomplete ones (a row
  lacking any of line, IVR outcome, queue, queue position, operator, wait, talk, end, hangup
  cause, shift), with the recorded facts of a few incomplete ones;
* answer -> queue latency p50/p99 (``queue_joined_at - arrived_at``: Asterisk's own event
  timestamps, so the recorder's lag does not count), queue -> operator answer, AMI
  event -> database (``call_events.recorded_at - at``: how far the recorder runs behind), and
  AMI event -> wallboard (from Asterisk's event timestamp to the moment the listener's
  observers, the wallboard's LiveBoard first, have the fact: a probe observer registered
  after the wallboard's);
* the event loops' longest stalls during the surge (a probe task sleeping 5 ms on each loop,
  its overshoot: max and p99): the FastAGI IVR's own loop (what a caller's AGI reply waits at
  worst) and the main loop (AMI reads, the recorder, HTTP and reports);
* CPU seconds of Asterisk, of this process (the line: AMI listener + recorder + HTTP, plus the
  bench's little bookkeeping), of the line's IVR process, of PostgreSQL and of sipp (the load
  generator), over the surge and until the database holds every call as ended.

With ``--history N`` the database first gets N calls of generated history (bench/history.py),
and with ``--report-during`` a supervisor's 31-day shift report is asked for back to back in the
line's own process during the surge: the loop-stall and latency figures then show whether the
call path waits for reports. The history is given what a running site's would have: the
recent calls' recording rows and post-call scores, and (unless ``--cold-rollups``) the
month's closed shifts rolled up before the surge, as the wallboard rolls them up in the
background. Without them the line would spend the surge post-call scoring the generated calls
(each upkeep pass a range scan over three days of calls), and the first report would roll up
about ninety shifts, each holding the lock that every write to ``calls`` waits for
(migration 0016).

Run: ``python bench/surge.py [--calls 1000] [--rate 50] [--talk 8]`` (root: the lab needs it).
Exits 0 only when every call succeeded and is complete in the database.
Ports, lab instance and database are the bench's own, so it runs beside the e2e tests.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import random
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import asyncpg
from rig import bench_settings, is_incomplete, lacking, running_lab

from ivr.menu import load_menu
from telephony.ami.tracker import QueueSnapshot
from telephony.app import Line, running_line
from telephony.calls.facts import CallFact
from telephony.calls.shifts import ShiftCalendar
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.db.migrate import migrate
from telephony.desks.operators import OperatorDesk
from telephony.lab.chroot import Lab, operator_names
from telephony.lab.sipp import Sipp, SippResult, caller, operator
from telephony.reports.model import Period
from telephony.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_DIGITS = re.compile(r"[0-9]+")
_IDS = re.compile(r"\b[0-9a-f]*[0-9][0-9a-f]*\b")  # numbers, hex ids, thread ids
SETTLE_SECONDS = 120.0  # after the last sipp exits, how long the database may take to catch up
LOGIN_CONCURRENCY = 64  # operators logging in at once: each QueueAdd is an AMI round trip
# Seconds an operator is held per call beyond the caller's talk time: the IVR's share of the
# caller's stay is already inside talk, so this is ringing and the SIP exchanges around it.
OPERATOR_OVERHEAD_SECONDS = 3.0
OPERATOR_HEADROOM = 1.25  # Poisson-ish arrivals and rounding: never let a caller wait for lack


@dataclass(frozen=True)
class CallerGroup:
    """One sipp process: its callers' keys, caller number and the operators who serve it."""

    label: str
    dtmf: str
    queue: str  # where the keys lead (for the operator pool, and the printout)
    skills: dict[str, int]
    caller_id: str
    calls: int
    rate: float


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds (user + system) consumed so far by each party."""

    asterisk: float
    ours: float
    callpath: float  # the line's IVR process (telephony/callpath_child.py)
    postgres: float
    sipp_uas: float
    children: float  # reaped child processes: the sipp callers once they have exited


# ----------------------------------------------------------------------------- CPU accounting


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    return text[text.rindex(")") + 2 :].split()


def _process_cpu(pid: int | None, *, with_reaped_children: bool = False) -> float:
    """utime + stime of ``pid`` (all its threads), optionally plus its reaped children's."""
    if pid is None:
        return 0.0
    try:
        fields = _proc_stat(pid)
    except (OSError, ValueError):
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _postgres_cpu(data_dir: Path) -> float:
    """The cluster's CPU: the postmaster with every backend it has reaped, plus live ones.

    Backends exit when their connection closes; the postmaster's cutime/cstime keep their CPU,
    so the sum stays monotonic while the pool's connections come and go.
    """
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = _process_cpu(postmaster, with_reaped_children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(_proc_stat(int(entry.name))[1]) == postmaster:
                total += _process_cpu(int(entry.name))
    return total


def _asterisk_pid(lab: Lab) -> int | None:
    try:
        return int(lab.pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def sample_cpu(lab: Lab, cluster: EmbeddedPostgres, uas: Sipp, line: Line) -> CpuSample:
    """What every party has used so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    uas_pid = uas.process.pid if uas.process is not None else None
    return CpuSample(
        asterisk=_process_cpu(_asterisk_pid(lab)),
        ours=own.ru_utime + own.ru_stime,
        callpath=_process_cpu(line.callpath.pid),
        postgres=_postgres_cpu(cluster.data_dir),
        sipp_uas=_process_cpu(uas_pid),
        children=children.ru_utime + children.ru_stime,
    )


class LogTally(logging.Handler):
    """Counts the line's warnings and errors by message; echoes only the first few of each.

    A tracker or recorder problem repeats once per call: a thousand identical lines would
    bury the figures, while a count printed under them does not.
    """

    def __init__(self, echo_per_message: int = 3) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self._echo_per_message = echo_per_message
        self._echo = logging.StreamHandler()
        self._echo.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record under its message with numbers blanked; echo the first few."""
        key = f"{record.name}: {_DIGITS.sub('N', record.getMessage())}"
        self.counts[key] += 1
        if self.counts[key] <= self._echo_per_message:
            self._echo.emit(record)


# ----------------------------------------------------------------------------- setup


def caller_groups(calls: int, rate: float, run_tag: str) -> list[CallerGroup]:
    """Split the surge into two sipp processes with distinct keys and caller-number prefixes
    (every call its own caller: see :func:`place`)."""
    first = calls // 2
    shares = (
        ("informasi", "3", "information", {"general": 5}, first),
        ("darurat/kebakaran", "12", "fire", {"fire": 5}, calls - first),
    )
    groups = []
    for index, (label, dtmf, queue, skills, count) in enumerate(shares):
        if count == 0:
            continue
        groups.append(CallerGroup(
            label, dtmf, queue, skills, caller_id=f"0899{run_tag}{index}", calls=count,
            rate=rate * count / calls,
        ))
    return groups


def operators_needed(rate: float, talk: float, wrapup: int) -> int:
    """Operators one group needs so that no caller waits for a free one.

    Each answered call holds its operator for the caller's talk time, the ringing and SIP
    around it, and then the queue's wrap-up pause (``queue_wrapup_seconds``) before that
    operator can ring again: ``rate`` times that is how many are busy at any moment.
    """
    return math.ceil(rate * (talk + OPERATOR_OVERHEAD_SECONDS + wrapup) * OPERATOR_HEADROOM)


async def log_in_operators(
    line: Line, groups: Sequence[CallerGroup], counts: Sequence[int]
) -> int:
    """Log each group's operator pool into its queues, many at once; returns memberships.

    Operators op1001.. are handed out pool by pool; every one also joins all-operators.
    """
    desk = OperatorDesk(line.listener, load_menu(line.settings.menu_file))
    names = iter(operator_names(sum(counts)))
    limit = asyncio.Semaphore(LOGIN_CONCURRENCY)
    memberships = 0

    async def one(interface: str, skills: dict[str, int]) -> None:
        nonlocal memberships
        async with limit:
            joined = await desk.log_in(interface, skills)
        # Not `memberships += len(await ...)`: that reads the total before the await and
        # writes it back after, losing the other tasks' additions meanwhile.
        memberships += len(joined)

    async with asyncio.TaskGroup() as tasks:
        for group, count in zip(groups, counts, strict=True):
            for _ in range(count):
                tasks.create_task(one(f"PJSIP/{next(names)}", group.skills))
    return memberships


async def wait_members_recorded(line: Line, memberships: int, within: float) -> float:
    """Wait until the recorder has written every QueueMemberAdded; returns seconds waited.

    Thousands of membership facts queue up behind one another in the recorder; calls placed
    before they are written would have their facts recorded late, which is not what a surge
    on a staffed line looks like.
    """
    started = time.monotonic()
    while time.monotonic() - started < within:
        count = await line.database.run(
            lambda c: c.fetchval("SELECT count(*) FROM queue_members"))
        if count >= memberships:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


# ----------------------------------------------------------------------------- live probes

STALL_PROBE_SECONDS = 0.005  # the loop-stall probe's sleep: its overshoot is the stall
BACKLOG_PROBE_SECONDS = 0.1  # how often the records' own lag is sampled


class _WallboardProbe:
    """A FactObserver registered after the wallboard's: when it hears of a fact, the
    LiveBoard has it. Keeps (call id, seconds since Asterisk stamped the event)."""

    def __init__(self) -> None:
        self.lags: list[tuple[str, float]] = []
        self.active = True

    def recorded(self, facts: Sequence[CallFact]) -> None:
        if not self.active:
            return
        now = time.time()
        self.lags.extend((str(getattr(fact, "call_id", "")), now - fact.at.timestamp())
                         for fact in facts)

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """Nothing to time."""


@dataclass(frozen=True)
class LiveFigures:
    """What the live probes measured during the surge."""

    wallboard_lags: list[float]
    callpath_stalls: list[float]  # the FastAGI IVR's own process (telephony/callpath_child.py)
    ami_stalls: list[float]  # the AMI listener's and recorder's (telephony/ami/threaded.py)
    main_stalls: list[float]  # the loop of HTTP, the reports and the services
    backlog_lags: list[float]  # the records' own lag as the report gate reads it, sampled



async def _backlog_probe(line: Line, lags: list[float]) -> None:
    """Every BACKLOG_PROBE_SECONDS, how long the oldest tracked fact (or AMI event) not yet
    written has waited: what the reports' gate gives way to."""
    listener = line.listener
    while True:
        lags.append(max(listener.fact_lag_seconds, listener.event_lag_seconds))
        await asyncio.sleep(BACKLOG_PROBE_SECONDS)


async def _stall_probe(stalls: list[float]) -> None:
    """Sleep STALL_PROBE_SECONDS over and over on the running loop; note each overshoot."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(STALL_PROBE_SECONDS)
        stalls.append(max(0.0, loop.time() - before - STALL_PROBE_SECONDS))


@dataclass
class LiveProbes:
    """The AMI -> wallboard probe and the stall probes of both loops, over the surge."""

    board: _WallboardProbe
    callpath_stalls: list[float]
    ami_stalls: list[float]
    main_stalls: list[float]
    backlog_lags: list[float]
    probes: list[asyncio.Future[None] | concurrent.futures.Future[None]]
    stop_callpath_probe: Callable[[], None]

    @classmethod
    def start(cls, line: Line) -> LiveProbes:
        board = _WallboardProbe()
        line.listener.observe(board)
        callpath: list[float] = []
        ami: list[float] = []
        main: list[float] = []
        backlog: list[float] = []
        probes: list[asyncio.Future[None] | concurrent.futures.Future[None]] = [
            asyncio.create_task(_stall_probe(main), name="loop-stall-probe"),
            asyncio.create_task(_backlog_probe(line, backlog), name="backlog-probe")]
        # The IVR's process runs the same probe on its loop and sends the stalls back.
        stop_callpath_probe = line.callpath.probe_stalls(STALL_PROBE_SECONDS, callpath.append)
        if line.listener.thread.loop is not None:
            probes.append(asyncio.run_coroutine_threadsafe(_stall_probe(ami),
                                                           line.listener.thread.loop))
        return cls(board, callpath, ami, main, backlog, probes, stop_callpath_probe)

    def stop(self) -> None:
        self.board.active = False
        self.stop_callpath_probe()
        for probe in self.probes:
            probe.cancel()

    def figures(self, call_ids: set[str]) -> LiveFigures:
        return LiveFigures([lag for call, lag in self.board.lags if call in call_ids],
                           list(self.callpath_stalls), list(self.ami_stalls),
                           list(self.main_stalls), list(self.backlog_lags))


def live_latencies(outcome: Outcome) -> list[tuple[str, list[float]]]:
    """The report's extra latency rows: AMI -> wallboard, and the loops' stalls."""
    if outcome.live is None:
        return []
    return [("AMI event -> wallboard", outcome.live.wallboard_lags),
            ("IVR loop stall (5 ms probe)", outcome.live.callpath_stalls),
            ("AMI loop stall (5 ms probe)", outcome.live.ami_stalls),
            ("main loop stall (5 ms probe)", outcome.live.main_stalls),
            ("unwritten facts' lag (sampled)", outcome.live.backlog_lags)]


@dataclass
class ReportLoad:
    """A supervisor's 31-day shift report, asked for back to back during the surge (in the
    line's own process and loop, as the console asks for it): does the call path stall?"""

    seconds: list[float]
    task: asyncio.Task[None]

    @staticmethod
    async def ask_once(line: Line) -> None:
        """The 31-day shift report, once."""
        today = line.reports.today()
        await line.reports.shift_report(Period(today - timedelta(days=30), today))

    @classmethod
    def start(cls, line: Line) -> ReportLoad:
        seconds: list[float] = []

        async def ask() -> None:
            while True:
                started = time.monotonic()
                await cls.ask_once(line)
                seconds.append(time.monotonic() - started)

        return cls(seconds, asyncio.create_task(ask(), name="report-during-surge"))

    async def stop(self) -> list[float]:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return self.seconds


async def grow_line_history(settings: Settings, calls: int) -> None:
    """Give the line's database ``calls`` generated calls of history before the surge (the
    reports' bench's generator), so a report during the surge reads a site's month."""
    from history import (  # noqa: PLC0415 - a sibling script, only when asked
        as_a_running_site,
        grow_history,
    )

    started = time.monotonic()
    connection = await asyncpg.connect(settings.database_dsn)
    try:
        await migrate(connection)  # before the line starts: its workers see a whole history
        await grow_history(connection, ShiftCalendar(settings.shifts, settings.timezone),
                           settings.timezone, have=0, calls=calls, now=datetime.now(UTC))
        await as_a_running_site(connection)
    finally:
        await connection.close()
    print(f"{calls:,} calls of history generated in {time.monotonic() - started:.0f} s.")


# ----------------------------------------------------------------------------- the surge


async def place(
    settings: Settings, group: CallerGroup, talk: float, key_delay: float, number: str = "112"
) -> SippResult:
    """Run one caller group's sipp to the end (bounded by the harness's own timeout)."""
    async with caller(
        settings.sip_host, settings.sip_port, number, caller_id=group.caller_id,
        dtmf=group.dtmf, dtmf_delay=key_delay, talk_seconds=talk, calls=group.calls,
        rate=group.rate, numbered=True,
    ) as sipp:
        return await sipp.wait()


async def fetch_rows(line: Line, since: datetime, numbers: list[str]) -> list[asyncpg.Record]:
    """This run's call rows: arrived since the surge began, from one of its groups' numbers
    (each call's is its group's prefix and sipp's call number)."""
    return await line.database.run(lambda c: c.fetch(
        "SELECT * FROM call_outcomes WHERE arrived_at >= $1 AND caller_number LIKE ANY($2)",
        since, [f"{number}%" for number in numbers],
    ))


async def recording_lags(line: Line, call_ids: list[str]) -> list[float]:
    """Seconds from each fact's Asterisk timestamp to its commit in ``call_events``.

    The line records AMI events strictly in order, one transaction each; under a surge the
    backlog shows here, not in the call figures (which use Asterisk's own timestamps).
    """
    rows = await line.database.run(lambda c: c.fetch(
        "SELECT extract(epoch FROM recorded_at - at)::float8 AS lag FROM call_events "
        "WHERE call_id = ANY($1)",
        call_ids,
    ))
    return [float(r["lag"]) for r in rows]


async def _facts_of(connection: asyncpg.Connection, call_id: str) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT kind, at, body FROM call_events WHERE call_id = $1 ORDER BY at, event_id",
        call_id,
    )


async def timelines(line: Line, rows: Sequence[asyncpg.Record], limit: int) -> list[str]:
    """What the database knows of a few incomplete calls: each fact, seconds after arrival.

    An incomplete row says which column is empty; the facts say where the call stopped
    (never reached the queue, no AgentComplete, ...), which is what a fix starts from.
    """
    shown = []
    for row in [r for r in rows if is_incomplete(r)][:limit]:
        facts = await line.database.run(partial(_facts_of, call_id=str(row["call_id"])))
        steps = []
        for fact in facts:
            body = json.loads(fact["body"])
            # IVR variables as name=value: which of them came, and when, is what matters.
            what = (f"{body['name']}={body['value']}" if fact["kind"] == "ivr_variable"
                    else ",".join(f"{n}={v}" for n, v in body["variables"])
                    if fact["kind"] == "ivr_variables" else fact["kind"])
            offset = (fact["at"] - row["arrived_at"]).total_seconds()
            steps.append(f"{what} +{offset:.1f}")
        shown.append(f"{row['caller_number']} {row['call_id']}: " + ", ".join(steps))
    return shown


async def wait_recorded(
    line: Line, since: datetime, numbers: list[str], expected: int, within: float
) -> tuple[list[asyncpg.Record], float]:
    """Poll until ``expected`` rows exist and all have ended, or ``within`` s passed."""
    started = time.monotonic()
    while True:
        rows = await fetch_rows(line, since, numbers)
        if len(rows) >= expected and all(r["ended_at"] is not None for r in rows):
            break
        if time.monotonic() - started >= within:
            break
        await asyncio.sleep(1.0)
    return rows, time.monotonic() - started


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (no interpolation: p99 is a call that really happened)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _seconds_between(rows: Sequence[asyncpg.Record], start: str, end: str) -> list[float]:
    return [(r[end] - r[start]).total_seconds() for r in rows
            if r[start] is not None and r[end] is not None]


def new_log_lines(path: Path, offset: int) -> list[str]:
    """Asterisk's warnings and errors written since ``offset``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line]


@dataclass(frozen=True)
class Outcome:
    """Everything the report prints."""

    groups: list[CallerGroup]
    results: list[SippResult]
    operators: int
    rows: list[asyncpg.Record]
    surge_seconds: float
    settle_seconds: float
    cpu: tuple[CpuSample, CpuSample]
    asterisk_warnings: list[str]
    recording_lags: list[float]
    line_log: Counter[str]
    incomplete_examples: list[str]
    live: LiveFigures | None = None  # wallboard lag and loop stalls (None: not measured)
    report_seconds: list[float] | None = None  # 31-day reports run during the surge
    report_waits: tuple[int, float] = (0, 0.0)  # of them, those that gave way, and how long


def report(outcome: Outcome, talk: float) -> int:
    """Print the figures; returns 0 when every call succeeded and was fully recorded."""
    requested = sum(g.calls for g in outcome.groups)
    print(f"\nSurge: {requested} calls, {sum(g.rate for g in outcome.groups):g}/s, "
          f"talk {talk:g} s, {outcome.operators} operators; "
          f"calls placed over {outcome.surge_seconds:.1f} s, "
          f"database complete {outcome.settle_seconds:.1f} s after the last call.")
    print(f"\n  {'group':18} {'keys':4} {'queue':11} {'placed':>6} {'ok':>6} {'failed':>6} "
          f"{'rows':>5} {'missing':>7} {'incompl':>7}")
    total_failed = total_missing = total_incomplete = 0
    missing_columns: Counter[str] = Counter()
    for group, result in zip(outcome.groups, outcome.results, strict=True):
        rows = [r for r in outcome.rows if r["caller_number"].startswith(group.caller_id)]
        placed = int(result.stats.get("OutgoingCall(C)", "0") or 0)
        # A call sipp never finished (killed at its timeout) is as failed as a FailedCall.
        failed = group.calls - result.successful
        missing = max(0, placed - len(rows))
        incomplete = 0
        for row in rows:
            gaps = lacking(row)
            missing_columns.update(gaps)
            incomplete += bool(gaps)
        total_failed += failed
        total_missing += missing
        total_incomplete += incomplete
        print(f"  {group.label:18} {group.dtmf:4} {group.queue:11} {placed:>6} "
              f"{result.successful:>6} {failed:>6} {len(rows):>5} {missing:>7} {incomplete:>7}")
    print(f"  {'total':35} {'':>6} {requested - total_failed:>6} {total_failed:>6} "
          f"{len(outcome.rows):>5} {total_missing:>7} {total_incomplete:>7}")
    # A caller whose key was lost is queued where other keys (or silence) lead.
    lost = {g.label: sum(1 for r in outcome.rows if r["caller_number"].startswith(g.caller_id)
                         and r["queue"] != g.queue) for g in outcome.groups}
    print("  keys lost (queued elsewhere than their keys lead): " + ", ".join(
        f"{label} {count}" for label, count in lost.items()))
    if missing_columns:
        print("  incomplete rows lack: " + ", ".join(
            f"{name} ({count})" for name, count in missing_columns.most_common()))
    for example in outcome.incomplete_examples:
        print(f"    e.g. {example}")
    dispositions = Counter(str(r["disposition"]) for r in outcome.rows)
    print("  dispositions: " + ", ".join(f"{k} {v}" for k, v in dispositions.most_common()))
    extra = len(outcome.rows) - sum(
        int(r.stats.get("OutgoingCall(C)", "0") or 0) for r in outcome.results)
    if extra > 0:
        print(f"  {extra} more rows than calls placed (a call recorded twice?)")

    to_queue = _seconds_between(outcome.rows, "arrived_at", "queue_joined_at")
    to_operator = _seconds_between(outcome.rows, "queue_joined_at", "answered_at")
    print(f"\n  {'latency':28} {'p50':>8} {'p99':>8} {'max':>8} {'n':>5}")
    for name, values in (("answer -> queue (IVR incl.)", to_queue),
                         ("queue -> operator answer", to_operator),
                         ("AMI event -> database", outcome.recording_lags),
                         *live_latencies(outcome)):
        print(f"  {name:28} {_ms(percentile(values, 0.5)):>8} "
              f"{_ms(percentile(values, 0.99)):>8} {_ms(max(values, default=None)):>8} "
              f"{len(values):>5}")
    if outcome.report_seconds is not None:
        print(f"  31-day shift reports during the surge: {len(outcome.report_seconds)}, "
              f"{_ms(min(outcome.report_seconds, default=None))}-"
              f"{_ms(max(outcome.report_seconds, default=None))} each; "
              f"{outcome.report_waits[0]} gave way to the call records, "
              f"{outcome.report_waits[1]:.1f} s in all")

    before, after = outcome.cpu
    wall = outcome.surge_seconds + outcome.settle_seconds
    print(f"\n  {'CPU seconds (surge + settle, ' + f'{wall:.0f} s wall)':36} {'total':>7} "
          f"{'per call':>9}")
    for name, used in (
        ("Asterisk", after.asterisk - before.asterisk),
        ("line (AMI+recorder+HTTP, main process)", after.ours - before.ours),
        ("line's IVR process", after.callpath - before.callpath),
        ("PostgreSQL", after.postgres - before.postgres),
        ("sipp callers (load generator)", after.children - before.children),
        ("sipp operator UAS (load generator)", after.sipp_uas - before.sipp_uas),
    ):
        print(f"  {name:36} {used:>7.1f} {used / requested * 1000:>6.1f} ms")

    if outcome.asterisk_warnings:
        # "[date] WARNING[tid] file.c: text": grouped by text, ids and numbers blanked.
        kinds = Counter(_IDS.sub("N", w.split("] ", 1)[-1].split(" ", 1)[-1])
                        for w in outcome.asterisk_warnings)
        print(f"\n  Asterisk logged {len(outcome.asterisk_warnings)} warnings/errors:")
        for message, count in kinds.most_common(5):
            print(f"    {count:>6} x {message[:120]}")
    if outcome.line_log:
        print("\n  The line logged (warnings and errors, by message):")
        for message, count in outcome.line_log.most_common(8):
            print(f"    {count:>6} x {message[:120]}")
    for group, result in zip(outcome.groups, outcome.results, strict=True):
        if result.errors and result.successful < group.calls:
            print(f"\n  sipp {group.label} (exit {result.returncode}) reported:\n    "
                  + "\n    ".join(result.errors.splitlines()[:8]))
    ok = total_failed == 0 and total_missing == 0 and total_incomplete == 0
    print(f"\n{requested - total_failed} of {requested} calls succeeded; "
          f"{total_missing} missing and {total_incomplete} incomplete in the database.")
    return 0 if ok else 1


async def surge(
    lab: Lab, cluster: EmbeddedPostgres, settings: Settings, groups: list[CallerGroup],
    operator_counts: list[int], talk: float, key_delay: float, tally: LogTally,
    *, history: int = 0, report_during: bool = False, cold_rollups: bool = False,
) -> Outcome:
    """Run the line, staff it, place the calls, wait for the database; gather the figures."""
    expected_seconds = max(g.calls / g.rate for g in groups) + talk + 10
    if history:
        await grow_line_history(settings, history)
    async with running_line(settings) as line, operator(
        settings.lab_operator_sip_port, timeout=expected_seconds + SETTLE_SECONDS + 600,
    ) as uas:
        async with asyncio.timeout(30):
            await line.listener.wait_ready()
        started = time.monotonic()
        memberships = await log_in_operators(line, groups, operator_counts)
        login_seconds = time.monotonic() - started
        drained = await wait_members_recorded(line, memberships, within=120)
        print(f"{sum(operator_counts)} operators logged in ({memberships} queue memberships) "
              f"in {login_seconds:.1f} s; recorded {drained:.1f} s later.")
        if history and not cold_rollups:
            rolled = time.monotonic()
            await ReportLoad.ask_once(line)  # rolls up the month's closed shifts
            print(f"The month's closed shifts rolled up in {time.monotonic() - rolled:.1f} s "
                  "(a running site's wallboard has them rolled up).")

        log_offset = lab.messages_log.stat().st_size if lab.messages_log.exists() else 0
        since = datetime.now(UTC) - timedelta(seconds=1)
        before = sample_cpu(lab, cluster, uas, line)
        live = LiveProbes.start(line)
        gate = line.reports.gate
        waits_before = (gate.gave_way, gate.gave_way_seconds)
        reporting = ReportLoad.start(line) if report_during else None
        surge_started = time.monotonic()
        for group in groups:
            print(f"  sipp: {group.calls} calls at {group.rate:g}/s from {group.caller_id}, "
                  f"keys {group.dtmf} -> {group.queue}")
        results = list(await asyncio.gather(
            *(place(settings, g, talk, key_delay) for g in groups)))
        surge_seconds = time.monotonic() - surge_started
        placed = sum(int(r.stats.get("OutgoingCall(C)", "0") or 0) for r in results)
        live.stop()
        report_seconds = await reporting.stop() if reporting is not None else None
        report_waits = (gate.gave_way - waits_before[0],
                        gate.gave_way_seconds - waits_before[1])
        print(f"sipp done after {surge_seconds:.1f} s; waiting for the database ...")
        rows, settle_seconds = await wait_recorded(
            line, since, [g.caller_id for g in groups], placed, SETTLE_SECONDS)
        # Sampled before the line stops: PostgreSQL's backends are still alive, and the
        # line's own shutdown is not part of the surge.
        after = sample_cpu(lab, cluster, uas, line)
        lags = await recording_lags(line, [str(r["call_id"]) for r in rows])
        return Outcome(
            groups, results, sum(operator_counts), rows, surge_seconds, settle_seconds,
            (before, after), new_log_lines(lab.messages_log, log_offset), lags,
            Counter(tally.counts), await timelines(line, rows, limit=3),
            live.figures({str(r["call_id"]) for r in rows}), report_seconds, report_waits,
        )


async def run(
    args: argparse.Namespace, root: Path, cluster: EmbeddedPostgres, tally: LogTally
) -> int:
    """Start the lab and the line on ``cluster``, run the surge, print the report."""
    run_tag = f"{random.randrange(10_000):04d}"  # tells this run's caller numbers apart
    groups = caller_groups(args.calls, args.rate, run_tag)
    base = bench_settings(root / "state", cluster.dsn(), cluster.port, 1)
    counts = [
        max(1, args.operators * g.calls // args.calls) if args.operators else
        operators_needed(g.rate, args.talk, base.queue_wrapup_seconds)
        for g in groups
    ]
    settings = replace(base, lab_operators=sum(counts))
    print(f"Starting the Asterisk lab '{settings.lab_instance}' with {sum(counts)} operator "
          "endpoints ...")
    async with running_lab(settings) as lab:
        outcome = await surge(lab, cluster, settings, groups, counts, args.talk, args.key_delay,
                              tally, history=args.history, report_during=args.report_during,
                              cold_rollups=args.cold_rollups)
    return report(outcome, args.talk)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000, help="calls to place (default 1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second (default 50)")
    parser.add_argument("--key-delay", type=float, default=2.0,
                        help="seconds after the answer before the first key (default 2: a caller "
                             "who hears the greeting start; a key pressed before the IVR's first "
                             "prompt runs is discarded by Asterisk, as on a real line)")
    parser.add_argument("--talk", type=float, default=8.0,
                        help="seconds each caller stays after the IVR choice (default 8)")
    parser.add_argument("--operators", type=int, default=0,
                        help="operators to log in (default: enough for the rate and talk time)")
    parser.add_argument("--history", type=int, default=0,
                        help="calls of generated history in the database before the surge "
                             "(bench/history.py; default none)")
    parser.add_argument("--report-during", action="store_true",
                        help="ask for the 31-day shift report back to back during the surge")
    parser.add_argument("--cold-rollups", action="store_true",
                        help="with --history: leave the month's shifts not rolled up, so the "
                             "first report during the surge rolls them up (an upgrade's first "
                             "day; default: rolled up before the surge, as on a running site)")
    search = parser.add_argument_group(
        "capacity", "--find-capacity: the highest rate that passes, the line beside "
        "dialplan-only Asterisk (bench/capacity.py); --calls, --rate and --operators are unused")
    search.add_argument("--find-capacity", action="store_true",
                        help="search the capacity instead of running one surge")
    search.add_argument("--start-rate", type=float, default=10.0, help="first rate (default 10)")
    search.add_argument("--min-rate", type=float, default=1.0,
                        help="lowest rate to try when the first fails (default 1)")
    search.add_argument("--max-rate", type=float, default=160.0,
                        help="highest rate to try (default 160)")
    search.add_argument("--resolution", type=float, default=2.0,
                        help="stop when pass and fail are this close, calls/s (default 2)")
    search.add_argument("--step-seconds", type=float, default=25.0,
                        help="seconds of arrivals per step (default 25)")
    search.add_argument("--step-pause", type=float, default=5.0,
                        help="seconds between steps (default 5)")
    search.add_argument("--retries", type=int, default=1,
                        help="tries again a failed step this many times; a rate passes if any "
                             "try does (default 1: the machine may be shared; 0 on a quiet one)")
    search.add_argument("--max-search-seconds", type=float, default=1800.0,
                        help="time cap of each of the two searches (default 1800)")
    args = parser.parse_args(argv)
    if args.find_capacity:
        from capacity import Bounds  # noqa: PLC0415 - imports this module: only when asked
        try:
            Bounds(args.start_rate, args.min_rate, args.max_rate, args.resolution).check()
        except ValueError as exc:
            parser.error(str(exc))
        if (args.step_seconds <= 0 or args.max_search_seconds <= 0 or args.step_pause < 0
                or args.retries < 0):
            parser.error("--step-seconds and --max-search-seconds must be positive, "
                         "--step-pause and --retries not negative")
    if args.calls < 1 or args.rate <= 0 or args.talk < 0 or args.operators < 0:
        parser.error("--calls and --rate must be positive, --talk and --operators not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    # The line logs its own troubles (AMI backlog, spooling, rejected events) at WARNING.
    tally = LogTally()
    logging.getLogger().addHandler(tally)
    logging.getLogger().setLevel(logging.WARNING)
    with temporary_cluster("siaga112-surge-") as (root, cluster):
        if args.find_capacity:
            from capacity import find_capacity  # noqa: PLC0415 - it imports this module
            return asyncio.run(find_capacity(args, root, cluster, tally))
        return asyncio.run(run(args, root, cluster, tally))

if __name__ == "__main__":
    sys.exit(main())

