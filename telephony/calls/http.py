"""The calls' HTTP routes: recent calls with filters, and one call with its recordings and
incident. Both are audited: whose calls were looked up, and which call was opened.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from typing import Any

from aiohttp import web

from recordings.http import recording_json
from telephony.calls.archive import DISPOSITIONS, LINES, MAX_LIMIT, CallFilter
from telephony.calls.store import CallRecord
from telephony.web.errors import ApiError
from telephony.web.request import (
    actor_of,
    context_of,
    json_response,
    path_call_id,
    query_choice,
    query_instant,
    query_int,
    query_of,
    query_text,
    remote_of,
)
from telephony.web.routing import CASEWORK, Param, Reply, Route, limit_param


def call_json(record: CallRecord) -> dict[str, Any]:
    """A call record."""
    values: dict[str, Any] = {}
    for field in fields(record):
        value = getattr(record, field.name)
        values[field.name] = value.isoformat() if isinstance(value, date) else value
    return values


async def list_calls(request: web.Request) -> web.StreamResponse:
    """Recent calls, newest first, filtered."""
    query = query_of(request)
    which = CallFilter(
        since=query_instant(query, "since"),
        until=query_instant(query, "until"),
        line=query_choice(query, "line", LINES),
        caller_number=query_text(query, "caller_number", 40),
        disposition=query_choice(query, "disposition", DISPOSITIONS),
        limit=query_int(query, "limit", 100, MAX_LIMIT),
    )
    if which.since is not None and which.until is not None and which.until < which.since:
        # Nothing can match: a client that swapped the two would read "no calls".
        raise ApiError(422, "invalid", "until tidak boleh sebelum since.", field="until")
    ctx = context_of(request)
    records = await ctx.calls.recent(which)
    # Who looked up whose calls: searching a number is the privacy-relevant act.
    await ctx.accounts.audit(
        actor=actor_of(request), action="call.search", object_type="call",
        object_id=which.caller_number or "", remote_address=remote_of(request),
        detail={"query": dict(query), "found": len(records)})
    return json_response({"calls": [call_json(record) for record in records]})


async def get_call(request: web.Request) -> web.StreamResponse:
    """One call with its recordings and the incident it belongs to."""
    ctx = context_of(request)
    call_id = path_call_id(request)
    record, incident_id = await ctx.calls.get(call_id)
    recordings = await ctx.recordings.of_calls([call_id])
    await ctx.accounts.audit(
        actor=actor_of(request), action="call.view", object_type="call", object_id=call_id,
        remote_address=remote_of(request), detail={})
    return json_response({"call": call_json(record), "incident_id": incident_id,
                  "recordings": [recording_json(r) for r in recordings]})


def routes() -> list[Route]:
    """The calls' routes, with who may call them."""
    return [
        Route("GET", "/api/calls", list_calls, CASEWORK, "Panggilan terbaru", "panggilan",
              Reply(200, "CallList"), query=(
                  Param("since", {"type": "string", "format": "date-time"},
                        "Tiba sejak (dengan zona waktu)"),
                  Param("until", {"type": "string", "format": "date-time"},
                        "Tiba sebelum (dengan zona waktu)"),
                  Param("line", {"type": "string", "enum": list(LINES)}, "Jalur"),
                  Param("caller_number", {"type": "string", "maxLength": 40},
                        "Nomor penelepon (08…, +62… dan 0062… menemukan penelepon yang "
                        "sama)"),
                  Param("disposition", {"type": "string", "enum": list(DISPOSITIONS)},
                        "Akhir panggilan"),
                  limit_param(MAX_LIMIT))),
        Route("GET", "/api/calls/{call_id}", get_call, CASEWORK,
              "Satu panggilan dengan rekaman dan insidennya", "panggilan",
              Reply(200, "CallDetail")),
    ]
