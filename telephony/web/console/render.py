"""How console pages are made: Jinja templates with every value escaped, one-shot messages
across a redirect, the static files, and the console's refusals as pages.

Escaping is the template engine's job, not the handler's: ``autoescape`` is on for every
template and nothing is marked safe, so a caller's number or an operator's note full of
``<script>`` is shown as text. The Content-Security-Policy allows scripts and styles from our
own files only, so even a value that slipped through could not run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Final
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from telephony.accounts.model import Role, Session
from telephony.calls.ids import caller_shown
from telephony.web.context import CONTEXT
from telephony.web.errors import ApiError
from telephony.web.routing import SESSION, Reply

PREFIX: Final = "/console"
LOGIN_PATH: Final = "/console/login"
HOME: Final = f"{PREFIX}/"
OPERATOR_SCREEN: Final = f"{PREFIX}/operator"
FLASH_COOKIE: Final = "siaga112_flash"
_FLASH_MAX: Final = 600
_FIELD_NAME: Final = re.compile(r"[a-z_]{1,40}")

# What a page or a form post answers, as the route table documents it.
PAGE: Final = Reply(200, None, {"text/html": {}}, "Halaman")
SEE_OTHER: Final = Reply(303, None, description="Kembali ke halaman dengan pesan")

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "media-src 'self'; connect-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")


def content_security_policy(softphone_origin: str | None) -> str:
    """:data:`CSP`, whose ``connect-src`` also names the softphone's WebSocket origin (a
    checked ``ws[s]://host[:port]``, see ``telephony.settings.softphone_origin``), if any."""
    if softphone_origin is None:
        return CSP
    return CSP.replace("connect-src 'self'", f"connect-src 'self' {softphone_origin}")

# Every page a role can reach from the menu bar.
NAV: Final[Mapping[Role, tuple[tuple[str, str], ...]]] = {
    Role.OPERATOR: (("/console/operator", "Layar operator"),
                    ("/console/incidents", "Insiden terbuka"),
                    ("/console/callbacks", "Panggilan balik")),
    Role.SUPERVISOR: (("/console/wallboard", "Papan dinding"), ("/console/reports", "Laporan sif"),
                      ("/console/daily", "Ringkasan harian"),
                      ("/console/incidents", "Insiden terbuka"),
                      ("/console/callbacks", "Panggilan balik"), ("/console/audit", "Log audit")),
    Role.ADMIN: (("/console/admin/ivr", "Menu IVR"), ("/console/admin/queues", "Antrean"),
                 ("/console/admin/reference", "Referensi"),
                 ("/console/admin/screening", "Penyaringan"), ("/console/accounts", "Akun"),
                 ("/console/wallboard", "Papan dinding"), ("/console/reports", "Laporan sif"),
                 ("/console/audit", "Log audit")),
}


@dataclass(frozen=True)
class Asset:
    """A static file of the console, named in pages with its digest so it can be cached."""

    body: bytes
    content_type: str
    digest: str


def _load_assets() -> dict[str, Asset]:
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    assets = {}
    for entry in resources.files("telephony.web.console").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind("."):]
        if suffix in types:
            body = entry.read_bytes()
            assets[entry.name] = Asset(body, types[suffix], hashlib.sha256(body).hexdigest()[:12])
    return assets


ASSETS: Final = _load_assets()


def asset_url(name: str) -> str:
    """Where a page loads a static file from (the digest changes with the file)."""
    return f"{PREFIX}/static/{name}?v={ASSETS[name].digest}"


def _local(value: datetime | None, zone: str, pattern: str = "%d-%m-%Y %H:%M:%S") -> str:
    return "-" if value is None else value.astimezone(ZoneInfo(zone)).strftime(pattern)


def _local_clock(value: datetime, zone: str, now: datetime) -> str:
    """An instant of a list that spans more than today (the call-back list's day): its time
    alone if it is today in the centre's zone, else with its date. Times alone read the same
    for 23:50 yesterday and 23:50 today."""
    tz = ZoneInfo(zone)
    local = value.astimezone(tz)
    return local.strftime("%H:%M" if local.date() == now.astimezone(tz).date()
                          else "%d-%m %H:%M")


ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("telephony.web.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["local"] = _local
ENV.filters["local_clock"] = _local_clock
ENV.filters["caller"] = caller_shown  # a withheld caller in words, as every page names them
ENV.globals["asset"] = asset_url


@dataclass(frozen=True)
class Flash:
    """A one-shot message shown on the page a form redirects to."""

    kind: str  # ok or error
    text: str
    # The form field a refusal is about (its name), so the page can mark and focus it: the
    # message is shown at the top, away from the field.
    field: str = ""


def _read_flash(request: web.Request) -> Flash | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if raw is None:
        return None
    try:
        data = json.loads(unquote(raw))
    except (ValueError, RecursionError):
        # RecursionError: a cookie nested deeper than the decoder goes (not ours; a sibling
        # site can set it). Raised here, it broke every page, the error page included.
        return None
    if (not isinstance(data, dict) or data.get("kind") not in ("ok", "error")
            or not isinstance(data.get("text"), str)):
        return None
    field = data.get("field", "")
    return Flash(data["kind"], data["text"][:_FLASH_MAX],
                 field if isinstance(field, str) and _FIELD_NAME.fullmatch(field) else "")


def page(request: web.Request, template: str, *, status: int = 200,
         headers: Mapping[str, str] | None = None, **values: Any) -> web.Response:
    """A rendered page; the session, menu, CSRF token and any flash message come along."""
    session: Session | None = request.get(SESSION)
    flash = _read_flash(request)
    html = ENV.get_template(template).render(
        session=session,
        role_label=session.account.role.label if session else "",
        nav=NAV[session.account.role] if session else (),
        csrf=session.csrf_token if session else "",
        tz=request.app[CONTEXT].config.timezone,
        path=request.path,
        flash=flash,
        **values,
    )
    response = web.Response(text=html, content_type="text/html", status=status,
                            headers=headers)
    response.headers["Content-Security-Policy"] = content_security_policy(
        request.app[CONTEXT].config.softphone_origin)
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path=PREFIX)
    return response


def redirect(request: web.Request, location: str, flash: Flash | None = None) -> web.Response:
    """See other: ``location`` (a path of ours), with a message for the page there."""
    response = web.Response(status=303, headers={"Location": location})
    if flash is not None:
        text = json.dumps({"kind": flash.kind, "text": flash.text[:_FLASH_MAX],
                           **({"field": flash.field} if flash.field else {})},
                          ensure_ascii=False)
        response.set_cookie(FLASH_COOKIE, quote(text), path=PREFIX, max_age=60,
                            httponly=True, samesite="Strict",
                            secure=request.app[CONTEXT].config.cookie_secure)
    return response


def is_console(path: str) -> bool:
    """Whether a path belongs to the console (its refusals are pages, not JSON)."""
    return path in ("/", PREFIX) or path.startswith(PREFIX + "/")


def console_refusal(request: web.Request, error: ApiError) -> web.StreamResponse:
    """A refusal of the console as a page: no session goes to the login page, anything else
    is an error page saying why (the error middleware's answer for console paths)."""
    if error.status == 401:
        return redirect(request, LOGIN_PATH, Flash("error", error.message))
    return page(request, "error.html", status=error.status, headers=error.headers,
                title=f"Kesalahan {error.status}", error=error)
