"""The browser softphone in headless Chromium against the whole line (real Asterisk lab,
PostgreSQL, sipp): an operator whose desk's phone is the browser logs in and the softphone
registers over WSS straight to Asterisk.

Chromium's microphone is a fake device playing a generated tone; ICE stays on loopback.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Dialog, Locator, Page, expect

from ivr.menu import load_menu
from recordings.domain import CALL_KINDS, Kind
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.channels import live_channels
from telephony.app import Line
from telephony.callbacks.model import CallbackReason, CutShort, Entry, find_entry
from telephony.desks.operators import OperatorDesk
from telephony.desks.phones import PhoneKind
from telephony.desks.service import assign_desk
from telephony.desks.store import DeskRepository
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ended_call, unique_caller
from tests.support.audio import stored_audio, stored_recordings, tone_share
from tests.support.browser import ConsolePage, first_audio, kill_chromium, softphone_args
from tests.support.db import fetch
from tests.support.net import own_lab, spare_port
from tests.support.polling import eventually, throughout
from tests.support.relay import Relay
from tests.support.web import CHEAP_HASHER

pytestmark = pytest.mark.e2e

RELAY_PORT = spare_port("softphone-test")
BASE = Settings(
    **own_lab("softphone-test"),
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    recordings_settle_seconds=1.0,
    recordings_separate_legs=True,
    incident_upkeep_seconds=0.5,
    # Media on loopback only, both ways: the only address lab traffic may use.
    softphone_media_address="127.0.0.1",
    softphone_ice_networks=("127.0.0.0/8",),
    # A dead browser's call ends this soon (30 s on a site): the shortest the line allows.
    softphone_rtp_timeout_seconds=5,
    # Through the relay (the browser's "network", which the tests cut) to Asterisk's WSS.
    softphone_ws_url=f"wss://127.0.0.1:{RELAY_PORT}/ws",
    http_port=0,
)
TONE_HZ = 1000
DESK_PHONE = "PJSIP/op1001"  # a lab desk phone (the sipp UAS answers it)
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
    path = state_dir / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(path), "synth",
                    "3", "sine", str(TONE_HZ), "vol", "0.5"], check=True)
    return path


@pytest.fixture(scope="module")
def browser_args(tone_wav: Path) -> Sequence[str]:
    return softphone_args(tone_wav)


@pytest.fixture(scope="module")
def joining_operators() -> tuple[str, ...]:
    """The browser desks join through the console."""
    return ("PJSIP/op2001", "PJSIP/op2002", "PJSIP/op2003", "PJSIP/op2004", "PJSIP/op2005",
            "PJSIP/op2006", "PJSIP/op2007", "PJSIP/op2008", "PJSIP/op2009", "PJSIP/op2010",
            "PJSIP/op2011", "PJSIP/op2012", DESK_PHONE)


async def browser_desk(line: Line, settings: Settings, username: str, interface: str) -> None:
    """An operator account whose desk's phone is the browser (as ``siaga112 account desk
    USERNAME INTERFACE --phone browser`` makes it), known to Asterisk."""
    accounts = AccountService(line.database, CHEAP_HASHER, AccountConfig())
    await accounts.create(username, "operator", PASSWORD, display_name=username.title(),
                          actor="test")
    await assign_desk(line.database, load_menu(settings.menu_file), username, interface,
                      {"medical": 5, "general": 5}, realm=settings.sip_realm,
                      phone=PhoneKind.BROWSER)
    await line.listener.send_action({"Action": "Reload", "Module": "res_pjsip.so"})


async def registered(console_page: ConsolePage, username: str) -> Locator:
    """Log ``username`` in to the console; returns the softphone once it registered."""
    await console_page.log_in(username, PASSWORD, landing="/console/operator")
    softphone = console_page.page.locator("#softphone")
    await expect(softphone).to_have_attribute("data-registration", "registered",
                                              timeout=WAIT_MS)
    return softphone


async def joined(page: Page) -> None:
    """Join the queues of the desk's skills through the console."""
    await page.click('button:has-text("Masuk antrean")')
    await expect(page.locator("#flash")).to_contain_text("Masuk antrean", timeout=WAIT_MS)


async def staffed(line: Line, settings: Settings, console_page: ConsolePage, username: str,
                  interface: str) -> Locator:
    """An operator whose desk's phone is the browser, logged in, registered and in the
    queues of the desk's skills; returns the softphone."""
    await browser_desk(line, settings, username, interface)
    softphone = await registered(console_page, username)
    await joined(console_page.page)
    return softphone


async def answered(softphone: Locator) -> None:
    """The call ringing in ``softphone``, answered there, is up."""
    await expect(softphone).to_have_attribute("data-call", "ringing", timeout=WAIT_MS)
    await softphone.locator('[data-part="answer"]').click()
    await expect(softphone).to_have_attribute("data-call", "talking", timeout=WAIT_MS)


# Whether the microphone's track is on (JsSIP's mute disables it).
SENDING_JS = """() => window.siaga112Softphone.connection().getSenders()
  .filter((sender) => sender.track && sender.track.kind === "audio")
  .every((sender) => sender.track.enabled)"""


# The live call's ICE username fragment (a new one after each ICE restart) and the audio it has
# received and sent so far.
MEDIA_JS = """async () => {
  const connection = window.siaga112Softphone.connection();
  const counts = { received: 0, sent: 0,
    ufrag: /a=ice-ufrag:(\\S+)/.exec(connection.localDescription.sdp)[1] };
  (await connection.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      counts.received += report.packetsReceived;
    } else if (report.type === "outbound-rtp" && report.kind === "audio") {
      counts.sent += report.packetsSent;
    }
  });
  return counts;
}"""


async def media_flows(page: Page) -> dict[str, Any]:
    """Waits until audio comes in and goes out of the live call (more RTP both ways than a
    moment ago); returns the counts."""
    before = await page.evaluate(MEDIA_JS)

    async def more() -> dict[str, Any] | None:
        now: dict[str, Any] = await page.evaluate(MEDIA_JS)
        return now if now["received"] > before["received"] + 25 and \
            now["sent"] > before["sent"] + 25 else None

    flowing: dict[str, Any] = await eventually("audio both ways", more, within=5)
    return flowing


async def test_the_softphone_registers_when_the_operator_logs_in(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        network: Relay) -> None:
    await browser_desk(line, settings, "rina", "PJSIP/op2001")
    await registered(console_page, "rina")
    contacts = await lab.wait_cli("pjsip show contacts", lambda out: "op2001/sip:" in out)
    # Over the browser's WebSocket, from the relay's address (the browser's network).
    assert "op2001/sip:" in contacts and "@127.0.0.2:" in contacts and "Avail" in contacts
    await console_page.page.screenshot(
        path=str(console_page.shots / "softphone-01-terdaftar.png"))
    issued = await fetch(settings.database_dsn or "",
                         "SELECT md5_cred FROM phone_secrets WHERE operator = 'PJSIP/op2001'")

    # Logging out unregisters first, and the page's secret stops working.
    await console_page.page.click('form[action="/console/logout"] button')
    await console_page.page.wait_for_url("**/console/login")
    await lab.wait_cli("pjsip show contacts", lambda out: "op2001/sip:" not in out)
    after = await fetch(settings.database_dsn or "",
                        "SELECT md5_cred FROM phone_secrets WHERE operator = 'PJSIP/op2001'")
    assert after[0]["md5_cred"] != issued[0]["md5_cred"]
    assert console_page.problems == []


async def test_the_browser_answers_a_112_call_and_both_sides_are_recorded(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        network: Relay) -> None:
    interface = "PJSIP/op2002"
    softphone = await staffed(line, settings, console_page, "sari", interface)
    page = console_page.page
    caller = unique_caller("0857")
    # 1 emergency, 1 ambulance (barging in on the prompts): the medical queue at once; then
    # the caller talks (sipp's A-law pcap) while the browser answers.
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=8, audio=True) as call:
        await expect(softphone).to_have_attribute("data-call", "ringing", timeout=WAIT_MS)
        # The call's details are on the screen while it rings.
        await expect(page.locator("#call .caller")).to_have_text(caller, timeout=WAIT_MS)
        await expect(softphone.locator('[data-part="caller"]')).to_contain_text(caller)
        await page.screenshot(path=str(console_page.shots / "softphone-02-berdering.png"))
        await softphone.locator('[data-part="answer"]').click()
        first = await first_audio(page)
        await expect(softphone).to_have_attribute("data-call", "talking", timeout=WAIT_MS)
        await page.screenshot(path=str(console_page.shots / "softphone-03-tersambung.png"))
        # Mute and back; hold (a re-INVITE Asterisk accepts) and back; a DTMF key.
        mute, hold = softphone.locator('[data-part="mute"]'), softphone.locator(
            '[data-part="hold"]')
        await mute.click()
        await expect(mute).to_have_text("Aktifkan suara")
        assert await page.evaluate(SENDING_JS) is False
        await mute.click()
        await expect(mute).to_have_text("Bisukan")
        assert await page.evaluate(SENDING_JS) is True
        await hold.click()
        await expect(softphone).to_have_attribute("data-call", "held", timeout=WAIT_MS)
        await hold.click()
        await expect(softphone).to_have_attribute("data-call", "talking", timeout=WAIT_MS)
        await softphone.locator('[data-tone="5"]').click()
        result = await call.wait()
    assert result.ok, result.errors
    print(f"\nanswer click -> first audio in the browser: RTP {first.get('packets')} ms, "
          f"audible {first.get('level')} ms")
    assert first.get("packets") is not None and first.get("level") is not None, first
    await expect(softphone).to_have_attribute("data-call", "idle", timeout=WAIT_MS)
    # The caller hung up: an ordinary end, said as such.
    await expect(softphone.locator('[data-part="call"]')).to_have_text("Tidak ada panggilan")
    assert await softphone.get_attribute("data-call-problem") is None

    record = await ended_call(line, caller)
    assert (record.operator, record.queue, record.disposition) == (
        interface, "medical", "answered")
    rows = await stored_recordings(line, record.call_id)
    assert set(rows) == set(CALL_KINDS)
    line_path, caller_path = rows[Kind.LINE].storage_path, rows[Kind.CALLER].storage_path
    assert line_path is not None and caller_path is not None
    line_leg = stored_audio(settings.recordings_dir / line_path)
    caller_leg = stored_audio(settings.recordings_dir / caller_path)
    # The legs end with the call; its last talk_seconds are the conversation.
    assert record.talk_seconds is not None and record.talk_seconds >= 3, record
    talk_ms = record.talk_seconds * 1000
    after, before = line_leg[-(talk_ms - 1000):], line_leg[:-(talk_ms + 1000)]
    print(f"1 kHz share of the line's leg: {tone_share(after, TONE_HZ):.2f} after the answer, "
          f"{tone_share(before, TONE_HZ):.2f} before; the caller's leg while they talked "
          f"{caller_leg[-(talk_ms - 1000):].dBFS:.1f} dBFS")
    assert tone_share(after, TONE_HZ) > 0.5
    assert tone_share(before, TONE_HZ) < 0.2
    # What the line received is the caller: sipp's recording, not the operator's tone.
    talked = caller_leg[-(talk_ms - 1000):]
    assert talked.dBFS > -50 and tone_share(talked, TONE_HZ) < 0.2
    assert console_page.problems == []


async def test_a_lost_network_shows_at_once_and_the_softphone_registers_again(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        network: Relay) -> None:
    await browser_desk(line, settings, "tari", "PJSIP/op2003")
    page = console_page.page
    softphone = await registered(console_page, "tari")
    await lab.wait_cli("pjsip show contacts", lambda out: "op2003/sip:" in out)

    cut = time.monotonic()
    await network.cut()
    await expect(softphone).to_have_attribute("data-registration", "offline", timeout=2_000)
    shown = time.monotonic() - cut
    await expect(softphone.locator('[data-part="registration"]')).to_contain_text(
        "Jaringan terputus")
    await page.screenshot(path=str(console_page.shots / "softphone-04-jaringan-putus.png"))
    # Asterisk forgot the registration with the WebSocket.
    await lab.wait_cli("pjsip show contacts", lambda out: "op2003/sip:" not in out)

    back = time.monotonic()
    await network.restore()
    await expect(softphone).to_have_attribute("data-registration", "registered",
                                              timeout=WAIT_MS)
    registered_again = time.monotonic() - back
    await lab.wait_cli("pjsip show contacts", lambda out: "op2003/sip:" in out)
    print(f"\nnetwork cut -> shown on the page: {shown * 1000:.0f} ms; network back -> "
          f"registered again: {registered_again:.1f} s")
    assert console_page.problems == []


async def test_a_call_through_a_network_blip_ends_in_the_browser_when_the_caller_hangs_up(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay) -> None:
    """The browser's network drops for a moment during a call and comes back: the media
    (straight to Asterisk) goes on, but the caller's hang-up went to the WebSocket that had
    closed, so the softphone showed the call up for good and refused every next call as
    busy. And a network that came back as another one (a laptop on another Wi-Fi) left the
    call's media on the old path, never tried again, until Asterisk cut the call for silence:
    the softphone now restarts ICE after each, and the audio goes on both ways.

    Loopback cannot change the browser's address: this proves the restart (new ICE
    credentials, accepted by Asterisk, audio both ways after it) on each trigger but one
    (ICE reporting the path failed), not a call carried across two real networks."""
    interface = "PJSIP/op2008"
    softphone = await staffed(line, settings, console_page, "yoga", interface)
    page = console_page.page
    caller = unique_caller("0854")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=14, audio=True,
                           continuous=True) as call:
        await answered(softphone)
        before = await media_flows(page)
        await network.cut()
        await expect(softphone).to_have_attribute("data-registration", "offline",
                                                  timeout=2_000)
        await network.restore()
        await expect(softphone).to_have_attribute("data-registration", "registered",
                                                  timeout=WAIT_MS)
        await expect(softphone).to_have_attribute("data-call", "talking")
        # The softphone restarted ICE over the new WebSocket (a re-INVITE Asterisk accepted):
        # fresh ICE credentials, and audio both ways on the restarted path.
        await expect(softphone).to_have_attribute("data-ice-restarted", "1", timeout=WAIT_MS)
        after_blip = await media_flows(page)
        assert after_blip["ufrag"] != before["ufrag"], (before, after_blip)
        # The browser reports a network change (a laptop on another Wi-Fi): the softphone
        # opens its WebSocket anew, registers again and restarts ICE once more.
        await page.evaluate("() => { window.dispatchEvent(new Event('online')); }")
        await expect(softphone).to_have_attribute("data-ice-restarted", "2", timeout=WAIT_MS)
        await expect(softphone).to_have_attribute("data-registration", "registered",
                                                  timeout=WAIT_MS)
        after_change = await media_flows(page)
        assert after_change["ufrag"] != after_blip["ufrag"], (after_blip, after_change)
        await expect(softphone).to_have_attribute("data-call", "talking")
        result = await call.wait()
    assert result.ok, result.errors
    # The caller hung up: the call ends in the browser too, as an ordinary end (the restart
    # from the new WebSocket pointed Asterisk's dialog there: its BYE arrives, with no probe
    # needed to find the call gone).
    await expect(softphone).to_have_attribute("data-call", "idle", timeout=15_000)
    assert await softphone.get_attribute("data-call-problem") is None
    record = await ended_call(line, caller)
    assert (record.operator, record.disposition) == (interface, "answered")
    assert console_page.problems == []


# The call's media dies in the browser while the page and its WebSocket stay up, as when the
# media's path breaks but the signalling's does not: nothing more reaches Asterisk, RTCP
# included (which Asterisk counts as media too).
STOP_MEDIA_JS = "() => { window.siaga112Softphone.connection().close(); }"


async def test_a_call_cut_for_silence_tells_the_operator_why(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay) -> None:
    """Asterisk ends a call whose browser sent no audio for softphone_rtp_timeout_seconds
    (with Q.850 cause 44 on its BYE), or a carrier's network loses the caller: the softphone
    said only "Tidak ada panggilan", so the operator could not tell a dropped caller from one
    who had hung up."""
    timeout = settings.softphone_rtp_timeout_seconds
    softphone = await staffed(line, settings, console_page, "nina", "PJSIP/op2012")
    page = console_page.page
    caller = unique_caller("0859")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=40) as call:
        await answered(softphone)
        await page.evaluate(STOP_MEDIA_JS)
        result = await call.wait(within=timeout + 10)
    assert result.ok, result.errors
    await expect(softphone).to_have_attribute("data-call-problem", "media", timeout=5_000)
    await expect(softphone).to_have_attribute("data-call", "idle")
    await expect(softphone.locator('[data-part="call"]')).to_have_text(
        "Panggilan terputus: suara dari browser Anda tidak sampai ke server telepon (jaringan "
        "atau Wi-Fi terputus). Penelepon masuk daftar panggil balik.")
    await page.screenshot(path=str(console_page.shots / "softphone-09-terputus-senyap.png"))
    record = await ended_call(line, caller)
    assert record.hangup_cause == 44, record

    # A caller whose carrier lost them (its BYE with a network cause): the operator hears why.
    caller = unique_caller("0859")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=1, bye_cause=38) as call:
        await answered(softphone)
        result = await call.wait()
    assert result.ok, result.errors
    await expect(softphone).to_have_attribute("data-call-problem", "dropped", timeout=5_000)
    await expect(softphone.locator('[data-part="call"]')).to_have_text(
        "Panggilan terputus karena gangguan jaringan telepon (sebab Q.850 38).")
    assert console_page.problems == []


async def test_a_second_tab_takes_the_softphone_and_the_first_says_so(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay) -> None:
    """The operator opens the screen in a second tab: each page gets a fresh secret and
    Asterisk keeps one contact, so calls rang only in the newer tab while the first still said
    "Terdaftar — siap menerima panggilan" (and a minute later "Pendaftaran ditolak"). A call
    up in the first tab must stay up."""
    first_phone = await staffed(line, settings, console_page, "vina", "PJSIP/op2009")
    first = console_page.page
    caller = unique_caller("0851")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=10) as call:
        await answered(first_phone)
        # A new tab of the same browser (the page's own context: a popup is its only way).
        async with first.context.expect_page(timeout=WAIT_MS) as opened:
            await first.evaluate(
                "() => { window.open('/console/operator', '_blank', 'noopener'); }")
        second = await opened.value
        second_phone = second.locator("#softphone")
        await expect(second_phone).to_have_attribute("data-registration", "registered",
                                                     timeout=WAIT_MS)
        # The first tab says where the phone is now, and keeps its call.
        await expect(first_phone).to_have_attribute("data-registration", "elsewhere")
        await expect(first_phone.locator('[data-part="registration"]')).to_have_text(
            "Softphone dipakai di tab lain; panggilan berdering di sana. Muat ulang halaman "
            "ini untuk memakainya di sini.")
        await first.screenshot(path=str(console_page.shots / "softphone-08-tab-lain.png"))
        await expect(first_phone).to_have_attribute("data-call", "talking")
        first_call = await call.wait()
    assert first_call.ok, first_call.errors
    await expect(first_phone).to_have_attribute("data-call", "idle", timeout=WAIT_MS)
    # The next call rings in the second tab only.
    caller = unique_caller("0851")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=2) as call:
        await answered(second_phone)
        assert await first_phone.get_attribute("data-call") == "idle"
        assert await first_phone.get_attribute("data-registration") == "elsewhere"
        second_call = await call.wait()
    assert second_call.ok, second_call.errors
    assert console_page.problems == []


# A microphone the browser refuses (the operator once clicked "Block", or a policy), as
# getUserMedia answers then: the switches grant it for the whole module, so the page refuses it.
REFUSE_MICROPHONE_JS = """() => {
  navigator.mediaDevices.getUserMedia = () =>
    Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
}"""


async def test_a_microphone_the_browser_refuses_is_told_and_the_caller_goes_on_waiting(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay) -> None:
    softphone = await staffed(line, settings, console_page, "wulan", "PJSIP/op2005")
    page = console_page.page
    await page.evaluate(REFUSE_MICROPHONE_JS)
    # A caller who hid their number: the softphone named them as Asterisk presents them,
    # "Anonymous <anonymous>", while the call panel below said "(nomor disembunyikan)". The
    # caller waits until they were rung again, then is hung up.
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id="anonymous",
                           dtmf="11", talk_seconds=20) as call:
        await expect(softphone).to_have_attribute("data-call", "ringing", timeout=WAIT_MS)
        await expect(page.locator("#call .caller")).to_have_text("(nomor disembunyikan)",
                                                                timeout=WAIT_MS)
        await expect(softphone.locator('[data-part="caller"]')).to_have_text(
            "(nomor disembunyikan)")
        await softphone.locator('[data-part="answer"]').click()
        await expect(softphone).to_have_attribute("data-call-problem", "microphone",
                                                  timeout=WAIT_MS)
        await expect(softphone.locator('[data-part="call"]')).to_have_text(
            "Mikrofon ditolak browser; panggilan tidak dapat dijawab. Izinkan mikrofon untuk "
            "situs ini, lalu muat ulang halaman.")
        await page.screenshot(path=str(console_page.shots / "softphone-05-mikrofon.png"))
        # The caller is not lost: Asterisk rings the operator again, and the problem shown
        # gives way to the new call.
        await expect(softphone).to_have_attribute("data-call", "ringing", timeout=WAIT_MS)
        assert await softphone.get_attribute("data-call-problem") is None
        for channel in await live_channels(line.listener):
            if channel.caller_number == "anonymous":
                await line.listener.send_action({"Action": "Hangup",
                                                 "Channel": channel.channel})
        await call.wait(within=10)
    await expect(softphone).to_have_attribute("data-call", "idle", timeout=WAIT_MS)
    assert console_page.problems == []


async def test_the_operator_works_on_the_call_and_the_caller_stays_on_the_line(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        network: Relay) -> None:
    """The softphone lives in the operator's page: labelling the call, opening its incident
    form, logging out or reloading left the page, and JsSIP hung up the 112 caller as it
    went; after the call, an operator working on the incident form in that tab was out of
    every queue once the grace had passed."""
    interface = "PJSIP/op2006"
    softphone = await staffed(line, settings, console_page, "yanti", interface)
    page = console_page.page
    caller = unique_caller("0856")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=25) as call:
        await answered(softphone)
        panel = page.locator("#call")
        await expect(panel).to_have_attribute("data-state", "talking", timeout=WAIT_MS)

        # A label from the screen: its message on the page, the call still up.
        await panel.locator('.label-form button[value="genuine"]').click()
        await expect(page.locator("#flash")).to_have_text(
            "Panggilan diberi label: Asli.", timeout=WAIT_MS)
        await expect(softphone).to_have_attribute("data-call", "talking")

        # The incident form opens in the work tab beside the softphone.
        async with page.context.expect_page(timeout=WAIT_MS) as opened:
            await panel.locator('button:has-text("Buka formulir insiden")').click()
        work = await opened.value
        await work.wait_for_url("**/console/incidents/*", timeout=WAIT_MS)
        await expect(work.locator("#flash")).to_contain_text("Insiden #")
        await expect(softphone).to_have_attribute("data-call", "talking")

        # Logging out waits for the end of the call.
        await page.click('form[action="/console/logout"] button')
        await expect(page.locator("#flash")).to_have_text(
            "Selesaikan panggilan dulu: keluar sekarang memutus penelepon.")
        await page.screenshot(path=str(console_page.shots / "softphone-06-keluar-ditahan.png"))
        await expect(softphone).to_have_attribute("data-call", "talking")

        # Reloading (or closing) the page: the browser asks first, and the operator stays.
        asked: list[str] = []

        async def stay(dialog: Dialog) -> None:
            asked.append(dialog.type)
            await dialog.dismiss()

        async def was_asked() -> bool | None:
            return True if asked == ["beforeunload"] else None

        page.once("dialog", stay)
        await page.evaluate("() => { window.location.reload(); }")
        await eventually("the browser asking", was_asked)
        console_page.problems.remove("dialog: ")
        await expect(softphone).to_have_attribute("data-call", "talking")
        result = await call.wait()
    assert result.ok, result.errors
    await expect(softphone).to_have_attribute("data-call", "idle", timeout=WAIT_MS)
    record = await ended_call(line, caller)
    assert (record.operator, record.disposition) == (interface, "answered")
    assert record.talk_seconds is not None and record.talk_seconds >= 20, record

    # The operator goes on with the incident in the work tab: the softphone stays
    # registered and the desk in its queues past the grace.
    await work.locator('textarea[name="description"]').fill("Sesak napas, lansia.")

    async def still_there() -> bool:
        out = await lab.acli("pjsip show contacts")
        return f"{interface[6:]}/sip:" in out and bool(await members(line, interface))

    await throughout("the softphone registered and the desk in its queues", still_there,
                     settings.softphone_lost_grace_seconds + 3)
    assert console_page.problems == []


async def test_a_session_that_ends_during_a_call_leaves_the_caller_on_the_line(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay) -> None:
    """The session ends while the operator talks (expired, or signed out elsewhere): the
    screen's poll took the page to the login form at once, and the caller was cut off."""
    softphone = await staffed(line, settings, console_page, "yuni", "PJSIP/op2007")
    page = console_page.page
    caller = unique_caller("0855")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=12) as call:
        await answered(softphone)
        await line.database.run(lambda c: c.execute(
            "DELETE FROM sessions WHERE account_id = "
            "(SELECT account_id FROM accounts WHERE username = 'yuni')"))
        await expect(page.locator("#flash")).to_have_text(
            "Sesi Anda berakhir. Panggilan tetap tersambung; halaman masuk dibuka setelah "
            "panggilan selesai.", timeout=WAIT_MS)
        await page.screenshot(path=str(console_page.shots / "softphone-07-sesi-berakhir.png"))
        await expect(softphone).to_have_attribute("data-call", "talking")
        result = await call.wait()
    assert result.ok, result.errors
    # Once the call has ended, the login form.
    await page.wait_for_url("**/console/login", timeout=WAIT_MS)
    record = await ended_call(line, caller)
    assert record.talk_seconds is not None and record.talk_seconds >= 10, record
    # The browser logs the refused polls (the screen's and the transfer panel's), then they
    # stop.
    assert set(console_page.problems) == {
        "console: Failed to load resource: the server responded with a status of 401 "
        "(Unauthorized)"}, console_page.problems
    assert len(console_page.problems) <= 2, console_page.problems


async def test_an_operator_whose_browser_dies_leaves_the_queues_and_callers_go_elsewhere(
        line: Line, lab: Lab, settings: Settings, console_page: ConsolePage,
        network: Relay, tone_wav: Path) -> None:
    interface = "PJSIP/op2004"
    await browser_desk(line, settings, "umi", interface)
    page = console_page.page
    await registered(console_page, "umi")
    await joined(page)
    queues = await eventually("umi in the queues", lambda: members(line, interface))
    assert {"medical", "all-operators"} <= set(queues)

    died = time.monotonic()
    kill_chromium(str(tone_wav))
    # The line pauses the desk and takes it out of every queue, in Asterisk itself.
    await eventually("umi out of the queues", lambda: none_left(line, interface),
                     within=settings.softphone_lost_grace_seconds + 15)
    left = time.monotonic() - died
    status = await line.listener.send_list_action({"Action": "QueueStatus"})
    assert interface not in str(status)
    print(f"\nbrowser killed -> out of every queue: {left:.1f} s (grace "
          f"{settings.softphone_lost_grace_seconds:g} s)")
    entries = await fetch(settings.database_dsn or "",
                          "SELECT actor, action, detail FROM audit_log "
                          "WHERE object_id = $1 AND action = 'desk.phone_lost'", interface)
    assert [(e["actor"], e["action"]) for e in entries] == [("siaga112", "desk.phone_lost")]
    phone = await fetch(settings.database_dsn or "",
                        "SELECT lost_at, lost_queues FROM phone_secrets WHERE operator = $1",
                        interface)
    assert phone[0]["lost_at"] is not None and set(phone[0]["lost_queues"]) == set(queues)

    # A caller now rings an operator who is there (a desk phone), never the dead browser.
    await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_in(
        DESK_PHONE, {"medical": 5})
    caller = unique_caller("0858")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=2) as call:
        assert (await call.wait()).ok
    record = await ended_call(line, caller)
    assert (record.operator, record.disposition) == (DESK_PHONE, "answered")
    rung = await fetch(settings.database_dsn or "",
                       "SELECT body ->> 'operator' AS operator FROM call_events "
                       "WHERE call_id = $1 AND kind = 'operator_rung'", record.call_id)
    assert interface not in {row["operator"] for row in rung}


async def test_a_call_whose_browser_dies_ends_and_its_caller_is_called_back(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay,
        tone_wav: Path) -> None:
    """The operator's browser dies mid-call (crashed, killed, its laptop asleep, its network
    gone): no BYE, and its WebSocket closing ends no call, so the caller sat in silence on a
    dead call until they hung up themselves, and the call read as an ordinary end. Asterisk
    now ends the operator's leg once no media has come for ``softphone_rtp_timeout_seconds``,
    as any dropped operator leg ends: a network cause, the caller on the call-back list. An
    operator who holds the caller that long is not cut."""
    timeout = settings.softphone_rtp_timeout_seconds
    interface = "PJSIP/op2010"
    softphone = await staffed(line, settings, console_page, "dewi", interface)
    caller = unique_caller("0853")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="11", talk_seconds=60) as call:
        await answered(softphone)
        hold = softphone.locator('[data-part="hold"]')
        await hold.click()
        await expect(softphone).to_have_attribute("data-call", "held", timeout=WAIT_MS)

        async def held() -> bool:
            return await softphone.get_attribute("data-call") == "held"

        await throughout("the held call up", held, timeout + 3)
        await hold.click()
        await expect(softphone).to_have_attribute("data-call", "talking", timeout=WAIT_MS)

        died = time.monotonic()
        kill_chromium(str(tone_wav))
        # Asterisk hangs up the caller too: sipp receives its BYE long before it would hang up.
        result = await call.wait(within=timeout + 10)
        ended = time.monotonic() - died
    assert result.ok, result.errors
    print(f"\nbrowser killed mid-call -> the caller's call ended: {ended:.1f} s "
          f"(rtp timeout {timeout} s)")
    assert ended < timeout + 5
    record = await ended_call(line, caller)
    assert (record.operator, record.disposition) == (interface, "answered")
    # Asterisk's cause for a channel that stopped receiving media, a network cause.
    assert (record.hangup_cause, record.hangup_cause_text) == (
        44, "Requested channel not available"), record

    async def on_the_worklist() -> Entry | None:
        return find_entry(await line.callbacks.worklist(), record.call_id)

    entry = await eventually(f"{record.call_id} on the call-back list", on_the_worklist,
                             within=10)
    assert dict((c.call_id, reason) for c, reason in entry.reasons)[record.call_id] \
        is CallbackReason.DROPPED


async def test_a_call_back_whose_browser_dies_ends_and_the_caller_stays_on_the_list(
        line: Line, settings: Settings, console_page: ConsolePage, network: Relay,
        tone_wav: Path) -> None:
    """An operator calls a caller back from the browser and the browser dies while they
    talk: the caller's phone stayed connected to nobody until they hung up themselves, and
    the call-back ended with no network cause, so it counted as having reached the caller and
    took them off the list. Asterisk now ends it as it ends a call, with a network cause, and
    the caller stays on the list, the call-back cut short."""
    timeout = settings.softphone_rtp_timeout_seconds
    interface = "PJSIP/op2011"
    # A caller who chose an emergency in the IVR and hung up: on the call-back list.
    caller = unique_caller("0852")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="1", talk_seconds=1) as call:
        assert (await call.wait()).ok
    record = await ended_call(line, caller)

    async def on_the_worklist() -> Entry | None:
        return find_entry(await line.callbacks.worklist(), record.call_id)

    await eventually(f"{record.call_id} on the call-back list", on_the_worklist, within=10)
    await browser_desk(line, settings, "eka", interface)
    softphone = await registered(console_page, "eka")
    account = next(a for a in await AccountService(
        line.database, CHEAP_HASHER, AccountConfig()).accounts() if a.username == "eka")
    # The caller's phone answers and would stay until Asterisk hangs up.
    async with sipp.callee(settings.carrier_sip_port, hold_seconds=60, max_calls=1) as phone:
        leg = await line.callbacks.call_back(account, record.call_id,
                                             remote_address="127.0.0.1")
        await answered(softphone)

        async def caller_answered() -> bool | None:
            rows = await fetch(settings.database_dsn or "",
                               "SELECT answered_at FROM call_legs WHERE leg_id = $1",
                               leg.leg_id)
            return True if rows[0]["answered_at"] is not None else None

        await eventually("the caller answering the call-back", caller_answered)
        died = time.monotonic()
        kill_chromium(str(tone_wav))
        result = await phone.wait(within=timeout + 10)
        ended = time.monotonic() - died
    assert result.ok, result.errors
    print(f"\nbrowser killed during a call-back -> the caller's phone hung up: {ended:.1f} s")
    assert ended < timeout + 5

    async def cut_short() -> Entry | None:
        entry = await on_the_worklist()
        return entry if entry is not None and entry.attempts \
            and entry.attempts[0].ended_at is not None else None

    entry = await eventually("the call-back cut short, the caller on the list", cut_short,
                             within=10)
    (attempt, *_) = entry.attempts
    assert (attempt.leg_id, attempt.hangup_cause, attempt.cut) == (
        leg.leg_id, 44, CutShort.NETWORK), attempt
    assert entry.reason is CallbackReason.CALLBACK_CUT


async def members(line: Line, interface: str) -> list[str] | None:
    """The queues ``interface`` is in, as the line last heard from Asterisk (None: none)."""
    rows = await line.database.run(lambda c: DeskRepository().memberships(c, interface))
    return [m.queue for m in rows] or None


async def none_left(line: Line, interface: str) -> bool | None:
    """True once ``interface`` is in no queue (None until then)."""
    return True if await members(line, interface) is None else None
