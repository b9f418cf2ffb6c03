"""The JSON schema of the supervisor's wallboard (telephony/wallboard/http.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.web.schemas import (
    DATETIME,
    NULLABLE_DATETIME,
    NULLABLE_NUMBER,
    NULLABLE_TEXT,
    Schema,
    all_required,
    ref,
)

SCHEMAS: Final[Mapping[str, Schema]] = {
    "Wallboard": all_required({
        "generated_at": DATETIME,
        "connected": {"type": "boolean", "description": "Tersambung ke Asterisk (AMI)"},
        "queues": {"type": "array", "items": all_required({
            "queue": {"type": "string"}, "members": {"type": "integer"},
            "available": {"type": "integer"}, "longest_wait_seconds": NULLABLE_NUMBER,
            "callers": {"type": "array", "items": all_required({
                "position": {"type": "integer"}, "joined_at": DATETIME,
                "wait_seconds": {"type": "number"}, "line": NULLABLE_TEXT,
                "category": NULLABLE_TEXT, "category_label": NULLABLE_TEXT,
                "node": {"type": ["string", "null"],
                         "description": "Node klaster tempat penelepon menunggu (null: satu "
                                        "node)"}})}})},
        "operators": {"type": "array", "items": all_required({
            "operator": {"type": "string"}, "name": {"type": "string"},
            "state": {"type": "string", "enum": ["idle", "ringing", "talking", "wrapup",
                                                 "paused", "unavailable"]},
            "state_label": {"type": "string"}, "reason": {"type": "string"},
            "reason_label": {"type": "string"}, "since": DATETIME,
            "queues": {"type": "array", "items": {"type": "string"}}})},
        "operator_counts": all_required({state: {"type": "integer"} for state in (
            "idle", "ringing", "talking", "wrapup", "paused", "unavailable")}),
        "longest_wait": {"type": ["object", "null"], "properties": {
            "queue": {"type": "string"}, "wait_seconds": {"type": "number"}},
            "required": ["queue", "wait_seconds"], "additionalProperties": False},
        "shift": {"type": ["object", "null"], "properties": {
            "day": {"type": "string", "format": "date"}, "name": {"type": "string"},
            "started_at": DATETIME, "ends_at": DATETIME, "figures": ref("Figures")},
            "required": ["day", "name", "started_at", "ends_at", "figures"],
            "additionalProperties": False},
        "today": {"type": ["object", "null"], "description":
                  "Hari operasional: sejak awal sif pertama (setelah tengah malam masih hari "
                  "operasional kemarin)", "properties": {
            "day": {"type": "string", "format": "date"}, "started_at": DATETIME,
            "figures": ref("Figures")},
            "required": ["day", "started_at", "figures"], "additionalProperties": False},
        "counters_at": NULLABLE_DATETIME,
        "counters_stale": {"type": "boolean",
                           "description": "Basis data tidak terjangkau: nama operator, insiden "
                                          "lewat target dan panggilan balik dari refreshed_at "
                                          "(angka sif dan hari ini tetap dari Asterisk)"},
        "refreshed_at": {**NULLABLE_DATETIME,
                         "description": "Terakhir kali bagian dari basis data terbaca utuh"},
        "callbacks": ref("CallbackBacklog"),
        "overdue_incidents": {"type": "array", "items": all_required({
            "incident_id": {"type": "integer"}, "report_type": {"type": "string"},
            "report_type_label": {"type": "string"}, "priority": {"type": "integer"},
            "priority_label": {"type": "string"}, "status": {"type": "string"},
            "status_label": {"type": "string"}, "due_at": DATETIME,
            "overdue_seconds": {"type": "integer"}})},
    }),
}
