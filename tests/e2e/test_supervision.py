"""A supervisor listening in on a live call, against the real lab Asterisk: a caller (sipp) dials
112 and reports a fire, the operator's phone (the lab's UAS) answers; the supervisor, logged in
through the API, listens, whispers and barges, hanging up in between. Each time Asterisk rings
the supervisor's phone (another lab endpoint, answered by the same UAS) into ChanSpy on exactly
the operator's channel, after the audit entry was written. An operator asking the same is
refused and nothing is originated; so is a second click while the supervisor's phone is still
in ChanSpy. A second supervisor listens in beside the first, and stops at once when she
loses the right (her account disabled, her role changed). A supervisor whose phone is not
registered is told so, and a second audit entry records it. The last ChanSpy legs end with
the call, and the call tracker and the wallboard see one call answered by the operator,
nothing of the supervisors' phones.

Its own lab instance and ports, so it can run beside the other end-to-end modules.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from ivr.menu import load_menu
from telephony.accounts import commands as account_commands
from telephony.ami.channels import LiveChannel, live_channels, operator_channel
from telephony.app import Line
from telephony.desks.service import assign_desk
from telephony.lab import sipp
from telephony.settings import Settings
from telephony.wallboard.state import OperatorState, OperatorView
from tests.e2e.harness import ALL_SKILLS, ended_call, unique_caller
from tests.support.db import fetch
from tests.support.net import own_lab
from tests.support.polling import eventually
from tests.support.web import PASSWORD, make_context

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("supervision-test"),
    http_port=0,
    lab_operators=3,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
)
OPERATOR = "PJSIP/op1001"
SUPERVISOR_PHONE = "PJSIP/op1002"  # a lab endpoint like any other: it rings the same UAS
SECOND_SUPERVISOR_PHONE = "PJSIP/op1003"
UNREGISTERED_PHONE = "PJSIP/sup02"  # a registering desk phone that never registered
TALK_SECONDS = 40.0


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {OPERATOR: ALL_SKILLS}


@pytest.fixture(scope="module")
def phone_options() -> Mapping[str, Any]:
    """The phones send audio, as real ones do: a ChanSpy leg on a channel that carries none
    cannot be hung up (its audiohook never finishes detaching: asterisk/asterisk#978), and
    the supervisor hangs up between modes here."""
    return {"audio": True}


@pytest.fixture
async def api(line: Line, settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """The line's API, with a supervisor at their phone and an operator at hers."""
    accounts = make_context(settings, line.database).accounts
    menu = load_menu(settings.menu_file)
    await accounts.create("kepala", "supervisor", PASSWORD, actor="test")
    await accounts.create("budi", "supervisor", PASSWORD, actor="test")
    await accounts.create("sari", "supervisor", PASSWORD, actor="test")
    await accounts.create("wati", "operator", PASSWORD, actor="test")
    await accounts.create("pengelola", "admin", PASSWORD, actor="test")
    await assign_desk(line.database, menu, "wati", OPERATOR, {"fire": 5})
    await assign_desk(line.database, menu, "kepala", SUPERVISOR_PHONE, {})
    await assign_desk(line.database, menu, "budi", UNREGISTERED_PHONE, {},
                      realm=settings.sip_realm)
    await assign_desk(line.database, menu, "sari", SECOND_SUPERVISOR_PHONE, {})
    assert line.web.url is not None
    async with aiohttp.ClientSession(base_url=line.web.url) as http:
        yield http


async def bearer(http: aiohttp.ClientSession, username: str) -> Mapping[str, str]:
    response = await http.post("/api/session", json={"username": username,
                                                      "password": PASSWORD})
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def spies(line: Line) -> list[Mapping[str, Any]]:
    """The ChanSpy channels alive now, as CoreShowChannels reports them."""
    events = await line.listener.send_list_action({"Action": "CoreShowChannels"})
    return [dict(e) for e in events if str(e.get("Event")) == "CoreShowChannel"
            and e.get("Application") == "ChanSpy"]


async def test_a_supervisor_listens_whispers_and_barges_on_a_live_call_audited_first(
    line: Line, settings: Settings, api: aiohttp.ClientSession
) -> None:
    created: dict[str, datetime] = {}  # channel -> when Asterisk created it (Newchannel)

    def newchannel(event: Mapping[str, Any]) -> None:
        created[str(event["Channel"])] = datetime.fromtimestamp(float(event["Timestamp"]), UTC)

    line.listener.subscribe("Newchannel", newchannel)
    caller_id = unique_caller("0817")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="12", talk_seconds=TALK_SECONDS) as caller:

        async def answered() -> LiveChannel | None:
            return operator_channel(await live_channels(line.listener), OPERATOR)

        operator = await eventually("the operator answering", answered, 30.0)
        call_id = operator.linkedid

        async def talking() -> OperatorView | None:
            board = line.wallboard.snapshot().board
            return next((o for o in board.operators if o.operator == OPERATOR
                         and o.state is OperatorState.TALKING), None)

        before = await eventually("the wallboard showing the operator talking", talking)

        # An operator may not listen in: refused, nothing originated.
        wati = await bearer(api, "wati")
        response = await api.post("/api/supervision", headers=wati,
                                  json={"operator": OPERATOR, "mode": "listen"})
        assert response.status == 403, await response.text()
        assert await spies(line) == []
        assert not [c for c in created if c.startswith(SUPERVISOR_PHONE + "-")]

        kepala = await bearer(api, "kepala")
        legs: list[str] = []  # the supervisor's channel of each mode, in order
        for mode, options in (("listen", "qEu"), ("whisper", "qEuw"), ("barge", "qEuB")):
            response = await api.post("/api/supervision", headers=kepala,
                                      json={"operator": OPERATOR, "mode": mode})
            assert response.status == 202, await response.text()
            body = await response.json()
            assert (body["call_id"], body["phone"]) == (call_id, SUPERVISOR_PHONE)

            async def spying() -> Mapping[str, Any] | None:
                found = await spies(line)
                return found[0] if len(found) == 1 else None

            new = await eventually(f"the supervisor's phone in ChanSpy ({mode})", spying, 15.0)
            # The supervisor's phone, answered, spying on exactly the operator's channel.
            assert str(new["Channel"]).startswith(SUPERVISOR_PHONE + "-")
            assert (new["ChannelStateDesc"], new["ApplicationData"]) == (
                "Up", f"{operator.channel},{options}")
            assert new["CallerIDName"] == {"listen": "Dengarkan", "whisper": "Bisikkan",
                                           "barge": "Sela"}[mode] + " op1001"
            legs.append(str(new["Channel"]))
            if mode == "barge":
                break  # this leg stays until the call ends
            # Another click while the phone is in ChanSpy: refused, its phone not rung again.
            response = await api.post("/api/supervision", headers=kepala,
                                      json={"operator": OPERATOR, "mode": "barge"})
            assert response.status == 409, await response.text()
            assert (await response.json())["error"]["code"] == "phone_busy"
            # The supervisor hangs up; the caller and the operator talk on.
            await line.listener.send_action({"Action": "Hangup", "Channel": legs[-1]})

            async def hung_up() -> bool | None:
                return True if not await spies(line) else None

            await eventually("the supervisor's leg ending", hung_up, 10.0)
            assert operator_channel(await live_channels(line.listener), OPERATOR) == operator
        assert [c for c in created if c.startswith(SUPERVISOR_PHONE + "-")] == legs

        # A second supervisor listens in on the same call while the first barges.
        response = await api.post("/api/supervision", headers=await bearer(api, "sari"),
                                  json={"operator": OPERATOR, "mode": "listen"})
        assert response.status == 202, await response.text()

        async def both() -> list[Mapping[str, Any]] | None:
            found = await spies(line)
            return found if len(found) == 2 else None

        pair = await eventually("two supervisors in ChanSpy", both, 15.0)
        assert sorted((str(s["Channel"]).rpartition("-")[0], s["ApplicationData"])
                      for s in pair) == [(SUPERVISOR_PHONE, f"{operator.channel},qEuB"),
                                         (SECOND_SUPERVISOR_PHONE, f"{operator.channel},qEu")]

        # Sari loses the right while she listens: her listening ends now, not at her next
        # click, audited with the reason; kepala's barge goes on, and the caller and the
        # operator talk on. First the CLI disables her; enabled again, she listens again,
        # and an admin makes her an operator.
        async def only_kepala() -> bool | None:
            found = await spies(line)
            return True if [str(s["Channel"]).rpartition("-")[0] for s in found] == [
                SUPERVISOR_PHONE] else None

        assert await account_commands.disable(settings, "sari") == 0
        await eventually("sari's listening ended with her account disabled", only_kepala, 5.0)
        assert await account_commands.enable(settings, "sari") == 0
        response = await api.post("/api/supervision", headers=await bearer(api, "sari"),
                                  json={"operator": OPERATOR, "mode": "whisper"})
        assert response.status == 202, await response.text()
        await eventually("sari whispering again", both, 15.0)
        response = await api.patch("/api/admin/accounts/sari",
                                   headers=await bearer(api, "pengelola"),
                                   json={"role": "operator"})
        assert response.status == 200, await response.text()
        await eventually("sari's whisper ended with her new role", only_kepala, 5.0)
        assert operator_channel(await live_channels(line.listener), OPERATOR) == operator
        revoked = await fetch(settings.database_dsn or "",
                              "SELECT actor, object_id, detail FROM audit_log "
                              "WHERE action = 'supervision.revoked' ORDER BY audit_id")
        assert [(e["actor"], e["object_id"],
                 {k: v for k, v in json.loads(e["detail"]).items() if k != "leg"})
                for e in revoked] == [
            ("system", OPERATOR, {"account": "sari", "phone": SECOND_SUPERVISOR_PHONE,
                                  "channel": operator.channel, "mode": mode, "reason": why})
            for mode, why in (("listen", "Akun sari dinonaktifkan"),
                              ("whisper", "Peran akun sari kini Operator, bukan Supervisor"))]

        # A supervisor whose phone is not registered: Asterisk queues the Originate, then
        # says at once it failed. The supervisor is told so, not promised a ring; a second
        # entry records it.
        response = await api.post("/api/supervision", headers=await bearer(api, "budi"),
                                  json={"operator": OPERATOR, "mode": "listen"})
        assert response.status == 409, await response.text()
        assert (await response.json())["error"]["code"] == "phone_unreachable"
        attempt, failure = await fetch(settings.database_dsn or "",
                                       "SELECT actor, action, detail FROM audit_log "
                                       "WHERE actor = 'budi' AND action LIKE "
                                       "'supervision.%' ORDER BY audit_id")
        assert [(e["actor"], e["action"]) for e in (attempt, failure)] == [
            ("budi", "supervision.listen"), ("budi", "supervision.failed")]
        assert json.loads(failure["detail"])["reason"].startswith("Telepon supervisor "), failure

        entries = await fetch(settings.database_dsn or "",
                              "SELECT at, actor, action, object_id, detail FROM audit_log "
                              "WHERE action LIKE 'supervision.%' AND actor = 'kepala' "
                              "ORDER BY audit_id")
        modes = ("listen", "whisper", "barge")
        assert [(e["actor"], e["action"], e["object_id"]) for e in entries] == [
            ("kepala", f"supervision.{mode}", OPERATOR) for mode in modes]
        for entry, channel, mode in zip(entries, legs, modes, strict=True):
            assert json.loads(entry["detail"]) == {
                "call_id": call_id, "channel": operator.channel, "phone": SUPERVISOR_PHONE,
                "mode": mode}
            # Written before Asterisk created the supervisor's channel.
            assert entry["at"] < created[channel], (entry["at"], created[channel])

        # While the supervisor listens, the wallboard shows the operator talking since the
        # answer (no device state change), and nothing of the supervisor's phone.
        assert line.wallboard.snapshot().board.operators == [before]

        result = await caller.wait(TALK_SECONDS + 30)
        assert result.ok, result.errors

    # The call over, every ChanSpy leg ended with it (option E).
    async def no_spies() -> bool | None:
        return True if not await spies(line) else None

    await eventually("the ChanSpy legs ending with the call", no_spies, 15.0)
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.operator) == ("answered", OPERATOR)
    records = await line.database.run(lambda c: line.repository.call_records(c, limit=50))
    assert [r.call_id for r in records] == [call_id]  # the spying legs are no calls
