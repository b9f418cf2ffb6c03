"""Two Asterisk nodes behind Kamailio under a surge (issue 15): the rate one node carries
alone, the rate two carry together, and a node killed in the middle of a surge.

Every call goes through the lab's Kamailio front (telephony/lab/kamailio.py) to lab nodes
with their own systemname and line server process, all writing into one database
(telephony/lab/cluster.py); the operators' phones register at the front and every operator
is logged in on every node. The callers are bench/surge.py's (half press 3, half 1 then 2).

1. ``capacity``: bench/capacity.py's search (doubling, then bisecting; a step passes when
   every call placed completed, reached an operator, and answer -> queue p99 <= 4 s), first
   with one node behind the front, then with two. Printed: each rate, the ratio, and
   answer -> queue p50/p99 of each one's best passing step.
2. ``kill``: a surge through two nodes, and node1 killed (``kill -9`` its Asterisk and its
   line server) after ``--kill-after`` of the arrivals. Printed: the calls node1 had in
   progress (lost), and how their records ended once node1 came back (its line's resync
   declares them vanished); the calls the front dispatched, how many have a record, how many
   of those node2's line made from the front's record (node1 died before recording them:
   "hilang bersama node node1"), and how many placed calls have no record at all (target 0);
   the time from the kill to the first new call answered on node2;
   the share of the calls placed in the failover window (``--window`` s from the kill) that
   still reached an operator; and whether every call placed after the window did.
3. ``surge``: ``--calls`` at ``--rate`` through two nodes (issue 15's surge: the rate one
   node alone failed). Printed: whether every call reached an operator, whether any operator
   rang twice at once (an INVITE reached their phone while it rang for, or talked on,
   another call: :func:`phone_calls` reads the phones' SIP trace, :func:`double_rings` finds
   the overlaps; the rings Asterisk reported, ``AgentCalled``, are counted too, but they
   include those the front refused with 486 before they reached a phone), and whether the
   database holds every call complete; answer -> queue p50/p99. Exit status 0 when all three
   hold.

``--node-cpu FRACTION`` gives each node (its Asterisk, its line server and everything they
start) a CPU budget of its own with a cgroup CPU quota (telephony/lab/cgroup.py), as a
machine of that many cores would: on one small host the nodes are otherwise never the
bottleneck (PostgreSQL, the front and sipp share their cores). Each step then prints each
node's CPU use against its budget.

Run: ``python bench/cluster.py [--mode capacity|kill|surge|both]`` (root: the lab needs it).
The machine is shared and small (2 cores for both nodes, the front, PostgreSQL and sipp):
the figures are indicative; on separate machines the ratio is what two boxes give.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import capacity  # bench/ is sys.path[0] when bench/cluster.py runs as a script
import surge
from rig import bench_settings, lacking

from telephony.calls.ids import node_of
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.lab.cgroup import (
    CgroupError,
    CpuBudget,
    NodeGroups,
    usage_cores,
    writable_or_refuse,
)
from telephony.lab.chroot import operator_names
from telephony.lab.cluster import Cluster, Node, cluster_settings, running_cluster
from telephony.lab.line import LineServer
from telephony.lab.sipp import SippResult, caller

SKILLS = {"general": 5, "medical": 5, "fire": 5, "security": 5, "disaster": 5}
RTP_BASE = 42000  # node i: 42000 + i * 4000 (below the ephemeral range, apart from surge's)
RTP_SPAN = 4000
SETTLE_SECONDS = 120.0
# A call the front dispatched and no node recorded becomes a record this long after (the
# site default is a minute; the bench waits less).
RECONCILE_GRACE = 10.0
# What the front logs as it refuses a second ring of an operator (kamailio.cfg, RING_ONCE).
FRONT_REFUSAL = "already rings for another call: 486"


@dataclass(frozen=True)
class Plan:
    """What every step shares."""

    step_seconds: float
    talk: float
    key_delay: float


def pin(pid: int | None, cpu: int) -> None:
    """Keep a process, every thread of it, on one CPU (threads it starts later inherit it)."""
    if pid is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {cpu})


def pin_nodes(cluster: Cluster) -> None:
    """Node i's Asterisk and line server on CPU i (of those there are): each node as if on
    a machine of its own, one core each; PostgreSQL, the front and sipp stay unpinned."""
    cpus = sorted(os.sched_getaffinity(0))
    for index, node in enumerate(cluster.nodes):
        cpu = cpus[index % len(cpus)]
        with contextlib.suppress(OSError, ValueError):
            pin(int(node.lab.pid_file.read_text(encoding="ascii").strip()), cpu)
        pin(node.line.pid, cpu)


def node_pids(node: Node) -> list[int | None]:
    """A node's Asterisk and line server (their children are found from them)."""
    asterisk = None
    with contextlib.suppress(OSError, ValueError):
        asterisk = int(node.lab.pid_file.read_text(encoding="ascii").strip())
    return [asterisk, node.line.pid]


@dataclass
class Bench:
    """A running cluster and, with ``--node-cpu``, its nodes' CPU groups."""

    cluster: Cluster
    groups: NodeGroups | None = None

    def confine(self, node: Node) -> None:
        """Put ``node`` (again: after a restart) into its CPU group, if there are groups."""
        if self.groups is not None:
            self.groups.confine(node.name, node_pids(node))

    def cpu_marks(self) -> dict[str, tuple[float, int, int, int]]:
        """Per node: (now, CPU ns used, periods, throttled periods) so far."""
        if self.groups is None:
            return {}
        return {node.name: (time.monotonic(), self.groups.usage_ns(node.name),
                            *self.groups.throttled(node.name)) for node in self.cluster.nodes}

    def cpu_line(self, before: dict[str, tuple[float, int, int, int]]) -> str:
        """Each node's CPU use since ``before`` against its budget ('' without groups)."""
        if self.groups is None:
            return ""
        now = self.cpu_marks()
        parts = []
        for name, (at, used, periods, throttled) in sorted(now.items()):
            at0, used0, periods0, throttled0 = before[name]
            cores = usage_cores(used - used0, at - at0)
            share = (throttled - throttled0) / max(periods - periods0, 1)
            parts.append(f"{name} {cores:.2f} of {self.groups.budget.fraction:g} cores, "
                         f"quota ran out in {share:.0%} of periods")
        return "; ".join(parts)


@contextlib.asynccontextmanager
async def cluster_of(pg: EmbeddedPostgres, root: Path, names: Sequence[str], operators: int,
                     *, pinned: bool = False, budget: CpuBudget | None = None,
                     trace_phones: bool = False) -> AsyncIterator[Bench]:
    """A running cluster of ``names`` behind the front, on the bench's database (each node
    on a CPU of its own if ``pinned``, and held to ``budget`` with a CPU quota if given:
    the groups outlive the nodes, and are removed however the run ends); the phones' SIP
    messages are kept if ``trace_phones`` (:func:`phone_calls`)."""
    base = replace(bench_settings(root / "state", pg.dsn(), pg.port, operators),
                   lab_instance="cluster-bench", queue_wrapup_seconds=0,
                   front_reconcile_grace_seconds=RECONCILE_GRACE, front_reconcile_seconds=2)
    front, nodes = cluster_settings(base, names, rtp_base=RTP_BASE, rtp_span=RTP_SPAN)
    print(f"Starting {len(nodes)} node(s) behind the front with {operators} operators"
          f"{'' if budget is None else f', {budget.fraction:g} cores each'} ...")
    with contextlib.ExitStack() as stack:
        groups = None if budget is None else stack.enter_context(NodeGroups(budget, names))
        async with running_cluster(front, nodes, pg.dsn(), operators=operator_names(operators),
                                   skills=SKILLS, trace_phones=trace_phones) as running:
            if pinned:
                pin_nodes(running)
            bench = Bench(running, groups)
            for node in running.nodes:
                bench.confine(node)
            yield bench


async def place(cluster: Cluster, group: surge.CallerGroup, talk: float, key_delay: float,
                ) -> SippResult:
    """One caller group through the front, from the carrier's address, to the end."""
    async with caller(cluster.front.kamailio_host, cluster.front.kamailio_port,
                      host=cluster.front.carrier_address, caller_id=group.caller_id,
                      dtmf=group.dtmf, dtmf_delay=key_delay, talk_seconds=talk,
                      calls=group.calls, rate=group.rate, numbered=True) as sipp:
        return await sipp.wait()


@dataclass(frozen=True)
class FrontFigures:
    """What the front recorded of the calls it dispatched, and their records."""

    dispatched: int  # distinct Call-IDs the front relayed to a node
    recorded: int  # of those, with a call record (joined on the carrier's Call-ID)
    lost_with_node: int  # of those, records a line made from the front's (cut 'node_lost')
    doubled: int  # Call-IDs with more than one record
    by_node: dict[str, int]  # dispatched calls without a record of their node's own, by node


async def front_figures(dsn: str, numbers: Sequence[str]) -> FrontFigures:
    """The front's records of these caller-number prefixes, and the calls' records."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """
            SELECT f.callid, min(f.node) AS node, count(c.call_id) AS records,
                   bool_or(c.cut_reason = 'node_lost') AS lost
            FROM front_calls f LEFT JOIN calls c ON c.sip_call_id = f.callid
            WHERE f.caller LIKE ANY($1) GROUP BY f.callid
            """, [f"{number}%" for number in numbers])
    finally:
        await connection.close()
    lost = [r for r in rows if r["lost"]]
    return FrontFigures(len(rows), sum(1 for r in rows if r["records"]), len(lost),
                        sum(1 for r in rows if r["records"] > 1),
                        dict(Counter(str(r["node"]) for r in lost)))


async def rows_of(dsn: str, numbers: Sequence[str]) -> list[asyncpg.Record]:
    """The calls of these caller-number prefixes."""
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(
            "SELECT * FROM call_outcomes WHERE caller_number LIKE ANY($1)",
            [f"{number}%" for number in numbers]))
    finally:
        await connection.close()


async def settled(dsn: str, numbers: Sequence[str], expected: int,
                  within: float = SETTLE_SECONDS) -> list[asyncpg.Record]:
    """The rows once ``expected`` of them exist and all ended, or after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        rows = await rows_of(dsn, numbers)
        if (len(rows) >= expected and all(r["ended_at"] is not None for r in rows)) \
                or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


async def quiet(cluster: Cluster) -> None:
    """No channel left on a live node before the next step (bounded)."""
    for node in cluster.nodes:
        if node.lab.is_running():
            await node.lab.acli("channel request hangup all")
            await node.lab.wait_cli("core show channels count",
                                    lambda out: out.startswith("0 active channels"), within=30)


def to_queue(rows: Sequence[asyncpg.Record]) -> tuple[float, ...]:
    """Answer -> queue of each call that got there, seconds."""
    return tuple((r["queue_joined_at"] - r["arrived_at"]).total_seconds() for r in rows
                 if r["queue_joined_at"] is not None and r["arrived_at"] is not None)


async def step(bench: Bench, dsn: str, rate: float, plan: Plan) -> capacity.StepResult:
    """One surge of ``plan.step_seconds`` of arrivals at ``rate`` through the front."""
    cluster = bench.cluster
    calls = max(2, round(rate * plan.step_seconds))
    groups = surge.caller_groups(calls, rate, f"{random.randrange(10_000):04d}")
    started = time.monotonic()
    marks = bench.cpu_marks()
    results = list(await asyncio.gather(
        *(place(cluster, g, plan.talk, plan.key_delay) for g in groups)))
    cpu = bench.cpu_line(marks)
    placed = sum(int(r.stats.get("OutgoingCall(C)", "0") or 0) for r in results)
    rows = await settled(dsn, [g.caller_id for g in groups], placed)
    await quiet(cluster)
    unreached = Counter(str(r["disposition"]) for r in rows if r["operator"] is None)
    if placed > len(rows):
        unreached["no row in the database"] = placed - len(rows)
    incomplete = sum(1 for r in rows if r["operator"] is not None and lacking(r))
    if incomplete:
        unreached["answered but incomplete"] = incomplete
    nodes = Counter(node_of(str(r["call_id"])) for r in rows)
    result = capacity.StepResult(
        rate, calls, placed, sum(g.calls - r.successful for g, r in zip(groups, results,
                                                                      strict=True)),
        sum(1 for r in rows if r["operator"] is not None), to_queue(rows),
        time.monotonic() - started,
        unreached=", ".join(f"{k} {v}" for k, v in unreached.most_common()),
        asked_span=capacity.asked_span(groups),
        arrival_span=capacity.span(capacity.arrived_second(str(r["call_id"])) for r in rows))
    print(f"  {result.line()}  [{', '.join(f'{n} {c}' for n, c in sorted(nodes.items()))}]")
    if cpu:
        print(f"    CPU while placing: {cpu}")
    return result


async def search(bench: Bench, dsn: str, bounds: capacity.Bounds, plan: Plan,
                 ) -> tuple[float | None, float | None, capacity.StepResult | None]:
    """bench/capacity.py's search on this cluster: (highest pass, lowest fail, best step)."""
    tries: list[tuple[float, bool]] = []
    best: capacity.StepResult | None = None
    while (rate := capacity.next_rate(capacity.trials(tries), bounds)) is not None:
        result = await step(bench, dsn, rate, plan)
        tries.append((rate, result.passed))
        if result.passed and (best is None or rate > best.rate):
            best = result
    passed, failed = capacity.bracket(capacity.trials(tries))
    return passed, failed, best


def _p(result: capacity.StepResult | None, fraction: float) -> str:
    value = None if result is None else surge.percentile(result.to_queue, fraction)
    return "-" if value is None else f"{value:.2f} s"


async def capacities(pg: EmbeddedPostgres, root: Path, args: argparse.Namespace,
                     ) -> float | None:
    """Both searches and their figures; returns the lowest rate one node failed."""
    plan = Plan(args.step_seconds, args.talk, args.key_delay)
    bounds = capacity.Bounds(args.start_rate, args.min_rate, args.max_rate, args.resolution)
    operators = surge.operators_needed(args.max_rate, args.talk, 0)
    found = {}
    for names in (("node1",), ("node1", "node2")):
        async with cluster_of(pg, root, names, operators, pinned=args.pin,
                              budget=budget_of(args)) as bench:
            found[len(names)] = await search(bench, pg.dsn(), bounds, plan)
    one, two = found[1], found[2]
    print("\n== capacity through the front ==")
    for label, (passed, failed, best) in (("one node", one), ("two nodes", two)):
        print(f"{label}: {passed if passed is not None else '-'} calls/s carried "
              f"(first failure {failed if failed is not None else '-'}); answer->queue "
              f"p50 {_p(best, 0.5)}, p99 {_p(best, 0.99)}")
    if one[0] and two[0]:
        print(f"ratio two/one: {two[0] / one[0]:.2f}")
    return one[1]


async def kill_surge(pg: EmbeddedPostgres, root: Path, args: argparse.Namespace,
                     rate: float) -> int:
    """A two-node surge with node1 killed part-way; prints the failover figures."""
    calls = args.kill_calls
    operators = surge.operators_needed(rate, args.talk, 0)
    groups = surge.caller_groups(calls, rate, f"{random.randrange(10_000):04d}")
    arrivals = calls / rate
    async with cluster_of(pg, root, ("node1", "node2"), operators,
                          budget=budget_of(args)) as bench:
        running = bench.cluster
        victim = running.node("node1")
        print(f"{calls} calls at {rate:g}/s through two nodes; node1 killed after "
              f"{args.kill_after * arrivals:.1f} s ...")
        began = datetime.now(UTC)
        placing = asyncio.gather(*(place(running, g, args.talk, args.key_delay) for g in groups))
        await asyncio.sleep(args.kill_after * arrivals)
        killed_at = datetime.now(UTC)
        await victim.kill()
        results = await placing
        placed = sum(int(r.stats.get("OutgoingCall(C)", "0") or 0) for r in results)
        numbers = [g.caller_id for g in groups]
        rows = await settled(pg.dsn(), numbers, 0, within=args.talk + 30)
        lost = [r for r in rows if node_of(str(r["call_id"])) == victim.name
                and r["ended_at"] is None]
        # node1 comes back as a service manager would bring it: its line's resync finds the
        # calls gone from its Asterisk and ends their records.
        await asyncio.to_thread(victim.lab.start, fresh=False)
        async with LineServer(victim.settings) as line:
            bench.confine(Node(victim.settings, victim.lab, line))
            rows = await settled(pg.dsn(), numbers, placed, within=60)
            front = await front_figures(pg.dsn(), numbers)
        lost_ids = {str(r["call_id"]) for r in lost}
        ended_as = Counter(str(r["disposition"]) for r in rows
                           if str(r["call_id"]) in lost_ids)
        await quiet(running)
    return kill_report(rows, groups, results, began, killed_at, rate, lost_ids, ended_as,
                       args.window, front)


def _placed_at(row: asyncpg.Record, groups: Sequence[surge.CallerGroup], began: datetime,
               ) -> datetime | None:
    """When sipp placed the call: its call number over its group's rate (numbered callers)."""
    for group in groups:
        number = str(row["caller_number"])
        if number.startswith(group.caller_id) and number[len(group.caller_id):].isdigit():
            index = int(number[len(group.caller_id):]) - 1
            return began + timedelta(seconds=index / group.rate)
    return None


def kill_report(rows: Sequence[asyncpg.Record], groups: Sequence[surge.CallerGroup],
                results: Sequence[SippResult], began: datetime, killed_at: datetime,
                rate: float, lost_ids: set[str], ended_as: Counter[str], window: float,
                front: FrontFigures) -> int:
    """The failover figures; exit status 0 when they meet the issue's targets."""
    window_end = killed_at + timedelta(seconds=window)
    after = [r for r in rows if r["arrived_at"] is not None and r["arrived_at"] > killed_at]
    first = min((r["arrived_at"] for r in after if node_of(str(r["call_id"])) != "node1"),
                default=None)
    in_window = int(rate * window)
    reached_in_window = sum(
        1 for r in rows if r["operator"] is not None
        and (at := _placed_at(r, groups, began)) is not None and killed_at <= at < window_end)
    late = [r for r in rows if (at := _placed_at(r, groups, began)) is not None
            and at >= window_end]
    # What failing over cost a caller: arrival at a node minus (estimated) placing.
    delays = [(r["arrived_at"] - at).total_seconds() for r in rows
              if r["arrived_at"] is not None and (at := _placed_at(r, groups, began)) is not None
              and killed_at <= at < window_end]
    placed = sum(int(r.stats.get("OutgoingCall(C)", "0") or 0) for r in results)
    failed = sum(g.calls - r.successful for g, r in zip(groups, results, strict=True))
    print("\n== node1 killed mid-surge ==")
    print(f"placed {placed}, sipp failed {failed}, rows {len(rows)}; the front dispatched "
          f"{front.dispatched}, {front.recorded} of them recorded; lost with their node (never "
          f"recorded by it, recorded from the front's record): {front.lost_with_node} "
          f"{front.by_node or ''}; with more than one record: {front.doubled}; placed with no "
          f"record at all: {max(placed - front.recorded, 0)}")
    print(f"calls in progress on node1 at the kill (lost): {len(lost_ids)}; their records "
          f"ended as: {dict(ended_as) or '-'}")
    to_first = None if first is None else (first - killed_at).total_seconds()
    print(f"kill -> first new call answered on node2: "
          f"{'-' if to_first is None else f'{to_first:.2f} s'} (target <= 5 s)")
    longest = f"{max(delays):.2f} s" if delays else "-"
    print(f"calls placed in the {window:g} s after the kill that reached an operator: "
          f"{reached_in_window}/{in_window} ({reached_in_window / max(in_window, 1):.0%}); "
          f"placed -> taken by a node, longest: {longest}")
    unreached_late = [r for r in late if r["operator"] is None]
    print(f"calls placed after that window: {len(late)}, not reaching an operator: "
          f"{len(unreached_late)}; on node1: "
          f"{sum(1 for r in late if node_of(str(r['call_id'])) == 'node1')}")
    ok = to_first is not None and to_first <= 5.0 and not unreached_late
    return 0 if ok else 1


@dataclass(frozen=True)
class Ring:
    """Asterisk rang ``operator`` for ``call_id`` at ``at`` (an ``operator_rung`` fact)."""

    call_id: str
    operator: str
    at: datetime


@dataclass(frozen=True)
class Answered:
    """``operator`` answered ``call_id`` and was held by it until ``ended_at``."""

    call_id: str
    operator: str
    answered_at: datetime
    ended_at: datetime


@dataclass(frozen=True)
class DoubleRing:
    """``ring`` came while its operator was taken by ``other``: still ringing for it
    (``talking`` False) or talking to it."""

    ring: Ring
    other: str
    talking: bool


def double_rings(rings: Sequence[Ring], answered: Sequence[Answered]) -> list[DoubleRing]:
    """Each ring of an operator while they were taken by another call, with that call.

    An operator is taken by a call they answered from the first time it rang them (their
    phone rings from then on; without a ring fact, from the answer) to its end: a ring for any
    other call in that span, from either node (their timestamps are Asterisk's, one host
    clock), is the operator ringing twice at once, or rung while talking. Two rings of calls
    neither of which they answered cannot be told apart from one after the other (a ring's
    end is not recorded), so they are not counted.
    """
    first: dict[tuple[str, str], datetime] = {}
    for ring in rings:
        key = (ring.call_id, ring.operator)
        first[key] = min(first.get(key, ring.at), ring.at)
    spans: dict[str, list[tuple[datetime, Answered]]] = {}
    for call in answered:
        start = min(first.get((call.call_id, call.operator), call.answered_at),
                    call.answered_at)
        spans.setdefault(call.operator, []).append((start, call))
    found = []
    for ring in sorted(rings, key=lambda r: r.at):
        for start, call in spans.get(ring.operator, ()):
            if call.call_id != ring.call_id and start < ring.at < call.ended_at:
                found.append(DoubleRing(ring, call.call_id, ring.at >= call.answered_at))
                break
    return found


_TRACE_STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$", re.M)


def _trace_header(lines: Sequence[str], name: str) -> str:
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if not line.strip():
            break
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return ""


def phone_calls(trace: str) -> tuple[list[Ring], list[Answered]]:
    """What the operators' phones saw, from their sipp UAS's message trace (``-trace_msg``):
    each call's first INVITE (a ring: the operator of its request URI, the registered
    contact ``sip:op1001@...``; a retransmission or re-INVITE of the call is not another),
    and the span each call held the phone: an answered one (the phone's 200 to its INVITE)
    until its BYE; one cancelled while ringing until the phone's 487 (as an
    :class:`Answered` whose answer is its end: :func:`double_rings` then counts a ring in it
    as one while ringing). A call never ended holds none. Call ids are the SIP Call-IDs of
    the legs to the phones, not the line's."""
    parts = _TRACE_STAMP.split(trace)
    rings: dict[str, Ring] = {}
    answers: dict[str, datetime] = {}
    ends: dict[str, datetime] = {}
    for stamp, body in zip(parts[1::2], parts[2::2], strict=True):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        head, _, message = body.strip("\n").partition("\n\n")
        lines = message.strip("\n").splitlines()
        if not lines:
            continue
        received, first = "received" in head, lines[0].split()
        if len(first) < 2:
            continue
        call_id, cseq = _trace_header(lines, "Call-ID"), _trace_header(lines, "CSeq")
        if received and first[0] == "INVITE" and call_id not in rings:
            user = first[1].removeprefix("sip:").partition("@")[0]
            rings[call_id] = Ring(call_id, user, at)
        elif not received and first[0] == "SIP/2.0" and cseq.endswith("INVITE"):
            if first[1] == "200":
                answers.setdefault(call_id, at)
            elif first[1][:1] in "3456" and call_id not in answers:
                answers[call_id] = at
                ends.setdefault(call_id, at)
        elif first[0] == "BYE":
            ends.setdefault(call_id, at)
    spans = [Answered(call_id, rings[call_id].operator, at, ends[call_id])
             for call_id, at in answers.items() if call_id in rings and call_id in ends]
    return list(rings.values()), spans


async def rings_of(dsn: str, numbers: Sequence[str]) -> list[Ring]:
    """The operator rings of the calls of these caller-number prefixes."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """
            SELECT e.call_id, e.body ->> 'operator' AS operator, e.at
            FROM call_events e JOIN calls c ON c.call_id = e.call_id
            WHERE e.kind = 'operator_rung' AND c.caller_number LIKE ANY($1)
            """, [f"{number}%" for number in numbers])
    finally:
        await connection.close()
    return [Ring(str(r["call_id"]), str(r["operator"]), r["at"]) for r in rows
            if r["operator"] is not None]


async def surge_run(pg: EmbeddedPostgres, root: Path, args: argparse.Namespace) -> int:
    """``--calls`` at ``--rate`` through two nodes; prints issue 15's three checks."""
    rate, calls = args.rate, args.calls
    operators = surge.operators_needed(rate, args.talk, 0)
    groups = surge.caller_groups(calls, rate, f"{random.randrange(10_000):04d}")
    numbers = [g.caller_id for g in groups]
    async with cluster_of(pg, root, ("node1", "node2"), operators, pinned=args.pin,
                          budget=budget_of(args), trace_phones=True) as bench:
        print(f"{calls} calls at {rate:g}/s through two nodes ...")
        marks = bench.cpu_marks()
        results = list(await asyncio.gather(
            *(place(bench.cluster, g, args.talk, args.key_delay) for g in groups)))
        cpu = bench.cpu_line(marks)
        placed = sum(int(r.stats.get("OutgoingCall(C)", "0") or 0) for r in results)
        rows = await settled(pg.dsn(), numbers, placed)
        rings = await rings_of(pg.dsn(), numbers)
        front = await front_figures(pg.dsn(), numbers)
        await quiet(bench.cluster)
        phones = phone_calls(bench.cluster.phones.messages)
        assert bench.cluster.kamailio is not None
        refused = bench.cluster.kamailio.log_text().count(FRONT_REFUSAL)
    failed = sum(g.calls - r.successful for g, r in zip(groups, results, strict=True))
    return surge_report(rows, rings, front, phones, placed=placed, requested=calls,
                        failed=failed, refused=refused, cpu=cpu)


def surge_report(rows: Sequence[asyncpg.Record], rings: Sequence[Ring], front: FrontFigures,
                 phones: tuple[Sequence[Ring], Sequence[Answered]], *, placed: int,
                 requested: int, failed: int, refused: int, cpu: str) -> int:
    """The surge's figures; exit status 0 when every call reached an operator, no operator's
    phone rang twice at once (``phones``: :func:`phone_calls`), and the database holds every
    call complete. ``rings`` are those Asterisk reported (the front's 486 included: it
    refused ``refused`` INVITEs)."""
    reached = [r for r in rows if r["operator"] is not None]
    unreached = Counter(str(r["disposition"]) for r in rows if r["operator"] is None)
    lacking_columns = Counter(c for r in rows for c in lacking(r))
    incomplete = sum(1 for r in rows if lacking(r))
    answered = [Answered(str(r["call_id"]), str(r["operator"]), r["answered_at"], r["ended_at"])
                for r in reached if r["answered_at"] is not None and r["ended_at"] is not None]
    doubles = double_rings(rings, answered)
    phone_rings, phone_spans = phones
    at_phones = double_rings(phone_rings, phone_spans)
    nodes = Counter(node_of(str(r["call_id"])) for r in rows)
    waits = to_queue(rows)
    p50, p99 = surge.percentile(waits, 0.5), surge.percentile(waits, 0.99)
    print("\n== surge through two nodes ==")
    print(f"placed {placed}/{requested}, sipp failed {failed}; records {len(rows)} "
          f"({', '.join(f'{n} {c}' for n, c in sorted(nodes.items()))}); the front dispatched "
          f"{front.dispatched}, {front.recorded} recorded, {front.doubled} with two records; "
          f"placed with no record: {max(placed - len(rows), 0)}")
    print(f"reached an operator: {len(reached)}/{placed}"
          f"{'; not: ' + str(dict(unreached)) if unreached else ''}")
    talking = sum(1 for d in doubles if d.talking)
    across = sum(1 for d in doubles if node_of(d.ring.call_id) != node_of(d.other))
    phone_talking = sum(1 for d in at_phones if d.talking)
    print(f"phones rung twice at once: {len(at_phones)} (of {len(phone_rings)} INVITEs at "
          f"the phones, {len(phone_spans)} calls they held): {len(at_phones) - phone_talking} "
          f"while still ringing for another call, {phone_talking} while talking")
    print(f"rings Asterisk reported (AgentCalled) while the operator was taken: "
          f"{len(doubles)} (of {len(rings)} rings, {len(answered)} answered calls): "
          f"{len(doubles) - talking} while still ringing for another call, {talking} while "
          f"talking; {across} of them by the other node; the front refused {refused} INVITEs "
          f"to a phone already ringing (486), which Asterisk counts as rings")
    spans = {a.call_id: a for a in answered}
    for double in doubles[:5]:
        ring, other = double.ring, spans[double.other]
        print(f"  {ring.operator} rung for {ring.call_id} at {ring.at:%H:%M:%S.%f} while "
              f"taken by {other.call_id} (answered {other.answered_at:%H:%M:%S.%f}, ended "
              f"{other.ended_at:%H:%M:%S.%f})")
    print(f"complete records: {len(rows) - incomplete}/{len(rows)}"
          f"{'; lacking: ' + str(dict(lacking_columns)) if lacking_columns else ''}")
    print(f"answer->queue p50 {'-' if p50 is None else f'{p50:.2f} s'}, "
          f"p99 {'-' if p99 is None else f'{p99:.2f} s'}")
    if cpu:
        print(f"CPU while placing: {cpu}")
    ok = (placed == requested and failed == 0 and len(rows) == placed
          and len(reached) == placed and not at_phones and not incomplete
          and front.doubled == 0)
    return 0 if ok else 1


def budget_of(args: argparse.Namespace) -> CpuBudget | None:
    """Each node's CPU budget (``--node-cpu``), if one was asked for."""
    return None if args.node_cpu is None else CpuBudget(args.node_cpu)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("capacity", "kill", "surge", "both"),
                        default="both", help="both: capacity, then kill")
    parser.add_argument("--key-delay", type=float, default=2.0)
    parser.add_argument("--talk", type=float, default=8.0)
    parser.add_argument("--start-rate", type=float, default=5.0)
    parser.add_argument("--min-rate", type=float, default=1.0)
    parser.add_argument("--max-rate", type=float, default=60.0)
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--pin", action="store_true",
                        help="each node's Asterisk and line server on one CPU of its own (a "
                             "machine per node, one core each), for the capacity search")
    parser.add_argument("--node-cpu", type=float, default=None, metavar="FRACTION",
                        help="each node's Asterisk and line server (and what they start) held "
                             "to FRACTION of a core with a cgroup CPU quota (0.5: half a "
                             "core), as a machine of its own that size")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="calls/s of --mode surge (required there)")
    parser.add_argument("--calls", type=int, default=1000, help="calls of --mode surge")
    parser.add_argument("--kill-rate", type=float, default=0.0,
                        help="calls/s of the kill surge (default: the first rate one node "
                             "failed, or 10)")
    parser.add_argument("--kill-calls", type=int, default=300)
    parser.add_argument("--kill-after", type=float, default=0.4,
                        help="share of the arrivals before node1 is killed (default 0.4)")
    parser.add_argument("--window", type=float, default=5.0,
                        help="the failover window after the kill, seconds (default 5)")
    args = parser.parse_args(argv)
    try:
        capacity.Bounds(args.start_rate, args.min_rate, args.max_rate, args.resolution).check()
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 < args.kill_after < 1 or args.kill_calls < 10 or args.window <= 0:
        parser.error("--kill-after in (0, 1), --kill-calls >= 10, --window > 0")
    if args.mode == "surge" and (args.rate <= 0 or args.calls < 1):
        parser.error("--mode surge needs --rate > 0 and --calls >= 1")
    try:
        budget_of(args)
    except ValueError as exc:
        parser.error(f"--node-cpu: {exc}")
    return args


async def run(args: argparse.Namespace, root: Path, pg: EmbeddedPostgres) -> int:
    """The modes asked for, one after the other."""
    if args.mode == "surge":
        return await surge_run(pg, root, args)
    one_node_fails = None
    if args.mode in ("capacity", "both"):
        one_node_fails = await capacities(pg, root, args)
    if args.mode in ("kill", "both"):
        rate = args.kill_rate or one_node_fails or 10.0
        return await kill_surge(pg, root, args, rate)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if args.node_cpu is not None:
            writable_or_refuse()  # before anything starts: one line, not a half-built lab
        with temporary_cluster("siaga112-cluster-bench-") as (root, pg):
            return asyncio.run(run(args, root, pg))
    except CgroupError as exc:
        print(f"bench/cluster.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
