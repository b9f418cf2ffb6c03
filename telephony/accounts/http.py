"""The accounts' HTTP routes: logging in and out of the API, the session, the audit log, and
the admin's list of accounts with a name or role changed.

Logging in is the one public route. The console's login form is the console shell's
(``telephony.web.console.pages``); both set the same session cookies (``web.security``).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from telephony.accounts.model import InvalidAccountInput, Session, account_json
from telephony.accounts.service import AccountChange
from telephony.accounts.store import AuditEntry
from telephony.calls.archive import MAX_LIMIT
from telephony.core.text import MAX_DIGITS
from telephony.web.request import (
    actor_of,
    context_of,
    instant_json,
    json_body,
    json_response,
    query_int,
    query_of,
    query_text,
    remote_of,
)
from telephony.web.routing import (
    ADMIN,
    EVERYONE,
    OVERSIGHT,
    PUBLIC,
    SESSION,
    Body,
    Param,
    Reply,
    Route,
    limit_param,
)
from telephony.web.security import clear_session_cookies, set_session_cookies

# The largest audit_id a query may name: any whole number a query parameter can carry.
MAX_AUDIT_ID: Final = 10**MAX_DIGITS - 1


def session_json(session: Session, token: str | None = None) -> dict[str, Any]:
    """A session as its owner sees it (the token only right after login)."""
    return {
        "token": token,
        "csrf_token": session.csrf_token,
        "expires_at": instant_json(session.expires_at),
        "account": account_json(session.account),
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """One audit log entry."""
    return {"audit_id": entry.audit_id, "at": instant_json(entry.at), "actor": entry.actor,
            "action": entry.action, "object_type": entry.object_type,
            "object_id": entry.object_id, "remote_address": entry.remote_address,
            "detail": dict(entry.detail)}


async def login(request: web.Request) -> web.StreamResponse:
    """Log in: a bearer token in the body, and the session cookie."""
    ctx = context_of(request)
    data = await json_body(request)
    new = await ctx.accounts.login(data["username"], data["password"],
                                   remote_address=remote_of(request))
    response = json_response(session_json(new.session, new.token), status=201)
    set_session_cookies(response, new.token, new.session.csrf_token, ctx.config)
    return response


async def current_session(request: web.Request) -> web.StreamResponse:
    """Who is logged in, until when, and the CSRF token for cookie-borne changes."""
    return json_response(session_json(request[SESSION]))


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    ctx, session = context_of(request), request[SESSION]
    # A browser desk's softphone ends with the session (telephony/desks/service.py).
    await ctx.desks.sign_out(session.account, remote_address=remote_of(request))
    await ctx.accounts.logout(session, remote_address=remote_of(request))
    response = web.Response(status=204)
    clear_session_cookies(response)
    return response


async def list_audit(request: web.Request) -> web.StreamResponse:
    """A page of the audit log, newest first, optionally about one object or by one actor;
    the next page is asked for with ``?before=`` the page's ``next_before``."""
    query = query_of(request)
    found = await context_of(request).accounts.audit_page(
        request[SESSION].account.role,
        object_type=query_text(query, "object_type", 40),
        object_id=query_text(query, "object_id", 64),
        actor=query_text(query, "actor", 64),
        limit=query_int(query, "limit", 100, MAX_LIMIT),
        before=query_int(query, "before", 0, MAX_AUDIT_ID) or None,  # absent: the newest
    )
    return json_response({"entries": [audit_json(entry) for entry in found.entries],
                          "next_before": found.next_before})


def account_change_json(change: AccountChange) -> dict[str, Any]:
    """An account after an admin's change, and what the change ended."""
    return {"account": account_json(change.account), "sessions_ended": change.sessions_ended,
            "skills_dropped": dict(change.skills_dropped)}


async def list_accounts(request: web.Request) -> web.StreamResponse:
    """Every account, by username."""
    accounts = await context_of(request).accounts.accounts()
    return json_response({"accounts": [account_json(account) for account in accounts]})


async def change_account(request: web.Request) -> web.StreamResponse:
    """Give an account a new display name or another role (its sessions end then)."""
    data = await json_body(request)
    if "display_name" not in data and "role" not in data:
        raise InvalidAccountInput("role", "Kirim display_name, role, atau keduanya.")
    change = await context_of(request).accounts.change(
        request.match_info["username"], display_name=data.get("display_name"),
        role=data.get("role"), actor=actor_of(request), remote_address=remote_of(request))
    return json_response(account_change_json(change))


def routes() -> list[Route]:
    """The session and audit log routes, with who may call them."""
    return [
        Route("POST", "/api/session", login, PUBLIC, "Masuk (login)", "sesi",
              Reply(201, "Session"), Body("Login"), errors=(401, 429)),
        Route("GET", "/api/session", current_session, EVERYONE, "Sesi saat ini", "sesi",
              Reply(200, "Session")),
        Route("DELETE", "/api/session", logout, EVERYONE, "Keluar (logout)", "sesi",
              Reply(204, None, description="Sesi diakhiri")),
        Route("GET", "/api/admin/accounts", list_accounts, ADMIN, "Semua akun", "admin-akun",
              Reply(200, "AccountList")),
        Route("PATCH", "/api/admin/accounts/{username}", change_account, ADMIN,
              "Ubah nama tampilan atau peran akun (ganti peran mengakhiri semua sesinya)",
              "admin-akun", Reply(200, "AccountChange"), Body("AccountPatch"),
              errors=(404, 409)),
        Route("GET", "/api/audit", list_audit, OVERSIGHT, "Log audit", "audit",
              Reply(200, "AuditList"), query=(
                  Param("object_type", {"type": "string", "maxLength": 40}, "Jenis objek"),
                  Param("object_id", {"type": "string", "maxLength": 64}, "Nomor objek"),
                  Param("actor", {"type": "string", "maxLength": 64}, "Pelaku"),
                  limit_param(MAX_LIMIT),
                  Param("before", {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_ID},
                        "Hanya entri yang lebih lama dari audit_id ini (next_before halaman "
                        "sebelumnya)"))),
    ]
