"""The JSON schemas of the incident routes (telephony/incidents/http.py): incidents, their
timeline, dispatches and attachments, the agencies and places they name, and the bodies
that open and change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.incidents.dispatches import PhoneContact
from telephony.web.schemas import (
    CALL_ID,
    DATETIME,
    NULLABLE_DATETIME,
    NULLABLE_INT,
    NULLABLE_NUMBER,
    NULLABLE_TEXT,
    VERSION,
    Schema,
    all_required,
    object_schema,
    ref,
    text,
)

SCHEMAS: Final[Mapping[str, Schema]] = {
    "SlaClock": {"type": ["object", "null"], "properties": {
        "target_seconds": {"type": "integer"}, "due_at": DATETIME,
        "breached": {"type": "boolean"}, "overdue_seconds": {"type": "integer"},
    }, "required": ["target_seconds", "due_at", "breached", "overdue_seconds"],
        "additionalProperties": False},
    "Incident": all_required({
        "incident_id": {"type": "integer"},
        "version": {"type": "integer"},
        "status": {"type": "string"}, "status_label": {"type": "string"},
        "report_type": {"type": "string"}, "report_type_label": {"type": "string"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "priority_label": {"type": "string"},
        "line": NULLABLE_TEXT, "caller_number": {"type": "string"},
        "ivr_category": NULLABLE_TEXT, "ivr_skill": NULLABLE_TEXT,
        "operator": NULLABLE_TEXT,
        "location_text": {"type": "string"},
        "village_code": NULLABLE_TEXT, "village_name": NULLABLE_TEXT,
        "sub_district_code": NULLABLE_TEXT, "sub_district_name": NULLABLE_TEXT,
        "latitude": NULLABLE_NUMBER, "longitude": NULLABLE_NUMBER,
        "description": {"type": "string"},
        "escalation_level": {"type": "string"}, "escalation_label": {"type": "string"},
        "escalation_reason": {"type": "string"},
        "rating": NULLABLE_INT, "rated_at": NULLABLE_DATETIME,
        "answered_at": NULLABLE_DATETIME, "dispatched_at": NULLABLE_DATETIME,
        "status_changed_at": DATETIME, "created_at": DATETIME, "updated_at": DATETIME,
        "created_by": {"type": "string"},
        "sla": ref("SlaClock"),
    }),
    "IncidentList": all_required({"incidents": {"type": "array", "items": ref("Incident")}}),
    "IncidentPage": all_required({
        "incidents": {"type": "array", "items": ref("Incident")},
        "next_offset": {**NULLABLE_INT, "description":
                        "Offset halaman berikutnya (kirim sebagai ?offset=); null bila ini "
                        "halaman terakhir"},
    }, "Satu halaman insiden terbuka. Urutan tetap (prioritas, waktu dibuat, id), tetapi "
       "daftar berubah selagi dibaca: insiden yang ditutup atau berganti prioritas dapat "
       "menggeser batas halaman."),
    "TimelineEvent": all_required({
        "event_id": {"type": "integer"}, "at": DATETIME, "actor": {"type": "string"},
        "kind": {"type": "string"}, "detail": {"type": "object"},
    }),
    "Dispatch": all_required({
        "dispatch_id": {"type": "integer"}, "incident_id": {"type": "integer"},
        "agency_code": {"type": "string"}, "agency_name": {"type": "string"},
        "state": {"type": "string"}, "state_label": {"type": "string"},
        "notified_at": DATETIME, "acknowledged_at": NULLABLE_DATETIME,
        "on_scene_at": NULLABLE_DATETIME, "done_at": NULLABLE_DATETIME,
        "cancelled_at": NULLABLE_DATETIME,
        "dispatched_by": {"type": "string"}, "note": {"type": "string"},
        "by_phone": {"type": "boolean",
                     "description": "Diteruskan lewat telepon (alih panggilan ke instansi)"},
        "phone": {"type": ["string", "null"], "enum": [*PhoneContact.labels(), None],
                  "description": "Telepon ke instansi: ringing (masih berdering, instansi "
                                 "belum menjawab) atau reached (tersambung); null bila tidak "
                                 "lewat telepon"},
        "phone_label": NULLABLE_TEXT,
    }),
    "Attachment": all_required({
        "attachment_id": {"type": "integer"}, "incident_id": {"type": "integer"},
        "filename": {"type": "string"}, "content_type": {"type": "string"},
        "size_bytes": {"type": "integer"}, "sha256": {"type": "string"},
        "uploaded_by": {"type": "string"}, "uploaded_at": DATETIME,
        "download_url": {"type": "string"},
    }),
    "AttachmentList": all_required({
        "attachments": {"type": "array", "items": ref("Attachment")}}),
    "IncidentDetail": all_required({
        "incident": ref("Incident"),
        "calls": {"type": "array", "items": ref("Call")},
        "recordings": {"type": "array", "items": ref("Recording")},
        "dispatches": {"type": "array", "items": ref("Dispatch")},
        "timeline": {"type": "array", "items": ref("TimelineEvent")},
        "attachments": {"type": "array", "items": ref("Attachment")},
    }),
    "Agency": all_required({"code": {"type": "string"}, "name": {"type": "string"},
                            "active": {"type": "boolean"}}),
    "AgencyList": all_required({"agencies": {"type": "array", "items": ref("Agency")}}),
    "Place": all_required({"village_code": {"type": "string"},
                           "village_name": {"type": "string"},
                           "sub_district_code": {"type": "string"},
                           "sub_district_name": {"type": "string"}}),
    "PlaceList": all_required({"places": {"type": "array", "items": ref("Place")}}),
    "CreateIncident": object_schema({"call_id": CALL_ID}, ("call_id",),
                                    "Buka insiden baru, terisi dari data panggilan."),
    "IncidentPatch": object_schema({
        "report_type": {"type": "string", "maxLength": 40},
        "priority": {"type": ["integer", "string"]},
        "location_text": text(500),
        "village_code": {"type": ["string", "null"], "maxLength": 20},
        "sub_district_code": {"type": ["string", "null"], "maxLength": 20},
        "latitude": {"type": ["number", "string", "null"]},
        "longitude": {"type": ["number", "string", "null"]},
        "description": text(4000),
        "expected_version": VERSION,
    }, (), "Hanya kolom yang dikirim yang diubah; null mengosongkan."),
    "StatusChange": object_schema({"status": text(40), "note": text(1000),
                                   "expected_version": VERSION}, ("status",)),
    "Escalation": object_schema({"level": text(40), "reason": text(1000),
                                 "expected_version": VERSION}, ("level", "reason")),
    "LinkCall": object_schema({"call_id": CALL_ID, "expected_version": VERSION}, ("call_id",)),
    "Rating": object_schema({"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
                            ("rating",)),
    "NewDispatch": object_schema({"agency": text(32), "note": text(1000),
                                  "expected_version": VERSION}, ("agency",)),
    "DispatchStep": object_schema({"state": text(40), "note": text(1000)}, ("state",),
                                  "Tahap berikutnya; 'cancelled' (instansi menolak atau tidak "
                                  "menjawab) wajib dengan alasan di note."),
}
