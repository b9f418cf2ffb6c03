"""The live wallboard's page: a skeleton its script (``static/wallboard.js``) fills from the
WebSocket ``/api/wallboard/live``: no reload, no polling. Nothing is needed server-side.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from telephony.reports.model import SERVICE_LEVEL_SECONDS
from telephony.web.console.render import PAGE, PREFIX, page
from telephony.web.routing import OVERSIGHT, Route

WALLBOARD: Final = f"{PREFIX}/wallboard"


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    """The live wallboard."""
    return page(request, "wallboard.html", title="Papan dinding", levels=SERVICE_LEVEL_SECONDS)


def routes() -> list[Route]:
    """The page, with who may open it (those who may read what it shows)."""
    return [Route("GET", WALLBOARD, wallboard_page, OVERSIGHT, "Papan dinding", "konsol", PAGE)]
