"""Collectors that read the line's current state at scrape time: the AMI connection and its
event lag, the fact spool, operators and queues from the wallboard, and disk space."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ivr.menu import IvrMenu
from telephony.ami.threaded import ThreadedListener
from telephony.calls.recorder import CallRecorder
from telephony.cluster.front_probe import front_answers
from telephony.cluster.watch import PeerWatch
from telephony.core.threads import OneAtATime
from telephony.desks.operators import OVERFLOW_QUEUE
from telephony.reports.gate import ReportGate
from telephony.wallboard.service import WallboardService
from telephony.wallboard.state import OperatorState

log = logging.getLogger("telephony.metrics")


class AmiCollector:
    """Whether the AMI session is up, how far tracking trails Asterisk, and how far the
    database trails tracking (the spool's depth is :class:`SpoolCollector`'s). Read on the
    main loop from the listener's thread: plain attributes (telephony/ami/threaded.py)."""

    def __init__(self, listener: ThreadedListener) -> None:
        self._listener = listener

    def collect(self) -> Iterable[Metric]:
        """The listener's state now."""
        listener = self._listener
        yield GaugeMetricFamily("siaga112_ami_up", "1 while logged in to Asterisk's AMI",
                                value=1.0 if listener.logged_in else 0.0)
        yield GaugeMetricFamily("siaga112_ami_events_waiting",
                                "AMI events received and not yet tracked",
                                value=listener.events_waiting)
        yield GaugeMetricFamily("siaga112_ami_event_lag_seconds",
                                "How long the oldest AMI event not yet tracked has waited",
                                value=listener.event_lag_seconds)
        # The persistence backlog: tracked (the wallboard has them), not yet in PostgreSQL.
        yield GaugeMetricFamily("siaga112_facts_waiting",
                                "Call facts tracked and not yet written to PostgreSQL "
                                "(held in memory, or being written)",
                                value=listener.facts_waiting)
        yield GaugeMetricFamily("siaga112_fact_lag_seconds",
                                "How long the oldest call fact held in memory has waited for "
                                "PostgreSQL", value=listener.fact_lag_seconds)
        yield CounterMetricFamily("siaga112_facts_overflowed",
                                  "Call facts sent to the spool because the backlog in memory "
                                  "was full", value=listener.facts_overflowed)


class SpoolCollector:
    """Call facts waiting on disk for the database; those no spool directory took, held in
    memory (an alarm); those lost because even the memory bound was passed; and those the
    database refused, kept aside in the rejected files. The recorder runs on the AMI
    listener's thread; its state is read plainly, and its files are counted off the main loop
    before each scrape, as the disk figures are (the spool's fallback directory is there for
    a mount that fails, and a failing mount may hang)."""

    def __init__(self, recorder: CallRecorder) -> None:
        self._recorder = recorder
        self._count = OneAtATime(self._files_now, "spool-count")
        self._files: tuple[int, int] | None = None

    async def refresh(self) -> None:
        """Count the spooled and the rejected facts; left out if not counted in time."""
        self._files = None
        self._files = await self._count()

    def _files_now(self) -> tuple[int, int]:
        return self._recorder.pending(), self._recorder.rejected

    def collect(self) -> Iterable[Metric]:
        """The spool's depth now (it is empty unless the database was away)."""
        recorder = self._recorder
        if self._files is not None:
            pending, rejected = self._files
            yield GaugeMetricFamily("siaga112_spool_facts",
                                    "Call facts spooled (on disk, or held in memory), waiting "
                                    "for PostgreSQL", value=pending)
            yield GaugeMetricFamily("siaga112_spool_facts_rejected",
                                    "Call facts kept in the spool's rejected.jsonl (refused by "
                                    "PostgreSQL, or undecodable), not in the call records",
                                    value=rejected)
        yield GaugeMetricFamily("siaga112_spool_failing",
                                "1 while call facts are held only in memory: neither "
                                "PostgreSQL nor a spool directory takes them",
                                value=1.0 if recorder.failing else 0.0)
        yield GaugeMetricFamily("siaga112_spool_memory_facts",
                                "Call facts held only in memory", value=recorder.held)
        yield CounterMetricFamily("siaga112_spool_facts_dropped",
                                  "Call facts lost because the memory bound was passed while "
                                  "nothing could take them", value=recorder.dropped)


class ReportGateCollector:
    """How often the reports gave way to the call records, and for how long in all
    (telephony/reports/gate.py): a site whose reports keep waiting has a recorder that trails,
    or reports asked for during surges."""

    def __init__(self, gate: ReportGate) -> None:
        self._gate = gate

    def collect(self) -> Iterable[Metric]:
        """The gate's counts since the line started."""
        yield CounterMetricFamily("siaga112_report_waits",
                                  "Reports that waited for the call records to catch up",
                                  value=self._gate.gave_way)
        yield CounterMetricFamily("siaga112_report_wait_seconds",
                                  "Seconds reports waited for the call records, in all",
                                  value=self._gate.gave_way_seconds)


def line_queues(menu: IvrMenu, line: str) -> frozenset[str]:
    """Every queue a call to ``line`` can reach: its routes through the menus, its fail-open
    queue, and the overflow every queue spills into."""
    entry = menu.entry_for(line)
    queues = {menu.fail_open_route(line).queue, OVERFLOW_QUEUE}
    if entry.route is not None:
        queues.add(entry.route.queue)
    pending, seen = [entry.menu] if entry.menu else [], set()
    while pending:
        name = pending.pop()
        if name in seen or name not in menu.menus:
            continue
        seen.add(name)
        submenu = menu.menus[name]
        queues.add(submenu.default.queue)
        for option in submenu.options.values():
            if option.route is not None:
                queues.add(option.route.queue)
            if option.submenu is not None:
                pending.append(option.submenu)
    return frozenset(queues)


class WallboardCollector:
    """Operators by state, queues' callers and members, and operators per line: the
    supervisor's wallboard, read at scrape time."""

    def __init__(self, wallboard: WallboardService, menu: Callable[[], IvrMenu]) -> None:
        self._wallboard = wallboard
        self._menu = menu

    def collect(self) -> Iterable[Metric]:
        """The board now."""
        board = self._wallboard.snapshot().board
        states = GaugeMetricFamily("siaga112_operators", "Operators logged in, by state "
                                   "(idle, ringing, talking, wrapup, paused, unavailable)",
                                   labels=["state"])
        for state in OperatorState:
            states.add_metric([state.value], board.counts.get(state, 0))
        yield states
        yield GaugeMetricFamily("siaga112_operators_logged_in",
                                "Operators who are members of at least one queue",
                                value=len(board.operators))
        waiting = GaugeMetricFamily("siaga112_queue_callers", "Callers waiting in the queue",
                                    labels=["queue"])
        longest = GaugeMetricFamily("siaga112_queue_longest_wait_seconds",
                                    "The longest current wait in the queue (0: nobody waits)",
                                    labels=["queue"])
        members = GaugeMetricFamily("siaga112_queue_members", "Operators logged in to the "
                                    "queue", labels=["queue"])
        available = GaugeMetricFamily("siaga112_queue_available", "Operators of the queue "
                                      "free to take its next call", labels=["queue"])
        by_queue: dict[str, set[str]] = {}
        for operator in board.operators:
            for queue in operator.queues:
                by_queue.setdefault(queue, set()).add(operator.operator)
        for view in board.queues:
            waiting.add_metric([view.queue], len(view.callers))
            longest.add_metric([view.queue], view.longest_wait or 0.0)
            members.add_metric([view.queue], view.members)
            available.add_metric([view.queue], view.available)
        yield from (waiting, longest, members, available)
        yield self._lines(by_queue)

    def _lines(self, by_queue: Mapping[str, set[str]]) -> Metric:
        family = GaugeMetricFamily(
            "siaga112_line_operators_logged_in", "Operators logged in to a queue the line's "
            "calls can reach (0: the line's callers wait for nobody)", labels=["line"])
        menu = self._menu()
        for line in sorted(menu.lines):
            operators = set().union(*(by_queue.get(q, set()) for q in line_queues(menu, line)))
            family.add_metric([line], len(operators))
        return family


class PeersCollector:
    """A cluster node's peers: each answers this node's SIP qualify or not
    (telephony/cluster/watch.py). A dead peer's calls in progress were cut, and its operators
    take calls through this node until it returns."""

    def __init__(self, peers: PeerWatch) -> None:
        self._peers = peers

    def collect(self) -> Iterable[Metric]:
        """Each peer's liveness now."""
        family = GaugeMetricFamily("siaga112_cluster_peer_up", "1 while the peer node answers "
                                   "this node's SIP qualify", labels=["peer"])
        for peer in sorted(self._peers.peers):
            family.add_metric([peer], 1.0 if self._peers.alive(peer) else 0.0)
        yield family


class FrontCollector:
    """Whether the cluster's SIP front answers this node (telephony/cluster/front_probe.py),
    asked before each scrape."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._up: bool | None = None

    async def refresh(self) -> None:
        """Ask the front; on failure the figure is left out, not shown stale."""
        self._up = None
        self._up = await front_answers(self._host, self._port)

    def collect(self) -> Iterable[Metric]:
        """The last answer."""
        if self._up is not None:
            yield GaugeMetricFamily("siaga112_sip_front_up", "1 if the cluster's SIP front "
                                    "(Kamailio) answered an OPTIONS within 1 s",
                                    value=1.0 if self._up else 0.0)


class DiskCollector:
    """Free and total bytes of the file systems holding the line's files, measured off the
    main loop before each scrape: a hung mount (the recordings on a dead NFS server) would
    otherwise hold the console, the wallboard and the API with the scrape. Measured within
    the scrape's bound or left out (``siaga112_metrics_source_up{source="disk"}`` 0)."""

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self._paths = dict(paths)
        self._measure = OneAtATime(self._usage_now, "disk-usage")
        self._usage: dict[str, tuple[int, int]] | None = None

    async def refresh(self) -> None:
        """Measure every path; on failure or timeout the figures are left out, not stale."""
        self._usage = None
        self._usage = await self._measure()

    def _usage_now(self) -> dict[str, tuple[int, int]]:
        """``shutil.disk_usage`` of each path (the nearest existing parent if not made yet):
        free bytes, size."""
        usage: dict[str, tuple[int, int]] = {}
        for name, path in sorted(self._paths.items()):
            existing = next((p for p in (path, *path.parents) if p.exists()), None)
            if existing is None:
                continue
            try:
                measured = shutil.disk_usage(existing)
            except OSError as exc:
                log.warning("disk usage of %s unavailable: %s", existing, exc)
                continue
            usage[name] = (measured.free, measured.total)
        return usage

    def collect(self) -> Iterable[Metric]:
        """The last refresh's figures."""
        if self._usage is None:
            return
        free = GaugeMetricFamily("siaga112_disk_free_bytes", "Bytes free (to the line's "
                                 "user) on the file system holding the path", labels=["path"])
        size = GaugeMetricFamily("siaga112_disk_size_bytes", "Size of the file system "
                                 "holding the path", labels=["path"])
        for name, (free_bytes, total) in sorted(self._usage.items()):
            free.add_metric([name], free_bytes)
            size.add_metric([name], total)
        yield from (free, size)
