"""Refusals as HTTP: the one place that turns our exceptions into statuses.

Every refused request is answered ``{"error": {"code", "message", "field"}}`` (the message in
Bahasa Indonesia, for the person at the screen) and logged as one line. Services raise their
own exceptions, each a :class:`~telephony.core.errors.SiagaError` that carries its status and
code, and know nothing else of HTTP; this module turns them into responses.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from telephony.core.errors import SiagaError
from telephony.web.routing import SESSION, Handler

log = logging.getLogger("telephony.web")


class ApiError(SiagaError):
    """A refusal the web layer itself decides (a bad parameter, a missing CSRF token ...):
    ``status`` and ``code`` per instance, where a feature's error has them per class."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None,
        headers: Mapping[str, str] | None = None, logged: bool = False,
    ) -> None:
        super().__init__(message, field or "")
        self.status = status
        self.code = code
        self._headers = dict(headers or {})
        self.logged = logged  # the service already logged this refusal in its own line

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @classmethod
    def of(cls, error: SiagaError) -> ApiError:
        """The answer to a feature's refusal."""
        return cls(error.status, error.code, error.message, field=error.field,
                   headers=error.headers, logged=error.logged)


# aiohttp's own refusals (no such path, wrong method ...), in our words.
_HTTP_TEXT: Final[Mapping[int, tuple[str, str]]] = {
    400: ("bad_request", "Permintaan tidak sah."),
    404: ("not_found", "Alamat tidak ditemukan."),
    405: ("method_not_allowed", "Metode tidak diizinkan untuk alamat ini."),
    413: ("too_large", "Permintaan terlalu besar."),
    416: ("range_not_satisfiable", "Rentang byte yang diminta di luar berkas."),
}

def api_error(exc: BaseException) -> ApiError | None:
    """The HTTP refusal for one of our exceptions; ``None`` for anything else (a bug: it
    surfaces as a 500 with its traceback in the log)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SiagaError):
        # Our own faults (status 500) are answered like a bug, never with their text.
        return ApiError.of(exc) if exc.is_refusal else None
    if isinstance(exc, web.RequestPayloadError):
        # The body could not be read as sent: its Content-Encoding (gzip, deflate) is corrupt
        # or its chunked framing broken. The client's fault, not a bug of ours.
        return ApiError(400, "bad_body", "Isi permintaan tidak dapat dibaca: kompresinya "
                                         "(Content-Encoding) atau pemotongannya rusak.")
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        code, message = _HTTP_TEXT.get(exc.status, ("http_error", exc.reason))
        # A 405 names the methods the path serves (RFC 9110 15.5.6); aiohttp's other
        # headers (its text/plain Content-Type) are not ours to send.
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return ApiError(exc.status, code, message, headers=allow)
    return None


# JSON as people read it: Indonesian text and callers' names unescaped.
dumps = functools.partial(json.dumps, ensure_ascii=False)


def error_response(error: ApiError) -> web.Response:
    """The JSON body of a refusal."""
    return web.json_response(
        {"error": {"code": error.code, "message": error.message, "field": error.field or None}},
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
                log.exception("%s %s failed", request.method, request.rel_url.raw_path)
                error = ApiError(500, "internal", "Terjadi kesalahan pada server.")
            else:
                log_refusal(request, error)
        return answer(request, error)

    return refusals


def log_refusal(request: web.Request, error: ApiError) -> None:
    """One log line for a refused request, unless the service already wrote one (the path
    as sent, percent-encoded: a decoded newline would forge a second line)."""
    if not error.logged:
        session = request.get(SESSION)
        actor = session.account.username if session is not None else "-"
        log.warning("refused %s %s for %s from %s: %d %s: %s", request.method,
                    request.rel_url.raw_path, actor, request.remote, error.status, error.code,
                    error.message)
