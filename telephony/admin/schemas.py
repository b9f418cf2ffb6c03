"""The JSON schemas of administration (telephony/admin/http.py): IVR and screening versions,
queues, operators, dispatch recipients and targets, site settings.
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

PHONE_SECRET: Final[Mapping[str, Schema]] = {
    "interface": {"type": "string"},
    "username": {"type": "string", "description": "Nama pengguna REGISTER telepon"},
    "realm": {"type": "string"},
    "secret": {"type": "string", "description": "Hanya ditampilkan sekali"}}
# A phone is stored even when Asterisk does not take the PJSIP reload (the secret is still
# shown, once); this says so.
PHONE_PENDING: Final[Schema] = {
    "anyOf": [{"type": "string"}, {"type": "null"}],
    "description": "null: Asterisk sudah memuat telepon ini; teks: tersimpan, belum "
                   "diterapkan (dimuat lagi saat line tersambung kembali ke Asterisk)"}

SCHEMAS: Final[Mapping[str, Schema]] = {
    "ConfigVersion": all_required({
        "version_id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["menu", "screening"]},
        "kind_label": {"type": "string"}, "note": {"type": "string"},
        "based_on": NULLABLE_INT, "created_by": {"type": "string"}, "created_at": DATETIME,
        "last_published_at": NULLABLE_DATETIME, "last_published_by": NULLABLE_TEXT,
        "state": {"type": "string", "enum": ["live", "published", "draft"],
                  "description": "live: berjalan sekarang; published: pernah terbit; "
                                 "draft: belum pernah terbit"},
        "state_label": {"type": "string"},
    }),
    "ConfigVersionList": all_required({
        "versions": {"type": "array", "items": ref("ConfigVersion")},
        "live_version_id": NULLABLE_INT}),
    "PromptRecording": all_required({
        "prompt": {"type": "string"}, "sha256": {"type": "string"},
        "filename": {"type": "string"}, "uploaded_by": {"type": "string"},
        "uploaded_at": DATETIME}),
    "ConfigVersionDetail": all_required({
        "version": ref("ConfigVersion"),
        "document": {"type": "object", "description": "Menu IVR (ivr/menu.json) atau "
                                                      "konfigurasi penyaringan (ScoreConfig)"},
        "recordings": {"type": "array", "items": ref("PromptRecording")}}),
    "MenuTreeNode": all_required({
        "label": {"type": "string"}, "prompt": NULLABLE_TEXT, "text": NULLABLE_TEXT,
        "children": {"type": "array", "items": ref("MenuTreeNode")}}),
    "PromptPreview": all_required({
        "name": {"type": "string"}, "text": {"type": "string"}, "recorded": {"type": "boolean"},
        "seconds": {"type": "number"}, "audio_url": {"type": "string"}}),
    "ConfigPreview": all_required({
        "version": ref("ConfigVersion"),
        "tree": {"type": "array", "items": ref("MenuTreeNode")},
        "prompts": {"type": "array", "items": ref("PromptPreview")},
        "settings": {"type": "object", "description": "Semua pengaturan penyaringan"}}),
    "QueueMember": all_required({
        "interface": {"type": "string"}, "name": {"type": "string"},
        "penalty": {"type": "integer"}, "paused": {"type": "boolean"},
        "pause_reason": {"type": "string"}, "dynamic": {"type": "boolean"},
        "in_call": {"type": "boolean"}}),
    "QueueSettings": all_required({
        "queue": {"type": "string"}, "strategy": {"type": "string"},
        "strategy_label": {"type": "string"},
        "ring_timeout_seconds": {"type": "integer"}, "retry_seconds": {"type": "integer"},
        "wrapup_seconds": {"type": "integer"}, "announce_position": {"type": "boolean"},
        "announce_holdtime": {"type": "boolean"},
        "announce_frequency_seconds": {"type": "integer"},
        "max_wait_seconds": {"type": "integer"},
        "updated_by": {"type": ["string", "null"],
                       "description": "null: bawaan berkas pengaturan"},
        "updated_at": NULLABLE_DATETIME,
        "members": {"type": ["array", "null"], "items": ref("QueueMember"),
                    "description": "null: Asterisk tidak dapat ditanya saat ini"}}),
    "QueueOverview": all_required({
        "queues": {"type": "array", "items": ref("QueueSettings")},
        "strategies": {"type": "array", "items": all_required({
            "code": {"type": "string"}, "label": {"type": "string"}})}}),
    "OperatorAccount": all_required({
        "username": {"type": "string"}, "display_name": {"type": "string"},
        "active": {"type": "boolean"}, "interface": NULLABLE_TEXT,
        "skills": {"type": "object", "description": "keahlian -> tingkat 1-5"},
        "phone": {"type": ["string", "null"], "enum": ["desk", "browser", None],
                  "description": "Telepon meja, atau softphone di browser"},
        "revision": {"type": "string",
                     "description": "Sidik telepon dan keahlian ini; kirim kembali sebagai "
                                    "expected_revision saat mengubahnya"}}),
    "OperatorList": all_required({
        "operators": {"type": "array", "items": ref("OperatorAccount")},
        "skills": {"type": "array", "items": {"type": "string"},
                   "description": "Keahlian yang dipakai menu IVR yang berlaku"}}),
    "OperatorUpdate": all_required({
        "operator": ref("OperatorAccount"),
        "changes": {"type": "array", "items": all_required({
            "action": {"type": "string", "enum": ["add", "remove", "penalty"]},
            "queue": {"type": "string"}, "penalty": {"type": "integer"}})},
        "phone_secret": {"anyOf": [ref("PhoneSecret"), {"type": "null"}],
                         "description": "Sandi SIP baru telepon ini (hanya kali ini); null: "
                                        "telepon sudah punya sandi"},
        "phone_pending": PHONE_PENDING}),
    "PhoneSecret": all_required(PHONE_SECRET),
    "RenewedPhoneSecret": all_required({**PHONE_SECRET, "phone_pending": PHONE_PENDING}),
    "Recipient": all_required({
        "recipient_id": {"type": "integer"}, "agency_code": {"type": "string"},
        "report_type": NULLABLE_TEXT, "report_type_label": {"type": "string"},
        "name": {"type": "string"}, "role": {"type": "string"},
        "contact": {"type": "string"}, "active": {"type": "boolean"}}),
    "RecipientList": all_required({
        "recipients": {"type": "array", "items": ref("Recipient")}}),
    "DispatchTargets": all_required({"targets": {"type": "array", "items": all_required({
        "report_type": {"type": "string"}, "label": {"type": "string"},
        "seconds": NULLABLE_INT})}}),
    "Shifts": all_required({"shifts": {"type": "array", "items": ref("Shift")}}),
    "Shift": all_required({"name": text(20), "start": {"type": "string",
                                                          "description": "JJ:MM"}}),
    "NewConfigVersion": object_schema({
        "document": {"type": "object"}, "note": text(500),
        "based_on": {"type": ["integer", "null"], "minimum": 1},
        "drop_recordings": {"type": "array", "items": text(40), "maxItems": 50},
    }, ("document",), "Versi baru (belum terbit); rekaman versi asal ikut, kecuali yang "
                      "disebut di drop_recordings."),
    "PublishVersion": object_schema({
        "note": text(500),
        "expected_live_version_id": {
            "type": "integer", "minimum": 1,
            "description": "Versi yang berjalan menurut klien; ditolak (409) bila admin lain "
                           "sudah menerbitkan versi lain sejak itu. Tanpa isian ini: tidak "
                           "diperiksa."}}, (),
                                    "Terbitkan versi ini (juga untuk kembali ke versi lama)."),
    "QueueSettingsInput": object_schema({
        "strategy": text(20),
        "ring_timeout_seconds": {"type": "integer"}, "retry_seconds": {"type": "integer"},
        "wrapup_seconds": {"type": "integer"}, "announce_position": {"type": "boolean"},
        "announce_holdtime": {"type": "boolean"},
        "announce_frequency_seconds": {"type": "integer"},
        "max_wait_seconds": {"type": "integer"},
        "expected_updated_at": {
            **NULLABLE_DATETIME,
            "description": "updated_at antrean yang dibaca klien (null: masih bawaan); "
                           "perubahan ditolak (409) bila antrean diubah sejak itu. Tanpa "
                           "isian ini: tidak diperiksa."},
    }, ("strategy", "ring_timeout_seconds", "retry_seconds", "wrapup_seconds",
        "announce_position", "announce_holdtime", "announce_frequency_seconds",
        "max_wait_seconds")),
    "OperatorAssignment": object_schema({
        "interface": text(80),
        "skills": {"type": "object", "description": "keahlian -> tingkat 1-5"},
        "phone": {"type": "string", "enum": ["desk", "browser"],
                  "description": "Yang berdering di meja: telepon meja (bawaan untuk meja "
                                 "baru) atau softphone di browser; tanpa ini: seperti semula"},
        "expected_revision": {**text(32), "description": (
            "revision akun yang dibaca klien; ditolak (409) bila telepon atau keahliannya "
            "diubah sejak itu. Tanpa isian ini: tidak diperiksa.")},
    }, ("interface", "skills")),
    "AgencyInput": object_schema({"code": text(32), "name": text(100),
                                  "active": {"type": "boolean"}}, ("code", "name")),
    "NewRecipient": object_schema({
        "agency": text(32), "name": text(200), "contact": text(200), "role": text(100),
        "report_type": {"type": ["string", "null"], "maxLength": 40},
    }, ("agency", "name", "contact")),
    "RecipientPatch": object_schema({"active": {"type": "boolean"}}, ("active",)),
    "DispatchTargetsInput": object_schema({"targets": {
        "type": "object", "description": "jenis laporan -> detik (60-86400); jenis yang tidak "
                                         "disebut tidak punya target"}}, ("targets",)),
    "ShiftsInput": object_schema({"shifts": {"type": "array", "items": ref("Shift"),
                                             "maxItems": 6}}, ("shifts",)),
}
