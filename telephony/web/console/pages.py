"""The console's shell: the bare address, the static files, logging in and out, the home
page, and how a form post is answered (:func:`form_action`). Each feature's pages and forms
live in its own ``console`` module.

Pages go into the same route table as the JSON API (``telephony.web.routing``), so a page
without an access policy cannot exist and the security middleware checks the session, the
role and, on every form post, the session's CSRF token (the ``csrf_token`` field). Forms post
and redirect back (303) with a one-shot message; a refused form says why on the page it came
from and changed nothing. Logging in is the one public form: it carries a token of its own,
bound to a cookie set with the form, so another site cannot log a browser in.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from telephony.accounts.model import AccountError, Role
from telephony.web.console.render import (
    ASSETS,
    HOME,
    LOGIN_PATH,
    OPERATOR_SCREEN,
    PAGE,
    PREFIX,
    SEE_OTHER,
    Flash,
    page,
    redirect,
)
from telephony.web.errors import ApiError, api_error, log_refusal
from telephony.web.request import Form, context_of, form_of, remote_of
from telephony.web.routing import EVERYONE, PUBLIC, SESSION, Handler, Route
from telephony.web.security import clear_session_cookies, set_session_cookies

log = logging.getLogger("telephony.web")

LOGIN_COOKIE: Final = "siaga112_login"
LOGIN_FIELD: Final = "login_token"
_LOGIN_FORM_SECONDS: Final = 3600


@dataclass(frozen=True)
class Done:
    """A form action's outcome: the message to show, and where (default: back).

    ``shown_once`` is text the person must read now and can never see again (a phone's new
    secret): it is answered on a page of its own, never through the flash cookie, which a
    browser keeps on disk and which would send it back to us.
    """

    message: str
    location: str | None = None
    shown_once: str | None = None


Action = Callable[[web.Request, Form], Awaitable[Done]]
Back = Callable[[web.Request, Form], str]


def form_action(back: Back, action: Action) -> Handler:
    """A form post: run ``action``, then redirect with its message; a refusal goes back to
    the form's page (``back``) with the reason, having changed nothing."""

    async def handler(request: web.Request) -> web.StreamResponse:
        form = await form_of(request)
        back_to = back(request, form)
        try:
            done = await action(request, form)
        except Exception as exc:
            error = api_error(exc)
            if error is None or error.status in (401, 403):
                raise
            log_refusal(request, error)
            return redirect(request, back_to, Flash("error", error.message, error.field))
        if done.shown_once is not None:
            return page(request, "shown_once.html", title="Catat sekarang",
                        message=done.message, secret=done.shown_once,
                        back=done.location or back_to, headers={"Cache-Control": "no-store"})
        return redirect(request, done.location or back_to, Flash("ok", done.message))

    handler.__name__ = action.__name__
    handler.__doc__ = action.__doc__
    return handler


# -- sessions ----------------------------------------------------------------------------------


async def root(request: web.Request) -> web.StreamResponse:
    """The bare address leads to the console."""
    return redirect(request, HOME)


async def static(request: web.Request) -> web.StreamResponse:
    """The console's stylesheet and script (named with their digest: cached for a day)."""
    asset = ASSETS.get(request.match_info["name"])
    if asset is None:
        raise ApiError(404, "not_found", "Berkas tidak ditemukan.")
    return web.Response(body=asset.body, content_type=asset.content_type,
                        headers={"Cache-Control": "public, max-age=86400"})


def _login_page(request: web.Request, *, status: int = 200, error: str = "",
                headers: Mapping[str, str] | None = None) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", status=status, headers=headers, title="Masuk",
                    login_token=token, error=error)
    response.set_cookie(LOGIN_COOKIE, token, path=LOGIN_PATH, max_age=_LOGIN_FORM_SECONDS,
                        httponly=True, samesite="Strict",
                        secure=context_of(request).config.cookie_secure)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form."""
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """Check the login form; on success the session cookies and the way in."""
    ctx = context_of(request)
    form = await form_of(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get(LOGIN_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("refused console login from %s: login form token missing or wrong",
                    remote_of(request))
        return _login_page(request, status=403, error="Formulir masuk kedaluwarsa atau tidak "
                                                      "sah. Silakan coba lagi.")
    try:
        new = await ctx.accounts.login(form.get("username", ""), form.get("password", ""),
                                       remote_address=remote_of(request))
    except AccountError as exc:
        error = api_error(exc)
        assert error is not None  # every AccountError has its status
        log_refusal(request, error)
        return _login_page(request, status=error.status, error=error.message,
                           headers=error.headers)
    response = redirect(request, HOME)
    set_session_cookies(response, new.token, new.session.csrf_token, ctx.config)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session and go back to the login form (a browser desk's softphone with it)."""
    ctx, session = context_of(request), request[SESSION]
    await ctx.desks.sign_out(session.account, remote_address=remote_of(request))
    await ctx.accounts.logout(session, remote_address=remote_of(request))
    response = redirect(request, LOGIN_PATH, Flash("ok", "Anda telah keluar."))
    clear_session_cookies(response)
    return response


async def home(request: web.Request) -> web.StreamResponse:
    """Operators go to their screen; the others see the pages of their role."""
    if request[SESSION].account.role is Role.OPERATOR:
        return redirect(request, OPERATOR_SCREEN)
    return page(request, "home.html", title="Beranda")


def routes() -> list[Route]:
    """The shell's pages and forms, with who may use them."""
    tag = "konsol"
    return [
        Route("GET", "/", root, PUBLIC, "Ke konsol", tag, SEE_OTHER),
        Route("GET", f"{PREFIX}/static/{{name}}", static, PUBLIC, "Berkas statis", tag),
        Route("GET", LOGIN_PATH, login_page, PUBLIC, "Formulir masuk", tag, PAGE),
        Route("POST", LOGIN_PATH, login, PUBLIC, "Masuk", tag, SEE_OTHER),
        Route("POST", f"{PREFIX}/logout", logout, EVERYONE, "Keluar", tag, SEE_OTHER),
        Route("GET", HOME, home, EVERYONE, "Beranda", tag, PAGE),
    ]
