"""The JSON schemas of the call-backs (telephony/callbacks/http.py): the worklist, a call-back
placed, a closing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.callbacks.model import MAX_NOTE, CallbackReason, ClosureReason, CutShort
from telephony.calls.legs import LegOutcome
from telephony.web.schemas import (
    DATETIME,
    NULLABLE_DATETIME,
    NULLABLE_INT,
    NULLABLE_TEXT,
    Schema,
    all_required,
    object_schema,
    ref,
    text,
)

_REASON: Final[Schema] = {"type": "string", "enum": list(CallbackReason.labels())}
_OUTCOME: Final[Schema] = {"type": ["string", "null"],
                           "enum": [*LegOutcome.labels(), None]}

SCHEMAS: Final[Mapping[str, Schema]] = {
    "CallbackAttempt": all_required({
        "leg_id": {"type": "integer"}, "call_id": {"type": "string"},
        "number": {"type": "string"}, "actor": {"type": "string"},
        "requested_at": DATETIME,
        "rang_at": {"type": ["string", "null"], "format": "date-time",
                    "description": "Penelepon mulai ditelepon; null bila tidak pernah (telepon "
                                   "operator tidak mengangkat, atau Asterisk menolak)"},
        "answered_at": NULLABLE_DATETIME,
        "ended_at": NULLABLE_DATETIME, "outcome": _OUTCOME, "outcome_label": NULLABLE_TEXT,
        "status": {"type": "string"},
        "cut": {"type": ["string", "null"], "enum": [*CutShort.labels(), None],
                "description": "Diangkat, tetapi tidak sampai ke penelepon (terputus, terlalu "
                               "singkat, atau ditandai operator): penelepon tetap di daftar"},
        "cut_label": NULLABLE_TEXT,
        "unreached_by": {"type": ["string", "null"],
                         "description": "Yang menandai tidak tersambung dengan penelepon"},
    }, "Satu panggilan balik yang sudah dicoba"),
    "CallbackEntry": all_required({
        "call_id": {"type": "string", "description": "Panggilan terakhir penelepon ini: "
                                                    "panggilan balik dan penutupan dicatat "
                                                    "padanya"},
        "caller_number": {"type": "string"},
        "number": {"type": ["string", "null"],
                   "description": "Nomor yang dihubungi; null bila tidak bisa dihubungi"},
        "possible": {"type": "boolean"},
        "reason": _REASON, "reason_label": {"type": "string"},
        "waiting_since": DATETIME, "incident_id": NULLABLE_INT,
        "calls": {"type": "array", "items": all_required({
            "call_id": {"type": "string"}, "line": NULLABLE_TEXT, "arrived_at": DATETIME,
            "ended_at": NULLABLE_DATETIME, "reason": _REASON,
            "reason_label": {"type": "string"}})},
        "attempts": {"type": "array", "items": ref("CallbackAttempt")},
        "ringing": {"type": "boolean", "description": "Sedang dihubungi kembali saat ini"},
    }),
    "CallbackList": all_required({
        "generated_at": DATETIME,
        "window_hours": {"type": "number"},
        "waiting": {"type": "integer", "description": "Penelepon yang bisa dihubungi kembali"},
        "not_possible": {"type": "integer",
                         "description": "Nomor disembunyikan atau tidak valid"},
        "oldest_at": NULLABLE_DATETIME,
        "closure_reasons": {"type": "object", "additionalProperties": {"type": "string"}},
        "entries": {"type": "array", "items": ref("CallbackEntry")},
        "reached": {"type": "array", "items": ref("CallbackAttempt"),
                    "description": "Panggilan balik terakhir yang tersambung dengan penelepon "
                                   "(terbaru dahulu): yang ternyata kotak suara atau "
                                   "pengumuman dapat ditandai tidak tersambung"},
    }),
    "CallbackLeg": all_required({
        "leg_id": {"type": "integer"}, "call_id": {"type": "string"},
        "incident_id": NULLABLE_INT, "operator": {"type": "string"},
        "actor": {"type": "string"}, "number": {"type": "string"},
        "requested_at": DATETIME, "rang_at": NULLABLE_DATETIME,
        "answered_at": NULLABLE_DATETIME, "ended_at": NULLABLE_DATETIME,
        "outcome": _OUTCOME, "outcome_label": NULLABLE_TEXT, "status": {"type": "string"},
        "unreached_by": NULLABLE_TEXT, "unreached_at": NULLABLE_DATETIME,
    }, "Panggilan balik yang dikirim ke Asterisk: telepon operator berdering dahulu"),
    "CloseCallback": object_schema({
        "reason": {"type": "string", "enum": list(ClosureReason.labels())},
        "note": text(MAX_NOTE),
    }, ("reason",), "Tutup entri dengan alasan (penyelia)."),
    "CallbackClosure": all_required({
        "call_id": {"type": "string"}, "reason": {"type": "string"},
        "reason_label": {"type": "string"}, "note": {"type": "string"},
        "calls": {"type": "array", "items": {"type": "string"}},
    }),
    "CallbackBacklog": {
        "type": ["object", "null"],
        "properties": {"waiting": {"type": "integer"}, "not_possible": {"type": "integer"},
                       "oldest_at": NULLABLE_DATETIME,
                       "oldest_seconds": {"type": ["number", "null"]}},
        "required": ["waiting", "not_possible", "oldest_at", "oldest_seconds"],
        "additionalProperties": False,
        "description": "Daftar panggilan balik: yang menunggu dan yang terlama",
    },
}
