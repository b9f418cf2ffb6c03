"""The JSON schemas of the call label routes (telephony/screening/http.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.web.schemas import DATETIME, Schema, all_required, object_schema, ref, text

SCHEMAS: Final[Mapping[str, Schema]] = {
    "CallLabel": all_required({
        "label_id": {"type": "integer"}, "call_id": {"type": "string"},
        "label": {"type": "string",
                  "enum": ["genuine", "prank", "silent", "accidental", "test"]},
        "label_text": {"type": "string"},
        "labelled_by": {"type": "string"}, "labelled_at": DATETIME, "note": {"type": "string"},
    }),
    "CallLabelList": all_required({
        "labels": {"type": "array", "items": ref("CallLabel"),
                   "description": "Terlama dulu; yang terakhir berlaku"}}),
    "NewCallLabel": object_schema({"label": text(20), "note": text(2000)}, ("label",),
                                  "Label baru menggantikan label sebelumnya."),
}
