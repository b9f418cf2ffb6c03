"""The console's pages and form actions, and their routes with the roles each serves.

They go into the same route table as the JSON API (``telephony.web.routing``), so a page
without an access policy cannot exist and the security middleware checks the session, the
role and, on every form post, the session's CSRF token (the ``csrf_token`` field). Forms post
and redirect back (303) with a one-shot message; a refused form says why on the page it came
from and changed nothing. Logging in is the one public form: it carries a token of its own,
bound to a cookie set with the form, so another site cannot log a browser in.

The operator screen is one page; its script polls ``GET /api/desk`` for the queues and the
call in front of the operator. Everything else is plain HTML.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from multidict import MultiDict, MultiMapping

from recordings.domain import Kind, State, valid_call_id
from telephony.accounts.model import AccountError, Role
from telephony.desks.operators import PauseReason
from telephony.incidents.model import (
    DISPATCH_STATE_LABELS,
    EDITABLE_STATUSES,
    ESCALATION_LABELS,
    PRIORITY_LABELS,
    REPORT_TYPE_LABELS,
    STATUS_LABELS,
    TRANSITIONS,
    CallAlreadyLinked,
    EscalationLevel,
    InvalidTransition,
    Status,
    ValidationError,
    parse_patch,
    status_for_dispatch,
)
from telephony.screening.features import Label
from telephony.web.api import (
    CASEWORK,
    DESK,
    EVERYONE,
    OVERSIGHT,
    PLAYBACK,
    clear_session_cookies,
    set_session_cookies,
)
from telephony.web.console.render import (
    ASSETS,
    LOGIN_PATH,
    PREFIX,
    Flash,
    page,
    redirect,
)
from telephony.web.context import CONTEXT, ApiContext
from telephony.web.errors import ApiError, api_error, log_refusal
from telephony.web.routing import PUBLIC, SESSION, Access, Handler, Reply, Route
from telephony.web.security import FORM_TYPE
from telephony.web.serialize import (
    CATEGORY_LABELS,
    DISPOSITION_LABELS,
    SKILL_LABELS,
    recording_json,
)

log = logging.getLogger("telephony.web")

ADMIN: Final = Access.to(Role.ADMIN)
LOGIN_COOKIE: Final = "siaga112_login"
LOGIN_FIELD: Final = "login_token"
_LOGIN_FORM_SECONDS: Final = 3600
HOME: Final = f"{PREFIX}/"
OPERATOR_SCREEN: Final = f"{PREFIX}/operator"
# Where a label form may send the operator back to: their screen or an incident page.
_BACK: Final = re.compile(r"^/console/(operator|incidents/[1-9][0-9]{0,17})$")
_INCIDENT_ID: Final = re.compile(r"^[1-9][0-9]{0,17}$")
# What each kind of incident timeline entry is called on the page.
TIMELINE_LABELS: Final[Mapping[str, str]] = {
    "created": "Dibuat", "status": "Status diubah", "details": "Rincian diubah",
    "dispatch": "Diteruskan ke instansi", "call_linked": "Panggilan dikaitkan",
    "escalated": "Eskalasi", "rating": "Penilaian penelepon", "attachment": "Lampiran"}
# The incident fields an edit's timeline entry names.
FIELD_LABELS: Final[Mapping[str, str]] = {
    "report_type": "jenis", "priority": "prioritas", "location_text": "lokasi",
    "village_code": "desa", "sub_district_code": "kecamatan", "coordinates": "koordinat",
    "description": "uraian"}
# How the rest of a timeline entry's detail reads ({} is the value).
DETAIL_TEXT: Final[Mapping[str, str]] = {
    "note": "catatan: {}", "reason": "alasan: {}", "call_id": "panggilan {}",
    "merged_into": "digabungkan ke insiden #{}", "merged_from": "dipindah dari insiden #{}",
    "dispatch_id": "pengiriman #{}", "agency": "instansi: {}", "rating": "nilai {} dari 5",
    "attachment_id": "lampiran #{}", "filename": "berkas: {}", "size_bytes": "{} bita",
    "sha256": "SHA-256 {}", "status": "status: {}", "report_type": "jenis: {}",
    "priority": "prioritas: {}"}


def _codes(labels: Mapping[Any, str]) -> dict[str, str]:
    return {str(code.value): text for code, text in labels.items()}


# The words for the codes a timeline entry carries, by (kind of entry, detail key).
_CODE_TEXT: Final[Mapping[tuple[str, str], Mapping[str, str]]] = {
    **{("status", key): _codes(STATUS_LABELS) for key in ("from", "to")},
    ("status", "reason"): {"merged": "penelepon berulang, digabungkan"},
    ("created", "status"): _codes(STATUS_LABELS),
    ("created", "report_type"): _codes(REPORT_TYPE_LABELS),
    **{("escalated", key): _codes(ESCALATION_LABELS) for key in ("from", "to")},
    **{("dispatch", key): _codes(DISPATCH_STATE_LABELS) for key in ("from", "to")},
}
RECORDING_KINDS: Final[Mapping[Kind, str]] = {
    Kind.MIXED: "Rekaman panggilan", Kind.CALLER: "Suara penelepon saja",
    Kind.LINE: "Suara saluran dan operator saja"}
RECORDING_STATES: Final[Mapping[State, str]] = {
    State.PENDING: "menunggu diproses", State.PROCESSING: "sedang diproses",
    State.DONE: "siap diputar", State.FAILED: "gagal diproses",
    State.MISSING: "berkasnya tidak ditemukan", State.EXPIRED: "sudah dihapus (masa simpan habis)"}
_PAGE: Final = Reply(200, None, {"text/html": {}}, "Halaman")
_SEE_OTHER: Final = Reply(303, None, description="Kembali ke halaman dengan pesan")


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def _actor(request: web.Request) -> str:
    return request[SESSION].account.username


def _remote(request: web.Request) -> str:
    return request.remote or ""


Form = MultiMapping[str]


async def _form(request: web.Request) -> Form:
    """The posted form's text fields (a console form is always url-encoded)."""
    if request.content_type != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", "Kirim formulir sebagai "
                                                      f"{FORM_TYPE}.")
    posted = await request.post()
    return MultiDict((name, value) for name, value in posted.items() if isinstance(value, str))


def _incident_id(request: web.Request) -> int:
    raw = request.match_info["incident_id"]
    if not _INCIDENT_ID.match(raw):
        raise ApiError(404, "not_found", f"Insiden {raw[:40]!r} tidak ditemukan.")
    return int(raw)


def _version(form: Form) -> int:
    raw = form.get("version", "")
    if not _INCIDENT_ID.match(raw):
        raise ValidationError("version", "Versi formulir tidak sah; muat ulang halaman.")
    return int(raw)


@dataclass(frozen=True)
class Done:
    """A form action's outcome: the message to show, and where (default: back)."""

    message: str
    location: str | None = None


Action = Callable[[web.Request, Form], Awaitable[Done]]
Back = Callable[[web.Request, Form], str]


def form_action(back: Back, action: Action) -> Handler:
    """A form post: run ``action``, then redirect with its message; a refusal goes back to
    the form's page (``back``) with the reason, having changed nothing."""

    async def handler(request: web.Request) -> web.StreamResponse:
        form = await _form(request)
        back_to = back(request, form)
        try:
            done = await action(request, form)
        except Exception as exc:
            error = api_error(exc)
            if error is None or error.status in (401, 403):
                raise
            log_refusal(request, error)
            return redirect(request, back_to, Flash("error", error.message))
        return redirect(request, done.location or back_to, Flash("ok", done.message))

    handler.__name__ = action.__name__
    handler.__doc__ = action.__doc__
    return handler


# -- sessions ----------------------------------------------------------------------------------


async def root(request: web.Request) -> web.StreamResponse:
    """The bare address leads to the console."""
    return redirect(request, HOME)


async def static(request: web.Request) -> web.StreamResponse:
    """The console's stylesheet and script (named with their digest: cached for a day)."""
    asset = ASSETS.get(request.match_info["name"])
    if asset is None:
        raise ApiError(404, "not_found", "Berkas tidak ditemukan.")
    return web.Response(body=asset.body, content_type=asset.content_type,
                        headers={"Cache-Control": "public, max-age=86400"})


def _login_page(request: web.Request, *, status: int = 200, error: str = "",
                headers: Mapping[str, str] | None = None) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", status=status, headers=headers, title="Masuk",
                    login_token=token, error=error)
    response.set_cookie(LOGIN_COOKIE, token, path=LOGIN_PATH, max_age=_LOGIN_FORM_SECONDS,
                        httponly=True, samesite="Strict",
                        secure=_ctx(request).config.cookie_secure)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form."""
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """Check the login form; on success the session cookies and the way in."""
    ctx = _ctx(request)
    form = await _form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get(LOGIN_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("refused console login from %s: login form token missing or wrong",
                    request.remote)
        return _login_page(request, status=403, error="Formulir masuk kedaluwarsa atau tidak "
                                                      "sah. Silakan coba lagi.")
    try:
        new = await ctx.accounts.login(form.get("username", ""), form.get("password", ""),
                                       remote_address=_remote(request))
    except AccountError as exc:
        error = api_error(exc)
        assert error is not None  # every AccountError has its status
        log_refusal(request, error)
        return _login_page(request, status=error.status, error=error.message,
                           headers=error.headers)
    response = redirect(request, HOME)
    set_session_cookies(response, new.token, new.session.csrf_token, ctx.config)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session and go back to the login form."""
    await _ctx(request).accounts.logout(request[SESSION], remote_address=_remote(request))
    response = redirect(request, LOGIN_PATH, Flash("ok", "Anda telah keluar."))
    clear_session_cookies(response)
    return response


async def home(request: web.Request) -> web.StreamResponse:
    """Operators go to their screen; the others see the pages of their role."""
    if request[SESSION].account.role is Role.OPERATOR:
        return redirect(request, OPERATOR_SCREEN)
    return page(request, "home.html", title="Beranda")


# -- the operator screen -----------------------------------------------------------------------


async def operator_screen(request: web.Request) -> web.StreamResponse:
    """The operator's screen: desk, the call in front of them, the caller's history."""
    desk = await _ctx(request).desks.state(request[SESSION].account)
    return page(request, "operator.html", title="Layar operator", desk=desk,
                skill_labels=SKILL_LABELS, pause_reasons=PauseReason.labels(),
                labels=Label.labels())


def _to_screen(_: web.Request, __: Form) -> str:
    return OPERATOR_SCREEN


async def join_queues(request: web.Request, form: Form) -> Done:
    """Join the queues of the skills ticked."""
    skills = form.getall("skill", [])
    joined = await _ctx(request).desks.join(request[SESSION].account, skills,
                                            remote_address=_remote(request))
    if not joined:
        return Done("Anda sudah berada di semua antrean itu.")
    return Done(f"Masuk antrean: {', '.join(joined)}.")


async def leave_queues(request: web.Request, form: Form) -> Done:
    """Leave every queue."""
    left = await _ctx(request).desks.leave(request[SESSION].account,
                                           remote_address=_remote(request))
    return Done(f"Keluar dari antrean: {', '.join(left)}.")


async def pause(request: web.Request, form: Form) -> Done:
    """Pause with the reason chosen."""
    reason = await _ctx(request).desks.pause(request[SESSION].account, form.get("reason", ""),
                                             remote_address=_remote(request))
    return Done(f"Jeda: {reason.label}.")


async def resume(request: web.Request, form: Form) -> Done:
    """End the pause."""
    await _ctx(request).desks.resume(request[SESSION].account,
                                     remote_address=_remote(request))
    return Done("Jeda berakhir; Anda siap menerima panggilan.")


# -- calls -------------------------------------------------------------------------------------


def _back(_: web.Request, form: Form) -> str:
    """Where a call's form returns: the page it names (``next``) if that is the operator
    screen or an incident page, else home."""
    back = form.get("next", "")
    return back if _BACK.match(back) else HOME


async def open_incident(request: web.Request, form: Form) -> Done:
    """The call's incident, opened pre-filled from the call if it has none yet."""
    call_id = request.match_info["call_id"]
    try:
        incident = await _ctx(request).incidents.create_for_call(call_id, actor=_actor(request))
    except CallAlreadyLinked as exc:
        return Done(f"Insiden #{exc.incident_id}.", f"{PREFIX}/incidents/{exc.incident_id}")
    return Done(f"Insiden #{incident.incident_id} dibuka dari panggilan ini.",
                f"{PREFIX}/incidents/{incident.incident_id}")


async def label_call(request: web.Request, form: Form) -> Done:
    """Label the call (genuine, prank, silent, accidental, test)."""
    stored = await _ctx(request).screening.label(
        request.match_info["call_id"], form.get("label", ""), _actor(request),
        form.get("note", ""))
    return Done(f"Panggilan diberi label: {stored.label.label}.")


# -- incidents ---------------------------------------------------------------------------------


async def incidents_page(request: web.Request) -> web.StreamResponse:
    """Open incidents, most urgent first."""
    ctx = _ctx(request)
    now = datetime.now(UTC)
    incidents = await ctx.incidents.open_incidents(limit=200)
    rows = [(incident, ctx.incidents.sla_clock(incident, now)) for incident in incidents]
    return page(request, "incidents.html", title="Insiden terbuka", rows=rows,
                status_labels=STATUS_LABELS, report_types=REPORT_TYPE_LABELS,
                priorities=PRIORITY_LABELS)


async def incident_page(request: web.Request) -> web.StreamResponse:
    """One incident: its calls with their screening, labels and recordings, the form,
    dispatches, escalation, rating and timeline; and, while its one call could still be
    merged, the open incidents a repeat caller's call may belong to."""
    ctx = _ctx(request)
    incident_id = _incident_id(request)
    incident = await ctx.incidents.get(incident_id)
    call_ids = await ctx.incidents.call_ids(incident_id)
    calls = await ctx.desks.calls(call_ids)
    # The page shows its callers' numbers and history: who opened it is audited.
    await ctx.accounts.audit(
        actor=_actor(request), action="incident.view", object_type="incident",
        object_id=str(incident_id), remote_address=_remote(request),
        detail={"call_ids": call_ids})
    # Listing recordings writes nothing; the audit entry comes with each playback.
    can_play = request[SESSION].account.role in PLAYBACK.roles
    recordings: dict[str, list[dict[str, Any]]] = {}
    for recording in await ctx.recordings.of_calls(call_ids) if can_play else []:
        recordings.setdefault(recording.call_id, []).append(recording_json(recording))
    related = (await ctx.incidents.merge_candidates(call_ids[0])
               if len(call_ids) == 1 else [])
    levels = list(EscalationLevel)
    return page(
        request, "incident.html", title=f"Insiden #{incident_id}", incident=incident,
        sla=ctx.incidents.sla_clock(incident, datetime.now(UTC)), calls=calls,
        dispatches=await ctx.incidents.dispatches(incident_id),
        timeline=await ctx.incidents.timeline(incident_id),
        agencies=[a for a in await ctx.incidents.agencies() if a.active],
        places=await ctx.incidents.places(),
        next_statuses=sorted(TRANSITIONS[incident.status], key=list(STATUS_LABELS).index),
        editable=incident.status in EDITABLE_STATUSES,
        can_dispatch=_can_dispatch(incident.status), dispatch_states=DISPATCH_STATE_LABELS,
        higher_levels=(levels[levels.index(incident.escalation_level) + 1:]
                       if incident.is_open else []),
        related=related, can_play=can_play, recordings=recordings,
        recording_kinds=RECORDING_KINDS, recording_states=RECORDING_STATES,
        timeline_labels=TIMELINE_LABELS, event_lines=event_lines, status_labels=STATUS_LABELS,
        report_types=REPORT_TYPE_LABELS, priorities=PRIORITY_LABELS, labels=Label.labels(),
        categories=CATEGORY_LABELS, skill_labels=SKILL_LABELS, dispositions=DISPOSITION_LABELS,
        escalation_labels=ESCALATION_LABELS,
    )


def _can_dispatch(status: Status) -> bool:
    try:
        status_for_dispatch(status)
    except InvalidTransition:
        return False
    return True


def _shown(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def event_lines(kind: str, detail: Mapping[str, Any]) -> list[str]:
    """A timeline entry's detail as short lines in words: a step as "old → new" first (a
    status, an escalation level, a dispatch's stage), an edit as "field: old → new", then
    the rest; empty notes are left out."""

    def text(key: str, value: Any) -> str:
        return _CODE_TEXT.get((kind, key), {}).get(str(value), _shown(value))

    lines = []
    if "to" in detail:
        start = f"{text('from', detail['from'])} → " if "from" in detail else ""
        lines.append(start + text("to", detail["to"]))
    for key, value in sorted(detail.items()):
        if key in ("from", "to") or value in ("", None):
            continue
        if key == "changes" and isinstance(value, Mapping):
            lines += [f"{FIELD_LABELS.get(name, name)}: {_shown(change.get('from'))} → "
                      f"{_shown(change.get('to'))}" for name, change in sorted(value.items())
                      if isinstance(change, Mapping)]
        else:
            lines.append(DETAIL_TEXT.get(key, f"{key}: {{}}").format(text(key, value)))
    return lines


def _to_incident(request: web.Request, _: Form) -> str:
    return f"{PREFIX}/incidents/{_incident_id(request)}"


async def save_details(request: web.Request, form: Form) -> Done:
    """Save the incident's report type, priority, place and description."""
    patch = parse_patch({
        "report_type": form.get("report_type", ""),
        "priority": form.get("priority", ""),
        "village_code": form.get("village_code") or None,
        "location_text": form.get("location_text", ""),
        "description": form.get("description", ""),
    })
    await _ctx(request).incidents.update_details(
        _incident_id(request), patch, actor=_actor(request), expected_version=_version(form))
    return Done("Rincian insiden disimpan.")


async def change_status(request: web.Request, form: Form) -> Done:
    """Move the incident to the status chosen."""
    incident = await _ctx(request).incidents.change_status(
        _incident_id(request), form.get("status", ""), actor=_actor(request),
        note=form.get("note", ""), expected_version=_version(form))
    return Done(f"Status insiden: {STATUS_LABELS[incident.status]}.")


async def dispatch(request: web.Request, form: Form) -> Done:
    """Dispatch the agency chosen."""
    sent = await _ctx(request).incidents.dispatch(
        _incident_id(request), form.get("agency", ""), actor=_actor(request),
        note=form.get("note", ""), expected_version=_version(form))
    return Done(f"Diteruskan ke {sent.agency_name}.")


async def escalate(request: web.Request, form: Form) -> Done:
    """Raise the incident to the level chosen (desa → kecamatan → kabupaten → provinsi),
    with the reason."""
    incident = await _ctx(request).incidents.escalate(
        _incident_id(request), form.get("level", ""), form.get("reason", ""),
        actor=_actor(request), expected_version=_version(form))
    return Done(f"Eskalasi ke tingkat {ESCALATION_LABELS[incident.escalation_level]}.")


async def link_call(request: web.Request, form: Form) -> Done:
    """Link a call (a repeat caller about the same event) to this open incident; a call
    that opened an incident of its own moves here, and that incident is cancelled as
    merged."""
    call_id = form.get("call_id", "")
    if not valid_call_id(call_id):
        raise ValidationError("call_id", "Panggilan yang akan digabungkan tidak sah; muat "
                                         "ulang halaman.")
    incident_id = _incident_id(request)
    await _ctx(request).incidents.link_call(incident_id, call_id, actor=_actor(request))
    return Done(f"Panggilan digabungkan ke insiden #{incident_id}.",
                f"{PREFIX}/incidents/{incident_id}")


# -- oversight ---------------------------------------------------------------------------------


async def audit_page(request: web.Request) -> web.StreamResponse:
    """The newest audit log entries."""
    entries = await _ctx(request).accounts.audit_entries(limit=200)
    return page(request, "audit.html", title="Log audit", entries=entries)


async def accounts_page(request: web.Request) -> web.StreamResponse:
    """Every account, with the phone an operator works at."""
    ctx = _ctx(request)
    return page(request, "accounts.html", title="Akun", accounts=await ctx.accounts.accounts(),
                interfaces=await ctx.desks.interfaces(), role_labels=Role.labels())


# -- the table ---------------------------------------------------------------------------------


def console_routes() -> list[Route]:
    """Every page and form of the console, with who may use it."""
    incident = f"{PREFIX}/incidents/{{incident_id}}"
    call = f"{PREFIX}/calls/{{call_id}}"
    tag = "konsol"
    return [
        Route("GET", "/", root, PUBLIC, "Ke konsol", tag, _SEE_OTHER),
        Route("GET", f"{PREFIX}/static/{{name}}", static, PUBLIC, "Berkas statis", tag),
        Route("GET", LOGIN_PATH, login_page, PUBLIC, "Formulir masuk", tag, _PAGE),
        Route("POST", LOGIN_PATH, login, PUBLIC, "Masuk", tag, _SEE_OTHER),
        Route("POST", f"{PREFIX}/logout", logout, EVERYONE, "Keluar", tag, _SEE_OTHER),
        Route("GET", HOME, home, EVERYONE, "Beranda", tag, _PAGE),
        Route("GET", OPERATOR_SCREEN, operator_screen, DESK, "Layar operator", tag, _PAGE),
        Route("POST", f"{PREFIX}/desk/join", form_action(_to_screen, join_queues), DESK,
              "Masuk antrean", tag, _SEE_OTHER),
        Route("POST", f"{PREFIX}/desk/leave", form_action(_to_screen, leave_queues), DESK,
              "Keluar antrean", tag, _SEE_OTHER),
        Route("POST", f"{PREFIX}/desk/pause", form_action(_to_screen, pause), DESK,
              "Jeda", tag, _SEE_OTHER),
        Route("POST", f"{PREFIX}/desk/resume", form_action(_to_screen, resume), DESK,
              "Akhiri jeda", tag, _SEE_OTHER),
        Route("POST", f"{call}/incident", form_action(_back, open_incident), CASEWORK,
              "Buka insiden panggilan", tag, _SEE_OTHER),
        Route("POST", f"{call}/label", form_action(_back, label_call), CASEWORK,
              "Beri label panggilan", tag, _SEE_OTHER),
        Route("GET", f"{PREFIX}/incidents", incidents_page, CASEWORK, "Insiden terbuka",
              tag, _PAGE),
        Route("GET", incident, incident_page, CASEWORK, "Satu insiden", tag, _PAGE),
        Route("POST", f"{incident}/details", form_action(_to_incident, save_details),
              CASEWORK, "Simpan rincian insiden", tag, _SEE_OTHER),
        Route("POST", f"{incident}/status", form_action(_to_incident, change_status),
              CASEWORK, "Ubah status insiden", tag, _SEE_OTHER),
        Route("POST", f"{incident}/dispatches", form_action(_to_incident, dispatch),
              CASEWORK, "Teruskan ke instansi", tag, _SEE_OTHER),
        Route("POST", f"{incident}/escalation", form_action(_to_incident, escalate),
              CASEWORK, "Naikkan tingkat eskalasi", tag, _SEE_OTHER),
        Route("POST", f"{incident}/calls", form_action(_back, link_call), CASEWORK,
              "Gabungkan panggilan ke insiden", tag, _SEE_OTHER),
        Route("GET", f"{PREFIX}/audit", audit_page, OVERSIGHT, "Log audit", tag, _PAGE),
        Route("GET", f"{PREFIX}/accounts", accounts_page, ADMIN, "Akun", tag, _PAGE),
    ]
