"""Two cluster lines on one real PostgreSQL, each with its own state directory, Asterisk files
and (recording) AMI: what an admin changes through one line's services is applied to the
other node too (issue 15; telephony/cluster/admin_sync.py): queue settings, a published menu
(its prompt audio made and installed there, its live file replaced), a published screening
version, a stored phone (PJSIP reloaded there), dispatch targets and shifts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ivr.menu import IvrMenu
from ivr.source import line_menu_source
from telephony.accounts.service import AccountConfig, AccountService
from telephony.admin.asterisk import AsteriskAdmin
from telephony.admin.configs import ConfigService
from telephony.admin.files import ConfigFiles
from telephony.admin.queue_service import QueueService
from telephony.admin.queues import QUEUES_CONF, QueueDefaults
from telephony.admin.site_service import SiteService
from telephony.admin.store import ADMIN_CHANNEL
from telephony.admin.versions import ConfigKind
from telephony.asterisk.site import AsteriskSite
from telephony.calls.shifts import ShiftCalendar
from telephony.cluster.admin_sync import LISTENER_NAME, AdminSync
from telephony.core.watched import WatchedFile
from telephony.db.connection import Database
from telephony.desks.commands import desk
from telephony.incidents.model import ReportType
from telephony.screening.score import ScoreConfig
from telephony.screening.service import line_screening_source
from telephony.settings import DEFAULT_SHIFTS, ClusterNode, Settings
from tests.support.ami import RecordingAmi
from tests.support.polling import eventually
from tests.support.web import CHEAP_HASHER, make_context

QUEUE_VALUES: dict[str, Any] = {
    "strategy": "rrmemory", "ring_timeout_seconds": 20, "retry_seconds": 3,
    "wrapup_seconds": 15, "announce_position": False, "announce_holdtime": False,
    "announce_frequency_seconds": 0, "max_wait_seconds": 45}


@dataclass
class Node:
    """One node's line: its files, its AMI, its admin services and their follower."""

    name: str
    settings: Settings
    ami: RecordingAmi
    asterisk: AsteriskSite
    menus: WatchedFile[IvrMenu]
    scoring: WatchedFile[ScoreConfig]
    configs: ConfigService
    queues: QueueService
    site: SiteService
    calendar: ShiftCalendar
    sync: AdminSync

    def live(self, name: str) -> str:
        return (self.asterisk.etc_dir / "siaga112-live" / name).read_text()


@contextlib.asynccontextmanager
async def node(name: str, settings: Settings, tmp_path: Path) -> AsyncIterator[Node]:
    own = replace(settings, state_dir=tmp_path / name)
    database = Database(own)
    ami = RecordingAmi()
    asterisk = AsteriskSite.in_instance(tmp_path / name / "instance")
    asterisk.etc_dir.mkdir(parents=True)
    menus, scoring = line_menu_source(own), line_screening_source(own)
    admin = AsteriskAdmin(ami, asterisk)
    queues = QueueService(database, admin, ami, menus=menus,
                          defaults=QueueDefaults.from_settings(own))
    configs = ConfigService(database, ConfigFiles.from_settings(own), admin, queues=queues,
                            menus=menus, screening=scoring)
    calendar = ShiftCalendar(DEFAULT_SHIFTS, own.timezone)
    site = SiteService(database, make_context(own, database).dispatches, calendar)
    sync = AdminSync(database, versions=configs, queues=queues, site=site, interval=30.0,
                     retry_seconds=0.2)
    task = asyncio.create_task(sync.run())
    sync.booted({})
    try:
        yield Node(name, own, ami, asterisk, menus, scoring, configs, queues, site, calendar,
                   sync)
    finally:
        task.cancel()
        await asyncio.wait([task])
        await database.close()


async def listening(dsn: str, count: int) -> None:
    """Once ``count`` lines LISTEN for the admin's changes (the safety net is 30 s away:
    what follows is carried by the notifications)."""

    async def probe() -> bool | None:
        connection = await asyncpg.connect(dsn)
        try:
            found = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND starts_with(application_name, $1)", LISTENER_NAME)
        finally:
            await connection.close()
        return True if found == count else None

    await eventually("the lines LISTEN", probe, 5.0)


@pytest.fixture
async def nodes(settings: Settings, database_dsn: str, tmp_path: Path
                ) -> AsyncIterator[tuple[Node, Node]]:
    configured = replace(settings, database_dsn=database_dsn)
    async with node("node1", configured, tmp_path) as one, \
            node("node2", configured, tmp_path) as two:
        await listening(database_dsn, 2)
        yield one, two


async def holds(what: str, probe: Any, within: float = 10.0) -> None:
    async def check() -> bool | None:
        return True if probe() else None

    await eventually(what, check, within, interval=0.02)


def edited_menu(document: Mapping[str, Any]) -> dict[str, Any]:
    edited: dict[str, Any] = json.loads(json.dumps(document))
    edited["prompts"]["menu-utama"] = "Darurat, tekan satu. Lainnya, tetap di saluran."
    edited["menus"]["utama"]["timeout_ms"] = 2000
    return edited


async def test_queue_settings_changed_through_one_line_apply_on_the_other(
        nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    await holds("node2's first round", lambda: two.sync.rounds > 0)
    two.ami.actions.clear()
    await one.queues.update("fire", QUEUE_VALUES, "admin")
    await holds("node2 reloads its queues", lambda: two.ami.named("QueueReload"))
    text = (two.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")
    assert "[fire](queue)\nstrategy = rrmemory\ntimeout = 20\n" in text
    assert text == (one.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")
    assert two.live("max_wait.fire") == "45"
    # Another round (its own notification, the safety net) reloads nothing more.
    rounds = two.sync.rounds
    two.sync.booted({})  # as after an AMI login: everything looked at again
    await holds("node2's next round", lambda: two.sync.rounds > rounds)
    assert len(two.ami.named("QueueReload")) == 1


async def test_a_menu_published_through_one_line_is_the_other_nodes_next_menu(
        nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    first = (await one.configs.versions(ConfigKind.MENU))[0]
    # The history's first version is what each line runs: nothing to follow.
    await holds("node2's round", lambda: two.sync.rounds > 0)
    assert not two.settings.live_menu_file.exists()
    base = await one.configs.version(first.version_id)
    draft = await one.configs.save(ConfigKind.MENU, edited_menu(base.document), actor="admin",
                                   based_on=first.version_id)
    before = two.menus.current()  # a call in progress on node2 keeps this one
    await one.configs.publish(draft.version_id, actor="admin")
    await holds("node2 runs the published menu",
                lambda: two.menus.current().version == draft.version_id)
    live = two.menus.current()
    assert live.menus["utama"].timeout_ms == 2000
    assert live.menus["utama"].prompt == f"menu-utama-v{draft.version_id}"
    assert (two.asterisk.sounds_dir / f"menu-utama-v{draft.version_id}.wav").is_file()
    assert two.settings.live_menu_file.read_text() == one.settings.live_menu_file.read_text()
    assert two.ami.named("QueueReload")  # the menu's queues configured there too
    assert before.version == first.version_id and before.menus["utama"].timeout_ms == 5000
    # The live file right but the prompts missing here (a state directory the nodes share
    # holds the file another node wrote): installed at the next round.
    prompt = two.asterisk.sounds_dir / f"menu-utama-v{draft.version_id}.wav"
    prompt.unlink()
    two.sync.booted({})
    await holds("node2 installs the version's prompts", prompt.is_file)

    # A rollback through node2's line: node1 follows it.
    await two.configs.publish(first.version_id, actor="admin")
    await holds("node1 runs the rolled-back menu",
                lambda: one.menus.current().version == first.version_id)
    assert (one.asterisk.sounds_dir / f"menu-utama-v{first.version_id}.wav").is_file()


async def test_screening_phones_and_site_settings_follow_too(nodes: tuple[Node, Node]
                                                           ) -> None:
    one, two = nodes
    draft = await one.configs.save(
        ConfigKind.SCREENING, {"screening_threshold": 0.9, "normal_priority": 12},
        actor="admin")
    await one.configs.publish(draft.version_id, actor="admin")
    await holds("node2 screens with the published version",
                lambda: two.scoring.current().screening_threshold == 0.9)
    assert two.live("normal_priority") == "12"

    await one.site.set_dispatch_targets({"fire": 240}, "admin")
    await holds("node2 holds incidents to the new targets",
                lambda: two.site.dispatch_targets() == {ReportType.FIRE: 240})
    await one.site.set_shifts([{"name": "pagi", "start": "06:00"},
                               {"name": "malam", "start": "18:00"}], "admin")
    await holds("node2 attributes calls by the new roster",
                lambda: [s.name for s in two.calendar.definitions] == ["pagi", "malam"])

    two.ami.actions.clear()
    database = Database(one.settings)
    try:
        await AccountService(database, CHEAP_HASHER, AccountConfig()).create(
            "sari", "operator", "kata-sandi-panjang-1", actor="test", display_name="Sari")
    finally:
        await database.close()
    _, _, secret, _ = await one.queues.assign_operator("sari", "PJSIP/op1001", {"fire": 5})
    assert secret is not None  # a new phone: stored, PJSIP reloaded on node1 ...
    await holds("... and on node2", lambda: two.ami.named("Reload") == [
        {"Action": "Reload", "Module": "res_pjsip.so"}])


async def test_a_desk_phone_stored_with_the_cli_is_reloaded_on_every_node(
        nodes: tuple[Node, Node], capsys: pytest.CaptureFixture[str]) -> None:
    """``siaga112 account desk`` on a cluster (the Docker cluster's admin service: no node
    of its own) tells every line, as the console does, and each reloads PJSIP on its node:
    untold, neither node rang the new phone until its line's next AMI session."""
    one, two = nodes
    database = Database(one.settings)
    try:
        await AccountService(database, CHEAP_HASHER, AccountConfig()).create(
            "sari", "operator", "kata-sandi-panjang-1", actor="test", display_name="Sari")
    finally:
        await database.close()
    cli = replace(one.settings, asterisk_systemname=None, cluster_nodes=(
        ClusterNode("node1", "127.0.0.1", 5060, 4573),
        ClusterNode("node2", "127.0.0.2", 5060, 4573)))
    one.ami.actions.clear()
    two.ami.actions.clear()
    assert await desk(cli, "sari", "PJSIP/op1001", ["fire=5"]) == 0
    for each in (one, two):
        await holds(f"{each.name} reloads its phones", lambda each=each: each.ami.named(
            "Reload") == [{"Action": "Reload", "Module": "res_pjsip.so"}])
    assert "line di setiap node memuatnya" in capsys.readouterr().out


async def test_a_hostile_notification_changes_nothing(nodes: tuple[Node, Node],
                                                      database_dsn: str) -> None:
    _, two = nodes
    await holds("node2's first round", lambda: two.sync.rounds > 0)
    rounds = two.sync.rounds
    two.ami.actions.clear()
    connection = await asyncpg.connect(database_dsn)
    try:
        for payload in ("phones\r\nAction: Hangup", "../../etc/passwd", "x" * 7000):
            await connection.execute("SELECT pg_notify($1, $2)", ADMIN_CHANNEL, payload)
    finally:
        await connection.close()
    await holds("node2's rounds", lambda: two.sync.rounds > rounds)
    assert two.ami.named("Reload") == [] and two.ami.named("QueueReload") == []
    assert not two.settings.live_menu_file.exists()
