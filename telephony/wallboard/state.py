"""The live half of the supervisor's wallboard: who is waiting where, and what each operator
is doing, kept from the call facts the AMI listener establishes.

Pure: :class:`LiveBoard` takes facts, resync snapshots and a start-up seed from the database,
and answers :meth:`LiveBoard.view` for an instant it is given. It never reads a clock.

- A queue's callers are kept in Asterisk's order: a join inserts at the position Asterisk
  announced (a higher-priority caller goes ahead of others), a leave closes the gap, so the
  positions stay 1..n like Asterisk's own.
- An operator is a member of several queues; their device state is the newest any queue
  reported, and they count as paused only when paused in every queue they are in (paused in
  one queue, they still take calls from the others).
- An operator on an answered queue call is listed as talking even when they are in no queue
  any more: one who logged out while the call rang at their phone, then answered, is talking
  to a caller, and Asterisk reports no member state for them (``QueueMemberRemoved`` came
  first). The answer (``AgentConnect``) puts them on the call; its completion, or the
  caller's hang-up, takes them off.
- Wrap-up is the queue's wrap-up time after each call the operator completed, or a pause whose
  reason means after-call work (see ``telephony.reports.model.is_wrapup_reason``).
- An operator who leaves a three-way call with an agency (:class:`OperatorLeft`: "Keluar",
  or hanging up in it) has completed their call then, as the database records it (migration
  0047): they are off it and in the answering queue's wrap-up from the leave, though the
  caller talks on with the agency. So does app_queue hold them: their phone going idle while
  app_queue still counts them on the call ends that call for it (``update_status`` calls
  ``update_queue`` at the member's NOT_INUSE: their last call is the leave, the answering
  queue's wrapuptime runs from it), and its ``AgentComplete`` at the call's end changes
  nothing any more (``update_queue``'s starttime check). So Asterisk's completion is theirs
  no more here either: it ends their talk at the leave, and starts no second wrap-up; after a
  restart too, the start-up seed naming the leaves of the calls not ended.
- After a listener (re)connects, the whole ``QueueStatus`` picture replaces what the board
  believed, so callers answered and members removed while it was away do not linger. At
  start-up, before any resync, the database's open queue visits and members stand in.
- On a cluster node the facts are only this node's calls. The callers waiting on the other
  nodes come from the database, as their nodes' lines write them (:meth:`LiveBoard.follow`,
  fed by the wallboard service in the background): each changed call's open visits replace
  what the board kept of it, so an answer, an abandon or an end on its node removes it, and
  a call completed there starts its operator's wrap-up here as one completed here would. A
  node this node's Asterisk no longer reaches (:meth:`LiveBoard.node_lost`) took its
  callers with it: they leave the board at once, though their rows stay open until that node
  comes back and its line closes them. A queue shows the centre's callers, every node's, in
  one line: this node's in Asterisk's order, the others' merged in by when they joined.
  Operators' states need nothing of the kind: every node's queues see every operator's device
  state (Asterisk's distributed device state).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from telephony.ami.tracker import LOGGED_OUT, QueueSnapshot
from telephony.calls.facts import (
    CallEnded,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    LiveFact,
    OperatorAnswered,
    OperatorCompleted,
    OperatorLeft,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
    ivr_variables,
)
from telephony.calls.ids import node_of
from telephony.core.labels import LabelledStrEnum
from telephony.reports.model import (
    CallInfo,
    ChangedCalls,
    LivePicture,
    is_wrapup_reason,
)

MAX_CALLS: Final = 10_000  # live calls remembered; only lost hang-ups could reach it
_MAX_TALKING: Final = 4  # answered calls remembered per operator (as the tracker's MAX_OPEN)
# Leaves remembered until their call's completion: more than three-way calls run at once.
MAX_LEFT: Final = 1024


class OperatorState(LabelledStrEnum):
    """What the wallboard shows an operator doing."""

    IDLE = "idle", "Siap"
    RINGING = "ringing", "Berdering"
    TALKING = "talking", "Berbicara"
    WRAPUP = "wrapup", "Menyelesaikan"
    PAUSED = "paused", "Jeda"
    UNAVAILABLE = "unavailable", "Tidak tersedia"

# The tracker's device states (telephony.ami.tracker.DEVICE_STATES) as the board shows them.
_DEVICE: Final = {
    "idle": OperatorState.IDLE,
    "paused": OperatorState.IDLE,  # paused-ness is judged across queues below
    "ringing": OperatorState.RINGING,
    "talking": OperatorState.TALKING,
    "busy": OperatorState.TALKING,
    "on_hold": OperatorState.TALKING,
    "ringing_in_use": OperatorState.TALKING,
}


@dataclass(frozen=True)
class Member:
    """One operator's membership of one queue, as last reported."""

    state: str  # the tracker's device state
    paused: bool
    reason: str
    at: datetime  # the last report (the newest report of the operator's queues wins)
    since: datetime  # the report that began this state: the same state reported again
    # (every resync lists every member anew) is no new start

    def same_state(self, fact: OperatorStateChanged) -> bool:
        """Whether ``fact`` reports the state this membership is in."""
        return (self.state, self.paused, self.reason) == (
            fact.state, fact.paused, fact.pause_reason)


class _OnCall(NamedTuple):
    """An answered queue call an operator is on."""

    at: datetime  # the answer
    queue: str | None  # the answering queue (None: not known, a seed from the database)


@dataclass(frozen=True)
class Waiting:
    """One caller waiting in one queue."""

    call_id: str
    joined_at: datetime


@dataclass(frozen=True)
class _Remote:
    """One caller waiting in one queue of another cluster node, as the database has it."""

    queue: str
    joined_at: datetime
    info: CallInfo


@dataclass(frozen=True)
class CallerView:
    """A waiting caller on the board."""

    position: int
    joined_at: datetime
    wait_seconds: float
    line: str | None
    category: str | None
    node: str | None = None  # the cluster node the caller is on (None: a single node)


@dataclass(frozen=True)
class QueueView:
    """One queue on the board."""

    queue: str
    callers: list[CallerView]
    members: int
    available: int  # idle, not paused, not in wrap-up

    @property
    def longest_wait(self) -> float | None:
        """The longest current wait in this queue."""
        return max((c.wait_seconds for c in self.callers), default=None)


@dataclass(frozen=True)
class OperatorView:
    """One logged-in operator on the board."""

    operator: str
    state: OperatorState
    reason: str  # the pause reason, when paused or in a wrap-up pause
    since: datetime
    queues: list[str]


@dataclass(frozen=True)
class BoardView:
    """The live board at one instant."""

    at: datetime
    queues: list[QueueView]
    operators: list[OperatorView]
    counts: dict[OperatorState, int] = field(default_factory=dict)

    @property
    def longest_wait(self) -> tuple[str, float] | None:
        """(queue, seconds) of the caller waiting longest now."""
        waits = [(q.longest_wait, q.queue) for q in self.queues if q.longest_wait is not None]
        if not waits:
            return None
        seconds, queue = max(waits)
        return queue, seconds


class LiveBoard:
    """Callers waiting per queue and operators' states, kept from call facts."""

    def __init__(self, *, wrapup_seconds: float) -> None:
        self._wrapup = timedelta(seconds=wrapup_seconds)  # the settings file's, for every queue
        # An admin's own wrap-up per queue (queue_settings): app_queue keeps an operator
        # from ringing for the wrap-up of the queue they answered in, so the board does too.
        self._queue_wrapups: dict[str, timedelta] = {}
        self._calls: dict[str, CallInfo] = {}
        self._queues: dict[str, list[Waiting]] = {}
        self._members: dict[str, dict[str, Member]] = {}
        # operator -> the end of their last call, and the end of its wrap-up
        self._completed: dict[str, tuple[datetime, datetime]] = {}
        # operator -> {call id: the answer}: answered queue calls not yet completed or ended
        self._talking: dict[str, dict[str, _OnCall]] = {}
        # call id -> (operator, when they left its three-way call), until its completion
        self._left: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self._resynced = False
        # Other cluster nodes' waiting callers: call id -> its open visits.
        self._remote: dict[str, tuple[_Remote, ...]] = {}
        self._lost: set[str] = set()  # nodes this node's Asterisk no longer reaches

    # -- input --------------------------------------------------------------------------------

    def apply(self, facts: Iterable[LiveFact]) -> None:
        """Follow facts, in the order the listener (or the transfer service, for a leave)
        established them."""
        for fact in facts:
            self._apply(fact)

    def _apply(self, fact: LiveFact) -> None:
        match fact:
            case CallStarted():
                category = self._calls.get(fact.call_id, CallInfo()).category
                self._remember(fact.call_id, CallInfo(fact.line, category))
            case IvrVariableSet() | IvrVariablesSet():
                category = dict(ivr_variables(fact)).get("category")
                if category is not None and fact.call_id in self._calls:
                    line = self._calls[fact.call_id].line
                    self._calls[fact.call_id] = CallInfo(line, category or None)
            case QueueJoined():
                self._join(fact)
            case QueueLeft() | QueueAbandoned():
                self._leave(fact.call_id, fact.queue)
            case OperatorAnswered():
                self._leave(fact.call_id, fact.queue)
                self._answered(fact.operator, fact.call_id, fact.at, fact.queue)
            case OperatorCompleted():
                self._hung_up(fact.call_id, fact.operator)
                left = self._left.pop(fact.call_id, None)
                # Their talk ended at the leave, where their wrap-up began (_operator_left).
                end = (min(fact.at, left[1]) if left is not None and left[0] == fact.operator
                       else fact.at)
                self._done(fact.operator, end, self.wrapup_of(fact.queue))
            case OperatorLeft():
                self._operator_left(fact)
            case CallEnded() | CallVanished():
                self._calls.pop(fact.call_id, None)
                self._hung_up(fact.call_id)
                for queue in list(self._queues):
                    self._leave(fact.call_id, queue)
            case OperatorStateChanged():
                self._member(fact)

    def resync(self, queues: QueueSnapshot | None) -> None:
        """Take the listener's whole queue picture after a (re)connection.

        ``None`` (Asterisk's reply could not be trusted whole) keeps what the board has; the
        facts the resync restored have already been applied.
        """
        if queues is None:
            return
        self._resynced = True
        self._replace(queues.waiting, queues.members)

    def seed(self, picture: LivePicture, *, node: str | None = None) -> bool:
        """Start from the database's picture, unless a resync came first (it is fresher).
        On cluster node ``node``, the other nodes' callers in it are followed as theirs
        (:meth:`follow`) whatever came first. Returns whether the seed was taken."""
        waiting = picture.waiting
        if node is not None:
            others = [entry for entry in waiting if node_of(entry.call_id) != node]
            waiting = [entry for entry in waiting if node_of(entry.call_id) == node]
            self._follow_calls({entry.call_id for entry in others}, others, picture.calls)
        for left in picture.left:  # left before a restart: the call's end is no new wrap-up
            if node is None or node_of(left.call_id) == node:
                self._left.setdefault(left.call_id, (left.operator, left.at))
        while len(self._left) > MAX_LEFT:
            self._left.popitem(last=False)
        if self._resynced:
            return False
        for call_id, info in picture.calls.items():
            if node is None or node_of(call_id) == node:
                self._remember(call_id, info)
        for talking in picture.talking:
            if node is None or node_of(talking.call_id) == node:
                self._answered(talking.operator, talking.call_id, talking.at)
        self._replace(waiting, picture.members)
        return True

    def follow(self, changed: ChangedCalls) -> bool:
        """Other cluster nodes' calls as the database has them now: each changed call's
        waiting callers replace what the board kept of it (none: it left every queue); a
        whole read replaces every other node's. Whether the board moved."""
        if changed.whole:
            before = self._remote
            self._remote = {}
            self._follow_calls({entry.call_id for entry in changed.waiting}, changed.waiting,
                               changed.info)
            return self._remote != before
        calls = {row.call_id for row in changed.calls}
        calls.update(entry.call_id for entry in changed.waiting)
        moved = self._follow_calls(calls, changed.waiting, changed.info)
        for row in changed.calls:  # a call completed on its node: the operator's wrap-up
            # Each answering phone's part when more than one answered (call_answers: the
            # row's operator is the first, its completion the last one's), else the row.
            parts = ([(part.operator, part.completed_at, part.wrapup_seconds)
                      for part in row.answers] if len(row.answers) > 1
                     else [(row.operator, row.completed_at, row.wrapup_seconds)])
            for operator, completed, seconds in parts:
                if operator in self._members and completed is not None:
                    # The wrap-up recorded with the answer, else the file's.
                    wrapup = (self._wrapup if seconds is None
                              else timedelta(seconds=seconds))
                    moved = self._done(operator, completed, wrapup) or moved
        return moved

    def set_wrapups(self, seconds: Mapping[str, int]) -> None:
        """The wrap-up an admin set per queue (the queues not named take the settings
        file's); applies to calls completed from now on, as app_queue's does."""
        self._queue_wrapups = {queue: timedelta(seconds=value)
                               for queue, value in seconds.items()}

    def wrapup_of(self, queue: str) -> timedelta:
        """The wrap-up after a call answered in ``queue``."""
        return self._queue_wrapups.get(queue, self._wrapup)

    def _done(self, operator: str, at: datetime, wrapup: timedelta) -> bool:
        """``operator``'s call ended at ``at``; whether that is their latest call."""
        known = self._completed.get(operator)
        if known is not None and known[0] >= at:
            return False
        self._completed[operator] = (at, at + wrapup)
        return True

    def _follow_calls(self, calls: set[str], waiting: Sequence[QueueJoined],
                      info: dict[str, CallInfo]) -> bool:
        visits: dict[str, list[_Remote]] = {}
        for entry in waiting:
            if node_of(entry.call_id) not in self._lost:
                visits.setdefault(entry.call_id, []).append(
                    _Remote(entry.queue, entry.at, info.get(entry.call_id, CallInfo())))
        moved = False
        for call_id in calls:
            now = tuple(sorted(visits.get(call_id, ()), key=lambda r: (r.queue, r.joined_at)))
            before = self._remote.pop(call_id, ())
            if now:
                self._remote[call_id] = now
            moved = moved or now != before
        return moved

    def node_lost(self, node: str) -> bool:
        """This node's Asterisk no longer reaches cluster node ``node``: its callers went with
        it. They leave the board, and rows of its calls are not followed until
        :meth:`node_back`. Whether the board moved."""
        self._lost.add(node)
        gone = [call_id for call_id in self._remote if node_of(call_id) == node]
        for call_id in gone:
            del self._remote[call_id]
        return bool(gone)

    def node_back(self, node: str) -> None:
        """Cluster node ``node`` answers again: its calls' rows are followed again (those it
        lost stay off the board: its line closes them as it comes back)."""
        self._lost.discard(node)

    def _answered(self, operator: str, call_id: str, at: datetime,
                  queue: str | None = None) -> None:
        calls = self._talking.setdefault(operator, {})
        if call_id not in calls and len(calls) >= _MAX_TALKING:
            # More open calls than a phone carries means completions were lost (a
            # reconnect): the oldest are the stale ones, and memory stays bounded.
            del calls[min(calls, key=lambda known: calls[known].at)]
        calls.setdefault(call_id, _OnCall(at, queue))

    def _operator_left(self, fact: OperatorLeft) -> None:
        """The operator left the call's three-way call: off it, and in the wrap-up of the
        queue they answered it in from the leave. (Had the call's completion come first, the
        wrap-up from it stands: the two are a moment apart then.)"""
        known = self._left.get(fact.call_id)
        if known is not None and known[1] <= fact.at:
            return  # the earliest leave is the call's, as the database's
        self._left[fact.call_id] = (fact.operator, fact.at)
        while len(self._left) > MAX_LEFT:  # completions lost (a restart of Asterisk)
            self._left.popitem(last=False)
        on_call = self._talking.get(fact.operator, {}).get(fact.call_id)
        self._hung_up(fact.call_id, fact.operator)
        queue = on_call.queue if on_call is not None else None
        self._done(fact.operator, fact.at,
                   self._wrapup if queue is None else self.wrapup_of(queue))

    def _hung_up(self, call_id: str, operator: str | None = None) -> None:
        for name in [operator] if operator is not None else list(self._talking):
            calls = self._talking.get(name, {})
            calls.pop(call_id, None)
            if not calls:
                self._talking.pop(name, None)

    def _remember(self, call_id: str, info: CallInfo) -> None:
        if call_id not in self._calls and len(self._calls) >= MAX_CALLS:
            del self._calls[next(iter(self._calls))]
        self._calls[call_id] = info

    def _replace(self, waiting: Sequence[QueueJoined], members: Sequence[OperatorStateChanged]
                 ) -> None:
        # A resync estimates a join from Asterisk's whole-second Wait; a wait the board saw
        # begin keeps its exact start.
        joined = {(q, w.call_id): w.joined_at for q, line in self._queues.items() for w in line}
        self._queues = {}
        for entry in sorted(waiting, key=lambda e: (e.queue, e.position)):
            self._join(replace(entry, at=joined.get((entry.queue, entry.call_id), entry.at)))
        before = self._members
        self._members = {}
        for member in members:
            self._member(member)
        # A state that did not change keeps its start: a reconnect must not reset the
        # "talking for 4 minutes" a supervisor is watching.
        for operator, queues in self._members.items():
            for queue, now in queues.items():
                old = before.get(operator, {}).get(queue)
                if old is not None and (old.state, old.paused, old.reason) == (
                        now.state, now.paused, now.reason):
                    queues[queue] = replace(now, since=min(old.since, now.since))

    def _join(self, fact: QueueJoined) -> None:
        line = self._queues.setdefault(fact.queue, [])
        existing = next((w for w in line if w.call_id == fact.call_id), None)
        if existing is not None:
            line.remove(existing)
        joined = existing.joined_at if existing is not None else fact.at
        line.insert(max(0, min(fact.position - 1, len(line))), Waiting(fact.call_id, joined))

    def _leave(self, call_id: str, queue: str) -> None:
        line = self._queues.get(queue)
        if line is None:
            return
        line[:] = [w for w in line if w.call_id != call_id]
        if not line:
            del self._queues[queue]

    def _member(self, fact: OperatorStateChanged) -> None:
        queues = self._members.setdefault(fact.operator, {})
        if fact.state == LOGGED_OUT:
            queues.pop(fact.queue, None)
            if not queues:
                del self._members[fact.operator]
                self._completed.pop(fact.operator, None)
            return
        known = queues.get(fact.queue)
        if known is not None and known.at > fact.at:
            return  # an older report arriving late (a resync racing an event)
        since = known.since if known is not None and known.same_state(fact) else fact.at
        queues[fact.queue] = Member(fact.state, fact.paused, fact.pause_reason, fact.at, since)

    # -- output -------------------------------------------------------------------------------

    def operator_view(self, operator: str, now: datetime) -> OperatorView:
        """One operator's state at ``now``."""
        queues = self._members.get(operator)
        if not queues:
            # In no queue, yet on an answered call (they logged out while it rang): talking,
            # since the answer, in none of the queues.
            since = min(call.at for call in self._talking[operator].values())
            return OperatorView(operator, OperatorState.TALKING, "", since, [])
        latest = max(queues.values(), key=lambda m: m.at)
        state = _DEVICE.get(latest.state, OperatorState.UNAVAILABLE)
        since = latest.since
        reason = ""
        if state is OperatorState.IDLE:
            paused = [m for m in queues.values() if m.paused]
            completed = self._completed.get(operator)
            if len(paused) == len(queues):
                newest = max(paused, key=lambda m: m.at)
                reason, since = newest.reason, newest.since
                state = (OperatorState.WRAPUP if is_wrapup_reason(reason)
                         else OperatorState.PAUSED)
            elif completed is not None and completed[0] <= now < completed[1]:
                state, since = OperatorState.WRAPUP, completed[0]
        return OperatorView(operator, state, reason, since, sorted(queues))

    def next_change(self, now: datetime) -> datetime | None:
        """The next instant the view changes with no new fact (a wrap-up time running out)."""
        ends = [ends for _, ends in self._completed.values() if ends > now]
        return min(ends, default=None)

    def view(self, now: datetime) -> BoardView:
        """The board at ``now``."""
        operators = [self.operator_view(op, now)
                     for op in sorted(self._members.keys() | self._talking.keys())]
        by_name = {view.operator: view for view in operators}
        counts = dict.fromkeys(OperatorState, 0)
        for view in operators:
            counts[view.state] += 1
        remote: dict[str, list[tuple[Waiting, CallInfo]]] = {}
        for call_id, visits in self._remote.items():
            for visit in visits:
                remote.setdefault(visit.queue, []).append(
                    (Waiting(call_id, visit.joined_at), visit.info))
        names = sorted(set(self._queues) | set(remote)
                       | {q for m in self._members.values() for q in m})
        queues = []
        for name in names:
            members = [op for op, qs in self._members.items() if name in qs]
            available = sum(
                by_name[op].state is OperatorState.IDLE and not self._members[op][name].paused
                for op in members)
            # This node's callers keep Asterisk's order; the other nodes' go in by when
            # they joined (a merge: neither list's own order changes).
            own = [(w, self._calls.get(w.call_id, CallInfo()))
                   for w in self._queues.get(name, [])]
            others = sorted(remote.get(name, []), key=lambda e: (e[0].joined_at, e[0].call_id))
            callers = [
                CallerView(position=index, joined_at=w.joined_at,
                           wait_seconds=max(0.0, (now - w.joined_at).total_seconds()),
                           line=info.line, category=info.category,
                           node=node_of(w.call_id) or None)
                for index, (w, info) in enumerate(
                    heapq.merge(own, others, key=lambda e: e[0].joined_at), start=1)]
            queues.append(QueueView(name, callers, len(members), available))
        return BoardView(now, queues, operators, counts)
