"""Legs the line places itself on a call: a transfer or conference to an agency, a call-back
of a caller whose call dropped. Pure: what a leg is and how its progress reads.

A service opens a leg (a ``call_legs`` row: who asked, for which call, to which number) and
then asks Asterisk to dial it; the dialplan reports the leg's progress as ``UserEvent
SiagaLeg`` (``asterisk-conf/extensions.conf``, ``[siaga112-leg]``) with the leg's id, which the
AMI tracker turns into :class:`~telephony.calls.facts.LegProgressed` facts and the call store
into the row's times and outcome. The line thus records each leg from what Asterisk did, and
the same event replayed changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from telephony.calls.ids import CallerIdKind, national_mobile, parse_caller_id
from telephony.core.labels import LabelledStrEnum

LEG_EVENT: Final = "SiagaLeg"  # the UserEvent name the dialplan reports legs with
# How long past its ring time a leg the dialplan did not report answered or ended may still
# be ringing: Dial() gives up at the ring time, counted from a little after the line asked
# (the AMI action, Atxfer's digits, the carrier's setup).
LEG_REPORT_GRACE: Final = timedelta(seconds=30)
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
# The visual separators a presented number may carry (RFC 3966 allows "-", "." and "()").
_SEPARATORS = re.compile(r"[ \-().]")


class LegKind(LabelledStrEnum):
    """What the line dialled the leg for."""

    BLIND_TRANSFER = "blind_transfer", "Alih langsung"
    ATTENDED_TRANSFER = "attended_transfer", "Alih setelah bicara"
    CONFERENCE = "conference", "Konferensi tiga pihak"
    CALLBACK = "callback", "Panggilan balik"


class LegState(LabelledStrEnum):
    """The progress the dialplan reports (the ``State`` header of ``SiagaLeg``)."""

    DIALLING = "dialling", "Memanggil"
    ANSWERED = "answered", "Diangkat"
    ENDED = "ended", "Selesai"


class LegOutcome(LabelledStrEnum):
    """How a leg ended, from Dial()'s ``DIALSTATUS`` (or the service's own refusal)."""

    ANSWERED = "answered", "Tersambung"
    NO_ANSWER = "no_answer", "Tidak diangkat"
    BUSY = "busy", "Sibuk"
    CANCELLED = "cancelled", "Dibatalkan"
    FAILED = "failed", "Gagal"


# DIALSTATUS (app_dial) -> outcome; anything else (CONGESTION, CHANUNAVAIL, INVALIDARGS,
# a status a later Asterisk adds) counts as failed.
_BY_STATUS: Final = {
    "ANSWER": LegOutcome.ANSWERED,
    "NOANSWER": LegOutcome.NO_ANSWER,
    "BUSY": LegOutcome.BUSY,
    "CANCEL": LegOutcome.CANCELLED,
}


def leg_outcome(status: str, *, answered: bool) -> LegOutcome:
    """The outcome of a leg that ended with ``status``; a leg that was answered ended
    answered, whatever the status says (after a transfer completes, the dialplan that
    dialled it may report the status of a later step)."""
    if answered:
        return LegOutcome.ANSWERED
    return _BY_STATUS.get(status.strip().upper(), LegOutcome.FAILED)


def ring_over_before(now: datetime, ring_timeout: timedelta) -> datetime:
    """A leg still not answered that began dialling (or was asked for, if the dialplan never
    reported it) before this instant is no longer ringing: Dial() gave up on it, and its end
    went unrecorded (the line was down then, or the report was lost)."""
    return now - ring_timeout - LEG_REPORT_GRACE


def check_number(number: str) -> str:
    """``number`` if it can be dialled out through the carrier (digits, an optional
    leading +, 3-20 digits); it is spliced into an AMI action and a dial string."""
    if not _NUMBER.fullmatch(number):
        raise ValueError(f"not a dialable number: {number[:40]!r}")
    return number


def dial_number(caller_number: str) -> str | None:
    """The number the line dials to call this caller back (an operator's call-back, a rating
    survey): as the carrier presented it, without separators; a mobile number presented
    without its trunk 0 gets it back. ``None`` when there is none: withheld, malformed, a
    SIM-less phone (whose IMEI dialled out is a stranger's number abroad)."""
    if parse_caller_id(caller_number).kind is not CallerIdKind.NUMBER:
        return None
    try:
        return check_number(national_mobile(_SEPARATORS.sub("", caller_number.strip())))
    except ValueError:
        return None


@dataclass(frozen=True)
class Leg:
    """One leg as recorded (a ``call_legs`` row)."""

    leg_id: int
    kind: LegKind
    call_id: str  # the emergency call the leg belongs to
    incident_id: int | None
    operator: str  # the interface of the operator who asked for it
    actor: str  # the account that asked for it
    number: str  # what was dialled
    target: str  # whom it was for: an agency's name, "penelepon" ...
    requested_at: datetime
    channel_id: str | None  # the Uniqueid of the channel that reported the leg
    rang_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: LegOutcome | None
    status: str  # Dial()'s status or the refusal, as reported
    hangup_cause: int | None = None  # of its end (a network cause if either end had one)
    unreached_by: str | None = None  # a call-back an operator said did not reach the caller
    unreached_at: datetime | None = None
    cut_reason: str | None = None  # Asterisk's end cut it (telephony.calls.outages.CutReason)

    @property
    def talk_time(self) -> timedelta | None:
        """From answer to end, once both are known."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at
