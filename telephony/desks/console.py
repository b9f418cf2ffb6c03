"""The operator screen and the desk's forms (join and leave queues, pause, resume).

The operator screen is one page; its script polls ``GET /api/desk`` for the queues and the
call in front of the operator.
"""

from __future__ import annotations

from aiohttp import web

from telephony.calls.ids import WITHHELD_NUMBERS, WITHHELD_TEXT
from telephony.desks.http import SOFTPHONE_CREDENTIALS
from telephony.desks.operators import SKILL_LABELS, PauseReason
from telephony.desks.phones import PhoneKind
from telephony.desks.service import DeskState
from telephony.screening.features import Label
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import (
    ASSETS,
    OPERATOR_SCREEN,
    PAGE,
    PREFIX,
    SEE_OTHER,
    page,
)
from telephony.web.request import Form, context_of, remote_of
from telephony.web.routing import DESK, SESSION, Route

# The softphone's SIP library, built from npm by scripts/console-lib (not in the repository).
SIP_LIBRARY = "jssip.min.js"


def softphone_problem(desk: DeskState, *, configured: bool) -> str | None:
    """Why a browser desk's page cannot run its softphone; ``None`` if it can (or the desk
    has a desk phone)."""
    if desk.phone is None or desk.phone.kind is not PhoneKind.BROWSER:
        return None
    if not configured:
        return "situs ini belum menyiapkan softphone (softphone_ws_url); hubungi admin."
    if SIP_LIBRARY not in ASSETS:
        return "pustaka SIP belum terpasang (jalankan scripts/setup); hubungi admin."
    return None


async def operator_screen(request: web.Request) -> web.StreamResponse:
    """The operator's screen: desk, the call in front of them, the caller's history, and
    the softphone when the desk's phone is the browser."""
    ctx = context_of(request)
    desk = await ctx.desks.state(request[SESSION].account)
    browser = desk.phone is not None and desk.phone.kind is PhoneKind.BROWSER
    problem = softphone_problem(desk, configured=ctx.config.softphone_origin is not None)
    return page(request, "operator.html", title="Layar operator", desk=desk,
                skill_labels=SKILL_LABELS, pause_reasons=PauseReason.labels(),
                labels=Label.labels(), softphone=browser and problem is None,
                softphone_missing=problem, softphone_url=SOFTPHONE_CREDENTIALS,
                withheld_numbers=sorted(WITHHELD_NUMBERS), withheld_text=WITHHELD_TEXT)


def _to_screen(_: web.Request, __: Form) -> str:
    return OPERATOR_SCREEN


async def join_queues(request: web.Request, form: Form) -> Done:
    """Join the queues of the skills ticked."""
    skills = form.getall("skill", [])
    joined = await context_of(request).desks.join(request[SESSION].account, skills,
                                                  remote_address=remote_of(request))
    if not joined:
        return Done("Anda sudah berada di semua antrean itu.")
    return Done(f"Masuk antrean: {', '.join(joined)}.")


async def leave_queues(request: web.Request, form: Form) -> Done:
    """Leave every queue."""
    left = await context_of(request).desks.leave(request[SESSION].account,
                                                 remote_address=remote_of(request))
    return Done(f"Keluar dari antrean: {', '.join(left)}.")


async def pause(request: web.Request, form: Form) -> Done:
    """Pause with the reason chosen."""
    reason = await context_of(request).desks.pause(
        request[SESSION].account, form.get("reason", ""), remote_address=remote_of(request))
    return Done(f"Jeda: {reason.label}.")


async def resume(request: web.Request, form: Form) -> Done:
    """End the pause."""
    await context_of(request).desks.resume(request[SESSION].account,
                                           remote_address=remote_of(request))
    return Done("Jeda berakhir; Anda siap menerima panggilan.")


def routes() -> list[Route]:
    """The operator screen and the desk's forms, with who may use them."""
    tag = "konsol"
    return [
        Route("GET", OPERATOR_SCREEN, operator_screen, DESK, "Layar operator", tag, PAGE),
        Route("POST", f"{PREFIX}/desk/join", form_action(_to_screen, join_queues), DESK,
              "Masuk antrean", tag, SEE_OTHER),
        Route("POST", f"{PREFIX}/desk/leave", form_action(_to_screen, leave_queues), DESK,
              "Keluar antrean", tag, SEE_OTHER),
        Route("POST", f"{PREFIX}/desk/pause", form_action(_to_screen, pause), DESK,
              "Jeda", tag, SEE_OTHER),
        Route("POST", f"{PREFIX}/desk/resume", form_action(_to_screen, resume), DESK,
              "Akhiri jeda", tag, SEE_OTHER),
    ]
