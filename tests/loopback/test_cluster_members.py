"""Two cluster lines on one real PostgreSQL, each logged in to its own fake Asterisk (whose
app_queue keeps members as the AMI actions change them): what an operator or an admin does
through one line is followed by the other's Asterisk (issue 15: either node rings any
operator; telephony/cluster/member_sync.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest

from ivr.source import menu_source
from telephony.accounts.model import Account
from telephony.accounts.service import AccountConfig, AccountService
from telephony.admin.asterisk import AsteriskAdmin
from telephony.admin.queue_service import QueueService
from telephony.admin.queues import QueueDefaults
from telephony.ami.listener import AmiListener
from telephony.ami.testing import FakeAsterisk, ListSink, QueueApp, fake_asterisk
from telephony.asterisk.site import AsteriskSite
from telephony.cluster.member_sync import LISTENER_NAME, MemberSync
from telephony.db.connection import Database
from telephony.desks.service import DeskConfig, DeskService, assign_desk
from telephony.settings import Settings
from tests.support.ami import listener as ami_listener
from tests.support.polling import eventually
from tests.support.web import CHEAP_HASHER

OP = "PJSIP/op1001"
OTHER = "PJSIP/op1002"  # logged in by hand on one node: no line ever changed it
STATIC = "PJSIP/op1009"  # a queues.conf member


@dataclass
class Line:
    """One node: its fake Asterisk, its line's AMI session, member sync and desk service."""

    name: str
    asterisk: FakeAsterisk
    app: QueueApp
    ami: AmiListener
    database: Database
    sync: MemberSync
    desks: DeskService
    queues: QueueService


@contextlib.asynccontextmanager
async def line(name: str, settings: Settings, tmp_path: Path) -> AsyncIterator[Line]:
    async with fake_asterisk() as asterisk, contextlib.AsyncExitStack() as stack:
        app = QueueApp()
        app.add_static("fire", STATIC)
        asterisk.queue_app = app
        ami = ami_listener(asterisk.port, ListSink())
        database = Database(settings)
        stack.push_async_callback(database.close)
        site = AsteriskSite.in_instance(tmp_path / name)
        site.etc_dir.mkdir(parents=True)
        admin = AsteriskAdmin(ami, site)
        sync = MemberSync(database, admin, name, interval=2.0, retry_seconds=0.2)
        ami.subscribe("FullyBooted", sync.booted)
        menus = menu_source(None)
        accounts = AccountService(database, CHEAP_HASHER, AccountConfig())
        # This listener records nothing (ListSink): a desk change need not wait for the store.
        desks = DeskService(database, ami, menus, accounts, changes=sync,
                            config=DeskConfig(recorded_within_seconds=0.0))
        queues = QueueService(database, admin, ami, menus=menus,
                              defaults=QueueDefaults.from_settings(settings), changes=sync)
        await ami.start()
        stack.push_async_callback(ami.stop)
        task = asyncio.create_task(sync.run())

        async def stop() -> None:
            task.cancel()
            await asyncio.wait([task])

        stack.push_async_callback(stop)
        yield Line(name, asterisk, app, ami, database, sync, desks, queues)


@pytest.fixture
async def nodes(settings: Settings, database_dsn: str, tmp_path: Path
                ) -> AsyncIterator[tuple[Line, Line, Account]]:
    configured = replace(settings, database_dsn=database_dsn)
    async with line("node1", configured, tmp_path) as one, \
            line("node2", configured, tmp_path) as two:
        accounts = AccountService(one.database, CHEAP_HASHER, AccountConfig())
        account = await accounts.create("ani", "operator", "kata-sandi-panjang-1",
                                        display_name="Ani", actor="test")
        await assign_desk(one.database, menu_source(None).current(), "ani", OP,
                          {"fire": 5, "medical": 4})
        # Both lines have reconciled once (nothing stored yet: nothing to do).
        await rounds_after(one, 0)
        await rounds_after(two, 0)
        yield one, two, account


async def rounds_after(node: Line, rounds: int) -> None:
    """Once ``node``'s line has reconciled more than ``rounds`` times."""

    async def probe() -> bool | None:
        return True if node.sync.rounds > rounds else None

    await eventually(f"{node.name} reconciles", probe, 5.0)


async def same(one: Line, two: Line, what: str, within: float = 5.0
               ) -> dict[str, tuple[int, bool, str]]:
    """``two``'s Asterisk holds OP's members as ``one``'s does (once it does)."""

    async def probe() -> dict[str, tuple[int, bool, str]] | None:
        mine = one.app.of(OP)
        return mine if two.app.of(OP) == mine else None

    return await eventually(what, probe, within)


async def tracked(dsn: str, queues: list[str], *, paused: bool = False) -> None:
    """What the AMI listeners' tracker writes of OP's memberships (``queue_members``), which
    the desk reads to know the operator is in queues (the fake AMI sends no member events)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(
            "INSERT INTO queue_members (operator, queue, state, paused, pause_reason, since) "
            "VALUES ($1, $2, 'idle', $3, '', now()) ON CONFLICT (operator, queue) DO UPDATE "
            "SET state = 'idle', paused = $3, since = now()", [(OP, q, paused) for q in queues])
    finally:
        await connection.close()


async def test_what_an_operator_does_through_one_line_the_other_node_follows(
        nodes: tuple[Line, Line, Account], database_dsn: str) -> None:
    one, two, ani = nodes
    # Someone logged in by hand on node2 only: never a line's business.
    two.app.act({"action": "QueueAdd", "queue": "fire", "interface": OTHER, "penalty": "3"})

    joined = await one.desks.join(ani, ["fire"], remote_address="10.0.0.1")
    assert joined and set(one.app.of(OP)) == set(joined)
    members = await same(one, two, "node2 adds the operator who joined through node1")
    assert all(not paused for _, paused, _ in members.values())
    await tracked(database_dsn, joined)

    await two.desks.pause(ani, "wrapup", remote_address="10.0.0.2")
    assert all(v[1:] == (True, "wrapup") for v in two.app.of(OP).values())
    await same(two, one, "node1 pauses the operator who paused through node2")

    await one.desks.resume(ani, remote_address="10.0.0.1")
    await same(one, two, "node2 ends the pause made through node1")
    assert all(not paused for _, paused, _ in two.app.of(OP).values())

    # An admin's new level through node2: the penalty follows on node1.
    await two.queues.assign_operator("ani", OP, {"fire": 2, "medical": 4})
    members = await same(two, one, "node1 takes the new penalty")
    assert members["fire"][0] == 3

    await one.desks.leave(ani, remote_address="10.0.0.1")
    assert one.app.of(OP) == {}
    await same(one, two, "node2 removes the operator who left through node1")

    # Only the line's own interface moved: the static member and the hand-made one stayed.
    for node in (one, two):
        assert node.app.of(STATIC) == {"fire": (0, False, "")}
    assert two.app.of(OTHER) == {"fire": (3, False, "")} and one.app.of(OTHER) == {}


async def test_an_asterisk_that_restarted_and_a_lost_listen_catch_up(
        nodes: tuple[Line, Line, Account], database_dsn: str) -> None:
    one, two, ani = nodes
    await one.desks.join(ani, ["fire", "medical"], remote_address="10.0.0.1")
    await same(one, two, "node2 follows the login")

    # node2's Asterisk restarts without its members: the next AMI login (FullyBooted) puts
    # them back from the database.
    two.app.clear()
    two.asterisk.drop()
    await same(one, two, "node2's restarted Asterisk gets the operator back")

    # The LISTEN connections are cut (a database failover does so): a change made meanwhile
    # still reaches node2 once its line listens again.
    connection = await asyncpg.connect(database_dsn)
    try:
        cut = await connection.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND starts_with(application_name, $1)",
            LISTENER_NAME)
        assert cut == 2  # one LISTEN per line
    finally:
        await connection.close()
    await tracked(database_dsn, list(one.app.of(OP)))
    await one.desks.pause(ani, "break", remote_address="10.0.0.1")
    await same(one, two, "node2 follows a pause made while its LISTEN was cut")
    assert all(v[1:] == (True, "break") for v in two.app.of(OP).values())


async def test_a_hostile_row_or_notification_changes_nothing(
        nodes: tuple[Line, Line, Account], database_dsn: str) -> None:
    one, two, _ = nodes
    connection = await asyncpg.connect(database_dsn)
    try:
        await connection.execute(
            "INSERT INTO cluster_desk_members (operator, members) VALUES "
            "($1, $2::jsonb), ($3, $4::jsonb)",
            "PJSIP/op1003\r\nAction: Originate", '[{"queue": "fire", "penalty": 0}]',
            "PJSIP/op1004", '[{"queue": "fire\\r\\nAction: Hangup", "penalty": 0},'
                            ' {"queue": "fire", "penalty": "x"}]')
        await connection.execute("SELECT pg_notify('siaga112_desks', $1)",
                                 "PJSIP/op1004\r\nAction: Hangup")
        await connection.execute("SELECT pg_notify('siaga112_desks', 'PJSIP/op1004')")
    finally:
        await connection.close()
    rounds = two.sync.rounds
    await rounds_after(two, rounds)
    for node in (one, two):
        assert set(node.app.members) == {("fire", STATIC)}
        assert not any("op1003" in str(a) or "op1004" in str(a)
                       for a in node.asterisk.actions if a.get("action") != "QueueStatus")
