"""Listening in over HTTP: the wallboard's Dengarkan / Bisikkan / Sela buttons post here.
Supervisors only; every attempt is in the audit log before Asterisk hears of it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telephony.calls.ids import node_name
from telephony.supervision.service import Supervision, SupervisionService
from telephony.web.request import json_body, json_response, remote_of
from telephony.web.routing import SESSION, SUPERVISION, Body, Reply, Route


def supervision_json(started: Supervision) -> dict[str, Any]:
    """A listening-in Asterisk has queued, and what the supervisor reads about it."""
    return {
        "mode": started.mode.value, "mode_label": started.mode.label,
        "operator": started.operator, "operator_username": started.operator_username,
        "call_id": started.call_id, "phone": started.phone,
        "message": f"{started.mode.label} {started.operator_username}: telepon Anda "
                   f"({started.phone}) akan berdering.",
    }


class SupervisionApi:
    """The handler, over the supervision service."""

    def __init__(self, supervision: SupervisionService) -> None:
        self._supervision = supervision

    async def start_supervision(self, request: web.Request) -> web.StreamResponse:
        """Listen in on (or whisper to, or barge into) an operator's live call."""
        data = await json_body(request)
        started = await self._supervision.start(
            request[SESSION].account, operator=data["operator"], mode=data["mode"],
            call_id=data.get("call_id"), remote_address=remote_of(request))
        return json_response(supervision_json(started), status=202)

    async def call_node(self, request: web.Request) -> str | None:
        """The node carrying the operator's live call (the listening is spied there)."""
        data = await json_body(request)
        return node_name(await self._supervision.live_call(
            request[SESSION].account, operator=data["operator"], mode=data["mode"],
            call_id=data.get("call_id")))

    def routes(self) -> list[Route]:
        """The route, with who may call it."""
        return [
            Route("POST", "/api/supervision", self.start_supervision, SUPERVISION,
                  "Dengarkan, bisikkan, atau sela panggilan operator (ChanSpy ke telepon "
                  "supervisor; dicatat di log audit)", "supervisor",
                  Reply(202, "SupervisionStarted"), Body("SupervisionRequest"),
                  errors=(400, 404, 409), runs_on=self.call_node),
        ]
