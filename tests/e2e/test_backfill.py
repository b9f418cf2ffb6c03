"""Calls made while ``serve`` is down are rebuilt from Asterisk's queue_log (issue 13 items 1
and 2), in the real lab: the line is stopped, sipp callers reach a sipp operator (the IVR
being down, they fail open to the line's queue), and the line started again must hold each
call whole (its IVR outcome and hang-up cause too), marked backfilled, its recording paired
and its incident opened; a call still
talking when the line starts gets its arrival from its Uniqueid and its queue and wait from
the log; starting again adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from ivr.menu import load_menu
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.channels import LiveChannel, live_channels, operator_channel
from telephony.app import Line, running_line
from telephony.asterisk.log_rotation import LogRotation
from telephony.asterisk.queue_log import parse_line
from telephony.calls.history import queue_log_path
from telephony.calls.legs import LegKind
from telephony.calls.store import LegRepository
from telephony.db.connection import Database
from telephony.desks.operators import OperatorDesk
from telephony.desks.service import assign_desk
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.lab.line import LineServer
from telephony.settings import Settings
from telephony.transfers.model import TRANSFER_CONTEXT
from tests.e2e.harness import unique_caller
from tests.support.calls import call_facts
from tests.support.net import own_lab, spare_port
from tests.support.polling import eventually
from tests.support.relay import Relay

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("backfill-test"),
    http_port=0,
    lab_operators=4,
    queue_max_wait=60,
    queue_wrapup_seconds=0,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_settle_seconds=1.0,
)
OPERATOR = "PJSIP/op1001"
SKILLS = {"general": 5, "medical": 5}


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Line]:
    """``serve``, up until the block ends (then down: no AMI session, no FastAGI)."""
    async with running_line(settings) as line:
        async with asyncio.timeout(30):
            await line.listener.wait_ready()  # the first resync, and its backfill, are done
        yield line


async def settled(line: Line) -> None:
    """The resync's facts are in the database (the listener's backlog is empty)."""
    async def empty() -> bool | None:
        return True if line.listener.facts_waiting == 0 else None
    await eventually("the listener's backlog written", empty, within=10)


async def place(settings: Settings, caller_id: str, number: str, stay: float,
                dtmf: str = "") -> sipp.SippResult:
    async with sipp.caller(settings.sip_host, settings.sip_port, number, caller_id=caller_id,
                           talk_seconds=stay, audio=True, dtmf=dtmf) as caller:
        return await caller.wait()


async def row(line: Line | Database, sql: str, *args: Any) -> asyncpg.Record | None:
    async def work(connection: asyncpg.Connection) -> asyncpg.Record | None:
        found: asyncpg.Record | None = await connection.fetchrow(sql, *args)
        return found
    return await (line.database if isinstance(line, Line) else line).run(work)


async def events_of(line: Line, call_ids: list[str]) -> list[tuple[str, str, str]]:
    async def work(connection: asyncpg.Connection) -> list[tuple[str, str, str]]:
        rows = await connection.fetch(
            "SELECT call_id, kind, dedupe_key FROM call_events WHERE call_id = ANY($1::text[])"
            " ORDER BY event_id", call_ids)
        return [(r["call_id"], r["kind"], r["dedupe_key"]) for r in rows]
    return await line.database.run(work)


async def logged(settings: Settings, caller_id: str, event: str) -> tuple[str, list[str]] | None:
    """(call id, data) of the caller's ``event`` in the lab's queue_log, once it is there."""
    try:
        lines = queue_log_path(settings).read_bytes().splitlines()
    except FileNotFoundError:
        return None
    entries = [e for raw in lines if (e := parse_line(raw)) is not None]
    uid = next((e.call_id for e in entries
                if e.event == "ENTERQUEUE" and caller_id in e.data), None)
    if uid is None:
        return None
    return next(((uid, list(e.data)) for e in entries
                 if e.call_id == uid and e.event == event), None)


CALL = """SELECT c.*, (SELECT count(*) FROM calls) AS calls_total FROM calls c
          WHERE caller_number = $1"""


async def test_calls_made_while_serve_was_down_are_backfilled_whole(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    async with serving(settings) as line:
        # A desk joins the queues under the account's display name, which is what app_queue
        # then logs as the agent: the backfill must name the operator by the interface.
        accounts = AccountService(line.database, PasswordHasher(), AccountConfig())
        await accounts.create("siti", "operator", "kata-sandi-panjang-1", actor="test",
                              display_name="Siti Aminah")
        await assign_desk(line.database, load_menu(settings.menu_file), "siti", OPERATOR,
                          SKILLS)
        desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
        queues = await desk.log_in(OPERATOR, SKILLS, "Siti Aminah")
    # serve is down: Asterisk alone takes these calls; the operator stays in the queues.
    callers = {unique_caller("0813"): "112", unique_caller("0813"): "119"}
    try:
        for caller_id, number in callers.items():
            assert (await place(settings, caller_id, number, stay=3)).ok
        async with serving(settings) as line:
            records = {}
            for caller_id, number in callers.items():
                record = await row(line, CALL, caller_id)
                assert record is not None, f"the call of {caller_id} was not backfilled"
                records[caller_id] = record
                assert record["backfilled"] is True
                assert record["line"] == number
                assert record["queue"] == ("emergency-general" if number == "112"
                                           else "medical")
                assert record["queue_position"] == 1
                assert record["wait_seconds"] is not None and record["wait_seconds"] <= 3
                assert record["operator"] == OPERATOR
                assert record["answered_queue"] == record["queue"]
                assert 2 <= record["talk_seconds"] <= 5
                assert record["ended_at"] is not None
                assert record["arrived_at"] <= record["answered_at"] <= record["ended_at"]
                # The dialplan logged the IVR's outcome (serve was down: it failed open) and
                # the hang-up cause (the caller's BYE: normal clearing), as the AMI would.
                assert record["ivr_outcome"] == "failopen"
                assert (record["hangup_cause"], record["hangup_cause_text"]) == (
                    16, "Normal Clearing")
                # The arrival is the Uniqueid's epoch: the channel's creation second.
                epoch = int(record["call_id"].split(".")[0])
                assert record["arrived_at"] == datetime.fromtimestamp(epoch, UTC)
            ids = [r["call_id"] for r in records.values()]
            for call_id in ids:
                # Paired and stored by the recordings worker, as any ended call is ...
                await eventually(f"the recording of {call_id}", functools.partial(
                    row, line, "SELECT state FROM recordings WHERE call_id = $1 "
                    "AND state = 'done'", call_id), within=60)
                # ... and an incident opened, as for every answered emergency call.
                await eventually(f"the incident of {call_id}", functools.partial(
                    row, line, "SELECT incident_id FROM incident_calls WHERE call_id = $1",
                    call_id), within=30)
            before = await events_of(line, ids)
            total = records[next(iter(callers))]["calls_total"]
        # A second restart reads the log from its cursor: nothing new, nothing twice.
        async with serving(settings) as line:
            await settled(line)
            assert await events_of(line, ids) == before
            again = await row(line, "SELECT count(*) AS n FROM calls")
            assert again is not None and again["n"] == total
    finally:
        async with serving(settings) as line:
            await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_out(
                OPERATOR, queues)


async def test_a_call_talking_when_serve_starts_is_resynced_whole_and_only_once(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    async with serving(settings) as line:
        desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
        queues = await desk.log_in(OPERATOR, SKILLS)
    caller_id = unique_caller("0814")
    placed = asyncio.create_task(place(settings, caller_id, "112", stay=25))
    try:
        uid, connect = await eventually("the caller connected while serve is down",
                                        lambda: logged(settings, caller_id, "CONNECT"),
                                        within=20)
        async with serving(settings) as line:
            # The resync's facts (a live call's) go through the listener's backlog.
            record = await eventually("the resynced call", lambda: row(
                line, CALL + " AND wait_seconds IS NOT NULL", caller_id))
            assert record["call_id"] == uid
            assert record["ended_at"] is None  # still talking
            epoch = int(uid.split(".")[0])
            assert record["arrived_at"] == datetime.fromtimestamp(epoch, UTC)
            assert (record["queue"], record["queue_position"]) == ("emergency-general", 1)
            assert record["wait_seconds"] == int(connect[0])  # CONNECT's holdtime
            assert record["operator"] == OPERATOR
            assert record["arrived_at"] <= record["answered_at"]
            assert record["backfilled"] is True
            await settled(line)
            before = await events_of(line, [uid])
        for _ in range(2):
            async with serving(settings) as line:
                await settled(line)
                assert await events_of(line, [uid]) == before
        async with serving(settings) as line:
            assert (await placed).ok
            done = await eventually("the call's end", lambda: row(
                line, "SELECT * FROM calls WHERE call_id = $1 AND ended_at IS NOT NULL", uid))
            assert done["hangup_cause"] == 16  # seen live this time
            assert done["talk_seconds"] is not None and done["talk_seconds"] >= 20
            await desk_log_out(line, settings, queues)
    finally:
        await caller_gone(placed)


async def test_a_call_live_across_a_restart_keeps_its_events_in_causal_order(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    # Trial: after serve restarted during a call, the catch-up's ivr_variables were stamped
    # at the Uniqueid's whole second, before the call_started seen live at its sub-second.
    caller_id = unique_caller("0815")
    async with serving(settings) as line:
        desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
        queues = await desk.log_in(OPERATOR, SKILLS)
        placed = asyncio.create_task(place(settings, caller_id, "119", stay=15))
        record = await eventually("the call answered in the store", lambda: row(
            line, CALL + " AND answered_at IS NOT NULL", caller_id), within=20)
    try:
        async with serving(settings) as line:  # restarted while the caller talks
            await settled(line)
            assert (await placed).ok
            await eventually("the call's end", lambda: row(
                line, CALL + " AND ended_at IS NOT NULL", caller_id))
            await settled(line)
            timeline = await line.database.run(lambda c: c.fetch(
                "SELECT kind, at FROM call_events WHERE call_id = $1 ORDER BY at, event_id",
                record["call_id"]))
            await desk_log_out(line, settings, queues)
    finally:
        await caller_gone(placed)
    kinds = [r["kind"] for r in timeline]
    assert kinds[0] == "call_started", timeline
    assert kinds.count("ivr_variables") >= 2, kinds  # the live one and the resync's
    assert kinds[-1] == "call_ended", kinds


async def caller_gone(placed: asyncio.Task[sipp.SippResult]) -> None:
    """Stop the caller's sipp if a failed test left it running."""
    if not placed.done():
        placed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await placed


async def desk_log_out(line: Line, settings: Settings, queues: list[str]) -> None:
    await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_out(OPERATOR, queues)


async def test_a_call_that_ended_while_serve_was_down_is_backfilled_not_vanished(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    # Trial 2026-12-06: the store had the call open, the caller hung up while serve was down,
    # and on the restart the vanish watch's first check ran during the resync's read of the
    # queue_log: the call was closed as vanished just before the backfill wrote its real end.
    caller_id = unique_caller("0814")
    async with serving(settings) as line:
        desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
        queues = await desk.log_in(OPERATOR, SKILLS)
        placed = asyncio.create_task(place(settings, caller_id, "119", stay=15))
        await eventually("the call answered in the store", lambda: row(
            line, CALL + " AND answered_at IS NOT NULL", caller_id), within=20)
    try:
        assert (await placed).ok  # the caller hangs up while serve is down
        async with serving(settings) as line:
            record = await eventually("the call's end", lambda: row(
                line, CALL + " AND ended_at IS NOT NULL", caller_id))
            await settled(line)
            kinds = [kind for _, kind, _ in await events_of(line, [record["call_id"]])]
            await desk_log_out(line, settings, queues)
    finally:
        await caller_gone(placed)
    assert record["backfilled"] is True and record["vanished"] is False
    assert (record["hangup_cause"], record["hangup_cause_text"]) == (16, "Normal Clearing")
    assert "call_vanished" not in kinds, kinds


async def test_calls_live_when_serve_is_killed_are_recorded_whole_and_once(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    # serve SIGKILLed (its call path child with it, nothing flushed on the way out) with one
    # caller talking, one waiting in a queue and one in the IVR's menu, then started again
    # while all three are still on the line.
    async with serving(settings) as line:
        desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
        queues = await desk.log_in(OPERATOR, SKILLS)
    talking, waiting, choosing = (unique_caller("0811") for _ in range(3))
    process = LineServer(replace(settings, http_port=spare_port("backfill-test")))
    placed: list[asyncio.Task[sipp.SippResult]] = []
    try:
        await process.start()
        db = Database(settings)  # the store, read beside the line server's process
        try:
            placed.append(asyncio.create_task(place(settings, talking, "119", stay=25)))
            await eventually("the first caller talking", lambda: row(
                db, CALL + " AND answered_at IS NOT NULL", talking), within=20)
            # The one operator is taken: the next caller waits in the queue.
            placed.append(asyncio.create_task(place(settings, waiting, "119", stay=22)))
            await eventually("the second caller queued", lambda: row(
                db, CALL + " AND queue_joined_at IS NOT NULL", waiting), within=20)
            placed.append(asyncio.create_task(place(settings, choosing, "112", stay=20)))
            await eventually("the third caller in the menu", lambda: row(
                db, CALL + " AND ivr_outcome IS NULL", choosing), within=10)
            process.kill()  # in the menu: the dialplan fails the caller open
            async with asyncio.timeout(10):
                await process.wait()
            await process.start()
            results = await asyncio.gather(*placed)
            assert all(r.ok for r in results), results

            async def ended() -> list[asyncpg.Record] | None:
                rows = await db.run(lambda c: c.fetch(
                    "SELECT * FROM calls WHERE caller_number = ANY($1::text[])",
                    [talking, waiting, choosing]))
                return rows if len(rows) == 3 and all(r["ended_at"] for r in rows) else None

            rows = {r["caller_number"]: r for r in await eventually("the three ends", ended)}
            events = await db.run(lambda c: c.fetch(
                "SELECT call_id, kind, count(*) AS n FROM call_events"
                " WHERE call_id = ANY($1::text[]) GROUP BY call_id, kind",
                [r["call_id"] for r in rows.values()]))
        finally:
            await db.close()
    finally:
        await process.stop()
        for task in placed:
            await caller_gone(task)
        async with serving(settings) as line:
            await desk_log_out(line, settings, queues)
    for record in rows.values():
        assert record["arrived_at"] is not None and record["queue"] is not None, dict(record)
        assert record["ivr_outcome"] is not None, dict(record)
        assert record["hangup_cause"] is not None and not record["vanished"], dict(record)
        assert record["arrived_at"] <= record["ended_at"], dict(record)
    assert rows[talking]["answered_at"] is not None, [
        (r["caller_number"] == talking, r["call_id"], r["queue"], r["answered_at"], r["operator"],
         r["ivr_outcome"], r["backfilled"]) for r in rows.values()]
    assert rows[talking]["talk_seconds"] >= 15, dict(rows[talking])  # 25 s less the IVR
    assert rows[waiting]["queue"] == "medical" and rows[waiting]["queue_position"] == 1, {
        k: v for k, v in rows[waiting].items() if v is not None}
    # It hung up waiting, or was answered once the first caller was done.
    assert (rows[waiting]["abandoned_at"] is None) != (rows[waiting]["answered_at"] is None), {
        k: v for k, v in rows[waiting].items() if v is not None}
    assert rows[choosing]["ivr_outcome"] == "failopen", dict(rows[choosing])
    once = {"call_started", "call_ended", "operator_answered", "operator_completed",
            "queue_abandoned", "call_backfilled"}
    assert not [dict(e) for e in events if e["kind"] in once and e["n"] > 1], events


async def test_calls_that_begin_or_end_while_the_ami_session_is_cut_are_recorded_whole(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    # The line's AMI session runs through a relay the test cuts (a network fault, a manager
    # restart) while Asterisk and the IVR carry on: a talking caller hangs up, another calls
    # and hangs up waiting, a third calls and is still waiting when the session is back.
    talking, gone, waiting = (unique_caller("0810") for _ in range(3))
    placed: list[asyncio.Task[sipp.SippResult]] = []
    async with Relay(("127.0.0.1", settings.ami_port), port=spare_port("backfill-test"),
                     source="127.0.0.1") as relay:
        try:
            async with serving(replace(settings, ami_port=relay.port)) as line:
                desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
                queues = await desk.log_in(OPERATOR, SKILLS)
                placed.append(asyncio.create_task(place(settings, talking, "119", stay=12)))
                await eventually("the first caller talking", lambda: row(
                    line, CALL + " AND answered_at IS NOT NULL", talking), within=20)
                await relay.cut()
                # Nobody in the information queue: these two wait there.
                placed.append(asyncio.create_task(
                    place(settings, gone, "112", stay=7, dtmf="3")))
                placed.append(asyncio.create_task(
                    place(settings, waiting, "112", stay=25, dtmf="3")))
                async with asyncio.timeout(30):
                    done = await asyncio.gather(placed[0], placed[1])
                assert all(r.ok for r in done), done
                await relay.restore()

                async def ended() -> list[asyncpg.Record] | None:
                    rows = await line.database.run(lambda c: c.fetch(
                        "SELECT * FROM calls WHERE caller_number = ANY($1::text[])",
                        [talking, gone, waiting]))
                    return rows if len(rows) == 3 and all(r["ended_at"] for r in rows) \
                        else None

                assert (await placed[2]).ok
                rows = {r["caller_number"]: r
                        for r in await eventually("the three ends", ended, within=20)}
                await settled(line)
                events = await events_of(line, [r["call_id"] for r in rows.values()])
                await desk_log_out(line, settings, queues)
        finally:
            for task in placed:
                await caller_gone(task)
    for record in rows.values():
        shown = {k: v for k, v in record.items() if v is not None}
        assert record["ivr_outcome"] is not None and record["queue"] is not None, shown
        assert record["hangup_cause"] == 16 and not record["vanished"], shown
    assert rows[talking]["answered_at"] is not None
    assert rows[talking]["talk_seconds"] is not None, dict(rows[talking])
    for number in (gone, waiting):
        shown = {k: v for k, v in rows[number].items() if v is not None}
        assert rows[number]["queue"] == "information", shown
        # Hung up waiting, or answered once the operator's first call ended.
        assert (rows[number]["abandoned_at"] is None) != (rows[number]["answered_at"] is None), \
            shown
        # What the caller chose, which the IVR told Asterisk while the session was cut:
        # from the queue_log for a call the line never saw.
        assert (rows[number]["ivr_choice"], rows[number]["ivr_category"],
                rows[number]["ivr_skill"]) == ("3", "information", "general"), shown
        # How the caller used the keys, and what the screening made of the call.
        assert rows[number]["ivr_first_key_ms"] is not None, shown
        assert rows[number]["prank_score"] is not None, shown
        assert rows[number]["queue_priority"] is not None, shown
    once = {"call_started", "call_ended", "operator_answered", "operator_completed",
            "queue_abandoned", "call_backfilled"}
    counts: dict[tuple[str, str], int] = {}
    for call_id, kind, _ in events:
        counts[call_id, kind] = counts.get((call_id, kind), 0) + 1
    assert not {k: n for k, n in counts.items() if k[1] in once and n > 1}, counts


async def test_a_call_logged_before_asterisk_rotated_its_log_is_backfilled(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    # Asterisk's logs grew for ever; serve now rotates them daily (LoggerRotate, timestamped
    # names) and deletes the old ones. A call whose lines went into the previous file must
    # still be backfilled from it, found by inode.
    caller_id = unique_caller("0815")
    log_dir = queue_log_path(settings).parent
    stamped = re.compile(r"queue_log\.\d{10}")
    async with serving(settings) as line:
        queues = await OperatorDesk(line.listener, load_menu(settings.menu_file)).log_in(
            OPERATOR, SKILLS)
    try:
        assert (await place(settings, caller_id, "119", stay=1)).ok  # serve is down
        await lab.acli("logger rotate")  # the daily rotation, before serve is back
        rotated = [p for p in log_dir.iterdir() if stamped.fullmatch(p.name)]
        assert any(caller_id in p.read_text(errors="replace") for p in rotated), rotated
        assert caller_id not in queue_log_path(settings).read_text(errors="replace")
        async with serving(settings) as line:
            record = await eventually("the call backfilled", lambda: row(
                line, CALL + " AND ended_at IS NOT NULL", caller_id), within=10)
            assert record["backfilled"] is True and record["vanished"] is False
            # serve's own rotation on the real Asterisk, with the line's AMI user: a new
            # timestamped file, and the rotated files aged past the retention deleted.
            # Timestamp names have whole seconds: a second rotation within the first's second
            # would overwrite its file.
            last = max(int(p.name.rsplit(".", 1)[1]) for p in rotated)

            async def later() -> bool | None:
                return True if time.time() >= last + 1 else None
            await eventually("a later second", later, within=3)
            aged = time.time() - (settings.asterisk_log_keep_days + 1) * 86400
            for path in rotated:
                os.utime(path, (aged, aged))
            removed = await LogRotation(
                line.listener, log_dir, keep_days=settings.asterisk_log_keep_days, hour=3,
                zone=ZoneInfo(settings.timezone)).rotate()
            assert set(rotated) <= set(removed), removed
            assert [p for p in log_dir.iterdir() if stamped.fullmatch(p.name)], \
                "LoggerRotate did not rotate the queue_log"
    finally:
        async with serving(settings) as line:
            await desk_log_out(line, settings, queues)


async def test_a_call_back_answered_while_serve_was_down_is_recorded_from_the_log(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    """A call-back's progress reaches the line as ``UserEvent SiagaLeg``: one answered and
    ended while ``serve`` was down stayed "dialling" for good. The dialplan logs it to the
    queue_log too (``SIAGALEG``), and the line started again records it from there."""
    call_id = f"{int(time.time()) - 120}.{os.getpid() % 100000}"
    number = unique_caller("0815")
    logged_before = queue_log_path(settings).stat().st_size
    # The caller's phone rings 6 s: serve is down by then (it stops as the block ends).
    async with sipp.callee(settings.carrier_sip_port, ring_seconds=6, hold_seconds=2,
                           max_calls=1) as callee:
        async with serving(settings) as line:
            await line.database.run(lambda c: line.repository.apply(c, call_facts(call_id)))

            async def open_leg(connection: asyncpg.Connection) -> int:
                return await LegRepository().open(
                    connection, kind=LegKind.CALLBACK, call_id=call_id, incident_id=None,
                    operator=OPERATOR, actor="op1", number=number, target="penelepon")
            leg_id = await line.database.run(open_leg)
            # As the call-back desk does (telephony/callbacks): the operator's phone first.
            await line.listener.send_action({
                "Action": "Originate", "Channel": OPERATOR, "Context": "siaga112-callback",
                "Exten": f"{leg_id}-{call_id}-{number}", "Priority": "1",
                "Timeout": "10000", "Async": "true"})
        assert (await callee.wait(within=30)).ok

    async def ended_logged() -> bool | None:
        with queue_log_path(settings).open("rb") as log:
            log.seek(logged_before)  # leg ids restart with the lab's database
            lines = log.read().splitlines()
        return True if any(f"|SIAGALEG|{leg_id}|ended|".encode() in raw
                           for raw in lines) else None
    await eventually("the call-back's end in the queue_log", ended_logged, within=15)
    async with serving(settings) as line:
        leg = await row(line, "SELECT * FROM call_legs WHERE leg_id = $1", leg_id)
        assert leg is not None
        assert leg["rang_at"] is not None and leg["answered_at"] is not None
        assert leg["ended_at"] is not None and leg["outcome"] == "answered"
        assert leg["status"] == "ANSWER" and leg["channel_id"] is not None
        assert leg["answered_at"] <= leg["ended_at"]
        # From the log's whole seconds, not the AMI's (serve was down then).
        assert leg["answered_at"].microsecond == 0 and leg["ended_at"].microsecond == 0


async def test_the_talk_after_a_failed_blind_transfer_while_serve_was_down_is_counted(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    """A blind transfer nobody answered brings the caller back to the operator
    ([siaga112-transfer]'s ``back``, where an agency that does not answer sends the caller),
    and their talk reaches the line as ``UserEvent SiagaBack``: with ``serve`` down from just
    after the transfer, the call's talk stayed the second before it for good. The dialplan
    logs the talk back to the queue_log too (``SIAGABACK``), and the line started again counts
    it, once."""
    caller_id = unique_caller("0817")
    async with serving(settings) as line:
        desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
        queues = await desk.log_in(OPERATOR, SKILLS)
        placed = asyncio.create_task(place(settings, caller_id, "119", stay=13))
        record = await eventually("the call answered in the store", lambda: row(
            line, CALL + " AND answered_at IS NOT NULL", caller_id), within=20)
        call_id = record["call_id"]

        async def operator_up() -> LiveChannel | None:
            return operator_channel(await live_channels(line.listener), OPERATOR, call_id)
        channel = await eventually("the operator's channel", operator_up, within=10)
        await line.listener.send_action({"Action": "BlindTransfer", "Channel": channel.channel,
                                         "Context": TRANSFER_CONTEXT, "Exten": "back"})
        transferred = datetime.now(UTC)
    try:
        assert (await placed).ok  # serve is down as the caller talks again and hangs up

        async def ended_logged() -> list[str] | None:
            entries = [entry for raw in queue_log_path(settings).read_bytes().splitlines()
                       if (entry := parse_line(raw)) is not None
                       and entry.event == "SIAGABACK" and entry.data[0] == call_id]
            states = [entry.data[1] for entry in entries]
            return states if "ended" in states else None
        assert await eventually("the talk back's end in the queue_log", ended_logged,
                                within=15) == ["answered", "ended"]
        async with serving(settings) as line:
            done = await eventually("the call's end", lambda: row(
                line, "SELECT * FROM calls WHERE call_id = $1 AND ended_at IS NOT NULL",
                call_id))
            await settled(line)
            assert done["ended_by"] == "transfer"
            talked_back = (done["ended_at"] - transferred).total_seconds()
            assert talked_back > 4  # what the talk before the transfer (0-1 s) cannot reach
            assert done["talk_seconds"] >= talked_back - 2, (done["talk_seconds"], talked_back)
            assert done["completed_at"].microsecond == 0  # the log's second: serve was down
            answers = await line.database.run(lambda c: c.fetch(
                "SELECT operator, talk_seconds FROM call_answers WHERE call_id = $1", call_id))
            assert [tuple(a) for a in answers] == [(OPERATOR, done["talk_seconds"])]
            before = await events_of(line, [call_id])
        async with serving(settings) as line:  # read again from the cursor: nothing twice
            await settled(line)
            assert await events_of(line, [call_id]) == before
            await desk_log_out(line, settings, queues)
    finally:
        await caller_gone(placed)
