"""Authentication, CSRF and role checks, for every request, in one middleware.

A request names its session with ``Authorization: Bearer <token>`` or the session cookie. A
cookie is sent by the browser on its own, so a change (POST/PUT/PATCH/DELETE) made with the
cookie must also carry the session's CSRF token, which another site cannot read: in the
``X-CSRF-Token`` header (scripts), or as the ``csrf_token`` field of a console form
(``application/x-www-form-urlencoded``); a bearer token is never sent on its own, so bearer
requests need none. The route table says which roles a route serves; a route it does not know
is refused.
"""

from __future__ import annotations

import hmac
import logging
from typing import Final

from aiohttp import web
from multidict import MultiMapping

from telephony.accounts.model import Session
from telephony.core.text import unsafe_text
from telephony.web.context import CONTEXT, WebConfig
from telephony.web.errors import ApiError
from telephony.web.routing import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    ROUTE_TABLE,
    SESSION,
    SESSION_COOKIE,
    Handler,
    Route,
    path_conforms,
)

log = logging.getLogger("telephony.web")

UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPE: Final = "application/x-www-form-urlencoded"
_TOKEN_MAX: Final = 128
# Control characters in a path or a query: never part of an id, a name or a search.
_CONTROL: Final = frozenset(map(chr, [*range(0x20), 0x7F]))


def set_session_cookies(response: web.StreamResponse, token: str, csrf_token: str,
                        config: WebConfig) -> None:
    """The session cookie, and the CSRF token's for the console's scripts."""
    max_age = int(config.session_lifetime.total_seconds())
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict",
                        secure=config.cookie_secure, path="/", max_age=max_age)
    # Readable by the console's own scripts, which copy it into the X-CSRF-Token header.
    response.set_cookie(CSRF_COOKIE, csrf_token, httponly=False, samesite="Strict",
                        secure=config.cookie_secure, path="/", max_age=max_age)


def clear_session_cookies(response: web.StreamResponse) -> None:
    """Tell the browser to forget the session."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.del_cookie(name, path="/")


async def read_form(request: web.Request) -> MultiMapping[object]:
    """The posted url-encoded form, decoded as UTF-8 (what the console's pages send). aiohttp
    would decode it in whatever charset the Content-Type names, and an unknown one is a
    LookupError (a 500): any other charset is refused (415)."""
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise ApiError(415, "unsupported_media_type",
                       f"Kirim formulir dalam UTF-8 ({FORM_TYPE}; charset=utf-8).")
    return await request.post()


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def _credentials(request: web.Request) -> tuple[str | None, bool]:
    """The session token the request carries, and whether it came in the cookie."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("Header Authorization harus 'Bearer <token>'.")
        return token.strip(), False
    return request.cookies.get(SESSION_COOKIE), True


async def authenticate(request: web.Request) -> tuple[Session, bool]:
    """The request's live session and whether it came by cookie; 401 without one."""
    token, by_cookie = _credentials(request)
    session = None
    if token and len(token) <= _TOKEN_MAX:
        session = await request.app[CONTEXT].accounts.session(token)
    if session is None:
        # A session an admin's change ended says why (the console's login form shows it).
        why = await request.app[CONTEXT].accounts.ended_reason(token) if (
            token and len(token) <= _TOKEN_MAX) else None
        raise _unauthenticated(why or "Silakan masuk terlebih dahulu (sesi tidak ada atau "
                                      "berakhir).")
    return session, by_cookie


async def check_csrf(request: web.Request, session: Session) -> None:
    """Refuse a cookie-authenticated change without the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type == FORM_TYPE:
        # Only a small url-encoded form is read here (aiohttp keeps it for the handler);
        # a multipart upload must stream, so it has to use the header.
        field = (await read_form(request)).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if not hmac.compare_digest((sent or "").encode(), session.csrf_token.encode()):
        raise ApiError(403, "csrf", f"Token CSRF tidak ada atau salah (header {CSRF_HEADER}). "
                                   "Muat ulang halaman lalu ulangi.")


def _hostile_text(text: str, *, control: bool) -> bool:
    return unsafe_text(text) or (control and not _CONTROL.isdisjoint(text))


def check_request_text(request: web.Request) -> None:
    """Refuse a request whose path, query or headers hold what no value of ours holds: a NUL,
    bytes that are not UTF-8 (aiohttp hands them on as lone surrogates, which nothing can
    encode again: not the session digest, not PostgreSQL, not a log line), or, in the path
    and the query, a control character. Checked once here for every route, so no handler
    meets them: such a path names nothing (404), such a query parameter is invalid (422),
    such a header makes a bad request (400)."""
    if _hostile_text(request.path, control=True):
        raise ApiError(404, "not_found", "Alamat tidak ditemukan.")
    for name, value in request.query.items():
        if _hostile_text(name, control=True) or _hostile_text(value, control=True):
            raise ApiError(422, "invalid", "Parameter berisi karakter yang tidak sah.",
                           field=None if _hostile_text(name, control=True) else name[:40])
    if any(_hostile_text(value, control=False) for value in request.headers.values()):
        raise ApiError(400, "bad_request", "Header permintaan berisi karakter yang tidak sah.")


def check_path(request: web.Request, route: Route) -> None:
    """Refuse (404) an API path whose parameters are not what the OpenAPI document says
    (an id in ASCII digits, a name of its pattern): such a path names nothing."""
    if not route.path.startswith("/api/"):
        return  # the console's pages answer a bad id with a page of their own
    for name in route.path_params:
        raw = request.match_info[name]
        if not path_conforms(name, raw):
            raise ApiError(404, "not_found", f"{name} {raw[:40]!r} tidak ditemukan.",
                           field=name)


@web.middleware
async def security_middleware(request: web.Request, handler: Handler
                              ) -> web.StreamResponse:
    """Let a request through only if its text is sound and its route's access policy allows
    it."""
    check_request_text(request)
    match = request.match_info
    if match.http_exception is not None:
        return await handler(request)  # no such path or method: the handler raises 404/405
    route = request.app[ROUTE_TABLE].route_of(match.route)
    if route is None:
        log.error("refused %s %s: the route has no access policy in the route table",
                  request.method, request.rel_url.path)
        raise ApiError(403, "forbidden", "Alamat ini tidak terbuka untuk siapa pun.",
                       logged=True)
    if route.access.public:
        check_path(request, route)
        return await handler(request)
    session, by_cookie = await authenticate(request)
    request[SESSION] = session
    if by_cookie and request.method in UNSAFE_METHODS:
        await check_csrf(request, session)
    if session.account.role not in route.access.roles:
        raise ApiError(403, "forbidden",
                       f"Peran {session.account.role.label} tidak berhak atas "
                       "permintaan ini.")
    check_path(request, route)
    return await handler(request)
