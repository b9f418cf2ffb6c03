"""The call-back worklist in headless Chromium against the whole line: the real server, real
PostgreSQL, the real Asterisk lab and sipp.

A caller chooses fire and gives up waiting (nobody is logged in); an operator logs in by the form,
opens Panggilan balik from the menu, sees the caller and clicks "Hubungi kembali": their phone
(the lab's operator UAS) answers, the line dials the caller through the carrier (a sipp callee
answers), and the page, polling the API, drops the caller by itself once reached. A withheld
caller gives up too: a supervisor sees it as "tidak bisa dihubungi", without a call button,
and closes it with a reason; given a new password by an admin, the page they have open
goes to the login form, which says why. Screenshots at 1366x768 go to the test's tmp path and to
/tmp/console-shots/; no page raises a script error, a CSP violation or a dialog on the way.

Its own lab instance and ports, so it can run beside the end-to-end modules.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import Line
from telephony.desks.service import assign_desk
from telephony.lab import sipp
from telephony.settings import Settings
from tests.e2e.harness import ended_call, unique_caller
from tests.support.browser import ConsolePage
from tests.support.net import own_lab

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("callbacks-browser"),
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    incident_upkeep_seconds=0.5,
    callback_ring_seconds=15,
    http_port=0,  # any free port: Line.web says which
)
OPERATOR = "PJSIP/op1001"
PASSWORD = "kata-sandi-panggilan-balik"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


async def give_up(line: Line, settings: Settings, caller_id: str) -> str:
    """A real caller choosing fire and hanging up while queued; the call's id."""
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="12", talk_seconds=8) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert record.disposition == "abandoned", record
    return record.call_id


async def test_an_operator_calls_back_and_a_supervisor_closes_in_the_browser(
    line: Line, settings: Settings, console_page: ConsolePage
) -> None:
    page, shots = console_page.page, console_page.shots
    caller = unique_caller("0818")
    call_id = await give_up(line, settings, caller)
    hidden_id = await give_up(line, settings, "anonymous")
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("op1001", "operator", PASSWORD, actor="test")
    await assign_desk(line.database, load_menu(settings.menu_file), "op1001", OPERATOR,
                      {"fire": 5})
    await accounts.create("spv1", "supervisor", PASSWORD, actor="test")

    await console_page.log_in("op1001", PASSWORD, landing="/console/operator")
    await page.click('nav a:has-text("Panggilan balik")')
    await page.wait_for_url("**/console/callbacks")
    row = page.locator(f'tr.callback-entry[data-call-id="{call_id}"]')
    hidden = page.locator(f'tr.callback-entry[data-call-id="{hidden_id}"]')
    # The list is read at most every 2 s (a cached reading may predate the second call's end)
    # and the page polls every 5 s, so a caller can take up to ~7 s to show.
    await expect(row.locator(".caller-number")).to_have_text(caller, timeout=WAIT_MS)
    await expect(row.locator(".reason")).to_have_text("Menutup telepon saat menunggu di antrean")
    await expect(hidden.locator(".not-possible")).to_have_text("tidak bisa dihubungi",
                                                             timeout=WAIT_MS)
    await expect(hidden.locator("button.call-back")).to_have_count(0)
    await expect(page.locator('[data-field="waiting"]')).to_have_text("1")
    # "terlama sejak" reads the same after the script's refresh as the server wrote it (it
    # turned into the browser's "07/12/2026, 08.03.23" at the first refresh).
    await page.reload()
    oldest = page.locator('[data-field="oldest"]')
    rendered = await oldest.text_content()
    assert rendered is not None and re.fullmatch(r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d",
                                                 rendered), rendered
    await oldest.evaluate("element => { element.textContent = ''; }")
    await expect(oldest).to_have_text(rendered, timeout=WAIT_MS)
    await page.screenshot(path=str(shots / "callbacks-1-worklist.png"))

    # Seven seconds of talk: a call-back over in under five reached nobody (a voicemail, a
    # stranger: telephony/callbacks/model.py MIN_TALK) and keeps the caller on the list.
    async with sipp.callee(settings.carrier_sip_port, hold_seconds=7, max_calls=1) as phone:
        await row.locator("button.call-back").click()
        await expect(page.locator("#flash")).to_contain_text(
            f"Telepon Anda berdering: angkat untuk menghubungi {caller}", timeout=WAIT_MS)
        await page.screenshot(path=str(shots / "callbacks-2-calling.png"))
        result = await phone.wait(within=60)
    assert result.ok, result.errors
    # Reached: the page notices by itself (it polls the list) and drops the caller.
    await expect(row).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator('[data-field="waiting"]')).to_have_text("0")
    await page.screenshot(path=str(shots / "callbacks-3-reached.png"))

    await page.click('button:has-text("Keluar")')
    await console_page.log_in("spv1", PASSWORD)
    await page.goto("/console/callbacks")
    await expect(hidden.locator("button.call-back")).to_have_count(0)
    form = hidden.locator("form.close-form")
    # "Other" without its note is refused: the page came back with the first reason chosen
    # in its place, which the supervisor's next click (note typed) recorded instead.
    await form.locator('select[name="reason"]').select_option("other")
    await form.locator('button:has-text("Tutup")').click()
    await expect(page.locator("#flash")).to_have_text("Tulis alasan penutupan.",
                                                      timeout=WAIT_MS)
    await expect(form.locator('select[name="reason"]')).to_have_value("other")
    await expect(form.locator('input[name="note"]')).to_be_focused()
    await form.locator('input[name="note"]').fill("Nomor disembunyikan, <b>tidak</b> dilacak")
    await page.screenshot(path=str(shots / "callbacks-4-closing.png"))
    await form.locator('button:has-text("Tutup")').click()
    await expect(page.locator("#flash")).to_have_text(
        "Entri ditutup: Lainnya (tulis alasannya).", timeout=WAIT_MS)
    await expect(hidden).to_have_count(0)
    closed = await line.database.run(lambda c: c.fetchrow(
        "SELECT reason, note FROM callback_closures WHERE call_id = $1", hidden_id))
    assert closed is not None and (closed["reason"], closed["note"]) == (
        "other", "Nomor disembunyikan, <b>tidak</b> dilacak")
    assert console_page.problems == []

    # An admin gives the supervisor a new password while the page is open: its poll hears
    # the 401 and the login form it goes to says why (it said only "Silakan masuk").
    await accounts.set_password("spv1", PASSWORD + "-baru", actor="admin")
    await page.wait_for_url("**/console/login", timeout=WAIT_MS)
    await expect(page.locator("#flash")).to_have_text(
        "Sesi Anda diakhiri: kata sandi akun Anda diganti. Masuk dengan kata sandi baru.")
    await page.screenshot(path=str(shots / "callbacks-5-session-ended.png"))
    assert console_page.problems == [
        "console: Failed to load resource: the server responded with a status of 401 "
        "(Unauthorized)"], console_page.problems
