"""Transfers and conferences to agencies over HTTP: the operator's transfers of the call in
front of them (start one, take a step), the numbers they pick from, the admin's numbers, and an
incident's legs (its timeline of transfers, conferences and call-backs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from telephony.admin.http import audit_change
from telephony.calls.ids import node_name
from telephony.incidents.http import dispatch_json
from telephony.transfers.model import (
    AgencyNumber,
    Step,
    TimelineRow,
    TransferLeg,
    TransferMode,
    allowed_steps,
    phase,
)
from telephony.transfers.service import TransferService
from telephony.web.request import instant_json, json_body, json_response, path_id, remote_of
from telephony.web.routing import ADMIN, CASEWORK, DESK, EVERYONE, SESSION, Body, Reply, Route

_DESK_ERRORS = (409, 422, 503)


def number_json(number: AgencyNumber) -> dict[str, Any]:
    """An agency's number."""
    return {"number_id": number.number_id, "agency_code": number.agency_code,
            "agency_name": number.agency_name, "label": number.label, "number": number.number,
            "active": number.active, "usable": number.usable}


def _steps_json(steps: tuple[tuple[Step, str, datetime], ...]) -> list[dict[str, Any]]:
    return [{"step": step.value, "actor": actor, "at": at.isoformat()}
            for step, actor, at in steps]


def leg_json(leg: TransferLeg) -> dict[str, Any]:
    """A transfer leg as the operator's call panel shows it."""
    record = leg.leg
    current = phase(leg)
    return {
        "leg_id": record.leg_id, "call_id": record.call_id, "mode": leg.mode.value,
        "mode_label": leg.mode.label, "number_id": leg.number_id,
        "agency_code": leg.agency_code, "target": record.target, "number": record.number,
        "requested_at": record.requested_at.isoformat(),
        "rang_at": instant_json(record.rang_at), "answered_at": instant_json(record.answered_at),
        "ended_at": instant_json(record.ended_at),
        "outcome": record.outcome.value if record.outcome else None,
        "outcome_label": record.outcome.label if record.outcome else None,
        "phase": current.value, "phase_label": current.label,
        "steps": _steps_json(leg.steps),
        "allowed_steps": [step.value for step in allowed_steps(leg)],
        "dispatch_id": leg.dispatch_id,
    }


def timeline_json(row: TimelineRow) -> dict[str, Any]:
    """One leg on an incident's timeline."""
    return {
        "leg_id": row.leg_id, "call_id": row.call_id, "kind": row.kind.value,
        "kind_label": row.kind.label, "actor": row.actor, "operator": row.operator,
        "target": row.target, "number": row.number,
        "requested_at": row.requested_at.isoformat(), "rang_at": instant_json(row.rang_at),
        "answered_at": instant_json(row.answered_at), "ended_at": instant_json(row.ended_at),
        "ring_seconds": None if row.ring_seconds is None else round(row.ring_seconds, 1),
        "talk_seconds": None if row.talk_seconds is None else round(row.talk_seconds, 1),
        "outcome": row.outcome.value if row.outcome else None,
        "outcome_label": row.outcome.label if row.outcome else None,
        "ending": row.ending, "steps": _steps_json(row.steps),
    }


class TransferApi:
    """The transfer routes, over the transfer service."""

    def __init__(self, service: TransferService) -> None:
        self._service = service

    async def list_numbers(self, request: web.Request) -> web.StreamResponse:
        """The numbers operators may transfer to (admins see every one)."""
        admin = request[SESSION].account.role.value == "admin"
        numbers = await self._service.numbers(usable_only=not admin)
        return json_response({"numbers": [number_json(n) for n in numbers]})

    async def save_number(self, request: web.Request) -> web.StreamResponse:
        """Add an agency's number (or relabel / (de)activate the agency's same number)."""
        data = await json_body(request)
        number = await self._service.save_number(data["agency"], data["label"], data["number"],
                                                 data.get("active", True))
        await audit_change(request, "agency_number.save", "agency_number", number.number_id,
                           number_json(number))
        return json_response(number_json(number))

    async def update_number(self, request: web.Request) -> web.StreamResponse:
        """Change an agency's number."""
        number_id = path_id(request, "number_id", "Nomor instansi")
        data = await json_body(request)
        number = await self._service.save_number(data["agency"], data["label"], data["number"],
                                                 data.get("active", True), number_id=number_id)
        await audit_change(request, "agency_number.save", "agency_number", number.number_id,
                           number_json(number))
        return json_response(number_json(number))

    async def desk(self, request: web.Request) -> web.StreamResponse:
        """The transfers of the call in front of the operator, and the numbers to pick."""
        found = await self._service.desk(request[SESSION].account)
        return json_response({
            "call_id": found.call_id, "talking": found.talking,
            "incident_id": found.incident_id,
            "modes": [{"mode": m.value, "label": m.label} for m in TransferMode],
            "steps": [{"step": s.value, "label": s.label} for s in Step],
            "legs": [leg_json(leg) for leg in found.legs],
            "numbers": [number_json(n) for n in found.numbers],
        })

    async def start(self, request: web.Request) -> web.StreamResponse:
        """Hand the caller to an agency's number: blind, attended or as a conference."""
        data = await json_body(request)
        started = await self._service.start(
            request[SESSION].account, data["number_id"], data["mode"],
            dispatch_by_phone=bool(data.get("dispatch_by_phone", False)),
            remote_address=remote_of(request))
        return json_response({
            "leg": leg_json(started.leg),
            "dispatch": None if started.dispatch is None else dispatch_json(started.dispatch),
            "dispatch_error": started.dispatch_error,
        }, status=201)

    async def step(self, request: web.Request) -> web.StreamResponse:
        """Hand over, join, cancel or leave an attended transfer or conference."""
        leg_id = path_id(request, "leg_id", "Alih panggilan")
        data = await json_body(request)
        leg = await self._service.step(request[SESSION].account, leg_id, data["step"],
                                       remote_address=remote_of(request))
        return json_response(leg_json(leg))

    async def incident_legs(self, request: web.Request) -> web.StreamResponse:
        """Every leg of the incident's calls: who, to whom, when, how long, how it ended."""
        incident_id = path_id(request, "incident_id", "Insiden")
        rows = await self._service.timeline(incident_id)
        return json_response({"legs": [timeline_json(row) for row in rows]})

    # The body is checked first, as the handler will: one it refuses is refused here with its
    # own 4xx, not sent on (and not a 503 while the call's node's line is down).

    async def desk_node(self, request: web.Request) -> str | None:
        """The node carrying the call in front of the operator (a transfer's)."""
        await json_body(request)
        return node_name(await self._service.desk_call(request[SESSION].account))

    async def leg_node(self, request: web.Request) -> str | None:
        """The node carrying the call of the leg a step is taken on."""
        leg_id = path_id(request, "leg_id", "Alih panggilan")
        await json_body(request)
        return node_name(await self._service.leg_call(request[SESSION].account, leg_id))

    def routes(self) -> list[Route]:
        """The transfer routes, with who may call them."""
        return [
            Route("GET", "/api/agency-numbers", self.list_numbers, EVERYONE,
                  "Nomor telepon instansi untuk alih panggilan", "alih-panggilan",
                  Reply(200, "AgencyNumberList")),
            Route("POST", "/api/admin/agency-numbers", self.save_number, ADMIN,
                  "Tambah nomor telepon instansi", "admin-referensi",
                  Reply(200, "AgencyNumber"), Body("AgencyNumberInput"), errors=(422,)),
            Route("PUT", "/api/admin/agency-numbers/{number_id}", self.update_number, ADMIN,
                  "Ubah nomor telepon instansi", "admin-referensi", Reply(200, "AgencyNumber"),
                  Body("AgencyNumberInput"), errors=(409, 422)),
            Route("GET", "/api/desk/transfers", self.desk, DESK,
                  "Alih panggilan untuk panggilan di depan operator", "alih-panggilan",
                  Reply(200, "DeskTransfers"), errors=(409,)),
            Route("POST", "/api/desk/transfers", self.start, DESK,
                  "Alihkan penelepon ke instansi (langsung, setelah bicara, konferensi)",
                  "alih-panggilan", Reply(201, "TransferStarted"), Body("StartTransfer"),
                  errors=_DESK_ERRORS, runs_on=self.desk_node),
            Route("POST", "/api/desk/transfers/{leg_id}/steps", self.step, DESK,
                  "Serahkan, gabungkan, batalkan, atau keluar dari konferensi",
                  "alih-panggilan", Reply(200, "TransferLeg"), Body("TransferStepInput"),
                  errors=_DESK_ERRORS, runs_on=self.leg_node),
            Route("GET", "/api/incidents/{incident_id}/legs", self.incident_legs, CASEWORK,
                  "Kaki panggilan insiden: alih, konferensi, panggilan balik", "insiden",
                  Reply(200, "LegTimeline")),
        ]
