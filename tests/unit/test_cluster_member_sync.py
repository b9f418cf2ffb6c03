"""A cluster line's member sync (telephony/cluster/member_sync.py) over an in-memory
database and Asterisk: settle before a change, store after it, follow other lines' rows,
keep a change the database did not take until it does (or another line's newer row comes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

import pytest

from telephony.admin.errors import ApplyFailed
from telephony.admin.queues import Member, MemberChange
from telephony.cluster.member_sync import MemberSync
from telephony.cluster.members import WantedMember
from telephony.db.connection import DatabaseUnavailable
from tests.support.polling import eventually

OP = "PJSIP/op1001"


class Rows:
    """``cluster_desk_members`` in memory, and the notifications sent."""

    def __init__(self) -> None:
        self.rows: dict[str, object] = {}
        self.notified: list[str] = []

    async def wanted(self, _connection: object, interfaces: Collection[str] | None = None
                     ) -> dict[str, object]:
        return {i: v for i, v in self.rows.items() if interfaces is None or i in interfaces}

    async def publish(self, _connection: object, interface: str,
                      members: Sequence[WantedMember], node: str) -> bool:
        if not members and interface not in self.rows:
            return False
        self.rows[interface] = [m.as_json() for m in members]
        self.notified.append(interface)
        return True


class Db:
    """Runs work on no connection; ``down``: unavailable. No LISTEN connection ever."""

    def __init__(self) -> None:
        self.down = False

    async def run(self, work: Any) -> Any:
        if self.down:
            raise DatabaseUnavailable("down")
        return await work(None)

    async def connect(self, _name: str) -> Any:
        raise DatabaseUnavailable("no LISTEN here")


class QueueApp:
    """One node's Asterisk queue members."""

    def __init__(self) -> None:
        self.held: list[Member] = []
        self.changes: list[MemberChange] = []
        self.down = False

    async def members(self) -> list[Member]:
        if self.down:
            raise ApplyFailed("no AMI session")
        return list(self.held)

    async def change_member(self, change: MemberChange) -> None:
        self.changes.append(change)
        key = (change.queue, change.interface)
        found = next((m for m in self.held if (m.queue, m.interface) == key), None)
        self.held = [m for m in self.held if m is not found]
        if change.action == "add":
            self.held.append(Member(change.queue, change.interface, change.name,
                                    change.penalty, change.paused, change.pause_reason,
                                    dynamic=True, in_call=False))
        elif change.action == "pause" and found is not None:
            self.held.append(replace(found, paused=change.paused,
                                     pause_reason=change.pause_reason))
        elif change.action == "penalty" and found is not None:
            self.held.append(replace(found, penalty=change.penalty))

    def join(self, *queues: str, paused: bool = False) -> None:
        self.held += [Member(q, OP, "Ani", 0, paused, "break" if paused else "",
                                dynamic=True, in_call=False) for q in queues]


@pytest.fixture
async def line() -> AsyncIterator[tuple[MemberSync, Rows, Db, QueueApp]]:
    rows, db, app = Rows(), Db(), QueueApp()
    sync = MemberSync(db, app, "node1", interval=0.05, retry_seconds=0.01,  # type: ignore[arg-type]
                      repository=rows)  # type: ignore[arg-type]
    task = asyncio.create_task(sync.run())
    sync.booted({})
    yield sync, rows, db, app
    task.cancel()
    await asyncio.wait([task])


async def until(predicate: Callable[[], bool]) -> None:
    """Once ``predicate()`` holds (the sync runs on this loop meanwhile)."""

    async def probe() -> bool | None:
        return True if predicate() else None

    await eventually("the sync's work", probe, within=2.0, interval=0.01)


async def test_a_change_is_settled_before_and_stored_after(
        line: tuple[MemberSync, Rows, Db, QueueApp]) -> None:
    sync, rows, _, app = line
    # Another line paused the operator in fire; this node has them unpaused.
    rows.rows[OP] = [{"queue": "fire", "penalty": 0, "name": "Ani", "paused": True,
                      "reason": "break"}]
    app.join("fire")
    async with sync.changing([OP]):
        # Settled first: the change (here a login to medical) starts from the cluster's.
        assert [(m.queue, m.paused) for m in app.held] == [("fire", True)]
        app.join("medical")
    assert rows.rows[OP] == [
        {"queue": "fire", "penalty": 0, "name": "Ani", "paused": True, "reason": "break"},
        {"queue": "medical", "penalty": 0, "name": "Ani", "paused": False, "reason": ""}]
    assert rows.notified == [OP]


async def test_an_interface_never_in_a_queue_stays_unmanaged(
        line: tuple[MemberSync, Rows, Db, QueueApp]) -> None:
    sync, rows, _, _ = line
    async with sync.changing([OP, "PJSIP/op1\r\nAction: Hangup"]):
        pass
    assert rows.rows == {} and rows.notified == []


async def test_other_lines_rows_are_followed_on_notification_and_as_a_safety_net(
        line: tuple[MemberSync, Rows, Db, QueueApp]) -> None:
    sync, rows, _, app = line
    rows.rows[OP] = [{"queue": "fire", "penalty": 1, "name": "Ani"}]
    sync.notified(OP)  # the ChannelListener passes the payload on
    await until(lambda: [(m.queue, m.penalty) for m in app.held] == [("fire", 1)])
    rows.rows[OP] = []  # changed with no notification: the safety net's round catches it
    await until(lambda: app.held == [])


async def test_a_change_the_database_did_not_take_is_stored_once_it_is_back(
        line: tuple[MemberSync, Rows, Db, QueueApp]) -> None:
    sync, rows, db, app = line
    rows.rows[OP] = [{"queue": "fire", "penalty": 0, "name": "Ani"}]
    await until(lambda: len(app.held) == 1)
    db.down = True
    async with sync.changing([OP]):
        app.held = []  # the operator left through this line
    db.down = False
    # Stored before any reconciliation could take this node back to the old row.
    await until(lambda: rows.rows[OP] == [])
    assert app.held == []


async def test_another_lines_newer_row_supersedes_a_change_not_stored(
        line: tuple[MemberSync, Rows, Db, QueueApp]) -> None:
    sync, rows, _, app = line
    app.down = True
    async with sync.changing([OP]):  # the AMI session went away: nothing to snapshot
        pass
    rows.rows[OP] = [{"queue": "medical", "penalty": 2, "name": "Ani"}]
    sync.notified(OP)
    app.down = False
    await until(lambda: [(m.queue, m.penalty) for m in app.held] == [("medical", 2)])
    assert rows.rows[OP] == [{"queue": "medical", "penalty": 2, "name": "Ani"}]
