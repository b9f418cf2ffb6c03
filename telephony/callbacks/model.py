"""Which ended calls an operator should call back and why, when a caller leaves the worklist,
and the Originate that places a call-back. Pure: no I/O, no clock (instants come in).

On the worklist (the calls that arrived within the window, ``callback_window_hours``):

- **cut**: the line itself ended it, whatever the caller was doing: Asterisk restarted or
  crashed under the call (``calls.cut_reason``, :mod:`telephony.calls.outages`), mid-talk, in
  the queue or in the IVR. Nothing the caller did ended it, so they are called back;
- **dropped**: answered, then ended by a network cause
  (:data:`telephony.asterisk.causes.NETWORK_CAUSES`);
- **network**: lost to a network cause before any operator answered, wherever it was;
- **abandoned**: queued, and hung up (or lost) before an operator answered;
- **ivr_emergency**: the caller chose an emergency in the IVR, and the call ended before
  reaching a queue (at the screening prompt, say, or in the emergency sub-menu: the menu
  routine publishes a sub-menu's category as the caller enters it, ivr/keys.py). A caller who
  hangs up in the main menu has chosen nothing.

Not on it: calls answered and ended normally, calls still going on, anything else that ended
in the IVR (an information or complaint call, a caller who chose nothing).

One entry per caller (their ``caller_key``): a caller who gave up three times is called back
once. An entry holds the caller's calls since they were last cleared; it leaves the list when
one of these clears them:

- a call-back (a ``callback`` leg) that reached the caller: it covers the calls that arrived
  before it was placed. One answered and then cut short did not (:func:`cut_short`): the
  caller's or the operator's phone lost its network (a network hang-up cause on either end,
  as a dropped call's), Asterisk went away under it (an outage that began while it talked,
  as a cut call's), it ended within :data:`MIN_TALK` of the answer (a line that dropped at
  "halo", an announcement or a voicemail the operator hung up on), or the operator said it
  did not reach the caller ("tidak tersambung dengan penelepon": a voicemail, a carrier's
  announcement, a stranger: any operator or supervisor may say so of a call-back the list
  shows as having reached its caller, :func:`reached`). The caller stays on (or comes back
  to) the list, the entry's reason saying so;
- a call from the same caller that an operator answered (and that was not itself
  dropped): it covers the calls that arrived before its answer, a redial made while it still
  waited (from a second phone, given up once it was answered) among them; a call made while
  the caller talked to an operator is one of its own;
- a supervisor's closing, with a reason: it covers the closed call and those before it.

A withheld, malformed or SIM-less caller id has no number to dial: each such call is an entry
of its own, listed as not possible ("tidak bisa dihubungi"), until a supervisor closes it or it
leaves the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from telephony.ami.channels import UP, LiveChannel
from telephony.asterisk.causes import NETWORK_CAUSES
from telephony.callbacks.errors import InvalidClosure
from telephony.calls.ids import (
    WITHHELD_TEXT,
    CallerIdKind,
    caller_shown,
    parse_caller_id,
    valid_call_id,
)
from telephony.calls.legs import LegOutcome, check_number, dial_number
from telephony.calls.outages import OPEN_CALL_HORIZON
from telephony.core.labels import LabelledStrEnum
from telephony.core.text import invisible
from telephony.desks.operators import check_interface

EMERGENCY: Final = "emergency"  # calls.ivr_category of an emergency route
CALLBACK_CONTEXT: Final = "siaga112-callback"  # asterisk-conf/extensions.conf
ACTION_PREFIX: Final = "siaga112-callback-"
TARGET: Final = "penelepon"  # call_legs.target of a call-back: whom it is for
MAX_NOTE: Final = 300
_LEG_ID = re.compile(r"[1-9][0-9]{0,17}")
# An answered call-back that ended sooner than this reached nobody to talk to: the operator's
# greeting alone ("Selamat pagi, ini 112, tadi Anda menelepon...") takes about five seconds.
# Not longer: a caller who answers "sudah aman, terima kasih" is done in six or seven, and an
# operator cannot take an entry off the list again (a supervisor's closing can).
MIN_TALK: Final = timedelta(seconds=5)
REACHED_SHOWN: Final = 20  # call-backs that reached their caller, listed for marking
# A call-back's status (``call_legs.status``) when the line called it off because its caller
# rang the line again before answering it (:func:`callback_channel`).
CALLER_RANG: Final = "CALLERRANG"
CALLER_RANG_TEXT: Final = "Dibatalkan: penelepon menelepon 112 lagi saat dihubungi kembali"
# Why a caller with a number shown cannot be called back (a withheld one says so in its place).
_NOT_DIALLABLE: Final = {
    CallerIdKind.SIMLESS: "ponsel tanpa kartu SIM (nomor IMEI)",
    CallerIdKind.MALFORMED: "nomor penelepon tidak valid",
}


class CallbackReason(LabelledStrEnum):
    """Why a call is on the worklist (the strongest reason first)."""

    CUT = "cut", "Terputus karena gangguan sistem (Asterisk)"
    DROPPED = "dropped", "Terputus saat bicara"
    NETWORK = "network", "Terputus karena gangguan jaringan"
    ABANDONED = "abandoned", "Menutup telepon saat menunggu di antrean"
    IVR_EMERGENCY = "ivr_emergency", "Menutup telepon di IVR setelah memilih darurat"
    # The entry's, not a call's: its latest call-back was answered and cut short (CutShort).
    CALLBACK_CUT = "callback_cut", "Panggilan balik terputus atau tidak sampai ke penelepon"


class CutShort(LabelledStrEnum):
    """Why an answered call-back did not reach the caller (:func:`cut_short`)."""

    OUTAGE = "outage", "Panggilan balik terputus karena gangguan sistem (Asterisk)"
    NETWORK = "network", "Panggilan balik terputus karena gangguan jaringan"
    SHORT = "short", "Panggilan balik terputus sesaat setelah diangkat"
    UNREACHED = "unreached", "Tidak tersambung dengan penelepon (ditandai operator)"


class ClosureReason(LabelledStrEnum):
    """Why a supervisor took an entry off the list without a call-back reaching the caller."""

    REACHED = "reached", "Penelepon sudah terhubung lewat jalur lain"
    UNREACHABLE = "unreachable", "Tidak dapat dihubungi setelah beberapa kali dicoba"
    HANDLED = "handled", "Kejadiannya sudah ditangani"
    PRANK = "prank", "Panggilan iseng atau tidak disengaja"
    OTHER = "other", "Lainnya (tulis alasannya)"


class Pending(LabelledStrEnum):
    """How a call-back Asterisk has not yet reported the end of reads (the worklist's and the
    incident page's words for it)."""

    RINGING = "ringing", "berlangsung"
    TALKING = "talking", "tersambung"
    UNREPORTED = "unreported", "tanpa kabar dari Asterisk"
    TALK_UNREPORTED = "talk_unreported", "tersambung; akhirnya tidak dilaporkan Asterisk"


class Placed(Protocol):
    """The times of a call-back as recorded (an :class:`Attempt`, a ``Leg``)."""

    @property
    def requested_at(self) -> datetime:
        """When it was asked for."""
        ...

    @property
    def rang_at(self) -> datetime | None:
        """When the dialplan began dialling the caller (the operator answered)."""
        ...

    @property
    def answered_at(self) -> datetime | None:
        """When the caller answered."""
        ...

    @property
    def ended_at(self) -> datetime | None:
        """When Asterisk reported its end."""
        ...

    @property
    def outcome(self) -> LegOutcome | None:
        """How it ended."""
        ...

    @property
    def hangup_cause(self) -> int | None:
        """The Q.850 cause of its end (a network cause if either end had one)."""
        ...

    @property
    def unreached_at(self) -> datetime | None:
        """When an operator said it did not reach the caller."""
        ...

    @property
    def cut_reason(self) -> str | None:
        """Why Asterisk's end cut it (``telephony.calls.outages.CutReason``), if it did."""
        ...

    @property
    def status(self) -> str:
        """Dial()'s status of its end, or why the line ended it."""
        ...


def pending(call_back: Placed, *, now: datetime, ring_limit: timedelta,
            outlived: bool = False) -> Pending | None:
    """How a call-back that has not ended reads at ``now`` (``None`` once it ended): one
    neither answered nor ended ``ring_limit`` after it was asked for is no longer ringing,
    its end went unreported (Asterisk or the line away); shown as going on, it sent
    operators asking around who was still calling the caller.

    One answered is over, its end unreported, once its operator has moved on
    (``outlived``: they answered a call, or took another call-back, after this one was
    answered; nobody does while still on it) or :data:`OPEN_CALL_HORIZON` after the answer
    (no call lasts that long). Read "tersambung" for good, it told a supervisor the
    operator was still with the caller days later."""
    if call_back.ended_at is not None:
        return None
    if call_back.answered_at is not None:
        over = outlived or now - call_back.answered_at >= OPEN_CALL_HORIZON
        return Pending.TALK_UNREPORTED if over else Pending.TALKING
    return Pending.RINGING if now - call_back.requested_at < ring_limit else Pending.UNREPORTED


def caller_not_dialled(call_back: Placed) -> bool:
    """Whether it ended before the caller's phone was dialled: the operator's phone did not
    take it (busy, not answered) or Asterisk refused it. Such a call-back says nothing of
    whether the caller can be reached."""
    return call_back.ended_at is not None and call_back.rang_at is None \
        and call_back.answered_at is None


def cut_short(call_back: Placed) -> CutShort | None:
    """Why a call-back the caller's phone answered did not reach the caller, or ``None``
    (it did, it is still talking, or it was never answered). Asterisk's end cut it when its
    end came in a restart's burst of hang-ups or never came (:mod:`telephony.calls.outages`,
    ``call_legs.cut_reason``)."""
    if call_back.answered_at is None:
        return None
    if call_back.unreached_at is not None:
        return CutShort.UNREACHED
    if call_back.cut_reason is not None:
        return CutShort.OUTAGE
    ended = call_back.ended_at
    if ended is None:
        return None
    if call_back.hangup_cause in NETWORK_CAUSES:
        return CutShort.NETWORK
    if ended - call_back.answered_at < MIN_TALK:
        return CutShort.SHORT
    return None


def how_it_went(call_back: Placed, *, now: datetime, ring_limit: timedelta,
                outlived: bool = False) -> str:
    """How a call-back went, in the words of the call-back list and the incident page. One
    the operator's phone never took says so: three plain "Gagal" read as a caller who cannot
    be reached, and were closed as such; one answered and cut short says why the caller is
    still on the list. ``outlived``: see :func:`pending`."""
    if (cut := cut_short(call_back)) is not None:
        return cut.label
    if call_back.answered_at is None and call_back.status == CALLER_RANG:
        return CALLER_RANG_TEXT
    if caller_not_dialled(call_back):
        failed = call_back.outcome.label if call_back.outcome else LegOutcome.FAILED.label
        return f"{failed} di telepon operator, penelepon tidak ditelepon"
    if call_back.outcome is not None:
        return call_back.outcome.label
    unfinished = pending(call_back, now=now, ring_limit=ring_limit, outlived=outlived)
    return unfinished.label if unfinished is not None else "Selesai"


@dataclass(frozen=True)
class EndedCall:
    """A call as the worklist reads it (``calls``, answered = answered or completed)."""

    call_id: str
    caller_number: str
    caller_key: str | None
    line: str | None
    arrived_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    queue: str | None
    abandoned_at: datetime | None
    ivr_category: str | None
    hangup_cause: int | None
    incident_id: int | None
    cut_reason: str | None = None  # telephony.calls.outages.CutReason


@dataclass(frozen=True)
class Attempt:
    """A call-back placed for one of a caller's calls (a ``callback`` leg)."""

    leg_id: int
    call_id: str
    caller_key: str | None  # the called-back call's
    operator: str
    actor: str
    requested_at: datetime
    rang_at: datetime | None  # the dialplan began dialling the caller (the operator answered)
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: LegOutcome | None
    status: str
    hangup_cause: int | None = None
    unreached_at: datetime | None = None
    unreached_by: str | None = None
    cut_reason: str | None = None  # telephony.calls.outages.CutReason
    number: str = ""  # what it dialled

    @property
    def cut(self) -> CutShort | None:
        """Why it did not reach the caller though answered (:func:`cut_short`)."""
        return cut_short(self)


@dataclass(frozen=True)
class Closure:
    """A supervisor's closing of an entry, at the entry's latest call."""

    call_id: str
    caller_key: str | None  # the closed call's
    arrived_at: datetime  # the closed call's
    reason: ClosureReason
    note: str
    closed_by: str
    closed_at: datetime


@dataclass(frozen=True)
class Entry:
    """One caller on the worklist."""

    key: str
    calls: tuple[EndedCall, ...]  # the caller's open calls, newest first
    reason: CallbackReason  # the latest call's, or its call-back's that was cut short
    number: str | None  # what a call-back dials; None: not possible
    attempts: tuple[Attempt, ...]  # call-backs since the entry opened, newest first
    in_flight: Attempt | None  # a call-back ringing now

    @property
    def call(self) -> EndedCall:
        """The latest call: the one a call-back or a closing is recorded against."""
        return self.calls[0]

    @property
    def reasons(self) -> tuple[tuple[EndedCall, CallbackReason], ...]:
        """Each open call with why it is on the list."""
        return tuple((call, reason) for call in self.calls
                     if (reason := reason_for(call)) is not None)

    @property
    def possible(self) -> bool:
        """Whether the caller can be called back at all."""
        return self.number is not None

    @property
    def caller_shown(self) -> str:
        """The caller as the list names them: the number presented, or that it was withheld
        (not Asterisk's "anonymous")."""
        return caller_shown(self.call.caller_number)

    @property
    def why_not_possible(self) -> str:
        """Why a caller who cannot be called back cannot, beyond a withheld number (which
        :attr:`caller_shown` says): a SIM-less phone's IMEI or a malformed number read as a
        number to try elsewhere. Empty when nothing more is to be said."""
        if self.possible or self.caller_shown == WITHHELD_TEXT:
            return ""
        kind = parse_caller_id(self.call.caller_number).kind
        return _NOT_DIALLABLE.get(kind, "nomor tidak dapat ditelepon dari jalur ini")

    @property
    def waiting_since(self) -> datetime:
        """When the first of the open calls ended: how long the caller has waited."""
        first = self.calls[-1]
        return first.ended_at or first.arrived_at

    @property
    def incident_id(self) -> int | None:
        """The incident of the latest call that has one."""
        return next((c.incident_id for c in self.calls if c.incident_id is not None), None)


@dataclass(frozen=True)
class Backlog:
    """What the wallboard shows of the worklist."""

    waiting: int  # callers who can be called back
    not_possible: int  # withheld numbers and the like
    oldest_at: datetime | None  # since when the longest-waiting callable caller waits


def reason_for(call: EndedCall) -> CallbackReason | None:
    """Why ``call`` belongs on the worklist, or ``None``."""
    if call.ended_at is None:
        return None
    if call.cut_reason is not None:
        return CallbackReason.CUT
    lost = call.hangup_cause in NETWORK_CAUSES
    if call.answered_at is not None:
        return CallbackReason.DROPPED if lost else None
    if lost:
        return CallbackReason.NETWORK
    if call.queue is not None or call.abandoned_at is not None:
        return CallbackReason.ABANDONED
    if call.ivr_category == EMERGENCY:
        return CallbackReason.IVR_EMERGENCY
    return None


def entry_key(caller_key: str | None, call_id: str) -> str:
    """The caller a call belongs to on the worklist: their key, or the call alone."""
    return caller_key if caller_key is not None else f"call:{call_id}"


def worklist(
    calls: Iterable[EndedCall],
    *,
    answered: Iterable[EndedCall] = (),
    attempts: Iterable[Attempt] = (),
    closures: Iterable[Closure] = (),
    now: datetime,
    ring_limit: timedelta,
) -> list[Entry]:
    """The worklist from the window's ended calls (``calls``; any call may be given, those
    that do not belong are left out), the answered calls of their callers (``answered``),
    the call-backs placed and the closings. A call-back that has neither ended nor been
    answered ``ring_limit`` after it was asked for is no longer ringing (its end went
    unreported). Oldest waiting first; callers who cannot be called back last."""
    cleared: dict[str, datetime] = {}

    def clear(key: str, until: datetime) -> None:
        if key not in cleared or until > cleared[key]:
            cleared[key] = until

    for call in answered:
        # An answered call clears what came before its answer, unless it was dropped itself:
        # the caller's earlier calls, and a redial (a second phone) that waited while it was
        # still queued and was given up once it was answered. Cleared only up to its
        # arrival, that caller, who had reached an operator, stayed listed for a call-back.
        if call.answered_at is not None and call.caller_key is not None \
                and reason_for(call) is None:
            clear(call.caller_key, call.answered_at - timedelta(microseconds=1))
    tried: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        key = entry_key(attempt.caller_key, attempt.call_id)
        tried.setdefault(key, []).append(attempt)
        if attempt.answered_at is not None and attempt.cut is None:
            clear(key, attempt.requested_at)
    for closure in closures:
        clear(entry_key(closure.caller_key, closure.call_id), closure.arrived_at)

    groups: dict[str, list[tuple[EndedCall, CallbackReason]]] = {}
    for call in calls:
        reason = reason_for(call)
        key = entry_key(call.caller_key, call.call_id)
        if reason is None or (key in cleared and call.arrived_at <= cleared[key]):
            continue
        groups.setdefault(key, []).append((call, reason))

    entries = []
    for key, members in groups.items():
        members.sort(key=lambda member: member[0].arrived_at, reverse=True)
        open_calls = tuple(call for call, _ in members)
        opened = open_calls[-1].arrived_at
        recent = sorted((a for a in tried.get(key, ()) if a.requested_at >= opened),
                        key=lambda a: a.requested_at, reverse=True)
        ringing = next((a for a in recent if pending(a, now=now, ring_limit=ring_limit)
                        is Pending.RINGING), None)
        # Called back and cut short since their latest call: that is why they are listed.
        reason = CallbackReason.CALLBACK_CUT if recent and recent[0].cut is not None \
            and recent[0].requested_at > open_calls[0].arrived_at else members[0][1]
        entries.append(Entry(key, open_calls, reason,
                             dial_number(open_calls[0].caller_number), tuple(recent), ringing))
    entries.sort(key=lambda entry: (not entry.possible, entry.waiting_since))
    return entries


def reached(attempts: Iterable[Attempt], *, limit: int = REACHED_SHOWN) -> list[Attempt]:
    """The latest call-backs that count as having reached their caller (answered, not cut
    short), newest first: where an operator who hung up on a voicemail finds theirs to say
    it did not reach the caller (the caller has left the list meanwhile)."""
    return sorted((a for a in attempts if a.answered_at is not None and a.cut is None),
                  key=lambda a: a.requested_at, reverse=True)[:limit]


def find_entry(entries: Iterable[Entry], call_id: str) -> Entry | None:
    """The entry holding the call ``call_id``, if it is on the list."""
    return next((e for e in entries if any(c.call_id == call_id for c in e.calls)), None)


def backlog(entries: Sequence[Entry]) -> Backlog:
    """The worklist in numbers."""
    callable_ = [entry for entry in entries if entry.possible]
    return Backlog(len(callable_), len(entries) - len(callable_),
                   min((entry.waiting_since for entry in callable_), default=None))


def check_closure(reason: str, note: str) -> tuple[ClosureReason, str]:
    """A closing's reason and its note as stored: the note on one line (line breaks and
    runs of spaces become one space, control and format characters are dropped), at most
    :data:`MAX_NOTE` characters; "other" needs a note saying what."""
    try:
        why = ClosureReason(reason)
    except ValueError:
        raise InvalidClosure("reason", "Pilih alasan penutupan dari daftar.") from None
    text = " ".join("".join(" " if ch.isspace() else ch for ch in note
                            if ch.isspace() or not invisible(ch)).split())
    if len(text) > MAX_NOTE:
        raise InvalidClosure("note", f"Keterangan terlalu panjang (maksimal {MAX_NOTE} "
                                     "karakter).")
    if why is ClosureReason.OTHER and len(text) < 3:
        raise InvalidClosure("note", "Tulis alasan penutupan.")
    return why, text


def callback_channel(channels: Iterable[LiveChannel], *, leg_id: int, operator: str,
                     number: str, channel_id: str | None) -> LiveChannel | None:
    """The operator's channel of a call-back the caller has not answered, among the live
    ``channels``: ringing the operator's phone (the Originate's channel, presenting the
    caller's ``number``), or dialling the caller from the dialplan (the channel that reported
    the leg, ``channel_id``, whose Dial() names the leg). Hanging it up ends the call-back.
    ``None`` when this Asterisk has none (it ended, or another node placed it)."""
    answered_routine = f"siaga112-callback-answered^{leg_id}^"
    for channel in channels:
        if channel.interface != operator:
            continue
        if (channel_id is not None and channel.uniqueid == channel_id) \
                or answered_routine in channel.application_data:
            return channel
        # Its own call (a queue's offer of the caller's new call to this operator is linked
        # to the caller's channel, and is never hung up).
        if channel.state != UP and channel.linkedid == channel.uniqueid \
                and channel.caller_number == number:
            return channel
    return None


def action_id(leg_id: int) -> str:
    """The ActionID of a call-back's Originate; OriginateResponse carries it back."""
    return f"{ACTION_PREFIX}{leg_id}"


def leg_of_action(action: str) -> int | None:
    """The leg a call-back's ActionID names, ``None`` for any other."""
    if not action.startswith(ACTION_PREFIX):
        return None
    digits = action[len(ACTION_PREFIX):]
    return int(digits) if _LEG_ID.fullmatch(digits) else None


def originate_action(*, leg_id: int, call_id: str, number: str, interface: str,
                     ring_seconds: int) -> dict[str, str]:
    """The AMI Originate of a call-back: ring the operator at ``interface`` first (showing
    whom they are about to call back), then, once they answer, the dialplan's
    ``siaga112-callback`` records, presents the line's number and dials ``number`` through
    the carrier. Every value is checked here, and again by the dialplan."""
    if not _LEG_ID.fullmatch(str(leg_id)) or not valid_call_id(call_id):
        raise ValueError(f"not a leg and a call: {leg_id!r} {call_id[:40]!r}")
    check_number(number)
    check_interface(interface)
    return {
        "Action": "Originate",
        "ActionID": action_id(leg_id),
        "Channel": interface,
        "Context": CALLBACK_CONTEXT,
        "Exten": f"{leg_id}-{call_id}-{number}",
        "Priority": "1",
        "Timeout": str(ring_seconds * 1000),
        "CallerID": f'"Panggilan balik" <{number}>',
        "Async": "true",
    }
