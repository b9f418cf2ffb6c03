"""The JSON API's handlers and their route table: a thin layer over the services.

Who may do what (the roles of issue 5):

- **Operators and supervisors** work cases: incidents, calls and their labels, dispatches,
  ratings, field documentation, and recordings (an operator plays a call back after it, a
  supervisor reviews it). Every playback of a recording and every download of an attachment
  is written to the audit log *before* a byte is sent; if the log cannot be written, nothing
  is sent.
- **Admins** run the system (accounts, and in issue 5 the IVR, queues and agencies). They get
  the reference data (agencies, gazetteer) and the audit log, but no caller data: no calls,
  no incidents, no recordings. An admin who also works cases has a second account.
- **Supervisors and admins** read the audit log.
- **Operators** have a desk: the phone they work at, its queues (join, leave, pause with a
  reason, live through AMI), and the call ringing or answered there.

Handlers parse the request (path ids, query parameters, JSON bodies held to their schema),
call one service, and shape the answer; refusals are exceptions that ``errors`` maps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Final
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from recordings.domain import valid_call_id
from telephony.accounts.model import Role
from telephony.calls.archive import DISPOSITIONS, LINES, MAX_LIMIT, CallFilter
from telephony.core.storage import StoredFileError
from telephony.incidents.attachment_meta import check_filename
from telephony.incidents.edits import parse_patch
from telephony.incidents.model import Incident
from telephony.web.context import CONTEXT, ApiContext, WebConfig
from telephony.web.errors import ApiError, dumps
from telephony.web.routing import (
    CSRF_COOKIE,
    PUBLIC,
    ROUTE_TABLE,
    SESSION,
    SESSION_COOKIE,
    Access,
    Body,
    Param,
    Reply,
    Route,
)
from telephony.web.schemas import SCHEMAS, validate
from telephony.web.serialize import (
    agency_json,
    attachment_json,
    audit_json,
    call_json,
    desk_json,
    dispatch_json,
    event_json,
    incident_json,
    label_json,
    place_json,
    recording_json,
    session_json,
)

log = logging.getLogger("telephony.web")

EVERYONE: Final = Access.to(Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
CASEWORK: Final = Access.to(Role.OPERATOR, Role.SUPERVISOR)
# Recordings are evidence and hold callers' voices: those who handle or review calls only.
PLAYBACK: Final = Access.to(Role.OPERATOR, Role.SUPERVISOR)
OVERSIGHT: Final = Access.to(Role.SUPERVISOR, Role.ADMIN)
# A desk is an operator's phone; supervisors and admins have none.
DESK: Final = Access.to(Role.OPERATOR)

UPLOAD_CHUNK: Final = 64 * 1024
# Room for a multipart body's boundaries and part headers around the file itself.
MULTIPART_OVERHEAD: Final = 16 * 1024

_WHAT: Final = {"incident_id": "Insiden", "dispatch_id": "Pengiriman",
                "recording_id": "Rekaman", "attachment_id": "Lampiran"}

# -- request helpers ---------------------------------------------------------------------------


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def _actor(request: web.Request) -> str:
    return request[SESSION].account.username


def _remote(request: web.Request) -> str:
    return request.remote or ""


def _json(data: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def _path_id(request: web.Request, name: str) -> int:
    """A numeric id from the path; anything else names nothing (404)."""
    raw = request.match_info[name]
    if not raw.isdecimal() or len(raw) > 18 or int(raw) == 0:
        raise ApiError(404, "not_found", f"{_WHAT[name]} {raw[:40]!r} tidak ditemukan.")
    return int(raw)


def _call_id(request: web.Request) -> str:
    """A call id (an Asterisk unique id) from the path; anything else names nothing (404)."""
    call_id = request.match_info["call_id"]
    if not valid_call_id(call_id):
        raise ApiError(404, "not_found", f"Panggilan {call_id[:40]!r} tidak ditemukan.")
    return call_id


def _route(request: web.Request) -> Route:
    route = request.app[ROUTE_TABLE].route_of(request.match_info.route)
    assert route is not None  # the security middleware let only known routes through
    return route


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON body, held to the schema the route table documents for it."""
    body = _route(request).body
    assert body is not None and body.schema is not None
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "Kirim isi permintaan sebagai application/json.")
    try:
        data = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", "Isi permintaan bukan JSON yang sah.") from exc
    validate(data, SCHEMAS[body.schema])
    assert isinstance(data, dict)  # the schema says object
    return data


def _query(request: web.Request) -> Mapping[str, str]:
    """The query string, refusing parameters the route does not document."""
    known = {param.name for param in _route(request).query}
    for name in request.query:
        if name not in known:
            raise ApiError(422, "invalid", f"Parameter tidak dikenal: {name[:40]!r}.",
                           field=name[:40])
    return request.query


def _query_int(query: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdecimal() or not 1 <= int(raw) <= high:
        raise ApiError(422, "invalid", f"{name} harus bilangan 1-{high}.", field=name)
    return int(raw)


def _query_instant(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ApiError(422, "invalid", f"{name} harus waktu ISO 8601 dengan zona waktu, "
                                       "mis. 2025-01-31T08:00:00+07:00.", field=name)
    return instant


def _query_choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = query.get(name)
    if raw is not None and raw not in choices:
        raise ApiError(422, "invalid", f"{name} harus salah satu dari: {', '.join(choices)}.",
                       field=name)
    return raw


def _query_text(query: Mapping[str, str], name: str, max_length: int) -> str | None:
    raw = query.get(name)
    if raw is not None and (not raw or len(raw) > max_length):
        raise ApiError(422, "invalid", f"{name} harus 1-{max_length} karakter.", field=name)
    return raw


def _incident(ctx: ApiContext, incident: Incident) -> dict[str, Any]:
    return incident_json(incident, ctx.dispatches.sla_clock(incident, datetime.now(UTC)))


# -- session -----------------------------------------------------------------------------------


def set_session_cookies(response: web.StreamResponse, token: str, csrf_token: str,
                        config: WebConfig) -> None:
    """The session cookie, and the CSRF token's for the console's scripts."""
    max_age = int(config.session_lifetime.total_seconds())
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict",
                        secure=config.cookie_secure, path="/", max_age=max_age)
    # Readable by the console's own scripts, which copy it into the X-CSRF-Token header.
    response.set_cookie(CSRF_COOKIE, csrf_token, httponly=False, samesite="Strict",
                        secure=config.cookie_secure, path="/", max_age=max_age)


async def login(request: web.Request) -> web.StreamResponse:
    """Log in: a bearer token in the body, and the session cookie."""
    ctx = _ctx(request)
    data = await _body(request)
    new = await ctx.accounts.login(data["username"], data["password"],
                                   remote_address=_remote(request))
    response = _json(session_json(new.session, new.token), status=201)
    set_session_cookies(response, new.token, new.session.csrf_token, ctx.config)
    return response


async def current_session(request: web.Request) -> web.StreamResponse:
    """Who is logged in, until when, and the CSRF token for cookie-borne changes."""
    return _json(session_json(request[SESSION]))


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    await _ctx(request).accounts.logout(request[SESSION], remote_address=_remote(request))
    response = web.Response(status=204)
    clear_session_cookies(response)
    return response


def clear_session_cookies(response: web.StreamResponse) -> None:
    """Tell the browser to forget the session."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.del_cookie(name, path="/")


async def openapi(request: web.Request) -> web.StreamResponse:
    """This API's OpenAPI 3.1 description, made from the route table."""
    return _json(request.app[ROUTE_TABLE].openapi(
        title="siaga112 API", version=metadata.version("siaga112")))


# -- incidents ---------------------------------------------------------------------------------


async def list_incidents(request: web.Request) -> web.StreamResponse:
    """Open incidents, most urgent first, then oldest first."""
    ctx = _ctx(request)
    limit = _query_int(_query(request), "limit", 200, MAX_LIMIT)
    incidents = await ctx.incidents.open_incidents(limit=limit)
    return _json({"incidents": [_incident(ctx, incident) for incident in incidents]})


async def overdue_incidents(request: web.Request) -> web.StreamResponse:
    """Open incidents past their dispatch target."""
    breaches = await _ctx(request).dispatches.sla_breaches()
    return _json({"incidents": [incident_json(b.incident, b.clock) for b in breaches]})


async def create_incident(request: web.Request) -> web.StreamResponse:
    """Open an incident for a call, pre-filled from it."""
    ctx = _ctx(request)
    data = await _body(request)
    incident = await ctx.incidents.create_for_call(data["call_id"], actor=_actor(request))
    return _json(_incident(ctx, incident), status=201)


async def get_incident(request: web.Request) -> web.StreamResponse:
    """One incident with its calls, recordings, dispatches, timeline and attachments."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    incident = await ctx.incidents.get(incident_id)
    call_ids = await ctx.incidents.call_ids(incident_id)
    calls = await ctx.calls.records(call_ids)
    recordings = await ctx.recordings.of_calls(call_ids)
    dispatches = await ctx.dispatches.dispatches(incident_id)
    timeline = await ctx.incidents.timeline(incident_id)
    attachments = await ctx.incidents.attachments(incident_id)
    return _json({
        "incident": _incident(ctx, incident),
        "calls": [call_json(call) for call in calls],
        "recordings": [recording_json(recording) for recording in recordings],
        "dispatches": [dispatch_json(dispatch) for dispatch in dispatches],
        "timeline": [event_json(event) for event in timeline],
        "attachments": [attachment_json(attachment) for attachment in attachments],
    })


async def update_incident(request: web.Request) -> web.StreamResponse:
    """Edit an incident's details; only the fields sent change."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    data = await _body(request)
    version = data.pop("expected_version", None)
    incident = await ctx.incidents.update_details(
        incident_id, parse_patch(data), actor=_actor(request), expected_version=version)
    return _json(_incident(ctx, incident))


async def change_status(request: web.Request) -> web.StreamResponse:
    """Move an incident along its status timeline."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    data = await _body(request)
    incident = await ctx.incidents.change_status(
        incident_id, data["status"], actor=_actor(request), note=data.get("note", ""),
        expected_version=data.get("expected_version"))
    return _json(_incident(ctx, incident))


async def escalate_incident(request: web.Request) -> web.StreamResponse:
    """Raise an incident's escalation level, saying why."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    data = await _body(request)
    incident = await ctx.incidents.escalate(
        incident_id, data["level"], data["reason"], actor=_actor(request),
        expected_version=data.get("expected_version"))
    return _json(_incident(ctx, incident))


async def link_call(request: web.Request) -> web.StreamResponse:
    """Add a call (a repeat caller about the same event) to an open incident."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    data = await _body(request)
    incident = await ctx.incidents.link_call(
        incident_id, data["call_id"], actor=_actor(request),
        expected_version=data.get("expected_version"))
    return _json(_incident(ctx, incident))


async def rate_incident(request: web.Request) -> web.StreamResponse:
    """Record the caller's rating (1-5) of a resolved or closed incident."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    data = await _body(request)
    incident = await ctx.incidents.record_rating(incident_id, data["rating"],
                                                 actor=_actor(request))
    return _json(_incident(ctx, incident))


# -- dispatches --------------------------------------------------------------------------------


async def create_dispatch(request: web.Request) -> web.StreamResponse:
    """Dispatch an agency to a verified incident; its recipients are notified."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    data = await _body(request)
    dispatch = await ctx.dispatches.dispatch(
        incident_id, data["agency"], actor=_actor(request), note=data.get("note", ""),
        expected_version=data.get("expected_version"))
    return _json(dispatch_json(dispatch), status=201)


async def advance_dispatch(request: web.Request) -> web.StreamResponse:
    """Record a dispatch's next step (acknowledged, on scene, done)."""
    ctx = _ctx(request)
    dispatch_id = _path_id(request, "dispatch_id")
    data = await _body(request)
    dispatch = await ctx.dispatches.advance_dispatch(dispatch_id, data["state"],
                                                     actor=_actor(request))
    return _json(dispatch_json(dispatch))


# -- attachments -------------------------------------------------------------------------------


async def list_attachments(request: web.Request) -> web.StreamResponse:
    """An incident's attachments."""
    attachments = await _ctx(request).incidents.attachments(_path_id(request, "incident_id"))
    return _json({"attachments": [attachment_json(a) for a in attachments]})


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(UPLOAD_CHUNK):
        yield chunk


async def _upload(request: web.Request, max_bytes: int) -> tuple[str, AsyncIterator[bytes]]:
    """The client's file name and the file's bytes, from a multipart form (field ``file``)
    or a raw body (name in ``?filename=`` or Content-Disposition)."""
    declared = request.content_length
    if request.content_type == "multipart/form-data":
        if declared is not None and declared > max_bytes + MULTIPART_OVERHEAD:
            raise ApiError(413, "too_large", f"Berkas terlalu besar (maksimal "
                                             f"{max_bytes / 1_048_576:.0f} MB).")
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "file":
                return check_filename(part.filename), _part_chunks(part)
            await part.release()
        raise ApiError(422, "invalid", "Unggahan tidak berisi bagian 'file'.", field="file")
    if declared is not None and declared > max_bytes:
        raise ApiError(413, "too_large",
                       f"Berkas terlalu besar (maksimal {max_bytes / 1_048_576:.0f} MB).")
    name = _query(request).get("filename")
    if name is None and (disposition := request.headers.get("Content-Disposition")):
        name = content_disposition_filename(parse_content_disposition(disposition)[1],
                                            "filename")
    return check_filename(name), request.content.iter_chunked(UPLOAD_CHUNK)


async def upload_attachment(request: web.Request) -> web.StreamResponse:
    """Attach a file (photo, document) to an incident; streamed to disk within the size
    limit, stored under a name of our own, its content type sniffed."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    await ctx.incidents.get(incident_id)  # 404 before a byte is read
    max_bytes = ctx.config.attachment_max_bytes
    filename, chunks = await _upload(request, max_bytes)
    stored = await ctx.attachments.receive(incident_id, chunks, max_bytes=max_bytes)
    try:
        attachment = await ctx.incidents.add_attachment(
            incident_id, filename=filename, content_type=stored.content_type,
            size_bytes=stored.size_bytes, sha256=stored.sha256,
            stored_path=stored.stored_path, actor=_actor(request))
    except BaseException:
        ctx.attachments.discard(stored.stored_path)
        raise
    await ctx.accounts.audit(
        actor=_actor(request), action="attachment.upload", object_type="attachment",
        object_id=str(attachment.attachment_id), remote_address=_remote(request),
        detail={"incident_id": incident_id, "filename": filename,
                "size_bytes": stored.size_bytes, "sha256": stored.sha256})
    return _json(attachment_json(attachment), status=201)


async def download_attachment(request: web.Request) -> web.StreamResponse:
    """Download an attachment (audited before it is sent)."""
    ctx = _ctx(request)
    incident_id = _path_id(request, "incident_id")
    attachment_id = _path_id(request, "attachment_id")
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
    await ctx.accounts.audit(
        actor=_actor(request), action="attachment.download", object_type="attachment",
        object_id=str(attachment_id), remote_address=_remote(request),
        detail={"incident_id": incident_id, "range": request.headers.get("Range")})
    return web.FileResponse(path, headers={
        "Content-Type": attachment.content_type,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
        # An uploaded file is never rendered as a page of ours.
        "Content-Security-Policy": "sandbox; default-src 'none'",
    })


# -- calls and recordings ----------------------------------------------------------------------


async def list_calls(request: web.Request) -> web.StreamResponse:
    """Recent calls, newest first, filtered."""
    query = _query(request)
    which = CallFilter(
        since=_query_instant(query, "since"),
        until=_query_instant(query, "until"),
        line=_query_choice(query, "line", LINES),
        caller_number=_query_text(query, "caller_number", 40),
        disposition=_query_choice(query, "disposition", DISPOSITIONS),
        limit=_query_int(query, "limit", 100, MAX_LIMIT),
    )
    ctx = _ctx(request)
    records = await ctx.calls.recent(which)
    # Who looked up whose calls: searching a number is the privacy-relevant act.
    await ctx.accounts.audit(
        actor=_actor(request), action="call.search", object_type="call",
        object_id=which.caller_number or "", remote_address=_remote(request),
        detail={"query": dict(query), "found": len(records)})
    return _json({"calls": [call_json(record) for record in records]})


async def get_call(request: web.Request) -> web.StreamResponse:
    """One call with its recordings and the incident it belongs to."""
    ctx = _ctx(request)
    call_id = _call_id(request)
    record, incident_id = await ctx.calls.get(call_id)
    recordings = await ctx.recordings.of_calls([call_id])
    await ctx.accounts.audit(
        actor=_actor(request), action="call.view", object_type="call", object_id=call_id,
        remote_address=_remote(request), detail={})
    return _json({"call": call_json(record), "incident_id": incident_id,
                  "recordings": [recording_json(r) for r in recordings]})


async def label_call(request: web.Request) -> web.StreamResponse:
    """Label a call (genuine, prank, silent, accidental, test); a new label corrects the
    last one. Labels feed the prank screening of the caller's later calls."""
    ctx = _ctx(request)
    call_id = _call_id(request)
    data = await _body(request)
    stored = await ctx.screening.label(call_id, data["label"], _actor(request),
                                       data.get("note", ""))
    return _json(label_json(stored), status=201)


async def call_labels(request: web.Request) -> web.StreamResponse:
    """A call's label events, oldest first (the last is current)."""
    labels = await _ctx(request).screening.labels(_call_id(request))
    return _json({"labels": [label_json(stored) for stored in labels]})


async def get_recording(request: web.Request) -> web.StreamResponse:
    """A recording's metadata."""
    recording = await _ctx(request).recordings.get(_path_id(request, "recording_id"))
    return _json(recording_json(recording))


async def play_recording(request: web.Request) -> web.StreamResponse:
    """Stream a recording's audio (HTTP Range supported); audited before it is sent."""
    ctx = _ctx(request)
    recording = await ctx.recordings.get(_path_id(request, "recording_id"))
    audio = ctx.recordings.audio(recording)
    await ctx.accounts.audit(
        actor=_actor(request), action="recording.play", object_type="recording",
        object_id=str(recording.recording_id), remote_address=_remote(request),
        detail={"call_id": recording.call_id, "range": request.headers.get("Range")})
    return web.FileResponse(audio.path, headers={"Content-Type": audio.content_type})


# -- the operator's desk -----------------------------------------------------------------------


async def get_desk(request: web.Request) -> web.StreamResponse:
    """The operator's desk: skills, queues as Asterisk reports them, the call ringing or
    answered there with its prank score, the caller's recent calls, and the open incidents
    the call could be linked to (a repeat caller about the same event)."""
    ctx = _ctx(request)
    desk = await ctx.desks.state(request[SESSION].account)
    related = ([] if desk.current is None
               else await ctx.incidents.merge_candidates(desk.current.call.call_id))
    return _json({**desk_json(desk), "related": [_incident(ctx, i) for i in related]})


async def join_queues(request: web.Request) -> web.StreamResponse:
    """Join the queues of some of the operator's skills (AMI QueueAdd)."""
    data = await _body(request)
    joined = await _ctx(request).desks.join(request[SESSION].account, data["skills"],
                                            remote_address=_remote(request))
    return _json({"queues": joined})


async def leave_queues(request: web.Request) -> web.StreamResponse:
    """Leave every queue (AMI QueueRemove)."""
    left = await _ctx(request).desks.leave(request[SESSION].account,
                                           remote_address=_remote(request))
    return _json({"queues": left})


async def pause_desk(request: web.Request) -> web.StreamResponse:
    """Pause in every queue with a reason (AMI QueuePause)."""
    data = await _body(request)
    await _ctx(request).desks.pause(request[SESSION].account, data["reason"],
                                    remote_address=_remote(request))
    return web.Response(status=204)


async def resume_desk(request: web.Request) -> web.StreamResponse:
    """End the pause (AMI QueuePause)."""
    await _ctx(request).desks.resume(request[SESSION].account,
                                     remote_address=_remote(request))
    return web.Response(status=204)


# -- reference data and the audit log ----------------------------------------------------------


async def list_agencies(request: web.Request) -> web.StreamResponse:
    """The agencies incidents are dispatched to."""
    agencies = await _ctx(request).directory.agencies()
    return _json({"agencies": [agency_json(agency) for agency in agencies]})


async def list_places(request: web.Request) -> web.StreamResponse:
    """The gazetteer's villages (of one sub-district, if given)."""
    code = _query_text(_query(request), "sub_district_code", 20)
    places = await _ctx(request).directory.places(sub_district_code=code)
    return _json({"places": [place_json(place) for place in places]})


async def list_audit(request: web.Request) -> web.StreamResponse:
    """The newest audit log entries, optionally about one object or by one actor."""
    query = _query(request)
    entries = await _ctx(request).accounts.audit_entries(
        object_type=_query_text(query, "object_type", 40),
        object_id=_query_text(query, "object_id", 64),
        actor=_query_text(query, "actor", 64),
        limit=_query_int(query, "limit", 100, MAX_LIMIT),
    )
    return _json({"entries": [audit_json(entry) for entry in entries]})


# -- the table ---------------------------------------------------------------------------------

_LIMIT: Final = Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                      "Jumlah maksimal baris")
_JSON_BODY_TYPES: Final = {"application/json": {"type": "object"}}
_UPLOAD: Final = Body(None, {
    "multipart/form-data": {"type": "object", "properties": {
        "file": {"type": "string", "contentMediaType": "application/octet-stream"}},
        "required": ["file"]},
    "application/octet-stream": {"type": "string",
                                 "contentMediaType": "application/octet-stream"},
})
_AUDIO: Final = Reply(200, None, {"audio/ogg": {}, "audio/mpeg": {}},
                      "Audio rekaman (206 untuk permintaan Range)")


def api_routes() -> list[Route]:
    """Every route of the JSON API, with who may call it."""
    incident = "/api/incidents/{incident_id}"
    return [
        Route("POST", "/api/session", login, PUBLIC, "Masuk (login)", "sesi",
              Reply(201, "Session"), Body("Login"), errors=(401, 429)),
        Route("GET", "/api/session", current_session, EVERYONE, "Sesi saat ini", "sesi",
              Reply(200, "Session")),
        Route("DELETE", "/api/session", logout, EVERYONE, "Keluar (logout)", "sesi",
              Reply(204, None, description="Sesi diakhiri")),
        Route("GET", "/api/openapi.json", openapi, EVERYONE, "Deskripsi OpenAPI ini",
              "sesi", Reply(200, None, _JSON_BODY_TYPES)),
        Route("GET", "/api/incidents", list_incidents, CASEWORK, "Insiden terbuka",
              "insiden", Reply(200, "IncidentList"), query=(_LIMIT,)),
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
        Route("GET", "/api/calls", list_calls, CASEWORK, "Panggilan terbaru", "panggilan",
              Reply(200, "CallList"), query=(
                  Param("since", {"type": "string", "format": "date-time"},
                        "Tiba sejak (dengan zona waktu)"),
                  Param("until", {"type": "string", "format": "date-time"},
                        "Tiba sebelum (dengan zona waktu)"),
                  Param("line", {"type": "string", "enum": list(LINES)}, "Jalur"),
                  Param("caller_number", {"type": "string", "maxLength": 40},
                        "Nomor penelepon"),
                  Param("disposition", {"type": "string", "enum": list(DISPOSITIONS)},
                        "Akhir panggilan"),
                  _LIMIT)),
        Route("GET", "/api/calls/{call_id}", get_call, CASEWORK,
              "Satu panggilan dengan rekaman dan insidennya", "panggilan",
              Reply(200, "CallDetail")),
        Route("POST", "/api/calls/{call_id}/labels", label_call, CASEWORK,
              "Beri label panggilan (asli, iseng, diam, tidak sengaja, uji coba)",
              "panggilan", Reply(201, "CallLabel"), Body("NewCallLabel")),
        Route("GET", "/api/calls/{call_id}/labels", call_labels, CASEWORK,
              "Riwayat label panggilan", "panggilan", Reply(200, "CallLabelList")),
        Route("GET", "/api/recordings/{recording_id}", get_recording, PLAYBACK,
              "Data rekaman", "rekaman", Reply(200, "Recording")),
        Route("GET", "/api/recordings/{recording_id}/audio", play_recording, PLAYBACK,
              "Putar rekaman (dicatat di log audit)", "rekaman", _AUDIO, errors=(416,)),
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
        Route("GET", "/api/agencies", list_agencies, EVERYONE, "Instansi", "referensi",
              Reply(200, "AgencyList")),
        Route("GET", "/api/places", list_places, EVERYONE, "Gazetir desa/kelurahan",
              "referensi", Reply(200, "PlaceList"), query=(
                  Param("sub_district_code", {"type": "string", "maxLength": 20},
                        "Kode kecamatan"),)),
        Route("GET", "/api/audit", list_audit, OVERSIGHT, "Log audit", "audit",
              Reply(200, "AuditList"), query=(
                  Param("object_type", {"type": "string", "maxLength": 40}, "Jenis objek"),
                  Param("object_id", {"type": "string", "maxLength": 64}, "Nomor objek"),
                  Param("actor", {"type": "string", "maxLength": 64}, "Pelaku"),
                  _LIMIT)),
    ]
