"""The JSON schema of a recording as the API shows it (recordings/http.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.web.schemas import (
    DATETIME,
    NULLABLE_DATETIME,
    NULLABLE_INT,
    NULLABLE_NUMBER,
    NULLABLE_TEXT,
    Schema,
    all_required,
)

SCHEMAS: Final[Mapping[str, Schema]] = {
    "Recording": all_required({
        "recording_id": {"type": "integer"}, "call_id": {"type": "string"},
        "kind": {"type": "string", "enum": ["mixed", "caller", "line", "callback", "consult"],
                 "description": "mixed: kedua pihak; caller/line: satu arah saja; callback: "
                                "panggilan balik operator ke penelepon; consult: operator "
                                "bicara dengan instansi saat alih setelah bicara atau "
                                "konferensi (lihat leg_id)"},
        "leg_id": {"type": ["integer", "null"],
                   "description": "Leg yang direkam (hanya untuk callback dan consult)"},
        "state": {"type": "string"},
        "started_at": DATETIME, "duration_seconds": NULLABLE_NUMBER,
        "silence_share": NULLABLE_NUMBER, "loudness_dbfs": NULLABLE_NUMBER,
        "format": NULLABLE_TEXT, "size_bytes": NULLABLE_INT, "sha256": NULLABLE_TEXT,
        "legal_hold": {"type": "boolean"}, "processed_at": NULLABLE_DATETIME,
        "expired_at": NULLABLE_DATETIME,
        "audio_url": {"type": ["string", "null"],
                      "description": "Ada bila rekaman tersimpan dan dapat diputar"},
        "unavailable_because": {"type": ["string", "null"],
                                "description": "Mengapa rekaman tidak dapat diputar, bila "
                                               "diketahui lebih dari statusnya (misalnya disk "
                                               "rekaman penuh selama panggilan)"},
    }),
}
