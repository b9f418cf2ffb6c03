"""The audit log and the accounts as console pages."""

from __future__ import annotations

from aiohttp import web

from telephony.accounts.model import Role
from telephony.web.console.render import PAGE, PREFIX, page
from telephony.web.request import context_of
from telephony.web.routing import ADMIN, OVERSIGHT, SESSION, Route


async def audit_page(request: web.Request) -> web.StreamResponse:
    """The newest audit log entries."""
    entries = await context_of(request).accounts.audit_entries(
        request[SESSION].account.role, limit=200)
    return page(request, "audit.html", title="Log audit", entries=entries)


async def accounts_page(request: web.Request) -> web.StreamResponse:
    """Every account, with the phone an operator works at."""
    ctx = context_of(request)
    return page(request, "accounts.html", title="Akun", accounts=await ctx.accounts.accounts(),
                interfaces=await ctx.desks.interfaces(), role_labels=Role.labels())


def routes() -> list[Route]:
    """The pages, with who may open them."""
    tag = "konsol"
    return [
        Route("GET", f"{PREFIX}/audit", audit_page, OVERSIGHT, "Log audit", tag, PAGE),
        Route("GET", f"{PREFIX}/accounts", accounts_page, ADMIN, "Akun", tag, PAGE),
    ]
