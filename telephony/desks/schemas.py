"""The JSON schemas of an operator's desk (telephony/desks/http.py): its calls, queues and
pauses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

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

# A call as the console shows it (``CallView``); the desk's call adds where it stands.
_CALL_VIEW: Final[Schema] = {
    "call_id": {"type": "string"}, "line": NULLABLE_TEXT,
    "caller_number": {"type": "string"},
    "caller_shown": {"type": "string", "description": "Penelepon seperti yang ditampilkan: "
                                                      "nomornya, atau (nomor disembunyikan)"},
    "arrived_at": NULLABLE_DATETIME,
    "answered_at": NULLABLE_DATETIME, "ended_at": NULLABLE_DATETIME,
    "ivr_choice": NULLABLE_TEXT, "ivr_outcome": NULLABLE_TEXT,
    "ivr_category": NULLABLE_TEXT, "ivr_category_label": NULLABLE_TEXT,
    "ivr_skill": NULLABLE_TEXT, "ivr_skill_label": NULLABLE_TEXT,
    "queue": NULLABLE_TEXT, "wait_seconds": NULLABLE_INT, "talk_seconds": NULLABLE_INT,
    "disposition": {"type": "string"}, "disposition_label": {"type": "string"},
    "prank_score": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                    "description": "Skor iseng sebelum antrean (0-1)"},
    "prank_reasons": {"type": "array", "items": {"type": "string"}},
    "queue_priority": NULLABLE_INT, "screening": NULLABLE_TEXT,
    "label": {"type": ["string", "null"],
              "enum": ["genuine", "prank", "silent", "accidental", "test", None]},
    "label_text": NULLABLE_TEXT, "incident_id": NULLABLE_INT,
}

SCHEMAS: Final[Mapping[str, Schema]] = {
    "CallView": all_required(_CALL_VIEW, "Panggilan seperti yang ditampilkan konsol, dengan "
                                          "skor iseng, label dan insidennya."),
    "DeskCall": all_required({
        **_CALL_VIEW,
        "state": {"type": "string", "enum": ["ringing", "talking", "ended"]},
        "state_label": {"type": "string"},
        "callback": {"oneOf": [all_required({
            "leg_id": {"type": "integer"}, "number": {"type": "string"},
            "answered_at": NULLABLE_DATETIME, "ended_at": NULLABLE_DATETIME}),
            {"type": "null"}],
            "description": "Panggilan balik yang sedang (atau terakhir) dilakukan operator "
                           "untuk panggilan ini; null untuk panggilan masuk"},
    }),
    "Desk": all_required({
        "operator": {"type": "string", "description": "Antarmuka Asterisk, mis. PJSIP/op1001"},
        "skills": {"type": "array", "items": all_required({
            "skill": {"type": "string"}, "skill_label": {"type": "string"},
            "level": {"type": "integer", "minimum": 1, "maximum": 5}})},
        "queues": {"type": "array", "items": all_required({
            "queue": {"type": "string"}, "state": {"type": "string"},
            "state_label": {"type": "string"}, "paused": {"type": "boolean"},
            "pause_reason": {"type": "string"}, "pause_label": {"type": "string"},
            "since": DATETIME})},
        "call": {"oneOf": [ref("DeskCall"), {"type": "null"}],
                 "description": "Panggilan yang berdering atau terakhir dijawab di meja ini"},
        "history": {"type": "array", "items": ref("CallView"),
                    "description": "Panggilan terakhir penelepon yang sama, terbaru dulu"},
        "related": {"type": "array", "items": ref("Incident"),
                    "description": "Insiden terbuka tempat panggilan ini dapat digabungkan "
                                   "(jenis yang sama dulu, lalu yang terbaru)"},
        "phone": {"oneOf": [all_required({
            "kind": {"type": "string", "enum": ["desk", "browser"]},
            "kind_label": {"type": "string"}, "lost_at": NULLABLE_DATETIME,
            "lost_queues": {"type": "array", "items": {"type": "string"}},
            "lost_reason": NULLABLE_TEXT,
        }), {"type": "null"}], "description": "Telepon meja yang mendaftar (REGISTER): jenisnya, "
                                              "dan kapan line mengeluarkannya dari antrean "
                                              "karena softphone terputus"},
    }),
    "Softphone": all_required({
        "interface": {"type": "string"}, "username": {"type": "string"},
        "realm": {"type": "string"},
        "secret": {"type": "string", "description": "Sandi baru, hanya dalam jawaban ini"},
        "ws_url": {"type": "string", "description": "WebSocket SIP Asterisk (ws:// atau wss://)"},
        "ice_networks": {"type": "array", "items": {"type": "string"},
                         "description": "Alamat yang boleh dipakai media (kosong: semua)"},
    }, "Kredensial softphone browser meja ini."),
    "QueueList": all_required({"queues": {"type": "array", "items": {"type": "string"}}}),
    "JoinQueues": object_schema({"skills": {"type": "array", "items": text(40), "maxItems": 20}},
                                ("skills",), "Masuk ke antrean keahlian-keahlian ini."),
    "Pause": object_schema({"reason": {"type": "string", "enum": ["break", "wrapup", "meeting"]}},
                           ("reason",), "Jeda di semua antrean: istirahat, wrap-up, atau rapat."),
}
