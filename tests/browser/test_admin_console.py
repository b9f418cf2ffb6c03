"""The admin console in headless Chromium against the whole line: the real server, real
PostgreSQL, the real Asterisk lab and sipp.

An admin logs in through the form, opens the running IVR menu, gives the main menu a new
prompt text and a shorter wait, saves it as a draft, makes and fetches the preview audio,
uploads a recorded greeting (the one scripted form), publishes; the next sipp caller hears the
recorded greeting and the new prompt and waits the new time. The queue and reference pages
are opened too.

Another admin changes a queue's strategy and ring timeout on the queue page while one sipp
caller talks to the operator and another waits: app_queue runs the new strategy at once, the
call in progress and the waiting caller stay up, both callers finish their calls, and the
waiting one is answered by the operator once free.

Screenshots at 1366x768 go to the test's tmp path and to /tmp/console-shots/; no page raises a
script error, a CSP violation or a dialog on the way.

Its own lab instance and ports, so it can run beside the other modules.
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Page, expect

from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import Line
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.screening.score import ScoreConfig
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.browser import ConsolePage
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("admin-browser"),
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    incident_upkeep_seconds=0.5,
    http_port=0,  # any free port: Line.web says which
)
PASSWORD = "kata-sandi-admin-112"
WAIT_MS = 30_000
NEW_PROMPT = "Darurat, tekan satu. Lainnya, tetap di saluran."
GREETING_SECONDS = 1.5
QUEUE = "emergency-general"
# Long enough for a caller to get through the IVR as shipped (greeting, menu prompt and 5 s
# wait: ~18 s, the longest case, when this test runs alone) and for the admin to change the
# queue while it talks; the waiting caller outlasts it to be answered once op1001 is free.
TALK_SECONDS = 32
WAITING_TALK_SECONDS = TALK_SECONDS + 6


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture
async def phones(lab: Lab, settings: Settings) -> AsyncIterator[sipp.Sipp]:
    """Fresh operator phones for each test."""
    async with sipp.operator(settings.lab_operator_sip_port) as uas:
        yield uas


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {"PJSIP/op1001": {"general": 5}}


def greeting_wav(path: Path) -> Path:
    """A recorded greeting: a quiet hum of GREETING_SECONDS, 16 kHz stereo (converted on
    the way to Asterisk)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x04" * 2 * int(16000 * GREETING_SECONDS))
    return path


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def flash(page: Page, text: str) -> None:
    await expect(page.locator("#flash")).to_contain_text(text, timeout=WAIT_MS)


async def log_in_admin(console: ConsolePage, line: Line, username: str) -> None:
    """Log in to the console as the new admin ``username``."""
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create(username, "admin", PASSWORD, display_name="Admin Dinas",
                          actor="test")
    await console.log_in(username, PASSWORD, landing="/console/")


async def call_row(settings: Settings, caller_id: str) -> asyncpg.Record | None:
    """The caller's row in ``calls``, if it has arrived."""
    connection = await asyncpg.connect(str(settings.database_dsn))
    try:
        return await connection.fetchrow("SELECT * FROM calls WHERE caller_number = $1",
                                         caller_id)
    finally:
        await connection.close()


async def ivr_seconds(settings: Settings, caller_id: str) -> float:
    async def probe() -> float | None:
        row = await call_row(settings, caller_id)
        if row is None or row["queue_joined_at"] is None:
            return None
        gap: timedelta = row["queue_joined_at"] - row["arrived_at"]
        return gap.total_seconds()

    return await eventually(f"{caller_id} in a queue", probe, within=60)


def seconds_of(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


async def test_an_admin_publishes_a_new_menu_in_the_browser_and_the_next_call_hears_it(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        tmp_path: Path) -> None:
    page, problems, shots = console_page.page, console_page.problems, console_page.shots
    await log_in_admin(console_page, line, "admin1")
    await page.click('nav a:has-text("Menu IVR")')
    await page.wait_for_url("**/console/admin/ivr")
    live = page.locator("tr.version-live")
    await expect(live).to_contain_text("Berjalan")
    await shoot(page, shots, "admin-01-versi")

    # Edit the running version: a new main-menu text and a 2 s wait.
    await live.locator('a:has-text("Buka")').click()
    await page.wait_for_url("**/console/admin/versions/*")
    await expect(page.locator("#version-state")).to_have_text("Berjalan")
    await page.fill('textarea[name="prompt.menu-utama"]', NEW_PROMPT)
    await page.fill('input[name="menu.utama.timeout"]', "2")
    await page.fill('#edit-form input[name="note"]', "menu utama lebih singkat")
    await shoot(page, shots, "admin-02-sunting")
    await page.click("#save-version")
    await flash(page, "(draf)")
    await expect(page.locator("#version-state")).to_have_text("Draf")
    await expect(page.locator("#preview")).to_contain_text(NEW_PROMPT)
    await expect(page.locator("#preview")).to_contain_text("tunggu 2 dtk")

    # Listen before publishing.
    await page.click("#make-preview")
    await flash(page, "Rekaman suara pratinjau siap")
    audio = page.locator('tr[data-prompt="menu-utama"] audio')
    await expect(audio).to_have_count(1)
    fetched = await page.evaluate(
        "async url => { const r = await fetch(url); "
        "return [r.status, r.headers.get('content-type'), (await r.blob()).size]; }",
        await audio.get_attribute("src"))
    assert fetched[0] == 200 and fetched[1] == "audio/wav" and fetched[2] > 1000
    await shoot(page, shots, "admin-03-pratinjau")

    # A recorded greeting instead of the synthesised voice: a new draft.
    row = page.locator('tr[data-prompt="salam-112"]')
    await row.locator('input[type="file"]').set_input_files(
        str(greeting_wav(tmp_path / "salam.wav")))
    draft_url = page.url
    await row.locator('button:has-text("Unggah")').click()
    await page.wait_for_url(lambda url: url != draft_url, timeout=WAIT_MS)
    await expect(page.locator('tr[data-prompt="salam-112"]')).to_contain_text(
        "rekaman salam.wav")
    version = int(page.url.rsplit("/", 1)[1])

    await page.fill('#publish-form input[name="note"]', "uji peramban")
    await page.click("#publish")
    await flash(page, f"Versi #{version} diterbitkan")
    await expect(page.locator("#version-state")).to_have_text("Berjalan")
    await shoot(page, shots, "admin-04-terbit")

    for path, name in (("/console/admin/queues", "admin-05-antrean"),
                       ("/console/admin/reference", "admin-06-referensi"),
                       ("/console/admin/screening", "admin-07-penyaringan")):
        await page.goto(path)
        await shoot(page, shots, name)
    await page.locator('tr.version-live a:has-text("Buka")').click()
    await expect(page.locator('input[name="screening_threshold"]')).to_have_value(
        str(ScoreConfig().screening_threshold))
    await shoot(page, shots, "admin-08-penyaringan-versi")
    assert problems == []

    # The next caller presses nothing: the recorded greeting, the new prompt, a 2 s wait.
    caller_id = unique_caller("0818")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           talk_seconds=20) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    expected = (seconds_of(lab.sounds_dir / f"salam-112-v{version}.wav")
                + seconds_of(lab.sounds_dir / f"menu-utama-v{version}.wav") + 2)
    assert abs(seconds_of(lab.sounds_dir / f"salam-112-v{version}.wav")
               - GREETING_SECONDS) < 0.05
    measured = await ivr_seconds(settings, caller_id)
    assert abs(measured - expected) < 1.5, (measured, expected)


async def test_an_admin_changes_a_queue_in_the_browser_without_dropping_the_calls_in_it(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage) -> None:
    talking, waiting = unique_caller("0817"), unique_caller("0817")
    page, problems, shots = console_page.page, console_page.problems, console_page.shots

    async def arrived() -> bool | None:
        return True if await call_row(settings, talking) is not None else None

    async def in_progress() -> str | None:
        """The waiting caller's channel once op1001 talks to the first and it is queued."""
        first, second = await call_row(settings, talking), await call_row(settings, waiting)
        if first is None or first["answered_at"] is None or second is None \
                or second["queue_joined_at"] is None:
            return None
        assert first["operator"] == "PJSIP/op1001" and second["answered_at"] is None
        return str(second["channel"])

    def member(shown: str) -> str:
        return next(row for row in shown.splitlines() if "PJSIP/op1001" in row)

    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=talking,
                           talk_seconds=TALK_SECONDS) as first:
        # Both go through the same IVR, so the one that arrives first is queued first.
        await eventually("the first caller arriving", arrived, within=20)
        async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                               caller_id=waiting, talk_seconds=WAITING_TALK_SECONDS) as second:
            await log_in_admin(console_page, line, "admin2")
            channel = await eventually("one caller talking and one waiting", in_progress,
                                       within=40)
            shown = await lab.acli(f"queue show {QUEUE}")
            assert "'leastrecent' strategy" in shown and f". {channel} (wait:" in shown
            assert "(in call)" in member(shown)

            await page.click('nav a:has-text("Antrean")')
            await page.wait_for_url("**/console/admin/queues")
            row = page.locator(f'tr[data-queue="{QUEUE}"]')
            await expect(row).to_contain_text("PJSIP/op1001 penalti 0 · bicara")
            await row.locator('select[name="strategy"]').select_option("rrmemory")
            await row.locator('input[name="ring_timeout_seconds"]').fill("20")
            await row.locator('button:has-text("Simpan & terapkan")').click()
            await flash(page, f"Antrean {QUEUE} disimpan dan diterapkan di Asterisk.")

            shown = await lab.acli(f"queue show {QUEUE}")
            assert "'rrmemory' strategy" in shown  # app_queue runs the new settings
            assert f". {channel} (wait:" in shown  # the waiting caller still waits
            assert "(in call)" in member(shown)  # the call in progress goes on
            assert "2 active calls" in await lab.acli("core show channels")
            row = page.locator(f'tr[data-queue="{QUEUE}"]')
            await expect(row.locator('select[name="strategy"]')).to_have_value("rrmemory")
            await expect(row.locator('input[name="ring_timeout_seconds"]')).to_have_value("20")
            await expect(row).to_contain_text("diubah admin2")
            await expect(row).to_contain_text("PJSIP/op1001 penalti 0 · bicara")
            await shoot(page, shots, "admin-09-antrean-diubah-saat-panggilan")
            results = [await first.wait(), await second.wait()]
    assert problems == []
    assert all(r.ok for r in results), [r.errors for r in results]  # nobody was dropped
    answered = await call_row(settings, waiting)
    assert answered is not None and answered["answered_at"] is not None, answered
    assert (answered["operator"], answered["queue"]) == ("PJSIP/op1001", QUEUE)
