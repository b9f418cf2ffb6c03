"""The call-backs over HTTP: the worklist (operators and supervisors), an operator's call-back
of a caller (from their desk), a supervisor's closing of an entry with a reason.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from telephony.accounts.model import Role
from telephony.callbacks.model import Attempt, ClosureReason, Entry, backlog
from telephony.callbacks.service import CallbackService
from telephony.calls.legs import Leg
from telephony.web.request import (
    instant_json,
    json_body,
    json_response,
    path_call_id,
    path_id,
    remote_of,
)
from telephony.web.routing import CASEWORK, DESK, SESSION, Access, Body, Reply, Route

# Closing an entry is a supervisor's decision: the caller is not called back.
SUPERVISION: Final = Access.to(Role.SUPERVISOR)


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    """A call-back tried for an entry."""
    return {
        "leg_id": attempt.leg_id, "call_id": attempt.call_id, "number": attempt.number,
        "actor": attempt.actor,
        "requested_at": instant_json(attempt.requested_at),
        "rang_at": instant_json(attempt.rang_at),
        "answered_at": instant_json(attempt.answered_at),
        "ended_at": instant_json(attempt.ended_at),
        "outcome": attempt.outcome.value if attempt.outcome else None,
        "outcome_label": attempt.outcome.label if attempt.outcome else None,
        "status": attempt.status,
        "cut": attempt.cut.value if attempt.cut else None,
        "cut_label": attempt.cut.label if attempt.cut else None,
        "unreached_by": attempt.unreached_by,
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    """A caller on the worklist."""
    return {
        "call_id": entry.call.call_id, "caller_number": entry.call.caller_number,
        "number": entry.number, "possible": entry.possible,
        "reason": entry.reason.value, "reason_label": entry.reason.label,
        "waiting_since": instant_json(entry.waiting_since), "incident_id": entry.incident_id,
        "calls": [{"call_id": call.call_id, "line": call.line,
                   "arrived_at": instant_json(call.arrived_at),
                   "ended_at": instant_json(call.ended_at),
                   "reason": reason.value, "reason_label": reason.label}
                  for call, reason in entry.reasons],
        "attempts": [attempt_json(attempt) for attempt in entry.attempts],
        "ringing": entry.in_flight is not None,
    }


def leg_json(leg: Leg) -> dict[str, Any]:
    """A call-back as recorded (a ``callback`` leg)."""
    return {
        "leg_id": leg.leg_id, "call_id": leg.call_id, "incident_id": leg.incident_id,
        "operator": leg.operator, "actor": leg.actor, "number": leg.number,
        "requested_at": instant_json(leg.requested_at), "rang_at": instant_json(leg.rang_at),
        "answered_at": instant_json(leg.answered_at), "ended_at": instant_json(leg.ended_at),
        "outcome": leg.outcome.value if leg.outcome else None,
        "outcome_label": leg.outcome.label if leg.outcome else None, "status": leg.status,
        "unreached_by": leg.unreached_by, "unreached_at": instant_json(leg.unreached_at),
    }


class CallbackApi:
    """The handlers, over the call-back service."""

    def __init__(self, callbacks: CallbackService) -> None:
        self._callbacks = callbacks

    async def list_callbacks(self, request: web.Request) -> web.StreamResponse:
        """Callers to call back: callable ones first, longest waiting first."""
        entries = await self._callbacks.worklist()
        summary = backlog(entries)
        return json_response({
            "generated_at": instant_json(self._callbacks.now()),
            "window_hours": self._callbacks.config.window.total_seconds() / 3600,
            "waiting": summary.waiting, "not_possible": summary.not_possible,
            "oldest_at": instant_json(summary.oldest_at),
            "closure_reasons": ClosureReason.labels(),
            "entries": [entry_json(entry) for entry in entries],
            "reached": [attempt_json(attempt) for attempt in await self._callbacks.reached()],
        })

    async def call_back_caller(self, request: web.Request) -> web.StreamResponse:
        """Call the caller back: the operator's phone rings first, then the caller's."""
        leg = await self._callbacks.call_back(
            request[SESSION].account, path_call_id(request), remote_address=remote_of(request))
        return json_response(leg_json(leg), status=202)

    async def mark_unreached(self, request: web.Request) -> web.StreamResponse:
        """Say that a call-back, answered, did not reach the caller: back on the list."""
        leg = await self._callbacks.mark_unreached(
            request[SESSION].account, path_id(request, "leg_id", "Panggilan balik"),
            remote_address=remote_of(request))
        return json_response(leg_json(leg))

    async def close_callback(self, request: web.Request) -> web.StreamResponse:
        """Take the caller off the list with a reason."""
        data = await json_body(request)
        entry, reason, note = await self._callbacks.close(
            request[SESSION].account, path_call_id(request), data["reason"],
            data.get("note", ""), remote_address=remote_of(request))
        return json_response({"call_id": entry.call.call_id, "reason": reason.value,
                              "reason_label": reason.label, "note": note,
                              "calls": [call.call_id for call in entry.calls]})

    def routes(self) -> list[Route]:
        """The call-backs' routes, with who may call them."""
        tag = "panggilan balik"
        return [
            Route("GET", "/api/callbacks", self.list_callbacks, CASEWORK,
                  "Daftar panggilan balik: penelepon yang terputus atau menyerah", tag,
                  Reply(200, "CallbackList")),
            Route("POST", "/api/callbacks/{call_id}/call", self.call_back_caller, DESK,
                  "Hubungi kembali penelepon dari telepon operator (telepon operator "
                  "berdering dahulu)", tag,
                  Reply(202, "CallbackLeg", description="Dikirim ke Asterisk"), errors=(409,)),
            Route("POST", "/api/callbacks/attempts/{leg_id}/unreached", self.mark_unreached,
                  CASEWORK, "Tandai panggilan balik tidak tersambung dengan penelepon (kotak "
                  "suara, pengumuman operator seluler, orang lain): penelepon kembali ke daftar",
                  tag, Reply(200, "CallbackLeg"), errors=(409,)),
            Route("POST", "/api/callbacks/{call_id}/close", self.close_callback, SUPERVISION,
                  "Tutup entri dengan alasan", tag, Reply(200, "CallbackClosure"),
                  Body("CloseCallback"), errors=(409,)),
        ]
