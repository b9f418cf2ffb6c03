"""Call-backs of dropped callers end to end, in the real lab: a caller who gives up in the queue
(sipp, emergency then fire, nobody in the queues) is on the worklist; an operator at a desk calls
them back through the API: the line's Originate rings the operator's phone (the lab's operator
UAS answers), then the dialplan records and dials the caller through the carrier (a sipp callee
on carrier_sip_port answers), presenting the line's number. The call-back is a leg of the
original call and its incident, recorded, and the caller leaves the list. A withheld caller is
listed as not possible; a caller who rang again and reached an operator leaves the list. The
wallboard's count and oldest entry match the list.

Its own lab instance and ports, so it can run beside the other end-to-end modules.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import Line
from telephony.callbacks.model import CALLER_RANG, CALLER_RANG_TEXT, how_it_went
from telephony.callbacks.service import CallbackConfig, caller_entries
from telephony.calls.store import LegRepository
from telephony.desks.operators import OperatorDesk
from telephony.desks.service import assign_desk
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ended_call, unique_caller
from tests.support.net import own_lab
from tests.support.polling import eventually
from tests.support.web import Browser

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("callbacks-test"),
    lab_operators=3,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    recordings_settle_seconds=1.0,
    incident_upkeep_seconds=0.5,
    callback_ring_seconds=15,
    # A dead desk phone's call ends this soon (30 s on a site): the shortest the line allows.
    # The lab's own sipp phones keep none (they send no media); a registering phone has it.
    desk_phone_rtp_timeout_seconds=5,
    http_port=0,  # any free port: Line.web says which
)
OPERATOR = "PJSIP/op1001"  # the desk that calls back
ANSWERING = "PJSIP/op1002"  # in the fire queue for the caller who rings again
DESK_PHONE = "PJSIP/op2001"  # a registering desk phone (the views), which dies mid-call
DESK_PHONE_HOST = "127.0.0.2"  # where it registers from: not the carrier's address
PASSWORD = "kata-sandi-panggilan-balik"


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def joining_operators() -> Sequence[str]:
    return (ANSWERING, DESK_PHONE)


@pytest.fixture(scope="module")
def phone_options() -> Mapping[str, Any]:
    """The operator phones answer at once and talk (RTP): a call-back's recording then holds
    the operator's voice."""
    return {"audio": True}


@pytest.fixture
async def http(line: Line) -> AsyncIterator[aiohttp.ClientSession]:
    assert line.web.url is not None
    async with aiohttp.ClientSession(base_url=line.web.url,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def account(line: Line, http: aiohttp.ClientSession, username: str, role: str, *,
                  desk: str | None = None) -> dict[str, str]:
    """An account (at ``desk``, if given), logged in through the API: bearer headers. Tests of
    the module share its database, so an account made by an earlier test is reused."""
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    if username not in {a.username for a in await accounts.accounts()}:
        await accounts.create(username, role, PASSWORD, actor="test")
        if desk is not None:
            await assign_desk(line.database, load_menu(line.settings.menu_file), username,
                              desk, {"fire": 5})
    response = await http.post("/api/session", json={"username": username,
                                                     "password": PASSWORD})
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def json_of(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, (response.status, await response.text())
    return await response.json()


async def give_up_in_the_queue(line: Line, settings: Settings, caller_id: str) -> str:
    """A real call: emergency, then fire, then hanging up while queued (nobody is logged in,
    so it waits in all-operators); returns its id once the line has recorded it as
    abandoned."""
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="12", talk_seconds=8) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.queue, record.ivr_category, record.ivr_skill) == (
        "abandoned", "all-operators", "emergency", "fire"), record
    return record.call_id


async def entries(http: aiohttp.ClientSession, headers: dict[str, str]) -> dict[str, Any]:
    return dict(await json_of(await http.get("/api/callbacks", headers=headers)))


def entry_of(listed: dict[str, Any], call_id: str) -> dict[str, Any] | None:
    return next((e for e in listed["entries"]
                 if call_id in [c["call_id"] for c in e["calls"]]), None)


async def listed(http: aiohttp.ClientSession, headers: dict[str, str], call_id: str
                 ) -> dict[str, Any]:
    """The call's entry, once the list shows it (readers share a reading a moment old)."""

    async def probe() -> dict[str, Any] | None:
        return entry_of(await entries(http, headers), call_id)

    return await eventually(f"{call_id} on the worklist", probe, within=10)


async def gone(http: aiohttp.ClientSession, headers: dict[str, str], call_id: str) -> None:
    """Wait until the list no longer shows the call."""

    async def probe() -> bool | None:
        return True if entry_of(await entries(http, headers), call_id) is None else None

    await eventually(f"{call_id} off the worklist", probe, within=10)


async def wallboard_matches(http: aiohttp.ClientSession, supervisor: dict[str, str]) -> None:
    """The wallboard's call-back tile says what the list says (it refreshes on call facts)."""

    async def same() -> dict[str, Any] | None:
        listed = await entries(http, supervisor)
        board = (await json_of(await http.get("/api/wallboard", headers=supervisor)))
        tile = board["callbacks"]
        if tile is None or (tile["waiting"], tile["not_possible"], tile["oldest_at"]) != (
                listed["waiting"], listed["not_possible"], listed["oldest_at"]):
            return None
        return dict(tile)

    tile = await eventually("the wallboard showing the call-back list", same, within=20)
    if tile["waiting"]:
        assert tile["oldest_seconds"] is not None and tile["oldest_seconds"] > 0


async def test_an_abandoned_caller_is_called_back_from_the_worklist(
    line: Line, settings: Settings, http: aiohttp.ClientSession
) -> None:
    caller_id = unique_caller("0817")
    call_id = await give_up_in_the_queue(line, settings, caller_id)
    operator = await account(line, http, "op1001", "operator", desk=OPERATOR)
    supervisor = await account(line, http, "spv1", "supervisor")

    entry = await listed(http, operator, call_id)
    assert (entry["reason"], entry["possible"], entry["number"]) == (
        "abandoned", True, caller_id)
    await wallboard_matches(http, supervisor)
    # An operator opens an incident for the call before calling back.
    incident = await json_of(await http.post("/api/incidents", headers=operator,
                                             json={"call_id": call_id}), 201)
    incident_id = incident["incident_id"]

    # The caller's phone, on the carrier side, answers, talks and hangs up after 8 s (a
    # call-back over within a few seconds of the answer reached nobody: the caller stays on
    # the list, telephony.callbacks.model.MIN_TALK).
    async with sipp.callee(settings.carrier_sip_port, hold_seconds=8, max_calls=1,
                           trace_messages=True) as phone:
        leg = await json_of(await http.post(f"/api/callbacks/{call_id}/call",
                                            headers=operator), 202)
        result = await phone.wait(within=60)
        messages = phone.messages
    assert result.ok, result.errors
    assert (leg["call_id"], leg["incident_id"], leg["operator"], leg["actor"]) == (
        call_id, incident_id, OPERATOR, "op1001")
    # Through the carrier, to the caller's own number, presenting the line's number.
    invite = messages[messages.index(f"INVITE sip:{caller_id}@"):]
    assert f"INVITE sip:{caller_id}@127.0.0.1:{settings.carrier_sip_port}" in invite
    assert re.search(rf"From: <sip:{settings.survey_caller_id}@", invite), invite[:600]

    async def ended_leg() -> dict[str, Any] | None:
        found = entry_of(await entries(http, operator), call_id)
        assert found is None or found["ringing"] or found["attempts"], found
        detail = await json_of(await http.get(f"/api/incidents/{incident_id}",
                                              headers=operator))
        callbacks = [r for r in detail["recordings"] if r["kind"] == "callback"]
        if found is None and callbacks and callbacks[0]["state"] == "done":
            return dict(callbacks[0])
        return None

    recording = await eventually("the call-back answered, ended and recorded", ended_leg,
                                 within=60)
    assert (recording["call_id"], recording["leg_id"]) == (call_id, leg["leg_id"])
    assert recording["duration_seconds"] > 2
    legs = await line.database.run(lambda c: c.fetch(
        "SELECT * FROM call_legs WHERE leg_id = $1", leg["leg_id"]))
    (row,) = legs
    assert (row["kind"], row["outcome"], row["incident_id"]) == (
        "callback", "answered", incident_id)
    assert row["rang_at"] is not None and row["answered_at"] is not None
    assert row["ended_at"] >= row["answered_at"]
    # The call-back is no emergency call: the tracker recorded only the caller's own call.
    records = await line.database.run(lambda c: line.repository.call_records(c, limit=100))
    assert [r.caller_number for r in records].count(caller_id) == 1
    assert not any(r.caller_number == settings.survey_caller_id for r in records)
    await wallboard_matches(http, supervisor)

    # The incident page lists the call-back under the call, with its outcome.
    browser = Browser(http)
    http.cookie_jar.clear()
    await json_of(await http.post("/api/session", json={"username": "op1001",
                                                        "password": PASSWORD}), 201)
    status, html, _ = await browser.get(f"/console/incidents/{incident_id}")
    assert status == 200
    assert f'data-leg-id="{leg["leg_id"]}"' in html and 'data-outcome="answered"' in html


async def test_a_withheld_caller_is_listed_as_not_possible(
    line: Line, settings: Settings, http: aiohttp.ClientSession
) -> None:
    call_id = await give_up_in_the_queue(line, settings, "anonymous")
    operator = await account(line, http, "op1001", "operator", desk=OPERATOR)
    supervisor = await account(line, http, "spv1", "supervisor")

    entry = await listed(http, operator, call_id)
    assert (entry["possible"], entry["number"], entry["caller_number"]) == (
        False, None, "anonymous")
    refused = await http.post(f"/api/callbacks/{call_id}/call", headers=operator)
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "callback_not_possible"
    legs = await line.database.run(lambda c: c.fetch(
        "SELECT * FROM call_legs WHERE call_id = $1", call_id))
    assert legs == []
    await wallboard_matches(http, supervisor)
    # A supervisor takes it off with a reason.
    closed = await json_of(await http.post(
        f"/api/callbacks/{call_id}/close", headers=supervisor,
        json={"reason": "other", "note": "Nomor disembunyikan;\ntidak bisa dilacak"}))
    assert closed["note"] == "Nomor disembunyikan; tidak bisa dilacak"
    assert entry_of(await entries(http, supervisor), call_id) is None  # a write reads afresh


async def test_a_caller_who_rang_again_and_was_answered_leaves_the_list(
    line: Line, settings: Settings, http: aiohttp.ClientSession
) -> None:
    caller_id = unique_caller("0817")
    call_id = await give_up_in_the_queue(line, settings, caller_id)
    supervisor = await account(line, http, "spv1", "supervisor")
    await listed(http, supervisor, call_id)

    # An operator takes the fire queue; the caller rings again (in another form of the same
    # number) and is answered.
    queues = await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_in(
        ANSWERING, {"fire": 5})
    assert "fire" in queues
    again = "+62" + caller_id[1:]
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=again,
                           dtmf="12", talk_seconds=12) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    record = await ended_call(line, again)
    assert (record.disposition, record.operator) == ("answered", ANSWERING)

    await gone(http, supervisor, call_id)
    await wallboard_matches(http, supervisor)


async def test_a_redial_given_up_once_the_first_call_was_answered_is_not_listed(
    line: Line, settings: Settings
) -> None:
    """The caller rings twice at once (a redial while the first call still waits, here the
    number in its other form): the first is answered, the second waits behind it in the
    queue and is given up. The caller reached an operator, and was listed for a call-back
    all the same: an answered call cleared only the calls that arrived before it."""
    queues = await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_in(
        ANSWERING, {"fire": 5})
    assert "fire" in queues
    first = unique_caller("0817")
    again = "+62" + first[1:]
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=first,
                           dtmf="12", talk_seconds=9) as answered:
        # The redial only once the first call is there: two sipp callers started together
        # reach Asterisk in either order on a loaded machine.
        await eventually("the first call recorded", lambda: line.database.run(
            lambda c: c.fetchval("SELECT call_id FROM calls WHERE caller_number = $1", first)),
            within=10, interval=0.05)
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=again,
                               dtmf="12", dtmf_delay=1.5, talk_seconds=5) as redial:
            assert (await redial.wait()).ok
        assert (await answered.wait()).ok
    talked, gave_up = await ended_call(line, first), await ended_call(line, again)
    assert (talked.disposition, talked.operator) == ("answered", ANSWERING)
    assert gave_up.disposition == "abandoned"
    rows = await line.database.run(lambda c: c.fetch(
        "SELECT call_id, caller_key, arrived_at, answered_at FROM calls "
        "WHERE call_id = ANY($1::text[]) ORDER BY arrived_at",
        [talked.call_id, gave_up.call_id]))
    assert [row["call_id"] for row in rows] == [talked.call_id, gave_up.call_id]
    # The redial arrived while the first call still waited, and one caller made both.
    assert rows[1]["arrived_at"] < rows[0]["answered_at"]
    key = rows[0]["caller_key"]
    assert key is not None and rows[1]["caller_key"] == key
    config = CallbackConfig.from_settings(settings)
    assert await line.database.run(lambda c: caller_entries(
        c, config, key=key, call_id=gave_up.call_id, now=datetime.now(UTC))) == []


async def test_a_call_back_is_called_off_when_its_caller_rings_again(
    line: Line, settings: Settings, http: aiohttp.ClientSession
) -> None:
    """The caller rings the line again while an operator's call-back to them still rings:
    their new call goes through the queue, and the call-back is called off at once,
    recorded as such. It rang on: the caller's phone, on an emergency call, answered it
    (call waiting), and two operators had one caller, or it was busy and read as a caller
    who could not be reached."""
    caller_id = unique_caller("0817")
    call_id = await give_up_in_the_queue(line, settings, caller_id)
    operator = await account(line, http, "op1001", "operator", desk=OPERATOR)
    await listed(http, operator, call_id)
    async with sipp.callee(settings.carrier_sip_port, ring_seconds=8, hold_seconds=4,
                           max_calls=1, timeout=30):
        leg = await json_of(await http.post(f"/api/callbacks/{call_id}/call",
                                            headers=operator), 202)

        async def row() -> Any:
            return await line.database.run(lambda c: c.fetchrow(
                "SELECT * FROM call_legs WHERE leg_id = $1", leg["leg_id"]))

        async def dialling() -> Any:
            found = await row()
            return found if found["rang_at"] is not None else None

        await eventually("the call-back ringing the caller", dialling, within=10)
        async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                               caller_id=caller_id, dtmf="12", talk_seconds=4) as again:

            async def called_off() -> Any:
                found = await row()
                return found if found["ended_at"] is not None else None

            ended = await eventually("the call-back called off", called_off, within=6)
            assert (await again.wait()).ok
    assert (ended["outcome"], ended["status"], ended["answered_at"]) == (
        "cancelled", CALLER_RANG, None)
    recorded = await line.database.run(lambda c: LegRepository().leg(c, leg["leg_id"]))
    assert recorded is not None and recorded.answered_at is None  # never answered after all
    assert how_it_went(recorded, now=datetime.now(UTC),
                       ring_limit=CallbackConfig.from_settings(settings).ring_limit
                       ) == CALLER_RANG_TEXT


@pytest.mark.parametrize("exten", [
    "1-1790000000.1-0812345678&PJSIP/op1002",  # a second dial target
    "1-1790000000.1-0812345678,1,tT",  # Dial() options
    "1-1790000000.1-0812@other-endpoint",  # another endpoint
    "1-../../x-0812345678",  # a recording name
    "1-1790000000.1-0812345678-9",
])
async def test_the_dialplan_refuses_an_extension_it_did_not_expect(
    line: Line, settings: Settings, lab: Lab, exten: str
) -> None:
    """The line builds the extension from checked values; the dialplan checks it again and
    hangs up on anything else, dialling and recording nothing."""
    before = set(lab.monitor_dir.glob("*callback*"))
    ended: list[Mapping[str, Any]] = []
    line.listener.subscribe("Hangup", lambda event: ended.append(event)
                            if event.get("Exten") == exten else None)
    async with sipp.callee(settings.carrier_sip_port, trace_messages=True) as phone:
        await line.listener.send_action({
            "Action": "Originate", "Channel": OPERATOR, "Context": "siaga112-callback",
            "Exten": exten, "Priority": "1", "Timeout": "10000", "Async": "true"})

        async def hung_up() -> Mapping[str, Any] | None:
            # The operator's phone answered at once, and the dialplan hung up on it.
            return ended[0] if ended else None

        hangup = await eventually("the operator's channel hung up", hung_up, within=15)
        messages = phone.messages
    assert str(hangup["Channel"]).startswith(OPERATOR)
    assert "INVITE" not in messages
    assert set(lab.monitor_dir.glob("*callback*")) == before


async def test_the_dialplan_calls_back_a_cluster_nodes_call(
    line: Line, settings: Settings, lab: Lab
) -> None:
    """A call taken on a cluster node has its node's name in its id (``node1-<epoch>.<seq>``,
    with a "-" of its own); a call-back of it, placed by any node, must still dial the caller
    and record under that id, not hang up on the operator who answered."""
    call_id, leg_id, number = "node1-1790000000.7", 987654321, unique_caller("0813")
    recording = lab.monitor_dir / f"{call_id}-callback{leg_id}.wav"
    try:
        async with sipp.callee(settings.carrier_sip_port, hold_seconds=2, max_calls=1,
                               trace_messages=True) as phone:
            await line.listener.send_action({
                "Action": "Originate", "Channel": OPERATOR, "Context": "siaga112-callback",
                "Exten": f"{leg_id}-{call_id}-{number}", "Priority": "1",
                "Timeout": "10000", "Async": "true"})
            result = await phone.wait(within=30)
            messages = phone.messages
        assert result.ok, result.errors
        assert f"INVITE sip:{number}@127.0.0.1:{settings.carrier_sip_port}" in messages

        async def recorded() -> bool | None:
            return True if recording.exists() else None

        await eventually("the call-back's recording under the node's call id", recorded,
                         within=10)
    finally:
        recording.unlink(missing_ok=True)


async def test_a_busy_caller_is_tried_again_and_leaves_no_recording_to_quarantine(
    line: Line, settings: Settings, http: aiohttp.ClientSession, lab: Lab
) -> None:
    """The caller's phone is busy (refused at once): the attempt is listed as "Sibuk", the
    caller stays on the list and the operator is free to try again. MixMonitor started
    before the dial left a file of a few milliseconds, often with no audio at all, which the
    recordings worker quarantined as failed (the quarantine alert fired for busy callers an
    operator tried), or stored as a recording of nothing. Recording starts at the caller's
    answer: the next attempt, answered, is recorded; the busy one has no file and no
    recording row. That one is cut by the caller's network (their carrier's BYE says a
    network cause): the caller comes back on the list, as a dropped call does, the attempt
    saying why."""
    caller_id = unique_caller("0817")
    call_id = await give_up_in_the_queue(line, settings, caller_id)
    operator = await account(line, http, "op1001", "operator", desk=OPERATOR)
    await listed(http, operator, call_id)
    legs = []
    tries: list[dict[str, Any]] = [{"refuse": 486}, {"hold_seconds": 3, "bye_cause": 41}]
    for options in tries:
        async with sipp.callee(settings.carrier_sip_port, max_calls=1, **options) as phone:
            leg = await json_of(await http.post(f"/api/callbacks/{call_id}/call",
                                                headers=operator), 202)
            assert (await phone.wait(within=30)).ok
        legs.append(leg["leg_id"])

        async def attempt(leg_id: int = leg["leg_id"]) -> dict[str, Any] | None:
            found = entry_of(await entries(http, operator), call_id)
            done = [a for a in found["attempts"] if a["leg_id"] == leg_id and a["ended_at"]
                    ] if found is not None else []
            return done[0] if done else None

        if "refuse" in options:
            tried = await eventually("the busy attempt listed", attempt, within=20)
            assert (tried["outcome"], tried["outcome_label"]) == ("busy", "Sibuk")
            assert (await json_of(await http.get("/api/desk", headers=operator)))[
                "call"] is None
    busy, answered = legs

    async def back_on_the_list() -> dict[str, Any] | None:
        found = entry_of(await entries(http, operator), call_id)
        return found if found is not None and found["attempts"][0]["cut"] else None

    entry = await eventually("the cut call-back's caller back on the list", back_on_the_list,
                             within=20)
    assert (entry["reason"], entry["attempts"][0]["leg_id"], entry["attempts"][0]["cut"]) == (
        "callback_cut", answered, "network")
    (row,) = await line.database.run(lambda c: c.fetch(
        "SELECT hangup_cause, outcome FROM call_legs WHERE leg_id = $1", answered))
    assert (row["hangup_cause"], row["outcome"]) == (41, "answered")

    async def recorded() -> list[Any] | None:
        rows = await line.database.run(lambda c: c.fetch(
            "SELECT leg_id, state FROM recordings WHERE call_id = $1 AND kind = 'callback'",
            call_id))
        return [tuple(r) for r in rows] if any(r["state"] == "done" for r in rows) else None

    # The worker takes call-backs oldest first: the busy one was looked at before.
    assert await eventually("the answered call-back recorded", recorded, within=60) == [
        (answered, "done")]
    assert not list(lab.monitor_dir.glob(f"{call_id}-callback{busy}.*"))


async def test_a_call_whose_desk_phone_dies_ends_and_its_caller_is_called_back(
    line: Line, settings: Settings, http: aiohttp.ClientSession, lab: Lab
) -> None:
    """The operator's desk phone loses its power or network mid-call: it sends no BYE, so the
    caller sat in silence on a dead call until they hung up themselves, the call read as an
    ordinary end (cause 16) and the caller was not on the call-back list. Asterisk now ends
    the operator's leg once no media has come from the phone for
    ``desk_phone_rtp_timeout_seconds``: a network cause, the caller on the call-back list as
    any dropped call's. A phone that holds the call past that, sending nothing at all (as
    most desk phones do while they hold), or talks past it, is not cut."""
    timeout = settings.desk_phone_rtp_timeout_seconds
    assert settings.desk_phone_rtp_timeout_hold_seconds > 60  # the site's default, 600
    held = timeout + 2.0  # the phone holds the caller past the timeout, sending nothing
    talking = 7.0  # then takes the call back and talks past it too (the pcap's 7 s), then dies
    # The phone of a desk as an admin assigns it: registering, read from the views.
    operator = await account(line, http, "sari", "operator")
    assert operator
    desk = await assign_desk(line.database, load_menu(settings.menu_file), "sari", DESK_PHONE,
                             {"fire": 5}, realm=settings.sip_realm)
    assert desk.phone_secret is not None
    await line.listener.send_action({"Action": "Reload", "Module": "res_pjsip.so"})
    user = DESK_PHONE.removeprefix("PJSIP/")
    port = sipp.free_udp_port(DESK_PHONE_HOST)
    async with sipp.phone(settings.sip_host, settings.sip_port, user, desk.phone_secret,
                          host=DESK_PHONE_HOST, phone_port=port) as registering:
        assert (await registering.wait()).ok
    async with sipp.operator(port, host=DESK_PHONE_HOST, audio=True, audio_seconds=talking,
                             held_seconds=held, trace_messages=True) as phone:
        # Qualified by its own UAS (the first OPTIONS may have come before it ran).
        await lab.acli(f"pjsip qualify {user}")
        await lab.wait_cli("pjsip show contacts",
                           lambda out: re.search(rf"{user}/sip:\S+ +\S+ +Avail\b", out)
                           is not None)
        await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_in(
            DESK_PHONE, {"fire": 5})
        caller_id = unique_caller("0817")
        async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                               caller_id=caller_id, dtmf="12", talk_seconds=60) as caller:
            # Asterisk hangs up the caller too: sipp receives its BYE long before it would
            # hang up itself.
            result = await caller.wait(within=50)
        assert result.ok, result.errors
        assert phone.process is not None and phone.process.returncode is None
        # It held and took the call back (Asterisk accepted both), and never hung up itself:
        # the BYE came from Asterisk.
        messages = phone.messages
        assert "a=sendonly" in messages and "CSeq: 2 ACK" in messages, messages
        sent = [m for m in messages.split("\n---") if "message sent" in m]
        assert not any(re.search(r"^\s*BYE sip:", m, re.MULTILINE) for m in sent), messages
        assert "Reason: Q.850;cause=44" in messages, messages
    record = await ended_call(line, caller_id)
    assert (record.operator, record.disposition) == (DESK_PHONE, "answered"), record
    # Asterisk's cause for a channel that stopped receiving media, a network cause.
    assert (record.hangup_cause, record.hangup_cause_text) == (
        44, "Requested channel not available"), record
    # Not cut while it held or talked; ended once it had been silent for the timeout, its
    # talk recorded up to where its media stopped (migration 0055: Asterisk's completion less
    # the timeout; Asterisk's whole seconds and its check every few seconds around it).
    assert record.talk_seconds is not None
    print(f"\ndesk phone dead after {held:g} s held and {talking:g} s of talk -> the call "
          f"ended with {record.talk_seconds} s of talk recorded (rtp timeout {timeout} s)")
    assert held + talking - 1 <= record.talk_seconds <= held + talking + 3, record
    entry = await listed(http, operator, record.call_id)
    assert (entry["reason"], entry["possible"], entry["number"]) == (
        "dropped", True, caller_id)
