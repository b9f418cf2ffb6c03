"""The supervisor's wallboard in headless Chromium against the whole line: the real server,
real PostgreSQL, the real Asterisk lab and sipp.

A supervisor logs in and opens the wallboard: it names the shift its tiles count and since
when "today" counts, in the centre's time. A sipp caller rings 119 (the medical queue) while
nobody is logged in, so they wait in all-operators: the wallboard shows them waiting there,
first in line, their wait running. An operator logs in, their sipp phone answers, and the
same page (never reloaded: no navigation, and a marker set in the page survives) shows the
queue empty, the operator talking and the call answered in this shift's figures; the
supervisor listens in on that call from the operator's card (their phone rings into ChanSpy).
Then the network between the page and the line goes silent (no message, no close): the page
stops showing its picture as live within a few heartbeats, says so in Bahasa Indonesia, and
comes back live by itself on a new connection, still without a reload. Last, the supervisor's
session ends while the connection is away: the page's next handshake is refused, and it goes
to the login page rather than retrying for ever.
Screenshots at 1366x768 of those moments go to the test's tmp path and to
/tmp/wallboard-shots/; no page raises a script error, a CSP violation or a dialog on the way.

Its own lab instance and ports, so it can run beside the end-to-end and other browser modules.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import Line
from telephony.calls.shifts import ShiftCalendar
from telephony.desks.operators import OperatorDesk
from telephony.desks.service import assign_desk
from telephony.lab import sipp
from telephony.reports.model import day_bounds
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.browser import ConsolePage, SilentNetwork
from tests.support.net import own_lab

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("wallboard-test"),
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    incident_upkeep_seconds=0.5,
    http_port=0,  # any free port: Line.web says which
)
OPERATOR = "PJSIP/op1001"
SUPERVISOR_PHONE = "PJSIP/op1002"  # rings the same sipp UAS as the operator's
PASSWORD = "kata-sandi-supervisor"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def joining_operators() -> tuple[str, ...]:
    """Nobody is in the queues; the test logs the operator in."""
    return (OPERATOR,)


@pytest.fixture
def screenshots() -> Path:
    return Path("/tmp/wallboard-shots")


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"))


async def test_the_wallboard_shows_a_waiting_caller_then_the_answer_without_a_reload(
    line: Line, settings: Settings, console_page: ConsolePage
) -> None:
    assert line.web.url is not None
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("sari", "supervisor", PASSWORD, display_name="Sari Wulandari",
                          actor="test")
    # The operator's account at her phone; the supervisor's phone, to listen in on.
    await accounts.create("wati", "operator", PASSWORD, actor="test")
    menu = load_menu(settings.menu_file)
    await assign_desk(line.database, menu, "wati", OPERATOR, {"medical": 5})
    await assign_desk(line.database, menu, "sari", SUPERVISOR_PHONE, {})
    page, problems, shots = console_page.page, console_page.problems, console_page.shots
    navigations: list[str] = []
    network = SilentNetwork()
    await network.attach(page, "**/api/wallboard/live")

    # Log in; open the wallboard from the menu; it connects and shows the counters.
    await console_page.log_in("sari", PASSWORD)
    await page.click('nav a:has-text("Papan dinding")')
    await page.wait_for_url("**/console/wallboard")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live",
                                                            timeout=WAIT_MS)
    answered = page.locator('[data-field="shift-answered"]')
    await expect(answered).to_have_text("0", timeout=WAIT_MS)
    # Which shift the tiles count, and since when "today" counts, in the centre's time.
    calendar = ShiftCalendar(settings.shifts, settings.timezone)
    slot = calendar.slot_for(datetime.now(UTC))
    began, ends = calendar.bounds(slot)
    await expect(page.locator('[data-field="shift-name"]')).to_have_text(
        f"Sif {slot.name} {began:%H.%M}\u2013{ends:%H.%M}")
    await expect(page.locator('[data-field="today-since"]')).to_have_text(
        f"{day_bounds(calendar, slot.day)[0]:%d-%m %H.%M}")
    await page.evaluate("window.sameDocument = true")
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # A caller rings 119 (medical) while nobody is logged in: they wait in all-operators.
    waiting = page.locator('.wb-queue[data-queue="all-operators"]')
    desk = OperatorDesk(line.listener, menu)
    async with sipp.caller(settings.sip_host, settings.sip_port, "119",
                           caller_id=unique_caller("0817"), talk_seconds=25) as call:
        await expect(waiting.locator(".wb-caller")).to_have_count(1, timeout=WAIT_MS)
        await expect(waiting.locator(".wb-position")).to_have_text("#1")
        await expect(page.locator('[data-field="waiting"]')).to_have_text("1")
        await expect(page.locator("#tile-waiting")).to_have_class("tile alert")
        await expect(page.locator('[data-field="longest-queue"]')).to_contain_text(
            "all-operators")
        await shoot(page, shots, "01-menunggu")

        # An operator logs in; their phone answers; the same page follows.
        await desk.log_in(OPERATOR, {"medical": 5})
        operator = page.locator(f'.wb-operator[data-operator="{OPERATOR}"]')
        await expect(operator).to_have_attribute("data-state", "talking",
                                                 timeout=WAIT_MS)
        await expect(waiting.locator(".wb-caller")).to_have_count(0)
        await expect(page.locator('[data-field="waiting"]')).to_have_text("0")
        await expect(answered).to_have_text("1", timeout=WAIT_MS)
        await expect(page.locator('[data-field="shift-level-20"]')).not_to_have_text(
            "-")
        await shoot(page, shots, "02-dijawab")

        # The supervisor listens in from the operator's card: their own phone (another lab
        # endpoint) rings into ChanSpy, and the page says so.
        await expect(operator.locator("button.wb-spy")).to_have_text(
            ["Dengarkan", "Bisikkan", "Sela"])
        await operator.locator('button.wb-spy[data-mode="listen"]').click()
        await expect(page.locator("#supervision-result")).to_have_text(
            f"Dengarkan wati: telepon Anda ({SUPERVISOR_PHONE}) akan berdering.",
            timeout=WAIT_MS)
        await shoot(page, shots, "03-dengarkan")
        result = await call.wait()

    # The network goes silent: the server's pushes (at least every 5 s) stop coming and the
    # socket stays open. The page dims its old picture and says since when it is as it was,
    # then reconnects by itself.
    status = page.locator("#status")
    stale = re.compile(r"\bstale\b")
    await expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    network.silence()
    await expect(status).to_have_attribute("data-state", "disconnected", timeout=20_000)
    await expect(status).to_contain_text("papan tidak terkini, keadaan pukul")
    await expect(page.locator("main")).to_have_class(stale)
    await shoot(page, shots, "04-terputus")
    await expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    await expect(page.locator("main")).not_to_have_class(stale)
    assert network.opened >= 2
    assert navigations == []
    assert await page.evaluate("window.sameDocument") is True
    assert result.ok, result.errors
    assert problems == []

    # The session ends (logged out in another tab), then the connection drops: the socket
    # never sees the 4401 an open one gets, and the handshake's 401 shows the page nothing.
    assert await page.evaluate("""() => fetch("/api/session", {method: "DELETE",
        headers: {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}})
        .then((response) => response.status)""") == 204
    await network.drop()
    await page.wait_for_url("**/console/login", timeout=WAIT_MS)
