"""Dispatches: agencies sent to an incident, each with its own steps, and the dispatch target
the centre is held to (how soon after the first answer an agency must be on its way). Pure:
instants come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from telephony.calls.legs import LegOutcome
from telephony.core.labels import LabelledStrEnum
from telephony.incidents.errors import InvalidTransition, ValidationError
from telephony.incidents.model import NOTE_MAX, Status, clean_text, parse_enum


class DispatchState(LabelledStrEnum):
    """One agency's progress on one incident."""

    NOTIFIED = "notified", "Diberitahu"
    ACKNOWLEDGED = "acknowledged", "Diterima"
    ON_SCENE = "on_scene", "Di lokasi"
    DONE = "done", "Selesai"
    # The agency declined, did not answer, or the operator sent it by mistake: no team of it
    # is coming. Not a step of the order below: it ends the dispatch from where it stood.
    CANCELLED = "cancelled", "Dibatalkan"


# The steps of a dispatch that goes ahead, in order.
_DISPATCH_ORDER: Final = [DispatchState.NOTIFIED, DispatchState.ACKNOWLEDGED,
                          DispatchState.ON_SCENE, DispatchState.DONE]
# A dispatch over: the agency may be dispatched to the incident again.
FINISHED_DISPATCH_STATES: Final = frozenset({DispatchState.DONE, DispatchState.CANCELLED})
# A team on scene is not called off but finishes ("done"): what it did there is on record.
CANCELLABLE_DISPATCH_STATES: Final = frozenset({DispatchState.NOTIFIED,
                                                DispatchState.ACKNOWLEDGED})

# The ends of an incident that call off its dispatches still under way: nothing happened for
# a team to attend. (A resolved incident's last teams finish; a merge takes no dispatches.)
STAND_DOWN_STATUSES: Final = frozenset({Status.CANCELLED, Status.PRANK})


def parse_dispatch_state(value: object) -> DispatchState:
    """A dispatch state from its code."""
    return parse_enum(DispatchState, value, "state", "Tahap pengiriman")


class PhoneContact(LabelledStrEnum):
    """A dispatch made by phone: the agency's phone still ringing, or the agency reached.
    (One the agency never answered is settled by the incident upkeep and is no longer by
    phone.) The page said "lewat telepon" while the phone still rang, as if the agency knew."""

    RINGING = "ringing", "sedang ditelepon, instansi belum menjawab"
    REACHED = "reached", "lewat telepon"


@dataclass(frozen=True)
class Dispatch:
    """One agency sent to one incident, with its own timeline."""

    dispatch_id: int
    incident_id: int
    agency_code: str
    agency_name: str
    state: DispatchState
    notified_at: datetime
    acknowledged_at: datetime | None
    on_scene_at: datetime | None
    done_at: datetime | None
    cancelled_at: datetime | None
    dispatched_by: str
    note: str
    by_phone: bool = False  # the operator handed the caller to the agency by phone
    # A call of it to the agency is still ringing (not answered, not ended) and none was
    # answered: the agency has not heard of it yet.
    phone_ringing: bool = False

    @property
    def phone(self) -> PhoneContact | None:
        """How far the operator's call to the agency got, for a dispatch made by phone."""
        if not self.by_phone:
            return None
        return PhoneContact.RINGING if self.phone_ringing else PhoneContact.REACHED


def status_for_dispatch(status: Status) -> Status | None:
    """The incident's status once an agency is dispatched; ``None`` means unchanged.

    Agencies are dispatched once the report is verified (the field context: "once a report is
    believed true, the system hands it to the agency"). A further agency may join while the
    incident is dispatched or on scene (the water utility when the fire brigade needs water).
    """
    if status is Status.VERIFIED:
        return Status.DISPATCHED
    if status in (Status.DISPATCHED, Status.ON_SCENE):
        return None
    if status is Status.NEW:
        raise InvalidTransition("Laporan harus diverifikasi sebelum diteruskan ke instansi.")
    raise InvalidTransition(
        f"Insiden berstatus '{status.label}' tidak dapat diteruskan ke instansi."
    )


def next_dispatch_steps(current: DispatchState, *, incident_ended: bool = False
                        ) -> list[DispatchState]:
    """The steps a dispatch in ``current`` may take next, in order (for a picker).

    ``incident_ended``: the incident is closed (or cancelled, a prank): its dispatches may
    still be recorded done, never called off. A cancel sent the agency a stand-down
    ("PEMBATALAN Insiden #...") for an incident the centre had closed, after its teams had
    come and gone; what a team did is recorded "Selesai" instead."""
    if current in FINISHED_DISPATCH_STATES:
        return []
    ahead = _DISPATCH_ORDER[_DISPATCH_ORDER.index(current) + 1:]
    cancellable = current in CANCELLABLE_DISPATCH_STATES and not incident_ended
    return ahead + ([DispatchState.CANCELLED] if cancellable else [])


def check_dispatch_step(current: DispatchState, target: DispatchState, reason: object = "",
                        *, incident_ended: bool = False) -> str:
    """A dispatch only moves forward (a step the field team did not report may be skipped),
    or is cancelled before its team is on scene, saying why, while its incident has not
    ended; returns the cleaned reason."""
    if target not in next_dispatch_steps(current, incident_ended=incident_ended):
        if (target is DispatchState.CANCELLED and incident_ended
                and current in CANCELLABLE_DISPATCH_STATES):
            raise InvalidTransition("Insiden sudah ditutup: pengiriman tidak dapat dibatalkan "
                                    "dan instansi tidak diberi pesan pembatalan. Tandai "
                                    "'Selesai' bila tim instansi sudah tidak bertugas.")
        if target is DispatchState.CANCELLED and current is DispatchState.ON_SCENE:
            raise InvalidTransition("Tim instansi sudah di lokasi: tandai 'Selesai', bukan "
                                    "dibatalkan.")
        raise InvalidTransition(
            f"Tahap pengiriman tidak dapat diubah dari '{current.label}' ke '{target.label}'."
        )
    why = clean_text("note", reason, max_length=NOTE_MAX, multiline=True)
    if target is DispatchState.CANCELLED and not why:
        raise ValidationError("note", "Alasan pembatalan pengiriman wajib diisi (mis. instansi "
                                      "menolak atau tidak menjawab).")
    return why


# Why a dispatched incident went back to verified: every agency sent to it was called off.
NO_AGENCY_LEFT: Final = "no_agency_left"


def status_after_dispatch_step(status: Status, state: DispatchState, *, none_left: bool
                               ) -> Status | None:
    """The first team on scene puts a dispatched incident on scene; ``None`` means unchanged.

    The last dispatch called off (``none_left``: every dispatch of the incident is cancelled)
    puts a dispatched incident back to verified, waiting for an agency. It read "Diteruskan
    ke instansi" on the list, the page and the wallboard's overdue incidents with no agency
    on its way (the only one declined, or never answered the operator's call)."""
    if status is Status.DISPATCHED and state in (DispatchState.ON_SCENE, DispatchState.DONE):
        return Status.ON_SCENE
    if status is Status.DISPATCHED and state is DispatchState.CANCELLED and none_left:
        return Status.VERIFIED
    return None


@dataclass(frozen=True)
class UnansweredPhone:
    """A dispatch made or marked "by phone" every call of which to the agency ended without
    the agency answering (it rang out, was busy, the call failed or was called off)."""

    made_by_phone: bool  # recorded with the call, not an earlier dispatch the call was about
    messaged: bool  # a call-out to the agency's recipients is pending, sent or failed
    # How the last call to the agency ended; ``None``: its end was never recorded (the line
    # was down when it ended, or the dialplan's report was lost) and its ring time is over.
    outcome: LegOutcome | None


# ``phone_unanswered`` on the timeline for a call whose end went unrecorded.
UNRECORDED_PHONE: Final = "unrecorded"


def settle_unanswered_phone(state: DispatchState, phone: UnansweredPhone, *,
                            incident_open: bool = True) -> tuple[DispatchState | None, str]:
    """What becomes of a by-phone dispatch nobody at the agency answered: the state it moves
    to (``None``: it stays) and the note on the incident's timeline. Either way it is no
    longer "by phone".

    A call whose end went unrecorded, no answer recorded either, long after it could still
    ring (:func:`~telephony.calls.legs.ring_over_before`), counts as not answered: Asterisk
    reports the answer as it happens, and a dispatch the agency may not know of is what
    must not stay "Diberitahu" unseen; calling one off that it did know of costs a second
    call. Until this such a dispatch stayed "by phone" and unsettled for good.

    An incident no longer open (resolved, closed) keeps its dispatches: nothing is called
    off there, the dispatch only stops reading "by phone".

    It is called off when the phone was the agency's only word of it: recorded with the call,
    still only "notified" (nobody recorded the agency accepting), and no message to its
    recipients. Until this such a dispatch stayed "Diberitahu" and the incident dispatched on
    time, though the agency knew nothing: the operator may call again or dispatch another way.
    A dispatch the line also sent a message for, or one recorded before the call, stays: a
    stand-down would recall a crew the message may have set out.
    """
    if phone.outcome is None:
        if (incident_open and phone.made_by_phone and not phone.messaged
                and state is DispatchState.NOTIFIED):
            return DispatchState.CANCELLED, (
                "Hasil telepon ke instansi tidak tercatat dan tidak ada jawaban yang tercatat: "
                "dianggap belum diteruskan. Telepon lagi atau teruskan dengan cara lain.")
        return None, ("Hasil telepon ke instansi tidak tercatat: pastikan instansi sudah "
                      "menerima.")
    how = phone.outcome.label.lower()
    if (incident_open and phone.made_by_phone and not phone.messaged
            and state is DispatchState.NOTIFIED):
        return DispatchState.CANCELLED, (
            f"Instansi tidak dapat dihubungi lewat telepon ({how}): belum diteruskan. "
            "Telepon lagi atau teruskan dengan cara lain.")
    return None, f"Telepon ke instansi tidak tersambung ({how})."


# --------------------------------------------------------------------------------------------
# Dispatch targets


@dataclass(frozen=True)
class SlaClock:
    """The dispatch target of one incident: due when, met or breached, by how much."""

    target: timedelta
    due_at: datetime
    dispatched_at: datetime | None
    breached: bool
    overdue: timedelta  # zero unless breached


def dispatch_clock(
    *,
    answered_at: datetime | None,
    dispatched_at: datetime | None,
    target: timedelta | None,
    now: datetime,
    is_open: bool,
) -> SlaClock | None:
    """The dispatch clock, or ``None`` when the report type has no target, no call was
    answered yet, or the incident ended (cancelled, a prank, merged into another) with no
    agency dispatched: no target is left to meet, and a clock still running from the answer
    showed a prank's page "terlambat", later by the hour. Dispatching exactly at the due
    instant meets the target."""
    if target is None or answered_at is None or (dispatched_at is None and not is_open):
        return None
    due_at = answered_at + target
    reference = dispatched_at if dispatched_at is not None else now
    overdue = max(reference - due_at, timedelta(0))
    return SlaClock(target, due_at, dispatched_at, overdue > timedelta(0), overdue)

