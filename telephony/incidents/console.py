"""The incident pages and forms: open incidents, one incident with its calls, recordings,
dispatches, escalation and timeline, and the forms that change it; and the forms about a
call shown on the operator screen or an incident page (open its incident, label it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from recordings.domain import Kind, State
from recordings.http import recording_json
from telephony.callbacks.model import how_it_went
from telephony.calls.archive import CATEGORY_LABELS, DISPOSITION_LABELS
from telephony.calls.ids import valid_call_id
from telephony.calls.legs import Leg, LegKind, LegOutcome
from telephony.desks.operators import SKILL_LABELS
from telephony.incidents.directory import Agency, Place
from telephony.incidents.dispatches import (
    NO_AGENCY_LEFT,
    UNRECORDED_PHONE,
    DispatchState,
    next_dispatch_steps,
    status_for_dispatch,
)
from telephony.incidents.edits import parse_patch
from telephony.incidents.errors import (
    CallAlreadyLinked,
    IncidentNotFound,
    InvalidTransition,
    ValidationError,
)
from telephony.incidents.model import (
    EDITABLE_STATUSES,
    ENDED_STATUSES,
    LABEL_DISMISSED,
    LABEL_WITHDRAWN,
    SEARCH_LIMIT,
    SEARCH_MAX,
    SYSTEM_ACTOR,
    TRANSITIONS,
    EscalationLevel,
    Priority,
    ReportType,
    Status,
    parse_status,
)
from telephony.incidents.outbox import notices_text, stand_down_text
from telephony.screening.features import Label
from telephony.surveys.model import SURVEY_ACTOR
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import HOME, PAGE, PREFIX, SEE_OTHER, page
from telephony.web.context import ApiContext
from telephony.web.errors import ApiError
from telephony.web.request import Form, actor_of, context_of, remote_of
from telephony.web.routing import CASEWORK, PLAYBACK, SESSION, Route

# Where a label form may send the operator back to: their screen or an incident page.
_BACK: Final = re.compile(r"/console/(operator|incidents/[1-9][0-9]{0,17})")
_INCIDENT_ID: Final = re.compile(r"[1-9][0-9]{0,17}")
# The list's ``?daftar=`` for the incidents resolved and waiting to be closed.
RESOLVED_LIST: Final = "selesai"
# How many open incidents a page of the list shows, and the page numbers it takes.
INCIDENTS_PER_PAGE: Final = 200
_PAGE_NUMBER: Final = re.compile(r"[1-9][0-9]{0,5}")
# What each kind of incident timeline entry is called on the page.
TIMELINE_LABELS: Final[Mapping[str, str]] = {
    "created": "Dibuat", "status": "Status diubah", "details": "Rincian diubah",
    "dispatch": "Tahap instansi", "call_linked": "Panggilan dikaitkan",
    "escalated": "Eskalasi", "rating": "Penilaian penelepon", "attachment": "Lampiran",
    "call_split": "Panggilan dipisahkan"}
# The line's own actors as the timeline names them: "Dibuat oleh system" on every incident
# the line opened was English on an Indonesian page. (Accounts' names are shown as they are.)
ACTOR_NAMES: Final[Mapping[str, str]] = {SYSTEM_ACTOR: "sistem", SURVEY_ACTOR: "survei"}
# The incident fields an edit's timeline entry names.
FIELD_LABELS: Final[Mapping[str, str]] = {
    "report_type": "jenis", "priority": "prioritas", "location_text": "lokasi",
    "village_code": "desa", "sub_district_code": "kecamatan", "coordinates": "koordinat",
    "description": "uraian"}
# How the rest of a timeline entry's detail reads ({} is the value).
DETAIL_TEXT: Final[Mapping[str, str]] = {
    "note": "catatan: {}", "reason": "alasan: {}", "call_id": "panggilan {}",
    "merged_into": "digabungkan ke insiden #{}", "merged_from": "dipindah dari insiden #{}",
    "split_to": "dipisahkan ke insiden baru #{}", "split_from": "dipisahkan dari insiden #{}",
    "merged_location": "lokasi menurut penelepon ini: {}",
    "merged_village": "desa menurut penelepon ini: {}",
    "merged_description": "uraian dari penelepon ini: {}",
    "label": "label panggilan: {}", "dispatch_id": "pengiriman #{}", "agency": "instansi: {}",
    "rating": "nilai {} dari 5",
    "attachment_id": "lampiran #{}", "filename": "berkas: {}", "size_bytes": "{} bita",
    "sha256": "SHA-256 {}", "status": "status: {}", "report_type": "jenis: {}",
    "priority": "prioritas: {}", "by_phone": "lewat telepon",
    "dispatch_clock_restarted": "tidak ada instansi lain: target pengiriman dihitung lagi",
    "stood_down": "dibatalkan karena {}",
    "stand_down_notices": "pemberitahuan pembatalan ke instansi: {} pesan",
    "phone_agency": "instansi tidak dapat diberi tahu lewat pesan: batalkan lewat telepon",
    "phone_unanswered": "telepon ke instansi: {}"}


# The words for the codes a timeline entry carries, by (kind of entry, detail key).
_CODE_TEXT: Final[Mapping[tuple[str, str], Mapping[str, str]]] = {
    **{("status", key): Status.labels() for key in ("from", "to")},
    ("status", "reason"): {"merged": "penelepon berulang, digabungkan",
                           NO_AGENCY_LEFT: "semua pengiriman instansi dibatalkan, menunggu "
                                           "instansi",
                           LABEL_DISMISSED: "panggilannya diberi label gangguan",
                           LABEL_WITHDRAWN: "label gangguan panggilannya diganti"},
    ("status", "label"): Label.labels(),
    ("created", "status"): Status.labels(),
    ("created", "report_type"): ReportType.labels(),
    **{("escalated", key): EscalationLevel.labels() for key in ("from", "to")},
    **{("dispatch", key): DispatchState.labels() for key in ("from", "to")},
    ("dispatch", "phone_unanswered"): {**LegOutcome.labels(),
                                       UNRECORDED_PHONE: "hasil tidak tercatat"},
    ("dispatch", "stood_down"): {Status.PRANK.value: "insiden ditandai laporan iseng",
                                 Status.CANCELLED.value: "insiden dibatalkan"},
}
RECORDING_KINDS: Final[Mapping[Kind, str]] = {
    Kind.MIXED: "Rekaman panggilan", Kind.CALLER: "Suara penelepon saja",
    Kind.LINE: "Suara saluran dan operator saja", Kind.CALLBACK: "Rekaman panggilan balik",
    Kind.CONSULT: "Operator bicara dengan instansi"}
RECORDING_STATES: Final[Mapping[State, str]] = {
    State.PENDING: "menunggu diproses", State.PROCESSING: "sedang diproses",
    State.DONE: "siap diputar", State.FAILED: "gagal diproses",
    State.MISSING: "berkasnya tidak ditemukan", State.EXPIRED: "sudah dihapus (masa simpan habis)"}


def _path_id(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not _INCIDENT_ID.fullmatch(raw):
        raise ApiError(404, "not_found", f"{what} {raw[:40]!r} tidak ditemukan.")
    return int(raw)


def _incident_id(request: web.Request) -> int:
    return _path_id(request, "incident_id", "Insiden")


def _version(form: Form) -> int:
    raw = form.get("version", "")
    if not _INCIDENT_ID.fullmatch(raw):
        raise ValidationError("version", "Versi formulir tidak sah; muat ulang halaman.")
    return int(raw)


# -- calls -------------------------------------------------------------------------------------


def _back(_: web.Request, form: Form) -> str:
    """Where a call's form returns: the page it names (``next``) if that is the operator
    screen or an incident page, else home."""
    back = form.get("next", "")
    return back if _BACK.fullmatch(back) else HOME


async def open_incident(request: web.Request, form: Form) -> Done:
    """The call's incident, opened pre-filled from the call if it has none yet."""
    call_id = request.match_info["call_id"]
    try:
        incident = await context_of(request).incidents.create_for_call(
            call_id, actor=actor_of(request))
    except CallAlreadyLinked as exc:
        return Done(f"Insiden #{exc.incident_id}.", f"{PREFIX}/incidents/{exc.incident_id}")
    return Done(f"Insiden #{incident.incident_id} dibuka dari panggilan ini.",
                f"{PREFIX}/incidents/{incident.incident_id}")


async def label_call(request: web.Request, form: Form) -> Done:
    """Label the call (genuine, prank, silent, accidental, test); the incident the line
    opened for it follows a nuisance label, or its withdrawal, if nobody worked on it
    (``IncidentService.settle_labelled_call``), and the message says so."""
    ctx = context_of(request)
    call_id = request.match_info["call_id"]
    stored = await ctx.screening.label(call_id, form.get("label", ""), actor_of(request),
                                       form.get("note", ""))
    moved = await ctx.incidents.settle_labelled_call(call_id)
    followed = "" if moved is None else (
        f" Insiden #{moved.incident_id} otomatis berstatus {moved.status.label}.")
    return Done(f"Panggilan diberi label: {stored.label.label}.{followed}")


# -- incidents ---------------------------------------------------------------------------------


def _page_number(request: web.Request) -> int:
    """The list's page (``?halaman=``); anything but a page number (typed or cut off in the
    address bar) is the first page."""
    raw = request.query.get("halaman", "1")
    return int(raw) if _PAGE_NUMBER.fullmatch(raw) else 1


async def incidents_page(request: web.Request) -> web.StreamResponse:
    """Open incidents, most urgent first, a page at a time; or (``?daftar=selesai``) those
    resolved and waiting to be closed.

    The list stopped at 200 without a word: on a night of floods the 201st open incident was
    on no page, and the list read as if it were all. One more than a page is read to know
    whether another page follows. A resolved incident is no longer open, and was on no list
    at all: a supervisor closing the shift's incidents could find them only one by one, by a
    caller's number or a village."""
    ctx = context_of(request)
    now = datetime.now(UTC)
    if "cari" in request.query:
        return await _search_page(request, request.query["cari"], now)
    resolved = request.query.get("daftar") == RESOLVED_LIST
    number = _page_number(request)
    first = (number - 1) * INCIDENTS_PER_PAGE
    incidents = await ctx.incidents.open_incidents(limit=INCIDENTS_PER_PAGE + 1, offset=first,
                                                   resolved=resolved)
    rows = [(incident, ctx.dispatches.sla_clock(incident, now))
            for incident in incidents[:INCIDENTS_PER_PAGE]]
    return page(request, "incidents.html",
                title="Menunggu ditutup" if resolved else "Insiden terbuka", rows=rows,
                page_number=number, first=first + 1, last=first + len(rows),
                has_next=len(incidents) > INCIDENTS_PER_PAGE, query="", search_error="",
                resolved=resolved)


async def _search_page(request: web.Request, query: str, now: datetime) -> web.StreamResponse:
    """The incidents, open or closed, a caller's number or a place's name finds (``?cari=``):
    the list held open incidents only, so the earlier report of a caller who rings again
    after it was closed, or of the village a new call names, could not be found at all.
    A search that cannot be run says why, by the field, and finds nothing (422)."""
    ctx = context_of(request)
    try:
        found = await ctx.incidents.search(query, limit=SEARCH_LIMIT + 1)
    except ValidationError as exc:
        return page(request, "incidents.html", status=exc.status, title="Cari insiden", rows=[],
                    page_number=1, first=1, last=0, has_next=False, query=query[:SEARCH_MAX],
                    search_error=exc.message, resolved=False)
    # Who looked up whose incidents: searching a number is the privacy-relevant act (the
    # incident pages found are audited as they are opened).
    await ctx.accounts.audit(
        actor=actor_of(request), action="incident.search", object_type="incident",
        object_id=query, remote_address=remote_of(request), detail={"found": len(found)})
    rows = [(incident, ctx.dispatches.sla_clock(incident, now))
            for incident in found[:SEARCH_LIMIT]]
    return page(request, "incidents.html", title="Cari insiden", rows=rows, page_number=1,
                first=1, last=len(rows), has_next=len(found) > SEARCH_LIMIT, query=query,
                search_error="", resolved=False)


async def call_backs(ctx: ApiContext, call_ids: list[str], now: datetime
                     ) -> dict[str, list[tuple[Leg, str]]]:
    """The call-backs of each of these calls (``callback`` legs), oldest first, each with how
    it went in the call-back list's words: what the incident page lists under each call
    (transfers have the legs section)."""
    legs: dict[str, list[tuple[Leg, str]]] = {}
    limit = ctx.config.callback_ring_limit
    found = [leg for leg in await ctx.calls.legs(call_ids) if leg.kind is LegKind.CALLBACK]
    outlived = await ctx.calls.outlived_call_backs(found)
    for leg in found:
        legs.setdefault(leg.call_id, []).append(
            (leg, how_it_went(leg, now=now, ring_limit=limit, outlived=leg.leg_id in outlived)))
    return legs


async def incident_page(request: web.Request) -> web.StreamResponse:
    """One incident: its calls with their screening, labels and recordings, the form,
    dispatches, escalation, rating, the field teams' attachments and the timeline; and, while
    its one call could still be merged, the open incidents a repeat caller's call may belong
    to.

    The attachments were on no page: a field team's photo of the scene, uploaded through
    the API, showed only as a timeline entry (name, size, SHA-256) the supervisor could not
    open. Each is now listed with a link to the audited download."""
    ctx = context_of(request)
    incident_id = _incident_id(request)
    incident = await ctx.incidents.get(incident_id)
    call_ids = await ctx.incidents.call_ids(incident_id)
    calls = await ctx.desks.calls(call_ids)
    # The page shows its callers' numbers and history: who opened it is audited.
    await ctx.accounts.audit(
        actor=actor_of(request), action="incident.view", object_type="incident",
        object_id=str(incident_id), remote_address=remote_of(request),
        detail={"call_ids": call_ids})
    # Listing recordings writes nothing; the audit entry comes with each playback.
    can_play = request[SESSION].account.role in PLAYBACK.roles
    recordings: dict[str, list[dict[str, Any]]] = {}
    for recording in await ctx.recordings.of_calls(call_ids) if can_play else []:
        recordings.setdefault(recording.call_id, []).append(recording_json(recording))
    related = (await ctx.incidents.merge_candidates(call_ids[0])
               if len(call_ids) == 1 else [])
    levels = list(EscalationLevel)
    dispatches = await ctx.dispatches.dispatches(incident_id)
    notices = await ctx.dispatches.notifications(incident_id)
    stand_downs = await ctx.dispatches.stand_downs(incident_id)
    agencies = await ctx.directory.agencies()  # inactive ones too: the timeline names them
    places = await ctx.directory.places()
    return page(
        request, "incident.html", title=f"Insiden #{incident_id}", incident=incident,
        sla=ctx.dispatches.sla_clock(incident, datetime.now(UTC)), calls=calls,
        dispatches=dispatches,
        dispatch_steps={d.dispatch_id: next_dispatch_steps(
            d.state, incident_ended=incident.status in ENDED_STATUSES) for d in dispatches},
        notices={d.dispatch_id: notices_text(notices.get(d.dispatch_id), phone=d.phone)
                 + stand_down_text(stand_downs.get(d.dispatch_id)) for d in dispatches},
        timeline=await ctx.incidents.timeline(incident_id),
        attachments=await ctx.incidents.attachments(incident_id), size_text=size_text,
        legs=await ctx.transfers.timeline(incident_id) if ctx.transfers else [],
        agencies=[a for a in agencies if a.active], places=places,
        code_names=code_names(agencies, places),
        next_statuses=sorted(TRANSITIONS[incident.status] - {Status.DISPATCHED},
                             key=list(Status).index),
        editable=incident.status in EDITABLE_STATUSES,
        can_dispatch=_can_dispatch(incident.status),
        higher_levels=(levels[levels.index(incident.escalation_level) + 1:]
                       if incident.is_open else []),
        related=related, can_play=can_play, recordings=recordings,
        call_backs=await call_backs(ctx, call_ids, datetime.now(UTC)),
        recording_kinds=RECORDING_KINDS, recording_states=RECORDING_STATES,
        timeline_labels=TIMELINE_LABELS, event_lines=event_lines, actor_names=ACTOR_NAMES,
        report_types=list(ReportType), priorities=list(Priority), labels=Label.labels(),
        categories=CATEGORY_LABELS, skill_labels=SKILL_LABELS, dispositions=DISPOSITION_LABELS,
    )


def _can_dispatch(status: Status) -> bool:
    try:
        status_for_dispatch(status)
    except InvalidTransition:
        return False
    return True


def size_text(size_bytes: int) -> str:
    """A file's size as people read it: "830 KB", "2,4 MB" (a decimal comma)."""
    if size_bytes < 1024 * 1024:
        return f"{max(1, round(size_bytes / 1024))} KB"
    return f"{size_bytes / (1024 * 1024):.1f} MB".replace(".", ",")


def _shown(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _priority_text(value: object) -> str:
    """A priority as the form and the list show it ("2 · Tinggi")."""
    labels = {str(number): label for number, label in Priority.labels().items()}
    return f"{value} · {labels[str(value)]}" if str(value) in labels else _shown(value)


def _point_text(value: object) -> str:
    """A point as "latitude, longitude" (the event log keeps it as an object)."""
    if isinstance(value, Mapping) and {"latitude", "longitude"} <= value.keys():
        return f"{value['latitude']}, {value['longitude']}"
    return _shown(value)


def code_names(agencies: Iterable[Agency], places: Iterable[Place]) -> dict[str, str]:
    """The names of the codes a timeline entry may carry: agencies' and the gazetteer's
    villages and sub-districts (the two kinds of code never look alike)."""
    names = {agency.code: agency.name for agency in agencies}
    for place in places:
        names[place.village_code] = place.village_name
        names[place.sub_district_code] = place.sub_district_name
    return names


def event_lines(kind: str, detail: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """A timeline entry's detail as short lines in words: a step as "old → new" first (a
    status, an escalation level, a dispatch's stage), an edit as "field: old → new", then
    the rest; empty notes are left out. Codes are shown by their words: a report type's
    label, a priority's, and the names (``names``, see :func:`code_names`) of an agency, a
    village or a sub-district; an edit read "jenis: fire → medical", "desa: - →
    35.29.01.1015" and a point as a Python dict."""

    def text(key: str, value: Any) -> str:
        if (kind, key) == ("created", "priority"):
            return _priority_text(value)
        if (kind, key) in (("dispatch", "agency"), ("call_linked", "merged_village")):
            return names.get(str(value), _shown(value))
        return _CODE_TEXT.get((kind, key), {}).get(str(value), _shown(value))

    def changed(field: str, value: object) -> str:
        if field == "report_type":
            return ReportType.labels().get(str(value), _shown(value))
        if field == "priority":
            return _priority_text(value)
        if field == "coordinates":
            return _point_text(value)
        if field in ("village_code", "sub_district_code"):
            return names.get(str(value), _shown(value))
        return _shown(value)

    lines = []
    if "to" in detail:
        start = f"{text('from', detail['from'])} → " if "from" in detail else ""
        lines.append(start + text("to", detail["to"]))
    for key, value in sorted(detail.items()):
        if key in ("from", "to") or value in ("", None):
            continue
        if key == "changes" and isinstance(value, Mapping):
            lines += [f"{FIELD_LABELS.get(name, name)}: {changed(name, change.get('from'))} → "
                      f"{changed(name, change.get('to'))}"
                      for name, change in sorted(value.items()) if isinstance(change, Mapping)]
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
    await context_of(request).incidents.update_details(
        _incident_id(request), patch, actor=actor_of(request), expected_version=_version(form))
    return Done("Rincian insiden disimpan.")


async def change_status(request: web.Request, form: Form) -> Done:
    """Move the incident to the status chosen; not to "dispatched", which only dispatching
    an agency does.

    The form offered "Diteruskan ke instansi" (first, so preselected, once the report was
    verified): one click recorded the incident as forwarded, with no agency told and its
    dispatch target met, while the fire brigade never heard of it."""
    chosen = form.get("status", "")
    if not chosen.strip():
        raise ValidationError("status", "Pilih status barunya.")
    if parse_status(chosen) is Status.DISPATCHED:
        raise ValidationError("status", "Pilih instansinya di formulir 'Teruskan ke instansi': "
                                        "status menjadi 'Diteruskan ke instansi' begitu "
                                        "instansi diberi tahu.")
    incident = await context_of(request).incidents.change_status(
        _incident_id(request), form.get("status", ""), actor=actor_of(request),
        note=form.get("note", ""), expected_version=_version(form))
    return Done(f"Status insiden: {incident.status.label}.")


async def dispatch(request: web.Request, form: Form) -> Done:
    """Dispatch the agency chosen (the page it returns to says whom the line notified)."""
    sent = await context_of(request).dispatches.dispatch(
        _incident_id(request), form.get("agency", ""), actor=actor_of(request),
        note=form.get("note", ""), expected_version=_version(form))
    return Done(f"Diteruskan ke {sent.agency_name}.")


async def dispatch_step(request: web.Request, form: Form) -> Done:
    """Record a dispatch's next step, or cancel it with the reason (the agency declined or
    did not answer): the agency can then be dispatched again, or another one."""
    sent = await context_of(request).dispatches.advance_dispatch(
        _path_id(request, "dispatch_id", "Pengiriman"), form.get("state", ""),
        actor=actor_of(request), note=form.get("note", ""),
        incident_id=_incident_id(request))
    return Done(f"{sent.agency_name}: {sent.state.label}.")


async def escalate(request: web.Request, form: Form) -> Done:
    """Raise the incident to the level chosen (desa → kecamatan → kabupaten → provinsi),
    with the reason."""
    incident = await context_of(request).incidents.escalate(
        _incident_id(request), form.get("level", ""), form.get("reason", ""),
        actor=actor_of(request), expected_version=_version(form))
    return Done(f"Eskalasi ke tingkat {incident.escalation_level.label}.")


async def link_call(request: web.Request, form: Form) -> Done:
    """Link a call (a repeat caller about the same event) to this open incident; a call
    that opened an incident of its own moves here, and that incident is cancelled as
    merged."""
    call_id = form.get("call_id", "")
    if not valid_call_id(call_id):
        raise ValidationError("call_id", "Panggilan yang akan digabungkan tidak sah; muat "
                                         "ulang halaman.")
    incident_id = _incident_id(request)
    await context_of(request).incidents.link_call(incident_id, call_id, actor=actor_of(request))
    return Done(f"Panggilan digabungkan ke insiden #{incident_id}.",
                f"{PREFIX}/incidents/{incident_id}")


async def split_call(request: web.Request, form: Form) -> Done:
    """Take a call merged into this incident by mistake back out, into a new incident of
    its own (see :meth:`~telephony.incidents.service.IncidentService.split_call`)."""
    call_id = request.match_info["call_id"]
    if not valid_call_id(call_id):
        raise ValidationError("call_id", "Panggilan yang akan dipisahkan tidak sah; muat "
                                         "ulang halaman.")
    split = await context_of(request).incidents.split_call(
        _incident_id(request), call_id, actor=actor_of(request), expected_version=_version(form))
    return Done(f"Panggilan dipisahkan ke insiden baru #{split.incident_id}.",
                f"{PREFIX}/incidents/{split.incident_id}")


async def merge_into(request: web.Request, form: Form) -> Done:
    """Merge this incident (a repeat caller's, holding their one call) into the open incident
    whose number the operator typed: the page offers only the five newest open incidents,
    and on a busy night the one the caller is about is often not among them. Its call moves
    there and this incident is cancelled as merged, as with the offered ones."""
    source = _incident_id(request)
    raw = form.get("into", "").strip().removeprefix("#").strip()
    if not _INCIDENT_ID.fullmatch(raw):
        raise ValidationError("into", "Nomor insiden tujuan tidak sah: tulis angkanya saja, "
                                      "mis. 123.")
    target = int(raw)
    if target == source:
        raise ValidationError("into", "Tulis nomor insiden lain: insiden ini tidak dapat "
                                      "digabungkan ke dirinya sendiri.")
    incidents = context_of(request).incidents
    try:
        into = await incidents.get(target)
    except IncidentNotFound:
        raise ValidationError("into", f"Insiden #{target} tidak ditemukan.") from None
    if not into.is_open:
        raise ValidationError("into", f"Insiden #{target} berstatus '{into.status.label}': "
                                      "hanya insiden yang masih terbuka dapat menerima gabungan.")
    call_ids = await incidents.call_ids(source)
    if len(call_ids) != 1:
        raise InvalidTransition("Insiden ini memegang lebih dari satu panggilan; gabungkan "
                                "panggilan lain ke insiden ini, bukan sebaliknya.")
    await incidents.link_call(target, call_ids[0], actor=actor_of(request))
    return Done(f"Panggilan digabungkan ke insiden #{target}.", f"{PREFIX}/incidents/{target}")


def routes() -> list[Route]:
    """The incident pages and the call and incident forms, with who may use them."""
    incident = f"{PREFIX}/incidents/{{incident_id}}"
    call = f"{PREFIX}/calls/{{call_id}}"
    tag = "konsol"
    return [
        Route("POST", f"{call}/incident", form_action(_back, open_incident), CASEWORK,
              "Buka insiden panggilan", tag, SEE_OTHER),
        Route("POST", f"{call}/label", form_action(_back, label_call), CASEWORK,
              "Beri label panggilan", tag, SEE_OTHER),
        Route("GET", f"{PREFIX}/incidents", incidents_page, CASEWORK, "Insiden terbuka",
              tag, PAGE),
        Route("GET", incident, incident_page, CASEWORK, "Satu insiden", tag, PAGE),
        Route("POST", f"{incident}/details", form_action(_to_incident, save_details),
              CASEWORK, "Simpan rincian insiden", tag, SEE_OTHER),
        Route("POST", f"{incident}/status", form_action(_to_incident, change_status),
              CASEWORK, "Ubah status insiden", tag, SEE_OTHER),
        Route("POST", f"{incident}/dispatches", form_action(_to_incident, dispatch),
              CASEWORK, "Teruskan ke instansi", tag, SEE_OTHER),
        Route("POST", f"{incident}/dispatches/{{dispatch_id}}/state",
              form_action(_to_incident, dispatch_step), CASEWORK,
              "Catat tahap pengiriman atau batalkan", tag, SEE_OTHER),
        Route("POST", f"{incident}/escalation", form_action(_to_incident, escalate),
              CASEWORK, "Naikkan tingkat eskalasi", tag, SEE_OTHER),
        Route("POST", f"{incident}/calls", form_action(_back, link_call), CASEWORK,
              "Gabungkan panggilan ke insiden", tag, SEE_OTHER),
        Route("POST", f"{incident}/merge", form_action(_to_incident, merge_into), CASEWORK,
              "Gabungkan insiden ke insiden bernomor", tag, SEE_OTHER),
        Route("POST", f"{incident}/calls/{{call_id}}/split",
              form_action(_to_incident, split_call), CASEWORK,
              "Pisahkan panggilan ke insiden baru", tag, SEE_OTHER),
    ]
