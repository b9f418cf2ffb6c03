"""The wallboard's counters of the current shift and of its operational day, kept in memory
from the call facts as they are tracked: never read back from the database per refresh.

Pure: :class:`ShiftCounters` takes facts, operator labels and a seed (the day's calls, read
once: at start, at each new shift, after a resync), on a cluster node the other nodes' calls
as their rows change in the database (:meth:`ShiftCounters.follow`), and answers
:meth:`ShiftCounters.live` for an instant it is given. It never reads a clock.

The figures mean what ``telephony.reports.model`` defines (the reports and the wallboard
must agree): each call is kept as the ``calls`` row the call store would make of the same
facts, in the same order (first queue joined, earliest arrival, an answer wins over an
abandon, a vanish only while no end is known...), and counts in the shift it arrived in, as
the reports put it, even when it is answered in the next. What a call adds to its shift and
to its day (its *share*: offered, answered, abandoned, service level hits, wait, talk,
label) is taken away and added again whenever a fact changes it, so a fact costs the same
whatever the day's calls. Two figures are no sums and are kept apart:

- the p90 wait: the waits in microseconds, in a sorted list per group;
- the service level of a caller still waiting: counted (a miss) only once the caller has
  waited past the threshold, so the join instants of those callers are kept sorted and
  counted against ``now`` when the figures are read.

An operator who leaves a three-way call with an agency (:class:`OperatorLeft`) has their
talk ended there, as migration 0047 ends it in the ``calls`` row: the call is completed at the
leave, with the talk from the answer to it, and Asterisk's completion at the call's end (the
whole call's talk, the caller's with the agency too) is capped at the leave. A seed carries
the leave of each call the database capped (``LiveCall.left_at``), so a completion applied
again after it is capped as well.

A call more than one phone answered (a blind transfer nobody took sent the caller back to
the queues and another operator answered) counts, as in the reports, with its talk the sum of
its operators' talks: each answering phone's part is kept as migration 0051 keeps its
``call_answers`` row from the answer facts, and capped at that operator's own leave of a
three-way call as migration 0052 caps it. A seed carries the parts and their leaves
(``LiveCall.answers``), so a second operator answering after a restart adds to the first's;
and, for a phone that answered the call again, its latest answer (from the answer facts), so
the completion of its earlier talk, applied again from the journal after the seed, is not
counted a second time.

A talk whose operator's phone died (Asterisk hung its leg up for silence: the completion's
Reason 'agent', the caller's cause 44) ends where its media stopped, as migration 0055 ends
it in the row and in that phone's part: the completion less the phone's rtp_timeout (read
with each seed, :class:`~telephony.reports.model.PhoneTimeouts`), once, whichever of the
completion and the hang-up comes first. A seed carries each call's cause, Reason and
completing phone's timeout, so a completion applied again after it is cut again from
Asterisk's end, as the row's trigger cuts it, and a hang-up applied again cuts nothing.

Memory follows the day's calls (one small record each; a new day starts afresh).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, NamedTuple

from telephony.calls.facts import (
    CallBackfilled,
    CallCut,
    CallEnded,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    LiveFact,
    OperatorAnswered,
    OperatorCompleted,
    OperatorLeft,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.reports.model import (
    RTP_TIMEOUT_CAUSE,
    SERVICE_LEVEL_SECONDS,
    Figures,
    LiveAnswer,
    LiveCall,
    PhoneTimeouts,
    Ratio,
    day_bounds,
    media_stopped,
)
from telephony.screening.features import NUISANCE

_MICROSECOND: Final = timedelta(microseconds=1)
_MICROS: Final = 1_000_000
_THRESHOLDS: Final = tuple(SERVICE_LEVEL_SECONDS)
_THRESHOLD_US: Final = tuple(t * _MICROS for t in _THRESHOLDS)
_THRESHOLD_SPANS: Final = tuple(timedelta(seconds=t) for t in _THRESHOLDS)
_NUISANCE: Final = frozenset(label.value for label in NUISANCE)
# Facts that create a call's row in the call store (calls.store._ENSURING).
_ENSURING: Final = (IvrVariableSet, IvrVariablesSet, QueueLeft, CallBackfilled)


@dataclass(frozen=True)
class LiveCounters:
    """The wallboard's figures: the current shift and the operational day it belongs to."""

    at: datetime
    shift: ShiftSlot
    shift_figures: Figures
    day_figures: Figures
    names: Mapping[str, str]  # operator interface -> display name
    # When the shift began and ends, and when its operational day began: after midnight the
    # day's figures are still those since the first shift's start the day before, and the
    # board says so.
    shift_started: datetime
    shift_ends: datetime
    day_started: datetime


class _Share(NamedTuple):
    """What one call adds to the figures of its shift and its day."""

    offered: int
    answered: int
    abandoned: int
    hits: tuple[int, ...]  # per threshold: answered within it
    counted: tuple[int, ...]  # per threshold: fate known whatever the clock
    waiting_since: datetime | None  # offered, still in progress, join seen: counted later
    wait_us: int | None  # answered and offered, wait known
    talk: int | None  # answered and offered, talk known
    labelled: int
    nuisance: int


_ZEROS: Final = (0,) * len(_THRESHOLDS)


@dataclass(slots=True)
class _Part:
    """One answering phone's part of a call: the ``call_answers`` row (migration 0051) its
    answer facts make, capped at its operator's leave (0052)."""

    answered_at: datetime | None
    completed_at: datetime | None = None
    talk: int | None = None
    talk_before: int = 0
    leaves: list[datetime] = field(default_factory=list)  # sorted
    # Its latest answer (a seed's: the answer facts' latest, when it answered again).
    answered_last: datetime | None = None
    ended_by: str | None = None  # its completion's Reason
    rtp_timeout: int | None = None  # its phone's

    @property
    def total(self) -> int | None:
        """Its talks added up (the reports' part talk); None when none is known."""
        if self.talk is None and self.talk_before == 0:
            return None
        return self.talk_before + (self.talk or 0)

    def answered(self, at: datetime) -> None:
        """``call_answers_from_event`` for an answer at ``at`` to an existing row."""
        if self.answered_at is None or at < self.answered_at:
            self.answered_at = at
        if self.answered_last is None or at > self.answered_last:
            self.answered_last = at
        if self.completed_at is not None and self.completed_at < at:
            # Answered again after its talk ended: that talk is kept, a new one begins.
            self.talk_before += self.talk or 0
            self.completed_at = self.talk = None
        self.end_talk_at_leave()

    def completed(self, at: datetime, talk: int, ended_by: str, dead: bool) -> None:
        """``call_answers_from_event`` for a completion at ``at`` to an existing row.

        One before the latest answer of a part answered again, its new talk not ended, is
        of a talk ``talk_before`` holds: the database recorded it once (call_events'
        dedupe key), and a seed's part applies it again only from the journal (the facts
        of before the seed, applied again after it). It counted that talk twice."""
        if (self.talk_before > 0 and self.completed_at is None
                and self.answered_last is not None and at < self.answered_last):
            return
        if self.answered_at is None:
            self.answered_at = at - timedelta(seconds=talk)
        before = self.completed_at
        if self.completed_at is None or self.completed_at <= at:
            self.completed_at, self.talk, self.ended_by = at, talk, ended_by
        self.end_talk_at_leave()
        if dead and (before is None or (self.completed_at is not None
                                        and self.completed_at > before)):
            self.end_talk_where_media_stopped()

    def leave(self, at: datetime) -> None:
        """Migration 0052's ``transfer_steps_answer_left``: a talk open at ``at`` (or ended
        after it) is ended at the leave."""
        bisect.insort(self.leaves, at)
        if self.answered_at is not None and self.answered_at <= at and (
                self.completed_at is None or self.completed_at > at):
            if self.completed_at is None:
                self.completed_at = at
            self.end_talk_at_leave()

    def end_talk_where_media_stopped(self) -> None:
        """Migration 0055's cut of a talk whose phone Asterisk hung up for silence (the
        call's cause is 44; the caller calls it): one its operator's leg ended, not ended by
        a leave, ends its rtp_timeout before its completion."""
        completed, talk = self.completed_at, self.talk
        if (completed is None or talk is None or self.ended_by != "agent"
                or self.rtp_timeout is None or self.left_at() is not None):
            return
        self.completed_at, self.talk = media_stopped(talk, self.answered_at, completed,
                                                     self.rtp_timeout)

    def left_at(self) -> datetime | None:
        """The (first) leave of its operator within its ended talk (0052's search)."""
        completed = self.completed_at
        if completed is None:
            return None
        since: datetime | None
        if self.talk_before == 0:
            since = self.answered_at
        elif self.talk is None:
            since = completed
        else:
            since = completed - timedelta(seconds=self.talk + 1)
        return next((at for at in self.leaves
                     if at <= completed and (since is None or at >= since)), None)

    def end_talk_at_leave(self) -> None:
        """Migration 0052's ``call_answers_talk_until_left``, run whenever the row is written:
        an ended talk its operator left before its end is ended at the (first such) leave."""
        completed = self.completed_at
        if completed is None:
            return
        since: datetime | None
        if self.talk_before == 0:
            since = self.answered_at
        elif self.talk is None:
            since = completed
        else:
            since = completed - timedelta(seconds=self.talk + 1)
        left = next((at for at in self.leaves
                     if at <= completed and (since is None or at >= since)), None)
        if left is None:
            return
        if self.talk_before == 0 and self.answered_at is not None:
            until_left = _epoch_seconds(left - self.answered_at)
            self.talk = until_left if self.talk is None else min(self.talk, until_left)
        else:
            self.talk = (0 if self.talk is None
                         else max(0, self.talk - _epoch_seconds(completed - left)))
        self.completed_at = left


def _part_of(row: LiveAnswer) -> _Part:
    return _Part(row.answered_at, row.completed_at, row.talk_seconds, row.talk_before,
                 sorted(row.leaves), row.answered_last or row.answered_at, row.ended_by,
                 row.rtp_timeout)


@dataclass(slots=True)
class _Call:
    """A call as the ``calls`` row (and ``call_outcomes``' disposition) the facts make."""

    call_id: str
    arrived_at: datetime | None = None
    slot: ShiftSlot | None = None
    queue: str | None = None
    joined_at: datetime | None = None
    answered_at: datetime | None = None
    completed_at: datetime | None = None
    abandoned_at: datetime | None = None
    ended_at: datetime | None = None
    vanished: bool = False
    hold: int | None = None
    talk: int | None = None
    label: str | None = None
    left_at: datetime | None = None  # the operator left its three-way call (the earliest)
    parts: dict[str, _Part] = field(default_factory=dict)  # answering phone -> its part
    # Leaves of phones with no part yet (a leave before the answer fact is applied).
    early_leaves: dict[str, list[datetime]] = field(default_factory=dict)
    # The answer facts applied to the parts: one tracked again is not recorded again
    # (call_events' dedupe key), so it changes no part.
    answer_facts: set[OperatorAnswered | OperatorCompleted] = field(default_factory=set)
    share: _Share | None = None  # what it adds now (None: nothing, it is in no group)
    counted_in: str | None = None  # the shift of the day it adds ``share`` to
    # The caller's hang-up cause, the completion's Reason and its phone's rtp_timeout: a
    # talk a dead phone ended ends where its media stopped (migration 0055).
    cause: int | None = None
    ended_by: str | None = None
    rtp_timeout: int | None = None

    @property
    def disposition(self) -> str:
        """As ``call_outcomes`` words it."""
        if self.answered_at is not None or self.completed_at is not None:
            return "answered"
        if self.abandoned_at is not None:
            return "abandoned"
        if self.vanished:
            return "vanished"
        if self.queue is None and self.ended_at is not None:
            return "ended_in_ivr"
        if self.ended_at is None:
            return "in_progress"
        return "ended_in_queue"

    def leave(self, at: datetime) -> None:
        """The operator left the call's three-way call at ``at``: migration 0047's
        ``transfer_steps_operator_left`` (an answered call not completed by then is completed
        at the leave), then its ``calls_talk_until_left``."""
        if self.left_at is None or at < self.left_at:
            self.left_at = at
        if self.answered_at is not None and self.answered_at <= at and (
                self.completed_at is None or self.completed_at > at):
            self.completed_at = at
            self.end_talk_at_leave()

    def end_talk_at_leave(self) -> None:
        """Migration 0047's ``calls_talk_until_left``, run whenever the row's answer or
        completion is written: a completion at or after the operator's leave (not before the
        answer) is moved to the leave, its talk ending there."""
        left, completed, answered = self.left_at, self.completed_at, self.answered_at
        if (left is None or completed is None or left > completed
                or (answered is not None and left < answered)):
            return
        if answered is not None:
            until_left = _epoch_seconds(left - answered)
            self.talk = until_left if self.talk is None else min(self.talk, until_left)
        else:
            self.talk = (0 if self.talk is None
                         else max(0, self.talk - _epoch_seconds(completed - left)))
        self.completed_at = left

    def completed(self, fact: OperatorCompleted, timeout: int | None) -> None:
        """The call store's completion of the row (``timeout``: the completing phone's
        rtp_timeout), then the row's triggers, and its phone's part."""
        if self.hold is None:
            self.hold = fact.wait_seconds
        if self.answered_at is None:
            self.answered_at = fact.at - timedelta(seconds=fact.talk_seconds)
        self.talk, self.completed_at = fact.talk_seconds, fact.at
        self.ended_by, self.rtp_timeout = fact.ended_by, timeout
        self.end_talk_at_leave()
        self.end_talk_where_media_stopped(cause_now=False)
        self.answer_fact(fact, timeout)

    def ended(self, fact: CallEnded) -> None:
        """The caller's hang-up; its cause first 44 cuts a dead phone's talk (0055)."""
        cause_now = fact.cause == RTP_TIMEOUT_CAUSE and self.cause != RTP_TIMEOUT_CAUSE
        self.ended_at, self.vanished, self.cause = fact.at, False, fact.cause
        if cause_now:
            self.end_talk_where_media_stopped(cause_now=True)

    def left_within(self) -> bool:
        """``operator_left_at`` of the row's talk: its operator left it within it."""
        left, completed, answered = self.left_at, self.completed_at, self.answered_at
        return (left is not None and completed is not None and left <= completed
                and (answered is None or left >= answered))

    def end_talk_where_media_stopped(self, cause_now: bool) -> None:
        """Migration 0055's ``calls_talk_until_media_stopped``, run when a completion is
        written or the cause becomes 44 (``cause_now``: then the parts are cut too): a talk
        the operator's leg ended ('agent') with cause 44, not ended by a leave, ends its
        phone's rtp_timeout before the completion."""
        completed, talk = self.completed_at, self.talk
        if (completed is None or talk is None or self.cause != RTP_TIMEOUT_CAUSE
                or self.ended_by != "agent" or self.left_within()):
            return
        if cause_now:
            for part in self.parts.values():
                part.end_talk_where_media_stopped()
        if self.rtp_timeout is not None:
            self.completed_at, self.talk = media_stopped(talk, self.answered_at, completed,
                                                         self.rtp_timeout)

    def call_talk(self) -> int | None:
        """``CallRow.talk``: the row's talk, or its parts' talks added up when more than one
        phone answered it (``calls.answers_shared``)."""
        if len(self.parts) < 2:
            return self.talk
        known = [talk for part in self.parts.values() if (talk := part.total) is not None]
        return sum(known) if known else None

    def answer_fact(self, fact: OperatorAnswered | OperatorCompleted,
                    timeout: int | None) -> None:
        """An answer fact applied to its phone's part (``timeout``: the phone's
        rtp_timeout); one applied before changes nothing."""
        if fact in self.answer_facts:
            return
        self.answer_facts.add(fact)
        if isinstance(fact, OperatorAnswered):
            self.answered_by(fact.operator, fact.at)
        else:
            self.completed_by(fact.operator, fact.at, fact.talk_seconds, fact.ended_by,
                              timeout)

    def part_left(self, operator: str, at: datetime) -> None:
        """``operator`` left the call's three-way call at ``at``: their part's talk ends there
        (0052); a leave before their part is known is kept for it."""
        part = self.parts.get(operator)
        if part is not None:
            part.leave(at)
        else:
            self.early_leaves.setdefault(operator, []).append(at)

    def answered_by(self, operator: str, at: datetime) -> None:
        """``call_answers_from_event`` of an answer (none recorded for no phone)."""
        if not operator:
            return
        part = self.parts.get(operator)
        if part is None:
            part = self.parts[operator] = _Part(
                at, leaves=sorted(self.early_leaves.pop(operator, [])), answered_last=at)
            part.end_talk_at_leave()
        else:
            part.answered(at)

    def completed_by(self, operator: str, at: datetime, talk: int, ended_by: str,
                     timeout: int | None) -> None:
        """``call_answers_from_event`` of a completion (then 0052's and 0055's triggers)."""
        if not operator:
            return
        dead = self.cause == RTP_TIMEOUT_CAUSE
        part = self.parts.get(operator)
        if part is None:
            part = self.parts[operator] = _Part(
                at - timedelta(seconds=talk), at, talk,
                leaves=sorted(self.early_leaves.pop(operator, [])), ended_by=ended_by,
                rtp_timeout=timeout)
            part.end_talk_at_leave()
            if dead:
                part.end_talk_where_media_stopped()
        else:
            part.rtp_timeout = timeout
            part.completed(at, talk, ended_by, dead)

    def wait_us(self) -> int | None:
        """``CallRow.wait_seconds`` in whole microseconds (answered calls only)."""
        if self.joined_at is not None and self.answered_at is not None:
            return max(0, (self.answered_at - self.joined_at) // _MICROSECOND)
        return self.hold * _MICROS if self.hold is not None else None

    def counted_share(self) -> _Share:
        """What the call adds to the figures (``reports.model.figures``)."""
        labelled = int(self.label is not None)
        nuisance = int(self.label in _NUISANCE)
        if self.queue is None:
            return _Share(0, 0, 0, _ZEROS, _ZEROS, None, None, None, labelled, nuisance)
        disposition = self.disposition
        if disposition == "answered":
            wait = self.wait_us()
            if wait is None:
                hits = counted = _ZEROS
            else:
                hits = tuple(int(wait <= limit) for limit in _THRESHOLD_US)
                counted = (1,) * len(_THRESHOLDS)
            return _Share(1, 1, 0, hits, counted, None, wait, self.call_talk(), labelled,
                          nuisance)
        if disposition == "in_progress":
            return _Share(1, 0, 0, _ZEROS, _ZEROS, self.joined_at, None, None,
                          labelled, nuisance)
        return _Share(1, 0, int(disposition == "abandoned"), _ZEROS, (1,) * len(_THRESHOLDS),
                      None, None, None, labelled, nuisance)


@dataclass
class _Sums:
    """The figures of one group of calls, as sums (and the two sorted lists)."""

    calls: int = 0
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    hits: list[int] = field(default_factory=lambda: [0] * len(_THRESHOLDS))
    counted: list[int] = field(default_factory=lambda: [0] * len(_THRESHOLDS))
    waiting_since: list[datetime] = field(default_factory=list)  # sorted
    waits: list[int] = field(default_factory=list)  # sorted, microseconds
    wait_sum: int = 0
    talk_n: int = 0
    talk_sum: int = 0
    labelled: int = 0
    nuisance: int = 0

    def add(self, share: _Share, *, in_order: bool = True) -> None:
        """Add a call's share; with ``in_order`` false, the two lists are left for
        :meth:`sort` (a seed adds a day's calls: one sort, not an insertion each)."""
        self.calls += 1
        self.offered += share.offered
        self.answered += share.answered
        self.abandoned += share.abandoned
        for index in range(len(_THRESHOLDS)):
            self.hits[index] += share.hits[index]
            self.counted[index] += share.counted[index]
        if share.waiting_since is not None:
            if in_order:
                bisect.insort(self.waiting_since, share.waiting_since)
            else:
                self.waiting_since.append(share.waiting_since)
        if share.wait_us is not None:
            if in_order:
                bisect.insort(self.waits, share.wait_us)
            else:
                self.waits.append(share.wait_us)
            self.wait_sum += share.wait_us
        if share.talk is not None:
            self.talk_n += 1
            self.talk_sum += share.talk
        self.labelled += share.labelled
        self.nuisance += share.nuisance

    def sort(self) -> None:
        """Order the lists after adding out of order."""
        self.waiting_since.sort()
        self.waits.sort()

    def remove(self, share: _Share) -> None:
        self.calls -= 1
        self.offered -= share.offered
        self.answered -= share.answered
        self.abandoned -= share.abandoned
        for index in range(len(_THRESHOLDS)):
            self.hits[index] -= share.hits[index]
            self.counted[index] -= share.counted[index]
        if share.waiting_since is not None:
            del self.waiting_since[bisect.bisect_left(self.waiting_since, share.waiting_since)]
        if share.wait_us is not None:
            del self.waits[bisect.bisect_left(self.waits, share.wait_us)]
            self.wait_sum -= share.wait_us
        if share.talk is not None:
            self.talk_n -= 1
            self.talk_sum -= share.talk
        self.labelled -= share.labelled
        self.nuisance -= share.nuisance

    def figures(self, now: datetime) -> Figures:
        """As ``reports.model.figures`` over the group's calls at ``now`` (no wrap-ups: the
        wallboard shows none)."""
        waits = self.waits
        levels = {}
        for index, threshold in enumerate(_THRESHOLDS):
            # Still waiting and joined longer ago than the threshold: a miss already.
            late = bisect.bisect_left(self.waiting_since, now - _THRESHOLD_SPANS[index])
            levels[threshold] = Ratio(self.hits[index], self.counted[index] + late)
        return Figures(
            calls=self.calls, offered=self.offered, answered=self.answered,
            abandoned=self.abandoned, service_levels=levels,
            mean_wait=self.wait_sum / _MICROS / len(waits) if waits else None,
            p90_wait=waits[math.ceil(0.9 * len(waits)) - 1] / _MICROS if waits else None,
            mean_talk=self.talk_sum / self.talk_n if self.talk_n else None,
            mean_wrapup=None, labelled=self.labelled, nuisance=self.nuisance)


def _call_of(row: LiveCall) -> _Call:
    """A call as its ``calls`` row has it (counted in no group yet)."""
    slot = (ShiftSlot(row.shift_day, row.shift_name)
            if row.shift_day is not None and row.shift_name is not None else None)
    return _Call(row.call_id, row.arrived_at, slot, row.queue, row.joined_at, row.answered_at,
                 row.completed_at, row.abandoned_at, row.ended_at, row.vanished,
                 row.hold_seconds, row.talk_seconds, row.label, row.left_at,
                 {part.operator: _part_of(part) for part in row.answers},
                 cause=row.hangup_cause, ended_by=row.ended_by, rtp_timeout=row.rtp_timeout)


def _epoch_seconds(span: timedelta) -> int:
    """PostgreSQL's ``round(date_part('epoch', span))``: a double rounded half to even."""
    return round(span.total_seconds())


def _half_up_seconds(span: timedelta) -> int:
    """PostgreSQL's ``greatest(0, round(extract(epoch FROM span)))``."""
    micros = span // _MICROSECOND
    return 0 if micros <= 0 else (micros + _MICROS // 2) // _MICROS


class ShiftCounters:
    """The figures of the operational day's shifts, kept from facts."""

    def __init__(self, calendar: ShiftCalendar) -> None:
        self._calendar = calendar
        self._timeouts = PhoneTimeouts()
        self._day: date | None = None  # None until seeded
        self._calls: dict[str, _Call] = {}
        self._shifts: dict[str, _Sums] = {}
        self._whole_day = _Sums()

    # -- input --------------------------------------------------------------------------------

    def seed(self, day: date, calls: Iterable[LiveCall],
             timeouts: PhoneTimeouts | None = None) -> None:
        """Start again from the database's calls of the operational day ``day`` (and the open
        ones not yet in a shift). Facts the database may not have had yet are applied again
        afterwards: every fact leaves a call as it would leave its row, so a fact applied to a
        call that already has it changes nothing. ``timeouts``: the phones' rtp_timeouts
        now (kept until the next seed), for the completions that follow."""
        if timeouts is not None:
            self._timeouts = timeouts
        self._calls = {row.call_id: _call_of(row) for row in calls}
        self._recount(day)

    def follow(self, row: LiveCall) -> bool:
        """Another cluster node's call as the database has it now (this node's listener sees
        none of its facts): the row replaces what was kept of the call, its old share taken
        away and its new one added. Only a newer row than the one kept should follow (the
        caller reads rows by ``updated_at``); the same row again changes nothing. A row of an
        earlier day, or an ended call of no shift, is forgotten (as a seed leaves it out).
        Whether the figures moved."""
        if self._day is None:
            return False  # not seeded: the seed reads every node's calls
        old = self._calls.pop(row.call_id, None)
        before = (old.share, old.counted_in) if old is not None else (None, None)
        if old is not None and old.share is not None and old.counted_in is not None:
            self._shifts[old.counted_in].remove(old.share)
            self._whole_day.remove(old.share)
        call = _call_of(row)
        if (call.slot is None and call.ended_at is not None) or (
                call.slot is not None and call.slot.day < self._day):
            return before != (None, None)
        self._calls[row.call_id] = call
        self._update(call)
        return before != (call.share, call.counted_in)

    def apply(self, facts: Iterable[LiveFact]) -> None:
        """Follow facts, in the order the listener (or the transfer service, for a leave)
        established them."""
        for fact in facts:
            call = self._changed_by(fact)
            if call is not None:
                self._update(call)

    def labelled(self, call_id: str, label: str) -> None:
        """An operator labelled a call (the newest label is the call's label)."""
        call = self._calls.get(call_id)
        if call is not None:
            call.label = label
            self._update(call)

    # -- output -------------------------------------------------------------------------------

    def live(self, now: datetime, names: Mapping[str, str]) -> LiveCounters | None:
        """The current shift's and day's figures at ``now``; None until seeded. A new day
        starts from its calls seen so far (the previous day's no longer count)."""
        if self._day is None:
            return None
        slot = self._calendar.slot_for(now)
        if slot.day > self._day:
            self._recount(slot.day)
        # (A clock set back shows no shift of the day before: its calls are forgotten.)
        shift = (self._shifts.get(slot.name) if slot.day == self._day else None) or _Sums()
        started, ends = self._calendar.bounds(slot)
        return LiveCounters(now, slot, shift.figures(now), self._whole_day.figures(now),
                            dict(names), started, ends, day_bounds(self._calendar, slot.day)[0])

    def __len__(self) -> int:
        """How many calls are kept."""
        return len(self._calls)

    # -- internals ----------------------------------------------------------------------------

    def _recount(self, day: date) -> None:
        """Count ``day``: forget the calls of the days before and the ended ones of no shift
        (a call of the next day, by a clock a little ahead, is kept for its turn)."""
        self._day = day
        self._shifts = {}
        self._whole_day = _Sums()
        kept = {}
        for call_id, call in self._calls.items():
            if call.slot is None and call.ended_at is not None:
                continue
            if call.slot is not None and call.slot.day < day:
                continue
            kept[call_id] = call
            call.share = call.counted_in = None
            if call.slot is None or call.slot.day != day:
                continue
            call.share, call.counted_in = call.counted_share(), call.slot.name
            self._shift(call.slot.name).add(call.share, in_order=False)
            self._whole_day.add(call.share, in_order=False)
        for sums in (*self._shifts.values(), self._whole_day):
            sums.sort()
        self._calls = kept

    def _ensure(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id)
        return call

    def _changed_by(self, fact: LiveFact) -> _Call | None:
        """Apply ``fact`` to its call as the call store applies it to the row; the call."""
        match fact:
            case CallStarted():
                call = self._ensure(fact.call_id)
                if call.arrived_at is None or fact.at < call.arrived_at:
                    call.arrived_at = fact.at
                    call.slot = self._calendar.slot_for(fact.at)
                return call
            case QueueJoined():
                call = self._ensure(fact.call_id)
                if call.queue is None:
                    call.queue, call.joined_at = fact.queue, fact.at
                return call
            case QueueAbandoned():
                call = self._ensure(fact.call_id)
                call.abandoned_at = fact.at
                return call
            case OperatorAnswered():
                call = self._ensure(fact.call_id)
                if call.hold is None:
                    call.hold = fact.wait_seconds
                if call.answered_at is None or fact.at < call.answered_at:
                    call.answered_at = fact.at
                call.end_talk_at_leave()
                call.answer_fact(fact, self._timeouts.of(fact.operator))
                return call
            case OperatorCompleted():
                call = self._ensure(fact.call_id)
                call.completed(fact, self._timeouts.of(fact.operator))
                return call
            case OperatorLeft():
                known = self._calls.get(fact.call_id)  # the step updates only a row there
                if known is not None:
                    known.leave(fact.at)
                    known.part_left(fact.operator, fact.at)
                return known
            case CallEnded():
                call = self._ensure(fact.call_id)
                call.ended(fact)
                return call
            case CallVanished():
                known = self._calls.get(fact.call_id)  # only a call the store has
                if known is not None and known.ended_at is None:
                    known.ended_at, known.vanished = fact.at, True
                return known
            case CallCut():
                return self._cut(fact)
            case _ if isinstance(fact, _ENSURING):
                self._ensure(fact.call_id)  # the row exists from now on: a vanish applies
        return None

    def _cut(self, fact: CallCut) -> _Call | None:
        """``calls.outage_store._CUT``: a vanished call ends when it was last seen alive; an
        answered call with no talk time talked until its end."""
        call = self._calls.get(fact.call_id)
        if call is None:
            return None
        end = call.ended_at
        if call.vanished:
            end = fact.at if end is None else min(end, fact.at)
        if call.talk is None and call.answered_at is not None and end is not None:
            call.talk = _half_up_seconds(end - call.answered_at)
        call.ended_at = end
        return call

    def _update(self, call: _Call) -> None:
        """Take the call's old share away from its groups and add its new one (its shift may
        have changed too: an earlier sighting moves its arrival)."""
        counted = call.slot is not None and call.slot.day == self._day
        share = call.counted_share() if counted else None
        shift = call.slot.name if counted and call.slot is not None else None
        if share == call.share and shift == call.counted_in:
            return
        if call.share is not None and call.counted_in is not None:
            self._shifts[call.counted_in].remove(call.share)
            self._whole_day.remove(call.share)
        if share is not None and shift is not None:
            self._shift(shift).add(share)
            self._whole_day.add(share)
        call.share, call.counted_in = share, shift

    def _shift(self, name: str) -> _Sums:
        sums = self._shifts.get(name)
        if sums is None:
            sums = self._shifts[name] = _Sums()
        return sums
