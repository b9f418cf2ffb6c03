"""The supervisor's figures: what happened to the calls of a shift, a day or any run of shifts.

Pure; nothing here reads a clock or the database. The database computes the figures
(``telephony.reports.store``, grouped SQL) and the reports are put together here from them.
The functions over :class:`CallRow` (one row per call) are the reference implementation of
the definitions below: production no longer calls them, the SQL is tested against them on
random histories (tests/loopback/test_reports_sql.py) and they are unit-tested on their own.
They stay beside the definitions they implement, so a change of meaning is made, and
reviewed, in one place.

Definitions, in one place so the wallboard, the reports and their CSV agree:

- **offered**: the call reached a queue (a caller who hung up in the IVR was never offered to
  an operator). Per queue, a call counts in the *first* queue it joined (the one the IVR chose),
  so the queues add up to the total even when calls overflowed to ``all-operators``. Per
  operator, a call counts as offered to every operator whose phone rang for it.
- **operator**: the account working at a phone when it rang for the call, or answered it
  (recorded then: after a desk swap last night's calls stay last night's operator's); a
  phone whose account was not recorded counts as an operator of its own
  (:data:`UNRECORDED_OPERATOR`), never as whoever works there now. A call more than one
  operator answered (a blind transfer nobody took sent the caller back to the queues and
  another operator answered; migration 0051) is answered by each of them: per operator it
  counts among the calls they answered, with *their* talk and wrap-up (:class:`Answer`).
- **answered** / **abandoned**: ``call_outcomes.disposition`` (an answer wins over an abandon).
  In a total, a shift or a queue a call counts once, however many operators answered it.
- **wait**: from joining the first queue to the answer (overflow included), answered calls only;
  Asterisk's own hold time (which restarts in each queue) only when the join was not seen.
- **p90 wait**: nearest rank, so it is a wait some caller really had: 90% of answered callers
  waited at most this long.
- **service level at T**: answered within T seconds (inclusive) of joining, over the offered
  calls whose fate at T is known: answered, or no longer waiting, or still waiting past T (that
  caller is already a miss). A caller who is still waiting and joined less than T ago is not
  yet counted either way; a call answered with an unknown wait is left out.
- **talk**: from the operator's answer to the end of *their* part of the call
  (``calls.talk_seconds``, ending at ``calls.completed_at``): the call's end or a hand-over
  (Asterisk's ``AgentComplete``), or their leaving a three-way call with an agency ("Keluar"
  or hanging up; the caller talks on with the agency, not with them: migration 0047), or,
  their phone dead (Asterisk hung their leg up for silence, cause 44), where its media stopped:
  the completion less that phone's rtp_timeout, never before the talk began (0055). A
  call's talk, in a total, a shift or a queue, is the sum of its operators' talks (the time
  the caller spent with the line's operators); per operator, their own.
- **wrap-up**: after each answered call the operator is not rung for the wrap-up time of the
  queue that call was answered in (as app_queue does), as an admin had set it when the call
  was answered, else the settings file's; it starts at the end of their talk (after leaving a
  three-way call too: app_queue releases them then, its member no longer in the call and its
  last call set while the caller talks on, though its AgentComplete comes at the call's end);
  if they pause with a wrap-up reason within :data:`WRAPUP_PAUSE_GRACE` of that end, the
  wrap-up lasts until that pause ends. Each operator who answered a call has their own
  wrap-up after their part; a total's mean wrap-up is over those parts.
- **prank share**: calls whose current label is prank or silent, over the labelled calls (an
  unlabelled call is unknown, not genuine).
- **incidents** (the daily summary's report types and villages): those of the day's calls,
  except the ones an operator marked a prank report or cancelled (:data:`NOT_INCIDENTS`).
  Every answered call opens an incident, a prank's too, pre-filled from the IVR: counted, a
  child's "fire" would be a fire in a village for the regency head. Their calls still count
  under their IVR category and their label.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Final, TypeVar

from telephony.calls.facts import OperatorStateChanged, QueueJoined
from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.core.errors import Invalid
from telephony.desks.operators import PauseReason
from telephony.desks.phones import RtpTimeouts
from telephony.incidents.model import Status
from telephony.screening.features import NUISANCE, Label

SERVICE_LEVEL_SECONDS: Final = (10, 20)
# Whom a report names for a phone's calls when who worked there then is not recorded (calls
# from before migration 0044 without a desk.join logged for that phone).
UNRECORDED_OPERATOR: Final = "Operator tidak tercatat"
MAX_REPORT_DAYS: Final = 31
WRAPUP_PAUSE_GRACE: Final = timedelta(seconds=60)
# Incidents the daily summary does not count (see the definitions above).
NOT_INCIDENTS: Final = frozenset({Status.PRANK, Status.CANCELLED})

K = TypeVar("K", bound=Hashable)


# The database's view of what is live, read by the report store and handed to the wallboard
# at start-up (telephony.wallboard.state.LiveBoard.seed): here so that reports, the lower
# feature, need nothing of the wallboard.
# Asterisk's Q.850 cause for a leg it hung up for silence (its endpoint's rtp_timeout,
# migration 0049), handed to the caller's channel as the bridge dissolves.
RTP_TIMEOUT_CAUSE: Final = 44


@dataclass(frozen=True)
class PhoneTimeouts:
    """Each phone's talking rtp_timeout as ``phone_secrets`` and ``phone_site`` give it
    (migration 0055's ``operator_rtp_timeout``): a browser phone's, else a desk phone's."""

    browsers: frozenset[str] = frozenset()  # the browser phones' interfaces
    site: RtpTimeouts | None = None  # None: not known (no phone's talk is cut)

    def of(self, operator: str) -> int | None:
        if self.site is None:
            return None
        return self.site.browser if operator in self.browsers else self.site.desk


def media_stopped(talk: int, answered: datetime | None, completed: datetime,
                  timeout: int) -> tuple[datetime, int]:
    """Migration 0055's ``media_stopped_at`` and the talk up to it: a talk of ``talk`` s
    Asterisk completed at ``completed`` when it hung up a phone of rtp_timeout ``timeout``
    for silence ended where the media stopped, never before the talk began (the answer, or
    the completion less its talk, whichever is later)."""
    began = completed - timedelta(seconds=talk)
    stopped = max(completed - timedelta(seconds=timeout),
                  began if answered is None else max(answered, began))
    # 0047's talk_until_left with no answer: PostgreSQL's round() of a double, half to even.
    return stopped, max(0, talk - round((completed - stopped).total_seconds()))


@dataclass(frozen=True)
class CallInfo:
    """What the board shows of a live call (no caller data: admins see the board too)."""

    line: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class LivePicture:
    """What the database says is live, for a board started before any resync."""

    calls: dict[str, CallInfo]
    waiting: list[QueueJoined]  # open queue visits of calls not yet answered or ended
    members: list[OperatorStateChanged]  # queue_members, logged-out ones excluded
    # Calls answered and not yet completed nor ended: an operator on one is talking even with
    # no queue membership left (they logged out while the call rang at their phone).
    talking: list[Talking] = field(default_factory=list)
    # Calls not ended whose operator left their three-way call with an agency (migration
    # 0047 completed them at the leave): their later completion is no new wrap-up. ``at``:
    # the leave.
    left: list[Talking] = field(default_factory=list)


@dataclass(frozen=True)
class Talking:
    """An operator on an answered call (the wallboard lists them even out of every queue)."""

    operator: str
    call_id: str
    at: datetime  # the answer


@dataclass(frozen=True)
class LiveCall:
    """One call of the operational day as the wallboard's live counters start from it: the
    ``calls`` columns the facts set and the figures read (``call_outcomes``' disposition is
    derived from them), read once when the counters are seeded, then kept from facts."""

    call_id: str
    arrived_at: datetime | None
    shift_day: date | None
    shift_name: str | None
    queue: str | None  # the first queue joined
    joined_at: datetime | None
    answered_at: datetime | None
    completed_at: datetime | None
    abandoned_at: datetime | None
    ended_at: datetime | None
    vanished: bool
    hold_seconds: int | None  # Asterisk's HoldTime (calls.wait_seconds)
    talk_seconds: int | None
    label: str | None  # the current operator label
    operator: str | None = None  # who answered (a board follows another node's wrap-ups)
    # The answering queue's wrap-up an admin had set when it was answered; None: the file's.
    wrapup_seconds: int | None = None
    # When its operator left its three-way call with an agency, if the row's talk was ended
    # there (migration 0047): Asterisk's completion applied again is capped there too.
    left_at: datetime | None = None
    # Each answering phone's part (``call_answers``, migration 0051): a call more than one
    # answered counts their talks added up, and one answered so far may yet be answered by
    # another (a blind transfer nobody took), whose part then adds to those kept here.
    answers: tuple[LiveAnswer, ...] = ()
    # How it ended, for a talk its operator's dead phone ended (migration 0055): the caller's
    # Q.850 cause, Asterisk's completion Reason, and the rtp_timeout of the phone whose
    # completion the row holds (looked up only for a completion its operator's leg ended).
    hangup_cause: int | None = None
    ended_by: str | None = None
    rtp_timeout: int | None = None


@dataclass(frozen=True)
class LiveAnswer:
    """One answering phone's part of a live call as ``call_answers`` holds it (0051, 0052)."""

    operator: str  # the phone's interface
    answered_at: datetime | None
    completed_at: datetime | None
    talk_seconds: int | None  # the talk in progress or last ended
    talk_before: int  # its earlier talks with this caller
    # Its answering queue's wrap-up an admin had set when it answered; None: the file's.
    wrapup_seconds: int | None = None
    # Its leaves of the call's three-way calls (a completion applied again is capped there).
    leaves: tuple[datetime, ...] = ()
    # Its latest answer, when it answered the call again after a talk (``talk_before``): a
    # completion before it, applied again, is of a talk ``talk_before`` already holds.
    answered_last: datetime | None = None
    # Its completion's Reason, and its phone's rtp_timeout (migration 0055).
    ended_by: str | None = None
    rtp_timeout: int | None = None


@dataclass(frozen=True)
class ChangedCalls:
    """Other cluster nodes' calls whose rows changed lately, as the wallboard's counters and
    its board of waiting callers follow them (``ReportRepository.changed_calls``)."""

    at: datetime  # the database's clock before the read: rows changed later are not in it
    calls: list[LiveCall]
    # The callers among them still waiting (their open queue visits, as LivePicture's), and
    # what the board shows of their calls. A whole read (``whole``: no ``since``, the counters
    # about to be seeded) has every other node's waiting caller and no ``calls``.
    waiting: list[QueueJoined] = field(default_factory=list)
    info: dict[str, CallInfo] = field(default_factory=dict)
    whole: bool = False


class InvalidPeriod(Invalid, ValueError):
    """A report asked for a period or shift that cannot be reported; ``message`` is for the
    supervisor, ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


@dataclass(frozen=True)
class Answer:
    """One operator's part of a call more than one operator answered (``call_answers``)."""

    operator: str  # who answered (see the definitions)
    desk: str  # the phone that answered: its pauses are the wrap-up's
    talk_seconds: int | None  # their talk, all of it
    completed_at: datetime | None  # the end of their talk


# A wrap-up's key: the call and the phone whose part it follows.
WrapKey = tuple[str, str]


@dataclass(frozen=True)
class CallRow:
    """One call as the reports need it."""

    call_id: str
    line: str | None
    shift_day: date | None
    shift_name: str | None
    category: str | None  # IVR category: emergency, complaint, information
    queue: str | None  # the first queue joined; None: never offered
    joined_at: datetime | None
    answered_at: datetime | None
    operator: str | None  # who answered (see the definitions)
    hold_seconds: int | None  # Asterisk's HoldTime in the answering queue
    talk_seconds: int | None
    completed_at: datetime | None
    ended_at: datetime | None
    disposition: str  # call_outcomes.disposition
    label: Label | None  # the current operator label
    rung: frozenset[str] = frozenset()  # operators whose phone rang for this call
    desk: str | None = None  # the phone that answered: its pauses are the wrap-up's
    # Every operator's part when more than one answered (then ``operator``, ``desk``,
    # ``talk_seconds`` and ``completed_at`` are not read); empty: those are the one answer.
    answers: tuple[Answer, ...] = ()

    @property
    def talk(self) -> float | None:
        """The call's talk: its operators' talks added up; None when none is known."""
        if not self.answers:
            return float(self.talk_seconds) if self.talk_seconds is not None else None
        known = [a.talk_seconds for a in self.answers if a.talk_seconds is not None]
        return float(sum(known)) if known else None

    def wrap_keys(self) -> list[WrapKey]:
        """The keys of the wrap-ups after the call's parts."""
        if not self.answers:
            return [(self.call_id, self.desk)] if self.desk is not None else []
        return [(self.call_id, a.desk) for a in self.answers]

    def as_answered_by(self, operator: str) -> list[CallRow]:
        """The call as ``operator`` answered it: each of their parts as a call with their
        talk and end (the call's own row when one operator answered it, and it was them)."""
        if not self.answers:
            return [self] if self.operator == operator else []
        return [replace(self, operator=a.operator, desk=a.desk, talk_seconds=a.talk_seconds,
                        completed_at=a.completed_at, answers=())
                for a in self.answers if a.operator == operator]

    @property
    def offered(self) -> bool:
        """The call reached a queue."""
        return self.queue is not None

    @property
    def answered(self) -> bool:
        """An operator answered."""
        return self.disposition == "answered"

    @property
    def abandoned(self) -> bool:
        """The caller hung up while queued."""
        return self.disposition == "abandoned"

    @property
    def wait_seconds(self) -> float | None:
        """Seconds from joining the first queue to the answer; None if unanswered or unknown."""
        if not self.answered:
            return None
        if self.joined_at is not None and self.answered_at is not None:
            return max(0.0, (self.answered_at - self.joined_at).total_seconds())
        return float(self.hold_seconds) if self.hold_seconds is not None else None


@dataclass(frozen=True)
class StateChange:
    """One operator state change (any queue), as ``operator_state_changes`` holds it."""

    operator: str
    at: datetime
    paused: bool
    reason: str


def is_wrapup_reason(reason: str) -> bool:
    """Whether a pause reason (as the console sends it to Asterisk) means after-call work."""
    return reason == PauseReason.WRAPUP


def wrapup_seconds(completed_at: datetime, changes: Sequence[StateChange],
                   automatic_seconds: float) -> float:
    """The operator's after-call work for a call that ended at ``completed_at``.

    ``changes`` are the operator's state changes, oldest first. At least the queue's
    automatic wrap-up; longer if a wrap-up pause began within the grace period and ended.
    A pause that has not ended yet adds nothing (its length is not known).
    """
    start = next((c for c in changes if completed_at <= c.at < completed_at + WRAPUP_PAUSE_GRACE
                  and c.paused and is_wrapup_reason(c.reason)), None)
    if start is None:
        return automatic_seconds
    end = next((c for c in changes if c.at > start.at
                and not (c.paused and is_wrapup_reason(c.reason))), None)
    if end is None:
        return automatic_seconds
    return max(automatic_seconds, (end.at - completed_at).total_seconds())


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank (a value from ``values``); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean; None when empty."""
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Ratio:
    """A share as its two counts; ``percent`` is None when nothing was counted."""

    numerator: int
    denominator: int

    @property
    def percent(self) -> float | None:
        """The share in percent."""
        return 100.0 * self.numerator / self.denominator if self.denominator else None


def _waited_past(row: CallRow, threshold: float, now: datetime) -> bool:
    return row.joined_at is not None and (now - row.joined_at).total_seconds() > threshold


def service_level(rows: Iterable[CallRow], threshold: float, now: datetime) -> Ratio:
    """Answered within ``threshold`` seconds of joining, over the offered calls whose fate at
    the threshold is known at ``now`` (see the module's definitions)."""
    hits = counted = 0
    for row in rows:
        if not row.offered:
            continue
        if row.answered:
            wait = row.wait_seconds
            if wait is None:
                continue
            counted += 1
            hits += wait <= threshold
        elif row.disposition != "in_progress" or _waited_past(row, threshold, now):
            counted += 1
    return Ratio(hits, counted)


@dataclass(frozen=True)
class Figures:
    """The figures of one group of calls."""

    calls: int
    offered: int
    answered: int
    abandoned: int
    service_levels: Mapping[int, Ratio]  # threshold seconds -> share answered within it
    mean_wait: float | None
    p90_wait: float | None
    mean_talk: float | None
    mean_wrapup: float | None
    labelled: int
    nuisance: int  # labelled prank or silent

    @property
    def prank_share(self) -> Ratio:
        """Prank or silent among the labelled calls."""
        return Ratio(self.nuisance, self.labelled)


def figures(rows: Sequence[CallRow], now: datetime,
            wrapups: Mapping[WrapKey, float] | None = None) -> Figures:
    """The figures of ``rows``; ``wrapups`` maps each answered call's parts (call id, phone)
    to their wrap-up seconds (None: wrap-up not measured)."""
    offered = [row for row in rows if row.offered]
    answered = [row for row in offered if row.answered]
    waits = [w for w in (row.wait_seconds for row in answered) if w is not None]
    talks = [talk for talk in (row.talk for row in answered) if talk is not None]
    labelled = [row for row in rows if row.label is not None]
    wraps = ([wrapups[key] for row in answered for key in row.wrap_keys() if key in wrapups]
             if wrapups is not None else [])
    return Figures(
        calls=len(rows),
        offered=len(offered),
        answered=len(answered),
        abandoned=sum(row.abandoned for row in offered),
        service_levels={t: service_level(offered, t, now) for t in SERVICE_LEVEL_SECONDS},
        mean_wait=mean(waits),
        p90_wait=p90(waits),
        mean_talk=mean(talks),
        mean_wrapup=mean(wraps) if wrapups is not None else None,
        labelled=len(labelled),
        nuisance=sum(row.label in NUISANCE for row in labelled),
    )


def grouped(rows: Iterable[CallRow], key: Callable[[CallRow], Iterable[K]]
            ) -> dict[K, list[CallRow]]:
    """Rows under each key ``key`` gives them (a row may go under several, or none)."""
    groups: dict[K, list[CallRow]] = defaultdict(list)
    for row in rows:
        for name in key(row):
            groups[name].append(row)
    return dict(groups)


def operators_of(row: CallRow) -> frozenset[str]:
    """The operators a call counts for: every one rung, and every one who answered."""
    answering = {a.operator for a in row.answers}
    if not row.answers and row.operator:
        answering.add(row.operator)
    return row.rung | answering


def operator_figures(rows: Sequence[CallRow], now: datetime, wrapups: Mapping[WrapKey, float]
                     ) -> dict[str, Figures]:
    """Per operator. Offered: rung for the call; answered, talk, wait and wrap-up: the calls
    that operator answered (each of them, when several did), with their own talk and
    wrap-up; abandoned: offered to them and abandoned."""
    result = {}
    for operator, mine in grouped(rows, operators_of).items():
        base = figures(mine, now, wrapups)
        theirs = figures([part for r in mine for part in r.as_answered_by(operator)], now,
                         wrapups)
        result[operator] = Figures(
            calls=base.calls, offered=base.offered, answered=theirs.answered,
            abandoned=base.abandoned, service_levels=theirs.service_levels,
            mean_wait=theirs.mean_wait, p90_wait=theirs.p90_wait, mean_talk=theirs.mean_talk,
            mean_wrapup=theirs.mean_wrapup, labelled=theirs.labelled, nuisance=theirs.nuisance)
    return result


# -- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The shifts a report covers: every shift that started on ``first``..``last`` (local
    dates), or only those named ``shift``."""

    first: date
    last: date
    shift: str | None = None


def check_period(period: Period, shift_names: Sequence[str]) -> Period:
    """``period`` if it can be reported; :class:`InvalidPeriod` otherwise."""
    if period.last < period.first:
        raise InvalidPeriod("to", "Tanggal akhir tidak boleh sebelum tanggal awal.")
    if (period.last - period.first).days + 1 > MAX_REPORT_DAYS:
        raise InvalidPeriod("to", f"Laporan paling panjang {MAX_REPORT_DAYS} hari.")
    if period.shift is not None and period.shift not in shift_names:
        raise InvalidPeriod("shift", f"Sif tidak dikenal; pilih salah satu dari: "
                                     f"{', '.join(shift_names)}.")
    return period


def shift_slots(calendar: ShiftCalendar, period: Period) -> list[ShiftSlot]:
    """Every shift of ``period`` in time order, those without calls included."""
    slots = []
    day = period.first
    while day <= period.last:
        slots += [ShiftSlot(day, name) for name in calendar.names
                  if period.shift in (None, name)]
        day += timedelta(days=1)
    return slots


def with_stray_slots(calendar: ShiftCalendar, slots: Sequence[ShiftSlot],
                     called: Sequence[tuple[ShiftSlot, datetime | None]]) -> list[ShiftSlot]:
    """``slots`` (the roster's, from :func:`shift_slots`) and the slots of the period that
    hold calls (``called``, each with the arrival of one of its calls), in time order.

    A shift renamed or dropped by an admin still holds the calls that arrived in it (a stray
    slot); leaving its slots out would leave those calls out of the report's total. And a
    slot with calls goes where its calls arrived, not where the roster in force now starts
    it: a call belongs to the slot it arrived in, so this is the order the shifts ran in,
    also on the days before an admin moved a shift (malam moved from 23:00 to 15:00 would
    otherwise come before the old siang of those days). A slot without calls goes where the
    roster starts it; a stray slot without a known arrival last in its day."""
    arrival = dict(called)
    timed: list[tuple[date, datetime | None, int, ShiftSlot]] = [
        (slot.day, arrival.get(slot) or calendar.bounds(slot)[0], 0, slot) for slot in slots]
    timed += [(slot.day, first, 1, slot) for slot, first in called if slot not in slots]
    timed.sort(key=lambda item: (item[0], item[1] is None,
                                 item[1].timestamp() if item[1] is not None else 0.0,
                                 item[2], item[3].name))
    return [slot for *_, slot in timed]


def day_bounds(calendar: ShiftCalendar, day: date) -> tuple[datetime, datetime]:
    """The operational day ``day``: from its first shift's start to the next day's."""
    first = ShiftSlot(day, calendar.names[0])
    return calendar.bounds(first)[0], calendar.bounds(ShiftSlot(day + timedelta(days=1),
                                                                calendar.names[0]))[0]


def period_end(calendar: ShiftCalendar, period: Period) -> datetime:
    """When the last shift of ``period`` (a checked one) ends: figures read before are of
    shifts still running, or not begun."""
    if period.shift is not None:
        return calendar.bounds(ShiftSlot(period.last, period.shift))[1]
    return day_bounds(calendar, period.last)[1]


@dataclass(frozen=True)
class ShiftReport:
    """A period's figures: in total, per shift, per operator and per queue."""

    period: Period
    generated_at: datetime
    total: Figures
    shifts: list[tuple[ShiftSlot, Figures]]
    operators: list[tuple[str, str, Figures]]  # interface, display name, figures
    queues: list[tuple[str, Figures]]
    # When the period's last shift ends (:func:`period_end`): a report generated before is
    # of shifts not over yet, and says so (exported at 20:00, "today" misses the night).
    ends_at: datetime

    @property
    def complete(self) -> bool:
        """Every shift of the period had ended when the report was generated."""
        return self.generated_at >= self.ends_at


@dataclass(frozen=True)
class PeriodFigures:
    """A period's figures: in total, per shift slot, per first queue, per operator offered."""

    total: Figures
    shifts: Mapping[ShiftSlot, Figures]
    queues: Mapping[str, Figures]
    operators: Mapping[str, Figures]


def period_figures(rows: Sequence[CallRow], now: datetime, wrapups: Mapping[WrapKey, float]
                   ) -> PeriodFigures:
    """Reference: a period's figures from its call rows."""
    by_shift = grouped(rows, lambda r: [ShiftSlot(r.shift_day, r.shift_name)]
                       if r.shift_day is not None and r.shift_name is not None else [])
    by_queue = grouped(rows, lambda r: [r.queue] if r.queue is not None else [])
    return PeriodFigures(
        total=figures(rows, now, wrapups),
        shifts={slot: figures(mine, now, wrapups) for slot, mine in by_shift.items()},
        queues={queue: figures(mine, now, wrapups) for queue, mine in by_queue.items()},
        operators=operator_figures(rows, now, wrapups))


def shift_report(period: Period, slots: Sequence[ShiftSlot], figured: PeriodFigures, *,
                 names: Mapping[str, str], now: datetime, ends_at: datetime) -> ShiftReport:
    """Put a period's figures together; ``names`` maps operator interfaces to display names.
    A slot without calls gets the figures of no calls; ``ends_at``: :func:`period_end`."""
    empty = figures([], now, {})
    return ShiftReport(
        period=period,
        generated_at=now,
        total=figured.total,
        shifts=[(slot, figured.shifts.get(slot, empty)) for slot in slots],
        operators=[(op, names.get(op) or op, figured.operators[op])
                   for op in sorted(figured.operators)],
        queues=[(queue, figured.queues[queue]) for queue in sorted(figured.queues)],
        ends_at=ends_at,
    )


# -- the daily summary -----------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryCount:
    """Calls and incidents under one category (IVR category or incident report type)."""

    code: str | None
    calls: int
    incidents: int = 0


@dataclass(frozen=True)
class VillageCount:
    """Calls of incidents located in one village (or only a sub-district, or nowhere)."""

    village_code: str | None
    village_name: str | None
    sub_district_name: str | None
    calls: int
    incidents: int


@dataclass(frozen=True)
class RatingSummary:
    """Caller ratings given during the day."""

    counts: Mapping[int, int]  # rating 1-5 -> how many

    @property
    def total(self) -> int:
        """How many ratings."""
        return sum(self.counts.values())

    @property
    def mean(self) -> float | None:
        """The mean rating; None without ratings."""
        total = self.total
        return sum(r * n for r, n in self.counts.items()) / total if total else None


@dataclass(frozen=True)
class DailySummary:
    """The regency head's day: calls by category and village, genuine versus prank, ratings."""

    day: date
    generated_at: datetime
    figures: Figures
    lines: Mapping[str, int]  # 112 / 119 -> calls
    categories: list[CategoryCount]  # by IVR category
    report_types: list[CategoryCount]  # by incident report type
    villages: list[VillageCount]
    labels: Mapping[str, int]  # label (or "" for unlabelled) -> calls
    ratings: RatingSummary
    ends_at: datetime  # the operational day's end: a summary generated before is partial

    @property
    def complete(self) -> bool:
        """The day had ended when the summary was generated."""
        return self.generated_at >= self.ends_at


@dataclass(frozen=True)
class DayFigures:
    """A day's figures (no wrap-ups) and its calls by line, IVR category and current label."""

    figures: Figures
    lines: Mapping[str, int]  # "" for no line
    categories: Mapping[str | None, int]
    labels: Mapping[str | None, int]  # label code, None for unlabelled


def day_figures(rows: Sequence[CallRow], now: datetime) -> DayFigures:
    """Reference: a day's figures and counts from its call rows."""
    categories: dict[str | None, int] = defaultdict(int)
    lines: dict[str, int] = defaultdict(int)
    labels: dict[str | None, int] = defaultdict(int)
    for row in rows:
        categories[row.category] += 1
        lines[row.line or ""] += 1
        labels[row.label.value if row.label is not None else None] += 1
    return DayFigures(figures(rows, now), dict(lines), dict(categories), dict(labels))


def daily_summary(day: date, counted: DayFigures, *, report_types: list[CategoryCount],
                  villages: list[VillageCount], ratings: Mapping[int, int],
                  now: datetime, ends_at: datetime) -> DailySummary:
    """Put the day's summary together from its figures and the incident tallies;
    ``ends_at``: the day's end (:func:`day_bounds`)."""
    labels: dict[str, int] = {label.value: 0 for label in Label}
    labels[""] = 0
    for label, n in counted.labels.items():
        labels[label or ""] += n
    return DailySummary(
        day=day, generated_at=now, figures=counted.figures,
        lines=dict(counted.lines),
        categories=sorted((CategoryCount(code, n) for code, n in counted.categories.items()),
                          key=lambda c: (-c.calls, c.code or "")),
        report_types=report_types, villages=villages, labels=labels,
        ratings=RatingSummary({r: ratings.get(r, 0) for r in range(1, 6)}),
        ends_at=ends_at,
    )
