"""A CPU budget of its own for each lab node, with cgroup v1's ``cpu`` controller: each node's
Asterisk and line server (and everything they start) as if on a small machine of its own,
while the front, PostgreSQL and sipp keep the rest of the host (bench/cluster.py ``--node-cpu``).

Why a quota and not CPU pinning: on a 2-core host, a node pinned to a core still shares it with
PostgreSQL, the front and sipp, so the node is never the bottleneck and a second node adds
nothing. A CFS quota (``cpu.cfs_quota_us`` per ``cpu.cfs_period_us``) caps the node's CPU
time whichever core it runs on, so one node saturates while the host has spare CPU.

The call path child (telephony/callpath_child.py) runs at real-time priority (SCHED_RR,
``callpath_rt_priority``). In cgroup v1 with real-time group scheduling a group starts with
``cpu.rt_runtime_us`` 0: a real-time task cannot be moved into it, nor become real-time in it
(the child would fall back to normal priority with one log line), and the CFS quota does not
limit real-time tasks. So each node's group also gets a real-time budget of its own,
:data:`RT_SHARE` of the node's budget: the IVR keeps the priority it has on a site's machine
(ahead of its node's Asterisk), and cannot take more than that share. The node can then use
its quota plus what its child spends at real-time priority; the bench reports what each node
really used (``cpuacct.usage``) against its quota.

Groups are made under :data:`CPU_ROOT` and :data:`CPUACCT_ROOT` as ``siaga112-nodes-<pid>``
(the owning process's pid, so a run killed before its clean-up leaves groups a later run
removes: :func:`stale_groups`), and removed on exit, tasks still in them moved back to the
root first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from telephony.lab.chroot import LabError

log = logging.getLogger(__name__)

CPU_ROOT: Final = Path("/sys/fs/cgroup/cpu")
CPUACCT_ROOT: Final = Path("/sys/fs/cgroup/cpuacct")
GROUP_PREFIX: Final = "siaga112-nodes-"
# 20 ms, not the kernel's 100 ms: a node at half a core is then stopped for at most ~10 ms at
# a time (a slower machine is slower evenly, not in 50 ms stalls), and the quota stays at or
# above the kernel's 5 ms bandwidth slice for budgets of a quarter core and up.
PERIOD_US: Final = 20_000
# The share of a node's budget its real-time tasks (the IVR child) may use, on top of its CFS
# quota: enough for the IVR (a few per cent of a core at the bench's rates), and two nodes
# at up to 0.95 cores each fit in the host's real-time bandwidth (95 % of each CPU).
RT_SHARE: Final = 0.5
MIN_QUOTA_US: Final = 1_000  # the kernel refuses a smaller cfs_quota_us
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class CgroupError(LabError):
    """The cgroup fs is missing, not writable, or refused a setting."""

    code = "cgroup"


@dataclass(frozen=True)
class CpuBudget:
    """A node's CPU: ``fraction`` of one core (0.5: half a core), per ``period_us``."""

    fraction: float
    period_us: int = PERIOD_US

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 64:
            raise ValueError("a node's CPU budget is a fraction of a core above 0 (0.5: half)")
        if self.quota_us < MIN_QUOTA_US:
            raise ValueError(f"a node's CPU budget of {self.fraction:g} cores is below the "
                             f"kernel's least quota ({MIN_QUOTA_US} us per {self.period_us} us)")

    @property
    def quota_us(self) -> int:
        """``cpu.cfs_quota_us``: the node's CPU time per period, all its cores together."""
        return round(self.fraction * self.period_us)

    @property
    def rt_runtime_us(self) -> int:
        """``cpu.rt_runtime_us``: real-time CPU time per period (per CPU, as the kernel
        counts it), :data:`RT_SHARE` of the budget, at most the whole period."""
        return min(self.period_us, round(self.fraction * RT_SHARE * self.period_us))


def group_name(owner: int) -> str:
    """The parent group of the nodes of process ``owner``."""
    return f"{GROUP_PREFIX}{owner}"


def group_path(root: Path, owner: int, node: str | None = None) -> Path:
    """The group of ``node`` (or the nodes' parent group) under a controller's ``root``."""
    parent = root / group_name(owner)
    if node is None:
        return parent
    if not _NAME.fullmatch(node):
        raise ValueError(f"not a cgroup name for a node: {node!r}")
    return parent / node


def stale_groups(names: Iterable[str], alive: Iterable[int]) -> list[str]:
    """Of a controller root's entries, the nodes' groups whose owner is not alive."""
    living = set(alive)
    stale = []
    for name in names:
        if name.startswith(GROUP_PREFIX) and name[len(GROUP_PREFIX):].isdigit() \
                and int(name[len(GROUP_PREFIX):]) not in living:
            stale.append(name)
    return sorted(stale)


def parent_pid(stat: str) -> int:
    """The parent pid from ``/proc/<pid>/stat`` (after the command's closing parenthesis,
    which may itself hold spaces and parentheses)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1])


def process_tree(roots: Iterable[int], parents: Mapping[int, int]) -> list[int]:
    """``roots`` and all their descendants, given every process's parent."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    seen: list[int] = []
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.append(pid)
        pending.extend(children.get(pid, ()))
    return sorted(seen)


def usage_cores(used_ns: int, seconds: float) -> float:
    """CPU time used (``cpuacct.usage`` difference) over a wall-clock span, in cores."""
    return used_ns / 1e9 / seconds if seconds > 0 else 0.0


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                parents[int(entry.name)] = parent_pid(
                    (entry / "stat").read_text(encoding="ascii", errors="replace"))
    return parents


def _write(path: Path, value: int | str) -> None:
    try:
        path.write_text(f"{value}\n", encoding="ascii")
    except OSError as exc:
        raise CgroupError(f"{path}: writing {value} refused ({os.strerror(exc.errno or 0)})"
                          ) from exc


def writable_or_refuse(roots: Sequence[Path] = (CPU_ROOT, CPUACCT_ROOT)) -> None:
    """Raise :class:`CgroupError` with one line unless the cgroup v1 ``cpu`` and ``cpuacct``
    controllers are there and writable."""
    for root in roots:
        if not (root / "cgroup.procs").exists():
            raise CgroupError(f"--node-cpu needs cgroup v1's {root.name} controller at {root} "
                              "(not there: cgroup v2 only, or not mounted)")
        if not os.access(root, os.W_OK):
            raise CgroupError(f"--node-cpu needs write access to {root} (root, and a cgroup "
                              "fs not mounted read-only)")
    if not (CPU_ROOT / "cpu.cfs_quota_us").exists() and CPU_ROOT in roots:
        raise CgroupError(f"{CPU_ROOT} has no cpu.cfs_quota_us (kernel without CFS bandwidth)")


class NodeGroups:
    """One cpu (quota) and one cpuacct (usage) group per node, under a parent group of this
    process; :meth:`close` (or leaving the ``with``) moves any task left back to the root
    and removes them."""

    def __init__(self, budget: CpuBudget, nodes: Sequence[str], *, owner: int | None = None,
                 cpu_root: Path = CPU_ROOT, cpuacct_root: Path = CPUACCT_ROOT) -> None:
        self.budget = budget
        self.nodes = tuple(nodes)
        self.owner = os.getpid() if owner is None else owner
        self.roots = (cpu_root, cpuacct_root)
        self._made: list[Path] = []

    def __enter__(self) -> NodeGroups:
        writable_or_refuse(self.roots)
        self._remove_stale()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remove_stale(self) -> None:
        alive = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        for root in self.roots:
            for name in stale_groups((p.name for p in root.iterdir() if p.is_dir()), alive):
                log.warning("removing %s, left by a run that ended before its clean-up",
                            root / name)
                _remove_tree(root, root / name)

    def _make(self) -> None:
        cpu_root, cpuacct_root = self.roots
        parent = group_path(cpu_root, self.owner)
        self._mkdir(parent)
        self._mkdir(group_path(cpuacct_root, self.owner))
        # Real-time bandwidth is handed down: the parent holds the sum of its nodes', and
        # each level's period is set before its runtime (runtime must fit the period).
        _write(parent / "cpu.rt_period_us", self.budget.period_us)
        try:
            _write(parent / "cpu.rt_runtime_us", self.budget.rt_runtime_us * len(self.nodes))
        except CgroupError as exc:
            raise CgroupError(f"{exc}: the nodes' real-time budget ({RT_SHARE:g} of "
                              f"{self.budget.fraction:g} cores each) does not fit in what the "
                              "host's real-time bandwidth has left") from exc
        for node in self.nodes:
            group = group_path(cpu_root, self.owner, node)
            self._mkdir(group)
            self._mkdir(group_path(cpuacct_root, self.owner, node))
            _write(group / "cpu.rt_period_us", self.budget.period_us)
            _write(group / "cpu.rt_runtime_us", self.budget.rt_runtime_us)
            _write(group / "cpu.cfs_period_us", self.budget.period_us)
            _write(group / "cpu.cfs_quota_us", self.budget.quota_us)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise CgroupError(f"{path}: cannot make the group ({os.strerror(exc.errno or 0)})"
                              ) from exc
        self._made.append(path)

    def confine(self, node: str, pids: Iterable[int | None]) -> list[int]:
        """Move ``pids`` and all their descendants (every thread of each) into ``node``'s
        groups; what they start later is born there. Returns the pids moved (a process that
        ended meanwhile is skipped)."""
        tree = process_tree([p for p in pids if p is not None], _parents())
        moved = []
        for pid in tree:
            try:
                for root in self.roots:
                    (group_path(root, self.owner, node) / "cgroup.procs").write_text(
                        f"{pid}\n", encoding="ascii")
            except ProcessLookupError:  # it ended meanwhile
                continue
            except OSError as exc:
                raise CgroupError(f"pid {pid} of {node} not moved into its group "
                                  f"({os.strerror(exc.errno or 0)})") from exc
            moved.append(pid)
        return moved

    def usage_ns(self, node: str) -> int:
        """CPU time ``node``'s tasks used so far (real-time included), nanoseconds."""
        path = group_path(self.roots[1], self.owner, node) / "cpuacct.usage"
        return int(path.read_text(encoding="ascii"))

    def throttled(self, node: str) -> tuple[int, int]:
        """(periods, periods in which the quota ran out) so far for ``node``."""
        stat = dict(line.split() for line in
                    (group_path(self.roots[0], self.owner, node) / "cpu.stat")
                    .read_text(encoding="ascii").splitlines() if line.strip())
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def close(self) -> None:
        """Every task left back to the root; the groups removed (deepest first). Never
        raises: one log line for a group that could not go."""
        for path in reversed(self._made):
            root = next(r for r in self.roots if path.is_relative_to(r))
            _evacuate(root, path)
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cgroup %s not removed: %s", path, os.strerror(exc.errno or 0))
        self._made.clear()


def _evacuate(root: Path, group: Path) -> None:
    with contextlib.suppress(OSError):
        for line in (group / "cgroup.procs").read_text(encoding="ascii").split():
            with contextlib.suppress(OSError):
                (root / "cgroup.procs").write_text(f"{line}\n", encoding="ascii")


def _remove_tree(root: Path, group: Path) -> None:
    for path in sorted(_groups_under(group), key=lambda p: len(p.parts), reverse=True):
        _evacuate(root, path)
        try:
            path.rmdir()
        except OSError as exc:
            log.warning("cgroup %s not removed: %s", path, os.strerror(exc.errno or 0))


def _groups_under(group: Path) -> Iterator[Path]:
    yield group
    with contextlib.suppress(OSError):
        for child in group.iterdir():
            if child.is_dir():
                yield from _groups_under(child)
