"""The JSON schemas of the account routes (telephony/accounts/http.py): logging in, the
session, the account, and the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from telephony.web.schemas import (
    DATETIME,
    NULLABLE_INT,
    Schema,
    all_required,
    object_schema,
    ref,
    text,
)

SCHEMAS: Final[Mapping[str, Schema]] = {
    "Account": all_required({
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "role": {"type": "string", "enum": ["operator", "supervisor", "admin"]},
        "role_label": {"type": "string"},
        "active": {"type": "boolean"},
    }),
    "AccountList": all_required({"accounts": {"type": "array", "items": ref("Account")}}),
    "AccountPatch": object_schema({
        "display_name": {**text(100), "description": "Nama tampilan baru"},
        "role": {"type": "string", "enum": ["operator", "supervisor", "admin"],
                 "description": "Peran baru; semua sesi akun berakhir (masuk lagi dengan "
                                "peran baru). Operator yang dijadikan supervisor tetap di "
                                "teleponnya, tanpa keahlian."},
    }),
    "AccountChange": all_required({
        "account": ref("Account"),
        "sessions_ended": {"type": "integer", "description": "Sesi akun yang diakhiri"},
        "skills_dropped": {"type": "object",
                           "description": "Keahlian yang dilepas (operator menjadi supervisor)"},
    }),
    "Login": object_schema({"username": text(64), "password": text(256)},
                           ("username", "password")),
    "Session": all_required({
        "token": {"type": ["string", "null"],
                  "description": "Token bearer; hanya pada jawaban login"},
        "csrf_token": {"type": "string",
                       "description": "Kirim di header X-CSRF-Token pada perubahan "
                                      "yang memakai cookie sesi"},
        "expires_at": DATETIME,
        "account": ref("Account"),
    }),
    "AuditEntry": all_required({
        "audit_id": {"type": "integer"}, "at": DATETIME, "actor": {"type": "string"},
        "action": {"type": "string"}, "object_type": {"type": "string"},
        "object_id": {"type": "string"}, "remote_address": {"type": "string"},
        "detail": {"type": "object"},
    }),
    "AuditList": all_required({
        "entries": {"type": "array", "items": ref("AuditEntry")},
        "next_before": {**NULLABLE_INT, "description":
                        "Kirim sebagai ?before= untuk halaman berikutnya (lebih lama); null "
                        "bila ini halaman terakhir"},
    }, "Satu halaman log audit, terbaru dahulu. Log hanya bertambah: halaman yang dibaca "
       "dengan before tidak bergeser oleh entri baru."),
}
