"""Transfers and conferences to agencies, end to end in the real lab.

A sipp caller dials 112 and presses 1; the lab's operator phone (op1001, a sipp UAS) answers;
the operator, logged in to the API, hands the caller to an agency's number. The agency is a
sipp UAS on the carrier's port (``Settings.carrier_sip_port``), as the line dials agencies out
through the carrier: one that answers after ringing and talks (sip-tester's A-law pcap), or one
that never answers. Each mode is checked from Asterisk's own view (its live channels and
bridges), the legs the line recorded (``call_legs``, the incident's timeline API and page),
and the call's recording, stored with separate legs: the line's leg (what the caller heard)
must carry the agency's voice after the transfer, and never be silent while the caller waits.

The time from the transfer click (the API request) to the agency's phone ringing (the INVITE
the sipp agency received) is measured and printed for each transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pydub import AudioSegment

from ivr.menu import load_menu
from recordings.domain import CALL_KINDS, Kind, State
from recordings.store import Recording, RecordingRepository
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.channels import LiveChannel, live_channels
from telephony.app import Line
from telephony.desks.service import assign_desk
from telephony.incidents.model import Status
from telephony.lab import sipp
from telephony.secrets import ami_secret
from telephony.settings import Settings
from telephony.wallboard.counters import ShiftCounters
from telephony.wallboard.state import OperatorState
from tests.e2e.harness import ALL_SKILLS, ended_call, unique_caller
from tests.e2e.rawami import RawAmi
from tests.support.db import fetch
from tests.support.net import own_lab
from tests.support.polling import eventually
from tests.support.web import Browser

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("transfers-test"),
    http_port=0,  # the API on any free port
    lab_operators=5,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    incident_upkeep_seconds=0.5,
    recordings_poll_seconds=0.5,
    recordings_settle_seconds=1.0,
    recordings_separate_legs=True,
    transfer_ring_seconds=6,
)
OPERATOR = "PJSIP/op1001"
PASSWORD = "kata-sandi-operator-112"
AGENCY_NUMBER = "0275321113"
RECORDINGS = RecordingRepository()
LOUD_DBFS = -50.0  # sipp's pcap, a tone or a prompt; digital silence is -inf
WRAPUP_SECONDS = 5  # the answering queue's wrap-up while the operator leaves a three-way call
LEFT_QUEUE = "emergency-general"  # where "1" and no second key take a caller (ivr/menu.json)


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {OPERATOR: ALL_SKILLS}


@dataclass
class Desk:
    """The operator op1 at op1001, logged in to the API, and the agency number to pick."""

    http: aiohttp.ClientSession
    auth: dict[str, str]
    number_id: int
    admin: dict[str, str] | None = None  # admin1's, for queue settings

    async def get(self, path: str) -> Any:
        response = await self.http.get(path, headers=self.auth)
        assert response.status == 200, (path, response.status, await response.text())
        return await response.json()

    async def post(self, path: str, body: dict[str, Any], status: int) -> Any:
        response = await self.http.post(path, headers=self.auth, json=body)
        assert response.status == status, (path, response.status, await response.text())
        return await response.json()


@pytest.fixture
async def desk(line: Line, settings: Settings) -> AsyncIterator[Desk]:
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    assert line.web.url is not None
    async with aiohttp.ClientSession(base_url=line.web.url) as http:
        for name, role in (("op1", "operator"), ("admin1", "admin")):
            with contextlib.suppress(Exception):  # the module's earlier tests made them
                await accounts.create(name, role, PASSWORD, actor="test")
        await assign_desk(line.database, load_menu(settings.menu_file), "op1", OPERATOR,
                          {"general": 5})
        tokens = {}
        for name in ("op1", "admin1"):
            response = await http.post("/api/session", json={"username": name,
                                                             "password": PASSWORD})
            assert response.status == 201, await response.text()
            tokens[name] = {"Authorization": f"Bearer {(await response.json())['token']}"}
        admin = Desk(http, tokens["admin1"], 0)
        number = await admin.post("/api/admin/agency-numbers", {
            "agency": "damkar", "label": "Pos Damkar Purworejo Kota", "number": AGENCY_NUMBER,
            "active": True}, 200)
        yield Desk(http, tokens["op1"], number["number_id"], tokens["admin1"])


@contextlib.asynccontextmanager
async def queue_wrapup(desk: Desk, queue: str, seconds: int) -> AsyncIterator[None]:
    """``queue``'s wrap-up set to ``seconds`` (and its retry to 1 s, so a waiting caller is
    offered the operator as soon as it ends) the way an admin sets it, then put back: the
    module's other calls take the operator again at once."""
    assert desk.admin is not None
    response = await desk.http.get("/api/admin/queues", headers=desk.admin)
    assert response.status == 200, await response.text()
    (before,) = [q for q in (await response.json())["queues"] if q["queue"] == queue]
    fields = ("strategy", "ring_timeout_seconds", "retry_seconds", "wrapup_seconds",
              "announce_position", "announce_holdtime", "announce_frequency_seconds",
              "max_wait_seconds")
    kept = {name: before[name] for name in fields}
    changed = await desk.http.put(f"/api/admin/queues/{queue}", headers=desk.admin, json={
        **kept, "wrapup_seconds": seconds, "retry_seconds": 1})
    assert changed.status == 200, await changed.text()
    try:
        yield
    finally:
        restored = await desk.http.put(f"/api/admin/queues/{queue}", headers=desk.admin,
                                       json=kept)
        assert restored.status == 200, await restored.text()


@contextlib.asynccontextmanager
async def caller_and_agency(
    settings: Settings, caller_id: str, *, talk_seconds: float = 60,
    **agency: Any,
) -> AsyncIterator[tuple[sipp.Sipp, sipp.Sipp]]:
    """A caller who dials 112, presses 1 and talks on (continuous audio, so the recording
    covers every second), and the agency on the carrier's port (``sipp.callee`` options;
    by default it answers after a second's ringing and talks)."""
    options: dict[str, Any] = {"ring_seconds": 1, "audio": True, "max_calls": 1, **agency}
    async with sipp.callee(settings.carrier_sip_port, trace_messages=True,
                           **options) as called, \
            sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                        dtmf="1", talk_seconds=talk_seconds, audio=True,
                        continuous=True) as calling:
        yield calling, called


async def talking_call(desk: Desk) -> dict[str, Any]:
    """The call in front of the operator once they talk on it (and it has its incident)."""

    async def probe() -> dict[str, Any] | None:
        state = await desk.get("/api/desk")
        call = state["call"]
        if call is None or call["state"] != "talking" or call["incident_id"] is None:
            return None
        transfers = await desk.get("/api/desk/transfers")
        return call if transfers["talking"] else None

    call: dict[str, Any] = await eventually("the operator talking to the caller", probe, 40)
    return call


async def channels_of(line: Line, call_id: str) -> list[LiveChannel]:
    """The call's channels alive in Asterisk now."""
    return [c for c in await live_channels(line.listener) if c.linkedid == call_id]


def named(channels: list[LiveChannel], prefix: str) -> list[LiveChannel]:
    return [c for c in channels if c.channel.startswith(prefix)]


async def bridged_together(line: Line, call_id: str, *prefixes: str) -> list[LiveChannel]:
    """Wait until one channel of each prefix is up and they all share one bridge."""

    async def probe() -> list[LiveChannel] | None:
        chans = await channels_of(line, call_id)
        found = [named(chans, p) for p in prefixes]
        if not all(len(f) == 1 and f[0].state == "Up" and f[0].bridge_id for f in found):
            return None
        if len({f[0].bridge_id for f in found}) != 1:
            return None
        return [f[0] for f in found]

    return await eventually(f"{prefixes} in one bridge", probe, 20)


async def leg_of(desk: Desk, leg_id: int, **expected: Any) -> dict[str, Any]:
    """The operator's view of a leg once it has the expected fields (``x_set`` = not None)."""

    async def probe() -> dict[str, Any] | None:
        body = await desk.get("/api/desk/transfers")
        legs = [leg for leg in body["legs"] if leg["leg_id"] == leg_id]
        if not legs:
            return None
        leg: dict[str, Any] = legs[0]
        for key, value in expected.items():
            if key.endswith("_set"):
                if (leg[key.removesuffix("_set")] is not None) != value:
                    return None
            elif leg[key] != value:
                return None
        return leg

    return await eventually(f"leg {leg_id} with {expected}", probe, 30)


def invite_time(messages: str) -> datetime:
    """When the sipp agency received its first INVITE (sipp's trace stamps every message)."""
    stamp = None
    for line in messages.splitlines():
        if line.startswith("-" * 20):
            stamp = line.rstrip().rsplit(" ", 2)[-2:]
        elif line.startswith("INVITE sip:") and stamp is not None:
            return datetime.strptime(" ".join(stamp), "%Y-%m-%d %H:%M:%S.%f")
    raise AssertionError("the agency received no INVITE")


async def stored(line: Line, call_id: str) -> dict[Kind, Recording]:
    async def probe() -> dict[Kind, Recording] | None:
        rows = await line.database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id]))
        rows = [row for row in rows if row.kind in CALL_KINDS]
        if len(rows) == len(CALL_KINDS) and all(r.state is State.DONE for r in rows):
            return {row.kind: row for row in rows}
        return None

    return await eventually(f"the recordings of {call_id}", probe, 60)


async def consult_recording(line: Line, call_id: str, leg_id: int) -> Recording:
    """The stored recording of the operator's talk with the agency on leg ``leg_id``."""

    async def probe() -> Recording | None:
        rows = await line.database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id]))
        return next((row for row in rows if row.kind is Kind.CONSULT and row.leg_id == leg_id
                     and row.state is State.DONE), None)

    return await eventually(f"the consult recording of leg {leg_id}", probe, 60)


def audio(settings: Settings, row: Recording) -> AudioSegment:
    assert row.storage_path is not None
    with (settings.recordings_dir / row.storage_path).open("rb") as handle:
        return AudioSegment.from_file(handle, format="ogg")


def loudness(segment: AudioSegment, start: float, end: float) -> float:
    """dBFS of ``segment`` between ``start`` and ``end`` seconds."""
    return float(segment[int(start * 1000):int(end * 1000)].dBFS)


async def check_recording(line: Line, settings: Settings, caller_id: str,
                          heard_from: float, heard_to: float) -> float:
    """The call's recording covers it whole, and what the caller heard (the line's leg) is
    loud between ``heard_from`` and ``heard_to`` seconds after the call arrived; returns the
    mixed recording's length."""
    record = await ended_call(line, caller_id, within=60)
    assert record.arrived_at is not None and record.ended_at is not None
    rows = await stored(line, record.call_id)
    mixed = rows[Kind.MIXED].duration_seconds
    call_seconds = (record.ended_at - record.arrived_at).total_seconds()
    assert mixed is not None and abs(mixed - call_seconds) <= 1.5, (mixed, call_seconds)
    heard = audio(settings, rows[Kind.LINE])
    assert loudness(heard, heard_from, heard_to) > LOUD_DBFS, (heard_from, heard_to)
    return mixed


async def start_transfer(desk: Desk, mode: str, **extra: Any) -> tuple[dict[str, Any], datetime]:
    clicked = datetime.now()
    started = await desk.post("/api/desk/transfers", {"number_id": desk.number_id,
                                                      "mode": mode, **extra}, 201)
    return started, clicked


def report_ringing(mode: str, clicked: datetime, agency: sipp.Sipp, leg: dict[str, Any]) -> float:
    seconds = (invite_time(agency.messages) - clicked).total_seconds()
    rang = (datetime.fromisoformat(leg["rang_at"]) - datetime.fromisoformat(
        leg["requested_at"])).total_seconds()
    print(f"\n{mode}: transfer click -> agency INVITE {seconds * 1000:.0f} ms "
          f"(leg requested -> dialplan dialling {rang * 1000:.0f} ms)")
    assert 0 <= seconds < 3.0
    return seconds


def seconds_after(record_arrived: datetime, instant: str) -> float:
    return (datetime.fromisoformat(instant) - record_arrived).total_seconds()


async def arrived_at(line: Line, call_id: str) -> datetime:
    records = await line.database.run(lambda c: line.repository.call_records(c, limit=50))
    (record,) = [r for r in records if r.call_id == call_id]
    assert record.arrived_at is not None
    return record.arrived_at


async def timeline(desk: Desk, incident_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await desk.get(f"/api/incidents/{incident_id}/legs"))["legs"]
    return rows


async def dispatches_of(desk: Desk, incident_id: int, expected: list[tuple[str, bool]]
                        ) -> dict[str, Any]:
    """The incident (its API view) once its dispatches' states and "by phone" marks are
    ``expected``."""

    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = await desk.get(f"/api/incidents/{incident_id}")
        found = [(d["state"], d["by_phone"]) for d in body["dispatches"]]
        return body if found == expected else None

    return await eventually(f"incident {incident_id}'s dispatches {expected}", probe, 10)


async def test_blind_transfer_hands_the_caller_to_the_agency_and_records_by_phone(
    line: Line, settings: Settings, desk: Desk
) -> None:
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, hold_seconds=10) as (caller, agency):
        call = await talking_call(desk)
        incident_id = call["incident_id"]
        await line.incidents.change_status(incident_id, Status.VERIFIED, actor="op1")
        started, clicked = await start_transfer(desk, "blind", dispatch_by_phone=True)
        leg = started["leg"]
        assert (leg["mode"], leg["number"], leg["allowed_steps"]) == ("blind", AGENCY_NUMBER, [])
        assert started["dispatch"]["by_phone"] is True and started["dispatch_error"] is None
        assert started["dispatch"]["agency_code"] == "damkar"
        leg = await leg_of(desk, leg["leg_id"], answered_at_set=True)
        assert leg["phase"] == "handed_over"
        report_ringing("blind", clicked, agency, leg)
        # Caller and agency talk in one bridge; the operator's phone is free.
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", "PJSIP/carrier-out-")
        assert named(await channels_of(line, call["call_id"]), OPERATOR) == []
        assert (await agency.wait(within=30)).ok  # the agency hangs up after 10 s
        await caller.wait(within=10)
    ended = await leg_of(desk, leg["leg_id"], outcome="answered", ended_at_set=True)
    arrived = await arrived_at(line, call["call_id"])
    answered = seconds_after(arrived, ended["answered_at"])
    mixed = await check_recording(line, settings, caller_id, answered + 0.5, answered + 5)
    assert mixed >= answered + 9  # the recording reaches past the transfer, to the end
    (row,) = await timeline(desk, incident_id)
    assert (row["kind"], row["actor"], row["operator"], row["number"], row["outcome"]) == (
        "blind_transfer", "op1", OPERATOR, AGENCY_NUMBER, "answered")
    assert row["target"] == "Pemadam Kebakaran (Damkar) - Pos Damkar Purworejo Kota"
    assert row["ending"] == "Penelepon tersambung langsung ke instansi"
    assert 9 <= row["talk_seconds"] <= 12 and row["ring_seconds"] < 4
    detail = await desk.get(f"/api/incidents/{incident_id}")
    assert [(d["agency_code"], d["by_phone"]) for d in detail["dispatches"]] == [
        ("damkar", True)]


async def test_no_answer_agency_returns_the_caller_to_the_operator(
    line: Line, settings: Settings, desk: Desk
) -> None:
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, talk_seconds=25, answer=False,
                                 ring_seconds=0, audio=False, max_calls=None
                                 ) as (caller, agency):
        call = await talking_call(desk)
        started, clicked = await start_transfer(desk, "blind")
        leg = await leg_of(desk, started["leg"]["leg_id"], outcome="no_answer")
        report_ringing("blind, no answer", clicked, agency, leg)
        assert leg["answered_at"] is None and leg["ended_at"] is not None
        # Back with the operator who transferred: a new channel to op1001, in one bridge.
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", OPERATOR)
        back = datetime.now(UTC)  # they talk again from (at the latest) here
        assert (await desk.get("/api/desk"))["call"]["ended_at"] is None
        result = await caller.wait(within=40)
    assert result.ok, result.errors  # the caller hung up itself: never hung up on
    arrived = await arrived_at(line, call["call_id"])
    requested = seconds_after(arrived, leg["requested_at"])
    # The caller heard ringing while the agency rang (never silence).
    await check_recording(line, settings, caller_id, requested + 0.5, requested + 5)
    (row,) = await timeline(desk, call["incident_id"])
    assert (row["kind"], row["outcome"], row["talk_seconds"]) == (
        "blind_transfer", "no_answer", None)
    assert row["ending"] == "Tidak diangkat; penelepon kembali ke operator"
    assert 5 <= row["ring_seconds"] <= 8
    # The call's talk time is the operator's whole talk with the caller: before the transfer
    # and after the caller came back (it stopped at the transfer, 0-1 s), without the
    # seconds the agency rang.
    record = await ended_call(line, caller_id)
    assert record.ended_at is not None
    talked_back = (record.ended_at - back).total_seconds()
    assert talked_back > 4  # what the talk before the transfer (0-1 s) cannot reach

    async def talk_counted() -> int | None:
        found = await ended_call(line, caller_id)
        talk = found.talk_seconds
        return talk if talk is not None and talk >= talked_back - 1 else None

    talk = await eventually("the talk after the transfer counted", talk_counted, 10)
    assert talk <= (record.ended_at - arrived).total_seconds() - row["ring_seconds"] + 1
    # The reports' answers (migration 0051): one operator answered, once, with that talk;
    # the amended completion replaced the talk up to the transfer, added nothing to it.
    answers = await line.database.run(lambda c: c.fetch(
        "SELECT a.operator, a.talk_seconds, a.talk_before, c.answers_shared"
        " FROM call_answers a JOIN calls c USING (call_id) WHERE a.call_id = $1",
        call["call_id"]))
    assert [tuple(a) for a in answers] == [(OPERATOR, talk, 0, False)]


async def test_after_a_busy_agency_the_operator_can_transfer_again_attended(
    line: Line, settings: Settings, desk: Desk
) -> None:
    """A blind transfer to a busy agency rings the operator back (a Dial() in the dialplan,
    not the queue); the operator, with the caller again, tries once more, attended: the
    agency rings and the operator speaks to it. The Dial() must give the operator's channel
    the transfer feature as Queue() does: without it Asterisk accepted the Atxfer, dialled
    nothing and the leg stayed "ringing" (blocking any other transfer of the call).

    Both are dispatches by phone: the busy agency's is called off by the line (it stayed
    "Diberitahu", the incident dispatched on time, though the agency never heard of it), the
    one the agency answered stands."""
    caller_id = unique_caller("0816")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="1", talk_seconds=40, audio=True, continuous=True) as caller:
        call = await talking_call(desk)
        incident_id = call["incident_id"]
        await line.incidents.change_status(incident_id, Status.VERIFIED, actor="op1")
        async with sipp.callee(settings.carrier_sip_port, refuse=486, max_calls=1) as busy:
            started, _ = await start_transfer(desk, "blind", dispatch_by_phone=True)
            assert started["dispatch"]["state"] == "notified"
            first = await leg_of(desk, started["leg"]["leg_id"], outcome="busy")
            await bridged_together(line, call["call_id"], "PJSIP/carrier-0", OPERATOR)
            assert (await busy.wait(within=10)).ok
        unreached = await dispatches_of(desk, incident_id, [("cancelled", False)])
        # No agency on its way: verified again, its dispatch target counting.
        assert (unreached["incident"]["status"], unreached["incident"]["dispatched_at"]) == (
            "verified", None)
        event = unreached["timeline"][-2]
        assert (event["actor"], event["kind"], event["detail"]["phone_unanswered"]) == (
            "system", "dispatch", "busy")
        async with sipp.callee(settings.carrier_sip_port, ring_seconds=1, audio=True,
                               max_calls=1, hold_seconds=8) as agency:
            assert (await desk.get("/api/desk"))["call"]["state"] == "talking"
            started, _ = await start_transfer(desk, "attended", dispatch_by_phone=True)
            leg_id = started["leg"]["leg_id"]
            leg = await leg_of(desk, leg_id, phase="consulting")
            assert leg["allowed_steps"] == ["hand_over", "join", "cancel"]
            await desk.post(f"/api/desk/transfers/{leg_id}/steps", {"step": "hand_over"}, 200)
            await bridged_together(line, call["call_id"], "PJSIP/carrier-0",
                                   "PJSIP/carrier-out-")
            assert (await agency.wait(within=30)).ok
        await caller.wait(within=10)
    await leg_of(desk, leg_id, outcome="answered", ended_at_set=True)
    rows = await timeline(desk, call["incident_id"])
    assert [(r["leg_id"], r["kind"], r["outcome"]) for r in rows] == [
        (first["leg_id"], "blind_transfer", "busy"), (leg_id, "attended_transfer", "answered")]
    reached = await dispatches_of(desk, incident_id, [("cancelled", False), ("notified", True)])
    assert reached["incident"]["status"] == "dispatched"
    assert reached["incident"]["dispatched_at"] is not None


async def test_attended_transfer_operator_speaks_first_then_hands_over(
    line: Line, settings: Settings, desk: Desk
) -> None:
    """From here on the module's legs have five digits, as a site's legs soon have: Asterisk
    collects an Atxfer's extension digit by digit and stops as soon as no extension could
    match more, which an extension ending in '!' never can; [siaga112-consult] matched
    ``_X!``, so every leg from the tenth on was taken for its first digit and dialled
    nobody."""
    assert settings.database_owner_dsn is not None
    await fetch(settings.database_owner_dsn, "SELECT setval(pg_get_serial_sequence("
                "'call_legs', 'leg_id'), greatest(12344, (SELECT max(leg_id) FROM call_legs)))")
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, hold_seconds=12) as (caller, agency):
        call = await talking_call(desk)
        started, clicked = await start_transfer(desk, "attended")
        leg_id = started["leg"]["leg_id"]
        leg = await leg_of(desk, leg_id, phase="consulting")
        report_ringing("attended", clicked, agency, leg)
        assert leg["allowed_steps"] == ["hand_over", "join", "cancel"]
        # The operator speaks to the agency (through Asterisk's Local channel of the
        # Atxfer); the caller waits apart, on hold.
        chans = await channels_of(line, call["call_id"])
        (operator,) = named(chans, OPERATOR)
        (caller_channel,) = named(chans, "PJSIP/carrier-0")
        (consult,) = [c for c in named(chans, "Local/") if c.channel.endswith(";1")]
        assert [c.state for c in named(chans, "PJSIP/carrier-out-")] == ["Up"]
        assert operator.bridge_id == consult.bridge_id != caller_channel.bridge_id
        await asyncio.sleep(2)
        handed = await desk.post(f"/api/desk/transfers/{leg_id}/steps",
                                 {"step": "hand_over"}, 200)
        assert handed["phase"] == "handed_over" and handed["allowed_steps"] == []
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", "PJSIP/carrier-out-")
        await eventually("the operator's phone free", lambda: _no_operator(line, call), 10)
        assert (await agency.wait(within=30)).ok
        await caller.wait(within=10)
    ended = await leg_of(desk, leg_id, outcome="answered", ended_at_set=True)
    arrived = await arrived_at(line, call["call_id"])
    answered = seconds_after(arrived, ended["answered_at"])
    handed_at = seconds_after(arrived, ended["steps"][0]["at"])
    # On hold the caller heard the hold prompt; after the hand-over, the agency.
    await check_recording(line, settings, caller_id, answered + 0.2, handed_at - 0.2)
    mixed = await check_recording(line, settings, caller_id, handed_at + 0.5, answered + 6.5)
    assert mixed >= answered + 11
    # The operator's talk with the agency, which the caller's recording cannot hear (they
    # wait on hold), is a recording of the call of its own: from the agency's answer to its
    # hang-up, loud while the operator spoke to it.
    spoken = await consult_recording(line, call["call_id"], leg_id)
    assert spoken.duration_seconds is not None
    agency_seconds = seconds_after(arrived, ended["ended_at"]) - answered
    assert abs(spoken.duration_seconds - agency_seconds) <= 1.5, (spoken, agency_seconds)
    talk = audio(settings, spoken)
    assert loudness(talk, 0.2, handed_at - answered - 0.2) > LOUD_DBFS
    (row,) = await timeline(desk, call["incident_id"])
    assert (row["kind"], row["outcome"], [s["step"] for s in row["steps"]]) == (
        "attended_transfer", "answered", ["hand_over"])
    assert row["ending"] == "Diserahkan ke instansi setelah operator bicara"


@pytest.mark.parametrize(("mode", "step"), [("attended", "hand_over"), ("conference", "leave")])
async def test_a_caller_who_hung_up_is_not_recorded_as_handed_over(
    line: Line, settings: Settings, desk: Desk, mode: str, step: str
) -> None:
    """The caller hangs up while the operator speaks to the agency, or in the conference:
    Asterisk leaves the operator and the agency talking. "Serahkan" or "Keluar" is refused:
    it was accepted and the timeline said the caller had been handed over to the agency, or
    stayed with it."""
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, hold_seconds=8) as (caller, agency):
        call = await talking_call(desk)
        started, _ = await start_transfer(desk, mode)
        leg_id = started["leg"]["leg_id"]
        steps = await leg_of(desk, leg_id, phase="consulting" if mode == "attended"
                             else "conference")
        (caller_channel,) = named(await channels_of(line, call["call_id"]), "PJSIP/carrier-0")
        await line.listener.send_action({"Action": "Hangup", "Channel": caller_channel.channel})
        await bridged_together(line, call["call_id"], OPERATOR, "PJSIP/carrier-out-")
        refused = await desk.post(f"/api/desk/transfers/{leg_id}/steps", {"step": step}, 409)
        assert "Penelepon sudah menutup telepon" in refused["error"]["message"]
        assert (await agency.wait(within=30)).ok
        await caller.wait(within=10)
    ended = await leg_of(desk, leg_id, outcome="answered", ended_at_set=True)
    assert ended["steps"] == steps["steps"]  # nothing more than the conference's join
    (row,) = await timeline(desk, call["incident_id"])
    assert row["ending"] == (
        "Operator bicara dengan instansi; tidak ada serah terima tercatat" if mode == "attended"
        else "Konferensi tiga pihak")


async def test_an_operator_who_hangs_up_after_the_agency_answered_hands_the_caller_over(
    line: Line, settings: Settings, desk: Desk
) -> None:
    """The operator speaks to the agency and simply hangs up: Asterisk joins the caller and
    the agency (AttendedTransfer). The leg stayed "consulting" and the timeline said only
    "Tersambung"; it is handed over, as "Serahkan" records it."""
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, hold_seconds=8) as (caller, agency):
        call = await talking_call(desk)
        started, _ = await start_transfer(desk, "attended")
        leg_id = started["leg"]["leg_id"]
        await leg_of(desk, leg_id, phase="consulting")
        (operator,) = named(await channels_of(line, call["call_id"]), OPERATOR)
        await line.listener.send_action({"Action": "Hangup", "Channel": operator.channel})
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", "PJSIP/carrier-out-")
        leg = await leg_of(desk, leg_id, phase="handed_over")
        assert [(s["step"], s["actor"]) for s in leg["steps"]] == [("hand_over", "op1")]
        assert (await agency.wait(within=30)).ok
        await caller.wait(within=10)
    await leg_of(desk, leg_id, outcome="answered", ended_at_set=True)
    (row,) = await timeline(desk, call["incident_id"])
    assert row["ending"] == "Diserahkan ke instansi setelah operator bicara"


async def test_a_caller_left_to_asterisks_recall_goes_back_to_the_queues(
    line: Line, settings: Settings, desk: Desk, phones: sipp.Sipp
) -> None:
    """The operator hangs up while the agency still rings, and their phone is gone when
    Asterisk rings it back: Asterisk dials the agency again, rings the phone again ... and
    hung the caller up about 100 s later, never having reached a human. The agency's second
    dial of the leg is that loop: the line sends the caller into the queues, where an
    operator answers."""
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, talk_seconds=50, answer=False,
                                 ring_seconds=0, audio=False, max_calls=None
                                 ) as (caller, _agency):
        call = await talking_call(desk)
        started, _ = await start_transfer(desk, "attended")
        leg_id = started["leg"]["leg_id"]
        await leg_of(desk, leg_id, rang_at_set=True)
        (operator,) = named(await channels_of(line, call["call_id"]), OPERATOR)
        await line.listener.send_action({"Action": "Hangup", "Channel": operator.channel})
        await phones.stop()  # the recall cannot reach the operator's phone
        try:
            await leg_of(desk, leg_id, outcome="no_answer")

            async def queued() -> bool | None:
                found = named(await channels_of(line, call["call_id"]), "PJSIP/carrier-0")
                return (len(found) == 1 and found[0].application == "Queue"
                        and not found[0].bridge_id) or None

            await eventually("the caller waiting in the queues again", queued, 40)
        finally:
            await phones.start()
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", OPERATOR)
        assert (await caller.wait(within=60)).ok  # the caller hung up itself


@pytest.mark.parametrize("mode", ["attended", "conference"])
async def test_an_agency_that_hangs_up_first_leaves_the_operator_with_the_caller(
    line: Line, settings: Settings, desk: Desk, mode: str
) -> None:
    """The agency hangs up during the consult, or in the conference: the operator is with
    the caller again and may transfer once more. The consult's timeline said "Tersambung",
    read as the caller put through to the agency; it says the operator spoke to it."""
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, hold_seconds=3) as (caller, agency):
        call = await talking_call(desk)
        started, _ = await start_transfer(desk, mode)
        leg_id = started["leg"]["leg_id"]
        await leg_of(desk, leg_id, phase="consulting" if mode == "attended" else "conference")
        assert (await agency.wait(within=30)).ok
        await leg_of(desk, leg_id, outcome="answered", ended_at_set=True)
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", OPERATOR)
        transfers = await desk.get("/api/desk/transfers")
        assert transfers["talking"] and transfers["call_id"] == call["call_id"]
        (caller_channel,) = named(await channels_of(line, call["call_id"]), "PJSIP/carrier-0")
        await line.listener.send_action({"Action": "Hangup", "Channel": caller_channel.channel})
        await caller.wait(within=10)
    (row,) = await timeline(desk, call["incident_id"])
    assert row["ending"] == ("Operator bicara dengan instansi; tidak ada serah terima tercatat"
                             if mode == "attended" else "Konferensi tiga pihak")
    assert 2 <= row["talk_seconds"] <= 5


async def test_an_operator_who_hangs_up_while_the_agency_rings_hands_the_caller_over(
    line: Line, settings: Settings, desk: Desk
) -> None:
    """The operator hangs up while the agency still rings, and the agency then answers:
    Asterisk joins the caller to it. The leg ended "Tersambung" with no hand-over on the
    timeline or in the audit; it is handed over by the operator's hang-up, dated then."""
    caller_id = unique_caller("0816")
    async with caller_and_agency(settings, caller_id, ring_seconds=3, hold_seconds=6
                                 ) as (caller, agency):
        call = await talking_call(desk)
        started, _ = await start_transfer(desk, "attended")
        leg_id = started["leg"]["leg_id"]
        await leg_of(desk, leg_id, rang_at_set=True)
        (operator,) = named(await channels_of(line, call["call_id"]), OPERATOR)
        hung_up = datetime.now(UTC)
        await line.listener.send_action({"Action": "Hangup", "Channel": operator.channel})
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", "PJSIP/carrier-out-")
        leg = await leg_of(desk, leg_id, phase="handed_over")
        assert [(s["step"], s["actor"]) for s in leg["steps"]] == [("hand_over", "op1")]
        handed = datetime.fromisoformat(leg["steps"][0]["at"])
        assert leg["answered_at"] is not None
        assert hung_up - timedelta(seconds=1) < handed < datetime.fromisoformat(
            leg["answered_at"])
        assert (await agency.wait(within=30)).ok
        await caller.wait(within=10)
    await leg_of(desk, leg_id, outcome="answered", ended_at_set=True)
    (row,) = await timeline(desk, call["incident_id"])
    assert row["ending"] == ("Diserahkan ke instansi: operator menutup telepon saat instansi "
                             "masih berdering, instansi lalu mengangkat")
    audited = await line.database.run(lambda c: c.fetch(
        "SELECT actor, detail ->> 'while_ringing' AS ringing FROM audit_log"
        " WHERE action = 'transfer.hand_over' AND object_id = $1", call["call_id"]))
    assert [(r["actor"], r["ringing"]) for r in audited] == [("op1", "true")]


async def wraps_up_from_the_leave(line: Line, left_at: datetime, waiting: str) -> None:
    """The operator left a three-way call at ``left_at`` while caller ``waiting`` waited for
    them: the wallboard has them in wrap-up from the leave, and Asterisk offers them that
    caller only once the wrap-up is over (app_queue's last call is a whole second)."""

    def on_board() -> Any:
        return next(op for op in line.wallboard.snapshot().board.operators
                    if op.operator == OPERATOR)

    async def wrapping_up() -> bool | None:
        view = on_board()
        return (view.state is OperatorState.WRAPUP
                and abs((view.since - left_at).total_seconds()) < 1) or None

    await eventually("the operator in wrap-up from the leave", wrapping_up, 3)
    members = await line.listener.send_list_action({"Action": "QueueStatus",
                                                    "Member": OPERATOR})
    # app_queue's own record: the operator's last call ended at the leave, in every queue
    # (shared_lastcall), not at the caller's end still to come.
    last_calls = [int(m.get("LastCall")) for m in members if m.get("Event") == "QueueMember"]
    assert last_calls and all(abs(last - left_at.timestamp()) < 2 for last in last_calls), (
        last_calls, left_at)

    async def rung() -> datetime | None:
        return await line.database.run(lambda c: c.fetchval(
            "SELECT e.at FROM call_events e JOIN calls USING (call_id)"
            " WHERE caller_number = $1 AND e.kind = 'operator_rung'", waiting))

    rung_at = await eventually("the waiting caller offered to the operator", rung,
                               WRAPUP_SECONDS + 6)
    offered = (rung_at - left_at).total_seconds()
    print(f"\nwaiting caller offered {offered:.1f} s after the leave "
          f"(wrap-up {WRAPUP_SECONDS} s)")
    assert offered >= WRAPUP_SECONDS - 1


async def desk_call_ended(desk: Desk, call_id: str) -> None:
    """The operator's desk has ``call_id`` ended once they left its three-way call (the
    caller still talks with the agency), and offers no transfer of it."""

    async def ended() -> bool | None:
        call = (await desk.get("/api/desk"))["call"]
        transfers = await desk.get("/api/desk/transfers")
        return (call["call_id"] == call_id and call["state"] == "ended"
                and not transfers["talking"]) or None

    await eventually("the call ended on the desk", ended, 5)


async def _no_operator(line: Line, call: dict[str, Any]) -> bool | None:
    return named(await channels_of(line, call["call_id"]), OPERATOR) == [] or None


@pytest.mark.parametrize("mode", ["attended", "conference"])
async def test_three_way_call_the_operator_can_leave(
    line: Line, settings: Settings, desk: Desk, mode: str
) -> None:
    """Attended then "Gabungkan", or a conference the line joins at the agency's answer: the
    operator, the caller and the agency in one bridge; the operator leaves, the other two talk
    on. From the attended transfer they leave with "Keluar"; from the conference by hanging
    up their phone (or their browser's page reloading), which is leaving it too: that left no
    "Keluar" on the timeline, nor any word that the operator had gone.

    With "Keluar", a second caller waits for the operator meanwhile and the answering queue
    has a wrap-up: Asterisk offers them that caller only once the wrap-up from the leave is
    over (app_queue ends the operator's call when their phone goes idle, not at the caller's
    end), and the wallboard shows them in wrap-up from the leave, as Asterisk holds them. It
    had them "Siap" until the caller's end, and in a wrap-up after it nobody holds them to."""
    hang_up = mode == "conference"
    caller_id, next_id = unique_caller("0816"), unique_caller("0816")
    async with contextlib.AsyncExitStack() as stack:
        if not hang_up:
            await stack.enter_async_context(queue_wrapup(desk, LEFT_QUEUE, WRAPUP_SECONDS))
        caller, agency = await stack.enter_async_context(
            caller_and_agency(settings, caller_id, hold_seconds=14))
        if not hang_up:
            # The next caller, through the same IVR a few seconds behind: in the queue while
            # the operator is on the first call.
            await eventually("the first caller 3 s into the IVR", lambda: line.database.run(
                lambda c: c.fetchval("SELECT true FROM calls WHERE caller_number = $1"
                                     " AND arrived_at < now() - interval '3 s'", caller_id)),
                             20)
            following = await stack.enter_async_context(sipp.caller(
                settings.sip_host, settings.sip_port, "112", caller_id=next_id, dtmf="1",
                talk_seconds=28))  # the IVR, the wait, and a few seconds with the operator
        call = await talking_call(desk)
        started, clicked = await start_transfer(desk, mode)
        leg_id = started["leg"]["leg_id"]
        leg = await leg_of(desk, leg_id, answered_at_set=True)
        report_ringing(mode, clicked, agency, leg)
        if mode == "attended":
            await desk.post(f"/api/desk/transfers/{leg_id}/steps", {"step": "join"}, 200)
        leg = await leg_of(desk, leg_id, phase="conference")
        assert leg["allowed_steps"] == ["leave"]
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", OPERATOR,
                               "PJSIP/carrier-out-")
        await asyncio.sleep(1)
        if hang_up:
            (operator,) = named(await channels_of(line, call["call_id"]), OPERATOR)
            await line.listener.send_action({"Action": "Hangup", "Channel": operator.channel})
            await leg_of(desk, leg_id, phase="handed_over")
            await desk_call_ended(desk, call["call_id"])
        else:
            await eventually("the next caller waiting", lambda: line.database.run(
                lambda c: c.fetchval("SELECT true FROM calls WHERE caller_number = $1"
                                     " AND queue_joined_at IS NOT NULL", next_id)), 30)
            left = await desk.post(f"/api/desk/transfers/{leg_id}/steps", {"step": "leave"},
                                   200)
            left_at = datetime.fromisoformat(left["steps"][-1]["at"])
            await desk_call_ended(desk, call["call_id"])
            await wraps_up_from_the_leave(line, left_at, next_id)
        await bridged_together(line, call["call_id"], "PJSIP/carrier-0", "PJSIP/carrier-out-")
        await eventually("the operator gone", lambda: _no_operator(line, call), 10)
        assert (await agency.wait(within=30)).ok
        await caller.wait(within=10)
        if not hang_up:
            assert (await following.wait(within=20)).ok
    # The incident's timeline, not the desk's: the desk has the operator's next call now.

    async def ended_leg() -> dict[str, Any] | None:
        rows = await timeline(desk, call["incident_id"])
        return next((r for r in rows if r["leg_id"] == leg_id and r["outcome"] == "answered"
                     and r["ended_at"] is not None), None)

    ended = await eventually(f"leg {leg_id} ended", ended_leg, 30)
    arrived = await arrived_at(line, call["call_id"])
    answered = seconds_after(arrived, ended["answered_at"])
    joined = seconds_after(arrived, ended["steps"][0]["at"])
    mixed = await check_recording(line, settings, caller_id, joined + 0.5, answered + 6.5)
    assert mixed >= answered + 13
    (row,) = await timeline(desk, call["incident_id"])
    kind = "conference" if mode == "conference" else "attended_transfer"
    assert (row["kind"], row["outcome"], [s["step"] for s in row["steps"]]) == (
        kind, "answered", ["join", "leave"])
    assert row["ending"] == ("Konferensi tiga pihak; operator keluar, penelepon tetap dengan "
                             "instansi")
    assert 13 <= row["talk_seconds"] <= 16
    # The operator's own talk ended when they left, not with the call as Asterisk's queue
    # reports it (AgentComplete at the caller's hang-up): reports and wrap-up start there.
    await eventually("the queue's completion recorded", lambda: line.database.run(
        lambda c: c.fetchval("SELECT true FROM call_events WHERE call_id = $1"
                             " AND kind = 'operator_completed'", call["call_id"])), 10)
    talk = await line.database.run(lambda c: c.fetchrow(
        "SELECT c.talk_seconds, c.completed_at, c.ended_by, c.ended_at, s.at AS left_at,"
        "       round(date_part('epoch', s.at - c.answered_at))::integer AS until_left"
        " FROM calls c JOIN call_legs l USING (call_id) JOIN transfer_steps s USING (leg_id)"
        " WHERE c.call_id = $1 AND s.step = 'leave'", call["call_id"]))
    assert talk is not None
    assert (talk["completed_at"], talk["talk_seconds"], talk["ended_by"]) == (
        talk["left_at"], talk["until_left"], "agent")
    assert talk["ended_at"] > talk["left_at"] + timedelta(seconds=5)
    # The wallboard's live talk figures follow the leave as the records do: the same as
    # counters seeded from the database now (they had Asterisk's talk to the call's end).
    calendar = line.reports.calendar

    async def talk_as_recorded() -> bool | None:
        now = datetime.now(UTC)
        day = calendar.slot_for(now).day
        recorded = ShiftCounters(calendar)
        recorded.seed(day, await line.reports.live_calls(day))
        live, reference = line.wallboard.snapshot().counters, recorded.live(now, {})
        assert reference is not None
        return (live is not None and (live.day_figures.answered, live.day_figures.mean_talk)
                == (reference.day_figures.answered, reference.day_figures.mean_talk)) or None

    await eventually("the wallboard's talk as recorded", talk_as_recorded, 10)
    audited = await line.database.run(lambda c: c.fetch(
        "SELECT actor, detail ->> 'operator_hung_up' AS hung_up FROM audit_log"
        " WHERE action = 'transfer.leave' AND object_id = $1", call["call_id"]))
    assert [(r["actor"], r["hung_up"]) for r in audited] == [
        ("op1", "true" if hang_up else None)]


async def test_incident_page_shows_the_legs(line: Line, desk: Desk) -> None:
    """The incident page lists the legs as its API does (the module's earlier calls)."""
    rows = await line.database.run(lambda c: c.fetch(
        "SELECT DISTINCT incident_id FROM call_legs WHERE incident_id IS NOT NULL"))
    assert rows, "run with the module's transfer tests"
    assert line.web.url is not None
    async with aiohttp.ClientSession(base_url=line.web.url,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        browser = Browser(http)
        assert (await browser.log_in("op1", PASSWORD)).status == 303
        for row in rows:
            legs = await timeline(desk, row["incident_id"])
            status, html, _ = await browser.get(f"/console/incidents/{row['incident_id']}")
            assert status == 200, html[:400]
            for leg in legs:
                assert f'data-leg="{leg["leg_id"]}"' in html
                assert leg["ending"] in html

    async with aiohttp.ClientSession(base_url=line.web.url,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        admin = Browser(http)
        assert (await admin.log_in("admin1", PASSWORD)).status == 303
        kind, message = await admin.flash(await admin.post("/console/admin/agency-numbers", {
            "agency": "ambulans", "label": "PSC 119 Kota", "number": "0275 119 119",
            "active": "1"}))
        assert (kind, message) == ("ok", "Nomor PSC 119 Kota (0275119119) disimpan.")
        status, html, _ = await admin.get("/console/admin/agency-numbers")
        assert status == 200 and "Pos Damkar Purworejo Kota" in html and "0275119119" in html
    numbers = (await desk.get("/api/agency-numbers"))["numbers"]
    assert {n["number"] for n in numbers} == {AGENCY_NUMBER, "0275119119"}



async def test_the_consult_context_dials_only_the_leg_the_line_allowed(
    line: Line, settings: Settings
) -> None:
    """The operator's channel has the attended-transfer feature (Queue option t), so a phone
    could type the atxfer code and a leg of its own into [siaga112-consult]. It dials only the
    leg the line allowed on that channel, to that leg's number (SIAGA112_CONSULT, set by
    Setvar before Atxfer): with nothing allowed, another leg allowed, or a leg without a
    number, nobody is dialled; the leg allowed is (the control that this test would see a
    dial)."""
    forged = "999999"
    ami = RawAmi("127.0.0.1", settings.ami_port)
    response = await ami.login(settings.ami_username, ami_secret(settings))
    assert response["Response"] == "Success", response

    async def consult(allowed: str | None) -> None:
        start = len(ami.messages)
        # The originating side waits longer than the agency holds (1 s), so the agency always
        # hangs up first: a BYE from our side during sipp's pause aborts its scenario.
        headers = {"Channel": f"Local/{forged}@siaga112-consult", "Application": "Wait",
                   "Data": "5", "Async": "true"}
        if allowed is not None:
            headers["Variable"] = f"SIAGA112_CONSULT={allowed}"
        reply = await ami.action("Originate", **headers)
        assert reply["Response"] == "Success", reply
        await ami.wait_for(lambda m: m.get("Event") == "Hangup" and m.get(
            "Channel", "").startswith(f"Local/{forged}@siaga112-consult-"), 15, start)

    try:
        async with sipp.callee(settings.carrier_sip_port, hold_seconds=1, max_calls=1,
                               trace_messages=True) as agency:
            await consult(None)
            await consult(f"1*{AGENCY_NUMBER}")  # another leg allowed
            await consult(f"{forged}")  # a leg without its number
            assert "INVITE sip:" not in agency.messages
            await consult(f"{forged}*0811111111")
            assert (await agency.wait(within=20)).ok
            assert agency.messages.count("INVITE sip:0811111111@") == 1
    finally:
        await ami.close()
