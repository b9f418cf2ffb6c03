"""The live wallboard's page: a skeleton its script (``static/wallboard.js``) fills from the
WebSocket ``/api/wallboard/live``: no reload, no polling. Server-side it only says whether the
viewer is a supervisor, who may listen in on operators' calls (``telephony.supervision``).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from telephony.accounts.model import Role
from telephony.reports.model import SERVICE_LEVEL_SECONDS
from telephony.web.console.render import PAGE, PREFIX, page
from telephony.web.routing import OVERSIGHT, SESSION, Route

WALLBOARD: Final = f"{PREFIX}/wallboard"


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    """The live wallboard; a supervisor's has the buttons to listen in on an operator's call
    (admins see the board too, but do not hear callers)."""
    return page(request, "wallboard.html", title="Papan dinding", levels=SERVICE_LEVEL_SECONDS,
                supervise=request[SESSION].account.role is Role.SUPERVISOR)


def routes() -> list[Route]:
    """The page, with who may open it (those who may read what it shows)."""
    return [Route("GET", WALLBOARD, wallboard_page, OVERSIGHT, "Papan dinding", "konsol", PAGE)]
