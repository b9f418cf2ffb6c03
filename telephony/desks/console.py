"""The operator screen and the desk's forms (join and leave queues, pause, resume).

The operator screen is one page; its script polls ``GET /api/desk`` for the queues and the
call in front of the operator.
"""

from __future__ import annotations

from aiohttp import web

from telephony.desks.operators import SKILL_LABELS, PauseReason
from telephony.screening.features import Label
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import OPERATOR_SCREEN, PAGE, PREFIX, SEE_OTHER, page
from telephony.web.request import Form, context_of, remote_of
from telephony.web.routing import DESK, SESSION, Route


async def operator_screen(request: web.Request) -> web.StreamResponse:
    """The operator's screen: desk, the call in front of them, the caller's history."""
    desk = await context_of(request).desks.state(request[SESSION].account)
    return page(request, "operator.html", title="Layar operator", desk=desk,
                skill_labels=SKILL_LABELS, pause_reasons=PauseReason.labels(),
                labels=Label.labels())


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
