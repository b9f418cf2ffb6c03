"""Refusals as HTTP: the one place that turns our exceptions into statuses.

Every refused request is answered ``{"error": {"code", "message", "field"}}`` (the message in
Bahasa Indonesia, for the person at the screen) and logged as one line. Services raise their
own exceptions and know nothing of HTTP; this module maps them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

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
from telephony.db.connection import DatabaseUnavailable
from telephony.desks.service import (
    DeskConflict,
    DeskError,
    DeskUnavailable,
    InvalidDeskInput,
    NoDesk,
)
from telephony.reports.model import InvalidPeriod
from telephony.screening.store import InvalidLabel, LabelError, UnknownCall
from telephony.web.routing import SESSION, Handler
from telephony.web.schemas import SchemaViolation

log = logging.getLogger("telephony.web")


class ApiError(Exception):
    """A refusal the web layer answers with ``status`` and a JSON error body."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None,
        headers: Mapping[str, str] | None = None, logged: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.logged = logged  # the service already logged this refusal in its own line


# aiohttp's own refusals (no such path, wrong method ...), in our words.
_HTTP_TEXT: Final[Mapping[int, tuple[str, str]]] = {
    400: ("bad_request", "Permintaan tidak sah."),
    404: ("not_found", "Alamat tidak ditemukan."),
    405: ("method_not_allowed", "Metode tidak diizinkan untuk alamat ini."),
    413: ("too_large", "Permintaan terlalu besar."),
    416: ("range_not_satisfiable", "Rentang byte yang diminta di luar berkas."),
}

_CONFLICTS: Final = (AccountExists, NoDesk, DeskConflict)


def api_error(exc: BaseException) -> ApiError | None:
    """The HTTP refusal for one of our exceptions; ``None`` for anything else (a bug: it
    surfaces as a 500 with its traceback in the log)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SiagaError):
        if not exc.is_refusal:
            return None
        return ApiError(exc.status, exc.code, exc.message, field=exc.field or None,
                        headers=exc.headers, logged=exc.logged)
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        code, message = _HTTP_TEXT.get(exc.status, ("http_error", exc.reason))
        return ApiError(exc.status, code, message)
    if isinstance(exc, InvalidAccountInput | SchemaViolation | InvalidDeskInput | InvalidPeriod):
        return ApiError(422, "invalid", exc.message, field=exc.field or None)
    if isinstance(exc, InvalidLabel):
        return ApiError(422, "invalid", exc.message, field="label")
    if isinstance(exc, AccountNotFound | UnknownCall):
        return ApiError(404, "not_found", exc.message)
    if isinstance(exc, RecordingNotFound):
        return ApiError(404, "not_found", exc.message)
    if isinstance(exc, RecordingUnavailable):
        return ApiError(404, "recording_unavailable", exc.message)
    if isinstance(exc, _CONFLICTS):
        return ApiError(409, exc.code, exc.message)
    if isinstance(exc, LoginRefused):
        return ApiError(401, exc.code, exc.message, logged=True)
    if isinstance(exc, LoginThrottled):
        return ApiError(429, exc.code, exc.message, logged=True,
                        headers={"Retry-After": str(exc.retry_after_seconds)})
    if isinstance(exc, AdminError):
        status = {InvalidConfig: 422, ConfigNotFound: 404, ApplyFailed: 502}.get(type(exc), 400)
        return ApiError(status, exc.code, exc.message, field=exc.field or None)
    if isinstance(exc, DeskUnavailable):
        return ApiError(503, exc.code, exc.message, headers={"Retry-After": "5"}, logged=True)
    if isinstance(exc, AccountError | LabelError | DeskError):
        return ApiError(400, exc.code, exc.message)
    if isinstance(exc, DatabaseUnavailable):
        return ApiError(503, "unavailable",
                        "Basis data sedang tidak tersedia. Coba lagi sebentar lagi.",
                        headers={"Retry-After": "5"})
    return None


# JSON as people read it: Indonesian text and callers' names unescaped.
dumps = functools.partial(json.dumps, ensure_ascii=False)


def error_response(error: ApiError) -> web.Response:
    """The JSON body of a refusal."""
    return web.json_response(
        {"error": {"code": error.code, "message": error.message, "field": error.field}},
        status=error.status, headers=error.headers, dumps=dumps,
    )


# How a refusal is answered: JSON for the API, a page for the console.
Answer = Callable[[web.Request, ApiError], web.StreamResponse]


def _json_answer(_: web.Request, error: ApiError) -> web.StreamResponse:
    return error_response(error)


def error_middleware(answer: Answer = _json_answer) -> Middleware:
    """The middleware that answers every refusal with ``answer`` (default: the JSON body)
    and logs it as one line; a bug is a 500 with its traceback in the log."""

    @web.middleware
    async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception as exc:
            error = api_error(exc)
            if error is None:
                if isinstance(exc, web.HTTPException):
                    raise  # a redirect
                log.exception("%s %s failed", request.method, request.rel_url.path)
                error = ApiError(500, "internal", "Terjadi kesalahan pada server.")
            else:
                log_refusal(request, error)
        return answer(request, error)

    return refusals


def log_refusal(request: web.Request, error: ApiError) -> None:
    """One log line for a refused request, unless the service already wrote one."""
    if not error.logged:
        session = request.get(SESSION)
        actor = session.account.username if session is not None else "-"
        log.warning("refused %s %s for %s from %s: %d %s: %s", request.method,
                    request.rel_url.path, actor, request.remote, error.status, error.code,
                    error.message)
