"""The operator console's casework forms on a loopback socket over a real PostgreSQL: linking
a repeat caller's call to an open incident (from the incident page and the operator screen),
escalation with its reason, a dispatch's steps and its cancellation (an agency that
declines), the rating and the worded timeline, playing a call's recording
through the audited streaming endpoint, and the audit trail of the desk's queue actions.

Every new form is refused without the session's CSRF token and for a role it does not serve,
and bad input gets a clear message on the page and changes nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from telephony.incidents.edits import parse_patch
from telephony.incidents.store import IncidentRepository
from telephony.reports.store import ReportRepository
from telephony.web.context import CONTEXT
from tests.support.calls import OPERATOR, ago, call_facts
from tests.support.console import HOSTILE, Console, record
from tests.support.db import execute, fetch, incident_state
from tests.support.incidents import make_service
from tests.support.web import BIDI_CONTROLS, Browser, spoofed

FIRE = "1700000600.1"  # the first caller about a fire
REPEAT = "1700000700.2"  # a second caller about the same fire, a minute later
MEDICAL = "1700000800.3"  # an unrelated medical call


async def cases(console: Console) -> tuple[int, int, int]:
    """Three answered, ended calls with their incidents: the fire, the repeat caller's
    (opened for them, as the line does for every answered call) and a medical one."""
    await record(console, call_facts(FIRE, "081355500001"))
    await record(console, call_facts(MEDICAL, "081355500003", skill="medical"))
    await record(console, call_facts(REPEAT, "081355500002"))
    incidents = console.client.app[CONTEXT].incidents
    fire = await incidents.create_for_call(FIRE, actor="op1")
    medical = await incidents.create_for_call(MEDICAL, actor="op1")
    repeat = await incidents.create_for_call(REPEAT)
    return fire.incident_id, repeat.incident_id, medical.incident_id


async def details_form(console: Console) -> tuple[Browser, int, str, dict[str, str]]:
    """An operator at the fire incident's page, with its details form as the page holds it."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)
    page = f"/console/incidents/{fire}"
    version = int(re.findall(r'name="version" value="(\d+)"', (await operator.get(page))[1])[0])
    return operator, fire, page, {
        "version": str(version), "report_type": "fire", "priority": "2", "village_code": "",
        "location_text": "Jl. Trunojoyo 12", "description": ""}


def related_ids(html: str) -> list[int]:
    """The incidents the page offers to merge into, in the order shown."""
    section = html.split('id="related"', 1)
    if len(section) == 1:
        return []
    return [int(n) for n in re.findall(r'<li data-incident-id="(\d+)"', section[1])]


async def desk(browser: Browser) -> dict[str, Any]:
    response = await browser.http.get("/api/desk")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


# -- linking a repeat caller's call ------------------------------------------------------------


async def test_a_repeat_callers_call_is_merged_into_the_open_incident(console: Console
                                                                       ) -> None:
    operator = await console.user("op1", "operator", desk=True)
    fire, repeat, medical = await cases(console)

    # The repeat caller's incident offers the open ones: the same kind first, then the rest.
    page = f"/console/incidents/{repeat}"
    status, html, _ = await operator.get(page)
    assert status == 200 and related_ids(html) == [fire, medical]
    assert f'name="call_id" value="{REPEAT}"' in html
    # So does the operator screen for the call in front of the operator (the latest answered).
    shown = await desk(operator)
    assert shown["call"]["call_id"] == REPEAT
    assert [i["incident_id"] for i in shown["related"]] == [fire, medical]
    assert shown["related"][0]["report_type_label"] == "Kebakaran"
    html = (await operator.get("/console/operator"))[1]
    assert 'id="related-template"' in html and 'name="next" value="/console/operator"' in html

    response = await operator.post(f"/console/incidents/{fire}/calls",
                                   {"call_id": REPEAT, "next": page})
    assert response.headers["Location"] == f"/console/incidents/{fire}"
    kind, text = await operator.flash(response)
    assert (kind, text) == ("ok", f"Panggilan digabungkan ke insiden #{fire}.")
    assert [r["call_id"] for r in await fetch(
        console.dsn, "SELECT call_id FROM incident_calls WHERE incident_id = $1 "
                     "ORDER BY linked_at", fire)] == [FIRE, REPEAT]
    html = (await operator.get(f"/console/incidents/{fire}"))[1]
    assert html.count('class="call-summary"') == 2
    assert "Panggilan dikaitkan</strong> oleh op1" in html
    assert f"dipindah dari insiden #{repeat}" in html
    assert related_ids(html) == []  # it holds two calls: nothing to merge away
    # The repeat caller's own incident is cancelled as merged, and says so in words.
    html = (await operator.get(page))[1]
    assert 'id="incident-status">Dibatalkan' in html
    assert "Baru → Dibatalkan" in html and f"digabungkan ke insiden #{fire}" in html
    assert "alasan: penelepon berulang, digabungkan" in html
    assert related_ids(html) == []
    assert (await desk(operator))["related"] == []


async def test_what_was_taken_down_on_a_merged_incident_shows_on_the_one_it_joined(
        console: Console) -> None:
    """The second operator typed what the repeat caller said into the caller's own incident
    ("dua orang terjebak di lantai 2"), then merged it into the fire: the text stayed on the
    cancelled incident, out of sight of whoever worked the fire."""
    operator = await console.user("op1", "operator", desk=True)
    fire, repeat, _ = await cases(console)
    incidents = console.client.app[CONTEXT].incidents
    await incidents.update_details(repeat, parse_patch({
        "village_code": "35.29.01.1015", "location_text": "Gudang mebel, belakang pasar",
        "description": "Dua orang terjebak di lantai 2.\nAsap hitam."}), actor="op2")
    kind, text = await operator.flash(await operator.post(
        f"/console/incidents/{fire}/calls",
        {"call_id": REPEAT, "next": f"/console/incidents/{repeat}"}))
    assert (kind, text) == ("ok", f"Panggilan digabungkan ke insiden #{fire}.")
    html = (await operator.get(f"/console/incidents/{fire}"))[1]
    entry = html.split("<strong>Panggilan dikaitkan</strong> oleh op1", 1)[1].split("</li>")[0]
    assert re.findall(r'<span class="detail">([^<]+)</span>', entry) == [
        f"panggilan {REPEAT}", "uraian dari penelepon ini: Dua orang terjebak di lantai 2.\n"
        "Asap hitam.", f"dipindah dari insiden #{repeat}",
        "lokasi menurut penelepon ini: Gudang mebel, belakang pasar",
        "desa menurut penelepon ini: Kepanjin"]

async def test_a_call_merged_into_the_wrong_incident_is_taken_back_out(console: Console
                                                                      ) -> None:
    """A repeat caller's fire call merged into the medical incident by a number typed one
    off: its own incident cancelled as merged, the call held by an incident it had nothing
    to do with, and no way back. It now goes out into a new incident of its own."""
    operator = await console.user("op1", "operator", desk=True)
    admin = await console.user("admin1", "admin")
    fire, repeat, medical = await cases(console)
    incidents = console.client.app[CONTEXT].incidents
    await operator.flash(await operator.post(f"/console/incidents/{repeat}/merge",
                                             {"into": str(medical)}))
    assert await incidents.call_ids(medical) == [MEDICAL, REPEAT]
    page = f"/console/incidents/{medical}"
    html = (await operator.get(page))[1]
    split = f"{page}/calls/{REPEAT}/split"
    assert re.findall(r'action="(/console/incidents/\d+/calls/[^/"]+/split)"', html) == [split]
    version = str((await incidents.get(medical)).version)

    before = await incident_state(console.dsn)
    assert (await operator.post(split, {"version": version}, csrf=False)).status == 403
    assert (await admin.post(split, {"version": version})).status == 403
    for path, fields, text in [
            (f"{page}/calls/{MEDICAL}/split", {"version": version},
             "Panggilan pertama, yang membuka insiden ini, tidak dapat dipisahkan darinya."),
            (f"{page}/calls/{FIRE}/split", {"version": version},
             f"Panggilan {FIRE} tidak tercatat pada insiden #{medical}."),
            (split, {"version": str(int(version) + 1)}, "baru saja diubah petugas lain")]:
        kind, shown = await operator.flash(await operator.post(path, fields))
        assert kind == "error" and text in shown, (path, shown)
    assert await incident_state(console.dsn) == before

    response = await operator.post(split, {"version": version})
    (own,) = [row["incident_id"] for row in await fetch(
        console.dsn, "SELECT incident_id FROM incident_calls WHERE call_id = $1", REPEAT)]
    assert own not in (fire, repeat, medical)
    assert response.headers["Location"] == f"/console/incidents/{own}"
    assert await operator.flash(response) == ("ok", f"Panggilan dipisahkan ke insiden baru "
                                                    f"#{own}.")
    assert await incidents.call_ids(medical) == [MEDICAL]
    split_off = await incidents.get(own)
    assert (split_off.status.value, split_off.report_type.value, split_off.caller_number) == (
        "new", "fire", "081355500002")
    html = (await operator.get(page))[1]
    assert "Panggilan dipisahkan</strong> oleh op1" in html
    assert f"dipisahkan ke insiden baru #{own}" in html
    assert f"dipisahkan dari insiden #{medical}" in (await operator.get(
        f"/console/incidents/{own}"))[1]
    # Now in the right one.
    await incidents.link_call(fire, REPEAT, actor="op1")
    assert await incidents.call_ids(fire) == [FIRE, REPEAT]

async def test_the_link_form_refuses_forgery_other_roles_and_bad_input(console: Console
                                                                        ) -> None:
    operator = await console.user("op1", "operator", desk=True)
    admin = await console.user("admin1", "admin")
    fire, repeat, medical = await cases(console)
    before = await incident_state(console.dsn)
    target = f"/console/incidents/{fire}/calls"
    back = f"/console/incidents/{repeat}"

    response = await operator.post(target, {"call_id": REPEAT, "next": back}, csrf=False)
    assert response.status == 403 and "Token CSRF" in await response.text()
    response = await admin.post(target, {"call_id": REPEAT, "next": back})
    assert response.status == 403 and "tidak berhak" in await response.text()
    refusals = [
        ({"call_id": "'; DROP TABLE incident_calls; --"},
         "Panggilan yang akan digabungkan tidak sah; muat ulang halaman."),
        ({"call_id": ""}, "Panggilan yang akan digabungkan tidak sah; muat ulang halaman."),
        ({"call_id": "1799999999.9"}, "Panggilan 1799999999.9 tidak ditemukan."),
    ]
    for fields, text in refusals:
        response = await operator.post(target, {**fields, "next": back})
        assert response.headers["Location"] == back
        assert await operator.flash(response) == ("error", text), fields
    # A made-up incident names nothing.
    for made_up, named in (("0", "&#39;0&#39;"), ("1x", "&#39;1x&#39;"), ("99999", "#99999")):
        response = await operator.post(f"/console/incidents/{made_up}/calls",
                                       {"call_id": REPEAT, "next": back})
        assert await operator.flash(response) == ("error", f"Insiden {named} tidak ditemukan.")
    assert await incident_state(console.dsn) == before

    # A call whose incident has been worked on (it holds a dispatch) stays there.
    incidents = console.client.app[CONTEXT].incidents
    await incidents.change_status(fire, "verified", actor="op1")
    await console.client.app[CONTEXT].dispatches.dispatch(fire, "damkar", actor="op1")
    before = await incident_state(console.dsn)
    response = await operator.post(f"/console/incidents/{medical}/calls",
                                   {"call_id": FIRE, "next": back})
    assert await operator.flash(response) == (
        "error", f"Panggilan {FIRE} sudah tercatat pada insiden #{fire}.")
    assert await incident_state(console.dsn) == before
    # An incident that is no longer open takes no calls.
    await incidents.change_status(medical, "prank", actor="op1")
    before = await incident_state(console.dsn)
    response = await operator.post(f"/console/incidents/{medical}/calls",
                                   {"call_id": REPEAT, "next": back})
    assert await operator.flash(response) == (
        "error", "Insiden berstatus &#39;Laporan iseng&#39; sudah tidak dapat diubah.")
    # And a form may only send the operator back to a page of ours.
    for elsewhere in ("https://example.org/", f"{back}\n", f"{back}\nSet-Cookie: x=1"):
        response = await operator.post(target, {"call_id": "x", "next": elsewhere})
        assert response.headers["Location"] == "/console/", elsewhere
    assert await incident_state(console.dsn) == before


# -- escalation, rating, timeline --------------------------------------------------------------


async def test_escalation_goes_up_with_a_reason_and_the_timeline_says_who_and_when(
    console: Console
) -> None:
    operator = await console.user("op1", "operator", desk=True)
    admin = await console.user("admin1", "admin")
    fire, repeat, _ = await cases(console)
    page = f"/console/incidents/{fire}"
    html = (await operator.get(page))[1]
    assert 'id="incident-escalation">Desa' in html
    assert re.findall(r'<option value="(\w+)">(?:Kecamatan|Kabupaten|Provinsi)</option>',
                      html) == ["sub_district", "regency", "province"]
    assert "belum dinilai penelepon" in html
    version = int(re.findall(r'name="version" value="(\d+)"', html)[0])

    before = await incident_state(console.dsn)
    form = {"version": str(version), "level": "sub_district", "reason": "Api merambat"}
    response = await operator.post(f"{page}/escalation", form, csrf=False)
    assert response.status == 403
    response = await admin.post(f"{page}/escalation", form)
    assert response.status == 403
    refusals = [
        ({**form, "reason": "   "}, "Alasan eskalasi wajib diisi."),
        ({**form, "level": "village"}, "Eskalasi hanya ke tingkat yang lebih tinggi dari "
                                       "&#39;Desa&#39;."),
        ({**form, "level": "galaksi"}, "Tingkat eskalasi"),
        ({**form, "version": str(version + 1)}, "Muat ulang"),
        ({**form, "version": "satu"}, "Versi formulir tidak sah; muat ulang halaman."),
    ]
    for fields, text in refusals:
        kind, shown = await operator.flash(await operator.post(f"{page}/escalation", fields))
        assert kind == "error" and text in shown, (fields, shown)
    assert await incident_state(console.dsn) == before

    kind, text = await operator.flash(await operator.post(
        f"{page}/escalation", {**form, "reason": HOSTILE}))
    assert (kind, text) == ("ok", "Eskalasi ke tingkat Kecamatan.")
    row = (await fetch(console.dsn, "SELECT escalation_level, escalation_reason FROM "
                                    "incidents WHERE incident_id = $1", fire))[0]
    assert (row["escalation_level"], row["escalation_reason"]) == ("sub_district", HOSTILE)
    html = (await operator.get(page))[1]
    assert "<script>" not in html
    assert 'id="incident-escalation">Kecamatan — <bdi>&lt;script&gt;' in html
    assert re.findall(r'<option value="(\w+)">(?:Kecamatan|Kabupaten|Provinsi)</option>',
                      html) == ["regency", "province"]
    assert "Eskalasi</strong> oleh op1" in html and "Desa → Kecamatan" in html
    # The open incidents list said nothing of it: a supervisor scanning it could not tell
    # an incident raised to the sub-district from any other.
    supervisor = await console.user("spv1", "supervisor")
    listed = (await supervisor.get("/console/incidents"))[1]
    levels = dict(re.findall(r'<a href="/console/incidents/(\d+)">.*?<td class="escalation">'
                             r'(\w+)</td>', listed, re.S))
    assert (levels[str(fire)], levels[str(repeat)]) == ("Kecamatan", "Desa")

    # Worked to the end by the forms, then rated by the caller: every step, who and when.
    incidents = console.client.app[CONTEXT].incidents
    for action, field, value in [("status", "status", "verified"),
                                 ("dispatches", "agency", "damkar"),
                                 ("status", "status", "on_scene"),
                                 ("status", "status", "resolved")]:
        version = (await incidents.get(fire)).version
        kind, text = await operator.flash(await operator.post(f"{page}/{action}", {
            "version": str(version), field: value, "note": ""}))
        assert kind == "ok", text
    await incidents.record_rating(fire, 4, actor="survey")
    html = (await operator.get(page))[1]
    assert 'id="escalation-form"' not in html  # resolved: no longer open
    assert "★★★★☆</span> 4 dari 5" in html
    steps = re.findall(r'<span class="muted">([0-9: -]+)</span> <strong>Status diubah</strong> '
                       r'oleh (\w+)\s*<span class="detail">([^<]+)</span>', html)
    assert [(who, step) for _, who, step in steps] == [
        ("op1", "Baru → Terverifikasi"), ("op1", "Terverifikasi → Diteruskan ke instansi"),
        ("op1", "Diteruskan ke instansi → Petugas di lokasi"),
        ("op1", "Petugas di lokasi → Selesai ditangani")]
    assert all(re.fullmatch(r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d", at) for at, _, _ in steps)
    assert "Penilaian penelepon</strong> oleh survei" in html and "nilai 4 dari 5" in html
    # The incident the line opened says so in words ("oleh system" was English).
    assert "<strong>Dibuat</strong> oleh sistem" in (await operator.get(
        f"/console/incidents/{repeat}"))[1]


# -- dispatches --------------------------------------------------------------------------------


async def test_a_dispatch_is_stepped_or_cancelled_from_the_incident_page(console: Console
                                                                         ) -> None:
    """The page listed each agency's dispatch with no way to record its next step: an
    agency that declined stayed 'Diberitahu' for good and could never be dispatched to the
    incident again ("sudah diteruskan ... dan belum selesai")."""
    operator = await console.user("op1", "operator", desk=True)
    admin = await console.user("admin1", "admin")
    fire, _, medical = await cases(console)
    ctx = console.client.app[CONTEXT]
    await ctx.incidents.change_status(fire, "verified", actor="op1")
    damkar = await ctx.dispatches.dispatch(fire, "damkar", actor="op1")
    police = await ctx.dispatches.dispatch(fire, "polisi", actor="op1")
    page = f"/console/incidents/{fire}"
    html = (await operator.get(page))[1]
    step = f"{page}/dispatches/{police.dispatch_id}/state"
    assert f'action="{step}"' in html
    row = html.split(f'data-dispatch-id="{police.dispatch_id}"', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<option value="(\w+)">', row) == [
        "acknowledged", "on_scene", "done", "cancelled"]

    before = await incident_state(console.dsn)
    form = {"state": "cancelled", "note": "Polsek menolak: tidak ada patroli"}
    assert (await operator.post(step, form, csrf=False)).status == 403
    assert (await admin.post(step, form)).status == 403
    refusals = [
        ({**form, "note": " "}, "Alasan pembatalan pengiriman wajib diisi"),
        ({**form, "state": "dibatalkan"}, "Tahap pengiriman tidak dikenal"),
        ({**form, "state": "notified"}, "Tahap pengiriman tidak dapat diubah"),
    ]
    for fields, text in refusals:
        kind, shown = await operator.flash(await operator.post(step, fields))
        assert kind == "error" and text in shown, (fields, shown)
    # The dispatch of one incident through another's page, or an id that is none.
    for path in (f"/console/incidents/{medical}/dispatches/{police.dispatch_id}/state",
                 f"{page}/dispatches/0/state", f"{page}/dispatches/x/state"):
        response = await operator.post(path, form)
        assert response.status in (303, 404), path
        if response.status == 303:
            kind, shown = await operator.flash(response)
            assert kind == "error" and "tidak ditemukan" in shown, (path, shown)
    assert await incident_state(console.dsn) == before

    kind, text = await operator.flash(await operator.post(step, form))
    assert (kind, text) == ("ok", "Polisi: Dibatalkan.")
    kind, text = await operator.flash(await operator.post(
        f"{page}/dispatches/{damkar.dispatch_id}/state", {"state": "acknowledged", "note": ""}))
    assert kind == "ok"
    assert (await ctx.incidents.get(fire)).status.value == "dispatched"
    html = (await operator.get(page))[1]
    assert f'action="{step}"' not in html  # cancelled: no step left
    # The entry says what happened to the agency, not "forwarded" for a cancellation.
    entry = html.split("<strong>Tahap instansi</strong> oleh op1")[3].split("</li>", 1)[0]
    assert re.findall(r'<span class="detail">([^<]+)</span>', entry) == [
        "Diberitahu → Dibatalkan", "instansi: Polisi", f"pengiriman #{police.dispatch_id}",
        "catatan: Polsek menolak: tidak ada patroli"]
    assert "Diterima" in html
    # The police can be dispatched again from the page's own form.
    version = int(re.findall(r'name="version" value="(\d+)"', html)[0])
    kind, text = await operator.flash(await operator.post(
        f"{page}/dispatches", {"version": str(version), "agency": "polisi", "note": ""}))
    assert (kind, text) == ("ok", "Diteruskan ke Polisi.")



async def test_the_status_form_does_not_forward_an_incident_no_agency_was_told_of(
        console: Console) -> None:
    """Once a report was verified the status form offered "Diteruskan ke instansi" first,
    so preselected: one click recorded the fire as forwarded, with no agency in its
    dispatches, nobody notified, and its dispatch target counted as met."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)
    ctx = console.client.app[CONTEXT]
    await ctx.incidents.change_status(fire, "verified", actor="op1")
    page = f"/console/incidents/{fire}"
    html = (await operator.get(page))[1]
    form = html.split('id="status-form"', 1)[1].split("</form>", 1)[0]
    assert re.findall(r'<option value="(\w*)"', form) == ["", "cancelled", "prank"]
    assert 'id="dispatch-form"' in html

    before = await incident_state(console.dsn)
    version = (await ctx.incidents.get(fire)).version
    for status in ("dispatched", "Dispatched ", ""):
        kind, text = await operator.flash(await operator.post(f"{page}/status", {
            "version": str(version), "status": status, "note": ""}))
        assert kind == "error", (status, text)
    assert text == "Pilih status barunya."
    kind, text = await operator.flash(await operator.post(f"{page}/status", {
        "version": str(version), "status": "dispatched", "note": ""}))
    assert text == ("Pilih instansinya di formulir &#39;Teruskan ke instansi&#39;: status "
                    "menjadi &#39;Diteruskan ke instansi&#39; begitu instansi diberi tahu.")
    assert await incident_state(console.dsn) == before
    # Dispatching the agency forwards it.
    kind, text = await operator.flash(await operator.post(f"{page}/dispatches", {
        "version": str(version), "agency": "damkar", "note": ""}))
    assert (kind, text) == ("ok", "Diteruskan ke Pemadam Kebakaran (Damkar).")
    assert (await ctx.incidents.get(fire)).status.value == "dispatched"

async def test_a_dispatch_says_whom_the_line_notified_and_when_it_notified_nobody(
        console: Console) -> None:
    """A dispatch to an agency with no recipient for the report type read 'Diberitahu' on the
    page, as one delivered did: the line had told nobody, and the operator, believing the
    police informed, did not phone them."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)
    ctx = console.client.app[CONTEXT]
    await ctx.directory.add_recipient("damkar", name="Kepala Dinas", contact="0811")
    await ctx.directory.add_recipient("damkar", name="Piket Damkar", contact="0812")
    await ctx.incidents.change_status(fire, "verified", actor="op1")
    damkar = await ctx.dispatches.dispatch(fire, "damkar", actor="op1")
    police = await ctx.dispatches.dispatch(fire, "polisi", actor="op1")
    page = f"/console/incidents/{fire}"

    async def notices() -> dict[int, str]:
        html = (await operator.get(page))[1]
        return {int(n): text for n, text in re.findall(
            r'<tr data-dispatch-id="(\d+)">.*?<td class="notices">([^<]*)</td>', html)}

    assert await notices() == {
        damkar.dispatch_id: "2 menunggu dikirim",
        police.dispatch_id: "tidak ada penerima pemberitahuan: hubungi instansi lewat telepon"}
    assert (await make_service(console.database).outbox.deliver_notifications()).sent == 2
    assert (await notices())[damkar.dispatch_id] == "2 terkirim"


async def test_a_prank_calls_off_the_agencies_on_their_way_on_the_incident_page(
        console: Console) -> None:
    """An incident marked a prank kept its dispatches 'Diterima' and told no agency: the
    fire brigade, notified, kept driving to it. The page now shows each dispatch called
    off, the brigade's stand-down messages, and that the police, who accepted with no
    recipient on the line, must be phoned."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)
    ctx = console.client.app[CONTEXT]
    await ctx.directory.add_recipient("damkar", name="Piket Damkar", contact="0812")
    await ctx.incidents.change_status(fire, "verified", actor="op1")
    damkar = await ctx.dispatches.dispatch(fire, "damkar", actor="op1")
    police = await ctx.dispatches.dispatch(fire, "polisi", actor="op1")
    await ctx.dispatches.advance_dispatch(police.dispatch_id, "acknowledged", actor="op1")
    assert (await make_service(console.database).outbox.deliver_notifications()).sent == 1
    page = f"/console/incidents/{fire}"
    version = (await ctx.incidents.get(fire)).version
    kind, text = await operator.flash(await operator.post(f"{page}/status", {
        "version": str(version), "status": "prank", "note": "penelepon mengaku iseng"}))
    assert (kind, text) == ("ok", "Status insiden: Laporan iseng.")

    html = (await operator.get(page))[1]
    rows = {int(n): (state, notices) for n, state, notices in re.findall(
        r'<tr data-dispatch-id="(\d+)"><td>[^<]*</td><td>([^<]*)</td>'
        r'.*?<td class="notices">([^<]*)</td>', html)}
    assert rows == {
        damkar.dispatch_id: ("Dibatalkan", "1 terkirim; pembatalan: 1 menunggu dikirim"),
        police.dispatch_id: ("Dibatalkan", "tidak ada penerima pemberitahuan: hubungi "
                                           "instansi lewat telepon")}
    entries = [re.findall(r'<span class="detail">([^<]+)</span>', entry.split("</li>", 1)[0])
               for entry in html.split("<strong>Tahap instansi</strong> oleh op1")[1:]]
    assert [
        "Diterima → Dibatalkan", "instansi: Polisi", f"pengiriman #{police.dispatch_id}",
        "instansi tidak dapat diberi tahu lewat pesan: batalkan lewat telepon",
        "pemberitahuan pembatalan ke instansi: 0 pesan",
        "dibatalkan karena insiden ditandai laporan iseng"] in entries
    assert [
        "Diberitahu → Dibatalkan", "instansi: Pemadam Kebakaran (Damkar)",
        f"pengiriman #{damkar.dispatch_id}", "pemberitahuan pembatalan ke instansi: 1 pesan",
        "dibatalkan karena insiden ditandai laporan iseng"] in entries

async def test_the_field_teams_attachments_are_listed_and_open_from_the_incident_page(
        console: Console) -> None:
    """A field team's photo, uploaded through the API, was on no page: the incident showed
    only a timeline entry (name, size, SHA-256) that the supervisor could not open."""
    supervisor = await console.user("spv1", "supervisor")
    fire, _, _ = await cases(console)
    ctx = console.client.app[CONTEXT]
    photo = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8

    async def chunks() -> AsyncIterator[bytes]:
        yield photo

    page = f"/console/incidents/{fire}"
    assert "Belum ada lampiran dari lapangan." in (await supervisor.get(page))[1]
    stored = await ctx.attachments.receive(fire, chunks(), max_bytes=1 << 20)
    attachment = await ctx.incidents.add_attachment(
        fire, filename="Foto api — Pasar Anom.png", content_type=stored.content_type,
        size_bytes=stored.size_bytes, sha256=stored.sha256, stored_path=stored.stored_path,
        actor="damkar-pos1")
    html = (await supervisor.get(page))[1]
    row = html.split(f'data-attachment-id="{attachment.attachment_id}"', 1)[1].split("</tr>")[0]
    link = f"/api/incidents/{fire}/attachments/{attachment.attachment_id}"
    assert f'<a href="{link}" download><bdi>Foto api — Pasar Anom.png</bdi></a>' in row
    assert re.findall(r"<td[^>]*>([^<]+)</td>", row)[:2] == ["image/png", "2 KB"]
    assert "damkar-pos1" in row
    response = await supervisor.http.get(link)
    assert response.status == 200 and await response.read() == photo
    downloads = await fetch(console.dsn, "SELECT actor FROM audit_log "
                                         "WHERE action = 'attachment.download'")
    assert [r["actor"] for r in downloads] == ["spv1"]

async def test_an_edit_on_the_timeline_reads_in_words_not_codes(console: Console) -> None:
    """The timeline showed an operator's edit as "jenis: fire → fallen_tree", "desa: - →
    35.29.01.1015", the point as a Python dict ("{'latitude': -7.0, ...}"), and a dispatch as
    "instansi: satpol_pp": the codes the database keeps, not the words on the form."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)
    ctx = console.client.app[CONTEXT]
    await ctx.incidents.update_details(fire, parse_patch({
        "report_type": "fallen_tree", "priority": "1", "village_code": "35.29.01.1015",
        "latitude": -7.0125, "longitude": 113.8631}), actor="op1")
    await ctx.incidents.change_status(fire, "verified", actor="op1")
    await ctx.dispatches.dispatch(fire, "satpol_pp", actor="op1")
    html = (await operator.get(f"/console/incidents/{fire}"))[1]

    def entry(label: str) -> list[str]:
        item = html.split(f"<strong>{label}</strong> oleh op1", 1)[1].split("</li>", 1)[0]
        return re.findall(r'<span class="detail">([^<]+)</span>', item)

    assert entry("Dibuat")[1] == "prioritas: 2 · Tinggi"
    assert entry("Rincian diubah") == [
        "koordinat: - → -7.0125, 113.8631", "prioritas: 2 · Tinggi → 1 · Kritis",
        "jenis: Kebakaran → Pohon tumbang", "kecamatan: - → Kota Sumenep",
        "desa: - → Kepanjin"]
    assert entry("Tahap instansi")[1] == "instansi: Satpol PP"

# -- recordings --------------------------------------------------------------------------------


async def add_recording(console: Console, call_id: str, kind: str, state: str,
                        audio: bytes | None = None) -> int:
    path = f"2025/01/31/{call_id}-{kind}.opus"
    if audio is not None:
        stored = console.settings.recordings_dir / path
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(audio)
    rows = await fetch(console.dsn, """
        INSERT INTO recordings (call_id, kind, state, started_at, format, storage_path,
                                size_bytes, sha256, duration_seconds)
        VALUES ($1, $2, $3, now(), 'opus', $4, $5, repeat('0', 64), 75.0)
        RETURNING recording_id""", call_id, kind, state, path, len(audio or b""))
    return int(rows[0]["recording_id"])


async def test_the_details_form_refuses_a_bidi_control_in_the_location_only(
    console: Console
) -> None:
    operator, fire, page, form = await details_form(console)
    before = await incident_state(console.dsn)
    for control in BIDI_CONTROLS:
        kind, shown = await operator.flash(await operator.post(
            f"{page}/details", {**form, "location_text": spoofed("Jl. Trunojoyo 12", control)}))
        assert kind == "error" and "pengatur arah teks" in shown, (control, shown)
    assert await incident_state(console.dsn) == before
    typed = "Kata penelepon: \u202ekiri\u202c jalan\nlalu ke pasar"
    kind, shown = await operator.flash(await operator.post(
        f"{page}/details", {**form, "description": typed}))
    assert kind == "ok", shown
    row = (await fetch(console.dsn, "SELECT description FROM incidents WHERE incident_id = $1",
                       fire))[0]
    assert row["description"] == typed
    # Shown in a block of its own (console.css isolates .pre): the override stays in it.
    assert '<dd class="pre" id="incident-description">Kata penelepon: \u202ekiri' in (
        await operator.get(page))[1]


async def test_a_description_typed_on_several_lines_is_saved(console: Console) -> None:
    """A browser posts a textarea's line breaks as CRLF; they were refused as control
    characters. Stored with plain line breaks."""
    operator, fire, page, form = await details_form(console)
    kind, shown = await operator.flash(await operator.post(f"{page}/details", {
        **form, "description": "Asap tebal dari gudang.\r\nDua orang terjebak.\rLantai 2."}))
    assert kind == "ok", shown
    row = (await fetch(console.dsn, "SELECT description FROM incidents WHERE incident_id = $1",
                       fire))[0]
    assert row["description"] == "Asap tebal dari gudang.\nDua orang terjebak.\nLantai 2."


async def test_a_village_set_back_to_unknown_takes_its_sub_district_with_it(
        console: Console) -> None:
    """An operator who picked the wrong village and set it back to "belum diketahui" kept
    its sub-district: the form has no field for it, the page still read "-, Kota Sumenep",
    and the agencies dispatched next were told "Kec. Kota Sumenep"."""
    operator, fire, page, form = await details_form(console)
    for village, shown in [("35.29.01.1015", "Kepanjin, Kota Sumenep — Jl. Trunojoyo 12"),
                           ("", "- — Jl. Trunojoyo 12")]:
        version = (await console.client.app[CONTEXT].incidents.get(fire)).version
        kind, text = await operator.flash(await operator.post(f"{page}/details", {
            **form, "version": str(version), "village_code": village}))
        assert kind == "ok", text
        html = (await operator.get(page))[1]
        assert re.findall(r'<dd id="incident-place">([^<]*)</dd>', html) == [shown]
    row = (await fetch(console.dsn, "SELECT village_code, sub_district_code FROM incidents "
                                    "WHERE incident_id = $1", fire))[0]
    assert (row["village_code"], row["sub_district_code"]) == (None, None)

async def test_the_recording_plays_from_the_incident_page_and_every_playback_is_audited(
    console: Console
) -> None:
    operator = await console.user("op1", "operator", desk=True)
    supervisor = await console.user("spv1", "supervisor")
    admin = await console.user("admin1", "admin")
    fire, repeat, _ = await cases(console)
    audio = os.urandom(4000)
    mixed = await add_recording(console, FIRE, "mixed", "done", audio)
    await add_recording(console, FIRE, "caller", "processing")
    page = f"/console/incidents/{fire}"
    url = f"/api/recordings/{mixed}/audio"

    # Shown only as a player that fetches nothing until play is pressed: viewing the page
    # is no playback and leaves no audit entry.
    for browser in (operator, supervisor):
        _, html, response = await browser.get(page)
        assert f'<audio controls preload="none" src="{url}"></audio>' in html
        # The page's Content-Security-Policy lets the player load our own audio.
        assert "media-src 'self'" in response.headers["Content-Security-Policy"]
        assert "Rekaman panggilan · 1:15" in html
        assert "Suara penelepon saja: sedang diproses" in html
    html = (await operator.get(f"/console/incidents/{repeat}"))[1]
    assert "<audio" not in html and "Rekaman belum tersedia" in html
    assert await fetch(console.dsn, "SELECT * FROM audit_log WHERE action = 'recording.play'"
                       ) == []

    # Pressing play: the browser's own GET with the session cookie, whole or by range.
    response = await operator.http.get(url)
    assert response.status == 200 and await response.read() == audio
    response = await operator.http.get(url, headers={"Range": "bytes=0-1"})
    assert response.status == 206 and await response.read() == audio[:2]
    # An admin sees no caller data: no page, no audio, no audit entry.
    assert (await admin.get(page))[0] == 403
    response = await admin.http.get(url)
    assert response.status == 403
    plays = await fetch(console.dsn, "SELECT * FROM audit_log WHERE action = 'recording.play' "
                                     "ORDER BY audit_id")
    assert [(r["actor"], r["object_type"], r["object_id"], r["remote_address"])
            for r in plays] == [("op1", "recording", str(mixed), "127.0.0.1")] * 2
    assert [json.loads(r["detail"]) for r in plays] == [
        {"call_id": FIRE, "range": None}, {"call_id": FIRE, "range": "bytes=0-1"}]
    # Opening an incident page, which shows its callers' numbers, is audited; a refusal is not.
    views = await fetch(console.dsn, "SELECT actor, object_id FROM audit_log "
                                     "WHERE action = 'incident.view' ORDER BY audit_id")
    assert [(r["actor"], r["object_id"]) for r in views] == [
        ("op1", str(fire)), ("spv1", str(fire)), ("op1", str(repeat))]


# -- the desk's queue actions in the audit log -------------------------------------------------


async def test_queue_join_pause_resume_and_leave_are_audited_and_refusals_are_not(
    console: Console
) -> None:
    operator = await console.user("op1", "operator", desk=True)
    supervisor = await console.user("spv1", "supervisor")

    async def audited() -> list[tuple[str, str, str, str, dict[str, Any]]]:
        rows = await fetch(console.dsn, "SELECT * FROM audit_log WHERE action LIKE 'desk.%' "
                                        "ORDER BY audit_id")
        return [(r["actor"], r["action"], r["object_id"], r["remote_address"],
                 json.loads(r["detail"])) for r in rows]

    # Refused before Asterisk is asked, or refused by Asterisk: nothing audited.
    await operator.flash(await operator.post("/console/desk/pause", {"reason": "break"}))
    await operator.flash(await operator.post("/console/desk/join", {"skill": "security"}))
    console.asterisk.refusing = True
    kind, _ = await operator.flash(await operator.post("/console/desk/join", {"skill": "fire"}))
    assert kind == "error"
    console.asterisk.refusing = False
    assert await audited() == []

    await operator.flash(await operator.post("/console/desk/join", {"skill": ["fire"]}))
    await operator.flash(await operator.post("/console/desk/join", {"skill": ["fire"]}))
    await operator.flash(await operator.post("/console/desk/pause", {"reason": "tidur"}))
    await operator.flash(await operator.post("/console/desk/pause", {"reason": "wrapup"}))
    await operator.flash(await operator.post("/console/desk/resume", {}))
    # The JSON API's desk goes through the same service, and is audited the same way.
    csrf = {"X-CSRF-Token": operator.cookie("siaga112_csrf") or ""}
    response = await operator.http.post("/api/desk/pause", json={"reason": "meeting"},
                                        headers=csrf)
    assert response.status == 204
    response = await operator.http.delete("/api/desk/queues", headers=csrf)
    assert response.status == 200
    queues = ["all-operators", "fire"]
    assert await audited() == [
        ("op1", "desk.join", OPERATOR, "127.0.0.1", {"queues": queues, "skills": ["fire"]}),
        ("op1", "desk.pause", OPERATOR, "127.0.0.1", {"queues": queues, "reason": "wrapup"}),
        ("op1", "desk.resume", OPERATOR, "127.0.0.1", {"queues": queues}),
        ("op1", "desk.pause", OPERATOR, "127.0.0.1", {"queues": queues, "reason": "meeting"}),
        ("op1", "desk.leave", OPERATOR, "127.0.0.1", {"queues": queues}),
    ]
    # The supervisor reads them in the audit log.
    html = (await supervisor.get("/console/audit"))[1]
    assert html.count("desk.pause") == 2 and "reason: wrapup" in html


async def test_no_merge_is_offered_for_a_call_whose_incident_was_worked_on(
    console: Console
) -> None:
    operator = await console.user("op1", "operator", desk=True)
    fire, repeat, _ = await cases(console)
    assert next(i["incident_id"] for i in (await desk(operator))["related"]) == fire
    incidents = console.client.app[CONTEXT].incidents
    await incidents.change_status(repeat, "verified", actor="op1")
    await console.client.app[CONTEXT].dispatches.dispatch(repeat, "damkar", actor="op1")
    assert (await desk(operator))["related"] == []
    assert related_ids((await operator.get(f"/console/incidents/{repeat}"))[1]) == []


async def test_a_refused_details_form_names_the_field_to_fix_in_words(console: Console
                                                                        ) -> None:
    """The refusal is shown at the top of the page, away from the form: it said "Isian
    mengandung karakter yang tidak diizinkan." for a tab pasted into the location from a
    spreadsheet, and "Isian location_text ..." for a bidi control, so the operator could not
    tell which field to fix."""
    operator, fire, page, form = await details_form(console)
    before = await incident_state(console.dsn)
    refusals = [
        ({"location_text": "Jl. Trunojoyo 12\tRT 03"},
         "Lokasi mengandung karakter yang tidak diizinkan (satu baris saja: tanpa tab atau "
         "baris baru)."),
        ({"location_text": "x" * 501}, "Lokasi terlalu panjang (maksimal 500 karakter)."),
        ({"description": "Asap tebal\x07"},
         "Uraian mengandung karakter yang tidak diizinkan."),
        ({"description": "x" * 4001}, "Uraian terlalu panjang (maksimal 4000 karakter)."),
    ]
    for fields, text in refusals:
        assert await operator.flash(await operator.post(f"{page}/details",
                                                        {**form, **fields})) == (
            "error", text), fields
    # The message names the field for the page's script to mark (forms.js).
    response = await operator.post(f"{page}/details", {**form, "location_text": "a\tb"})
    html = (await operator.get(response.headers["Location"]))[1]
    assert '<p class="flash flash-error" role="alert" id="flash" data-field="location_text">' \
        in html
    kind, text = await operator.flash(await operator.post(
        f"{page}/details", {**form, "location_text": spoofed("Jl. Trunojoyo 12")}))
    assert kind == "error" and text.startswith("Lokasi tidak boleh berisi karakter "
                                               "pengatur arah teks"), text
    assert await incident_state(console.dsn) == before
    # A 2,000-character description, typed on several lines, is taken whole.
    long = ("Penelepon panik, bicara cepat. " * 70)[:1999] + "."
    kind, text = await operator.flash(await operator.post(
        f"{page}/details", {**form, "description": long}))
    assert kind == "ok", text
    row = (await fetch(console.dsn, "SELECT description FROM incidents WHERE incident_id = $1",
                       fire))[0]
    assert row["description"] == long.strip()


async def test_the_open_incidents_list_goes_on_past_its_first_page(console: Console) -> None:
    """It stopped at 200 without a word: the 201st open incident was on no page."""
    operator = await console.user("op1", "operator", desk=True)
    await console.database.run(lambda c: c.executemany(
        "INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at) "
        "VALUES ($1, '081355500009', '6281355500009', '112', now())",
        [(f"1700001{n:03d}.1",) for n in range(201)]))
    incidents = console.client.app[CONTEXT].incidents
    ids = [(await incidents.create_for_call(f"1700001{n:03d}.1")).incident_id
           for n in range(201)]

    def listed(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'<a href="/console/incidents/(\d+)">', html)]

    status, html, _ = await operator.get("/console/incidents")
    assert status == 200 and len(listed(html)) == 200
    assert "insiden ke-1 s.d. ke-200" in html
    assert 'href="/console/incidents?halaman=2" rel="next"' in html and 'rel="prev"' not in html
    status, second, _ = await operator.get("/console/incidents?halaman=2")
    assert status == 200 and "insiden ke-201 s.d. ke-201" in second
    assert 'href="/console/incidents?halaman=1" rel="prev"' in second and 'rel="next"' not in second
    assert sorted(listed(html) + listed(second)) == ids  # every one, once
    # A page number typed wrong is the first page; one past the end says so.
    for odd in ("0", "-1", "abc", "2.5", "%20", "9" * 40):
        status, shown, _ = await operator.get(f"/console/incidents?halaman={odd}")
        assert status == 200 and listed(shown) == listed(html), odd
    status, shown, _ = await operator.get("/console/incidents?halaman=9")
    assert status == 200 and "Tidak ada insiden terbuka di halaman ini." in shown
    assert 'href="/console/incidents?halaman=8" rel="prev"' in shown


async def test_the_incidents_resolved_and_waiting_to_be_closed_are_listed(console: Console
                                                                         ) -> None:
    """A resolved incident waits for a supervisor to close it, but it was on no list: the
    open incidents' list leaves it out, so at the end of a shift it could be found only one
    by one, by a caller's number or a village, and resolved incidents were never closed."""
    supervisor = await console.user("spv1", "supervisor")
    fire, repeat, medical = await cases(console)
    incidents = console.client.app[CONTEXT].incidents
    for incident_id in (fire, medical):
        for step in ("verified", "dispatched", "on_scene", "resolved"):
            await incidents.change_status(incident_id, step, actor="op1")

    def listed(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'<a href="/console/incidents/(\d+)">', html)]

    status, html, _ = await supervisor.get("/console/incidents")
    assert status == 200 and listed(html) == [repeat]
    assert '<a href="/console/incidents?daftar=selesai">Menunggu ditutup</a>' in html
    status, html, _ = await supervisor.get("/console/incidents?daftar=selesai")
    assert status == 200 and sorted(listed(html)) == sorted([fire, medical])
    assert "<h1>Menunggu ditutup</h1>" in html and "<td>Selesai ditangani</td>" in html
    # The API lists them too.
    for query, found in [("", [repeat]), ("?status=open", [repeat]),
                         ("?status=resolved", [fire, medical])]:
        response = await supervisor.http.get(f"/api/incidents{query}")
        assert response.status == 200, query
        body = await response.json()
        assert sorted(i["incident_id"] for i in body["incidents"]) == sorted(found), query
    response = await supervisor.http.get("/api/incidents?status=closed")
    assert response.status == 422
    assert (await response.json())["error"]["message"] == ("status harus salah satu dari: "
                                                           "open, resolved.")
    # Closed from its page, it leaves the list.
    page = f"/console/incidents/{fire}"
    version = int(re.findall(r'name="version" value="(\d+)"', (await supervisor.get(page))[1])[0])
    kind, text = await supervisor.flash(await supervisor.post(f"{page}/status", {
        "version": str(version), "status": "closed", "note": "dicek supervisor"}))
    assert (kind, text) == ("ok", "Status insiden: Ditutup.")
    assert listed((await supervisor.get("/console/incidents?daftar=selesai"))[1]) == [medical]
    await incidents.change_status(medical, "closed", actor="spv1")
    html = (await supervisor.get("/console/incidents?daftar=selesai"))[1]
    assert listed(html) == [] and "Tidak ada insiden yang menunggu ditutup." in html

async def test_an_earlier_incident_is_found_by_the_callers_number_or_the_village(
        console: Console) -> None:
    """The list held open incidents only, and had no search: a caller who rang again about a
    fire whose incident was already closed, or a new call naming the same village, left the
    operator no way to find the earlier report."""
    operator = await console.user("op1", "operator", desk=True)
    fire, repeat, medical = await cases(console)
    incidents = console.client.app[CONTEXT].incidents
    await incidents.update_details(fire, parse_patch({
        "village_code": "35.29.02.2003", "location_text": "Gg. Melati 3, 50% terbakar"}),
        actor="op1")
    await incidents.update_details(medical, parse_patch({"location_text": "Pasar Anom"}),
                                   actor="op1")
    await incidents.change_status(fire, "cancelled", actor="op1", note="sudah padam")

    def listed(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'<a href="/console/incidents/(\d+)">', html)]

    status, html, _ = await operator.get("/console/incidents")
    assert status == 200 and fire not in listed(html) and 'name="cari"' in html
    # The number however it is written, or a part of it; the village's name in any case;
    # the sub-district's; the location's.
    for query, found in [("0813-5550-0001", [fire]), ("+62 813 5550 0001", [fire]),
                         ("5550 0002", [repeat]), ("0813555000", [repeat, medical, fire]),
                         ("marengan", [fire]), ("KALIANGET", [fire]), ("pasar anom", [medical]),
                         ("50%", [fire]), ("Pinggirpapas", [])]:
        status, html, _ = await operator.get(f"/console/incidents?cari={quote(query)}")
        assert status == 200 and listed(html) == found, (query, listed(html))
        assert f'value="{query}"' in html.replace("&#43;", "+")
    status, html, _ = await operator.get("/console/incidents?cari=marengan")
    # A closed one says so, and has no dispatch target left to miss.
    assert re.search(r"<td>Dibatalkan</td>.*?<td class=\"\">-</td>\s*</tr>", html, re.S), html
    status, html, _ = await operator.get(f"/console/incidents?cari={quote('Pinggirpapas')}")
    assert "Tidak ada insiden yang cocok dengan «Pinggirpapas»." in html
    # What cannot be searched says why, naming the search, and finds nothing.
    for query, reason in [("ab", "Ketik sedikitnya 3 huruf"), ("08", "Ketik sedikitnya 3"),
                          ("a" * 101, "terlalu panjang"),
                          ("Ko\u202elor", "tidak diizinkan")]:
        status, html, _ = await operator.get(f"/console/incidents?cari={quote(query)}")
        assert status == 422 and reason in html and listed(html) == [], query
        assert 'aria-invalid="true"' in html and 'id="search-error"' in html
    status, html, _ = await operator.get(f"/console/incidents?cari={quote(HOSTILE)}")
    assert status == 200 and "<script>" not in html
    # Who looked up which number is audited, as a search of calls is.
    searched = await fetch(console.dsn, "SELECT object_id, detail FROM audit_log "
                           "WHERE action = 'incident.search' AND actor = 'op1' "
                           "AND object_id = '0813-5550-0001'")
    assert [json.loads(row["detail"]) for row in searched] == [{"found": 1}]


async def test_a_repeat_callers_incident_is_merged_into_one_not_offered_by_its_number(
        console: Console) -> None:
    """The page offered the five newest open incidents only: on a night of fires the one a
    repeat caller was about, opened earlier, was not among them and could not be merged."""
    operator = await console.user("op1", "operator", desk=True)
    fire, repeat, medical = await cases(console)
    for n in range(6):  # six newer fires elsewhere
        await record(console, call_facts(f"1700000900.{n}", f"08135550010{n}"))
        await console.client.app[CONTEXT].incidents.create_for_call(f"1700000900.{n}")
    page = f"/console/incidents/{repeat}"
    status, html, _ = await operator.get(page)
    assert status == 200 and fire not in related_ids(html) and len(related_ids(html)) == 5
    assert f'action="/console/incidents/{repeat}/merge"' in html

    # What cannot be merged into says why, naming the number field, and changes nothing.
    incidents = console.client.app[CONTEXT].incidents
    await incidents.change_status(medical, "prank", actor="op1")
    before = await incident_state(console.dsn)
    for into, text in [
            ("api", "Nomor insiden tujuan tidak sah: tulis angkanya saja, mis. 123."),
            ("", "Nomor insiden tujuan tidak sah: tulis angkanya saja, mis. 123."),
            ("99999", "Insiden #99999 tidak ditemukan."),
            (str(repeat), "Tulis nomor insiden lain: insiden ini tidak dapat digabungkan ke "
                          "dirinya sendiri."),
            (str(medical), f"Insiden #{medical} berstatus &#39;Laporan iseng&#39;: hanya "
                           "insiden yang masih terbuka dapat menerima gabungan.")]:
        response = await operator.post(f"{page}/merge", {"into": into})
        assert response.headers["Location"] == page
        assert await operator.flash(response) == ("error", text), into
    response = await operator.post(f"{page}/merge", {"into": "api"})
    status, html, _ = await operator.get(response.headers["Location"])
    assert 'id="flash" data-field="into"' in html  # the page marks and focuses the field
    assert await incident_state(console.dsn) == before

    # Typed as the list shows it (#12): the call moves there, this one is cancelled as merged.
    response = await operator.post(f"{page}/merge", {"into": f" #{fire} "})
    assert response.headers["Location"] == f"/console/incidents/{fire}"
    assert await operator.flash(response) == ("ok", f"Panggilan digabungkan ke insiden #{fire}.")
    assert await incidents.call_ids(fire) == [FIRE, REPEAT]
    assert (await incidents.get(repeat)).status.value == "cancelled"


async def test_an_incident_ended_without_a_dispatch_has_no_target_left_to_miss(
        console: Console) -> None:
    """A fire reported as a prank ten minutes after the answer: its page, and the API, said
    "Target kirim ... (terlambat)", overdue by the hour, for as long as anyone looked at it.
    One dispatched in time keeps its target, met, once resolved."""
    operator = await console.user("op1", "operator", desk=True)
    await record(console, call_facts(FIRE, "081355500001", answered_at=ago(minutes=10)))
    await record(console, call_facts(MEDICAL, "081355500003", skill="medical"))
    ctx = console.client.app[CONTEXT]
    prank = (await ctx.incidents.create_for_call(FIRE, actor="op1")).incident_id
    await ctx.incidents.change_status(prank, "prank", actor="op1")
    medical = (await ctx.incidents.create_for_call(MEDICAL, actor="op1")).incident_id
    await ctx.incidents.change_status(medical, "verified", actor="op1")
    await ctx.dispatches.dispatch(medical, "ambulans", actor="op1")
    for status in ("on_scene", "resolved"):
        await ctx.incidents.change_status(medical, status, actor="op1")

    async def target(incident_id: int) -> tuple[list[str], Any]:
        html = (await operator.get(f"/console/incidents/{incident_id}"))[1]
        response = await operator.http.get(f"/api/incidents/{incident_id}")
        assert response.status == 200
        shown = re.findall(r"<dt>Target kirim</dt><dd[^>]*>([^<]*)</dd>", html)
        return shown, (await response.json())["incident"]["sla"]

    assert await target(prank) == ([], None)
    shown, sla = await target(medical)
    assert len(shown) == 1 and "terlambat" not in shown[0]
    assert (sla["target_seconds"], sla["breached"]) == (300, False)


async def test_a_call_back_whose_end_went_unreported_reads_so_on_the_incident_page(
        console: Console) -> None:
    """A call-back whose end Asterisk never reported (Asterisk or the line away) read
    "berlangsung" (going on) under its call for ever, while the call-back list said "tanpa
    kabar dari Asterisk" past its ring limit and offered to call again. The page now reads
    as the list does: going on within the ring limit, no word from Asterisk past it; and
    one the operator's phone never took says the caller was not dialled."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)
    for minutes, number in ((10, "081355500001"), (0, "081355500009")):
        await execute(console.dsn, """
            INSERT INTO call_legs (kind, call_id, operator, actor, number, target,
                                   requested_at)
            VALUES ('callback', $1, $2, 'op1', $3, 'penelepon',
                    now() - make_interval(mins => $4))
            """, FIRE, OPERATOR, number, minutes)
    # One the operator's phone never took: "Gagal" alone read as a caller not reachable.
    await execute(console.dsn, """
        INSERT INTO call_legs (kind, call_id, operator, actor, number, target, requested_at,
                               ended_at, outcome, status)
        VALUES ('callback', $1, $2, 'op1', '081355500007', 'penelepon', now(), now(),
                'failed', 'Telepon operator sibuk (Reason 5)')
        """, FIRE, OPERATOR)
    html = (await operator.get(f"/console/incidents/{fire}"))[1]
    shown = [" ".join(re.sub(r"<[^>]+>", "", item).split()) for item in
             re.findall(r'<li class="call-leg".*?</li>', html, re.S)]
    assert len(shown) == 3, shown
    assert shown[0].endswith("ke 081355500001 oleh op1 · tanpa kabar dari Asterisk"), shown
    assert shown[1].endswith("ke 081355500009 oleh op1 · berlangsung"), shown
    assert shown[2].endswith("ke 081355500007 oleh op1 · Gagal di telepon operator, "
                             "penelepon tidak ditelepon"), shown


async def test_an_answered_call_back_whose_end_went_unreported_is_not_connected_for_good(
        console: Console) -> None:
    """An answered call-back whose end Asterisk never reported (it restarted mid-call) read
    "tersambung" under its call for ever. It is over once its operator answered another
    call (or took another call-back) after it, or once no call could still be going on
    (OPEN_CALL_HORIZON); until then it is still "tersambung"."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)  # op1001 answered calls a minute ago
    for minutes, number, phone in ((240, "081355500041", OPERATOR),  # past the horizon
                                   (5, "081355500042", OPERATOR),  # op1001 moved on since
                                   (0, "081355500043", OPERATOR),  # on it now
                                   (5, "081355500044", "PJSIP/op1002")):  # still on it
        await execute(console.dsn, """
            INSERT INTO call_legs (kind, call_id, operator, actor, number, target,
                                   requested_at, rang_at, answered_at)
            VALUES ('callback', $1, $2, 'op1', $3, 'penelepon',
                    now() - make_interval(mins => $4), now() - make_interval(mins => $4),
                    now() - make_interval(mins => $4))
            """, FIRE, phone, number, minutes)
    html = (await operator.get(f"/console/incidents/{fire}"))[1]
    shown = [" ".join(re.sub(r"<[^>]+>", "", item).split()) for item in
             re.findall(r'<li class="call-leg".*?</li>', html, re.S)]
    assert [line.rsplit(" · ", 1)[1] for line in shown] == [
        "tersambung; akhirnya tidak dilaporkan Asterisk",
        "tersambung; akhirnya tidak dilaporkan Asterisk", "tersambung", "tersambung"], shown


async def test_a_withheld_caller_is_named_in_words_on_the_incident_pages_and_the_desk(
        console: Console) -> None:
    """A caller who hid their number read as Asterisk's "anonymous" on the incident page,
    the open list and the operator's desk, while the call-back list named them in words:
    every page now says it as that list does (``calls.ids.caller_shown``)."""
    operator = await console.user("op1", "operator", desk=True)
    hidden = "1700000900.4"
    await record(console, call_facts(hidden, "anonymous"))
    incident = await console.client.app[CONTEXT].incidents.create_for_call(hidden)
    html = (await operator.get(f"/console/incidents/{incident.incident_id}"))[1]
    assert '<strong class="mono caller">(nomor disembunyikan)</strong>' in html
    listed = (await operator.get("/console/incidents"))[1]
    assert '<td class="mono">(nomor disembunyikan)</td>' in listed
    assert "anonymous" not in html and "anonymous" not in listed
    shown = await desk(operator)
    assert shown["call"]["call_id"] == hidden
    assert shown["call"]["caller_shown"] == "(nomor disembunyikan)"
    assert shown["call"]["caller_number"] == "anonymous"  # the record as the carrier sent it
    # A number shown is shown as it is.
    await record(console, call_facts("1700000901.5", "081355500011"))
    assert (await desk(operator))["call"]["caller_shown"] == "081355500011"


async def test_a_nuisance_label_closes_the_untouched_automatic_incident_and_undoes(
        console: Console) -> None:
    """Labelling a call Iseng, Diam or Tidak sengaja left the incident the line had opened
    for it "Baru": the next shift's open list filled with them, and the daily summary
    counted each under its report type (a child's "fire" a fire). An automatic incident
    nobody worked on now follows its call's label: a prank to "Laporan iseng", a silent or
    accidental call to "Dibatalkan"; a wrong label taken back brings it back. One an
    operator worked on stays as it is."""
    operator = await console.user("op1", "operator", desk=True)
    ctx = console.client.app[CONTEXT]
    prank, silent, worked = "1700001000.6", "1700001100.7", "1700001200.8"
    for call_id, caller in ((prank, "081355500021"), (silent, "081355500022"),
                            (worked, "081355500023")):
        await record(console, call_facts(call_id, caller))
    await ctx.incidents.create_for_answered_calls()
    ids = {call_id: (await fetch(console.dsn, "SELECT incident_id FROM incident_calls "
                                              "WHERE call_id = $1", call_id))[0][0]
           for call_id in (prank, silent, worked)}
    await ctx.incidents.update_details(ids[worked], parse_patch({"location_text": "Pasar"}),
                                       actor="op1")

    async def status(call_id: str) -> str:
        return str((await ctx.incidents.get(ids[call_id])).status.label)

    async def open_ids() -> set[int]:
        html = (await operator.get("/console/incidents"))[1]
        return {int(n) for n in re.findall(r'href="/console/incidents/(\d+)"', html)}

    async def counted() -> int:
        """The incidents the daily summary counts by report type (the three calls' day)."""
        (day,) = {r["shift_day"] for r in await fetch(
            console.dsn, "SELECT shift_day FROM calls WHERE call_id = $1", prank)}
        found = await console.database.run(
            lambda connection: ReportRepository().report_types(connection, day))
        return sum(c.incidents for c in found)

    assert await open_ids() >= set(ids.values()) and await counted() == 3

    # From the incident page's label buttons: at once, and the message says so.
    page = f"/console/incidents/{ids[prank]}"
    response = await operator.post(f"/console/calls/{prank}/label",
                                   {"label": "prank", "next": page})
    assert await operator.flash(response) == (
        "ok", f"Panggilan diberi label: Iseng. Insiden #{ids[prank]} otomatis berstatus "
              "Laporan iseng.")
    assert await status(prank) == "Laporan iseng"
    html = (await operator.get(page))[1]
    assert "Baru → Laporan iseng" in html
    assert "alasan: panggilannya diberi label gangguan" in html
    assert "label panggilan: Iseng" in html
    # Through the API, or a label the database kept from settling: the upkeep settles it.
    await ctx.screening.label(silent, "silent", "op1")
    await ctx.incidents.settle_labelled_calls()
    assert await status(silent) == "Dibatalkan"
    # One an operator worked on stays: they decide what it is.
    response = await operator.post(f"/console/calls/{worked}/label",
                                   {"label": "prank", "next": "/console/operator"})
    assert await operator.flash(response) == ("ok", "Panggilan diberi label: Iseng.")
    assert await status(worked) == "Baru"
    shown = await open_ids()
    assert ids[prank] not in shown and ids[silent] not in shown and ids[worked] in shown
    assert await counted() == 1

    # A wrong label taken back brings the incident back, and the timeline says why.
    response = await operator.post(f"/console/calls/{prank}/label",
                                   {"label": "genuine", "next": page})
    assert (await operator.flash(response))[1].endswith(
        f"Insiden #{ids[prank]} otomatis berstatus Baru.")
    assert await status(prank) == "Baru"
    html = (await operator.get(page))[1]
    assert "Laporan iseng → Baru" in html
    assert "alasan: label gangguan panggilannya diganti" in html
    # Back to a nuisance, then corrected from silent to accidental by the API path.
    await ctx.screening.label(silent, "genuine", "op1")
    await ctx.screening.label(silent, "accidental", "op1")
    assert await ctx.incidents.settle_labelled_calls() == []  # still closed, as it should be
    assert await status(silent) == "Dibatalkan"
    assert ids[prank] in await open_ids() and await counted() == 2
    # Nothing left for the upkeep to settle: not even the worked-on incident of a call
    # labelled a prank is read again at every pass.
    assert await console.database.run(
        lambda connection: IncidentRepository().calls_to_settle_by_label(
            connection, max_age=timedelta(hours=24), limit=10)) == []


async def test_the_desk_shows_the_call_back_the_operator_is_on_and_opens_its_incident(
        console: Console) -> None:
    """An operator calling back a caller who gave up in the queue hears of a fire: the desk
    showed the previous caller's call (the last one answered there), and the call-back's
    entry had left the call-back list once answered, so the fire could get no incident from
    the console. The desk now shows the call being called back, with the call-back's
    progress, and opens (or merges) its incident as for any call."""
    operator = await console.user("op1", "operator", desk=True)
    fire, _, _ = await cases(console)  # the last call answered at the desk is REPEAT's
    gave_up = "1700000500.9"
    await record(console, call_facts(gave_up, "081355500031", at=ago(minutes=10),
                                     answered_at=None))
    assert (await desk(operator))["call"]["call_id"] == REPEAT
    leg_id = (await fetch(console.dsn, """
        INSERT INTO call_legs (kind, call_id, operator, actor, number, target, rang_at,
                               answered_at)
        VALUES ('callback', $1, $2, 'op1', '081355500031', 'penelepon', now(), now())
        RETURNING leg_id""", gave_up, OPERATOR))[0][0]

    shown = await desk(operator)
    call = shown["call"]
    assert (call["call_id"], call["state"], call["state_label"]) == (
        gave_up, "talking", "Panggilan balik · tersambung")
    assert call["callback"]["leg_id"] == leg_id and call["incident_id"] is None
    assert fire in [i["incident_id"] for i in shown["related"]]  # to merge into, if it is
    response = await operator.post(f"/console/calls/{gave_up}/incident",
                                   {"next": "/console/operator"})
    (incident_id,) = await fetch(console.dsn, "SELECT incident_id FROM incident_calls "
                                              "WHERE call_id = $1", gave_up)
    assert response.headers["Location"] == f"/console/incidents/{incident_id[0]}"
    assert (await desk(operator))["call"]["incident_id"] == incident_id[0]

    # The call-back over, the desk says so until the operator's next call.
    await execute(console.dsn, "UPDATE call_legs SET ended_at = now(), outcome = 'answered' "
                               "WHERE leg_id = $1", leg_id)
    call = (await desk(operator))["call"]
    assert (call["call_id"], call["state"], call["state_label"]) == (
        gave_up, "ended", "Panggilan balik · selesai")
    await record(console, call_facts("1700002000.1", "081355500032", answered_at=ago(seconds=0),
                                     talk=None))
    call = (await desk(operator))["call"]
    assert (call["call_id"], call["callback"], call["state"]) == (
        "1700002000.1", None, "talking")
