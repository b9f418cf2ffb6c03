"""The API's JSON shapes of domain objects (documented in ``schemas``): codes for programs,
``*_label`` texts in Bahasa Indonesia for people, instants as ISO 8601 with their offset.

Internal details stay out: password hashes, session digests, storage paths, claim tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import date, datetime
from typing import Any, Final

from recordings.domain import State
from recordings.store import Recording
from telephony.accounts.model import Session, account_json
from telephony.accounts.store import AuditEntry
from telephony.calls.store import CallRecord
from telephony.desks.operators import PauseReason
from telephony.desks.service import DeskState
from telephony.desks.store import CallView
from telephony.incidents.model import (
    DISPATCH_STATE_LABELS,
    ESCALATION_LABELS,
    PRIORITY_LABELS,
    REPORT_TYPE_LABELS,
    STATUS_LABELS,
    Agency,
    Attachment,
    Dispatch,
    Incident,
    IncidentEvent,
    Place,
    SlaClock,
)
from telephony.screening.features import Label
from telephony.screening.store import StoredLabel

# What operators read for the IVR's categories and skills, queue member states, the state of
# the call in front of them and what became of a call. An unknown code (a skill an admin added
# to the menu) is shown as it is.
CATEGORY_LABELS: Final[Mapping[str, str]] = {
    "emergency": "Darurat", "complaint": "Pengaduan", "information": "Informasi"}
SKILL_LABELS: Final[Mapping[str, str]] = {
    "general": "Umum", "medical": "Medis", "fire": "Kebakaran", "security": "Keamanan",
    "disaster": "Bencana", "javanese": "Bahasa Jawa", "madurese": "Bahasa Madura"}
MEMBER_STATE_LABELS: Final[Mapping[str, str]] = {
    "unknown": "Tidak diketahui", "idle": "Siap", "talking": "Sedang bicara",
    "busy": "Sibuk", "invalid": "Tidak valid", "unavailable": "Telepon tidak terhubung",
    "ringing": "Berdering", "ringing_in_use": "Berdering saat bicara", "on_hold": "Ditahan",
    "paused": "Jeda"}
CALL_STATE_LABELS: Final[Mapping[str, str]] = {
    "ringing": "Berdering", "talking": "Tersambung", "ended": "Selesai"}
DISPOSITION_LABELS: Final[Mapping[str, str]] = {
    "answered": "Dijawab", "abandoned": "Ditinggal di antrean", "vanished": "Hilang",
    "ended_in_ivr": "Berakhir di IVR", "in_progress": "Berlangsung",
    "ended_in_queue": "Berakhir di antrean"}
REASON_SEPARATOR: Final = "; "  # IVR_REASONS joins the reasons with it


def _labelled(labels: Mapping[str, str], code: str | None) -> str | None:
    return None if code is None else labels.get(code, code)


def pause_label(reason: str) -> str:
    """A pause reason as operators read it (one set outside the console as it is)."""
    try:
        return PauseReason(reason).label
    except ValueError:
        return reason


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def session_json(session: Session, token: str | None = None) -> dict[str, Any]:
    """A session as its owner sees it (the token only right after login)."""
    return {
        "token": token,
        "csrf_token": session.csrf_token,
        "expires_at": _instant(session.expires_at),
        "account": account_json(session.account),
    }


def sla_json(clock: SlaClock | None) -> dict[str, Any] | None:
    """An incident's dispatch clock."""
    if clock is None:
        return None
    return {
        "target_seconds": int(clock.target.total_seconds()),
        "due_at": _instant(clock.due_at),
        "breached": clock.breached,
        "overdue_seconds": int(clock.overdue.total_seconds()),
    }


def incident_json(incident: Incident, clock: SlaClock | None) -> dict[str, Any]:
    """An incident with its labels and dispatch clock."""
    point = incident.coordinates
    return {
        "incident_id": incident.incident_id,
        "version": incident.version,
        "status": incident.status.value,
        "status_label": STATUS_LABELS[incident.status],
        "report_type": incident.report_type.value,
        "report_type_label": REPORT_TYPE_LABELS[incident.report_type],
        "priority": int(incident.priority),
        "priority_label": PRIORITY_LABELS[incident.priority],
        "line": incident.line,
        "caller_number": incident.caller_number,
        "ivr_category": incident.ivr_category,
        "ivr_skill": incident.ivr_skill,
        "operator": incident.operator,
        "location_text": incident.location_text,
        "village_code": incident.village_code,
        "village_name": incident.village_name,
        "sub_district_code": incident.sub_district_code,
        "sub_district_name": incident.sub_district_name,
        "latitude": point.latitude if point else None,
        "longitude": point.longitude if point else None,
        "description": incident.description,
        "escalation_level": incident.escalation_level.value,
        "escalation_label": ESCALATION_LABELS[incident.escalation_level],
        "escalation_reason": incident.escalation_reason,
        "rating": incident.rating,
        "rated_at": _instant(incident.rated_at),
        "answered_at": _instant(incident.answered_at),
        "dispatched_at": _instant(incident.dispatched_at),
        "status_changed_at": _instant(incident.status_changed_at),
        "created_at": _instant(incident.created_at),
        "updated_at": _instant(incident.updated_at),
        "created_by": incident.created_by,
        "sla": sla_json(clock),
    }


def event_json(event: IncidentEvent) -> dict[str, Any]:
    """One entry of an incident's timeline."""
    return {"event_id": event.event_id, "at": _instant(event.at), "actor": event.actor,
            "kind": event.kind, "detail": dict(event.detail)}


def dispatch_json(dispatch: Dispatch) -> dict[str, Any]:
    """A dispatch with its own timeline."""
    return {
        "dispatch_id": dispatch.dispatch_id,
        "incident_id": dispatch.incident_id,
        "agency_code": dispatch.agency_code,
        "agency_name": dispatch.agency_name,
        "state": dispatch.state.value,
        "state_label": DISPATCH_STATE_LABELS[dispatch.state],
        "notified_at": _instant(dispatch.notified_at),
        "acknowledged_at": _instant(dispatch.acknowledged_at),
        "on_scene_at": _instant(dispatch.on_scene_at),
        "done_at": _instant(dispatch.done_at),
        "dispatched_by": dispatch.dispatched_by,
        "note": dispatch.note,
    }


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    """An attachment's metadata and where to download it."""
    return {
        "attachment_id": attachment.attachment_id,
        "incident_id": attachment.incident_id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size_bytes": attachment.size_bytes,
        "sha256": attachment.sha256,
        "uploaded_by": attachment.uploaded_by,
        "uploaded_at": _instant(attachment.uploaded_at),
        "download_url": (f"/api/incidents/{attachment.incident_id}/attachments/"
                         f"{attachment.attachment_id}"),
    }


def recording_json(recording: Recording) -> dict[str, Any]:
    """A recording's metadata; ``audio_url`` only once it is stored."""
    playable = recording.state is State.DONE
    return {
        "recording_id": recording.recording_id,
        "call_id": recording.call_id,
        "kind": recording.kind.value,
        "state": recording.state.value,
        "started_at": _instant(recording.started_at),
        "duration_seconds": recording.duration_seconds,
        "silence_share": recording.silence_share,
        "loudness_dbfs": recording.loudness_dbfs,
        "format": recording.format,
        "size_bytes": recording.size_bytes,
        "sha256": recording.sha256,
        "legal_hold": recording.legal_hold,
        "processed_at": _instant(recording.processed_at),
        "expired_at": _instant(recording.expired_at),
        "audio_url": f"/api/recordings/{recording.recording_id}/audio" if playable else None,
    }


def call_json(record: CallRecord) -> dict[str, Any]:
    """A call record."""
    values: dict[str, Any] = {}
    for field in fields(record):
        value = getattr(record, field.name)
        values[field.name] = value.isoformat() if isinstance(value, date) else value
    return values


def label_json(stored: StoredLabel) -> dict[str, Any]:
    """One label event of a call."""
    return {"label_id": stored.label_id, "call_id": stored.call_id,
            "label": stored.label.value, "label_text": stored.label.label,
            "labelled_by": stored.labelled_by, "labelled_at": _instant(stored.labelled_at),
            "note": stored.note}


def agency_json(agency: Agency) -> dict[str, Any]:
    """An agency."""
    return {"code": agency.code, "name": agency.name, "active": agency.active}


def place_json(place: Place) -> dict[str, Any]:
    """A village of the gazetteer with its sub-district."""
    return {"village_code": place.village_code, "village_name": place.village_name,
            "sub_district_code": place.sub_district_code,
            "sub_district_name": place.sub_district_name}


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """One audit log entry."""
    return {"audit_id": entry.audit_id, "at": _instant(entry.at), "actor": entry.actor,
            "action": entry.action, "object_type": entry.object_type,
            "object_id": entry.object_id, "remote_address": entry.remote_address,
            "detail": dict(entry.detail)}


def call_view_json(call: CallView) -> dict[str, Any]:
    """A call as the console shows it, with its screening, label and incident."""
    label = Label(call.label) if call.label is not None else None
    return {
        "call_id": call.call_id, "line": call.line, "caller_number": call.caller_number,
        "arrived_at": _instant(call.arrived_at), "answered_at": _instant(call.answered_at),
        "ended_at": _instant(call.ended_at), "ivr_choice": call.ivr_choice,
        "ivr_outcome": call.ivr_outcome, "ivr_category": call.ivr_category,
        "ivr_category_label": _labelled(CATEGORY_LABELS, call.ivr_category),
        "ivr_skill": call.ivr_skill, "ivr_skill_label": _labelled(SKILL_LABELS, call.ivr_skill),
        "queue": call.queue, "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds, "disposition": call.disposition,
        "disposition_label": DISPOSITION_LABELS.get(call.disposition, call.disposition),
        "prank_score": call.prank_score,
        "prank_reasons": [reason for reason in (call.prank_reasons or "").split(
            REASON_SEPARATOR) if reason],
        "queue_priority": call.queue_priority, "screening": call.screening,
        "label": call.label, "label_text": label.label if label is not None else None,
        "incident_id": call.incident_id,
    }


def desk_json(desk: DeskState) -> dict[str, Any]:
    """The operator's desk as the operator screen polls it."""
    current = desk.current
    return {
        "operator": desk.interface,
        "skills": [{"skill": skill, "skill_label": SKILL_LABELS.get(skill, skill),
                    "level": level} for skill, level in sorted(desk.skills.items())],
        "queues": [{"queue": m.queue, "state": m.state,
                    "state_label": MEMBER_STATE_LABELS.get(m.state, m.state),
                    "paused": m.paused, "pause_reason": m.pause_reason,
                    "pause_label": pause_label(m.pause_reason) if m.paused else "",
                    "since": _instant(m.since)} for m in desk.memberships],
        "call": None if current is None else {
            **call_view_json(current.call), "state": current.state,
            "state_label": CALL_STATE_LABELS[current.state]},
        "history": [call_view_json(call) for call in desk.history],
    }
