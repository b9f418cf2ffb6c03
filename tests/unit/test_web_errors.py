"""Each feature's refusal answers with the status, code, field and headers it always had."""

from __future__ import annotations

from datetime import timedelta

import pytest

from recordings.audio import BadAudio
from recordings.domain import RecordingNameError
from recordings.library import RecordingNotFound, RecordingUnavailable
from telephony.accounts.model import (
    AccountError,
    AccountExists,
    AccountNotFound,
    InvalidAccountInput,
    LoginRefused,
    LoginThrottled,
)
from telephony.admin.errors import AdminError, ApplyFailed, ConfigNotFound, InvalidConfig
from telephony.core.errors import SiagaError
from telephony.core.storage import StoredFileError
from telephony.db.connection import DatabaseUnavailable
from telephony.desks.operators import OperatorError
from telephony.desks.service import (
    DeskConflict,
    DeskError,
    DeskUnavailable,
    InvalidDeskInput,
    NoDesk,
)
from telephony.reports.model import InvalidPeriod
from telephony.screening.store import InvalidLabel, LabelError, UnknownCall
from telephony.settings import SettingsError
from telephony.web.errors import ApiError, api_error
from telephony.web.schemas import SchemaViolation

_DB = "Basis data sedang tidak tersedia. Coba lagi sebentar lagi."

# (error, status, code, message, field, headers, logged)
REFUSALS = [
    (AccountError("m"), 400, "account_error", "m", None, {}, False),
    (InvalidAccountInput("username", "m"), 422, "invalid", "m", "username", {}, False),
    (AccountExists("bob"), 409, "account_exists", "Akun bob sudah ada.", None, {}, False),
    (AccountNotFound("bob"), 404, "not_found", "Akun bob tidak ditemukan.", None, {}, False),
    (LoginRefused(), 401, "login_refused", "Nama pengguna atau kata sandi salah.", None, {},
     True),
    (LoginThrottled(timedelta(seconds=30.2)), 429, "login_throttled",
     "Terlalu banyak percobaan masuk yang gagal. Coba lagi dalam 31 detik.", None,
     {"Retry-After": "31"}, True),
    (AdminError("m", "f"), 400, "admin_error", "m", "f", {}, False),
    (InvalidConfig("m", "f"), 422, "invalid", "m", "f", {}, False),
    (ConfigNotFound("m"), 404, "not_found", "m", None, {}, False),
    (ApplyFailed("m"), 502, "apply_failed", "m", None, {}, False),
    (DeskError("m"), 400, "desk_error", "m", None, {}, False),
    (InvalidDeskInput("skill", "m"), 422, "invalid", "m", "skill", {}, False),
    (NoDesk("bob"), 409, "no_desk", NoDesk("bob").message, None, {}, False),
    (DeskConflict("m"), 409, "desk_conflict", "m", None, {}, False),
    (DeskUnavailable(), 503, "asterisk_unavailable", DeskUnavailable().message, None,
     {"Retry-After": "5"}, True),
    (LabelError("m"), 400, "label_error", "m", None, {}, False),
    (UnknownCall("1.2"), 404, "not_found", "Panggilan 1.2 tidak ditemukan.", None, {}, False),
    (InvalidLabel("m"), 422, "invalid", "m", "label", {}, False),
    (RecordingNotFound(3), 404, "not_found", "Rekaman #3 tidak ditemukan.", None, {}, False),
    (RecordingUnavailable("m"), 404, "recording_unavailable", "m", None, {}, False),
    (InvalidPeriod("from", "m"), 422, "invalid", "m", "from", {}, False),
    (SchemaViolation("a.b", "m"), 422, "invalid", "m", "a.b", {}, False),
    (SchemaViolation("", "m"), 422, "invalid", "m", None, {}, False),
    (DatabaseUnavailable("refused"), 503, "unavailable", _DB, None, {"Retry-After": "5"}, False),
]


@pytest.mark.parametrize(("error", "status", "code", "message", "field", "headers", "logged"),
                         REFUSALS, ids=[type(r[0]).__name__ for r in REFUSALS])
def test_refusals_keep_their_answer(error: SiagaError, status: int, code: str, message: str,
                                    field: str | None, headers: dict[str, str],
                                    logged: bool) -> None:
    answer = api_error(error)
    assert answer is not None
    assert (answer.status, answer.code, answer.message, answer.field or None,
            dict(answer.headers), answer.logged) == (status, code, message, field, headers,
                                                     logged)


@pytest.mark.parametrize("error", [
    OperatorError("x"), RecordingNameError("x"), StoredFileError("x"), SettingsError("x"),
    BadAudio("x"), SiagaError("x"),
], ids=lambda error: type(error).__name__)
def test_our_own_faults_are_not_refusals(error: SiagaError) -> None:
    assert api_error(error) is None


def test_database_outage_keeps_the_driver_reason_for_the_log() -> None:
    assert str(DatabaseUnavailable("connection refused")) == "connection refused"


def test_api_error_passes_through() -> None:
    error = ApiError(403, "csrf", "m", headers={"X": "1"})
    assert api_error(error) is error
    assert isinstance(error, SiagaError)
