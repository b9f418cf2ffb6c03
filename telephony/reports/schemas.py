"""The JSON schemas of the supervisor's reports (telephony/reports/http.py); the wallboard
shows their ``Figures`` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.web.schemas import (
    DATETIME,
    NULLABLE_NUMBER,
    NULLABLE_TEXT,
    Schema,
    all_required,
    ref,
)

_ENDS: Final = {**DATETIME, "description": "Akhir sif terakhir periode (hari operasional)"}
_COMPLETE: Final = {"type": "boolean",
                    "description": "false: dibuat sebelum periode berakhir, angka sementara"}
_INCIDENTS: Final = ("Insiden dari panggilan hari itu, tanpa yang ditandai laporan iseng atau "
                     "dibatalkan")

SCHEMAS: Final[Mapping[str, Schema]] = {
    "Share": all_required({
        "count": {"type": "integer"}, "of": {"type": "integer"},
        "percent": {**NULLABLE_NUMBER, "description": "null bila tidak ada yang dihitung"},
    }),
    "Figures": all_required({
        "calls": {"type": "integer", "description": "Semua panggilan masuk"},
        "offered": {"type": "integer", "description": "Sampai di antrean"},
        "answered": {"type": "integer"}, "abandoned": {"type": "integer"},
        "service_levels": {"type": "array", "items": all_required({
            "seconds": {"type": "integer"}, "count": {"type": "integer"},
            "of": {"type": "integer"}, "percent": NULLABLE_NUMBER}),
            "description": "Porsi dijawab dalam 10 dan 20 detik sejak masuk antrean"},
        "mean_wait_seconds": NULLABLE_NUMBER, "p90_wait_seconds": NULLABLE_NUMBER,
        "mean_talk_seconds": NULLABLE_NUMBER, "mean_wrapup_seconds": NULLABLE_NUMBER,
        "prank_share": {**ref("Share"),
                        "description": "Berlabel iseng atau diam, dari yang berlabel"},
    }),
    "ShiftReport": all_required({
        "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
        "shift": NULLABLE_TEXT, "generated_at": DATETIME, "ends_at": _ENDS,
        "complete": _COMPLETE, "total": ref("Figures"),
        "shifts": {"type": "array", "items": all_required({
            "day": {"type": "string", "format": "date"}, "shift": {"type": "string"},
            "figures": ref("Figures")})},
        "operators": {"type": "array", "items": all_required({
            "operator": {"type": "string", "description": (
                "Nama pengguna akun yang bekerja di telepon itu saat panggilan berdering atau "
                "dijawab; antarmuka telepon bila akunnya tidak tercatat")},
            "name": {"type": "string"},
            "figures": ref("Figures")})},
        "queues": {"type": "array", "items": all_required({
            "queue": {"type": "string"}, "figures": ref("Figures")})},
    }),
    "DailySummary": all_required({
        "day": {"type": "string", "format": "date"}, "generated_at": DATETIME,
        "ends_at": _ENDS, "complete": _COMPLETE, "figures": ref("Figures"),
        "lines": {"type": "array", "items": all_required({
            "line": {"type": "string"}, "calls": {"type": "integer"}})},
        "categories": {"type": "array", "items": all_required({
            "category": NULLABLE_TEXT, "category_label": {"type": "string"},
            "calls": {"type": "integer"}})},
        "report_types": {"type": "array", "items": all_required({
            "report_type": NULLABLE_TEXT, "report_type_label": {"type": "string"},
            "calls": {"type": "integer"}, "incidents": {"type": "integer"}}),
            "description": _INCIDENTS},
        "villages": {"type": "array", "items": all_required({
            "village_code": NULLABLE_TEXT, "village_name": NULLABLE_TEXT,
            "sub_district_name": NULLABLE_TEXT, "calls": {"type": "integer"},
            "incidents": {"type": "integer"}}), "description": _INCIDENTS},
        "labels": {"type": "array", "items": all_required({
            "label": NULLABLE_TEXT, "label_text": {"type": "string"},
            "calls": {"type": "integer"}})},
        "ratings": all_required({
            "counts": {"type": "array", "items": all_required({
                "rating": {"type": "integer"}, "count": {"type": "integer"}})},
            "total": {"type": "integer"}, "mean": NULLABLE_NUMBER}),
    }),
}
