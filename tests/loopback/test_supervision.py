"""Listening in over the HTTP API with a real PostgreSQL and the AMI listener talking to the fake
Asterisk: the audit entry is written before the Originate goes out; every refusal (role, no
phone, unknown operator, no live call, the supervisor's phone busy, hostile input, an audit log
that cannot be written) changes nothing and sends no Originate; a refused Originate is a 503
and a second entry, and so is one whose OriginateResponse says the phone did not take it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.menu import load_menu
from telephony.accounts.service import AccountService
from telephony.ami.listener import AmiListener
from telephony.ami.testing import FakeAsterisk, Fields, ListSink, fake_asterisk
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.service import assign_desk
from telephony.settings import Settings
from telephony.supervision.http import SupervisionApi
from telephony.supervision.rights import ListeningRights
from telephony.supervision.service import SupervisionService
from telephony.wallboard import console as wallboard_console
from telephony.web.server import build_app
from tests.support.ami import eventually, listener
from tests.support.db import fetch
from tests.support.web import PASSWORD, conforms, make_context

OPERATOR = "PJSIP/op2001"
PHONE = "PJSIP/sup01"
CALL = "1732345678.0"
OPERATOR_CHANNEL = "PJSIP/op2001-0000002a"
PHONE_CHANNEL = "PJSIP/sup01-0000002c"


def live_operator(channel: str = OPERATOR_CHANNEL, call_id: str = CALL,
                  state: str = "Up") -> list[Fields]:
    """CoreShowChannels as Asterisk answers it while a caller talks to the operator."""
    bridge = "6f8a2b1c-0d3e-4f5a-9b8c-7d6e5f4a3b2c"
    return [
        (("Event", "CoreShowChannel"), ("Channel", "PJSIP/carrier-00000029"),
         ("ChannelState", "6"), ("ChannelStateDesc", "Up"), ("CallerIDNum", "081234567890"),
         ("Context", "siaga112-queue"), ("Uniqueid", call_id), ("Linkedid", call_id),
         ("BridgeId", bridge), ("Application", "Queue"), ("Duration", "00:00:42")),
        (("Event", "CoreShowChannel"), ("Channel", channel), ("ChannelState", "6"),
         ("ChannelStateDesc", state), ("CallerIDNum", "op2001"),
         ("ConnectedLineNum", "081234567890"), ("Context", "operators"),
         ("Uniqueid", "1732345690.7"), ("Linkedid", call_id), ("BridgeId", bridge),
         ("Application", "AppQueue"), ("Duration", "00:00:30")),
    ]


class OrderedAudit:
    """The audit log, noting how many Originates Asterisk had received at each entry; or an
    audit log that cannot be written, when ``broken``."""

    def __init__(self, accounts: AccountService, asterisk: FakeAsterisk) -> None:
        self.accounts = accounts
        self.asterisk = asterisk
        self.seen: list[tuple[str, int]] = []
        self.broken = False

    async def audit(self, **entry: Any) -> None:
        self.seen.append((entry["action"], len(originates(self.asterisk))))
        if self.broken:
            raise DatabaseUnavailable("connection refused")
        await self.accounts.audit(**entry)


def originates(asterisk: FakeAsterisk) -> list[dict[str, str]]:
    return [a for a in asterisk.actions if a.get("action") == "Originate"]


def spying(channel: str = PHONE_CHANNEL, application: str = "ChanSpy",
           options: str = "qEu") -> Fields:
    """The supervisor's phone in ChanSpy on the operator's channel, as CoreShowChannels
    lists it once they answered (``application``: the moment before ChanSpy starts)."""
    return (("Event", "CoreShowChannel"), ("Channel", channel), ("ChannelState", "6"),
            ("ChannelStateDesc", "Up"), ("CallerIDNum", "op2001"), ("Context", "default"),
            ("Uniqueid", "1732345701.9"), ("Linkedid", "1732345701.9"), ("BridgeId", ""),
            ("Application", application),
            ("ApplicationData", f"{OPERATOR_CHANNEL},{options}"), ("Duration", "00:00:03"))


@dataclass
class Setup:
    client: TestClient[web.Request, web.Application]
    asterisk: FakeAsterisk
    audit: OrderedAudit
    accounts: AccountService
    service: SupervisionService
    dsn: str
    database: Database
    ami: AmiListener
    resync_actions: int = 0  # the listener's own CoreShowChannels, sent at its login
    # How the supervisor's phone takes each Originate at once (OriginateResponse's Response
    # and Reason); None: it rings on, and the test answers later (respond).
    answer: tuple[str, int] | None = ("Success", 4)

    async def login(self, username: str) -> Mapping[str, str]:
        response = await self.client.post("/api/session",
                                          json={"username": username, "password": PASSWORD})
        assert response.status == 201, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    async def post(self, who: Mapping[str, str], body: Any) -> aiohttp.ClientResponse:
        return await self.client.post("/api/supervision", headers=who, json=body)

    async def entries(self) -> list[asyncpg.Record]:
        return await fetch(self.dsn, "SELECT actor, action, object_type, object_id, detail "
                                     "FROM audit_log WHERE action LIKE 'supervision.%' "
                                     "ORDER BY audit_id")

    def sent(self) -> list[str]:
        """The actions the line sent beyond the listener's own login and resync."""
        return [a["action"] for a in self.asterisk.actions
                if a["action"] in ("CoreShowChannels", "Originate")][self.resync_actions:]

    def answered(self, originate: dict[str, str]) -> list[Fields]:
        """What Asterisk says at once after queueing ``originate``, per :attr:`answer`."""
        if self.answer is None:
            return []
        return [originate_response(originate, *self.answer)]

    async def respond(self, response: str, reason: int) -> None:
        """Asterisk's OriginateResponse to the last Originate, later (Failure 3: nobody
        answered the ringing phone), once the service has applied it."""
        await self.asterisk.send_frames([
            originate_response(originates(self.asterisk)[-1], response, reason)])
        await eventually(lambda: self.service.awaiting_response == 0)


def originate_response(originate: dict[str, str], response: str, reason: int) -> Fields:
    """How Asterisk says an Async Originate of ChanSpy went (manager.c, fast_originate)."""
    return (("Event", "OriginateResponse"), ("ActionID", originate["actionid"]),
            ("Response", response), ("Channel", originate["channel"]),
            ("Application", "ChanSpy"), ("Data", originate["data"]), ("Reason", str(reason)),
            ("Uniqueid", "<unknown>"), ("CallerIDNum", "op2001"),
            ("CallerIDName", originate["callerid"]))


@pytest.fixture
async def setup(database_dsn: str, settings: Settings) -> AsyncIterator[Setup]:
    configured = replace(settings, database_dsn=database_dsn)
    database = Database(configured)
    context = make_context(configured, database)
    menu = load_menu(configured.menu_file)
    for username, role in (("kepala", "supervisor"), ("baru", "supervisor"),
                           ("wati", "operator"), ("root1", "admin")):
        await context.accounts.create(username, role, PASSWORD, actor="test")
    await assign_desk(database, menu, "wati", OPERATOR, {"fire": 5})
    await assign_desk(database, menu, "kepala", PHONE, {})
    async with fake_asterisk() as asterisk:
        asterisk.accepts["originate"] = "Originate successfully queued"
        # The supervisor's phone as every node's Asterisk publishes it: free.
        asterisk.variables[f"DEVICE_STATE({PHONE})"] = "NOT_INUSE"
        ami: AmiListener = listener(asterisk.port, ListSink())
        await ami.start()
        audit = OrderedAudit(context.accounts, asterisk)
        service = SupervisionService(database, ami, audit)
        responses = asyncio.create_task(service.run())
        api = SupervisionApi(service)
        client = TestClient(TestServer(build_app(context, [*api.routes(),
                                                          *wallboard_console.routes()])))
        await client.start_server()
        try:
            await eventually(lambda: ami.logged_in)
            setup = Setup(client, asterisk, audit, context.accounts, service, database_dsn,
                          database, ami)
            asterisk.follow_ups["originate"] = setup.answered
            # The listener's resync sends a CoreShowChannels of its own on login.
            await eventually(lambda: any(a["action"] == "CoreShowChannels"
                                         for a in asterisk.actions))
            setup.resync_actions = len(setup.sent())
            yield setup
        finally:
            responses.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await responses
            await client.close()
            await ami.stop()
            await database.close()


async def test_a_supervisor_listens_in_audited_before_the_originate(setup: Setup) -> None:
    setup.asterisk.channels = live_operator()
    kepala = await setup.login("kepala")
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
    assert response.status == 202, await response.text()
    body = await response.json()
    conforms(body, "SupervisionStarted")
    assert body == {"mode": "listen", "mode_label": "Dengarkan", "operator": OPERATOR,
                    "operator_username": "wati", "call_id": CALL, "phone": PHONE,
                    "message": "Dengarkan wati: telepon Anda (PJSIP/sup01) akan berdering."}
    # The entry was written while Asterisk had no Originate yet; then exactly one went out.
    assert setup.audit.seen == [("supervision.listen", 0)]
    assert setup.sent() == ["CoreShowChannels", "Originate"]
    [originate] = originates(setup.asterisk)
    assert {k: originate[k] for k in ("channel", "application", "data", "callerid", "async",
                                      "timeout")} == {
        "channel": PHONE, "application": "ChanSpy", "data": f"{OPERATOR_CHANNEL},qEu",
        "callerid": '"Dengarkan op2001" <op2001>', "async": "true", "timeout": "30000"}
    assert originate["actionid"].startswith("siaga112-spy-")
    [entry] = await setup.entries()
    assert (entry["actor"], entry["action"], entry["object_type"], entry["object_id"]) == (
        "kepala", "supervision.listen", "desk", OPERATOR)
    assert json.loads(entry["detail"]) == {"call_id": CALL, "channel": OPERATOR_CHANNEL,
                                           "phone": PHONE, "mode": "listen"}

    # Whisper and barge on the call named by its id; each its own entry and options.
    for mode, options in (("whisper", "qEuw"), ("barge", "qEuB")):
        response = await setup.post(kepala, {"operator": OPERATOR, "mode": mode,
                                             "call_id": CALL})
        assert response.status == 202, await response.text()
        assert originates(setup.asterisk)[-1]["data"] == f"{OPERATOR_CHANNEL},{options}"
    assert [e["action"] for e in await setup.entries()] == [
        "supervision.listen", "supervision.whisper", "supervision.barge"]
    assert setup.audit.seen == [("supervision.listen", 0), ("supervision.whisper", 1),
                                ("supervision.barge", 2)]


async def test_refusals_change_nothing_and_send_nothing(setup: Setup) -> None:
    setup.asterisk.channels = live_operator()
    kepala = await setup.login("kepala")
    refusals: list[tuple[Mapping[str, str], Any, int, str]] = [
        # Roles: operators and admins may not, whatever they send.
        (await setup.login("wati"), {"operator": OPERATOR, "mode": "listen"}, 403, "forbidden"),
        (await setup.login("root1"), {"operator": OPERATOR, "mode": "barge"}, 403, "forbidden"),
        # A supervisor without a phone to listen on.
        (await setup.login("baru"), {"operator": OPERATOR, "mode": "listen"}, 409, "no_phone"),
        # No operator works there (the supervisor's own phone is no operator's).
        (kepala, {"operator": "PJSIP/op9999", "mode": "listen"}, 404, "not_found"),
        (kepala, {"operator": PHONE, "mode": "listen"}, 404, "not_found"),
        # Hostile or mistyped interfaces: never spliced into an action.
        (kepala, {"operator": "PJSIP/op2001\r\nAction: Originate", "mode": "listen"}, 400,
         "invalid"),
        (kepala, {"operator": "PJSIP/op2001\n", "mode": "listen"}, 400, "invalid"),
        (kepala, {"operator": "PJSIP/op2001-,qB", "mode": "listen"}, 400, "invalid"),
        (kepala, {"operator": "PJSIP/op2001-0000002a", "mode": "listen"}, 404, "not_found"),
        (kepala, {"operator": "Local/112@from-carrier", "mode": "listen"}, 400, "invalid"),
        # The body's shape is held to its schema.
        (kepala, {"operator": OPERATOR, "mode": "spy"}, 422, "invalid"),
        # (its call_id's pattern included, as the OpenAPI document advertises it)
        (kepala, {"operator": OPERATOR, "mode": "listen", "call_id": "../1"}, 422, "invalid"),
        (kepala, {"operator": OPERATOR, "mode": "listen", "call_id": f"{CALL}\n"}, 422,
         "invalid"),
        (kepala, {"operator": OPERATOR, "mode": "listen", "options": "qB"}, 422, "invalid"),
        (kepala, {"operator": OPERATOR}, 422, "invalid"),
    ]
    for who, body, status, code in refusals:
        response = await setup.post(who, body)
        assert response.status == status, (body, await response.text())
        assert (await response.json())["error"]["code"] == code, body
    assert setup.sent() == []

    # The operator is not on an answered call (ringing, or on another call than the one
    # named): Asterisk was asked, nothing was audited or originated.
    for channels, body in (
            ([], {"operator": OPERATOR, "mode": "listen"}),
            (live_operator(state="Ringing"), {"operator": OPERATOR, "mode": "listen"}),
            (live_operator(), {"operator": OPERATOR, "mode": "listen",
                               "call_id": "1732345999.3"})):
        setup.asterisk.channels = channels
        response = await setup.post(kepala, body)
        assert response.status == 409, await response.text()
        assert (await response.json())["error"]["code"] == "no_live_call"
    assert setup.sent() == ["CoreShowChannels"] * 3
    assert await setup.entries() == [] and setup.audit.seen == []

    # An audit log that cannot be written: no listening in.
    setup.asterisk.channels = live_operator()
    setup.audit.broken = True
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
    assert response.status == 503, await response.text()
    assert originates(setup.asterisk) == []


async def test_an_originate_asterisk_refuses_is_a_503_and_a_second_entry(setup: Setup) -> None:
    setup.asterisk.channels = live_operator()
    del setup.asterisk.accepts["originate"]  # answered "Error: Interface not found"
    kepala = await setup.login("kepala")
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "whisper"})
    assert response.status == 503, await response.text()
    assert response.headers["Retry-After"] == "5"
    assert (await response.json())["error"]["code"] == "asterisk_unavailable"
    assert len(originates(setup.asterisk)) == 1
    attempted, failed = await setup.entries()
    assert (attempted["action"], failed["action"]) == ("supervision.whisper",
                                                       "supervision.failed")
    assert json.loads(failed["detail"]) == {
        **json.loads(attempted["detail"]),
        "reason": "Originate refused: Interface not found"}


async def test_only_a_supervisors_wallboard_has_the_buttons(setup: Setup) -> None:
    for username, shown in (("kepala", True), ("baru", True), ("root1", False)):
        response = await setup.client.get("/console/wallboard",
                                          headers=await setup.login(username))
        assert response.status == 200
        html = await response.text()
        assert ('<meta name="supervision" content="/api/supervision">' in html) is shown
        assert ('id="supervision-result"' in html) is shown
        assert ('<meta name="csrf-token"' in html) is shown


async def test_a_supervisors_phone_in_a_call_or_ringing_is_not_rung_again(setup: Setup) -> None:
    kepala = await setup.login("kepala")
    # Still listening (their phone in ChanSpy): a click on Sela is refused, nothing recorded
    # or sent; they hang up first.
    setup.asterisk.channels = [*live_operator(), spying()]
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "barge"})
    assert response.status == 409, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], error["message"]) == (
        "phone_busy", "Telepon Anda (PJSIP/sup01) sedang dipakai atau berdering. Tutup dulu "
                      "panggilan itu (juga bila Anda masih mendengarkan), lalu pilih lagi.")
    assert setup.sent() == ["CoreShowChannels"] and await setup.entries() == []

    # A double click: the first rings the phone; the second, before Asterisk lists the
    # phone's channel, is refused all the same.
    setup.asterisk.channels = live_operator()
    setup.answer = None  # ringing
    first, second = await asyncio.gather(
        setup.post(kepala, {"operator": OPERATOR, "mode": "listen"}),
        setup.post(kepala, {"operator": OPERATOR, "mode": "listen"}))
    assert sorted([first.status, second.status]) == [202, 409]
    assert len(originates(setup.asterisk)) == 1
    assert [e["action"] for e in await setup.entries()] == ["supervision.listen"]


async def test_a_supervisor_listening_in_through_another_node_is_not_rung_again(
        setup: Setup) -> None:
    """On a cluster a supervisor listening in on a call of node1 asked for a second listen-in,
    to a call on node2: node2's line saw no channel of the phone in its own Asterisk, recorded
    the second listen-in and rang the phone again in the middle of the first. Node2's
    Asterisk has the phone's device state from every node (what this fake reports for
    DEVICE_STATE): in use or ringing there is phone_busy here too, nothing recorded or rung."""
    kepala = await setup.login("kepala")
    setup.asterisk.channels = live_operator()  # no channel of the phone on this node
    for state in ("INUSE", "RINGING"):
        setup.asterisk.variables[f"DEVICE_STATE({PHONE})"] = state
        response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
        assert response.status == 409, await response.text()
        assert (await response.json())["error"]["code"] == "phone_busy"
    assert originates(setup.asterisk) == [] and await setup.entries() == []
    # Hung up over there: the listen-in here goes ahead.
    setup.asterisk.variables[f"DEVICE_STATE({PHONE})"] = "NOT_INUSE"
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
    assert response.status == 202, await response.text()
    assert len(originates(setup.asterisk)) == 1


async def test_a_phone_that_does_not_take_the_call_is_a_second_entry(setup: Setup) -> None:
    setup.asterisk.channels = live_operator()
    kepala = await setup.login("kepala")
    # Not registered, or refusing at once: Asterisk says so within milliseconds, and the
    # supervisor is told while waiting for the answer; both entries are written.
    for mode, reason, why, text in (
            ("listen", 0, "gagal", "Telepon supervisor gagal (Reason 0)"),
            ("whisper", 5, "sibuk", "Telepon supervisor sibuk (Reason 5)")):
        setup.answer = ("Failure", reason)
        response = await setup.post(kepala, {"operator": OPERATOR, "mode": mode})
        assert response.status == 409, await response.text()
        error = (await response.json())["error"]
        assert (error["code"], error["message"]) == (
            "phone_unreachable", f"Telepon Anda (PJSIP/sup01) tidak dapat dihubungi ({why}). "
                                 "Pastikan telepon menyala dan terdaftar, lalu pilih lagi.")
        attempted, failed = (await setup.entries())[-2:]
        assert (attempted["action"], failed["action"]) == (f"supervision.{mode}",
                                                           "supervision.failed")
        assert (failed["actor"], failed["object_id"]) == ("kepala", OPERATOR)
        assert json.loads(failed["detail"]) == {**json.loads(attempted["detail"]),
                                                "reason": text}
    # A phone that rings on (202), and is not answered in the ring time: the second entry
    # comes then.
    setup.answer = None
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "barge"})
    assert response.status == 202, await response.text()
    await setup.respond("Failure", 3)
    attempted, failed = (await setup.entries())[-2:]
    assert json.loads(failed["detail"]) == {**json.loads(attempted["detail"]),
                                            "reason": "Telepon supervisor tidak diangkat "
                                                      "(Reason 3)"}
    # The same response again records nothing more (the events are applied in order: the
    # next attempt's answer comes after it).
    await setup.respond("Failure", 3)
    setup.answer = ("Success", 4)
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
    assert response.status == 202, await response.text()
    assert [e["action"] for e in await setup.entries()][-3:] == [
        "supervision.barge", "supervision.failed", "supervision.listen"]


def ringing_phone() -> Fields:
    """The supervisor's phone ringing for the Originate, as CoreShowChannels lists it."""
    return (("Event", "CoreShowChannel"), ("Channel", PHONE_CHANNEL), ("ChannelState", "5"),
            ("ChannelStateDesc", "Ringing"), ("CallerIDNum", "sup01"), ("Context", "default"),
            ("Uniqueid", "1732345701.9"), ("Linkedid", "1732345701.9"), ("BridgeId", ""),
            ("Application", "AppDial2"), ("ApplicationData", "(Outgoing Line)"),
            ("Duration", "00:00:04"))


async def test_a_phone_ringing_for_a_call_that_ended_stops_ringing(setup: Setup) -> None:
    """The operator's call ends while the supervisor's phone rings: the line hangs the phone
    up (it rang on for up to 30 s into a listening of nothing), and the second entry says
    why."""
    setup.asterisk.channels = live_operator()
    kepala = await setup.login("kepala")
    setup.answer = None  # ringing
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
    assert response.status == 202, await response.text()
    setup.asterisk.channels = [ringing_phone()]
    await setup.asterisk.send_frames([(("Event", "Hangup"), ("Channel", OPERATOR_CHANNEL),
                                       ("Uniqueid", "1732345690.7"), ("Cause", "16"))])
    await eventually(lambda: any(a["action"] == "Hangup" for a in setup.asterisk.actions))
    [hangup] = [a for a in setup.asterisk.actions if a["action"] == "Hangup"]
    assert hangup["channel"] == PHONE_CHANNEL
    await setup.respond("Failure", 1)
    attempted, failed = (await setup.entries())[-2:]
    assert json.loads(failed["detail"]) == {
        **json.loads(attempted["detail"]),
        "reason": "Panggilan operator sudah berakhir sebelum telepon supervisor diangkat"}
    # Another channel's hang-up, or the spied one's once answered, stops nothing.
    setup.asterisk.channels = live_operator()
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "listen"})
    assert response.status == 202
    setup.asterisk.channels = [*live_operator(), ringing_phone()]
    await setup.asterisk.send_frames([(("Event", "Hangup"), ("Channel", "PJSIP/op2002-01"),
                                       ("Uniqueid", "1732345690.8"), ("Cause", "16"))])
    await setup.respond("Success", 4)
    await setup.asterisk.send_frames([(("Event", "Hangup"), ("Channel", OPERATOR_CHANNEL),
                                       ("Uniqueid", "1732345690.7"), ("Cause", "16"))])
    await setup.respond("Success", 4)  # a frame after both: they were read
    assert [a["action"] for a in setup.asterisk.actions].count("Hangup") == 1


async def test_a_supervisor_who_loses_the_right_stops_listening_at_once(
        setup: Setup, settings: Settings) -> None:
    """Made an operator while listening: the line hangs the leg up as the change commits,
    audited with the reason; another supervisor listening goes on. A leg Asterisk keeps a
    moment longer is hung up again, not audited again. Disabled while the phone rang: the
    leg its OriginateResponse named is hung up even before it shows ChanSpy."""
    setup.asterisk.accepts["hangup"] = "Channel Hungup"
    await assign_desk(setup.database, load_menu(settings.menu_file), "baru", "PJSIP/sup02", {})
    other = "PJSIP/sup02-0000002d"
    setup.asterisk.channels = [*live_operator(), spying(), spying(other, options="qEuB")]
    rights = ListeningRights(setup.database, setup.ami, setup.accounts, interval=600)
    changed: list[str] = []  # what the wallboard hears (it closes that account's boards)
    rights.on_change(changed.append)
    following = asyncio.create_task(rights.run())

    def hung_up() -> list[str]:
        return [a["channel"] for a in setup.asterisk.actions if a["action"] == "Hangup"]

    async def revoked() -> list[dict[str, str]]:
        rows = await fetch(setup.dsn, "SELECT actor, object_id, detail FROM audit_log "
                                      "WHERE action = 'supervision.revoked' ORDER BY audit_id")
        return [{"actor": r["actor"], "object_id": r["object_id"], **json.loads(r["detail"])}
                for r in rows]

    try:
        await eventually(lambda: rights.rounds >= 1)  # both may listen: nothing hung up
        assert hung_up() == []
        change = await setup.accounts.set_role("kepala", "operator", actor="root1")
        assert change.role_changed
        await eventually(lambda: rights.ended == 1)
        assert set(hung_up()) == {PHONE_CHANNEL} and changed == ["kepala"]
        assert await revoked() == [{
            "actor": "system", "object_id": OPERATOR, "account": "kepala", "phone": PHONE,
            "leg": PHONE_CHANNEL, "channel": OPERATOR_CHANNEL, "mode": "listen",
            "reason": "Peran akun kepala kini Operator, bukan Supervisor"}]
        rounds, sent = rights.rounds, len(hung_up())
        rights.booted({})  # a round with the leg still listed
        await eventually(lambda: rights.rounds > rounds)
        assert len(hung_up()) > sent and set(hung_up()) == {PHONE_CHANNEL}
        assert len(await revoked()) == 1

        # Baru's phone answered a whisper as his account was disabled: not in ChanSpy yet.
        setup.asterisk.channels = [*live_operator(), spying(other, application="AppDial2")]
        rounds = rights.rounds
        await setup.accounts.disable("baru", actor="root1")
        await eventually(lambda: rights.rounds > rounds)
        assert other not in hung_up()  # an ordinary call to his phone is left alone
        rights.answered(other, OPERATOR_CHANNEL, "whisper")
        await eventually(lambda: rights.ended == 2)
        assert other in hung_up()
        assert (await revoked())[-1] == {
            "actor": "system", "object_id": OPERATOR, "account": "baru",
            "phone": "PJSIP/sup02", "leg": other, "channel": OPERATOR_CHANNEL,
            "mode": "whisper", "reason": "Akun baru dinonaktifkan"}
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following


async def test_a_supervisor_given_another_phone_stops_listening_on_the_old_one_at_once(
        setup: Setup, settings: Settings) -> None:
    """Moved to another phone (``siaga112 account desk``, the console's or the API's desk
    assignment) while listening: the phone left behind stops listening as the change
    commits, not at the periodic check 30 s later, whoever sits there now. Given the same
    phone again (new skills, a new secret), nothing is announced."""
    setup.asterisk.accepts["hangup"] = "Channel Hungup"
    setup.asterisk.channels = [*live_operator(), spying()]
    rights = ListeningRights(setup.database, setup.ami, setup.accounts, interval=600)
    changed: list[str] = []
    rights.on_change(changed.append)
    following = asyncio.create_task(rights.run())
    menu = load_menu(settings.menu_file)
    try:
        await eventually(lambda: rights.rounds >= 1)
        await assign_desk(setup.database, menu, "kepala", PHONE, {})  # the same phone
        await assign_desk(setup.database, menu, "wati", OPERATOR, {"fire": 3})
        await assign_desk(setup.database, menu, "kepala", "PJSIP/sup03", {})
        await eventually(lambda: rights.ended == 1)
        assert changed == ["kepala"]
        assert [a["channel"] for a in setup.asterisk.actions
                if a["action"] == "Hangup"] == [PHONE_CHANNEL]
        [row] = await fetch(setup.dsn, "SELECT detail FROM audit_log "
                                       "WHERE action = 'supervision.revoked'")
        assert json.loads(row["detail"])["reason"] == (
            "Telepon ini tidak lagi dipegang akun supervisor")
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following


async def test_a_phone_ringing_for_a_supervisor_who_lost_the_right_stops_ringing(
        setup: Setup) -> None:
    """Made an operator (or disabled) while their phone rings for a listen-in: the line hangs
    the phone up rather than let it ring on into a listening they may no longer have, and
    the second entry says why. Another account's change stops nothing."""
    setup.asterisk.accepts["hangup"] = "Channel Hungup"
    setup.asterisk.channels = live_operator()
    kepala = await setup.login("kepala")
    setup.answer = None  # ringing
    response = await setup.post(kepala, {"operator": OPERATOR, "mode": "whisper"})
    assert response.status == 202, await response.text()
    setup.asterisk.channels = [*live_operator(), ringing_phone()]
    setup.service.rights_changed("baru")
    setup.service.rights_changed("kepala")  # what the line hears as the change commits
    await eventually(lambda: any(a["action"] == "Hangup" for a in setup.asterisk.actions))
    [hangup] = [a for a in setup.asterisk.actions if a["action"] == "Hangup"]
    assert hangup["channel"] == PHONE_CHANNEL
    await setup.respond("Failure", 1)
    attempted, failed = (await setup.entries())[-2:]
    assert (attempted["action"], failed["action"]) == ("supervision.whisper",
                                                       "supervision.failed")
    assert json.loads(failed["detail"]) == {
        **json.loads(attempted["detail"]),
        "reason": "Hak mendengarkan supervisor dicabut sebelum teleponnya diangkat"}
