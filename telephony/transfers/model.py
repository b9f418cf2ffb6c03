"""Transfers and conferences to agencies: the rules, pure.

An operator talking to a caller hands the call to an agency's number (``agency_numbers``, a
station per area), in one of three modes:

* blind: AMI BlindTransfer of the operator's channel to ``[siaga112-transfer]``; the caller
  hears ringing, then the agency; an agency that does not answer sends the caller back to
  the operator (then to the queues), never to silence;
* attended: AMI Atxfer of the operator's channel to ``[siaga112-consult]``; the caller is held
  (``musiconhold.conf``: the line's hold prompt) while the operator speaks to the agency, then
  hands over (``*2``), joins all three (``*3``) or cancels (``*1``), sent as DTMF received on
  the operator's channel (AMI PlayDTMF with Receive); an agency that does not answer puts the
  operator back with the caller;
* conference: an attended transfer that the line joins into a three-way call as soon as the
  agency answers; the operator leaves it by hanging up their channel (AMI Hangup).

Each is a leg (``call_legs``) whose id and number travel to the dialplan in the extension,
``<leg>*<number>`` (a leading ``+`` written as a second ``*``), which the dialplan checks
against the same pattern as :func:`parse_extension` and never trusts otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from telephony.calls.legs import Leg, LegKind, LegOutcome, check_number, ring_over_before
from telephony.core.errors import Conflict, Invalid, SiagaError
from telephony.core.labels import LabelledStrEnum

TRANSFER_CONTEXT: Final = "siaga112-transfer"  # blind: runs on the caller's channel
CONSULT_CONTEXT: Final = "siaga112-consult"  # attended: runs on the Atxfer's Local channel
# [siaga112-transfer]'s way into the queues ahead of every caller waiting.
RESCUE_EXTENSION: Final = "queue"
# The leg and number (leg_extension) the line allowed [siaga112-consult] to dial from an
# operator's channel (set by AMI Setvar just before Atxfer, whose extension is the leg alone;
# inherited by the Atxfer's Local channel).
CONSULT_VARIABLE: Final = "SIAGA112_CONSULT"
# The UserEvent [siaga112-back-answered] reports (State answered, then ended at the operator
# channel's hang-up) for the operator's talk with a caller whom a blind transfer nobody
# answered brought back: Queue() counted the talk only up to the transfer, and the AMI
# tracker adds this talk to the call's (telephony/ami/tracker.py).
BACK_EVENT: Final = "SiagaBack"
MAX_LEG_ID: Final = 999_999_999  # the tracker reads at most 9 digits of a leg id
_EXTENSION: Final = re.compile(r"([1-9][0-9]{0,8})[*]([*]?)([0-9]{3,20})")
_LABEL_MAX: Final = 100


class TransferError(SiagaError):
    """A transfer request that is refused; nothing was sent to Asterisk."""

    status = 400
    code = "transfer_error"


class InvalidTransfer(Invalid, TransferError):
    """A field that is not valid (an unknown mode, a number that cannot be dialled ...)."""

    code = "transfer_invalid"


class TransferConflict(Conflict, TransferError):
    """The request does not fit the call's state (not talking, a transfer in progress ...)."""

    code = "transfer_conflict"


class TransferMode(LabelledStrEnum):
    """How the operator hands the caller to the agency."""

    BLIND = "blind", "Alih langsung"
    ATTENDED = "attended", "Alih setelah bicara"
    CONFERENCE = "conference", "Konferensi tiga pihak"

    @property
    def kind(self) -> LegKind:
        """The leg's kind in ``call_legs``."""
        return _KIND[self]


_KIND: Final = {TransferMode.BLIND: LegKind.BLIND_TRANSFER,
                TransferMode.ATTENDED: LegKind.ATTENDED_TRANSFER,
                TransferMode.CONFERENCE: LegKind.CONFERENCE}
TRANSFER_KINDS: Final = frozenset(_KIND.values())


class Step(LabelledStrEnum):
    """What the operator does on an attended transfer or conference in progress."""

    HAND_OVER = "hand_over", "Serahkan"
    JOIN = "join", "Gabungkan"
    CANCEL = "cancel", "Batalkan"
    LEAVE = "leave", "Keluar dari konferensi"


# The attended-transfer keys of features.conf [general] (atxfercomplete, atxferthreeway,
# atxferabort); LEAVE is a Hangup of the operator's channel, not a key.
STEP_KEYS: Final[Mapping[Step, str]] = {Step.HAND_OVER: "*2", Step.JOIN: "*3",
                                         Step.CANCEL: "*1"}


def parse_mode(value: object) -> TransferMode:
    """A mode from its code."""
    try:
        return TransferMode(str(value))
    except ValueError:
        raise InvalidTransfer("Mode alih harus alih langsung, alih setelah bicara, atau "
                              "konferensi.", "mode") from None


def parse_step(value: object) -> Step:
    """A step from its code."""
    try:
        return Step(str(value))
    except ValueError:
        raise InvalidTransfer("Langkah harus serahkan, gabungkan, batalkan, atau keluar.",
                              "step") from None


# -- the dialplan's extension -------------------------------------------------------------------


def leg_extension(leg_id: int, number: str) -> str:
    """``<leg>*<number>``, a leading + as a second ``*`` (DTMF has no +): what the dialplan
    contexts take apart again. Raises ``ValueError`` for a leg or number that cannot be."""
    if not 1 <= leg_id <= MAX_LEG_ID:
        raise ValueError(f"leg id out of range: {leg_id}")
    checked = check_number(number)
    return f"{leg_id}*{'*' + checked[1:] if checked.startswith('+') else checked}"


def parse_extension(extension: str) -> tuple[int, str] | None:
    """The leg and number of an extension, as the dialplan reads it (its REGEX is the same
    pattern); ``None`` when it does not match, where the dialplan gives up on the leg."""
    match = _EXTENSION.fullmatch(extension)
    if match is None:
        return None
    return int(match[1]), ("+" if match[2] else "") + match[3]


def operator_interface(channel: str) -> str:
    """``PJSIP/op1001-0000002a`` -> ``PJSIP/op1001``: where the dialplan sends a caller back
    after a blind transfer nobody answered (it cuts BLINDTRANSFER the same way)."""
    return channel.rpartition("-")[0]


# -- agency numbers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AgencyNumber:
    """A number of an agency's (a station per area), as operators pick it."""

    number_id: int
    agency_code: str
    agency_name: str
    label: str  # "Pos Damkar Purworejo Kota"
    number: str
    active: bool
    agency_active: bool

    @property
    def usable(self) -> bool:
        """Operators may transfer to it."""
        return self.active and self.agency_active

    @property
    def target(self) -> str:
        """Whom a leg to it is for, as the call's legs record it."""
        return f"{self.agency_name} - {self.label}"[:200]


@dataclass(frozen=True)
class NumberInput:
    """A validated number as an admin enters it."""

    agency_code: str
    label: str
    number: str
    active: bool


def parse_number_input(agency_code: object, label: object, number: object,
                       active: object) -> NumberInput:
    """Validate an agency number: the agency's code, a label, a dialable number."""
    if not isinstance(agency_code, str) or not re.fullmatch(r"[a-z][a-z0-9_]{1,31}",
                                                             agency_code):
        raise InvalidTransfer(f"Kode instansi tidak sah: {str(agency_code)[:40]!r}.", "agency")
    if not isinstance(label, str) or not label.strip():
        raise InvalidTransfer("Nama pos/wilayah wajib diisi.", "label")
    cleaned = " ".join(label.split())
    if len(cleaned) > _LABEL_MAX or not cleaned.isprintable():
        raise InvalidTransfer(f"Nama pos/wilayah paling panjang {_LABEL_MAX} karakter, tanpa "
                              "karakter kendali.", "label")
    if not isinstance(number, str):
        raise InvalidTransfer("Nomor telepon wajib diisi.", "number")
    compact = re.sub(r"[ ()-]", "", number.strip())
    try:
        check_number(compact)
    except ValueError:
        raise InvalidTransfer("Nomor telepon hanya angka (boleh diawali +), 3-20 digit.",
                              "number") from None
    if not isinstance(active, bool):
        raise InvalidTransfer("Aktif harus ya atau tidak.", "active")
    return NumberInput(agency_code, cleaned, compact, active)


# -- where a leg stands ------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferLeg:
    """A transfer or conference leg with what it was for and what the operator did on it."""

    leg: Leg
    number_id: int
    agency_code: str
    label: str
    operator_channel: str
    dispatch_id: int | None
    steps: tuple[tuple[Step, str, datetime], ...]  # step, actor, when; oldest first

    @property
    def mode(self) -> TransferMode:
        """The mode it was placed in."""
        return next(mode for mode, kind in _KIND.items() if kind is self.leg.kind)

    def took(self, step: Step) -> bool:
        """Whether the operator took ``step`` on it."""
        return any(taken is step for taken, _, _ in self.steps)


class Phase(LabelledStrEnum):
    """Where a leg stands for the operator."""

    RINGING = "ringing", "Instansi berdering"
    CONSULTING = "consulting", "Bicara dengan instansi (penelepon menunggu)"
    CONFERENCE = "conference", "Konferensi tiga pihak"
    HANDED_OVER = "handed_over", "Penelepon tersambung ke instansi"
    ENDED = "ended", "Selesai"


def phase(leg: TransferLeg) -> Phase:
    """Where ``leg`` stands: the dialplan's reports (``call_legs``) and the operator's steps."""
    record = leg.leg
    if record.ended_at is not None:
        return Phase.ENDED
    if leg.took(Step.LEAVE) or leg.took(Step.HAND_OVER):
        return Phase.HANDED_OVER
    if leg.took(Step.CANCEL):
        return Phase.ENDED  # Asterisk hangs the agency up; its report follows
    if record.answered_at is None:
        return Phase.RINGING
    if leg.mode is TransferMode.BLIND:
        return Phase.HANDED_OVER
    if leg.took(Step.JOIN):
        return Phase.CONFERENCE
    return Phase.CONSULTING


def allowed_steps(leg: TransferLeg) -> tuple[Step, ...]:
    """The steps the operator may take on ``leg`` now. A blind transfer has none. Handing over
    or joining waits for the agency's answer: Asterisk would otherwise hand the caller to a
    phone still ringing, and ring the operator back if nobody answers."""
    if leg.mode is TransferMode.BLIND:
        return ()
    current = phase(leg)
    if current is Phase.RINGING:
        return (Step.CANCEL,)
    if current is Phase.CONSULTING:
        return (Step.HAND_OVER, Step.JOIN, Step.CANCEL)
    if current is Phase.CONFERENCE:
        return (Step.LEAVE,)
    return ()


def check_step(leg: TransferLeg, step: Step) -> None:
    """Refuse ``step`` unless :func:`allowed_steps` has it, saying why."""
    if step in allowed_steps(leg):
        return
    current = phase(leg)
    raise TransferConflict(f"'{step.label}' tidak dapat dilakukan: {current.label.lower()}.")


def in_progress(leg: TransferLeg, now: datetime, ring_timeout: timedelta) -> bool:
    """Whether ``leg`` still holds the call: no second transfer of the call starts meanwhile.
    A leg the dialplan never reported (Asterisk restarted, the action was lost) stops
    counting once it could no longer be ringing."""
    if phase(leg) in (Phase.ENDED, Phase.HANDED_OVER):
        return False
    forgotten = ring_over_before(now, ring_timeout)
    return leg.leg.rang_at is not None or leg.leg.requested_at >= forgotten


# -- the timeline ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineRow:
    """One leg on an incident's timeline: who, to whom, what, when, how long, how it ended."""

    leg_id: int
    call_id: str
    kind: LegKind
    actor: str
    operator: str
    target: str
    number: str
    requested_at: datetime
    rang_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    ring_seconds: float | None  # request to answer (or to the end, unanswered)
    talk_seconds: float | None  # answer to end
    outcome: LegOutcome | None
    ending: str  # how it ended, in words
    steps: tuple[tuple[Step, str, datetime], ...]


def _ending(leg: Leg, taken: Sequence[tuple[Step, str, datetime]]) -> str:
    transfer = leg.kind in TRANSFER_KINDS
    steps = [step for step, _, _ in taken]
    if leg.outcome is None:
        if leg.ended_at is None:
            return "Sedang berlangsung"
        return "Selesai"
    if leg.status.startswith("ditolak:"):
        return "Ditolak Asterisk: " + leg.status.removeprefix("ditolak:").strip()
    if leg.outcome is LegOutcome.ANSWERED:
        if Step.LEAVE in steps:
            return "Konferensi tiga pihak; operator keluar, penelepon tetap dengan instansi"
        if Step.JOIN in steps:
            return "Konferensi tiga pihak"
        if Step.HAND_OVER in steps:
            # Only the operator's hang-up hands over before the answer (Asterisk then joins
            # the caller to the agency when it answers; "Serahkan" waits for the answer).
            handed = next(at for step, _, at in taken if step is Step.HAND_OVER)
            if leg.answered_at is not None and handed < leg.answered_at:
                return ("Diserahkan ke instansi: operator menutup telepon saat instansi masih "
                        "berdering, instansi lalu mengangkat")
            return "Diserahkan ke instansi setelah operator bicara"
        if Step.CANCEL in steps:
            return "Dibatalkan operator setelah bicara; penelepon kembali ke operator"
        if leg.kind is LegKind.BLIND_TRANSFER:
            return "Penelepon tersambung langsung ke instansi"
        if transfer:
            # The agency or the caller hung up during the consult (or the line missed
            # Asterisk's report of a hand-over): the operator spoke to the agency, and the
            # record holds no hand-over. "Tersambung" read as the caller put through.
            return "Operator bicara dengan instansi; tidak ada serah terima tercatat"
        return "Tersambung"
    back = ("penelepon kembali ke operator" if leg.kind is LegKind.BLIND_TRANSFER
            else "operator kembali ke penelepon")
    if leg.outcome is LegOutcome.CANCELLED:
        if Step.CANCEL in steps:
            return "Dibatalkan operator sebelum diangkat"
        return "Dibatalkan (penelepon atau operator menutup telepon)"
    text = leg.outcome.label
    return f"{text}; {back}" if transfer else text


def timeline_row(leg: Leg, steps: Sequence[tuple[Step, str, datetime]] = ()) -> TimelineRow:
    """``leg`` as the incident's timeline shows it, derived from its ``call_legs`` row and the
    operator's steps."""
    ring = None
    if leg.answered_at is not None:
        ring = (leg.answered_at - leg.requested_at).total_seconds()
    elif leg.ended_at is not None:
        ring = (leg.ended_at - leg.requested_at).total_seconds()
    talk = leg.talk_time
    return TimelineRow(
        leg_id=leg.leg_id, call_id=leg.call_id, kind=leg.kind, actor=leg.actor,
        operator=leg.operator, target=leg.target, number=leg.number,
        requested_at=leg.requested_at, rang_at=leg.rang_at, answered_at=leg.answered_at,
        ended_at=leg.ended_at, ring_seconds=None if ring is None else max(ring, 0.0),
        talk_seconds=None if talk is None else max(talk.total_seconds(), 0.0),
        outcome=leg.outcome, ending=_ending(leg, steps), steps=tuple(steps),
    )
