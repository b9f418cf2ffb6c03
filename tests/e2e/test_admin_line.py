"""The admin's changes on the whole line, through the real Asterisk, sipp and PostgreSQL, made
over the HTTP API as the console makes them:

- an admin gives the main menu a new prompt text and a shorter wait and publishes it while a
  caller is in the IVR: that caller finishes the old flow with the old prompts, the next
  caller hears the new prompt (installed under the new version's name) and waits the new
  time;
- an admin changes a queue (strategy, ring timeout, wrap-up, max wait before overflow) while
  one caller talks to an operator and another waits for one: app_queue is reloaded, the
  dialplan's live setting holds the new wait, nobody is dropped, the operator stays logged
  in, and the waiting caller is answered once the operator is free;
- an admin changes a logged-in operator's skill level: the penalty changes at once; moves a
  logged-in operator's desk to another phone: the new phone takes the old one's queues;
- a caller choosing a skill nobody of which can take the call (nobody logged in, the last one
  logs out or pauses while the caller waits) goes on to all-operators at once, where a free
  operator of another skill answers, instead of waiting the skill queue's max wait; one who
  waits for a skilled operator on a call waits the max wait an admin set.

Its own lab instance and ports, so it can run beside the other end-to-end modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.actions import AmiActionError
from telephony.app import Line
from telephony.desks.operators import OperatorDesk, PauseReason
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ended_call, started_line, unique_caller
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("admin-test"),
    lab_operators=5,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    incident_upkeep_seconds=0.5,
    http_port=0,  # any free port: Line.web says which
)
PASSWORD = "kata-sandi-admin-112"
NEW_PROMPT = "Darurat, tekan satu. Lainnya, tetap di saluran."
NEW_WAIT_MS = 2000


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
async def line(lab: Lab, phones: sipp.Sipp, settings: Settings) -> AsyncIterator[Line]:
    """One line for the whole module."""
    async with started_line(lab, settings, {"PJSIP/op1001": {"general": 5}}) as line:
        yield line


@pytest.fixture(scope="module")
async def http(line: Line) -> AsyncIterator[aiohttp.ClientSession]:
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("admin1", "admin", PASSWORD, actor="test")
    assert line.web.url is not None
    async with aiohttp.ClientSession(base_url=line.web.url) as session:
        response = await session.post("/api/session", json={"username": "admin1",
                                                             "password": PASSWORD})
        assert response.status == 201, await response.text()
        session.headers["Authorization"] = f"Bearer {(await response.json())['token']}"
        yield session


async def json_of(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, (response.status, await response.text())
    return await response.json()


async def fetch_row(dsn: str, query: str, *args: object) -> asyncpg.Record | None:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchrow(query, *args)
    finally:
        await connection.close()


def seconds_of(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


async def ivr_seconds(settings: Settings, caller_id: str) -> float:
    """From the call's arrival to its joining a queue: the time it spent in the IVR."""

    async def probe() -> float | None:
        row = await fetch_row(
            str(settings.database_dsn),
            "SELECT arrived_at, queue_joined_at, ivr_outcome FROM calls "
            "WHERE caller_number = $1", caller_id)
        if row is None or row["queue_joined_at"] is None:
            return None
        assert row["ivr_outcome"] == "no_input"
        gap: timedelta = row["queue_joined_at"] - row["arrived_at"]
        return gap.total_seconds()

    return await eventually(f"{caller_id} in a queue", probe, within=60)


async def arrived(settings: Settings, caller_id: str) -> datetime:
    async def probe() -> datetime | None:
        row = await fetch_row(str(settings.database_dsn),
                              "SELECT arrived_at FROM calls WHERE caller_number = $1",
                              caller_id)
        return None if row is None else row["arrived_at"]

    return await eventually(f"{caller_id} arriving", probe, within=20)


def member_line(shown: str, interface: str) -> str:
    """The ``queue show`` line of one member."""
    return next(line for line in shown.splitlines() if f"({interface}" in line
                or line.strip().startswith(interface))


def login_age(line: str) -> int:
    """Seconds since the member logged in, from its ``queue show`` line."""
    return int(line.split("(login was ", 1)[1].split(" ", 1)[0])


async def test_a_published_menu_is_the_next_calls_and_not_the_current_ones(
        line: Line, lab: Lab, settings: Settings, http: aiohttp.ClientSession) -> None:
    versions = await json_of(await http.get("/api/admin/menu/versions"))
    first = versions["live_version_id"]
    detail = await json_of(await http.get(f"/api/admin/versions/{first}"))
    document = detail["document"]
    document["prompts"]["menu-utama"] = NEW_PROMPT
    document["menus"]["utama"]["timeout_ms"] = NEW_WAIT_MS
    saved = await json_of(await http.post("/api/admin/menu/versions", json={
        "document": document, "based_on": first, "note": "menu singkat"}), 201)
    version = saved["version"]["version_id"]
    preview = await json_of(await http.post(f"/api/admin/versions/{version}/preview"))
    assert {p["name"]: p["text"] for p in preview["prompts"]}["menu-utama"] == NEW_PROMPT

    before, after = unique_caller("0815"), unique_caller("0815")

    def call(caller_id: str) -> sipp.Sipp:
        # Presses nothing: the IVR asks once, waits, and queues the call by default.
        return sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           talk_seconds=30)

    async with call(before) as old_caller:
        await arrived(settings, before)  # in the IVR now, with the menu it started with
        published = await json_of(await http.post(f"/api/admin/versions/{version}/publish",
                                                  json={"note": "uji"}))
        assert published["state"] == "live"
        async with call(after) as new_caller:
            results = await asyncio.gather(old_caller.wait(), new_caller.wait())
    assert all(r.ok for r in results), [r.errors for r in results]

    sounds = lab.sounds_dir
    old_flow = seconds_of(sounds / "salam-112.wav") + seconds_of(sounds / "menu-utama.wav") + 5
    new_prompt = sounds / f"menu-utama-v{version}.wav"
    new_flow = (seconds_of(sounds / f"salam-112-v{version}.wav") + seconds_of(new_prompt)
                + NEW_WAIT_MS / 1000)
    assert seconds_of(new_prompt) < seconds_of(sounds / "menu-utama.wav") - 2  # the new text
    old_ivr, new_ivr = await ivr_seconds(settings, before), await ivr_seconds(settings, after)
    assert abs(old_ivr - old_flow) < 1.5, (old_ivr, old_flow)
    assert abs(new_ivr - new_flow) < 1.5, (new_ivr, new_flow)
    assert line.settings.live_menu_file.is_file()


async def test_a_queue_change_applies_with_calls_in_progress(
        line: Line, lab: Lab, settings: Settings, http: aiohttp.ClientSession) -> None:
    talking, waiting = unique_caller("0816"), unique_caller("0816")
    queue = "emergency-general"

    async def state() -> tuple[str, str]:
        return await lab.acli(f"queue show {queue}"), await lab.acli("core show channels")

    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=talking,
                           talk_seconds=25) as first:

        async def answered() -> bool | None:
            row = await fetch_row(str(settings.database_dsn),
                                  "SELECT answered_at FROM calls WHERE caller_number = $1",
                                  talking)
            return True if row is not None and row["answered_at"] is not None else None

        await eventually("the first caller talking to op1001", answered, within=30)
        # Long enough to outlast the first call (answered at most ~18 s after it began, it
        # ends 25 s after) and be answered by op1001 then.
        async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                               caller_id=waiting, talk_seconds=30) as second:

            async def queued() -> str | None:
                row = await fetch_row(
                    str(settings.database_dsn),
                    "SELECT channel FROM calls WHERE caller_number = $1 "
                    "AND queue_joined_at IS NOT NULL", waiting)
                return None if row is None else str(row["channel"])

            channel = await eventually("the second caller waiting", queued, within=30)
            shown, _ = await state()
            assert f". {channel} (wait:" in shown and "'leastrecent' strategy" in shown
            login = member_line(shown, "PJSIP/op1001")
            assert "(in call)" in login

            changed = await json_of(await http.put(f"/api/admin/queues/{queue}", json={
                "strategy": "rrmemory", "ring_timeout_seconds": 20, "retry_seconds": 2,
                "wrapup_seconds": 1, "announce_position": False, "announce_holdtime": False,
                "announce_frequency_seconds": 0, "max_wait_seconds": 120}))
            assert changed["updated_by"] == "admin1"

            shown, channels = await state()
            assert "'rrmemory' strategy" in shown  # app_queue took the new file
            assert f". {channel} (wait:" in shown  # the waiting caller is still waiting
            member = member_line(shown, "PJSIP/op1001")
            assert "(in call)" in member  # the answered call goes on
            # The same membership, not a new login: QueueReload kept the dynamic member.
            assert login_age(member) >= login_age(login)
            assert "2 active calls" in channels
            assert (lab.etc_dir / "siaga112-live" / f"max_wait.{queue}").read_text() == "120"
            results = await asyncio.gather(first.wait(), second.wait())
    assert all(r.ok for r in results), [r.errors for r in results]

    row = await fetch_row(str(settings.database_dsn),
                          "SELECT answered_at, operator, queue FROM calls "
                          "WHERE caller_number = $1", waiting)
    assert row is not None and row["answered_at"] is not None, row
    assert (row["operator"], row["queue"]) == ("PJSIP/op1001", queue)


async def test_a_new_skill_level_moves_a_logged_in_operator(
        line: Line, lab: Lab, http: aiohttp.ClientSession) -> None:
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("sari", "operator", PASSWORD, actor="test")
    await json_of(await http.put("/api/admin/operators/sari", json={
        "interface": "PJSIP/op1004", "skills": {"fire": 5, "medical": 4}}))
    desk = OperatorDesk(line.listener, load_menu())
    joined = await desk.log_in("PJSIP/op1004", {"fire": 5})  # Sari takes fire calls only
    try:
        assert "with penalty" not in member_line(await lab.acli("queue show fire"),
                                                 "PJSIP/op1004")  # level 5: penalty 0
        updated = await json_of(await http.put("/api/admin/operators/sari", json={
            "interface": "PJSIP/op1004", "skills": {"fire": 2, "medical": 4}}))
        assert updated["changes"] == [{"action": "penalty", "queue": "fire", "penalty": 3}]
        assert "with penalty 3" in member_line(await lab.acli("queue show fire"),
                                               "PJSIP/op1004")
        assert "PJSIP/op1004" not in await lab.acli("queue show medical")
    finally:
        await desk.log_out("PJSIP/op1004", joined)


async def visits_of(settings: Settings, caller_id: str, count: int) -> list[asyncpg.Record]:
    """The caller's ``count`` queue visits, in order, once all of them have ended."""

    async def probe() -> list[asyncpg.Record] | None:
        connection = await asyncpg.connect(str(settings.database_dsn))
        try:
            rows = await connection.fetch(
                "SELECT v.queue, v.joined_at, v.left_at, c.operator, c.answered_queue, "
                "c.answered_at, c.queue_joined_at, c.ivr_queue FROM queue_visits v "
                "JOIN calls c USING (call_id) WHERE c.caller_number = $1 "
                "ORDER BY v.joined_at", caller_id)
        finally:
            await connection.close()
        return rows if len(rows) >= count and all(r["left_at"] for r in rows) else None

    rows = await eventually(f"the queue visits of {caller_id}", probe, within=60)
    assert len(rows) == count, [dict(r) for r in rows]
    return rows


async def test_a_new_wait_before_overflow_applies_to_the_next_round(
        line: Line, settings: Settings, http: aiohttp.ClientSession) -> None:
    """The one operator who speaks Javanese is on a call: a caller choosing Javanese waits for
    them the javanese queue's max wait, read by the dialplan from the line's live setting,
    then reaches op1001 through the overflow."""
    await json_of(await http.put("/api/admin/queues/javanese", json={
        "strategy": "leastrecent", "ring_timeout_seconds": 5, "retry_seconds": 1,
        "wrapup_seconds": 0, "announce_position": False, "announce_holdtime": False,
        "announce_frequency_seconds": 0, "max_wait_seconds": 10}))
    desk = OperatorDesk(line.listener, load_menu())
    joined = await desk.log_in("PJSIP/op1005", {"javanese": 5})
    busy, caller_id = unique_caller("0817"), unique_caller("0817")
    try:
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=busy,
                               dtmf="8", dtmf_delay=2.0, talk_seconds=45) as talking:
            await eventually("op1005 talking", lambda: answered_by(settings, busy), within=30)
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=caller_id, dtmf="8", dtmf_delay=2.0,
                                   talk_seconds=25) as caller:
                result = await caller.wait()
            assert result.ok, result.errors
            await talking.wait()
    finally:
        await desk.log_out("PJSIP/op1005", joined)
    assert await answered_by(settings, busy) == "PJSIP/op1005"

    javanese, overflow = await visits_of(settings, caller_id, 2)
    assert (javanese["queue"], overflow["queue"]) == ("javanese", "all-operators")
    waited = (javanese["left_at"] - javanese["joined_at"]).total_seconds()
    assert 9 <= waited <= 12, waited  # not the default 60 s
    assert overflow["operator"] == "PJSIP/op1001"


async def answered_by(settings: Settings, caller_id: str) -> str | None:
    """The operator who answered the caller, once one has."""
    row = await fetch_row(str(settings.database_dsn),
                          "SELECT operator FROM calls WHERE caller_number = $1 "
                          "AND answered_at IS NOT NULL", caller_id)
    return None if row is None else str(row["operator"])


async def test_a_skill_nobody_can_take_sends_the_caller_to_every_operator_at_once(
        line: Line, settings: Settings) -> None:
    """Nobody who speaks Madurese is logged in, and op1001 (general) is free: a caller
    choosing Madurese does not wait the madurese queue's max wait (60 s) but rings op1001
    through all-operators at once, and the line records the IVR's choice and the one visit
    the caller made."""
    caller_id = unique_caller("0819")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="9", dtmf_delay=2.0, talk_seconds=20) as caller:
        result = await caller.wait()
    assert result.ok, result.errors

    (visit,) = await visits_of(settings, caller_id, 1)
    assert (visit["ivr_queue"], visit["queue"]) == ("madurese", "all-operators")
    assert (visit["operator"], visit["answered_queue"]) == ("PJSIP/op1001", "all-operators")
    waited = (visit["answered_at"] - visit["queue_joined_at"]).total_seconds()
    assert waited <= 3, waited
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.ivr_skill) == ("answered", "madurese")


@pytest.mark.parametrize("leaving", ["logs out", "pauses"])
async def test_a_caller_waiting_for_a_skill_moves_on_when_its_last_operator_leaves(
        line: Line, lab: Lab, settings: Settings, leaving: str) -> None:
    """op1003, the only fire operator, is on a call and a second fire caller waits for them
    (op1001, general, is free but not theirs). op1003 logs out (or pauses) while still on the
    call: the waiting caller leaves the fire queue within a retry and op1001 answers them
    through all-operators, not after fire's max wait (60 s). The wallboard showed them in fire
    and shows nobody waiting after."""
    desk = OperatorDesk(line.listener, load_menu())
    joined = await desk.log_in("PJSIP/op1003", {"fire": 5})
    talking, waiting = unique_caller("0820"), unique_caller("0820")

    def fire_callers() -> int:
        board = line.wallboard.snapshot().board
        return sum(len(q.callers) for q in board.queues if q.queue == "fire")

    try:
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=talking,
                               dtmf="12", talk_seconds=40) as first:
            assert await eventually("op1003 talking", lambda: answered_by(settings, talking),
                                    within=30) == "PJSIP/op1003"
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=waiting, dtmf="12", talk_seconds=25) as second:

                async def in_fire() -> bool | None:
                    shown = await lab.acli("queue show fire")
                    return True if "fire has 1 call" in shown and fire_callers() == 1 else None

                await eventually("the second caller waiting in fire", in_fire, within=30)
                if leaving == "logs out":
                    await desk.log_out("PJSIP/op1003", joined)
                    joined = []
                else:
                    await desk.pause("PJSIP/op1003", PauseReason.BREAK)
                left = datetime.now(UTC)
                operator = await eventually(
                    "the waiting caller answered", lambda: answered_by(settings, waiting),
                    within=20)
                results = [await second.wait(), await first.wait()]
    finally:
        if joined:  # paused, not logged out
            await desk.resume("PJSIP/op1003")
            await desk.log_out("PJSIP/op1003", joined)
    assert all(r.ok for r in results), [r.errors for r in results]

    fire, overflow = await visits_of(settings, waiting, 2)
    assert (fire["queue"], overflow["queue"]) == ("fire", "all-operators")
    assert (operator, overflow["answered_queue"]) == ("PJSIP/op1001", "all-operators")
    after = (overflow["answered_at"] - left).total_seconds()
    assert after <= 4, after
    assert fire_callers() == 0
    record = await ended_call(line, waiting)
    assert (record.disposition, record.queue, record.ivr_skill) == ("answered", "fire", "fire")


async def test_a_queue_removed_while_a_caller_waits_in_it_sends_them_on(
        line: Line, settings: Settings, http: aiohttp.ClientSession) -> None:
    """Dewi, the only Madurese operator, is on a call and a second Madurese caller waits for
    her. An admin publishes a menu without Madurese: the waiting caller is not left in a
    queue that no longer exists until its max wait (60 s) but goes on to all-operators, where
    op1001 answers, within seconds; Dewi's call goes on. The menu before is put back."""
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("dewi", "operator", PASSWORD, actor="test")
    await json_of(await http.put("/api/admin/operators/dewi", json={
        "interface": "PJSIP/op1002", "skills": {"madurese": 5}}))
    desk = OperatorDesk(line.listener, load_menu())
    joined = await desk.log_in("PJSIP/op1002", {"madurese": 5})
    versions = await json_of(await http.get("/api/admin/menu/versions"))
    live = versions["live_version_id"]
    document = (await json_of(await http.get(f"/api/admin/versions/{live}")))["document"]
    del document["menus"]["utama"]["options"]["9"]
    document["known_queues"].remove("madurese")
    saved = await json_of(await http.post("/api/admin/menu/versions", json={
        "document": document, "based_on": live, "note": "tanpa bahasa Madura"}), 201)
    talking, waiting = unique_caller("0821"), unique_caller("0821")
    try:
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=talking,
                               dtmf="9", dtmf_delay=2.0, talk_seconds=40) as first:
            assert await eventually("Dewi talking", lambda: answered_by(settings, talking),
                                    within=30) == "PJSIP/op1002"
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=waiting, dtmf="9", dtmf_delay=2.0,
                                   talk_seconds=30) as second:

                async def in_madurese() -> bool | None:
                    row = await fetch_row(
                        str(settings.database_dsn),
                        "SELECT v.queue FROM queue_visits v JOIN calls c USING (call_id) "
                        "WHERE c.caller_number = $1 AND v.left_at IS NULL", waiting)
                    return True if row is not None and row["queue"] == "madurese" else None

                await eventually("the second caller waiting in madurese", in_madurese,
                                 within=30)
                await json_of(await http.post(
                    f"/api/admin/versions/{saved['version']['version_id']}/publish",
                    json={"note": "uji"}))
                published = datetime.now(UTC)
                operator = await eventually(
                    "the waiting caller answered", lambda: answered_by(settings, waiting),
                    within=25)
                results = [await second.wait(), await first.wait()]
    finally:
        await json_of(await http.post(f"/api/admin/versions/{live}/publish",
                                      json={"note": "kembali"}))
        for queue in joined:
            with contextlib.suppress(AmiActionError):  # the publication took her out
                await desk.log_out("PJSIP/op1002", [queue])
    assert all(r.ok for r in results), [r.errors for r in results]
    madurese, overflow = await visits_of(settings, waiting, 2)
    assert (madurese["queue"], overflow["queue"]) == ("madurese", "all-operators")
    assert (operator, overflow["answered_queue"]) == ("PJSIP/op1001", "all-operators")
    after = (overflow["answered_at"] - published).total_seconds()
    assert after <= 5, after
    assert (await ended_call(line, talking)).operator == "PJSIP/op1002"


def odd_but_valid(document: dict[str, Any]) -> dict[str, Any]:
    """A menu a new site might publish: '*' and '#' as options, a sub-menu with every key,
    unicode in a prompt text."""
    odd = copy.deepcopy(document)
    info = {"category": "information", "skill": "general", "queue": "information"}
    odd["menus"]["utama"]["options"]["#"] = {"route": info}
    odd["menus"]["utama"]["options"]["*"] = {"route": {**info, "queue": "non-emergency",
                                                       "category": "complaint"}}
    odd["menus"]["darurat"]["options"] = {
        key: {"route": {"category": "emergency", "skill": "fire", "queue": "fire"}}
        for key in "0123456789*#"}
    odd["prompts"]["menu-utama"] = "Darurat — tekan satu ✓. Informasi, tekan pagar."
    return odd


ODD_AND_REFUSED: list[tuple[str, Any, str]] = [
    ("a menu without keys", lambda d: d["menus"]["utama"].update(options={}),
     "paling sedikit satu tombol"),
    ("a sub-menu without keys", lambda d: d["menus"]["darurat"].update(options={}),
     "paling sedikit satu tombol"),
    ("a route to a queue the menu does not know",
     lambda d: d["menus"]["utama"]["options"]["2"]["route"].update(queue="tidak-ada"),
     "tidak ada di known_queues"),
    ("a prompt with no text", lambda d: d["prompts"].update({"menu-utama": "  "}),
     "teks kosong"),
    ("a prompt no text names", lambda d: d["prompts"].pop("menu-darurat"),
     "tidak ada teks untuk menu-darurat"),
    ("a very long prompt text", lambda d: d["prompts"].update({"menu-utama": "a" * 5000}),
     "terlalu panjang"),
    ("a number as a greeting", lambda d: d["lines"]["112"].update(greeting=112),
     "harus teks"),
    ("a number as a queue", lambda d: d["known_queues"].append(7), "harus teks"),
    # app_queue takes [general] for its own settings: such a queue would never exist.
    ("a queue named general",
     lambda d: (d["known_queues"].append("general"),
                d["menus"]["utama"]["options"]["2"]["route"].update(queue="general")),
     "dipakai Asterisk untuk pengaturan umumnya"),
]


async def test_odd_documents_are_refused_and_odd_valid_ones_run_with_callers_on_the_line(
        line: Line, settings: Settings, http: aiohttp.ClientSession) -> None:
    """An admin of a new site publishes as they like: each odd but invalid document is
    refused with a reason (422, in Bahasa Indonesia) and changes nothing; an odd valid one is
    published while a caller is in the IVR, and then two publications race (a rollback and
    the odd version again): one of them is live, the file the line runs is that one, and
    every caller reaches an operator."""
    listed = await json_of(await http.get("/api/admin/menu/versions"))
    live = listed["live_version_id"]
    document = (await json_of(await http.get(f"/api/admin/versions/{live}")))["document"]
    live_text = line.settings.live_menu_file.read_text(encoding="utf-8") if (
        line.settings.live_menu_file.is_file()) else None
    for what, edit, reason in ODD_AND_REFUSED:
        odd = copy.deepcopy(document)
        edit(odd)
        refused = (await json_of(await http.post("/api/admin/menu/versions", json={
            "document": odd, "based_on": live, "note": what}), 422))["error"]
        assert refused["field"] == "document", (what, refused)
        assert reason in refused["message"], (what, refused)
    after = await json_of(await http.get("/api/admin/menu/versions"))
    assert after == listed  # no version saved, the same one live
    assert (line.settings.live_menu_file.read_text(encoding="utf-8") if (
        line.settings.live_menu_file.is_file()) else None) == live_text

    saved = await json_of(await http.post("/api/admin/menu/versions", json={
        "document": odd_but_valid(document), "based_on": live, "note": "tombol # dan *"}), 201)
    odd_id = saved["version"]["version_id"]
    in_ivr, pound, later = (unique_caller("0818") for _ in range(3))
    # Two operators for these two callers, so each is answered whichever comes first: a
    # publication made under load can outlast the first caller's IVR (about 9 s with the
    # first test's menu), and with one operator the second caller would find them busy.
    desk = OperatorDesk(line.listener, load_menu())
    joined = await desk.log_in("PJSIP/op1005", {"general": 5})
    try:
        # Callers who press nothing stay past the IVR until an operator answers.
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=in_ivr,
                               talk_seconds=25) as first:
            await arrived(settings, in_ivr)  # in the IVR of the version before
            await json_of(await http.post(f"/api/admin/versions/{odd_id}/publish",
                                          json={"note": "uji"}))
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=pound, dtmf="#", dtmf_delay=1.0,
                                   talk_seconds=2) as second:
                results = [await first.wait(), await second.wait()]
    finally:
        await desk.log_out("PJSIP/op1005", joined)
    assert all(r.ok for r in results), [r.errors for r in results]
    both = {"PJSIP/op1001", "PJSIP/op1005"}
    record = await ended_call(line, pound)
    assert (record.ivr_choice, record.queue) == ("#", "information")
    assert record.operator in both, record
    assert (await ended_call(line, in_ivr)).operator in both

    # Two admins at once: a rollback to the version before, and the odd one again.
    raced = await asyncio.gather(*(
        http.post(f"/api/admin/versions/{version}/publish", json={"note": "bersamaan"})
        for version in (live, odd_id)))
    assert [r.status for r in raced] == [200, 200]
    listed = await json_of(await http.get("/api/admin/menu/versions"))
    winner = listed["live_version_id"]
    assert [v["version_id"] for v in listed["versions"] if v["state"] == "live"] == [winner]
    assert load_menu(line.settings.live_menu_file).version == winner
    last = await fetch_row(str(settings.database_dsn),
                           "SELECT version_id FROM config_publications WHERE kind = 'menu' "
                           "ORDER BY publication_id DESC LIMIT 1")
    assert last is not None and last["version_id"] == winner
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=later,
                           talk_seconds=25) as third:
        result = await third.wait()
    assert result.ok, result.errors
    assert (await ended_call(line, later)).operator == "PJSIP/op1001"


async def test_a_logged_in_operators_desk_moved_to_another_phone_takes_their_queues(
        line: Line, lab: Lab, http: aiohttp.ClientSession) -> None:
    """Tono is logged in (fire) at op1005 when an admin puts his desk at op1003: in
    Asterisk op1003 takes his place in fire, and op1005 is in no queue to be rung for him."""
    accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
    await accounts.create("tono", "operator", PASSWORD, actor="test")
    await json_of(await http.put("/api/admin/operators/tono", json={
        "interface": "PJSIP/op1005", "skills": {"fire": 4}}))
    desk = OperatorDesk(line.listener, load_menu())
    joined = await desk.log_in("PJSIP/op1005", {"fire": 4})
    try:
        moved = await json_of(await http.put("/api/admin/operators/tono", json={
            "interface": "PJSIP/op1003", "skills": {"fire": 4}}))
        assert moved["operator"]["interface"] == "PJSIP/op1003"
        assert joined == ["all-operators", "fire"]
        for queue, penalty in (("fire", 1), ("all-operators", 4)):
            shown = await lab.acli(f"queue show {queue}")
            assert "PJSIP/op1005" not in shown, shown
            assert f"with penalty {penalty}" in member_line(shown, "PJSIP/op1003"), shown
    finally:
        for interface in ("PJSIP/op1003", "PJSIP/op1005"):
            for queue in joined:
                with contextlib.suppress(AmiActionError):
                    await desk.log_out(interface, [queue])
