"""The operator's desk over HTTP: the phone they work at, its queues (join, leave, pause with
a reason, live through AMI), and the call ringing or answered there. Operators only: a desk
is an operator's phone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from ivr.flow import REASON_SEPARATOR
from telephony.calls.archive import CATEGORY_LABELS, DISPOSITION_LABELS
from telephony.calls.ids import caller_shown
from telephony.calls.legs import Leg, LegOutcome
from telephony.desks.operators import SKILL_LABELS, pause_label
from telephony.desks.service import PHONE_LOST_TEXT, DeskState
from telephony.desks.store import CallView
from telephony.incidents.http import incident_sla_json
from telephony.screening.features import Label
from telephony.web.request import context_of, instant_json, json_body, json_response, remote_of
from telephony.web.routing import DESK, SESSION, Body, Reply, Route

# What operators read for queue member states and the state of the call in front of them.
MEMBER_STATE_LABELS: Final[Mapping[str, str]] = {
    "unknown": "Tidak diketahui", "idle": "Siap", "talking": "Sedang bicara",
    "busy": "Sibuk", "invalid": "Tidak valid", "unavailable": "Telepon tidak terhubung",
    "ringing": "Berdering", "ringing_in_use": "Berdering saat bicara", "on_hold": "Ditahan",
    "paused": "Jeda"}
CALL_STATE_LABELS: Final[Mapping[str, str]] = {
    "ringing": "Berdering", "talking": "Tersambung", "ended": "Selesai"}
# Where a desk page's softphone asks for its credentials.
SOFTPHONE_CREDENTIALS: Final = "/api/desk/softphone"


def callback_label(leg: Leg) -> str:
    """Where the call-back on the operator's desk stands: dialling the caller, speaking with
    them, over, or why the caller was not reached ("Tidak diangkat", "Sibuk")."""
    if leg.ended_at is None:
        where = "tersambung" if leg.answered_at is not None else "memanggil penelepon"
    elif leg.answered_at is not None or leg.outcome in (None, LegOutcome.ANSWERED):
        where = "selesai"
    else:
        where = leg.outcome.label
    return f"Panggilan balik · {where}"


def _labelled(labels: Mapping[str, str], code: str | None) -> str | None:
    return None if code is None else labels.get(code, code)


def call_view_json(call: CallView) -> dict[str, Any]:
    """A call as the console shows it, with its screening, label and incident."""
    label = Label(call.label) if call.label is not None else None
    return {
        "call_id": call.call_id, "line": call.line, "caller_number": call.caller_number,
        "caller_shown": caller_shown(call.caller_number),
        "arrived_at": instant_json(call.arrived_at), "answered_at": instant_json(call.answered_at),
        "ended_at": instant_json(call.ended_at), "ivr_choice": call.ivr_choice,
        "ivr_outcome": call.ivr_outcome, "ivr_category": call.ivr_category,
        "ivr_category_label": _labelled(CATEGORY_LABELS, call.ivr_category),
        "ivr_skill": call.ivr_skill, "ivr_skill_label": _labelled(SKILL_LABELS, call.ivr_skill),
        "queue": call.queue, "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds, "disposition": call.disposition,
        "disposition_label": DISPOSITION_LABELS.get(call.disposition, call.disposition),
        "prank_score": call.prank_score,
        "prank_reasons": [reason for reason in (call.prank_reasons or "").split(
            REASON_SEPARATOR) if reason],
        "queue_priority": call.queue_priority, "screening": call.screening,
        "label": call.label, "label_text": label.label if label is not None else None,
        "incident_id": call.incident_id,
    }


def desk_json(desk: DeskState) -> dict[str, Any]:
    """The operator's desk as the operator screen polls it."""
    current = desk.current
    return {
        "operator": desk.interface,
        "skills": [{"skill": skill, "skill_label": SKILL_LABELS.get(skill, skill),
                    "level": level} for skill, level in sorted(desk.skills.items())],
        "queues": [{"queue": m.queue, "state": m.state,
                    "state_label": MEMBER_STATE_LABELS.get(m.state, m.state),
                    "paused": m.paused, "pause_reason": m.pause_reason,
                    "pause_label": pause_label(m.pause_reason) if m.paused else "",
                    "since": instant_json(m.since)} for m in desk.memberships],
        "call": None if current is None else {
            **call_view_json(current.call), "state": current.state,
            "state_label": (CALL_STATE_LABELS[current.state] if current.callback is None
                            else callback_label(current.callback)),
            "callback": None if current.callback is None else {
                "leg_id": current.callback.leg_id, "number": current.callback.number,
                "answered_at": instant_json(current.callback.answered_at),
                "ended_at": instant_json(current.callback.ended_at)}},
        "history": [call_view_json(call) for call in desk.history],
        "phone": None if desk.phone is None else {
            "kind": desk.phone.kind.value, "kind_label": desk.phone.kind.label,
            "lost_at": instant_json(desk.phone.lost_at), "lost_queues": desk.phone.lost_queues,
            "lost_reason": PHONE_LOST_TEXT if desk.phone.lost_at is not None else None},
    }


async def get_desk(request: web.Request) -> web.StreamResponse:
    """The operator's desk: skills, queues as Asterisk reports them, the call ringing or
    answered there with its prank score, the caller's recent calls, and the open incidents
    the call could be linked to (a repeat caller about the same event)."""
    ctx = context_of(request)
    desk = await ctx.desks.state(request[SESSION].account)
    related = ([] if desk.current is None
               else await ctx.incidents.merge_candidates(desk.current.call.call_id))
    return json_response({**desk_json(desk),
                          "related": [incident_sla_json(ctx, i) for i in related]})


async def join_queues(request: web.Request) -> web.StreamResponse:
    """Join the queues of some of the operator's skills (AMI QueueAdd)."""
    data = await json_body(request)
    joined = await context_of(request).desks.join(request[SESSION].account, data["skills"],
                                                  remote_address=remote_of(request))
    return json_response({"queues": joined})


async def leave_queues(request: web.Request) -> web.StreamResponse:
    """Leave every queue (AMI QueueRemove)."""
    left = await context_of(request).desks.leave(request[SESSION].account,
                                                 remote_address=remote_of(request))
    return json_response({"queues": left})


async def pause_desk(request: web.Request) -> web.StreamResponse:
    """Pause in every queue with a reason (AMI QueuePause)."""
    data = await json_body(request)
    await context_of(request).desks.pause(request[SESSION].account, data["reason"],
                                          remote_address=remote_of(request))
    return web.Response(status=204)


async def resume_desk(request: web.Request) -> web.StreamResponse:
    """End the pause (AMI QueuePause)."""
    await context_of(request).desks.resume(request[SESSION].account,
                                           remote_address=remote_of(request))
    return web.Response(status=204)


async def softphone_credentials(request: web.Request) -> web.StreamResponse:
    """Credentials for the softphone of this desk page, made now: the secret is in this
    answer only (an earlier page's stops working); never cached."""
    found = await context_of(request).desks.softphone(request[SESSION].account,
                                                      remote_address=remote_of(request))
    response = json_response({
        "interface": found.interface, "username": found.username, "realm": found.realm,
        "secret": found.secret, "ws_url": found.ws_url,
        "ice_networks": list(found.ice_networks)})
    response.headers["Cache-Control"] = "no-store"
    return response


def routes() -> list[Route]:
    """The desk's routes, with who may call them."""
    return [
        Route("GET", "/api/desk", get_desk, DESK,
              "Meja operator: antrean, panggilan di depan operator, riwayat penelepon",
              "meja", Reply(200, "Desk"), errors=(409,)),
        Route("POST", "/api/desk/queues", join_queues, DESK, "Masuk antrean keahlian",
              "meja", Reply(200, "QueueList"), Body("JoinQueues"), errors=(409,)),
        Route("DELETE", "/api/desk/queues", leave_queues, DESK, "Keluar dari semua antrean",
              "meja", Reply(200, "QueueList"), errors=(409,)),
        Route("POST", "/api/desk/pause", pause_desk, DESK, "Jeda dengan alasan", "meja",
              Reply(204, None, description="Jeda dikirim ke Asterisk"), Body("Pause"),
              errors=(409,)),
        Route("DELETE", "/api/desk/pause", resume_desk, DESK, "Akhiri jeda", "meja",
              Reply(204, None, description="Akhir jeda dikirim ke Asterisk"), errors=(409,)),
        Route("POST", SOFTPHONE_CREDENTIALS, softphone_credentials, DESK,
              "Kredensial softphone browser untuk halaman meja ini (sandi baru, sekali)",
              "meja", Reply(200, "Softphone"), errors=(409,)),
    ]
