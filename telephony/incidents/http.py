"""The incidents' HTTP routes: incidents, their dispatches and field documentation
(attachments), and the reference data they use (agencies, the gazetteer).

Operators and supervisors work cases; admins get the reference data but no caller data. Every
download of an attachment is written to the audit log *before* a byte is sent; if the log
cannot be written, nothing is sent.

Handlers parse the request (path ids, query parameters, JSON bodies held to their schema),
call one service, and shape the answer; refusals are exceptions that ``web.errors`` maps.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from recordings.http import recording_json
from telephony.calls.archive import MAX_LIMIT
from telephony.calls.http import call_json
from telephony.core.storage import StoredFileError
from telephony.incidents.attachment_meta import Attachment
from telephony.incidents.directory import Agency, Place
from telephony.incidents.dispatches import Dispatch, SlaClock
from telephony.incidents.edits import parse_patch
from telephony.incidents.model import Incident, IncidentEvent, Status
from telephony.web.context import ApiContext
from telephony.web.errors import ApiError
from telephony.web.request import (
    actor_of,
    context_of,
    file_response,
    head_mark,
    instant_json,
    json_body,
    json_response,
    path_id,
    query_choice,
    query_int,
    query_of,
    query_text,
    read_upload,
    remote_of,
)
from telephony.web.routing import (
    CASEWORK,
    EVERYONE,
    Body,
    Param,
    Reply,
    Route,
    limit_param,
    offset_param,
)

log = logging.getLogger("telephony.web")

# The lists GET /api/incidents gives: the open incidents, or those resolved and waiting to
# be closed.
LISTS: Final = ("open", Status.RESOLVED.value)
# How far a client may page into the open incidents: far past any real backlog, short of the
# deep OFFSET scans a hostile client could ask PostgreSQL for.
MAX_OFFSET: Final = 100_000

_UPLOAD: Final = Body(None, {
    "multipart/form-data": {"type": "object", "properties": {
        "file": {"type": "string", "contentMediaType": "application/octet-stream"}},
        "required": ["file"]},
    "application/octet-stream": {"type": "string",
                                 "contentMediaType": "application/octet-stream"},
})


def sla_json(clock: SlaClock | None) -> dict[str, Any] | None:
    """An incident's dispatch clock."""
    if clock is None:
        return None
    return {
        "target_seconds": int(clock.target.total_seconds()),
        "due_at": instant_json(clock.due_at),
        "breached": clock.breached,
        "overdue_seconds": int(clock.overdue.total_seconds()),
    }


def incident_json(incident: Incident, clock: SlaClock | None) -> dict[str, Any]:
    """An incident with its labels and dispatch clock."""
    point = incident.coordinates
    return {
        "incident_id": incident.incident_id,
        "version": incident.version,
        "status": incident.status.value,
        "status_label": incident.status.label,
        "report_type": incident.report_type.value,
        "report_type_label": incident.report_type.label,
        "priority": int(incident.priority),
        "priority_label": incident.priority.label,
        "line": incident.line,
        "caller_number": incident.caller_number,
        "ivr_category": incident.ivr_category,
        "ivr_skill": incident.ivr_skill,
        "operator": incident.operator,
        "location_text": incident.location_text,
        "village_code": incident.village_code,
        "village_name": incident.village_name,
        "sub_district_code": incident.sub_district_code,
        "sub_district_name": incident.sub_district_name,
        "latitude": point.latitude if point else None,
        "longitude": point.longitude if point else None,
        "description": incident.description,
        "escalation_level": incident.escalation_level.value,
        "escalation_label": incident.escalation_level.label,
        "escalation_reason": incident.escalation_reason,
        "rating": incident.rating,
        "rated_at": instant_json(incident.rated_at),
        "answered_at": instant_json(incident.answered_at),
        "dispatched_at": instant_json(incident.dispatched_at),
        "status_changed_at": instant_json(incident.status_changed_at),
        "created_at": instant_json(incident.created_at),
        "updated_at": instant_json(incident.updated_at),
        "created_by": incident.created_by,
        "sla": sla_json(clock),
    }


def event_json(event: IncidentEvent) -> dict[str, Any]:
    """One entry of an incident's timeline."""
    return {"event_id": event.event_id, "at": instant_json(event.at), "actor": event.actor,
            "kind": event.kind, "detail": dict(event.detail)}


def dispatch_json(dispatch: Dispatch) -> dict[str, Any]:
    """A dispatch with its own timeline."""
    return {
        "dispatch_id": dispatch.dispatch_id,
        "incident_id": dispatch.incident_id,
        "agency_code": dispatch.agency_code,
        "agency_name": dispatch.agency_name,
        "state": dispatch.state.value,
        "state_label": dispatch.state.label,
        "notified_at": instant_json(dispatch.notified_at),
        "acknowledged_at": instant_json(dispatch.acknowledged_at),
        "on_scene_at": instant_json(dispatch.on_scene_at),
        "done_at": instant_json(dispatch.done_at),
        "cancelled_at": instant_json(dispatch.cancelled_at),
        "dispatched_by": dispatch.dispatched_by,
        "note": dispatch.note,
        "by_phone": dispatch.by_phone,
        "phone": None if dispatch.phone is None else dispatch.phone.value,
        "phone_label": None if dispatch.phone is None else dispatch.phone.label,
    }


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    """An attachment's metadata and where to download it."""
    return {
        "attachment_id": attachment.attachment_id,
        "incident_id": attachment.incident_id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size_bytes": attachment.size_bytes,
        "sha256": attachment.sha256,
        "uploaded_by": attachment.uploaded_by,
        "uploaded_at": instant_json(attachment.uploaded_at),
        "download_url": (f"/api/incidents/{attachment.incident_id}/attachments/"
                         f"{attachment.attachment_id}"),
    }


def agency_json(agency: Agency) -> dict[str, Any]:
    """An agency."""
    return {"code": agency.code, "name": agency.name, "active": agency.active}


def place_json(place: Place) -> dict[str, Any]:
    """A village of the gazetteer with its sub-district."""
    return {"village_code": place.village_code, "village_name": place.village_name,
            "sub_district_code": place.sub_district_code,
            "sub_district_name": place.sub_district_name}


def incident_sla_json(ctx: ApiContext, incident: Incident) -> dict[str, Any]:
    """An incident with its dispatch clock as it stands now."""
    return incident_json(incident, ctx.dispatches.sla_clock(incident, datetime.now(UTC)))


# -- incidents ---------------------------------------------------------------------------------


async def list_incidents(request: web.Request) -> web.StreamResponse:
    """A page of the open incidents (``?status=resolved``: those resolved and waiting to be
    closed, which no list held), most urgent first, then oldest first, with the offset of
    the next page (``null`` on the last): one row past the page tells whether it is."""
    ctx = context_of(request)
    query = query_of(request)
    limit = query_int(query, "limit", 200, MAX_LIMIT)
    offset = query_int(query, "offset", 0, MAX_OFFSET, low=0)
    resolved = query_choice(query, "status", LISTS) == Status.RESOLVED.value
    incidents = await ctx.incidents.open_incidents(limit=limit + 1, offset=offset,
                                                   resolved=resolved)
    return json_response({
        "incidents": [incident_sla_json(ctx, incident) for incident in incidents[:limit]],
        "next_offset": offset + limit if len(incidents) > limit else None,
    })


async def overdue_incidents(request: web.Request) -> web.StreamResponse:
    """Open incidents past their dispatch target."""
    breaches = await context_of(request).dispatches.sla_breaches()
    return json_response({"incidents": [incident_json(b.incident, b.clock) for b in breaches]})


async def create_incident(request: web.Request) -> web.StreamResponse:
    """Open an incident for a call, pre-filled from it."""
    ctx = context_of(request)
    data = await json_body(request)
    incident = await ctx.incidents.create_for_call(data["call_id"], actor=actor_of(request))
    return json_response(incident_sla_json(ctx, incident), status=201)


async def get_incident(request: web.Request) -> web.StreamResponse:
    """One incident with its calls, recordings, dispatches, timeline and attachments."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    incident = await ctx.incidents.get(incident_id)
    call_ids = await ctx.incidents.call_ids(incident_id)
    calls = await ctx.calls.records(call_ids)
    recordings = await ctx.recordings.of_calls(call_ids)
    dispatches = await ctx.dispatches.dispatches(incident_id)
    timeline = await ctx.incidents.timeline(incident_id)
    attachments = await ctx.incidents.attachments(incident_id)
    return json_response({
        "incident": incident_sla_json(ctx, incident),
        "calls": [call_json(call) for call in calls],
        "recordings": [recording_json(recording) for recording in recordings],
        "dispatches": [dispatch_json(dispatch) for dispatch in dispatches],
        "timeline": [event_json(event) for event in timeline],
        "attachments": [attachment_json(attachment) for attachment in attachments],
    })


async def update_incident(request: web.Request) -> web.StreamResponse:
    """Edit an incident's details; only the fields sent change."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    data = await json_body(request)
    version = data.pop("expected_version", None)
    incident = await ctx.incidents.update_details(
        incident_id, parse_patch(data), actor=actor_of(request), expected_version=version)
    return json_response(incident_sla_json(ctx, incident))


async def change_status(request: web.Request) -> web.StreamResponse:
    """Move an incident along its status timeline."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    data = await json_body(request)
    incident = await ctx.incidents.change_status(
        incident_id, data["status"], actor=actor_of(request), note=data.get("note", ""),
        expected_version=data.get("expected_version"))
    return json_response(incident_sla_json(ctx, incident))


async def escalate_incident(request: web.Request) -> web.StreamResponse:
    """Raise an incident's escalation level, saying why."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    data = await json_body(request)
    incident = await ctx.incidents.escalate(
        incident_id, data["level"], data["reason"], actor=actor_of(request),
        expected_version=data.get("expected_version"))
    return json_response(incident_sla_json(ctx, incident))


async def link_call(request: web.Request) -> web.StreamResponse:
    """Add a call (a repeat caller about the same event) to an open incident."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    data = await json_body(request)
    incident = await ctx.incidents.link_call(
        incident_id, data["call_id"], actor=actor_of(request),
        expected_version=data.get("expected_version"))
    return json_response(incident_sla_json(ctx, incident))


async def rate_incident(request: web.Request) -> web.StreamResponse:
    """Record the caller's rating (1-5) of a resolved or closed incident."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    data = await json_body(request)
    incident = await ctx.incidents.record_rating(incident_id, data["rating"],
                                                 actor=actor_of(request))
    return json_response(incident_sla_json(ctx, incident))


# -- dispatches --------------------------------------------------------------------------------


async def create_dispatch(request: web.Request) -> web.StreamResponse:
    """Dispatch an agency to a verified incident; its recipients are notified."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    data = await json_body(request)
    dispatch = await ctx.dispatches.dispatch(
        incident_id, data["agency"], actor=actor_of(request), note=data.get("note", ""),
        expected_version=data.get("expected_version"))
    return json_response(dispatch_json(dispatch), status=201)


async def advance_dispatch(request: web.Request) -> web.StreamResponse:
    """Record a dispatch's next step (acknowledged, on scene, done), or cancel it with the
    reason in ``note``."""
    ctx = context_of(request)
    dispatch_id = path_id(request, "dispatch_id", "Pengiriman")
    data = await json_body(request)
    dispatch = await ctx.dispatches.advance_dispatch(dispatch_id, data["state"],
                                                    actor=actor_of(request),
                                                    note=data.get("note", ""))
    return json_response(dispatch_json(dispatch))


# -- attachments -------------------------------------------------------------------------------


async def list_attachments(request: web.Request) -> web.StreamResponse:
    """An incident's attachments."""
    incident_id = path_id(request, "incident_id", "Insiden")
    attachments = await context_of(request).incidents.attachments(incident_id)
    return json_response({"attachments": [attachment_json(a) for a in attachments]})


async def upload_attachment(request: web.Request) -> web.StreamResponse:
    """Attach a file (photo, document) to an incident; streamed to disk within the size
    limit, stored under a name of our own, its content type sniffed."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    await ctx.incidents.get(incident_id)  # 404 before a byte is read
    max_bytes = ctx.config.attachment_max_bytes
    filename, chunks = await read_upload(request, max_bytes)
    stored = await ctx.attachments.receive(incident_id, chunks, max_bytes=max_bytes)
    try:
        attachment = await ctx.incidents.add_attachment(
            incident_id, filename=filename, content_type=stored.content_type,
            size_bytes=stored.size_bytes, sha256=stored.sha256,
            stored_path=stored.stored_path, actor=actor_of(request))
    except BaseException:
        ctx.attachments.discard(stored.stored_path)
        raise
    await ctx.accounts.audit(
        actor=actor_of(request), action="attachment.upload", object_type="attachment",
        object_id=str(attachment.attachment_id), remote_address=remote_of(request),
        detail={"incident_id": incident_id, "filename": filename,
                "size_bytes": stored.size_bytes, "sha256": stored.sha256})
    return json_response(attachment_json(attachment), status=201)


async def download_attachment(request: web.Request) -> web.StreamResponse:
    """Download an attachment (audited before it is sent)."""
    ctx = context_of(request)
    incident_id = path_id(request, "incident_id", "Insiden")
    attachment_id = path_id(request, "attachment_id", "Lampiran")
    found = [a for a in await ctx.incidents.attachments(incident_id)
             if a.attachment_id == attachment_id]
    if not found:
        raise ApiError(404, "not_found", f"Lampiran #{attachment_id} tidak ditemukan.")
    attachment = found[0]
    try:
        path = ctx.attachments.file(attachment.stored_path)
    except StoredFileError as exc:
        log.error("attachment %d not served: %s", attachment_id, exc)
        raise ApiError(404, "attachment_unavailable",
                       f"Berkas lampiran #{attachment_id} tidak tersedia.") from exc
    response = file_response(request, path, {
        "Content-Type": attachment.content_type,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
        # An uploaded file is never rendered as a page of ours.
        "Content-Security-Policy": "sandbox; default-src 'none'",
    })
    await ctx.accounts.audit(
        actor=actor_of(request), action="attachment.download", object_type="attachment",
        object_id=str(attachment_id), remote_address=remote_of(request),
        detail={"incident_id": incident_id, "range": request.headers.get("Range"),
                **head_mark(request)})
    return response


# -- reference data ----------------------------------------------------------------------------


async def list_agencies(request: web.Request) -> web.StreamResponse:
    """The agencies incidents are dispatched to."""
    agencies = await context_of(request).directory.agencies()
    return json_response({"agencies": [agency_json(agency) for agency in agencies]})


async def list_places(request: web.Request) -> web.StreamResponse:
    """The gazetteer's villages (of one sub-district, if given)."""
    code = query_text(query_of(request), "sub_district_code", 20)
    places = await context_of(request).directory.places(sub_district_code=code)
    return json_response({"places": [place_json(place) for place in places]})


def routes() -> list[Route]:
    """The incidents' routes, with who may call them."""
    incident = "/api/incidents/{incident_id}"
    return [
        Route("GET", "/api/incidents", list_incidents, CASEWORK,
              "Insiden terbuka (atau yang selesai ditangani, menunggu ditutup), per halaman "
              "(ikuti next_offset)", "insiden",
              Reply(200, "IncidentPage"),
              query=(limit_param(MAX_LIMIT), offset_param(MAX_OFFSET),
                     Param("status", {"type": "string", "enum": list(LISTS)},
                           "open (bawaan): yang terbuka; resolved: menunggu ditutup"))),
        Route("POST", "/api/incidents", create_incident, CASEWORK,
              "Buka insiden untuk sebuah panggilan", "insiden", Reply(201, "Incident"),
              Body("CreateIncident"), errors=(404, 409)),
        Route("GET", "/api/incidents/overdue", overdue_incidents, CASEWORK,
              "Insiden terbuka yang melewati target pengiriman", "insiden",
              Reply(200, "IncidentList")),
        Route("GET", incident, get_incident, CASEWORK, "Satu insiden lengkap", "insiden",
              Reply(200, "IncidentDetail")),
        Route("PATCH", incident, update_incident, CASEWORK, "Ubah rincian insiden",
              "insiden", Reply(200, "Incident"), Body("IncidentPatch"), errors=(409,)),
        Route("POST", f"{incident}/status", change_status, CASEWORK, "Ubah status insiden",
              "insiden", Reply(200, "Incident"), Body("StatusChange"), errors=(409,)),
        Route("POST", f"{incident}/escalation", escalate_incident, CASEWORK,
              "Naikkan tingkat eskalasi", "insiden", Reply(200, "Incident"),
              Body("Escalation"), errors=(409,)),
        Route("POST", f"{incident}/calls", link_call, CASEWORK,
              "Kaitkan panggilan ke insiden", "insiden", Reply(200, "Incident"),
              Body("LinkCall"), errors=(409,)),
        Route("POST", f"{incident}/rating", rate_incident, CASEWORK,
              "Catat penilaian penelepon (1-5)", "insiden", Reply(200, "Incident"),
              Body("Rating"), errors=(409,)),
        Route("POST", f"{incident}/dispatches", create_dispatch, CASEWORK,
              "Teruskan ke instansi", "pengiriman", Reply(201, "Dispatch"),
              Body("NewDispatch"), errors=(409,)),
        Route("POST", "/api/dispatches/{dispatch_id}/state", advance_dispatch, CASEWORK,
              "Catat tahap pengiriman berikutnya", "pengiriman", Reply(200, "Dispatch"),
              Body("DispatchStep"), errors=(409,)),
        Route("GET", f"{incident}/attachments", list_attachments, CASEWORK,
              "Lampiran insiden", "lampiran", Reply(200, "AttachmentList")),
        Route("POST", f"{incident}/attachments", upload_attachment, CASEWORK,
              "Unggah dokumentasi lapangan", "lampiran", Reply(201, "Attachment"), _UPLOAD,
              query=(Param("filename", {"type": "string", "maxLength": 200},
                           "Nama berkas, untuk unggahan mentah"),),
              errors=(413,)),
        Route("GET", f"{incident}/attachments/{{attachment_id}}", download_attachment,
              CASEWORK, "Unduh lampiran (dicatat di log audit)", "lampiran",
              Reply(200, None, {"application/octet-stream": {}}, "Isi berkas"),
              errors=(416,)),
        Route("GET", "/api/agencies", list_agencies, EVERYONE, "Instansi", "referensi",
              Reply(200, "AgencyList")),
        Route("GET", "/api/places", list_places, EVERYONE, "Gazetir desa/kelurahan",
              "referensi", Reply(200, "PlaceList"), query=(
                  Param("sub_district_code", {"type": "string", "maxLength": 20},
                        "Kode kecamatan"),)),
    ]
