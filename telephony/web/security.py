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

from telephony.accounts.model import Session
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
)

log = logging.getLogger("telephony.web")

UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPE: Final = "application/x-www-form-urlencoded"
_TOKEN_MAX: Final = 128



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
        raise _unauthenticated("Silakan masuk terlebih dahulu (sesi tidak ada atau berakhir).")
    return session, by_cookie


async def check_csrf(request: web.Request, session: Session) -> None:
    """Refuse a cookie-authenticated change without the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type == FORM_TYPE:
        # Only a small url-encoded form is read here (aiohttp keeps it for the handler);
        # a multipart upload must stream, so it has to use the header.
        field = (await request.post()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if not hmac.compare_digest((sent or "").encode(), session.csrf_token.encode()):
        raise ApiError(403, "csrf", f"Token CSRF tidak ada atau salah (header {CSRF_HEADER}). "
                                   "Muat ulang halaman lalu ulangi.")


@web.middleware
async def security_middleware(request: web.Request, handler: Handler
                              ) -> web.StreamResponse:
    """Let a request through only if its route's access policy allows it."""
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
        return await handler(request)
    session, by_cookie = await authenticate(request)
    request[SESSION] = session
    if by_cookie and request.method in UNSAFE_METHODS:
        await check_csrf(request, session)
    if session.account.role not in route.access.roles:
        raise ApiError(403, "forbidden",
                       f"Peran {session.account.role.label} tidak berhak atas "
                       "permintaan ini.")
    return await handler(request)
