"""The whole line, end to end: real Asterisk 22, our FastAGI IVR and AMI listener, a real
PostgreSQL, sipp callers pressing real RFC 4733 DTMF and sipp operator phones.

Every test reads its verdict from the database the line wrote, as a supervisor would.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from ivr.menu import load_menu
from telephony.ami.listener import AmiListener
from telephony.ami.threaded import ThreadedListener
from telephony.app import Line, running_line
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRecord
from telephony.db.embedded import EmbeddedPostgres
from telephony.desks.operators import OperatorDesk
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ALL_SKILLS, ended_call, logged_data, unique_caller
from tests.support.net import free_port, own_lab

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("line-test"),
    http_port=0,  # the API on any free port
    lab_operators=40,
    queue_max_wait=60,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
)
CALENDAR = ShiftCalendar(BASE.shifts, BASE.timezone)


class Staff(Protocol):
    """Logs operators in for the length of one test."""

    async def __call__(self, *interfaces: str, skills: dict[str, int] = ...) -> None: ...


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture
async def staff(line: Line, lab: Lab) -> AsyncIterator[Staff]:
    """Log operators in by skill for one test; all are logged out afterwards."""
    desk = OperatorDesk(line.listener, load_menu())
    joined: list[tuple[str, list[str]]] = []

    async def log_in(*interfaces: str, skills: dict[str, int] = ALL_SKILLS) -> None:
        for interface in interfaces:
            joined.append((interface, await desk.log_in(interface, skills)))

    yield log_in
    for interface, queues in joined:
        await desk.log_out(interface, queues)


async def call(
    settings: Settings, caller_id: str, *, number: str = "112", dtmf: str = "",
    stay: float = 8.0, audio: bool = False,
) -> sipp.SippResult:
    async with sipp.caller(settings.sip_host, settings.sip_port, number, caller_id=caller_id,
                           dtmf=dtmf, talk_seconds=stay, audio=audio) as caller:
        return await caller.wait()


async def records_of(line: Line, caller_id: str) -> list[CallRecord]:
    records = await line.database.run(lambda c: line.repository.call_records(c, limit=500))
    return [r for r in records if r.caller_number == caller_id]


async def caller_key(line: Line, call_id: str) -> str | None:
    """The key the call's caller's history is kept under (``calls.caller_key``)."""
    key: str | None = await line.database.run(lambda c: c.fetchval(
        "SELECT caller_key FROM calls WHERE call_id = $1", call_id))
    return key


def assert_shift_by_arrival(record: CallRecord) -> None:
    assert record.arrived_at is not None
    slot = CALENDAR.slot_for(record.arrived_at)
    assert (record.shift_day, record.shift_name) == (slot.day, slot.name)


async def test_press_1_then_fire_is_answered_and_fully_recorded(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1001")
    caller_id = unique_caller("0812")
    result = await call(settings, caller_id, dtmf="12", stay=8, audio=True)
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.line, record.ivr_choice, record.ivr_outcome, record.ivr_category,
            record.ivr_skill) == ("112", "1", "chosen", "emergency", "fire")
    assert (record.queue, record.queue_position, record.answered_queue) == ("fire", 1, "fire")
    assert record.operator == "PJSIP/op1001"
    assert record.wait_seconds is not None and 0 <= record.wait_seconds <= 3
    # The caller stays 8 s after its last key, and the IVR routes at that key: about 8 s of
    # talk, give or take the queue's ring and Asterisk's whole-second rounding.
    assert record.talk_seconds is not None and 6 <= record.talk_seconds <= 10
    assert (record.hangup_cause, record.disposition) == (16, "answered")
    assert_shift_by_arrival(record)


async def test_silence_goes_to_emergency(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1002")
    caller_id = unique_caller("0812")
    # Greeting + menu + 5 s of silence come before the queue.
    assert (await call(settings, caller_id, stay=24)).ok
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.ivr_choice, record.queue) == (
        "no_input", None, "emergency-general")
    assert record.disposition == "answered" and record.operator == "PJSIP/op1002"


async def test_invalid_key_twice_goes_to_emergency(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1003")
    caller_id = unique_caller("0812")
    assert (await call(settings, caller_id, dtmf="70", stay=8)).ok
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.queue, record.disposition) == (
        "invalid", "emergency-general", "answered")


async def test_line_119_goes_to_medical(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1004", skills={"medical": 5})
    caller_id = unique_caller("0812")
    assert (await call(settings, caller_id, number="119", stay=12)).ok
    record = await ended_call(line, caller_id)
    assert (record.line, record.ivr_outcome, record.ivr_skill, record.queue, record.operator) == (
        "119", "direct", "medical", "medical", "PJSIP/op1004")


async def test_hang_up_in_the_ivr(line: Line, settings: Settings) -> None:
    caller_id = unique_caller("0812")
    assert (await call(settings, caller_id, stay=3)).ok
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.queue, record.ivr_outcome) == ("ended_in_ivr", None, None)
    assert record.line == "112"
    assert (record.hangup_cause, record.hangup_cause_text) == (16, "Normal Clearing")


async def test_a_hang_up_at_the_answer_keeps_its_cause(line: Line, settings: Settings) -> None:
    """A caller whose BYE follows the answer within milliseconds (a pocket dial, a phone that
    gives up as it connects): the hang-up handler that gives a caller's own BYE the bridge's
    16 was pushed only after the answer (Answer() waits up to 500 ms for the caller's
    media, and a hang-up then ends the dialplan at once), so the call was recorded with
    cause 0 "Unknown", live and in the queue_log alike."""
    caller_id = unique_caller("0812")
    assert (await call(settings, caller_id, stay=0.02)).ok
    record = await ended_call(line, caller_id)
    assert record.disposition == "ended_in_ivr"
    assert (record.hangup_cause, record.hangup_cause_text) == (16, "Normal Clearing")
    assert await logged_data(settings, record.call_id, "SIAGAEND") == ("16",)


async def test_abandons_keep_original_and_final_positions(line: Line, settings: Settings) -> None:
    """Nobody is logged in: two callers choose information, wait (in all-operators: nobody
    can take them in information, so they do not wait there) and give up."""
    first, second = unique_caller("0812"), unique_caller("0812")

    async def later() -> sipp.SippResult:
        await asyncio.sleep(1.0)  # the second caller arrives after the first
        return await call(settings, second, dtmf="3", stay=14)

    results = await asyncio.gather(call(settings, first, dtmf="3", stay=7), later())
    assert all(r.ok for r in results)
    one, two = await ended_call(line, first), await ended_call(line, second)
    assert (one.disposition, one.queue, one.queue_position) == ("abandoned", "all-operators", 1)
    assert (one.abandon_original_position, one.abandon_final_position) == (1, 1)
    assert (two.disposition, two.queue_position) == ("abandoned", 2)
    # The first caller left, so the second moved up before hanging up.
    assert (two.abandon_original_position, two.abandon_final_position) == (2, 1)
    # They hung up (a BYE): a normal clearing, as for a caller an operator answered.
    assert (one.hangup_cause, one.hangup_cause_text) == (16, "Normal Clearing")
    assert (two.hangup_cause, two.hangup_cause_text) == (16, "Normal Clearing")


async def test_fastagi_down_the_call_still_reaches_an_operator(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1005")
    await line.callpath.stop()
    try:
        caller_id = unique_caller("0812")
        # The caller presses 3 (information), but there is no IVR to hear it.
        assert (await call(settings, caller_id, dtmf="3", stay=6)).ok
    finally:
        await line.callpath.start()
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.queue, record.disposition, record.operator) == (
        "failopen", "emergency-general", "answered", "PJSIP/op1005")


async def test_listener_restarted_mid_call_keeps_the_record_complete(
    line: Line, settings: Settings
) -> None:
    queues = await OperatorDesk(line.listener, load_menu()).log_in("PJSIP/op1006", ALL_SKILLS)
    caller_id = unique_caller("0812")
    placed = asyncio.create_task(call(settings, caller_id, dtmf="3", stay=12))
    deadline = time.monotonic() + 15
    while not any(r.operator for r in await records_of(line, caller_id)):
        assert time.monotonic() < deadline, "the call was never answered"
        await asyncio.sleep(0.2)
    # The listener goes away while the caller talks, and a new one comes back.
    await line.listener.stop()
    # On the listener's thread, where the recorder runs.
    replacement = ThreadedListener(AmiListener(settings, line.recorder), line.listener.thread)
    await replacement.start()
    try:
        async with asyncio.timeout(10):
            await replacement.wait_ready()
        assert (await placed).ok
        record = await ended_call(line, caller_id)
        await OperatorDesk(replacement, load_menu()).log_out("PJSIP/op1006", queues)
    finally:
        await replacement.stop()
    assert (record.disposition, record.queue, record.operator, record.hangup_cause) == (
        "answered", "information", "PJSIP/op1006", 16)
    assert record.talk_seconds is not None and record.talk_seconds >= 8


async def test_twenty_simultaneous_callers_are_all_accounted_for(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff(*(f"PJSIP/op{1010 + i}" for i in range(20)),
                skills={"general": 5})
    caller_id = unique_caller("0812")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="3", talk_seconds=8, calls=20, rate=20,
                           concurrent=20) as callers:
        result = await callers.wait()
    assert (result.successful, result.failed) == (20, 0), result.errors
    deadline = time.monotonic() + 30
    while True:
        records = await records_of(line, caller_id)
        if len(records) == 20 and all(r.ended_at for r in records):
            break
        assert time.monotonic() < deadline, f"{len(records)} of 20 recorded"
        await asyncio.sleep(0.2)
    assert {(r.disposition, r.queue, r.ivr_outcome) for r in records} == {
        ("answered", "information", "chosen")}
    assert len({r.operator for r in records}) == 20  # each answered by its own operator
    assert all(r.queue_position and r.talk_seconds is not None and r.hangup_cause == 16
               for r in records)


async def test_hostile_fastagi_input_then_a_real_call_is_served(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1007")
    attacks = [
        b"\x00\xff garbage\n\n",
        b"agi_network: yes\n" + b"agi_x: " + b"A" * 1_000_000 + b"\n\n",
        b"agi_network: yes\nagi_network_scr",  # half a frame, then close
        b"agi_network: yes\nagi_callerid: \xc3\x28\n\n",  # invalid UTF-8
    ]
    for attack in attacks:
        reader, writer = await asyncio.open_connection(settings.agi_host, settings.agi_port)
        try:
            writer.write(attack)
            await writer.drain()
        except ConnectionError:
            pass  # the server may cut a 1 MB header short, as it should
        writer.close()
        await asyncio.wait_for(reader.read(), timeout=10)  # the server closes its side
    caller_id = unique_caller("0812")
    assert (await call(settings, caller_id, dtmf="3", stay=6)).ok
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.queue, record.disposition) == (
        "chosen", "information", "answered")


async def test_odd_caller_ids_are_kept_as_sent(
    line: Line, settings: Settings, staff: Staff
) -> None:
    await staff("PJSIP/op1008")
    # Withheld, E.164, and a number longer than any real one: all reach an operator.
    for caller_id in ("anonymous", "+6281234567890", "1" * 40):
        since = datetime.now(UTC)
        assert (await call(settings, caller_id, dtmf="3", stay=4)).ok
        record = await ended_call(line, caller_id)
        assert record.arrived_at is not None and record.arrived_at >= since.replace(
            microsecond=0)
        assert record.disposition == "answered"


async def test_a_caller_number_with_a_line_break_is_followed_live_through_the_menu(
    line: Line, settings: Settings, staff: Staff
) -> None:
    """A carrier that escapes a CR LF into the caller's From user (0812%0D%0A...): PJSIP
    unescapes it, and Asterisk wrote it as it was into every AMI event of the channel (each
    refused by the line, the call invisible until a restart's backfill) and the AGI
    environment (the IVR refused: failed open, no menu). The dialplan drops the line break
    first of all: the caller hears the menu, is recorded live under the number's key, and
    reaches the queue they chose."""
    await staff("PJSIP/op1016")
    number = unique_caller("0813")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                           caller_id=f"{number[:6]}%0D%0A{number[6:]}", dtmf="3",
                           talk_seconds=4) as caller:
        assert (await caller.wait()).ok
    record = await ended_call(line, number, within=20)
    assert (record.ivr_outcome, record.queue, record.disposition) == (
        "chosen", "information", "answered")
    assert await caller_key(line, record.call_id) == "62" + number[1:]


async def test_a_caller_number_that_is_not_utf8_hears_the_menu_and_is_recorded_escaped(
    line: Line, settings: Settings, staff: Staff
) -> None:
    """A carrier that writes bytes that are not UTF-8 into the caller's From user
    (0813%C3%28...): PJSIP unescapes them, and the IVR refused the AGI environment that held
    them (failed open: the caller reached a human without the menu's choice). The caller
    hears the menu and reaches the queue they chose; the number is recorded with the bytes
    escaped, the same text the IVR and the queue_log reader see."""
    await staff("PJSIP/op1017")
    number = unique_caller("0813")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                           caller_id=f"{number[:6]}%C3%28{number[6:]}", dtmf="3",
                           talk_seconds=4) as caller:
        assert (await caller.wait()).ok
    record = await ended_call(line, f"{number[:6]}\\xc3({number[6:]}", within=20)
    assert (record.ivr_outcome, record.queue, record.disposition) == (
        "chosen", "information", "answered")


async def test_numbers_as_carriers_write_them_reach_their_line(
    line: Line, settings: Settings, staff: Staff
) -> None:
    """A carrier may write the dialled 119 nationally, in E.164 or with RFC 3966's
    phone-context: it is still the health line (its greeting, the medical queue, recorded on
    119). A name instead of a number (sos, as some networks route emergency calls) is not
    refused: it is 112. A caller number with user options (;cpc=ordinary) is the number."""
    await staff("PJSIP/op1011", "PJSIP/op1012", "PJSIP/op1013")
    health = {number: unique_caller("0813") for number in ("+62119", "119;phone-context=+62")}
    named = unique_caller("0813")
    optioned = unique_caller("0813")
    results = await asyncio.gather(
        *(call(settings, caller, number=number, stay=12) for number, caller in health.items()),
        call(settings, named, number="sos", dtmf="3", stay=4),
        call(settings, f"{optioned};cpc=ordinary", dtmf="3", stay=4))
    assert all(r.ok for r in results), [r.errors for r in results]
    for caller in health.values():
        record = await ended_call(line, caller)
        assert (record.line, record.ivr_outcome, record.queue, record.disposition) == (
            "119", "direct", "medical", "answered")
    record = await ended_call(line, named)
    assert (record.line, record.queue, record.disposition) == ("112", "information", "answered")
    record = await ended_call(line, optioned)
    assert (record.queue, record.disposition) == ("information", "answered")
    assert await caller_key(line, record.call_id) == "62" + optioned[1:]


async def test_keys_relayed_as_sip_info_reach_the_ivr(
    line: Line, settings: Settings, staff: Staff
) -> None:
    """A carrier that relays the caller's keys as SIP INFO rather than RFC 4733 events: the
    caller who pressed 1 then 2 reaches the fire queue, not the no-key default."""
    await staff("PJSIP/op1014")
    caller_id = unique_caller("0813")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="12", info_dtmf=True, talk_seconds=4) as caller:
        assert (await caller.wait()).ok
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.ivr_choice, record.ivr_skill, record.queue) == (
        "chosen", "1", "fire", "fire")


async def test_keys_sent_in_band_reach_the_ivr(
    line: Line, settings: Settings, staff: Staff
) -> None:
    """A carrier that offers no RFC 4733 events (a media gateway passing the caller's tones
    in the audio): the caller who pressed 1 then 2 reaches the fire queue, not the no-key
    default, and is not taken for a caller who pressed nothing."""
    await staff("PJSIP/op1015")
    caller_id = unique_caller("0813")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="12", inband_dtmf=True, talk_seconds=4) as caller:
        assert (await caller.wait()).ok
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.ivr_choice, record.ivr_skill, record.queue) == (
        "chosen", "1", "fire", "fire")


async def test_a_simless_caller_written_unescaped_keeps_its_imei(
    line: Line, settings: Settings, staff: Staff
) -> None:
    """Some networks write a SIM-less phone's identity unescaped in the From user,
    sip:IMEI:<digits>@host, which PJSIP parses as user IMEI with a password; or in the
    P-Asserted-Identity the carrier endpoint trusts. Either way the call keeps the digits."""
    await staff("PJSIP/op1010")
    for asserted in (False, True):
        digits = str(uuid.uuid4().int)[:15]
        raw = f"IMEI:{digits}"
        since = datetime.now(UTC)
        async with sipp.caller(
            settings.sip_host, settings.sip_port, "112",
            caller_id="anonymous" if asserted else raw,
            asserted_id=raw if asserted else None, dtmf="3", talk_seconds=4,
        ) as caller:
            assert (await caller.wait()).ok
        record = await ended_call(line, f"IMEI{digits}", since=since)
        assert record.disposition == "answered"
        assert await caller_key(line, record.call_id) == "imei:" + digits[:14]
    # Fails open: a password that is no IMEI leaves the caller id as PJSIP read it.
    async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                           caller_id="IMEI:12ab", dtmf="3", talk_seconds=4) as caller:
        assert (await caller.wait()).ok
    assert (await ended_call(line, "IMEI")).disposition == "answered"


async def test_database_outage_loses_nothing(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    """The line runs on its own cluster, which is down while the call happens."""
    root = Path(tempfile.mkdtemp(prefix="siaga112-outage-e2e-"))
    root.chmod(0o755)
    cluster = EmbeddedPostgres(root / "pgdata", free_port())
    cluster.ensure_initialized()
    # As on a site: it migrates as the owner once the cluster is back, then writes as its role.
    outage = replace(settings, database_dsn=cluster.line_dsn(settings.database_line_user),
                     database_owner_dsn=cluster.dsn(), db_connect_timeout=1.0,
                     state_dir=root / "state")
    try:
        async with running_line(outage) as line:
            async with asyncio.timeout(10):
                await line.listener.wait_ready()
            desk = OperatorDesk(line.listener, load_menu())
            queues = await desk.log_in("PJSIP/op1009", {"general": 5})
            cluster.stop()
            caller_id = unique_caller("0812")
            assert (await call(outage, caller_id, dtmf="3", stay=5)).ok
            assert line.recorder.pending() > 0  # everything the call produced is on disk
            cluster.start()
            record = await ended_call(line, caller_id)
            await desk.log_out("PJSIP/op1009", queues)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert (record.disposition, record.queue, record.ivr_outcome) == (
        "answered", "information", "chosen")
    assert record.talk_seconds is not None and record.hangup_cause == 16

