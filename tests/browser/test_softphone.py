"""The browser softphone in headless Chromium against the whole line (real Asterisk lab,
PostgreSQL, sipp): an operator whose desk's phone is the browser logs in and the softphone
registers over WSS straight to Asterisk.

Chromium's microphone is a fake device playing a generated tone; ICE stays on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from playwright.async_api import expect

from ivr.menu import load_menu
from telephony.app import Line
from telephony.desks.phones import PhoneKind
from telephony.desks.service import assign_desk
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.support.browser import ConsolePage, softphone_args
from tests.support.relay import Relay
from tests.support.web import CHEAP_HASHER

pytestmark = pytest.mark.e2e

BASE = Settings(
    lab_instance="softphone-test",
    sip_port=43060,
    ami_port=43038,
    agi_port=43573,
    lab_operator_sip_port=43070,
    carrier_sip_port=43080,
    asterisk_http_port=43088,
    asterisk_https_port=43089,
    rtp_port_start=43100,
    rtp_port_end=43399,
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    recordings_settle_seconds=1.0,
    recordings_separate_legs=True,
    incident_upkeep_seconds=0.5,
    softphone_ice_networks=("127.0.0.0/8",),
    # Through the relay (the browser's "network", which the tests cut) to Asterisk's WSS.
    softphone_ws_url="wss://127.0.0.1:43090/ws",
    http_port=0,
)
RELAY_PORT = 43090
PHONE = "PJSIP/op2001"
PASSWORD = "kata-sandi-operator"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
async def network() -> AsyncIterator[Relay]:
    """The browser's network to Asterisk's WSS."""
    async with Relay(("127.0.0.1", BASE.asterisk_https_port), port=RELAY_PORT) as relay:
        yield relay


@pytest.fixture(scope="module")
def tone_wav(state_dir: Path) -> Path:
    """What the operator "says": a 1 kHz tone (Chromium loops the file)."""
    import subprocess

    path = state_dir / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(path), "synth",
                    "3", "sine", "1000", "vol", "0.5"], check=True)
    return path


@pytest.fixture(scope="module")
def browser_args(tone_wav: Path) -> Sequence[str]:
    return softphone_args(tone_wav)


@pytest.fixture(scope="module")
def joining_operators() -> tuple[str, ...]:
    return (PHONE,)


async def browser_desk(line: Line, settings: Settings, username: str) -> None:
    from telephony.accounts.service import AccountConfig, AccountService

    accounts = AccountService(line.database, CHEAP_HASHER, AccountConfig())
    await accounts.create(username, "operator", PASSWORD, display_name="Rina",
                          actor="test")
    await assign_desk(line.database, load_menu(settings.menu_file), username, PHONE,
                      {"medical": 5, "general": 5}, realm=settings.sip_realm,
                      phone=PhoneKind.BROWSER)
    await line.listener.send_action({"Action": "Reload", "Module": "res_pjsip.so"})


async def test_the_softphone_registers_when_the_operator_logs_in(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        network: Relay) -> None:
    await browser_desk(line, settings, "rina")
    page = console_page.page
    await console_page.log_in("rina", PASSWORD, landing="/console/operator")
    softphone = page.locator("#softphone")
    await expect(softphone).to_have_attribute("data-registration", "registered",
                                              timeout=WAIT_MS)
    contacts = await lab.wait_cli("pjsip show contacts", lambda out: "op2001/sip:" in out)
    print(contacts)
    await page.screenshot(path=str(console_page.shots / "softphone-registered.png"))
    assert console_page.problems == []
