"""A cluster line's wrap-up announcements on a real PostgreSQL (telephony/cluster/
wrapup_sync.py): what the other nodes hear when an operator leaves a three-way call.

app_queue ends the operator's call when their phone goes idle at the leave (update_status),
so their wrap-up runs from there and the call's AgentComplete at its end starts none. The
other nodes heard nothing at the leave (they offered the operator their callers at once) and
then held them after the call's end instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from telephony.calls.facts import CallStarted, OperatorAnswered, OperatorLeft, QueueJoined
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository, LegRepository
from telephony.cluster.wrapup import CHANNEL
from telephony.cluster.wrapup_sync import WrapUpSync
from telephony.db.connection import Database
from telephony.settings import DEFAULT_SHIFTS
from telephony.transfers.model import Step
from telephony.transfers.store import TransferStore
from tests.support.ami import RecordingAmi
from tests.support.polling import eventually

OPERATOR = "PJSIP/op1001"
LEFT, ORDINARY = "node1-1795427000.11", "node1-1795427100.12"
ARRIVED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LEAVE = ARRIVED + timedelta(seconds=40)


@pytest.fixture
async def heard(database_dsn: str) -> AsyncIterator[list[str]]:
    """What every line hears on the wrap-up channel, in order."""
    payloads: list[str] = []
    connection = await asyncpg.connect(database_dsn)
    await connection.add_listener(CHANNEL, lambda *args: payloads.append(args[3]))
    yield payloads
    await connection.close()


async def _calls_answered_in_fire(database: Database) -> None:
    """Two calls OPERATOR answered in the fire queue; they left the first's three-way call
    with an agency at LEAVE."""

    async def work(connection: asyncpg.Connection) -> None:
        for call_id in (LEFT, ORDINARY):
            await CallRepository(ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")).apply(
                connection, [
                    CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112",
                                ARRIVED),
                    QueueJoined(call_id, "fire", 1, ARRIVED + timedelta(seconds=5)),
                    OperatorAnswered(call_id, "fire", OPERATOR, 3, 1,
                                     ARRIVED + timedelta(seconds=8))])
            leg_id = await LegRepository().open(
                connection, kind=LegKind.CONFERENCE, call_id=call_id, incident_id=None,
                operator=OPERATOR, actor="sari", number="0275321113", target="")
            if call_id == LEFT:
                await TransferStore().add_step(connection, leg_id, Step.LEAVE, "sari", LEAVE)

    await database.run(work)


async def test_a_leave_announces_the_wrapup_from_it_and_the_calls_end_none(
        database: Database, heard: list[str]) -> None:
    await _calls_answered_in_fire(database)
    sync = WrapUpSync(database, RecordingAmi(), node="node1", peers=["node2"],
                      own_host="127.0.0.1", sip_port=5060, default_seconds=5)
    task = asyncio.create_task(sync.run())
    try:
        sync.left(OperatorLeft(LEFT, OPERATOR, LEAVE))
        # The left call's end (its caller and the agency hung up), then an ordinary call's.
        for call_id in (LEFT, ORDINARY):
            sync.agent_complete({"Interface": OPERATOR, "Queue": "fire",
                                 "Timestamp": f"{LEAVE.timestamp() + 60:.6f}",
                                 "Uniqueid": call_id})
        await eventually("two announcements", lambda: asyncio.sleep(0, len(heard) >= 2 or None),
                         10)
    finally:
        task.cancel()
        await asyncio.wait([task])
    # The leave's, in the queue the call was answered in, from the leave; then the ordinary
    # call's: the left call's end announced nothing in between.
    assert heard == [f"node1 {OPERATOR} fire 5 {LEAVE.timestamp():.6f}",
                     f"node1 {OPERATOR} fire 5 {LEAVE.timestamp() + 60:.6f}"]


async def test_a_leave_of_a_call_whose_answer_is_not_known_announces_nothing(
        database: Database, heard: list[str]) -> None:
    await _calls_answered_in_fire(database)
    sync = WrapUpSync(database, RecordingAmi(), node="node1", peers=["node2"],
                      own_host="127.0.0.1", sip_port=5060, default_seconds=5)
    task = asyncio.create_task(sync.run())
    try:
        sync.left(OperatorLeft("node1-1795427999.99", OPERATOR, LEAVE))  # no such answer
        sync.left(OperatorLeft(LEFT, "Local/1@x", LEAVE))  # not an operator's phone
        sync.agent_complete({"Interface": OPERATOR, "Queue": "fire",
                             "Timestamp": f"{LEAVE.timestamp():.6f}", "Uniqueid": ORDINARY})
        await eventually("an announcement", lambda: asyncio.sleep(0, heard or None), 10)
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert heard == [f"node1 {OPERATOR} fire 5 {LEAVE.timestamp():.6f}"]
