"""The screening's HTTP routes: labelling a call (genuine, prank, silent, accidental, test)
and its label history. Labels feed the prank screening of the caller's later calls.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telephony.screening.store import StoredLabel
from telephony.web.request import (
    actor_of,
    context_of,
    instant_json,
    json_body,
    json_response,
    path_call_id,
)
from telephony.web.routing import CASEWORK, Body, Reply, Route


def label_json(stored: StoredLabel) -> dict[str, Any]:
    """One label event of a call."""
    return {"label_id": stored.label_id, "call_id": stored.call_id,
            "label": stored.label.value, "label_text": stored.label.label,
            "labelled_by": stored.labelled_by, "labelled_at": instant_json(stored.labelled_at),
            "note": stored.note}


async def label_call(request: web.Request) -> web.StreamResponse:
    """Label a call (genuine, prank, silent, accidental, test); a new label corrects the
    last one. Labels feed the prank screening of the caller's later calls, and move the
    call's automatic incident nobody worked on (a nuisance closes it, a correction reopens
    it)."""
    ctx = context_of(request)
    call_id = path_call_id(request)
    data = await json_body(request)
    stored = await ctx.screening.label(call_id, data["label"], actor_of(request),
                                       data.get("note", ""))
    # The call's automatic incident follows a nuisance label at once (the incident upkeep
    # would within seconds), as it does from the console's label buttons.
    await ctx.incidents.settle_labelled_call(call_id)
    return json_response(label_json(stored), status=201)


async def call_labels(request: web.Request) -> web.StreamResponse:
    """A call's label events, oldest first (the last is current)."""
    labels = await context_of(request).screening.labels(path_call_id(request))
    return json_response({"labels": [label_json(stored) for stored in labels]})


def routes() -> list[Route]:
    """The call label routes, with who may call them."""
    return [
        Route("POST", "/api/calls/{call_id}/labels", label_call, CASEWORK,
              "Beri label panggilan (asli, iseng, diam, tidak sengaja, uji coba)",
              "panggilan", Reply(201, "CallLabel"), Body("NewCallLabel")),
        Route("GET", "/api/calls/{call_id}/labels", call_labels, CASEWORK,
              "Riwayat label panggilan", "panggilan", Reply(200, "CallLabelList")),
    ]
