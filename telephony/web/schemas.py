"""JSON Schemas (OpenAPI 3.1 dialect) of the API's bodies, and the small validator that holds
request bodies to them.

The same schemas document the API (``/api/openapi.json``) and check what clients send, so the
two cannot drift: a request body that does not match its schema is refused before a handler
sees it. Only the keywords used here are supported by :func:`validate`. The domain parsers
still check values (a status code, a village code); this only guarantees shapes and types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from telephony.core.errors import Invalid

Schema = Mapping[str, Any]

DATETIME: Final[Schema] = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME: Final[Schema] = {"type": ["string", "null"], "format": "date-time"}
CALL_ID: Final[Schema] = {"type": "string", "pattern": r"^[0-9]+\.[0-9]+$", "maxLength": 64,
                          "description": "Uniqueid Asterisk dari kanal penelepon"}
VERSION: Final[Schema] = {
    "type": "integer", "minimum": 1,
    "description": "Versi insiden yang dibaca klien; perubahan ditolak (409) bila sudah "
                   "berubah sejak itu.",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Mapping[str, Schema], required: tuple[str, ...] = (),
            description: str = "") -> Schema:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties),
                              "required": list(required), "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


def _all_required(properties: Mapping[str, Schema], description: str = "") -> Schema:
    """A response object: every property is always present (possibly null)."""
    return _object(properties, tuple(properties), description)


def _text(max_length: int) -> Schema:
    return {"type": "string", "maxLength": max_length}


_NULLABLE_TEXT: Final[Schema] = {"type": ["string", "null"]}
_NULLABLE_INT: Final[Schema] = {"type": ["integer", "null"]}
_NULLABLE_NUMBER: Final[Schema] = {"type": ["number", "null"]}

# A call as the console shows it (``CallView``); the desk's call adds where it stands.
_CALL_VIEW: Final[Schema] = {
    "call_id": {"type": "string"}, "line": _NULLABLE_TEXT,
    "caller_number": {"type": "string"}, "arrived_at": NULLABLE_DATETIME,
    "answered_at": NULLABLE_DATETIME, "ended_at": NULLABLE_DATETIME,
    "ivr_choice": _NULLABLE_TEXT, "ivr_outcome": _NULLABLE_TEXT,
    "ivr_category": _NULLABLE_TEXT, "ivr_category_label": _NULLABLE_TEXT,
    "ivr_skill": _NULLABLE_TEXT, "ivr_skill_label": _NULLABLE_TEXT,
    "queue": _NULLABLE_TEXT, "wait_seconds": _NULLABLE_INT, "talk_seconds": _NULLABLE_INT,
    "disposition": {"type": "string"}, "disposition_label": {"type": "string"},
    "prank_score": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                    "description": "Skor iseng sebelum antrean (0-1)"},
    "prank_reasons": {"type": "array", "items": {"type": "string"}},
    "queue_priority": _NULLABLE_INT, "screening": _NULLABLE_TEXT,
    "label": {"type": ["string", "null"],
              "enum": ["genuine", "prank", "silent", "accidental", "test", None]},
    "label_text": _NULLABLE_TEXT, "incident_id": _NULLABLE_INT,
}

SCHEMAS: Final[Mapping[str, Schema]] = {
    "Error": _object({"error": _all_required({
        "code": {"type": "string"},
        "message": {"type": "string", "description": "Pesan untuk pengguna (Bahasa Indonesia)"},
        "field": _NULLABLE_TEXT,
    })}, ("error",)),
    "Account": _all_required({
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "role": {"type": "string", "enum": ["operator", "supervisor", "admin"]},
        "role_label": {"type": "string"},
        "active": {"type": "boolean"},
    }),
    "Login": _object({"username": _text(64), "password": _text(256)},
                     ("username", "password")),
    "Session": _all_required({
        "token": {"type": ["string", "null"],
                  "description": "Token bearer; hanya pada jawaban login"},
        "csrf_token": {"type": "string",
                       "description": "Kirim di header X-CSRF-Token pada perubahan "
                                      "yang memakai cookie sesi"},
        "expires_at": DATETIME,
        "account": _ref("Account"),
    }),
    "SlaClock": {"type": ["object", "null"], "properties": {
        "target_seconds": {"type": "integer"}, "due_at": DATETIME,
        "breached": {"type": "boolean"}, "overdue_seconds": {"type": "integer"},
    }, "required": ["target_seconds", "due_at", "breached", "overdue_seconds"],
        "additionalProperties": False},
    "Incident": _all_required({
        "incident_id": {"type": "integer"},
        "version": {"type": "integer"},
        "status": {"type": "string"}, "status_label": {"type": "string"},
        "report_type": {"type": "string"}, "report_type_label": {"type": "string"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "priority_label": {"type": "string"},
        "line": _NULLABLE_TEXT, "caller_number": {"type": "string"},
        "ivr_category": _NULLABLE_TEXT, "ivr_skill": _NULLABLE_TEXT,
        "operator": _NULLABLE_TEXT,
        "location_text": {"type": "string"},
        "village_code": _NULLABLE_TEXT, "village_name": _NULLABLE_TEXT,
        "sub_district_code": _NULLABLE_TEXT, "sub_district_name": _NULLABLE_TEXT,
        "latitude": _NULLABLE_NUMBER, "longitude": _NULLABLE_NUMBER,
        "description": {"type": "string"},
        "escalation_level": {"type": "string"}, "escalation_label": {"type": "string"},
        "escalation_reason": {"type": "string"},
        "rating": _NULLABLE_INT, "rated_at": NULLABLE_DATETIME,
        "answered_at": NULLABLE_DATETIME, "dispatched_at": NULLABLE_DATETIME,
        "status_changed_at": DATETIME, "created_at": DATETIME, "updated_at": DATETIME,
        "created_by": {"type": "string"},
        "sla": _ref("SlaClock"),
    }),
    "IncidentList": _all_required({"incidents": {"type": "array", "items": _ref("Incident")}}),
    "TimelineEvent": _all_required({
        "event_id": {"type": "integer"}, "at": DATETIME, "actor": {"type": "string"},
        "kind": {"type": "string"}, "detail": {"type": "object"},
    }),
    "Dispatch": _all_required({
        "dispatch_id": {"type": "integer"}, "incident_id": {"type": "integer"},
        "agency_code": {"type": "string"}, "agency_name": {"type": "string"},
        "state": {"type": "string"}, "state_label": {"type": "string"},
        "notified_at": DATETIME, "acknowledged_at": NULLABLE_DATETIME,
        "on_scene_at": NULLABLE_DATETIME, "done_at": NULLABLE_DATETIME,
        "dispatched_by": {"type": "string"}, "note": {"type": "string"},
    }),
    "Attachment": _all_required({
        "attachment_id": {"type": "integer"}, "incident_id": {"type": "integer"},
        "filename": {"type": "string"}, "content_type": {"type": "string"},
        "size_bytes": {"type": "integer"}, "sha256": {"type": "string"},
        "uploaded_by": {"type": "string"}, "uploaded_at": DATETIME,
        "download_url": {"type": "string"},
    }),
    "AttachmentList": _all_required({
        "attachments": {"type": "array", "items": _ref("Attachment")}}),
    "Recording": _all_required({
        "recording_id": {"type": "integer"}, "call_id": {"type": "string"},
        "kind": {"type": "string", "enum": ["mixed", "caller", "line"],
                 "description": "mixed: kedua pihak; caller/line: satu arah saja"},
        "state": {"type": "string"},
        "started_at": DATETIME, "duration_seconds": _NULLABLE_NUMBER,
        "silence_share": _NULLABLE_NUMBER, "loudness_dbfs": _NULLABLE_NUMBER,
        "format": _NULLABLE_TEXT, "size_bytes": _NULLABLE_INT, "sha256": _NULLABLE_TEXT,
        "legal_hold": {"type": "boolean"}, "processed_at": NULLABLE_DATETIME,
        "expired_at": NULLABLE_DATETIME,
        "audio_url": {"type": ["string", "null"],
                      "description": "Ada bila rekaman tersimpan dan dapat diputar"},
    }),
    "Call": _all_required({
        "call_id": {"type": "string"}, "line": _NULLABLE_TEXT,
        "caller_number": {"type": "string"}, "arrived_at": NULLABLE_DATETIME,
        "shift_day": {"type": ["string", "null"], "format": "date"},
        "shift_name": _NULLABLE_TEXT, "ivr_choice": _NULLABLE_TEXT,
        "ivr_outcome": _NULLABLE_TEXT, "ivr_category": _NULLABLE_TEXT,
        "ivr_skill": _NULLABLE_TEXT, "queue": _NULLABLE_TEXT,
        "queue_position": _NULLABLE_INT, "answered_queue": _NULLABLE_TEXT,
        "operator": _NULLABLE_TEXT, "wait_seconds": _NULLABLE_INT,
        "talk_seconds": _NULLABLE_INT, "abandon_original_position": _NULLABLE_INT,
        "abandon_final_position": _NULLABLE_INT, "hangup_cause": _NULLABLE_INT,
        "hangup_cause_text": _NULLABLE_TEXT, "ended_at": NULLABLE_DATETIME,
        "disposition": {"type": "string"},
    }),
    "CallList": _all_required({"calls": {"type": "array", "items": _ref("Call")}}),
    "CallDetail": _all_required({
        "call": _ref("Call"),
        "incident_id": _NULLABLE_INT,
        "recordings": {"type": "array", "items": _ref("Recording")},
    }),
    "IncidentDetail": _all_required({
        "incident": _ref("Incident"),
        "calls": {"type": "array", "items": _ref("Call")},
        "recordings": {"type": "array", "items": _ref("Recording")},
        "dispatches": {"type": "array", "items": _ref("Dispatch")},
        "timeline": {"type": "array", "items": _ref("TimelineEvent")},
        "attachments": {"type": "array", "items": _ref("Attachment")},
    }),
    "Agency": _all_required({"code": {"type": "string"}, "name": {"type": "string"},
                             "active": {"type": "boolean"}}),
    "AgencyList": _all_required({"agencies": {"type": "array", "items": _ref("Agency")}}),
    "Place": _all_required({"village_code": {"type": "string"},
                            "village_name": {"type": "string"},
                            "sub_district_code": {"type": "string"},
                            "sub_district_name": {"type": "string"}}),
    "PlaceList": _all_required({"places": {"type": "array", "items": _ref("Place")}}),
    "CallLabel": _all_required({
        "label_id": {"type": "integer"}, "call_id": {"type": "string"},
        "label": {"type": "string",
                  "enum": ["genuine", "prank", "silent", "accidental", "test"]},
        "label_text": {"type": "string"},
        "labelled_by": {"type": "string"}, "labelled_at": DATETIME, "note": {"type": "string"},
    }),
    "CallLabelList": _all_required({
        "labels": {"type": "array", "items": _ref("CallLabel"),
                   "description": "Terlama dulu; yang terakhir berlaku"}}),
    "AuditEntry": _all_required({
        "audit_id": {"type": "integer"}, "at": DATETIME, "actor": {"type": "string"},
        "action": {"type": "string"}, "object_type": {"type": "string"},
        "object_id": {"type": "string"}, "remote_address": {"type": "string"},
        "detail": {"type": "object"},
    }),
    "AuditList": _all_required({"entries": {"type": "array", "items": _ref("AuditEntry")}}),
    "CallView": _all_required(_CALL_VIEW, "Panggilan seperti yang ditampilkan konsol, dengan "
                                          "skor iseng, label dan insidennya."),
    "DeskCall": _all_required({
        **_CALL_VIEW,
        "state": {"type": "string", "enum": ["ringing", "talking", "ended"]},
        "state_label": {"type": "string"},
    }),
    "Desk": _all_required({
        "operator": {"type": "string", "description": "Antarmuka Asterisk, mis. PJSIP/op1001"},
        "skills": {"type": "array", "items": _all_required({
            "skill": {"type": "string"}, "skill_label": {"type": "string"},
            "level": {"type": "integer", "minimum": 1, "maximum": 5}})},
        "queues": {"type": "array", "items": _all_required({
            "queue": {"type": "string"}, "state": {"type": "string"},
            "state_label": {"type": "string"}, "paused": {"type": "boolean"},
            "pause_reason": {"type": "string"}, "pause_label": {"type": "string"},
            "since": DATETIME})},
        "call": {"oneOf": [_ref("DeskCall"), {"type": "null"}],
                 "description": "Panggilan yang berdering atau terakhir dijawab di meja ini"},
        "history": {"type": "array", "items": _ref("CallView"),
                    "description": "Panggilan terakhir penelepon yang sama, terbaru dulu"},
        "related": {"type": "array", "items": _ref("Incident"),
                    "description": "Insiden terbuka tempat panggilan ini dapat digabungkan "
                                   "(jenis yang sama dulu, lalu yang terbaru)"},
    }),
    "QueueList": _all_required({"queues": {"type": "array", "items": {"type": "string"}}}),
    # The supervisor's wallboard and reports (telephony/reports/http.py).
    "Share": _all_required({
        "count": {"type": "integer"}, "of": {"type": "integer"},
        "percent": {**_NULLABLE_NUMBER, "description": "null bila tidak ada yang dihitung"},
    }),
    "Figures": _all_required({
        "calls": {"type": "integer", "description": "Semua panggilan masuk"},
        "offered": {"type": "integer", "description": "Sampai di antrean"},
        "answered": {"type": "integer"}, "abandoned": {"type": "integer"},
        "service_levels": {"type": "array", "items": _all_required({
            "seconds": {"type": "integer"}, "count": {"type": "integer"},
            "of": {"type": "integer"}, "percent": _NULLABLE_NUMBER}),
            "description": "Porsi dijawab dalam 10 dan 20 detik sejak masuk antrean"},
        "mean_wait_seconds": _NULLABLE_NUMBER, "p90_wait_seconds": _NULLABLE_NUMBER,
        "mean_talk_seconds": _NULLABLE_NUMBER, "mean_wrapup_seconds": _NULLABLE_NUMBER,
        "prank_share": {**_ref("Share"),
                        "description": "Berlabel iseng atau diam, dari yang berlabel"},
    }),
    "Wallboard": _all_required({
        "generated_at": DATETIME,
        "connected": {"type": "boolean", "description": "Tersambung ke Asterisk (AMI)"},
        "queues": {"type": "array", "items": _all_required({
            "queue": {"type": "string"}, "members": {"type": "integer"},
            "available": {"type": "integer"}, "longest_wait_seconds": _NULLABLE_NUMBER,
            "callers": {"type": "array", "items": _all_required({
                "position": {"type": "integer"}, "joined_at": DATETIME,
                "wait_seconds": {"type": "number"}, "line": _NULLABLE_TEXT,
                "category": _NULLABLE_TEXT, "category_label": _NULLABLE_TEXT})}})},
        "operators": {"type": "array", "items": _all_required({
            "operator": {"type": "string"}, "name": {"type": "string"},
            "state": {"type": "string", "enum": ["idle", "ringing", "talking", "wrapup",
                                                 "paused", "unavailable"]},
            "state_label": {"type": "string"}, "reason": {"type": "string"},
            "reason_label": {"type": "string"}, "since": DATETIME,
            "queues": {"type": "array", "items": {"type": "string"}}})},
        "operator_counts": _all_required({state: {"type": "integer"} for state in (
            "idle", "ringing", "talking", "wrapup", "paused", "unavailable")}),
        "longest_wait": {"type": ["object", "null"], "properties": {
            "queue": {"type": "string"}, "wait_seconds": {"type": "number"}},
            "required": ["queue", "wait_seconds"], "additionalProperties": False},
        "shift": {"type": ["object", "null"], "properties": {
            "day": {"type": "string", "format": "date"}, "name": {"type": "string"},
            "figures": _ref("Figures")},
            "required": ["day", "name", "figures"], "additionalProperties": False},
        "today": {"type": ["object", "null"], "properties": {
            "day": {"type": "string", "format": "date"}, "figures": _ref("Figures")},
            "required": ["day", "figures"], "additionalProperties": False},
        "counters_at": NULLABLE_DATETIME,
        "counters_stale": {"type": "boolean",
                           "description": "Basis data tidak terjangkau; angka lebih lama"},
        "overdue_incidents": {"type": "array", "items": _all_required({
            "incident_id": {"type": "integer"}, "report_type": {"type": "string"},
            "report_type_label": {"type": "string"}, "priority": {"type": "integer"},
            "priority_label": {"type": "string"}, "status": {"type": "string"},
            "status_label": {"type": "string"}, "due_at": DATETIME,
            "overdue_seconds": {"type": "integer"}})},
    }),
    "ShiftReport": _all_required({
        "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
        "shift": _NULLABLE_TEXT, "generated_at": DATETIME, "total": _ref("Figures"),
        "shifts": {"type": "array", "items": _all_required({
            "day": {"type": "string", "format": "date"}, "shift": {"type": "string"},
            "figures": _ref("Figures")})},
        "operators": {"type": "array", "items": _all_required({
            "operator": {"type": "string"}, "name": {"type": "string"},
            "figures": _ref("Figures")})},
        "queues": {"type": "array", "items": _all_required({
            "queue": {"type": "string"}, "figures": _ref("Figures")})},
    }),
    "DailySummary": _all_required({
        "day": {"type": "string", "format": "date"}, "generated_at": DATETIME,
        "figures": _ref("Figures"),
        "lines": {"type": "array", "items": _all_required({
            "line": {"type": "string"}, "calls": {"type": "integer"}})},
        "categories": {"type": "array", "items": _all_required({
            "category": _NULLABLE_TEXT, "category_label": {"type": "string"},
            "calls": {"type": "integer"}})},
        "report_types": {"type": "array", "items": _all_required({
            "report_type": _NULLABLE_TEXT, "report_type_label": {"type": "string"},
            "calls": {"type": "integer"}, "incidents": {"type": "integer"}})},
        "villages": {"type": "array", "items": _all_required({
            "village_code": _NULLABLE_TEXT, "village_name": _NULLABLE_TEXT,
            "sub_district_name": _NULLABLE_TEXT, "calls": {"type": "integer"},
            "incidents": {"type": "integer"}})},
        "labels": {"type": "array", "items": _all_required({
            "label": _NULLABLE_TEXT, "label_text": {"type": "string"},
            "calls": {"type": "integer"}})},
        "ratings": _all_required({
            "counts": {"type": "array", "items": _all_required({
                "rating": {"type": "integer"}, "count": {"type": "integer"}})},
            "total": {"type": "integer"}, "mean": _NULLABLE_NUMBER}),
    }),
    # Administration: IVR and screening versions, queues, operators, site settings.
    "ConfigVersion": _all_required({
        "version_id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["menu", "screening"]},
        "kind_label": {"type": "string"}, "note": {"type": "string"},
        "based_on": _NULLABLE_INT, "created_by": {"type": "string"}, "created_at": DATETIME,
        "last_published_at": NULLABLE_DATETIME, "last_published_by": _NULLABLE_TEXT,
        "state": {"type": "string", "enum": ["live", "published", "draft"],
                  "description": "live: berjalan sekarang; published: pernah terbit; "
                                 "draft: belum pernah terbit"},
        "state_label": {"type": "string"},
    }),
    "ConfigVersionList": _all_required({
        "versions": {"type": "array", "items": _ref("ConfigVersion")},
        "live_version_id": _NULLABLE_INT}),
    "PromptRecording": _all_required({
        "prompt": {"type": "string"}, "sha256": {"type": "string"},
        "filename": {"type": "string"}, "uploaded_by": {"type": "string"},
        "uploaded_at": DATETIME}),
    "ConfigVersionDetail": _all_required({
        "version": _ref("ConfigVersion"),
        "document": {"type": "object", "description": "Menu IVR (ivr/menu.json) atau "
                                                      "konfigurasi penyaringan (ScoreConfig)"},
        "recordings": {"type": "array", "items": _ref("PromptRecording")}}),
    "MenuTreeNode": _all_required({
        "label": {"type": "string"}, "prompt": _NULLABLE_TEXT, "text": _NULLABLE_TEXT,
        "children": {"type": "array", "items": _ref("MenuTreeNode")}}),
    "PromptPreview": _all_required({
        "name": {"type": "string"}, "text": {"type": "string"}, "recorded": {"type": "boolean"},
        "seconds": {"type": "number"}, "audio_url": {"type": "string"}}),
    "ConfigPreview": _all_required({
        "version": _ref("ConfigVersion"),
        "tree": {"type": "array", "items": _ref("MenuTreeNode")},
        "prompts": {"type": "array", "items": _ref("PromptPreview")},
        "settings": {"type": "object", "description": "Semua pengaturan penyaringan"}}),
    "QueueMember": _all_required({
        "interface": {"type": "string"}, "name": {"type": "string"},
        "penalty": {"type": "integer"}, "paused": {"type": "boolean"},
        "pause_reason": {"type": "string"}, "dynamic": {"type": "boolean"},
        "in_call": {"type": "boolean"}}),
    "QueueSettings": _all_required({
        "queue": {"type": "string"}, "strategy": {"type": "string"},
        "strategy_label": {"type": "string"},
        "ring_timeout_seconds": {"type": "integer"}, "retry_seconds": {"type": "integer"},
        "wrapup_seconds": {"type": "integer"}, "announce_position": {"type": "boolean"},
        "announce_holdtime": {"type": "boolean"},
        "announce_frequency_seconds": {"type": "integer"},
        "max_wait_seconds": {"type": "integer"},
        "updated_by": {"type": ["string", "null"],
                       "description": "null: bawaan berkas pengaturan"},
        "updated_at": NULLABLE_DATETIME,
        "members": {"type": ["array", "null"], "items": _ref("QueueMember"),
                    "description": "null: Asterisk tidak dapat ditanya saat ini"}}),
    "QueueOverview": _all_required({
        "queues": {"type": "array", "items": _ref("QueueSettings")},
        "strategies": {"type": "array", "items": _all_required({
            "code": {"type": "string"}, "label": {"type": "string"}})}}),
    "OperatorAccount": _all_required({
        "username": {"type": "string"}, "display_name": {"type": "string"},
        "active": {"type": "boolean"}, "interface": _NULLABLE_TEXT,
        "skills": {"type": "object", "description": "keahlian -> tingkat 1-5"}}),
    "OperatorList": _all_required({
        "operators": {"type": "array", "items": _ref("OperatorAccount")},
        "skills": {"type": "array", "items": {"type": "string"},
                   "description": "Keahlian yang dipakai menu IVR yang berlaku"}}),
    "OperatorUpdate": _all_required({
        "operator": _ref("OperatorAccount"),
        "changes": {"type": "array", "items": _all_required({
            "action": {"type": "string", "enum": ["add", "remove", "penalty"]},
            "queue": {"type": "string"}, "penalty": {"type": "integer"}})},
        "phone_secret": {"anyOf": [_ref("PhoneSecret"), {"type": "null"}],
                         "description": "Sandi SIP baru telepon ini (hanya kali ini); null: "
                                        "telepon sudah punya sandi"}}),
    "PhoneSecret": _all_required({
        "interface": {"type": "string"},
        "username": {"type": "string", "description": "Nama pengguna REGISTER telepon"},
        "realm": {"type": "string"},
        "secret": {"type": "string", "description": "Hanya ditampilkan sekali"}}),
    "Recipient": _all_required({
        "recipient_id": {"type": "integer"}, "agency_code": {"type": "string"},
        "report_type": _NULLABLE_TEXT, "report_type_label": {"type": "string"},
        "name": {"type": "string"}, "role": {"type": "string"},
        "contact": {"type": "string"}, "active": {"type": "boolean"}}),
    "RecipientList": _all_required({
        "recipients": {"type": "array", "items": _ref("Recipient")}}),
    "DispatchTargets": _all_required({"targets": {"type": "array", "items": _all_required({
        "report_type": {"type": "string"}, "label": {"type": "string"},
        "seconds": _NULLABLE_INT})}}),
    "Shifts": _all_required({"shifts": {"type": "array", "items": _ref("Shift")}}),
    "Shift": _all_required({"name": _text(20), "start": {"type": "string",
                                                          "description": "JJ:MM"}}),
    "NewConfigVersion": _object({
        "document": {"type": "object"}, "note": _text(500),
        "based_on": {"type": ["integer", "null"], "minimum": 1},
        "drop_recordings": {"type": "array", "items": _text(40), "maxItems": 50},
    }, ("document",), "Versi baru (belum terbit); rekaman versi asal ikut, kecuali yang "
                      "disebut di drop_recordings."),
    "PublishVersion": _object({"note": _text(500)}, (),
                              "Terbitkan versi ini (juga untuk kembali ke versi lama)."),
    "QueueSettingsInput": _object({
        "strategy": _text(20),
        "ring_timeout_seconds": {"type": "integer"}, "retry_seconds": {"type": "integer"},
        "wrapup_seconds": {"type": "integer"}, "announce_position": {"type": "boolean"},
        "announce_holdtime": {"type": "boolean"},
        "announce_frequency_seconds": {"type": "integer"},
        "max_wait_seconds": {"type": "integer"},
    }, ("strategy", "ring_timeout_seconds", "retry_seconds", "wrapup_seconds",
        "announce_position", "announce_holdtime", "announce_frequency_seconds",
        "max_wait_seconds")),
    "OperatorAssignment": _object({
        "interface": _text(80),
        "skills": {"type": "object", "description": "keahlian -> tingkat 1-5"},
    }, ("interface", "skills")),
    "AgencyInput": _object({"code": _text(32), "name": _text(100), "active": {"type": "boolean"}},
                           ("code", "name")),
    "NewRecipient": _object({
        "agency": _text(32), "name": _text(200), "contact": _text(200), "role": _text(100),
        "report_type": {"type": ["string", "null"], "maxLength": 40},
    }, ("agency", "name", "contact")),
    "RecipientPatch": _object({"active": {"type": "boolean"}}, ("active",)),
    "DispatchTargetsInput": _object({"targets": {
        "type": "object", "description": "jenis laporan -> detik (60-86400); jenis yang tidak "
                                         "disebut tidak punya target"}}, ("targets",)),
    "ShiftsInput": _object({"shifts": {"type": "array", "items": _ref("Shift"), "maxItems": 6}},
                           ("shifts",)),
    # Request bodies.
    "CreateIncident": _object({"call_id": CALL_ID}, ("call_id",),
                              "Buka insiden baru, terisi dari data panggilan."),
    "IncidentPatch": _object({
        "report_type": {"type": "string", "maxLength": 40},
        "priority": {"type": ["integer", "string"]},
        "location_text": _text(500),
        "village_code": {"type": ["string", "null"], "maxLength": 20},
        "sub_district_code": {"type": ["string", "null"], "maxLength": 20},
        "latitude": {"type": ["number", "string", "null"]},
        "longitude": {"type": ["number", "string", "null"]},
        "description": _text(4000),
        "expected_version": VERSION,
    }, (), "Hanya kolom yang dikirim yang diubah; null mengosongkan."),
    "StatusChange": _object({"status": _text(40), "note": _text(1000),
                             "expected_version": VERSION}, ("status",)),
    "Escalation": _object({"level": _text(40), "reason": _text(1000),
                           "expected_version": VERSION}, ("level", "reason")),
    "LinkCall": _object({"call_id": CALL_ID, "expected_version": VERSION}, ("call_id",)),
    "Rating": _object({"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
                      ("rating",)),
    "NewDispatch": _object({"agency": _text(32), "note": _text(1000),
                            "expected_version": VERSION}, ("agency",)),
    "DispatchStep": _object({"state": _text(40)}, ("state",)),
    "JoinQueues": _object({"skills": {"type": "array", "items": _text(40), "maxItems": 20}},
                          ("skills",), "Masuk ke antrean keahlian-keahlian ini."),
    "Pause": _object({"reason": {"type": "string", "enum": ["break", "wrapup", "meeting"]}},
                     ("reason",), "Jeda di semua antrean: istirahat, wrap-up, atau rapat."),
    "NewCallLabel": _object({"label": _text(20), "note": _text(2000)}, ("label",),
                            "Label baru menggantikan label sebelumnya."),
}

_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}


class SchemaViolation(Invalid, ValueError):
    """A body does not match its schema; ``field`` names where (empty: the body itself)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def validate(value: object, schema: Schema, field: str = "") -> None:
    """Raise :class:`SchemaViolation` unless ``value`` matches ``schema`` (the keywords
    type, enum, maxLength, minimum, maximum, items, maxItems, properties, required,
    additionalProperties)."""
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is_type(value, name) for name in names):
            raise SchemaViolation(field, f"Isian {field or 'badan permintaan'} harus bertipe "
                                         f"{' atau '.join(names)}.")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolation(field, f"Isian {field} tidak dikenal.")
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        raise SchemaViolation(field, f"Isian {field} terlalu panjang (maksimal "
                                     f"{schema['maxLength']} karakter).")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise SchemaViolation(field, f"Isian {field} di luar batas.")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise SchemaViolation(field, f"Isian {field} terlalu banyak (maksimal "
                                         f"{schema['maxItems']}).")
        for item in value:
            validate(item, schema.get("items", {}), field)
    if isinstance(value, dict):
        properties: Mapping[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaViolation(name, f"Isian {name} wajib diisi.")
        for name, item in value.items():
            if name not in properties:
                if schema.get("additionalProperties", True) is False:
                    raise SchemaViolation(str(name)[:40],
                                          f"Kolom tidak dikenal: {str(name)[:40]!r}.")
                continue
            validate(item, properties[name], name)
