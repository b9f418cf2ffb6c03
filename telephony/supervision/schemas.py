"""The JSON schemas of listening in (telephony/supervision/http.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.supervision.model import SpyMode
from telephony.web.schemas import CALL_ID, Schema, all_required, object_schema, text

_MODE: Final[Schema] = {"type": "string", "enum": [mode.value for mode in SpyMode],
                        "description": "listen (dengarkan), whisper (bisikkan: hanya operator "
                                       "mendengar supervisor), barge (sela: operator dan "
                                       "penelepon mendengar supervisor)"}

SCHEMAS: Final[Mapping[str, Schema]] = {
    "SupervisionRequest": object_schema({
        "operator": {**text(80), "description": "Antarmuka telepon operator, mis. PJSIP/op2001"},
        "mode": _MODE,
        "call_id": {**CALL_ID, "description": "Bila diisi: hanya bila operator sedang "
                                              "menjawab panggilan ini"},
    }, ("operator", "mode"), "Dengarkan, bisikkan, atau sela panggilan yang sedang dijawab "
                             "operator; telepon supervisor berdering."),
    "SupervisionStarted": all_required({
        "mode": _MODE, "mode_label": {"type": "string"},
        "operator": {"type": "string"}, "operator_username": {"type": "string"},
        "call_id": {"type": "string"},
        "phone": {"type": "string", "description": "Telepon supervisor yang akan berdering"},
        "message": {"type": "string"},
    }, "Asterisk menerima perintah; telepon supervisor akan berdering. Tercatat di log audit."),
}
