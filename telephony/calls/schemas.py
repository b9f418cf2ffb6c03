"""The JSON schemas of the call archive's routes (telephony/calls/http.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.web.schemas import (
    NULLABLE_DATETIME,
    NULLABLE_INT,
    NULLABLE_TEXT,
    Schema,
    all_required,
    ref,
)

SCHEMAS: Final[Mapping[str, Schema]] = {
    "Call": all_required({
        "call_id": {"type": "string"}, "line": NULLABLE_TEXT,
        "caller_number": {"type": "string"}, "arrived_at": NULLABLE_DATETIME,
        "shift_day": {"type": ["string", "null"], "format": "date"},
        "shift_name": NULLABLE_TEXT, "ivr_choice": NULLABLE_TEXT,
        "ivr_outcome": NULLABLE_TEXT, "ivr_category": NULLABLE_TEXT,
        "ivr_skill": NULLABLE_TEXT, "queue": NULLABLE_TEXT,
        "queue_position": NULLABLE_INT, "answered_queue": NULLABLE_TEXT,
        "operator": NULLABLE_TEXT, "wait_seconds": NULLABLE_INT,
        "talk_seconds": NULLABLE_INT, "abandon_original_position": NULLABLE_INT,
        "abandon_final_position": NULLABLE_INT, "hangup_cause": NULLABLE_INT,
        "hangup_cause_text": NULLABLE_TEXT, "ended_at": NULLABLE_DATETIME,
        "disposition": {"type": "string"},
    }),
    "CallList": all_required({"calls": {"type": "array", "items": ref("Call")}}),
    "CallDetail": all_required({
        "call": ref("Call"),
        "incident_id": NULLABLE_INT,
        "recordings": {"type": "array", "items": ref("Recording")},
    }),
}
