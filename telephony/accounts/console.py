"""The audit log and the accounts as console pages; on the accounts page an admin changes an
account's display name and role (a new role ends the account's sessions)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from telephony.accounts.model import Role
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import PAGE, PREFIX, SEE_OTHER, page
from telephony.web.request import Form, actor_of, context_of, remote_of
from telephony.web.routing import ADMIN, OVERSIGHT, SESSION, Route

ACCOUNTS_PAGE: Final = f"{PREFIX}/accounts"


async def audit_page(request: web.Request) -> web.StreamResponse:
    """The newest audit log entries."""
    entries = await context_of(request).accounts.audit_entries(
        request[SESSION].account.role, limit=200)
    return page(request, "audit.html", title="Log audit", entries=entries)


async def accounts_page(request: web.Request) -> web.StreamResponse:
    """Every account, with the phone an operator works at, its name and role to change."""
    ctx = context_of(request)
    return page(request, "accounts.html", title="Akun", accounts=await ctx.accounts.accounts(),
                interfaces=await ctx.desks.interfaces(), role_labels=Role.labels())


def _edited(form: Form, name: str) -> str | None:
    """A field's value if the admin changed it on the page (it differs from the ``seen.``
    value the page was made with), else ``None``: a page opened before another admin's
    change then carries back only its own edit, and never undoes theirs unseen."""
    value = form.get(name, "")
    return None if value == form.get(f"seen.{name}") else value


async def change_account(request: web.Request, form: Form) -> Done:
    """Save what the admin changed of an account's display name and role, together (a
    refused role keeps the name as it was too)."""
    change = await context_of(request).accounts.change(
        request.match_info["username"], display_name=_edited(form, "display_name"),
        role=_edited(form, "role"), actor=actor_of(request),
        remote_address=remote_of(request))
    account, before = change.account, change.before
    if change.role_changed:
        dropped = (f" Keahlian {', '.join(sorted(change.skills_dropped))} dilepas."
                   if change.skills_dropped else "")
        return Done(f"Akun {account.username}: peran {before.role.label} -> "
                    f"{account.role.label}; semua sesinya diakhiri.{dropped}")
    if account.display_name != before.display_name:
        return Done(f"Nama tampilan akun {account.username} disimpan.")
    return Done(f"Akun {account.username} tidak berubah.")


def routes() -> list[Route]:
    """The pages, with who may open them."""
    tag = "konsol"
    return [
        Route("GET", f"{PREFIX}/audit", audit_page, OVERSIGHT, "Log audit", tag, PAGE),
        Route("GET", ACCOUNTS_PAGE, accounts_page, ADMIN, "Akun", tag, PAGE),
        Route("POST", f"{ACCOUNTS_PAGE}/{{username}}",
              form_action(lambda _request, _form: ACCOUNTS_PAGE, change_account), ADMIN,
              "Simpan nama tampilan dan peran akun", tag, SEE_OTHER),
    ]
