"""The HTTP API on the whole line: two callers report the same fire through the real Asterisk
(sipp, emergency then fire in the IVR), operators answer, incidents open on their own; then,
through the API as a supervisor would, the second call is linked to the first call's incident,
which then holds both calls and both recordings, and a recording is played, audited.

Its own lab instance and ports, so it can run beside the other end-to-end modules.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import Any, TypeVar

import aiohttp
import pytest

from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import Line
from telephony.lab import sipp
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("api-test"),
    lab_operators=5,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    recordings_settle_seconds=1.0,
    incident_upkeep_seconds=0.5,
    http_port=0,  # any free port: Line.web says which
)
OPERATORS = ("PJSIP/op1001", "PJSIP/op1002")
PASSWORD = "kata-sandi-supervisor"
T = TypeVar("T")


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {op: {"fire": 5} for op in OPERATORS}


async def json_of(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, (response.status, await response.text())
    return await response.json()


async def test_two_callers_about_one_fire_end_in_one_incident_with_both_recordings(
    line: Line, settings: Settings
) -> None:
    assert line.web.url is not None and line.web.port not in (None, 0)
    callers = [unique_caller("0814") for _ in range(2)]

    async def report_fire(caller_id: str, delay: float) -> sipp.SippResult:
        await asyncio.sleep(delay)  # the second caller rings a moment after the first
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                               dtmf="12", talk_seconds=5, audio=True) as caller:
            return await caller.wait()

    results = await asyncio.gather(*(report_fire(c, 2.0 * n) for n, c in enumerate(callers)))
    assert all(result.ok for result in results), [r.errors for r in results]

    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("supervisor1", "supervisor", PASSWORD, actor="test")
    await accounts.create("admin1", "admin", PASSWORD, actor="test")
    async with aiohttp.ClientSession(base_url=line.web.url) as http:
        login = await json_of(await http.post("/api/session", json={
            "username": "supervisor1", "password": PASSWORD}), 201)
        auth = {"Authorization": f"Bearer {login['token']}"}

        async def ended_call(caller_id: str) -> dict[str, Any] | None:
            calls = await json_of(await http.get("/api/calls", headers=auth,
                                                 params={"caller_number": caller_id}))
            found = [c for c in calls["calls"] if c["ended_at"] is not None]
            return found[0] if found else None

        calls = [await eventually(f"the call of {c}", functools.partial(ended_call, c), 45.0)
                 for c in callers]
        for call in calls:
            assert (call["ivr_category"], call["ivr_skill"], call["queue"],
                    call["disposition"]) == ("emergency", "fire", "fire", "answered")
            assert call["operator"] in OPERATORS

        async def incident_of(call_id: str) -> int | None:
            detail = await json_of(await http.get(f"/api/calls/{call_id}", headers=auth))
            number = detail["incident_id"]
            return int(number) if number is not None else None

        first, second = [
            await eventually(f"the incident of {call['call_id']}",
                             functools.partial(incident_of, call["call_id"]))
            for call in calls]
        assert first != second  # one incident each, until an operator sees they are one
        opened = await json_of(await http.get(f"/api/incidents/{first}", headers=auth))
        assert (opened["incident"]["report_type"], opened["incident"]["status"]) == (
            "fire", "new")

        response = await http.post(f"/api/incidents/{first}/calls", headers=auth,
                                   json={"call_id": calls[1]["call_id"]})
        await json_of(response)
        merged = await json_of(await http.get(f"/api/incidents/{second}", headers=auth))
        assert merged["incident"]["status"] == "cancelled" and merged["calls"] == []

        call_ids = [call["call_id"] for call in calls]

        async def both_recordings() -> list[dict[str, Any]] | None:
            detail = await json_of(await http.get(f"/api/incidents/{first}", headers=auth))
            assert [c["call_id"] for c in detail["calls"]] == call_ids
            mixed = [r for r in detail["recordings"] if r["kind"] == "mixed"]
            if len(mixed) == 2 and all(r["state"] == "done" for r in mixed):
                return mixed
            return None

        recordings = await eventually("both recordings stored", both_recordings, within=60)
        assert sorted(r["call_id"] for r in recordings) == sorted(call_ids)
        timeline = (await json_of(await http.get(f"/api/incidents/{first}",
                                                 headers=auth)))["timeline"]
        assert [e["kind"] for e in timeline] == ["created", "call_linked"]
        assert timeline[1]["actor"] == "supervisor1"

        played = recordings[1]
        response = await http.get(played["audio_url"], headers=auth)
        audio = await response.read()
        assert response.status == 200 and response.headers["Content-Type"].startswith(
            "audio/ogg")
        assert hashlib.sha256(audio).hexdigest() == played["sha256"]
        assert len(audio) == played["size_bytes"]
        response = await http.get(played["audio_url"],
                                  headers={**auth, "Range": "bytes=0-3"})
        assert response.status == 206 and await response.read() == b"OggS"

        # Admins run the system; they do not listen to callers.
        admin = await json_of(await http.post("/api/session", json={
            "username": "admin1", "password": PASSWORD}), 201)
        response = await http.get(played["audio_url"],
                                  headers={"Authorization": f"Bearer {admin['token']}"})
        assert response.status == 403

        audit = await json_of(await http.get("/api/audit", headers=auth, params={
            "object_type": "recording", "object_id": str(played["recording_id"])}))
        assert [(e["actor"], e["action"], e["detail"]["call_id"], e["detail"]["range"])
                for e in reversed(audit["entries"])] == [
            ("supervisor1", "recording.play", played["call_id"], None),
            ("supervisor1", "recording.play", played["call_id"], "bytes=0-3")]

        # The supervisor's reports count the two calls as the line recorded them, and the
        # regency head's summary one fire: the merged-away incident holds no call.
        days = sorted({call["shift_day"] for call in calls})
        report = await json_of(await http.get("/api/reports/shifts", headers=auth,
                                              params={"from": days[0], "to": days[-1]}))
        total = report["total"]
        assert (total["calls"], total["offered"], total["answered"]) == (2, 2, 2)
        assert [(q["queue"], q["figures"]["answered"]) for q in report["queues"]] == [
            ("fire", 2)]
        assert sum(o["figures"]["answered"] for o in report["operators"]) == 2
        response = await http.get("/api/reports/shifts.csv", headers=auth, params={
            "from": days[0], "to": days[-1], "table": "queues"})
        assert response.status == 200 and response.content_type == "text/csv"
        body = await response.read()
        assert body.startswith(b"\xef\xbb\xbfAntrean;")  # UTF-8 with its BOM, for Excel
        assert body.decode("utf-8").splitlines()[1].startswith("fire;2;2;2;0;")
        summary = await json_of(await http.get("/api/reports/daily", headers=auth,
                                               params={"day": days[0]}))
        if days == [days[0]]:
            assert [(t["report_type"], t["calls"], t["incidents"])
                    for t in summary["report_types"]] == [("fire", 2, 1)]
