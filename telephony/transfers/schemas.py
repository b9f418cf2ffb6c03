"""The JSON schemas of transfers and conferences to agencies (telephony/transfers/http.py)."""

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

_MODES: Final = ["blind", "attended", "conference"]
_STEPS: Final = ["hand_over", "join", "cancel", "leave"]
_NULLABLE_NUMBER: Final[Schema] = {"type": ["number", "null"]}

SCHEMAS: Final[Mapping[str, Schema]] = {
    "AgencyNumber": all_required({
        "number_id": {"type": "integer"}, "agency_code": {"type": "string"},
        "agency_name": {"type": "string"},
        "label": {"type": "string", "description": "Pos atau wilayah, mis. Pos Damkar Kota"},
        "number": {"type": "string", "description": "Nomor yang dipanggil lewat operator "
                                                    "telepon (angka, boleh diawali +)"},
        "active": {"type": "boolean"}, "usable": {"type": "boolean"},
    }, "Nomor telepon instansi untuk alih panggilan dan konferensi."),
    "AgencyNumberList": all_required({"numbers": {"type": "array",
                                                  "items": ref("AgencyNumber")}}),
    "AgencyNumberInput": object_schema({
        "agency": text(32), "label": text(100), "number": text(30),
        "active": {"type": "boolean"},
    }, ("agency", "label", "number"), "Tambah nomor instansi (nomor yang sama untuk instansi "
                                      "yang sama: nama dan statusnya diubah)."),
    "TransferStep": all_required({"step": {"type": "string", "enum": _STEPS},
                                  "actor": {"type": "string"}, "at": DATETIME}),
    "TransferLeg": all_required({
        "leg_id": {"type": "integer"}, "call_id": {"type": "string"},
        "mode": {"type": "string", "enum": _MODES}, "mode_label": {"type": "string"},
        "number_id": {"type": "integer"}, "agency_code": {"type": "string"},
        "target": {"type": "string"}, "number": {"type": "string"},
        "requested_at": DATETIME, "rang_at": NULLABLE_DATETIME,
        "answered_at": NULLABLE_DATETIME, "ended_at": NULLABLE_DATETIME,
        "outcome": NULLABLE_TEXT, "outcome_label": NULLABLE_TEXT,
        "phase": {"type": "string"}, "phase_label": {"type": "string"},
        "steps": {"type": "array", "items": ref("TransferStep")},
        "allowed_steps": {"type": "array", "items": {"type": "string", "enum": _STEPS}},
        "dispatch_id": NULLABLE_INT,
    }),
    "DeskTransfers": all_required({
        "call_id": NULLABLE_TEXT, "talking": {"type": "boolean"},
        "incident_id": NULLABLE_INT,
        "modes": {"type": "array", "items": all_required({
            "mode": {"type": "string", "enum": _MODES}, "label": {"type": "string"}})},
        "steps": {"type": "array", "items": all_required({
            "step": {"type": "string", "enum": _STEPS}, "label": {"type": "string"}})},
        "legs": {"type": "array", "items": ref("TransferLeg")},
        "numbers": {"type": "array", "items": ref("AgencyNumber")},
    }, "Alih panggilan untuk panggilan di depan operator."),
    "StartTransfer": object_schema({
        "number_id": {"type": "integer", "minimum": 1},
        "mode": {"type": "string", "enum": _MODES},
        "dispatch_by_phone": {"type": "boolean",
                              "description": "Catat sebagai pengerahan lewat telepon"},
    }, ("number_id", "mode"), "Alihkan penelepon ke nomor instansi."),
    "TransferStarted": all_required({
        "leg": ref("TransferLeg"),
        "dispatch": {"oneOf": [ref("Dispatch"), {"type": "null"}]},
        "dispatch_error": NULLABLE_TEXT,
    }),
    "TransferStepInput": object_schema({"step": {"type": "string", "enum": _STEPS}},
                                       ("step",), "Langkah pada alih setelah bicara atau "
                                                  "konferensi."),
    "LegTimeline": all_required({"legs": {"type": "array", "items": all_required({
        "leg_id": {"type": "integer"}, "call_id": {"type": "string"},
        "kind": {"type": "string"}, "kind_label": {"type": "string"},
        "actor": {"type": "string"}, "operator": {"type": "string"},
        "target": {"type": "string"}, "number": {"type": "string"},
        "requested_at": DATETIME, "rang_at": NULLABLE_DATETIME,
        "answered_at": NULLABLE_DATETIME, "ended_at": NULLABLE_DATETIME,
        "ring_seconds": _NULLABLE_NUMBER, "talk_seconds": _NULLABLE_NUMBER,
        "outcome": NULLABLE_TEXT, "outcome_label": NULLABLE_TEXT,
        "ending": {"type": "string"},
        "steps": {"type": "array", "items": ref("TransferStep")},
    })}}, "Setiap kaki panggilan (alih, konferensi, panggilan balik) dari panggilan-panggilan "
          "insiden."),
}
