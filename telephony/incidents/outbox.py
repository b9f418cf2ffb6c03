"""Dispatch notifications: the message each recipient reads, frozen into the outbox when the
dispatch is made, and the pace of retries. Pure; delivery is ``notifiers``' business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from telephony.incidents.directory import Agency, Recipient
from telephony.incidents.dispatches import PhoneContact
from telephony.incidents.model import Incident, Status, place_text


def notification_message(incident: Incident, agency: Agency) -> str:
    """The text a recipient reads (Bahasa Indonesia)."""
    line = f"[{incident.line}] " if incident.line else ""
    caller = f" Pelapor: {incident.caller_number}." if incident.caller_number else ""
    return (
        f"{line}Insiden #{incident.incident_id} - {incident.report_type.label} "
        f"(prioritas {incident.priority.label}) diteruskan ke {agency.name}. "
        f"Lokasi: {place_text(incident)}.{caller}"
    )


def notification_payload(
    incident: Incident, agency: Agency, recipient: Recipient, dispatch_id: int
) -> dict[str, Any]:
    """The JSON body a notifier delivers, frozen when the dispatch is made."""
    coordinates = incident.coordinates.to_json() if incident.coordinates else None
    return {
        "kind": "dispatch",
        "incident_id": incident.incident_id,
        "dispatch_id": dispatch_id,
        "agency": {"code": agency.code, "name": agency.name},
        "recipient": {"name": recipient.name, "role": recipient.role,
                      "contact": recipient.contact},
        "report_type": incident.report_type.value,
        "report_type_label": incident.report_type.label,
        "priority": incident.priority.value,
        "priority_label": incident.priority.label,
        "line": incident.line,
        "caller_number": incident.caller_number,
        "location": place_text(incident),
        "coordinates": coordinates,
        "description": incident.description,
        "message": notification_message(incident, agency),
    }


# Why an agency is told to stand down, by the status its incident ended in.
_STAND_DOWN_WHY: Final[Mapping[Status, str]] = {
    Status.PRANK: "laporan iseng (tidak benar)", Status.CANCELLED: "insiden dibatalkan"}


def stand_down_payload(dispatched: Mapping[str, Any], status: Status, note: str = ""
                       ) -> dict[str, Any]:
    """The message calling off a dispatch, for the recipient ``dispatched`` (the payload of
    the dispatch notification delivered to them) was sent: same incident, agency and
    recipient, so the gateway delivers it where the call-out went. ``status``: the
    incident's, which says why (a prank, cancelled; open: the dispatch alone was called
    off). ``note``: the reason the operator gave, if any."""
    line = f"[{dispatched.get('line')}] " if dispatched.get("line") else ""
    agency = dispatched.get("agency") or {}
    # An incident still open: the operator called this agency's dispatch off alone.
    why = _STAND_DOWN_WHY.get(status, "pengiriman ke instansi ini dibatalkan")
    remark = f" Keterangan: {note}." if note else ""
    message = (
        f"{line}PEMBATALAN Insiden #{dispatched.get('incident_id')} - "
        f"{dispatched.get('report_type_label')} di {dispatched.get('location')}: {why}. "
        f"{agency.get('name', 'Instansi')} tidak perlu datang; tim yang sudah berangkat "
        f"harap kembali.{remark}"
    )
    keep = ("incident_id", "dispatch_id", "agency", "recipient", "report_type",
            "report_type_label", "line", "location")
    return {**{key: dispatched.get(key) for key in keep}, "kind": "stand_down",
            "status": status.value, "status_label": status.label, "reason": note,
            "message": message}


# What each state of a dispatch's notifications is called on the incident page, in order.
NOTICE_STATES: Final[Mapping[str, str]] = {
    "sent": "terkirim", "pending": "menunggu dikirim", "failed": "gagal dikirim",
    "withdrawn": "ditarik"}
# A dispatch with no notification: the agency has no recipient (for this report type), so
# the line told nobody, and the operator must.
NOBODY_NOTIFIED: Final = "tidak ada penerima pemberitahuan: hubungi instansi lewat telepon"


def notices_text(counts: Mapping[str, int] | None, *, phone: PhoneContact | None = None
                 ) -> str:
    """A dispatch's notifications in words ("2 terkirim, 1 gagal dikirim"), from how many
    are in each state; ``None`` or empty: nobody was notified, and the text says so (or,
    ``phone``, how the operator's call handing the caller to the agency stands).

    The page showed a dispatch to an agency with no recipient as 'Diberitahu', the same as
    one delivered, though the line had told nobody: the operator, thinking the fire brigade
    informed, did not phone it. A phone still ringing comes first, whatever the messages:
    the agency has not answered yet."""
    parts = [f"{counts[state]} {text}" for state, text in NOTICE_STATES.items()
             if counts and counts.get(state)]
    if phone is PhoneContact.RINGING:
        return "; ".join([phone.label, ", ".join(parts)] if parts else [phone.label])
    if parts:
        return ", ".join(parts)
    return phone.label if phone is not None else NOBODY_NOTIFIED


def stand_down_text(counts: Mapping[str, int] | None) -> str:
    """The messages calling a dispatch off, in words, to follow :func:`notices_text`
    ("; pembatalan: 1 terkirim"); empty when none was written."""
    return f"; pembatalan: {notices_text(counts)}" if counts else ""


@dataclass(frozen=True)
class Notification:
    """One message for one recipient, as claimed from the outbox for delivery."""

    notification_id: int
    attempt: int  # 1 on the first try
    payload: Mapping[str, Any]


def retry_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before retrying after failed ``attempt`` (1-based): doubling, capped."""
    return float(min(cap, base * 2 ** min(max(attempt - 1, 0), 32)))


@dataclass(frozen=True)
class OutboxBacklog:
    """Notifications not yet delivered, how long the oldest has waited, and those given up."""

    pending: int
    oldest_pending_seconds: float | None  # None when none is pending
    failed: int


@dataclass(frozen=True)
class DeliveryReport:
    """What one drain of the notification outbox did."""

    sent: int = 0
    retried: int = 0  # failed, due again later
    failed: int = 0  # failed for the last allowed time; kept in the outbox as failed
    withdrawn: int = 0  # not sent: the incident was no longer open (kept as withdrawn)
