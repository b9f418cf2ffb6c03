"""The operator console in headless Chromium against the whole line: the real server, real
PostgreSQL, the real Asterisk lab and sipp.

An operator logs in through the form, joins the queues of their skills (live QueueAdd), a
sipp caller with two silent calls in the last hour dials 112 and presses 1 2 (fire); the call
rings on the operator's screen with its prank score and reasons, is answered by the operator's
sipp phone, and the operator opens the pre-filled incident, completes it (with HTML in the
location, shown as text), verifies it, dispatches the fire brigade, labels the call, pauses
for a break and resumes. A second caller rings about the same fire: from the screen the
operator merges that call into the first incident, escalates it to the sub-district with a
reason, plays the first call's recording (through the audited streaming endpoint, with the
session cookie) and leaves the queues. Screenshots at 1366x768 of every step go to the test's
tmp path and to /tmp/console-shots/; no page raises a script error, a CSP violation or a
dialog on the way.

Its own lab instance and ports, so it can run beside the end-to-end modules.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import (
    Error as PlaywrightError,
)
from playwright.async_api import (
    Locator,
    Page,
    Route,
    expect,
)

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import Line
from telephony.calls.ids import parse_caller_id
from telephony.desks.service import assign_desk
from telephony.incidents.edits import parse_patch
from telephony.lab import sipp
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.browser import ConsolePage
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("console-test"),
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    incident_upkeep_seconds=0.5,
    http_port=0,  # any free port: Line.web says which
)
OPERATOR = "PJSIP/op1001"
PASSWORD = "kata-sandi-operator"
WAIT_MS = 30_000
TYPED_CALL = "1600000200.1"  # the call whose incident the typing test works on
HOSTILE_PLACE = "Jl. Trunojoyo <img src=x onerror=alert(1)> depan masjid"


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def phone_options() -> dict[str, float]:
    # The phone rings 3 s before it is answered: long enough to be seen ringing on screen.
    return {"ring_seconds": 3.0}


@pytest.fixture(scope="module")
def joining_operators() -> tuple[str, ...]:
    """Nobody is in the queues: the operator joins through the console."""
    return (OPERATOR,)


async def seed_silent_calls(line: Line, caller: str, count: int) -> None:
    """``count`` calls of ``caller`` in the last hour that hung up in the IVR without a key:
    what the screening history calls silent."""
    key = parse_caller_id(caller).key

    async def work(connection: asyncpg.Connection) -> None:
        for n in range(count):
            await connection.execute(
                """
                INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at,
                                   ended_at, hangup_cause)
                VALUES ($1, $2, $3, '112', now() - make_interval(mins => $4),
                        now() - make_interval(mins => $4) + interval '6 seconds', 16)
                """,
                f"1600000000.{n + 1}", caller, key, 20 + 10 * n)

    await line.database.run(work)


async def shoot(page: Page, shots: Path, name: str, *, full_page: bool = False) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=full_page)


async def flash(page: Page, text: str) -> None:
    await expect(page.locator("#flash")).to_have_text(text, timeout=WAIT_MS)


async def test_an_operator_takes_a_call_and_dispatches_the_fire_brigade_in_the_browser(
    line: Line, settings: Settings, console_page: ConsolePage
) -> None:
    assert line.web.url is not None
    caller = unique_caller("0819")
    second_caller = unique_caller("0819")
    # One silent call in the last hour: enough to lower the priority and show the reason, not
    # enough for the screening prompt (which would hold the caller 10 s before the queue).
    await seed_silent_calls(line, caller, 1)
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("siti", "operator", PASSWORD, display_name="Siti Aminah",
                          actor="test")
    await assign_desk(line.database, load_menu(settings.menu_file), "siti", OPERATOR,
                      {"fire": 5, "general": 3})
    page, problems, shots = console_page.page, console_page.problems, console_page.shots

    # Log in; the operator lands on their screen.
    await console_page.log_in("siti", PASSWORD, shot="01-masuk", landing="/console/operator")
    queues = page.locator("#queues tbody")
    await expect(queues).to_have_text("Belum masuk antrean.", timeout=WAIT_MS)

    # Join the queues of both skills, live in Asterisk.
    await page.click('button:has-text("Masuk antrean")')
    await flash(page, "Masuk antrean: all-operators, emergency-general, fire, "
                      "information, non-emergency.")
    await expect(queues.locator("tr")).to_have_count(5, timeout=WAIT_MS)
    await expect(queues.locator('tr[data-queue="fire"]')).to_contain_text("Siap")
    members = await memberships(line)
    assert {"fire", "all-operators", "emergency-general"} <= members
    await shoot(page, shots, "02-siap")

    # A caller reports a fire; the call rings on the screen with its screening.
    call = asyncio.create_task(place_call(settings, caller))
    panel = page.locator("#call")
    await page.wait_for_selector('#call[data-state="ringing"]', timeout=WAIT_MS)
    await expect(panel.locator(".caller")).to_have_text(caller)
    await expect(panel.locator(".line")).to_have_text("112")
    score, reasons = await screening_of(line, caller)
    await expect(panel.locator(".score")).to_have_text(f"{score:.2f}")
    await expect(panel.locator(".reasons li")).to_have_text(reasons)
    assert "1 di antaranya diam" in " ".join(reasons)
    await expect(panel).to_contain_text("tombol 1 · Darurat · Kebakaran")
    await expect(page.locator("#history tbody tr")).to_have_count(1)
    await expect(page.locator("#history")).to_contain_text("Berakhir di IVR")
    await shoot(page, shots, "03-berdering")
    await page.wait_for_selector('#call[data-state="talking"]', timeout=WAIT_MS)
    await expect(panel.locator(".badge")).to_have_text("Tersambung")
    await shoot(page, shots, "04-tersambung")

    # One click: the incident form, pre-filled from the IVR (fire).
    await panel.locator('button:has-text("Buka formulir insiden")').click()
    await page.wait_for_url("**/console/incidents/*")
    incident_id = int(page.url.rsplit("/", 1)[1])
    first_call = await panel_call_id(page)
    await expect(page.locator('select[name="report_type"]')).to_have_value("fire")
    await page.select_option('select[name="priority"]', "1")
    await page.select_option('select[name="village_code"]', "35.29.01.1015")
    await page.fill('input[name="location_text"]', HOSTILE_PLACE)
    await page.fill('textarea[name="description"]',
                    "Kios di pasar terbakar, asap tebal, belum ada korban.")
    await page.click('button:has-text("Simpan rincian")')
    await flash(page, "Rincian insiden disimpan.")
    await expect(page.locator("#incident-place")).to_contain_text(HOSTILE_PLACE)
    await shoot(page, shots, "05-insiden-terisi")
    await page.select_option('select[name="status"]', "verified")
    await page.click('button:has-text("Ubah status")')
    await flash(page, "Status insiden: Terverifikasi.")
    await page.select_option('select[name="agency"]', "damkar")
    await page.fill('#dispatch-form input[name="note"]', "dua unit")
    await page.click('button:has-text("Teruskan")')
    await flash(page, "Diteruskan ke Pemadam Kebakaran (Damkar).")
    await expect(page.locator("#incident-status")).to_have_text(
        "Diteruskan ke instansi")
    await expect(page.locator("#dispatches")).to_contain_text("dua unit")
    await shoot(page, shots, "06-insiden-diteruskan")

    # Back on the screen: label the call.
    await page.goto("/console/operator")
    await page.wait_for_selector("#call[data-call-id]", timeout=WAIT_MS)
    await panel.locator('.label-form button[value="genuine"]').click()
    await flash(page, "Panggilan diberi label: Asli.")
    await expect(panel.locator('[data-field="label_text"]')).to_have_text(
        "Asli", timeout=WAIT_MS)
    await expect(panel.locator('[data-field="incident"]')).to_have_text(
        f"#{incident_id}")
    await shoot(page, shots, "07-diberi-label")

    # A break, the end of it, and the end of the shift.
    await page.select_option('select[name="reason"]', "break")
    await page.click('button:has-text("Jeda")')
    await flash(page, "Jeda: Istirahat.")
    await expect(queues.locator('tr[data-queue="fire"]')).to_contain_text(
        "Jeda (Istirahat)", timeout=WAIT_MS)
    await shoot(page, shots, "08-jeda")
    await page.click('button:has-text("Lanjut")')
    await expect(queues.locator('tr[data-queue="fire"]')).to_contain_text(
        "Siap", timeout=WAIT_MS)
    first = await call

    # A second caller about the same fire: their call opens an incident of its own
    # (as every answered call does), and the screen offers the open fire to merge into.
    repeat = asyncio.create_task(place_call(settings, second_caller))
    await expect(panel.locator(".caller")).to_have_text(second_caller, timeout=WAIT_MS)
    await page.wait_for_selector('#call[data-state="talking"]', timeout=WAIT_MS)
    await expect(panel.locator('[data-field="incident"] a')).to_have_count(
        1, timeout=WAIT_MS)
    offered = panel.locator(f'.related li[data-incident-id="{incident_id}"]')
    await expect(offered).to_contain_text("Kebakaran", timeout=WAIT_MS)
    await expect(offered).to_contain_text("Kepanjin — Jl. Trunojoyo <img src=x")
    await shoot(page, shots, "09-penelepon-berulang")
    await offered.locator('button:has-text("Gabungkan")').click()
    await page.wait_for_url(f"**/console/incidents/{incident_id}")
    await flash(page, f"Panggilan digabungkan ke insiden #{incident_id}.")
    await expect(page.locator("#calls .call-summary")).to_have_count(2)
    await expect(page.locator("#calls")).to_contain_text(second_caller)
    await expect(page.locator("#timeline")).to_contain_text("Panggilan dikaitkan")

    # Escalated to the sub-district, with the reason; the timeline says who and when.
    await page.select_option('#escalation-form select[name="level"]', "sub_district")
    await page.fill('#escalation-form input[name="reason"]',
                    "Api merambat ke kios sebelah")
    await page.click('#escalation-form button:has-text("Eskalasi")')
    await flash(page, "Eskalasi ke tingkat Kecamatan.")
    await expect(page.locator("#incident-escalation")).to_have_text(
        "Kecamatan — Api merambat ke kios sebelah")
    await expect(page.locator("#timeline")).to_contain_text("Desa → Kecamatan")
    await shoot(page, shots, "10-digabungkan-eskalasi", full_page=True)

    # The first call's recording, once the worker has stored it: pressing play
    # fetches it with the session cookie through the audited endpoint.
    player = page.locator(f'#calls [data-call-id="{first_call}"] audio').first
    await recording_on(page, player)
    source = await player.get_attribute("src")
    assert source is not None and source.startswith("/api/recordings/")
    async with page.expect_response(
            lambda r: r.url.endswith(source), timeout=WAIT_MS) as fetched:
        await player.scroll_into_view_if_needed()
        box = await player.bounding_box()
        assert box is not None
        await player.click(position={"x": 20, "y": box["height"] / 2})  # play
    assert (await fetched.value).status in (200, 206)
    await page.wait_for_function("audio => audio.readyState >= 1",
                                 arg=await player.element_handle(), timeout=WAIT_MS)
    await shoot(page, shots, "11-rekaman")

    await page.goto("/console/operator")
    await page.click('button:has-text("Keluar dari semua antrean")')
    await expect(queues).to_have_text("Belum masuk antrean.", timeout=WAIT_MS)

    assert first.ok, first.errors
    second = await repeat
    assert second.ok, second.errors
    assert problems == []
    assert await memberships(line) == set()

    async def stored(connection: asyncpg.Connection) -> asyncpg.Record | None:
        return await connection.fetchrow(
            """
            SELECT i.status, i.priority, i.village_code, i.location_text,
                   (SELECT string_agg(agency_code || ':' || dispatched_by, ',')
                    FROM dispatches d WHERE d.incident_id = i.incident_id) AS dispatched,
                   (SELECT label || ':' || labelled_by FROM call_labels l
                    WHERE l.call_id = c.call_id) AS label,
                   (SELECT count(*) FROM operator_state_changes
                    WHERE operator = $2 AND pause_reason = 'break') AS breaks
            FROM incidents i JOIN incident_calls ic USING (incident_id)
                 JOIN calls c USING (call_id)
            WHERE c.caller_number = $1 AND i.incident_id = $3
            """, caller, OPERATOR, incident_id)

    row = await line.database.run(stored)
    assert row is not None
    assert (row["status"], row["priority"], row["village_code"], row["location_text"],
            row["dispatched"], row["label"]) == (
        "dispatched", 1, "35.29.01.1015", HOSTILE_PLACE, "damkar:siti", "genuine:siti")
    assert row["breaks"] > 0  # the pause and its reason are in the operator state log

    async def merged(connection: asyncpg.Connection) -> tuple[list[str], list[str]]:
        callers = await connection.fetch(
            "SELECT c.caller_number FROM incident_calls ic JOIN calls c USING (call_id) "
            "WHERE ic.incident_id = $1 ORDER BY ic.linked_at", incident_id)
        sources = await connection.fetch(
            "SELECT i.status FROM incident_events e JOIN incidents i USING (incident_id) "
            "WHERE e.kind = 'status' AND e.detail ->> 'merged_into' = $1", str(incident_id))
        return [r["caller_number"] for r in callers], [r["status"] for r in sources]

    # Both callers on the first incident; the second caller's own (auto-opened) one is
    # cancelled as merged.
    assert await line.database.run(merged) == ([caller, second_caller], ["cancelled"])

    async def audited(connection: asyncpg.Connection) -> list[tuple[str, str]]:
        entries = await connection.fetch(
            "SELECT action, object_id FROM audit_log WHERE actor = 'siti' ORDER BY audit_id")
        return [(e["action"], e["object_id"]) for e in entries]

    entries = await line.database.run(audited)
    assert ("recording.play", source.rsplit("/", 2)[1]) in entries
    assert [a for a, _ in entries if a.startswith("desk.")] == [
        "desk.join", "desk.pause", "desk.resume", "desk.leave"]


async def test_what_the_operator_typed_survives_a_conflict_a_double_click_and_a_lost_session(
    line: Line, settings: Settings, console_page: ConsolePage
) -> None:
    """A night-shift operator types a long report while a colleague changes the same incident:
    the refused form used to come back empty (2,000 characters of description gone), a double
    click on Simpan showed the colleague-changed refusal for the operator's own second post,
    and a session that ended during the call lost the text too."""
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("dewi", "operator", PASSWORD, actor="test")
    await assign_desk(line.database, load_menu(settings.menu_file), "dewi", "PJSIP/op1002",
                      {"general": 3})
    await line.database.run(lambda c: c.execute(
        "INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at, answered_at,"
        " ended_at) VALUES ($1, '+62 812-3456-7890', '6281234567890', '112', now(), now(), "
        "now())", TYPED_CALL))
    incident_id = (await line.incidents.create_for_call(TYPED_CALL, actor="dewi")).incident_id
    page, problems, shots = console_page.page, console_page.problems, console_page.shots
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    await console_page.log_in("dewi", PASSWORD, landing="/console/operator")
    await page.goto(f"/console/incidents/{incident_id}")
    description = ("Rumah terbakar di belakang pasar, api membesar, warga panik; "
                   * 40)[:1999] + "."
    location = page.locator('input[name="location_text"]')
    typed = page.locator('textarea[name="description"]')
    await location.fill("Gg. Melati 3, RT 02/RW 05")
    await typed.fill(description)
    await page.select_option('select[name="priority"]', "1")
    # Meanwhile a colleague says the report is a flood.
    await line.incidents.update_details(incident_id, parse_patch({"report_type": "flood"}),
                                        actor="budi")
    await page.click('button:has-text("Simpan rincian")')
    await expect(page.locator("#flash")).to_contain_text("diubah petugas lain",
                                                         timeout=WAIT_MS)
    # What the operator typed is back, marked, with a note; the colleague's change stays.
    await expect(typed).to_have_value(description)
    await expect(location).to_have_value("Gg. Melati 3, RT 02/RW 05")
    await expect(page.locator('select[name="priority"]')).to_have_value("1")
    await expect(page.locator('select[name="report_type"]')).to_have_value("flood")
    await expect(page.locator("#details-form .draft-note")).to_contain_text("dikembalikan")
    await expect(page.locator('select[name="priority"]')).to_be_focused()  # first restored
    # Its discard button can be read (it had the menu bar's white text on the pale note).
    await expect(page.locator("#details-form .draft-note button")).not_to_have_css(
        "color", "rgb(255, 255, 255)")
    await shoot(page, shots, "21-isian-dikembalikan")
    await page.click('button:has-text("Simpan rincian")')
    await flash(page, "Rincian insiden disimpan.")
    await expect(page.locator("#details-form .draft-note")).to_have_count(0)
    await expect(typed).to_have_value(description)

    async def stored() -> asyncpg.Record:
        row: asyncpg.Record | None = await line.database.run(lambda c: c.fetchrow(
            "SELECT report_type, priority, location_text, description, version, "
            "(SELECT count(*) FROM incident_events e WHERE e.incident_id = i.incident_id "
            "AND kind = 'details') AS edits FROM incidents i WHERE incident_id = $1",
            incident_id))
        assert row is not None
        return row

    row = await stored()
    assert (row["report_type"], row["priority"], row["location_text"], row["description"]) \
        == ("flood", 1, "Gg. Melati 3, RT 02/RW 05", description)

    # A second click while the post is on its way (a slow night's network: the request held
    # until the operator has clicked again) posts nothing more: the operator reads
    # "disimpan", not a refusal for a change someone else made.
    await typed.fill(description[:1000])
    posts.clear()
    held: list[Route] = []
    second = asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        if len(held) > 1:
            second.set()
        else:
            # The first post waits (at most 2 s) for a second one to be sent.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(second.wait(), 2)
        # The first post is cancelled by the browser once a second one replaced it.
        with contextlib.suppress(PlaywrightError):
            await route.continue_()

    await page.route("**/details", hold)
    await page.locator('button:has-text("Simpan rincian")').evaluate(
        "button => { button.click(); setTimeout(() => button.click(), 50); }")
    await flash(page, "Rincian insiden disimpan.")
    await page.unroute("**/details")
    assert [u for u in posts if u.endswith("/details")] == [
        f"{line.web.url}/console/incidents/{incident_id}/details"], posts
    after = await stored()
    assert (after["description"], after["edits"]) == (description[:1000], row["edits"] + 1)

    # A tab comes along with an address pasted from a spreadsheet: the refusal names the
    # location, which is marked, focused and still holds what was pasted.
    await location.fill("Gg. Melati 3\tRT 02/RW 05")
    await page.click('button:has-text("Simpan rincian")')
    await expect(page.locator("#flash")).to_have_text(
        "Lokasi mengandung karakter yang tidak diizinkan (satu baris saja: tanpa tab atau "
        "baris baru).", timeout=WAIT_MS)
    await expect(location).to_be_focused()
    await expect(location).to_have_attribute("aria-invalid", "true")
    await expect(location).to_have_value("Gg. Melati 3\tRT 02/RW 05")
    await shoot(page, shots, "22-lokasi-ditolak")
    await location.fill("Gg. Melati 3, RT 02/RW 05")
    await expect(location).not_to_have_attribute("aria-invalid", "true")
    await page.click('button:has-text("Simpan rincian")')
    await flash(page, "Rincian insiden disimpan.")

    # The session ends during a call (expired, or signed out elsewhere): the text comes back
    # once the operator has logged in again and opens the incident.
    await typed.fill("Korban dua orang, satu lansia.")
    await line.database.run(lambda c: c.execute(
        "DELETE FROM sessions WHERE account_id = "
        "(SELECT account_id FROM accounts WHERE username = 'dewi')"))
    await page.click('button:has-text("Simpan rincian")')
    await page.wait_for_url("**/console/login")
    await expect(page.locator("#flash")).to_contain_text("Silakan masuk")
    await console_page.log_in("dewi", PASSWORD, landing="/console/operator")
    await page.goto(f"/console/incidents/{incident_id}")
    await expect(typed).to_have_value("Korban dua orang, satu lansia.")
    await page.click('button:has-text("Simpan rincian")')
    await flash(page, "Rincian insiden disimpan.")
    assert (await stored())["description"] == "Korban dua orang, satu lansia."
    # Saved: the next visit shows what is stored, no draft.
    await page.reload()
    await expect(page.locator(".draft-note")).to_have_count(0)

    # The status and dispatch forms keep their note through a refusal too: a colleague's
    # change meanwhile sent the note typed on verifying or dispatching away with the page.
    for form, choice, note, done in [
            ("#status-form", "verified", "Dikonfirmasi ulang: asap terlihat dari jalan raya.",
             "Status insiden: Terverifikasi."),
            ("#dispatch-form", "ambulans", "Dua korban luka bakar, satu lansia.",
             "Diteruskan ke Ambulans / PSC 119.")]:
        await page.select_option(f"{form} select", choice)
        await page.locator(f'{form} input[name="note"]').fill(note)
        await line.incidents.update_details(
            incident_id, parse_patch({"location_text": f"Gg. Melati 3 ({choice})"}),
            actor="budi")
        await page.click(f"{form} button[type=submit]")
        await expect(page.locator("#flash")).to_contain_text("diubah petugas lain",
                                                             timeout=WAIT_MS)
        await expect(page.locator(f'{form} input[name="note"]')).to_have_value(note)
        await expect(page.locator(f"{form} select")).to_have_value(choice)
        await expect(page.locator(f"{form} .draft-note")).to_contain_text("dikembalikan")
        await page.click(f"{form} button[type=submit]")
        await flash(page, done)
    events = await line.database.run(lambda c: c.fetch(
        "SELECT kind, detail->>'note' AS note FROM incident_events WHERE incident_id = $1 "
        "AND kind IN ('status', 'dispatch') ORDER BY event_id", incident_id))
    assert [(e["kind"], e["note"]) for e in events][:2] == [
        ("status", "Dikonfirmasi ulang: asap terlihat dari jalan raya."),
        ("dispatch", "Dua korban luka bakar, satu lansia.")], events

    # A colleague closes the incident (a duplicate of another) while the operator types: the
    # refused form is no longer drawn, and what was typed was nowhere to be seen. It is shown
    # to be copied into the incident that goes on, until discarded.
    more = "Dua rumah lagi terbakar.\nAkses jalan sempit, mobil pemadam lewat utara."
    await typed.fill(more)
    await line.incidents.change_status(incident_id, "cancelled", actor="budi",
                                       note="sama dengan insiden lain")
    await page.click('button:has-text("Simpan rincian")')
    await expect(page.locator("#flash")).to_contain_text("diubah petugas lain",
                                                         timeout=WAIT_MS)
    await expect(page.locator("#details-form")).to_have_count(0)
    left = page.locator("#details-left")
    await expect(left).to_be_visible()
    await expect(left.locator('[data-name="description"] dd')).to_have_text(more)
    await expect(left.locator('[data-name="location_text"]')).to_be_hidden()
    await expect(left.locator("button")).not_to_have_css("color", "rgb(255, 255, 255)")
    await shoot(page, shots, "23-isian-tertinggal")
    await left.locator("button").click()
    await expect(left).to_be_hidden()
    await page.reload()
    await expect(page.locator("#details-left")).to_be_hidden()
    assert problems == []


async def panel_call_id(page: Page) -> str:
    """The call the incident page was opened from (its one call)."""
    call_id = await page.locator("#calls [data-call-id]").first.get_attribute("data-call-id")
    assert call_id is not None
    return call_id


async def recording_on(page: Page, player: Locator) -> None:
    """Reload the incident page until the recording's player is on it (the worker stores
    the recording shortly after the call ends)."""

    async def shown() -> bool | None:
        await page.reload()
        return True if await player.count() else None

    await eventually("the recording on the incident page", shown, within=60)


async def place_call(settings: Settings, caller: str) -> sipp.SippResult:
    """Emergency (1), then fire (2); the caller stays on long enough to be worked."""
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="12", talk_seconds=15) as call:
        return await call.wait()


async def screening_of(line: Line, caller: str) -> tuple[float, list[str]]:
    """The pre-queue score and reasons the IVR published for the caller's new call."""

    async def probe() -> tuple[float, list[str]] | None:
        row = await line.database.run(lambda c: c.fetchrow(
            "SELECT prank_score, prank_reasons FROM calls WHERE caller_number = $1 "
            "AND prank_score IS NOT NULL", caller))
        if row is None:
            return None
        return float(row["prank_score"]), str(row["prank_reasons"] or "").split("; ")

    return await eventually("the call's screening", probe)


async def memberships(line: Line) -> set[str]:
    """The queues Asterisk has the operator in, as the AMI listener recorded them."""
    rows = await line.database.run(lambda c: c.fetch(
        "SELECT queue FROM queue_members WHERE operator = $1 AND state <> 'logged_out'",
        OPERATOR))
    return {row["queue"] for row in rows}
