"""The supervisor's wallboard in headless Chromium against the whole line: the real server,
real PostgreSQL, the real Asterisk lab and sipp.

A supervisor logs in and opens the wallboard. A sipp caller rings 119 and waits in the medical
queue, where nobody is logged in: the wallboard shows them waiting, first in line, their wait
running. An operator logs in, their sipp phone answers, and the same page (never reloaded:
no navigation, and a marker set in the page survives) shows the queue empty, the operator
talking and the call answered in this shift's figures. Screenshots at 1366x768 of both
moments go to the test's tmp path and to /tmp/wallboard-shots/; no page raises a script
error, a CSP violation or a dialog on the way.

Its own lab instance and ports, so it can run beside the end-to-end and other browser modules.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, ViewportSize, async_playwright, expect

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.actions import AmiActionError
from telephony.app import Line
from telephony.desks.operators import OperatorDesk
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import prompted_lab, started_line, unique_caller

pytestmark = pytest.mark.e2e

BASE = Settings(
    lab_instance="wallboard-test",
    sip_port=43060,
    ami_port=43038,
    agi_port=43573,
    lab_operator_sip_port=43070,
    rtp_port_start=44000,
    rtp_port_end=44999,
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    incident_upkeep_seconds=0.5,
    http_port=0,  # any free port: Line.web says which
)
OPERATOR = "PJSIP/op1001"
PASSWORD = "kata-sandi-supervisor"
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/wallboard-shots")
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def settings(state_dir: Path, line_db: str) -> Settings:
    return replace(BASE, state_dir=state_dir, database_dsn=line_db)


@pytest.fixture(scope="module")
async def lab(settings: Settings) -> AsyncIterator[Lab]:
    async with prompted_lab(settings) as lab:
        yield lab


@pytest.fixture(scope="module")
async def phones(lab: Lab, settings: Settings) -> AsyncIterator[sipp.Sipp]:
    async with sipp.operator(settings.lab_operator_sip_port) as uas:
        yield uas


@pytest.fixture
async def line(lab: Lab, phones: sipp.Sipp, settings: Settings) -> AsyncIterator[Line]:
    """The running line with nobody in the queues; whatever the test joins is removed again
    (Asterisk keeps members in astdb)."""
    async with started_line(lab, settings) as line:
        try:
            yield line
        finally:
            for queue in load_menu(settings.menu_file).known_queues:
                with contextlib.suppress(AmiActionError):  # not a member: nothing to undo
                    await line.listener.send_action(
                        {"Action": "QueueRemove", "Queue": queue, "Interface": OPERATOR})


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"))


async def test_the_wallboard_shows_a_waiting_caller_then_the_answer_without_a_reload(
    line: Line, settings: Settings, tmp_path: Path
) -> None:
    assert line.web.url is not None
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("sari", "supervisor", PASSWORD, display_name="Sari Wulandari",
                          actor="test")
    shots = tmp_path / "shots"
    shots.mkdir()
    problems: list[str] = []
    navigations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport=VIEWPORT, locale="id-ID",
                                          base_url=line.web.url)
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page: {error}"))
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))

            # Log in; open the wallboard from the menu; it connects and shows the counters.
            await page.goto("/console/login")
            await page.fill('input[name="username"]', "sari")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button:has-text("Masuk")')
            await page.click('nav a:has-text("Papan dinding")')
            await page.wait_for_url("**/console/wallboard")
            await expect(page.locator("#status")).to_have_attribute("data-state", "live",
                                                                    timeout=WAIT_MS)
            answered = page.locator('[data-field="shift-answered"]')
            await expect(answered).to_have_text("0", timeout=WAIT_MS)
            await page.evaluate("window.sameDocument = true")
            page.on("framenavigated", lambda frame: navigations.append(frame.url))

            # A caller rings 119 and waits in the medical queue: nobody is logged in.
            medical = page.locator('.wb-queue[data-queue="medical"]')
            desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
            async with sipp.caller(settings.sip_host, settings.sip_port, "119",
                                   caller_id=unique_caller("0817"), talk_seconds=25) as call:
                await expect(medical.locator(".wb-caller")).to_have_count(1, timeout=WAIT_MS)
                await expect(medical.locator(".wb-position")).to_have_text("#1")
                await expect(page.locator('[data-field="waiting"]')).to_have_text("1")
                await expect(page.locator("#tile-waiting")).to_have_class("tile alert")
                await expect(page.locator('[data-field="longest-queue"]')).to_contain_text(
                    "medical")
                await shoot(page, shots, "01-menunggu")

                # An operator logs in; their phone answers; the same page follows.
                await desk.log_in(OPERATOR, {"medical": 5})
                operator = page.locator(f'.wb-operator[data-operator="{OPERATOR}"]')
                await expect(operator).to_have_attribute("data-state", "talking",
                                                         timeout=WAIT_MS)
                await expect(medical.locator(".wb-caller")).to_have_count(0)
                await expect(page.locator('[data-field="waiting"]')).to_have_text("0")
                await expect(answered).to_have_text("1", timeout=WAIT_MS)
                await expect(page.locator('[data-field="shift-level-20"]')).not_to_have_text(
                    "-")
                await shoot(page, shots, "02-dijawab")
                result = await call.wait()
            assert navigations == []
            assert await page.evaluate("window.sameDocument") is True
        finally:
            await browser.close()
            SHOTS.mkdir(exist_ok=True)
            for shot in sorted(shots.glob("*.png")):
                shutil.copy(shot, SHOTS / shot.name)

    assert result.ok, result.errors
    assert problems == []
