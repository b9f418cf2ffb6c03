"""Call-backs against a real PostgreSQL and a fake Asterisk (its AMI on a loopback socket,
spoken to by the line's own listener): the worklist as the API shows it, the Originate an
operator's call-back sends, its audit entry and leg, Asterisk's refusals, withheld numbers,
a caller reached or closed, who may do what, and hostile input that changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.menu import load_menu
from telephony.accounts.service import AccountService
from telephony.ami.listener import AmiListener
from telephony.ami.testing import FakeAsterisk, ListSink, fake_asterisk, render
from telephony.callbacks import model as callback_model
from telephony.callbacks import service as callback_service
from telephony.callbacks.console import CallbackPages
from telephony.callbacks.http import CallbackApi
from telephony.callbacks.service import CallbackConfig, CallbackService
from telephony.calls.facts import (
    AsteriskBooted,
    AsteriskShutdown,
    CallEnded,
    CallFact,
    LegCut,
    LegProgressed,
    QueueAbandoned,
)
from telephony.calls.legs import LegKind, LegOutcome
from telephony.calls.outages import OutageWatch
from telephony.calls.store import CallRepository
from telephony.db.connection import Database
from telephony.desks.service import assign_desk
from telephony.settings import Settings
from telephony.web.context import CONTEXT
from telephony.web.server import build_app
from tests.support.ami import listener
from tests.support.calls import CALENDAR, ago, call_facts
from tests.support.db import execute, fetch
from tests.support.polling import eventually
from tests.support.web import PASSWORD, Browser, conforms, make_context

OPERATOR = "PJSIP/op1001"
GAVE_UP, HIDDEN, ANSWERED = "1790000000.1", "1790000000.2", "1790000000.3"
CALLER = "081234567890"


@dataclass
class Bench:
    """The API and console over a real database, its AMI a fake Asterisk."""

    client: TestClient[web.Request, web.Application]
    service: CallbackService
    accounts: AccountService
    asterisk: FakeAsterisk
    database: Database
    dsn: str

    async def account(self, username: str, role: str, *, desk: bool = False,
                      at: str = OPERATOR) -> dict[str, str]:
        """An account (an operator at ``at`` if ``desk``), logged in: bearer headers."""
        await self.accounts.create(username, role, PASSWORD, actor="test")
        if desk:
            await assign_desk(self.database, load_menu(), username, at, {"fire": 5})
        response = await self.client.post("/api/session",
                                          json={"username": username, "password": PASSWORD})
        assert response.status == 201, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    @contextlib.asynccontextmanager
    async def console(self, username: str) -> AsyncIterator[Browser]:
        """A browser on the console, logged in as ``username``."""
        async with aiohttp.ClientSession(base_url=self.client.make_url(""),
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            browser = Browser(http)
            assert (await browser.log_in(username)).status == 303
            yield browser

    def originates(self) -> list[dict[str, str]]:
        return [a for a in self.asterisk.actions if a.get("action") == "Originate"]

    async def legs(self) -> list[asyncpg.Record]:
        return await fetch(self.dsn, "SELECT * FROM call_legs ORDER BY leg_id")

    async def happen(self, *facts: CallFact) -> None:
        await self.database.run(lambda c: CallRepository(CALENDAR).apply(c, facts))


@pytest.fixture
async def bench(database_dsn: str, settings: Settings) -> AsyncIterator[Bench]:
    configured = replace(settings, database_dsn=database_dsn)
    database = Database(configured)
    async with fake_asterisk() as asterisk:
        asterisk.accepts["originate"] = "Originate successfully queued"
        ami: AmiListener = listener(asterisk.port, ListSink())
        async with ami:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            context = make_context(configured, database, ami=ami)
            service = CallbackService(database, ami, context.desks, context.accounts,
                                      CallbackConfig(ring_seconds=20, cache_seconds=0))
            app = build_app(context, [*CallbackApi(service).routes(),
                                      *CallbackPages(service).routes()])
            client = TestClient(TestServer(app))
            await client.start_server()
            running = asyncio.create_task(service.run())
            try:
                yield Bench(client, service, context.accounts, asterisk, database,
                            database_dsn)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await client.close()
    await database.close()


async def gave_up(bench: Bench, call_id: str = GAVE_UP, caller: str = CALLER,
                  minutes: float = 10) -> None:
    """A caller who hung up while queued, ``minutes`` ago."""
    await bench.happen(*call_facts(call_id, caller, at=ago(minutes=minutes),
                                   answered_at=None))


async def worklist(bench: Bench, headers: dict[str, str]) -> dict[str, Any]:
    response = await bench.client.get("/api/callbacks", headers=headers)
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    conforms(data, "CallbackList")
    return data


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await response.json()
    conforms(body, "Error")
    return dict(body["error"])


# -- the worklist and a call-back ----------------------------------------------------------------


async def test_a_call_back_sends_the_originate_opens_the_leg_and_is_audited(bench: Bench
                                                                            ) -> None:
    await gave_up(bench)
    await bench.happen(*call_facts(HIDDEN, "anonymous", at=ago(minutes=8), answered_at=None))
    await bench.happen(*call_facts(ANSWERED, "0813999999999", at=ago(minutes=7)))
    operator = await bench.account("op1001", "operator", desk=True)

    listed = await worklist(bench, operator)
    assert [(e["call_id"], e["possible"], e["reason"]) for e in listed["entries"]] == [
        (GAVE_UP, True, "abandoned"), (HIDDEN, False, "abandoned")]
    assert (listed["waiting"], listed["not_possible"]) == (1, 1)
    assert listed["entries"][1]["number"] is None

    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert response.status == 202, await response.text()
    leg = await response.json()
    conforms(leg, "CallbackLeg")
    (originate,) = bench.originates()
    assert originate == {
        "action": "Originate", "actionid": f"siaga112-callback-{leg['leg_id']}",
        "channel": OPERATOR, "context": "siaga112-callback",
        "exten": f"{leg['leg_id']}-{GAVE_UP}-{CALLER}", "priority": "1", "timeout": "20000",
        "callerid": f'"Panggilan balik" <{CALLER}>', "async": "true"}
    (row,) = await bench.legs()
    assert (row["kind"], row["call_id"], row["operator"], row["actor"], row["number"],
            row["target"], row["ended_at"]) == (
        LegKind.CALLBACK.value, GAVE_UP, OPERATOR, "op1001", CALLER, "penelepon", None)
    (audit,) = await fetch(bench.dsn, "SELECT * FROM audit_log WHERE action = 'callback.call'")
    assert (audit["actor"], audit["object_type"], audit["object_id"]) == (
        "op1001", "call", GAVE_UP)
    # It rings: the entry says so, and a second request sends nothing.
    (entry, _) = (await worklist(bench, operator))["entries"]
    assert entry["ringing"] and [a["leg_id"] for a in entry["attempts"]] == [leg["leg_id"]]
    again = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert again.status == 409 and (await error_of(again))["code"] == "callback_busy"
    assert len(bench.originates()) == 1

    # The caller answers (the dialplan's SiagaLeg events, as the tracker records them).
    now = datetime.now(UTC)
    await bench.happen(LegProgressed(leg["leg_id"], "dialling", "", "1.9", now),
                       LegProgressed(leg["leg_id"], "answered", "", "1.10", now))
    assert [e["call_id"] for e in (await worklist(bench, operator))["entries"]] == [HIDDEN]
    gone = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert gone.status == 409 and (await error_of(gone))["code"] == "not_on_worklist"
    assert len(bench.originates()) == 1


async def test_asterisk_refusing_the_originate_ends_the_leg_and_answers_503(bench: Bench
                                                                           ) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    del bench.asterisk.accepts["originate"]  # answered "Response: Error"

    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)

    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert (await error_of(response))["code"] == "asterisk_unavailable"
    (row,) = await bench.legs()
    assert row["outcome"] == LegOutcome.FAILED.value and row["ended_at"] is not None
    assert row["status"].startswith("AMI:")
    # Refused, it is not ringing: the operator may try again.
    (entry,) = (await worklist(bench, operator))["entries"]
    assert not entry["ringing"] and entry["attempts"][0]["outcome"] == "failed"


async def test_an_originate_asterisk_took_but_did_not_answer_counts_as_ringing(bench: Bench
                                                                             ) -> None:
    """An Originate sent whose answer never came (Asterisk slow in a surge, or the connection
    lost right after it) may still ring the operator and dial the caller. It was ended as
    refused with "try again": the retry (or another operator) dialled the caller a second
    time, in the middle of the first call-back."""
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    bench.asterisk.silent.add("originate")

    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)

    assert response.status == 503
    error = await error_of(response)
    assert error["code"] == "asterisk_unavailable" and "mungkin" in error["message"]
    (row,) = await bench.legs()
    assert (row["ended_at"], row["outcome"]) == (None, None)
    (entry,) = (await worklist(bench, operator))["entries"]
    assert entry["ringing"]
    again = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert again.status == 409 and (await error_of(again))["code"] == "callback_busy"
    assert len(bench.originates()) == 1
    # Its OriginateResponse, late, says how it went: the operator never answered.
    await bench.asterisk.send(render((
        ("Event", "OriginateResponse"), ("ActionID", f"siaga112-callback-{row['leg_id']}"),
        ("Response", "Failure"), ("Channel", OPERATOR), ("Context", "siaga112-callback"),
        ("Reason", "3"), ("Uniqueid", "<unknown>"))))

    async def free() -> dict[str, Any] | None:
        (entry,) = (await worklist(bench, operator))["entries"]
        return None if entry["ringing"] else entry

    assert (await eventually("the leg ended", free, within=5))["attempts"][0]["outcome"] == (
        "failed")


async def test_the_operator_phone_never_answering_ends_the_leg(bench: Bench) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    leg_id = (await response.json())["leg_id"]

    await bench.asterisk.send(b"".join(render(frame) for frame in (
        # Another service's Originate: not ours, left alone.
        (("Event", "OriginateResponse"), ("ActionID", "siaga112-survey-1-1"),
         ("Response", "Failure"), ("Channel", "PJSIP/carrier-callback"), ("Reason", "3"),
         ("Uniqueid", "<unknown>")),
        (("Event", "OriginateResponse"), ("ActionID", f"siaga112-callback-{leg_id}"),
         ("Response", "Failure"), ("Channel", OPERATOR), ("Context", "siaga112-callback"),
         ("Reason", "3"), ("Uniqueid", "<unknown>")),
    )))

    async def ended() -> asyncpg.Record | None:
        (row,) = await bench.legs()
        return row if row["ended_at"] is not None else None

    row = await eventually("the leg ended", ended, within=5)
    assert (row["outcome"], row["status"]) == (
        "failed", "Telepon operator tidak diangkat (Reason 3)")
    # The list says the caller was never dialled: a plain "Gagal" read as a caller who
    # cannot be reached, and a supervisor closed such entries as unreachable.
    (entry,) = (await worklist(bench, operator))["entries"]
    assert entry["attempts"][0]["rang_at"] is None
    async with bench.console("op1001") as browser:
        _, html, _ = await browser.get("/console/callbacks")
    assert "op1001: Gagal di telepon operator, penelepon tidak ditelepon" in html


async def test_a_withheld_number_sends_nothing(bench: Bench) -> None:
    await bench.happen(*call_facts(HIDDEN, "anonymous", at=ago(minutes=8), answered_at=None))
    operator = await bench.account("op1001", "operator", desk=True)

    response = await bench.client.post(f"/api/callbacks/{HIDDEN}/call", headers=operator)

    assert response.status == 409
    assert (await error_of(response))["code"] == "callback_not_possible"
    assert bench.originates() == [] and await bench.legs() == []


async def test_an_operator_on_a_call_or_without_a_desk_sends_nothing(bench: Bench) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    deskless = await bench.account("op2", "operator")
    bench.asterisk.channels = [(
        ("Event", "CoreShowChannel"), ("Channel", f"{OPERATOR}-0000002a"),
        ("Uniqueid", "1790000009.4"), ("Linkedid", "1790000009.3"),
        ("ChannelStateDesc", "Up"), ("BridgeId", "b-1"), ("Application", "AppQueue"),
        ("CallerIDNum", "op1001"), ("ConnectedLineNum", "0812"))]

    busy = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    nodesk = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=deskless)

    assert busy.status == 409 and (await error_of(busy))["code"] == "callback_busy"
    assert nodesk.status == 409 and (await error_of(nodesk))["code"] == "no_desk"
    assert bench.originates() == [] and await bench.legs() == []


async def test_an_operator_talking_through_another_cluster_node_is_not_rung(bench: Bench
                                                                          ) -> None:
    """On a cluster the operator's call may be on node1 while nginx hands their call-back to
    node2's line, whose Asterisk has no channel of it: node2's Asterisk knows the phone is in
    use (every node's device state), and the records say they answered a call still going
    on. A call-back then rang their phone in the middle of that emergency call."""
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    await bench.happen(*call_facts("node1-1790000009.3", "0813777777777",
                                   at=ago(minutes=2), talk=None))
    device = f"DEVICE_STATE({OPERATOR})"
    bench.asterisk.variables[device] = "INUSE"

    busy = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)

    assert busy.status == 409, await busy.text()
    assert (await error_of(busy))["code"] == "callback_busy"
    assert bench.originates() == [] and await bench.legs() == []
    # node1 died with that call (its record stays open until it is back) and node2's Asterisk
    # forgot its states: the phone is free, and the caller is called back.
    bench.asterisk.variables[device] = "NOT_INUSE"
    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert response.status == 202, await response.text()
    assert len(bench.originates()) == 1


async def test_a_wrapup_held_for_another_node_does_not_stop_a_call_back(bench: Bench) -> None:
    """After a call on node1 ends, node2's Asterisk holds the operator "in use" for the
    queue's wrap-up (telephony/cluster/wrapup.py); node1 lets them call back meanwhile, and so
    does node2: the records say the call has ended."""
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    await bench.happen(*call_facts("node1-1790000009.3", "0813777777777",
                                   at=ago(minutes=2), talk=5))
    bench.asterisk.variables[f"DEVICE_STATE({OPERATOR})"] = "INUSE"

    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)

    assert response.status == 202, await response.text()
    assert len(bench.originates()) == 1


# -- closing, and leaving the list -----------------------------------------------------------------


async def test_a_caller_calling_the_line_right_now_is_not_called_back(bench: Bench) -> None:
    await gave_up(bench, minutes=20)
    # They ring again (written +62…) and wait in the queue: not answered, not ended.
    waiting = [fact for fact in call_facts("1790000000.6", "+62 812-3456-7890",
                                           at=ago(seconds=30), answered_at=None)
               if not isinstance(fact, QueueAbandoned | CallEnded)]
    await bench.happen(*waiting)
    operator = await bench.account("op1001", "operator", desk=True)

    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)

    assert response.status == 409
    error = await error_of(response)
    assert (error["code"], error["message"]) == (
        "callback_busy",
        "Penelepon ini sedang menelepon 112 saat ini; panggilannya akan dijawab lewat antrean.")
    assert bench.originates() == [] and await bench.legs() == []
    # That call ends unanswered: they are called back as usual.
    await bench.happen(CallEnded("1790000000.6", 16, "Normal Clearing", ago(seconds=1)))
    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert response.status == 202, await response.text()
    assert len(bench.originates()) == 1


async def test_a_call_back_is_called_off_when_its_caller_rings_again(bench: Bench) -> None:
    """The caller rings the line (written +62…) while the operator's phone still rings for
    their call-back: the line hangs that channel up and records the call-back as called off,
    so it neither rings a phone on an emergency call nor reads as a caller not reached. A
    call of another caller, or the operator's answered call, calls nothing off."""
    await gave_up(bench, minutes=20)
    operator = await bench.account("op1001", "operator", desk=True)
    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert response.status == 202, await response.text()
    leg_id = (await response.json())["leg_id"]
    bench.asterisk.accepts["hangup"] = "Channel Hungup"
    ringing = (("Event", "CoreShowChannel"), ("Channel", f"{OPERATOR}-0000002b"),
               ("Uniqueid", "1790000009.7"), ("Linkedid", "1790000009.7"),
               ("ChannelStateDesc", "Ringing"), ("BridgeId", ""), ("Application", "AppDial2"),
               ("CallerIDNum", CALLER), ("ConnectedLineNum", ""))
    bench.asterisk.channels = [ringing]

    def hangups() -> list[dict[str, str]]:
        return [a for a in bench.asterisk.actions if a.get("action", "").lower() == "hangup"]

    other = [fact for fact in call_facts("1790000000.7", "0813999999999", at=ago(seconds=2),
                                         answered_at=None)
             if not isinstance(fact, QueueAbandoned | CallEnded)]
    await bench.happen(*other)
    await bench.service._call_off(["1790000000.7"])
    assert hangups() == [] and (await bench.legs())[0]["ended_at"] is None

    again = [fact for fact in call_facts("1790000000.8", "+62 812-3456-7890",
                                         at=ago(seconds=1), answered_at=None)
             if not isinstance(fact, QueueAbandoned | CallEnded)]
    await bench.happen(*again)
    bench.service.calls_started(again)

    async def called_off() -> list[dict[str, str]] | None:
        return hangups() or None

    (hangup,) = await eventually("the call-back's channel hung up", called_off, within=5)
    assert hangup["channel"] == f"{OPERATOR}-0000002b"
    (row,) = await bench.legs()
    assert (row["leg_id"], row["outcome"], row["status"], row["answered_at"]) == (
        leg_id, "cancelled", callback_model.CALLER_RANG, None)
    # Asterisk's reports of the end, as the hang-up makes them, keep why: the Originate's
    # failure (the operator's phone never answered) and the dialplan's end.
    assert await bench.service.originate_response({
        "Event": "OriginateResponse", "ActionID": f"siaga112-callback-{leg_id}",
        "Response": "Failure", "Reason": "1"})
    await bench.happen(LegProgressed(leg_id, "ended", "CANCEL", "1790000009.7",
                                     datetime.now(UTC)))
    (row,) = await bench.legs()
    assert (row["outcome"], row["status"]) == ("cancelled", callback_model.CALLER_RANG)
    # Called off once: the next call of theirs finds nothing to call off.
    await bench.service._call_off(["1790000000.8"])
    assert len(hangups()) == 1
    # Their new call is the one an operator answers; the entry says what became of the
    # call-back meanwhile.
    async with bench.console("op1001") as browser:
        status, html, _ = await browser.get("/console/callbacks")
    assert status == 200 and callback_model.CALLER_RANG_TEXT in html


async def test_a_supervisor_closes_an_entry_with_a_reason(bench: Bench) -> None:
    await gave_up(bench, minutes=20)
    await gave_up(bench, "1790000000.4", minutes=5)  # the same caller again
    supervisor = await bench.account("spv1", "supervisor")
    (entry,) = (await worklist(bench, supervisor))["entries"]
    assert [c["call_id"] for c in entry["calls"]] == ["1790000000.4", GAVE_UP]

    # Closed at the entry's older call: the whole entry, at its latest call.
    response = await bench.client.post(
        f"/api/callbacks/{GAVE_UP}/close", headers=supervisor,
        json={"reason": "other", "note": "Sudah datang\r\nke pos polisi"})

    assert response.status == 200, await response.text()
    closed = await response.json()
    conforms(closed, "CallbackClosure")
    assert (closed["call_id"], closed["note"], closed["calls"]) == (
        "1790000000.4", "Sudah datang ke pos polisi", ["1790000000.4", GAVE_UP])
    assert (await worklist(bench, supervisor))["entries"] == []
    (row,) = await fetch(bench.dsn, "SELECT * FROM callback_closures")
    assert (row["call_id"], row["reason"], row["closed_by"]) == ("1790000000.4", "other", "spv1")
    assert len(await fetch(bench.dsn, "SELECT * FROM audit_log WHERE action = "
                                      "'callback.close'")) == 1
    again = await bench.client.post(f"/api/callbacks/{GAVE_UP}/close", headers=supervisor,
                                    json={"reason": "handled"})
    assert again.status == 409


async def test_a_caller_answered_on_a_later_call_leaves_the_list(bench: Bench) -> None:
    await gave_up(bench, minutes=20)
    supervisor = await bench.account("spv1", "supervisor")
    assert len((await worklist(bench, supervisor))["entries"]) == 1
    await bench.happen(*call_facts("1790000000.5", "+62 812-3456-7890", at=ago(minutes=5)))
    assert (await worklist(bench, supervisor))["entries"] == []


async def called_back(bench: Bench, headers: dict[str, str], *, answered: datetime
                     ) -> int:
    """A call-back of GAVE_UP placed and answered by the caller at ``answered``: its leg."""
    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=headers)
    assert response.status == 202, await response.text()
    leg_id: int = (await response.json())["leg_id"]
    await bench.happen(LegProgressed(leg_id, "dialling", "", "1.9", answered),
                       LegProgressed(leg_id, "answered", "", "1.10", answered))
    assert (await worklist(bench, headers))["entries"] == []  # talking: off the list
    return leg_id


@pytest.mark.parametrize(("ends", "cut", "cause"), [
    # The caller's phone lost its network: its channel ends with a network cause, the
    # operator's (ended by the bridge) with a normal one after it.
    (((40, 41, "1.10"), (40, 16, "1.9")), "network", 41),
    # The operator's phone failed: its channel reports first, the caller's normally after.
    (((40, 16, "1.10"), (39, 102, "1.9")), "network", 102),
    # Answered, and gone at "halo" (or an announcement the operator hung up on).
    (((57, 16, "1.10"), (57, 16, "1.9")), "short", 16),
])
async def test_a_call_back_cut_short_puts_the_caller_back_on_the_list(
    bench: Bench, ends: tuple[tuple[int, int, str], ...], cut: str, cause: int
) -> None:
    """A call-back answered and then cut short leaves the caller waiting as a dropped call
    does: back on the list, the reason in words, the attempt saying why. Before, the
    caller's answer cleared the entry whatever happened next."""
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    answered = datetime.now(UTC) - timedelta(seconds=60)
    leg_id = await called_back(bench, operator, answered=answered)
    for seconds_ago, reported, channel in ends:
        await bench.happen(LegProgressed(leg_id, "ended", "ANSWER", channel,
                                         datetime.now(UTC) - timedelta(seconds=seconds_ago),
                                         reported))
    (entry,) = (await worklist(bench, operator))["entries"]
    assert (entry["call_id"], entry["reason"], entry["reason_label"]) == (
        GAVE_UP, "callback_cut", "Panggilan balik terputus atau tidak sampai ke penelepon")
    (attempt,) = entry["attempts"]
    assert (attempt["leg_id"], attempt["outcome"], attempt["cut"]) == (leg_id, "answered", cut)
    (row,) = await bench.legs()
    assert row["hangup_cause"] == cause
    async with bench.console("op1001") as browser:
        _, html, _ = await browser.get("/console/callbacks")
    assert "Panggilan balik terputus atau tidak sampai ke penelepon" in html
    assert attempt["cut_label"] in html
    # The operator may call them again.
    again = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    assert again.status == 202, await again.text()


@pytest.mark.parametrize("outage", ["restart", "crash"])
async def test_a_call_back_asterisk_went_away_under_puts_the_caller_back(bench: Bench,
                                                                        outage: str) -> None:
    """Asterisk restarted while the operator talked with the caller (the call-back's end came
    in the restart's burst of hang-ups, with a normal cause and a long talk), or crashed (its
    end never came): the listener's outage watch cuts the leg as it cuts the calls, and the
    caller is back on the list. Before, the call-back counted as having reached them (and a
    crashed one stayed "tersambung", holding the operator and any survey for three hours)."""
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    now = datetime.now(UTC)
    booted = now - timedelta(hours=2)
    watch = OutageWatch()
    watch.follow([AsteriskBooted(int((now - booted).total_seconds()) - 120,
                                 now - timedelta(seconds=120))])
    leg_id = await called_back(bench, operator, answered=now - timedelta(seconds=60))
    watch.follow([LegProgressed(leg_id, "dialling", "", "1.9", now - timedelta(seconds=60)),
                  LegProgressed(leg_id, "answered", "", "1.10", now - timedelta(seconds=60))])
    if outage == "restart":
        facts = watch.follow([
            LegProgressed(leg_id, "ended", "ANSWER", "1.10", now - timedelta(seconds=3), 16),
            AsteriskShutdown(True, now - timedelta(seconds=2))])
    else:
        watch.lost(now - timedelta(seconds=10), now - timedelta(seconds=10))
        facts = watch.follow([AsteriskBooted(1, now)])
    assert LegCut(leg_id, f"asterisk_{outage}", now - timedelta(seconds=3 if outage == "restart"
                                                                else 10)) in facts
    await bench.happen(*facts)
    (entry,) = (await worklist(bench, operator))["entries"]
    assert (entry["reason"], entry["attempts"][0]["cut"]) == ("callback_cut", "outage")
    assert entry["attempts"][0]["cut_label"] == (
        "Panggilan balik terputus karena gangguan sistem (Asterisk)")
    (row,) = await bench.legs()
    assert (row["cut_reason"], row["outcome"]) == (f"asterisk_{outage}", "answered")
    assert row["ended_at"] is not None


async def test_a_call_back_that_talked_and_ended_normally_keeps_the_caller_off(bench: Bench
                                                                              ) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    leg_id = await called_back(bench, operator,
                               answered=datetime.now(UTC) - timedelta(seconds=60))
    await bench.happen(LegProgressed(leg_id, "ended", "ANSWER", "1.10",
                                     datetime.now(UTC) - timedelta(seconds=5), 16))
    assert (await worklist(bench, operator))["entries"] == []


async def test_an_operator_says_a_call_back_reached_a_voicemail_and_the_caller_is_back(
    bench: Bench
) -> None:
    """A voicemail (or a carrier's announcement, or a stranger) answered the call-back and the
    operator talked past it: the caller left the list as reached. The operator finds the
    call-back among those that reached their caller and says "tidak tersambung dengan
    penelepon": the caller is back on the list, audited; said twice, the first word stands."""
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    supervisor = await bench.account("spv1", "supervisor")
    leg_id = await called_back(bench, operator,
                               answered=datetime.now(UTC) - timedelta(seconds=60))
    await bench.happen(LegProgressed(leg_id, "ended", "ANSWER", "1.10",
                                     datetime.now(UTC) - timedelta(seconds=30), 16))
    listed = await worklist(bench, operator)
    assert listed["entries"] == []
    (reached,) = listed["reached"]
    assert (reached["leg_id"], reached["call_id"], reached["number"], reached["cut"]) == (
        leg_id, GAVE_UP, CALLER, None)
    async with bench.console("op1001") as browser:
        _, html, _ = await browser.get("/console/callbacks")
        assert f'action="/console/callbacks/attempts/{leg_id}/unreached"' in html
        kind, text = await browser.flash(
            await browser.post(f"/console/callbacks/attempts/{leg_id}/unreached", {}))
    assert kind == "ok" and CALLER in text
    listed = await worklist(bench, supervisor)
    (entry,) = listed["entries"]
    assert (entry["call_id"], entry["reason"]) == (GAVE_UP, "callback_cut")
    assert (entry["attempts"][0]["cut"], entry["attempts"][0]["unreached_by"]) == (
        "unreached", "op1001")
    assert entry["attempts"][0]["cut_label"] == (
        "Tidak tersambung dengan penelepon (ditandai operator)")
    assert listed["reached"] == []
    # Said again (by the supervisor too): nothing changes, nothing more is audited.
    again = await bench.client.post(f"/api/callbacks/attempts/{leg_id}/unreached",
                                    headers=supervisor)
    assert again.status == 200, await again.text()
    body = await again.json()
    conforms(body, "CallbackLeg")
    assert body["unreached_by"] == "op1001"
    (audit,) = await fetch(bench.dsn,
                           "SELECT * FROM audit_log WHERE action = 'callback.unreached'")
    assert (audit["actor"], audit["object_id"], json.loads(audit["detail"])["leg_id"]) == (
        "op1001", GAVE_UP, leg_id)


async def test_two_operators_calling_one_caller_back_at_once_ring_them_once(bench: Bench
                                                                           ) -> None:
    """Two operators click "Hubungi kembali" on the same caller in the same instant: one
    call-back is placed, the other is told who is calling them."""
    await gave_up(bench)
    first = await bench.account("op1001", "operator", desk=True)
    second = await bench.account("op1002", "operator", desk=True, at="PJSIP/op1002")
    responses = await asyncio.gather(*(
        bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=headers)
        for headers in (first, second)))
    assert sorted(r.status for r in responses) == [202, 409]
    (refused,) = [r for r in responses if r.status == 409]
    error = await error_of(refused)
    assert error["code"] == "callback_busy" and "sedang dihubungi kembali oleh" in error[
        "message"]
    assert len(bench.originates()) == 1 and len(await bench.legs()) == 1


async def test_only_an_answered_call_back_can_be_said_not_to_have_reached(bench: Bench
                                                                         ) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/call", headers=operator)
    leg_id = (await response.json())["leg_id"]
    ringing = await bench.client.post(f"/api/callbacks/attempts/{leg_id}/unreached",
                                      headers=operator)
    assert ringing.status == 409
    assert (await error_of(ringing))["code"] == "callback_not_answered"
    for unknown in ("999999", "0", "abc", "1e3"):
        missing = await bench.client.post(f"/api/callbacks/attempts/{unknown}/unreached",
                                          headers=operator)
        assert missing.status == 404, unknown
    (row,) = await bench.legs()
    assert row["unreached_at"] is None


# -- who may do what, and input that must change nothing ---------------------------------------


async def test_roles(bench: Bench) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    supervisor = await bench.account("spv1", "supervisor")
    admin = await bench.account("adm1", "admin")
    close = {"reason": "handled"}
    # Operators and supervisors read the list; an admin does not.
    assert (await bench.client.get("/api/callbacks", headers=admin)).status == 403
    # An operator cannot close; a supervisor and an admin cannot call.
    assert (await bench.client.post(f"/api/callbacks/{GAVE_UP}/close", headers=operator,
                                    json=close)).status == 403
    for headers in (supervisor, admin):
        assert (await bench.client.post(f"/api/callbacks/{GAVE_UP}/call",
                                        headers=headers)).status == 403
    assert (await bench.client.post(f"/api/callbacks/{GAVE_UP}/close", headers=admin,
                                    json=close)).status == 403
    assert bench.originates() == [] and await bench.legs() == []
    assert await fetch(bench.dsn, "SELECT * FROM callback_closures") == []


@pytest.mark.parametrize("call_id", [
    "9.9",  # a well-formed id of no call
    "--help", "-x", "..%2F1.2", "1.2%0D%0AAction:%20Command", "1.2;rm", "1.2-3", "abc",
    "1" * 70 + ".1",
])
async def test_ids_that_are_not_ours_are_404_and_change_nothing(bench: Bench, call_id: str
                                                                ) -> None:
    await gave_up(bench)
    operator = await bench.account("op1001", "operator", desk=True)
    supervisor = await bench.account("spv1", "supervisor")

    called = await bench.client.post(f"/api/callbacks/{call_id}/call", headers=operator)
    closed = await bench.client.post(f"/api/callbacks/{call_id}/close", headers=supervisor,
                                     json={"reason": "handled"})

    assert (called.status, closed.status) == (404, 404)
    assert bench.originates() == [] and await bench.legs() == []
    assert await fetch(bench.dsn, "SELECT * FROM callback_closures") == []


@pytest.mark.parametrize("body", [
    {"reason": "--force"}, {"reason": "HANDLED"}, {"reason": ""}, {},
    {"reason": "other"}, {"reason": "other", "note": "\n\r\t"},
    {"reason": "handled", "note": "x" * 301}, {"reason": "handled", "note": 5},
    {"reason": "handled", "extra": "1"}, {"reason": ["handled"]},
])
async def test_hostile_closings_are_refused_and_change_nothing(bench: Bench,
                                                              body: dict[str, Any]) -> None:
    await gave_up(bench)
    supervisor = await bench.account("spv1", "supervisor")

    response = await bench.client.post(f"/api/callbacks/{GAVE_UP}/close", headers=supervisor,
                                       json=body)

    assert response.status == 422, await response.text()
    assert await fetch(bench.dsn, "SELECT * FROM callback_closures") == []
    assert len((await worklist(bench, supervisor))["entries"]) == 1


async def test_the_console_page_and_its_forms(bench: Bench) -> None:
    await gave_up(bench)
    await bench.happen(*call_facts(HIDDEN, "anonymous", at=ago(minutes=8), answered_at=None))
    await bench.accounts.create("op1001", "operator", PASSWORD, actor="test")
    await assign_desk(bench.database, load_menu(), "op1001", OPERATOR, {"fire": 5})
    async with bench.console("op1001") as browser:
        status, html, _ = await browser.get("/console/callbacks")
        assert status == 200
        assert f'action="/console/callbacks/{GAVE_UP}/call"' in html
        assert f'action="/console/callbacks/{HIDDEN}/call"' not in html
        assert "tidak bisa dihubungi" in html and "/close" not in html
        kind, text = await browser.flash(
            await browser.post(f"/console/callbacks/{GAVE_UP}/call", {}))
        assert kind == "ok" and CALLER in text
        kind, text = await browser.flash(
            await browser.post(f"/console/callbacks/{HIDDEN}/call", {}))
        assert kind == "error" and "disembunyikan" in text
    assert len(bench.originates()) == 1


async def test_a_caller_who_cannot_be_called_back_is_named_in_words(bench: Bench) -> None:
    """A withheld caller was listed as Asterisk's "anonymous", and a SIM-less phone as its raw
    IMEI with a bare "tidak bisa dihubungi", which read as a number to try by hand."""
    await bench.happen(*call_facts(HIDDEN, "anonymous", at=ago(minutes=8), answered_at=None))
    await bench.happen(*call_facts("1790000000.8", "urn:gsma:imei:35-209900-176148-1",
                                   at=ago(minutes=7), answered_at=None))
    await bench.accounts.create("spv1", "supervisor", PASSWORD, actor="test")
    async with bench.console("spv1") as browser:
        status, html, _ = await browser.get("/console/callbacks")
    assert status == 200
    cells = [re.sub(r"<[^>]+>", " ", cell).split() for cell in
             re.findall(r'<td class="caller-number">(.*?)</td>', html, re.S)]
    assert [" ".join(words) for words in cells] == [
        "(nomor disembunyikan) tidak bisa dihubungi",
        "urn:gsma:imei:35-209900-176148-1 tidak bisa dihubungi: ponsel tanpa kartu SIM "
        "(nomor IMEI)"], cells


async def test_a_call_back_whose_end_went_unreported_is_not_shown_going_on(bench: Bench
                                                                           ) -> None:
    """A call-back whose report never came (Asterisk or the line away meanwhile) stops
    counting as ringing at its ring limit; the list said "berlangsung" (going on) beside it
    for the rest of the day, next to a "Hubungi kembali" button."""
    await gave_up(bench, minutes=30)
    await bench.accounts.create("op1001", "operator", PASSWORD, actor="test")
    await assign_desk(bench.database, load_menu(), "op1001", OPERATOR, {"fire": 5})
    await execute(bench.dsn, """
        INSERT INTO call_legs (kind, call_id, operator, actor, number, target, requested_at)
        VALUES ('callback', $1, $2, 'op1001', $3, 'penelepon', now() - interval '10 minutes')
        """, GAVE_UP, OPERATOR, CALLER)
    async with bench.console("op1001") as browser:
        status, html, _ = await browser.get("/console/callbacks")
    assert status == 200
    assert f'action="/console/callbacks/{GAVE_UP}/call"' in html
    assert "op1001: tanpa kabar dari Asterisk" in html and "berlangsung" not in html


async def test_the_lists_times_carry_their_date_when_not_today(bench: Bench) -> None:
    """The list spans a day, and its calls and call-backs showed the time alone: a caller who
    gave up at 23:50 yesterday and again at 23:50 today read as two calls at one time, and
    yesterday's unanswered call-back as one just tried. Times not of today carry their date
    (in the centre's zone)."""
    await gave_up(bench, minutes=23 * 60 + 50)
    await gave_up(bench, "1790000000.7", minutes=10)
    await bench.accounts.create("op1001", "operator", PASSWORD, actor="test")
    await execute(bench.dsn, """
        INSERT INTO call_legs (kind, call_id, operator, actor, number, target, requested_at)
        VALUES ('callback', $1, $2, 'op1001', $3, 'penelepon',
                now() - interval '23 hours 45 minutes')
        """, GAVE_UP, OPERATOR, CALLER)
    zone = ZoneInfo("Asia/Jakarta")
    today = datetime.now(zone).date()

    def shown(at: datetime) -> str:
        local = at.astimezone(zone)
        return local.strftime("%H:%M" if local.date() == today else "%d-%m %H:%M")

    (early, late), (asked,) = (
        [row["arrived_at"] for row in await fetch(
            bench.dsn, "SELECT arrived_at FROM calls ORDER BY arrived_at")],
        [row["requested_at"] for row in await bench.legs()])
    async with bench.console("op1001") as browser:
        status, html, _ = await browser.get("/console/callbacks")
    assert status == 200
    details = [" ".join(text.split()) for text in
               re.findall(r'<span class="detail">(.*?)</span>', html, re.S)]
    reason = "Menutup telepon saat menunggu di antrean"
    assert details == [f"{shown(late)} · {reason}", f"{shown(early)} · {reason}",
                       f"{shown(asked)} op1001: tanpa kabar dari Asterisk"], details
    # Yesterday's, unless the test runs in the ten minutes before midnight (Jakarta).
    if early.astimezone(zone).date() != today:
        assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d", shown(early))


async def test_the_backlog_for_the_wallboard(bench: Bench) -> None:
    await gave_up(bench, minutes=30)
    await gave_up(bench, "1790000000.6", "0813111111111", minutes=10)
    await bench.happen(*call_facts(HIDDEN, "anonymous", at=ago(minutes=40), answered_at=None))
    summary = await bench.service.backlog()
    assert (summary.waiting, summary.not_possible) == (2, 1)
    assert summary.oldest_at is not None
    assert timedelta(minutes=29) < datetime.now(UTC) - summary.oldest_at < timedelta(minutes=30)


async def test_the_worklist_is_put_together_off_the_event_loop(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day's window of a busy line is thousands of calls, read again every two seconds for
    the wallboard in a surge: the loop that serves the wallboard, the console and the AMI
    listener's facts does not compute it (the reads stay on it)."""
    computed_on: list[threading.Thread] = []
    real = callback_model.worklist

    def spy(*args: Any, **kwargs: Any) -> Any:
        computed_on.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(callback_service, "worklist", spy)
    await gave_up(bench)
    assert [entry.call.call_id for entry in await bench.service.worklist()] == [GAVE_UP]
    assert computed_on and threading.current_thread() not in computed_on


async def test_readers_share_one_recent_reading_until_a_write(bench: Bench) -> None:
    await gave_up(bench)
    await bench.account("spv1", "supervisor")
    (supervisor,) = await bench.accounts.accounts()
    desks = bench.client.app[CONTEXT].desks
    service = CallbackService(bench.database, NoOriginate(), desks, bench.accounts,
                              CallbackConfig(cache_seconds=60))
    first = await service.worklist()
    await gave_up(bench, "1790000000.7", "0813222222222")  # arrives meanwhile
    # The list pages and the wallboard share one reading...
    assert await service.worklist() is first and (await service.backlog()).waiting == 1
    # ...until a write: a closing reads afresh (and finds the new caller too).
    await service.close(supervisor, GAVE_UP, "handled", "", remote_address="127.0.0.1")
    assert [e.call.call_id for e in await service.worklist()] == ["1790000000.7"]


class NoOriginate:
    """A second service on the bench's database that never talks to Asterisk."""

    def subscribe(self, event: str, handler: Any) -> None:
        pass

    async def send_action(self, action: Any) -> Any:
        raise AssertionError("no AMI action expected")

    async def send_list_action(self, action: Any) -> list[Any]:
        raise AssertionError("no AMI action expected")
