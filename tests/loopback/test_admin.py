"""The admin's services over a real PostgreSQL, real espeak-ng/ffmpeg and the files the line
watches, with AMI faked: versions of the menu and the screening configuration (save, preview,
publish, roll back), queue settings rendered and reloaded, operators moved, site settings;
and the admin API over HTTP with its roles, CSRF and audit."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import wave
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.menu import IvrMenu
from ivr.source import line_menu_source
from telephony.admin.asterisk import AdminAmi, AsteriskAdmin
from telephony.admin.configs import ConfigService
from telephony.admin.console import AdminPages
from telephony.admin.errors import ApplyFailed, AsteriskDown, ConfigNotFound, InvalidConfig
from telephony.admin.files import ConfigFiles
from telephony.admin.http import AdminApi
from telephony.admin.queue_service import QueueService
from telephony.admin.queues import QUEUES_CONF, QueueDefaults
from telephony.admin.site_service import SiteService
from telephony.admin.sync import AsteriskSync
from telephony.admin.versions import ConfigKind
from telephony.ami.testing import ListSink
from telephony.asterisk.site import AsteriskSite
from telephony.calls.shifts import ShiftCalendar
from telephony.core.watched import WatchedFile
from telephony.db.connection import Database
from telephony.desks.phones import PhoneKind
from telephony.desks.service import InvalidDeskInput
from telephony.incidents.model import ReportType
from telephony.screening.score import ScoreConfig
from telephony.screening.service import line_screening_source
from telephony.settings import DEFAULT_SHIFTS, Settings
from telephony.web.console.render import FLASH_COOKIE
from telephony.web.routing import CSRF_COOKIE, CSRF_HEADER, ROUTE_TABLE
from telephony.web.server import build_app
from tests.support.ami import RecordingAmi as FakeAmi
from tests.support.ami import eventually
from tests.support.ami import listener as ami_listener
from tests.support.net import free_port
from tests.support.web import BIDI_CONTROLS, PASSWORD, Browser, conforms, make_context, spoofed


@dataclass
class Admin:
    settings: Settings
    database: Database
    dsn: str
    ami: FakeAmi
    asterisk: AsteriskSite
    menus: WatchedFile[IvrMenu]
    scoring: WatchedFile[ScoreConfig]
    configs: ConfigService
    queues: QueueService
    site: SiteService
    calendar: ShiftCalendar

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.dsn)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()


def build(settings: Settings, database: Database, ami: AdminAmi, site: AsteriskSite,
          menus: Any = None) -> tuple[ConfigService, QueueService, Any, Any]:
    menus = menus or line_menu_source(settings)
    scoring = line_screening_source(settings)
    asterisk = AsteriskAdmin(ami, site)
    queues = QueueService(database, asterisk, ami, menus=menus,
                          defaults=QueueDefaults.from_settings(settings))
    configs = ConfigService(database, ConfigFiles.from_settings(settings), asterisk,
                            queues=queues, menus=menus, screening=scoring)
    return configs, queues, menus, scoring


@pytest.fixture
async def admin(database_dsn: str, settings: Settings, tmp_path: Path) -> AsyncIterator[Admin]:
    configured = replace(settings, database_dsn=database_dsn)
    database = Database(configured)
    ami = FakeAmi()
    asterisk = AsteriskSite.in_instance(tmp_path / "instance")  # no real Asterisk's files
    asterisk.etc_dir.mkdir(parents=True)
    configs, queues, menus, scoring = build(configured, database, ami, asterisk)
    context = make_context(configured, database)
    calendar = ShiftCalendar(DEFAULT_SHIFTS, configured.timezone)
    site = SiteService(database, context.dispatches, calendar)
    yield Admin(configured, database, database_dsn, ami, asterisk, menus, scoring, configs, queues,
                site, calendar)
    await database.close()


def edited_menu(document: Mapping[str, Any]) -> dict[str, Any]:
    """The admin's edit: a new main-menu prompt and a shorter wait."""
    edited: dict[str, Any] = json.loads(json.dumps(document))
    edited["prompts"]["menu-utama"] = "Darurat, tekan satu. Lainnya, tetap di saluran."
    edited["menus"]["utama"]["timeout_ms"] = 2000
    return edited


def wav_bytes(seconds: float = 0.5, rate: int = 16000, channels: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x10\x00" * channels * int(rate * seconds))
    return out.getvalue()


def wav_shape(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path), "rb") as reader:
        return reader.getframerate(), reader.getnchannels(), reader.getsampwidth()


# -- menu versions -----------------------------------------------------------------------------


async def test_the_history_starts_with_what_the_line_runs(admin: Admin) -> None:
    versions = await admin.configs.versions(ConfigKind.MENU)
    assert len(versions) == 1
    first = await admin.configs.version(versions[0].version_id)
    assert first.live and first.created_by == "system"
    assert first.document == json.loads(
        (Path(__file__).parents[2] / "ivr" / "menu.json").read_text("utf-8"))
    assert await admin.configs.versions(ConfigKind.MENU) == versions  # once only


async def test_a_refused_document_saves_nothing(admin: Admin) -> None:
    live = (await admin.configs.versions(ConfigKind.MENU))[0]
    broken = edited_menu(live.document if live.document else
                         (await admin.configs.version(live.version_id)).document)
    broken["menus"]["utama"]["timeout_ms"] = 50
    with pytest.raises(InvalidConfig, match="timeout_ms"):
        await admin.configs.save(ConfigKind.MENU, broken, actor="admin", based_on=1)
    with pytest.raises(ConfigNotFound):
        await admin.configs.save(ConfigKind.MENU, edited_menu(broken), actor="admin",
                                 based_on=999)
    assert len(await admin.configs.versions(ConfigKind.MENU)) == 1
    assert not admin.settings.live_menu_file.exists()


async def test_publish_then_roll_back(admin: Admin) -> None:
    first = (await admin.configs.versions(ConfigKind.MENU))[0]
    base = await admin.configs.version(first.version_id)
    draft = await admin.configs.save(ConfigKind.MENU, edited_menu(base.document),
                                     actor="admin", note="menu lebih singkat",
                                     based_on=first.version_id)
    assert not draft.live and draft.last_published_at is None
    assert admin.menus.current().version == 1  # a draft changes nothing the line runs

    preview = await admin.configs.preview(draft.version_id)
    assert [p.name for p in preview.prompts if p.recorded] == []
    main = preview.tree[0].children[1]
    assert main.label.startswith("Menu utama: tunggu 2 dtk")
    assert main.text == "Darurat, tekan satu. Lainnya, tetap di saluran."
    audio = await admin.configs.preview_audio(draft.version_id, "menu-utama")
    assert wav_shape(audio) == (8000, 1, 2)

    published = await admin.configs.publish(draft.version_id, actor="admin")
    assert published.live and published.last_published_by == "admin"
    live = admin.menus.current()  # what the next call gets
    assert live.version == draft.version_id
    assert live.menus["utama"].timeout_ms == 2000
    assert live.menus["utama"].prompt == f"menu-utama-v{draft.version_id}"
    installed = admin.asterisk.sounds_dir / f"menu-utama-v{draft.version_id}.wav"
    assert wav_shape(installed) == (8000, 1, 2)
    assert len(admin.ami.named("QueueReload")) == 1  # the menu's queues, configured first
    assert (admin.asterisk.etc_dir / "siaga112-live" / "max_wait.fire").read_text() == "60"

    rolled_back = await admin.configs.publish(first.version_id, actor="admin",
                                              note="kembali")
    assert rolled_back.live
    assert admin.menus.current().version == first.version_id
    assert admin.menus.current().menus["utama"].timeout_ms == 5000
    assert (admin.asterisk.sounds_dir / f"menu-utama-v{first.version_id}.wav").is_file()
    states = {v.version_id: (v.live, v.last_published_at is not None)
              for v in await admin.configs.versions(ConfigKind.MENU)}
    assert states == {first.version_id: (True, True), draft.version_id: (False, True)}
    rows = await admin.fetch("SELECT version_id, published_by FROM config_publications "
                             "WHERE kind = 'menu' ORDER BY publication_id")
    assert [(r["version_id"], r["published_by"]) for r in rows] == [
        (first.version_id, "system"), (draft.version_id, "admin"),
        (first.version_id, "admin")]


class StuckMenu:
    """A line that never takes a new menu file (its loader refused it)."""

    def __init__(self, menu: IvrMenu) -> None:
        self.menu = menu

    def current(self) -> IvrMenu:
        return self.menu


async def test_a_publish_the_line_refuses_changes_nothing(admin: Admin) -> None:
    stuck = StuckMenu(admin.menus.current())
    configs, _, _, _ = build(admin.settings, admin.database, admin.ami, admin.asterisk, stuck)
    first = (await configs.versions(ConfigKind.MENU))[0]
    base = await configs.version(first.version_id)
    draft = await configs.save(ConfigKind.MENU, edited_menu(base.document), actor="admin")
    with pytest.raises(ApplyFailed, match="versi sebelumnya tetap berjalan"):
        await configs.publish(draft.version_id, actor="admin")
    assert not admin.settings.live_menu_file.exists()
    assert not (await configs.version(draft.version_id)).last_published_at


async def test_a_menu_that_can_outlast_the_ivr_guard_is_not_published(admin: Admin) -> None:
    """Each field within its bounds, but the whole too long: a caller who stays silent or
    presses wrong keys until the attempts run out hears the prompts and waits past the IVR
    session's guard (agi_session_timeout, 90 s), where the dialplan fails open and cuts
    them off mid-prompt, without the choice they were making. Publishing refuses it with
    the reason, timed with the version's own prompt audio; nothing changes for callers."""
    first = (await admin.configs.versions(ConfigKind.MENU))[0]
    document = edited_menu((await admin.configs.version(first.version_id)).document)
    document["menus"]["utama"].update(timeout_ms=15000, no_input_attempts=3,
                                      invalid_attempts=3)
    draft = await admin.configs.save(ConfigKind.MENU, document, actor="admin")
    admin.ami.actions.clear()
    with pytest.raises(InvalidConfig, match=rf"Versi #{draft.version_id} tidak diterbitkan: "
                       r"menu jalur 112 bisa menahan penelepon \d+ detik") as refused:
        await admin.configs.publish(draft.version_id, actor="admin")
    assert "lebih dari 88 detik" in refused.value.message  # 90 s less what else it does
    assert refused.value.status == 422
    assert admin.ami.actions == []  # no queue touched
    assert not admin.settings.live_menu_file.exists()
    assert not (await admin.configs.version(draft.version_id)).last_published_at
    # The same menu with fewer tries fits, and publishes.
    document["menus"]["utama"].update(no_input_attempts=1, invalid_attempts=2)
    fitting = await admin.configs.save(ConfigKind.MENU, document, actor="admin")
    assert (await admin.configs.publish(fitting.version_id, actor="admin")).live


async def test_a_publish_that_fails_after_its_queues_were_applied_puts_them_back(
        admin: Admin) -> None:
    """The new menu drops madurese; its queues were applied (madurese gone from Asterisk)
    when the line refused the file: the old menu still runs, so its queues come back
    (madurese's callers would otherwise find no queue and fail open elsewhere)."""
    stuck = StuckMenu(admin.menus.current())
    configs, queues, _, _ = build(admin.settings, admin.database, admin.ami, admin.asterisk,
                                  stuck)
    await queues.apply()
    first = (await configs.versions(ConfigKind.MENU))[0]
    document = edited_menu((await configs.version(first.version_id)).document)
    del document["menus"]["utama"]["options"]["9"]
    document["known_queues"].remove("madurese")
    draft = await configs.save(ConfigKind.MENU, document, actor="admin")
    admin.ami.actions.clear()
    with pytest.raises(ApplyFailed, match="versi sebelumnya tetap berjalan"):
        await configs.publish(draft.version_id, actor="admin")
    assert len(admin.ami.named("QueueReload")) == 2  # the new menu's queues, then back
    assert "[madurese](queue)" in (admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")
    assert not (await configs.version(draft.version_id)).last_published_at


async def test_a_publish_while_asterisk_is_down_says_nothing_was_published(
        admin: Admin) -> None:
    """Asterisk is down (no AMI session) when an admin publishes a menu that drops a queue:
    the refusal says in Bahasa Indonesia that the version was not published, that callers
    still get the one running, and why (Asterisk not reached), not the listener's English;
    nothing is recorded and the live file is untouched. Once Asterisk is back, the same
    version publishes."""
    first = (await admin.configs.versions(ConfigKind.MENU))[0]
    document = edited_menu((await admin.configs.version(first.version_id)).document)
    del document["menus"]["utama"]["options"]["9"]
    document["known_queues"].remove("madurese")
    draft = await admin.configs.save(ConfigKind.MENU, document, actor="admin")
    admin.ami.down = True
    with pytest.raises(AsteriskDown) as refused:
        await admin.configs.publish(draft.version_id, actor="admin")
    assert refused.value.status == 503
    message = refused.value.message
    assert message.startswith(f"Versi #{draft.version_id} belum diterbitkan: Asterisk tidak "
                              "tersambung dengan line.")
    assert "Penelepon tetap mendapat versi yang berjalan" in message
    assert "not logged in" not in message
    assert admin.ami.actions == []
    assert not admin.settings.live_menu_file.exists()
    assert admin.menus.current().version == first.version_id
    assert not (await admin.configs.version(draft.version_id)).last_published_at
    with pytest.raises(ApplyFailed, match="Status antrean tidak dapat dibaca: Asterisk tidak "
                                          "tersambung"):
        await AsteriskAdmin(admin.ami, admin.asterisk).members()

    admin.ami.down = False
    await admin.configs.publish(draft.version_id, actor="admin")
    assert admin.menus.current().version == draft.version_id
    assert "[madurese]" not in (admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")


async def test_an_admin_change_while_asterisk_is_down_is_answered_at_once(
        admin: Admin, settings: Settings) -> None:
    """With the line's real AMI listener and no Asterisk behind it, a publish waited for an
    AMI session before each action (the queues' status, their reload, bringing them back)
    and said Asterisk was down some 20 s later; the console's form hung as long. Now it is
    refused at once (503, nothing published), and a queue's settings are stored and said to
    be applied when Asterisk is back, at once too."""
    listener = ami_listener(free_port(), ListSink(), action_timeout=10.0)
    await listener.start()
    try:
        configs, queues, _, _ = build(admin.settings, admin.database, listener,
                                      admin.asterisk)
        first = (await configs.versions(ConfigKind.MENU))[0]
        document = edited_menu((await configs.version(first.version_id)).document)
        draft = await configs.save(ConfigKind.MENU, document, actor="admin")
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(AsteriskDown, match="belum diterbitkan"):
            await configs.publish(draft.version_id, actor="admin")
        with pytest.raises(ApplyFailed, match="tersimpan, tetapi belum diterapkan"):
            await queues.update("fire", QUEUE_VALUES, "admin")
        assert loop.time() - began < 2.0
        assert not (await configs.version(draft.version_id)).last_published_at
    finally:
        await listener.stop()


async def test_a_recorded_prompt_replaces_the_voice(admin: Admin) -> None:
    first = (await admin.configs.versions(ConfigKind.MENU))[0]
    with pytest.raises(InvalidConfig, match="bukan audio"):
        await admin.configs.add_recording(first.version_id, "saring", b"not audio at all",
                                          filename="x.wav", actor="admin")
    with pytest.raises(InvalidConfig, match="tidak punya rekaman suara"):
        await admin.configs.add_recording(first.version_id, "tidak-ada", wav_bytes(),
                                          filename="x.wav", actor="admin")
    assert len(await admin.configs.versions(ConfigKind.MENU)) == 1

    recorded = await admin.configs.add_recording(first.version_id, "salam-112", wav_bytes(),
                                                 filename="salam.wav", actor="admin")
    assert recorded.based_on == first.version_id
    assert [(r.prompt, r.filename) for r in recorded.recordings] == [("salam-112",
                                                                      "salam.wav")]
    preview = await admin.configs.preview(recorded.version_id)
    assert {p.name: p.recorded for p in preview.prompts}["salam-112"] is True
    greeting = {p.name: p for p in preview.prompts}["salam-112"]
    assert 0.45 < greeting.seconds < 0.6  # the recording, converted, not espeak's voice
    assert wav_shape(await admin.configs.preview_audio(recorded.version_id,
                                                       "salam-112")) == (8000, 1, 2)

    kept = await admin.configs.save(ConfigKind.MENU, recorded.document, actor="admin",
                                    based_on=recorded.version_id)
    assert [r.prompt for r in kept.recordings] == ["salam-112"]
    dropped = await admin.configs.save(ConfigKind.MENU, recorded.document, actor="admin",
                                       based_on=recorded.version_id,
                                       drop_recordings=["salam-112"])
    assert dropped.recordings == ()
    stored = await admin.fetch("SELECT count(*) AS n FROM prompt_audio")
    assert stored[0]["n"] == 1  # one copy, however many versions use it


# -- screening versions ------------------------------------------------------------------------


async def test_screening_thresholds_publish_like_the_menu(admin: Admin) -> None:
    first = (await admin.configs.versions(ConfigKind.SCREENING))[0]
    assert (await admin.configs.version(first.version_id)).document == {}
    with pytest.raises(InvalidConfig, match="ambang"):
        await admin.configs.save(ConfigKind.SCREENING, {"screening_threshold": 0.1},
                                 actor="admin")
    preview = await admin.configs.preview(first.version_id)
    assert preview.settings["normal_priority"] == 10 and preview.tree == ()

    draft = await admin.configs.save(
        ConfigKind.SCREENING, {"screening_threshold": 0.9, "normal_priority": 12},
        actor="admin")
    await admin.configs.publish(draft.version_id, actor="admin")
    assert admin.scoring.current().screening_threshold == 0.9
    assert admin.settings.live_screening_file.is_file()
    assert (admin.asterisk.etc_dir / "siaga112-live" / "normal_priority").read_text() == "12"
    with pytest.raises(InvalidConfig, match="hanya untuk versi menu"):
        await admin.configs.add_recording(draft.version_id, "saring", wav_bytes(),
                                          filename="x.wav", actor="admin")


# -- queues and operators ----------------------------------------------------------------------


QUEUE_VALUES: dict[str, Any] = {
    "strategy": "rrmemory", "ring_timeout_seconds": 20, "retry_seconds": 3,
    "wrapup_seconds": 15, "announce_position": False, "announce_holdtime": False,
    "announce_frequency_seconds": 0, "max_wait_seconds": 45}


async def test_queue_settings_are_stored_rendered_and_reloaded(admin: Admin) -> None:
    with pytest.raises(InvalidConfig):
        await admin.queues.update("fire", {**QUEUE_VALUES, "strategy": "linear"}, "admin")
    assert admin.ami.actions == [] and not (admin.asterisk.etc_dir / QUEUES_CONF).exists()

    stored = await admin.queues.update("fire", QUEUE_VALUES, "admin")
    assert stored.updated_by == "admin" and stored.strategy == "rrmemory"
    text = (admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")
    assert "[fire](queue)\nstrategy = rrmemory\ntimeout = 20\nretry = 3\nwrapuptime = 15\n" in text
    # Who is in a queue the new file would drop is asked first (nobody: nothing removed).
    assert [a["Action"] for a in admin.ami.actions[:2]] == ["QueueStatus", "QueueReload"]
    live = admin.asterisk.etc_dir / "siaga112-live"
    puts = {path.name: path.read_text() for path in live.iterdir()}
    assert puts["max_wait.fire"] == "45" and puts["max_wait.medical"] == "60"
    assert set(puts) == {f"max_wait.{q}" for q in
                         {*admin.menus.current().known_queues, "all-operators"}}

    admin.ami.actions.clear()
    assert await admin.queues.apply() is False  # nothing changed: no reload
    admin.queues.asterisk_restarted()
    assert await admin.queues.apply() is True  # a new Asterisk: load it again

    overview = await admin.queues.overview()
    assert {q.queue: q.strategy for q in overview.queues}["fire"] == "rrmemory"
    assert overview.members == []


async def test_a_queue_change_asterisk_misses_is_kept_and_applied_later(admin: Admin) -> None:
    admin.ami.down = True
    with pytest.raises(ApplyFailed, match="tersimpan, tetapi belum diterapkan"):
        await admin.queues.update("medical", QUEUE_VALUES, "admin")
    rows = await admin.fetch("SELECT queue, strategy FROM queue_settings")
    assert [(r["queue"], r["strategy"]) for r in rows] == [("medical", "rrmemory")]
    assert (await admin.queues.overview()).members is None
    admin.ami.down = False
    assert await admin.queues.apply() is True
    assert "[medical](queue)\nstrategy = rrmemory" in (
        admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")


async def test_operators_leave_a_queue_the_menu_drops_before_the_reload(admin: Admin) -> None:
    """app_queue keeps a dropped queue for the callers waiting in it, members and all, out of
    reach by name after the reload: its members are taken out first, so those callers go on
    to all-operators at once. Other queues' members stay; Asterisk refusing changes nothing
    else (the queues are applied all the same)."""
    menu = admin.menus.current()
    without = replace(menu, known_queues=menu.known_queues - {"madurese"})
    admin.ami.members = [
        {"Queue": q, "Location": i, "Name": "Sari", "Penalty": "0", "Membership": m,
         "Paused": "0", "PausedReason": "", "InCall": "1"}
        for q, i, m in (("madurese", "PJSIP/op1001", "dynamic"),
                        ("all-operators", "PJSIP/op1001", "dynamic"),
                        ("madurese", "PJSIP/op1009", "static"))]
    assert await admin.queues.apply(without) is True
    assert [(a["Action"], a.get("Queue"), a.get("Interface")) for a in admin.ami.actions] == [
        ("QueueStatus", None, None), ("QueueRemove", "madurese", "PJSIP/op1001"),
        ("QueueReload", None, None)]
    assert "[madurese]" not in (admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")

    admin.ami.actions.clear()
    admin.ami.refuse = {"QueueRemove"}
    assert await admin.queues.apply(menu) is True  # madurese back: nothing to drop
    assert await admin.queues.apply(without) is True  # refused: applied all the same
    assert [a["Action"] for a in admin.ami.actions] == [
        "QueueStatus", "QueueReload", "QueueStatus", "QueueReload"]


async def add_operator(admin: Admin, username: str) -> None:
    context = make_context(admin.settings, admin.database)
    await context.accounts.create(username, "operator", PASSWORD, actor="test",
                                  display_name="Sari")


def sari_in_fire(pause_reason: str | None = None) -> list[dict[str, str]]:
    """QueueStatus's members after Sari joined at op1001 with fire at level 5: fire and the
    overflow (paused, if ``pause_reason``)."""
    paused = "0" if pause_reason is None else "1"
    return [{"Queue": q, "Location": "PJSIP/op1001", "Name": "Sari", "Penalty": str(p),
             "Membership": "dynamic", "Paused": paused, "PausedReason": pause_reason or "",
             "InCall": "0"} for q, p in (("fire", 0), ("all-operators", 4))]


async def test_new_skill_levels_move_a_logged_in_operator(admin: Admin) -> None:
    await add_operator(admin, "sari")
    await admin.queues.assign_operator("sari", "PJSIP/op1001", {"fire": 5, "medical": 3})
    # Sari joined fire (and with it the overflow), not medical.
    admin.ami.members = sari_in_fire()
    admin.ami.actions.clear()
    account, changes, _, _ = await admin.queues.assign_operator(
        "sari", "PJSIP/op1001", {"fire": 2, "security": 5})
    assert account.skills == {"fire": 2, "security": 5}
    assert [(c.action, c.queue, c.penalty) for c in changes] == [("penalty", "fire", 3)]
    assert admin.ami.named("QueuePenalty") == [
        {"Action": "QueuePenalty", "Queue": "fire", "Interface": "PJSIP/op1001",
         "Penalty": "3"}]

    for skills, error in (({"fire": 7}, InvalidConfig), ({"juggling": 3}, InvalidDeskInput)):
        with pytest.raises(error):
            await admin.queues.assign_operator("sari", "PJSIP/op1001", skills)
    assert (await admin.queues.operators())[0].skills == {"fire": 2, "security": 5}


async def test_a_logged_in_operators_desk_moved_to_another_phone_takes_their_queues(
        admin: Admin) -> None:
    """Sari is in fire and the overflow at op1001, on a break, when an admin puts her desk at
    op1002: op1002 joins her queues with her penalties and her pause, then op1001 leaves
    them (not left to be rung for nobody, nor out of her desk's reach)."""
    await add_operator(admin, "sari")
    await admin.queues.assign_operator("sari", "PJSIP/op1001", {"fire": 5, "medical": 3})
    admin.ami.members = sari_in_fire(pause_reason="break")
    admin.ami.actions.clear()
    _, changes, _, _ = await admin.queues.assign_operator("sari", "PJSIP/op1002",
                                                          {"fire": 5, "medical": 3})
    moves = [a for a in admin.ami.actions if a["Action"] in ("QueueAdd", "QueueRemove")]
    assert moves == [
        {"Action": "QueueAdd", "Queue": "fire", "Interface": "PJSIP/op1002", "Penalty": "0",
         "MemberName": "Sari", "Paused": "true", "Reason": "break"},
        {"Action": "QueueAdd", "Queue": "all-operators", "Interface": "PJSIP/op1002",
         "Penalty": "4", "MemberName": "Sari", "Paused": "true", "Reason": "break"},
        {"Action": "QueueRemove", "Queue": "fire", "Interface": "PJSIP/op1001"},
        {"Action": "QueueRemove", "Queue": "all-operators", "Interface": "PJSIP/op1001"}]
    assert [(c.action, c.queue) for c in changes] == [
        ("add", "fire"), ("add", "all-operators"), ("remove", "fire"),
        ("remove", "all-operators")]


PJSIP_RELOAD = {"Action": "Reload", "Module": "res_pjsip.so"}


async def test_a_new_phone_is_followed_by_a_pjsip_reload(admin: Admin) -> None:
    """Asterisk rings a realtime phone added after its start only once PJSIP is reloaded."""
    await add_operator(admin, "sari")
    _, _, secret, pending = await admin.queues.assign_operator("sari", "PJSIP/op1001",
                                                               {"fire": 5})
    assert secret is not None and pending is None
    assert admin.ami.named("Reload") == [PJSIP_RELOAD]
    admin.ami.actions.clear()
    # The same phone, other skills: Asterisk knows it already.
    _, _, secret, pending = await admin.queues.assign_operator("sari", "PJSIP/op1001",
                                                               {"medical": 2})
    assert (secret, pending) == (None, None) and admin.ami.named("Reload") == []
    # A desk moved to another phone, and a renewed secret: reloaded again.
    await admin.queues.assign_operator("sari", "PJSIP/op1002", {"fire": 5})
    assignment, pending = await admin.queues.renew_phone_secret("sari")
    assert assignment.phone_secret is not None and pending is None
    assert admin.ami.named("Reload") == [PJSIP_RELOAD, PJSIP_RELOAD]


async def test_a_renewed_secret_ends_the_phones_registration_before_the_reload(
        admin: Admin) -> None:
    """A secret is renewed when a phone is lost or stolen: the registration the old secret
    made kept the phone ringing with callers until it expired. Its contact is deleted (the
    permanent one, a cluster front's, is configuration: left alone), then PJSIP reloaded."""
    await add_operator(admin, "sari")
    await admin.queues.assign_operator("sari", "PJSIP/op1002", {"fire": 5})
    admin.ami.lists["PJSIPShowEndpoint"] = [
        {"Event": "EndpointDetail", "ObjectName": "op1002"},
        {"Event": "ContactStatusDetail", "AOR": "op1002", "ID": "op1002;@5e1f",
         "URI": "sip:op1002@192.0.2.7:5060"},
        {"Event": "ContactStatusDetail", "AOR": "op1002", "ID": "op1002@@9a0c",
         "URI": "sip:192.0.2.1:5060"}]
    admin.ami.actions.clear()
    _, pending = await admin.queues.renew_phone_secret("sari")
    assert pending is None
    assert [a["Action"] for a in admin.ami.actions] == [
        "PJSIPShowEndpoint", "DBDel", "Reload"]
    assert admin.ami.actions[0]["Endpoint"] == "op1002"
    assert admin.ami.named("DBDel") == [
        {"Action": "DBDel", "Family": "registrar/contact", "Key": "op1002;@5e1f"}]
    # Asterisk refuses (no system class): the secret is renewed all the same, and the admin
    # is told the phone may ring until its registration runs out.
    admin.ami.refuse.add("DBDel")
    assignment, pending = await admin.queues.renew_phone_secret("sari")
    assert assignment.phone_secret is not None
    assert pending is not None and "belum diakhiri" in pending and "berdering" in pending
    assert admin.ami.named("Reload") == [PJSIP_RELOAD, PJSIP_RELOAD]


async def test_a_desk_whose_phone_is_the_browser_has_no_secret_to_type(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    """The console's softphone makes its own secret whenever its page opens: the admin only
    says which kind of phone rings at the desk; a change of kind reloads PJSIP."""
    await add_operator(admin, "sari")
    web_admin = browsers["admin1"]
    assigned = await web_admin.post("/console/admin/operators/sari", {
        "interface": "PJSIP/op1003", "skill.fire": "4", "phone": "browser"})
    kind, text = await web_admin.flash(assigned)
    assert kind == "ok" and "Keahlian sari disimpan" in text and "sandi" not in text
    operator = {a.username: a for a in await admin.queues.operators()}["sari"]
    assert operator.phone is PhoneKind.BROWSER
    assert admin.ami.named("Reload") == [PJSIP_RELOAD]
    for hostile in ("<script>alert(1)</script>", "browser\nwebrtc=no", ""):
        refused = await web_admin.post("/console/admin/operators/sari", {
            "interface": "PJSIP/op1003", "skill.fire": "2", "phone": hostile})
        kind, text = await web_admin.flash(refused)
        assert kind == "error" and "Jenis telepon" in text
    assert {a.username: a.skills for a in await admin.queues.operators()}["sari"] == {
        "fire": 4}
    # Saved again with its kind: nothing new for Asterisk. Back to a desk phone: a secret
    # to type, shown once, and a reload.
    admin.ami.actions.clear()
    _, _, secret, _ = await admin.queues.assign_operator("sari", "PJSIP/op1003", {"fire": 3},
                                                         PhoneKind.BROWSER)
    assert secret is None and admin.ami.named("Reload") == []
    _, _, secret, _ = await admin.queues.assign_operator("sari", "PJSIP/op1003", {"fire": 3},
                                                         PhoneKind.DESK)
    assert secret is not None and admin.ami.named("Reload") == [PJSIP_RELOAD]


async def test_a_refused_pjsip_reload_keeps_the_phone_and_is_done_again_on_reconnect(
        admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    await add_operator(admin, "sari")
    admin.ami.refuse = {"Reload"}
    with caplog.at_level("WARNING", "telephony.admin"):
        _, _, secret, pending = await admin.queues.assign_operator("sari", "PJSIP/op1001",
                                                                   {"fire": 5})
    # Stored, its secret shown this once, and the admin told Asterisk has not taken it yet.
    assert secret is not None
    assert pending is not None and pending.startswith(
        "Telepon tersimpan, tetapi belum diterapkan di Asterisk: Asterisk menolak Reload")
    assert (await admin.queues.operators())[0].interface == "PJSIP/op1001"
    assert [r.getMessage() for r in caplog.records if "PJSIP not reloaded" in r.getMessage()
            ] == ["stored phones not applied to Asterisk (PJSIP not reloaded): Asterisk "
                  "menolak Reload: Reload refused: Permission denied"]
    # The next AMI session (FullyBooted) reloads PJSIP once, whatever changed meanwhile.
    admin.ami.refuse = set()
    sync = AsteriskSync(admin.queues, admin.configs, retry_seconds=0.01)
    runner = asyncio.create_task(sync.run())
    try:
        sync.booted({"Event": "FullyBooted"})
        await eventually(lambda: admin.ami.named("Reload") == [PJSIP_RELOAD])
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert admin.ami.named("Reload") == [PJSIP_RELOAD]


# -- site settings -----------------------------------------------------------------------------


async def test_dispatch_targets_and_shifts_apply_at_once_and_after_a_restart(
        admin: Admin) -> None:
    targets = await admin.site.set_dispatch_targets({"fire": 240, "flood": 1800}, "admin")
    assert targets == {ReportType.FIRE: 240, ReportType.FLOOD: 1800}
    assert admin.site.dispatch_targets() == {ReportType.FIRE: 240, ReportType.FLOOD: 1800}
    roster = await admin.site.set_shifts([{"name": "pagi", "start": "06:00"},
                                          {"name": "malam", "start": "18:00"}], "admin")
    assert [s.name for s in admin.calendar.definitions] == ["pagi", "malam"]
    assert roster[1].start == time(18, 0)
    rows = await admin.fetch("SELECT name, starts_at FROM shifts ORDER BY starts_at")
    assert [(r["name"], r["starts_at"]) for r in rows] == [("pagi", time(6)),
                                                           ("malam", time(18))]
    with pytest.raises(InvalidConfig):
        await admin.site.set_shifts([], "admin")

    # A restarted line: the settings file's values, then the admin's.
    context = make_context(admin.settings, admin.database)
    calendar = ShiftCalendar(DEFAULT_SHIFTS, admin.settings.timezone)
    restarted = SiteService(admin.database, context.dispatches, calendar)
    assert restarted.dispatch_targets() == {ReportType.FIRE: 300, ReportType.MEDICAL: 300}
    await restarted.restore()
    assert restarted.dispatch_targets() == {ReportType.FIRE: 240, ReportType.FLOOD: 1800}
    assert [s.name for s in calendar.definitions] == ["pagi", "malam"]


# -- over HTTP ---------------------------------------------------------------------------------


async def test_the_admin_api_serves_admins_only_and_audits_changes(admin: Admin) -> None:
    context = make_context(admin.settings, admin.database)
    api = AdminApi(admin.configs, admin.queues, admin.site, context.directory)
    app = build_app(context, api.routes())
    async with TestClient(TestServer(app)) as client:
        for username, role in (("admin1", "admin"), ("op1", "operator"),
                               ("sup1", "supervisor")):
            await context.accounts.create(username, role, PASSWORD, actor="test")

        async def bearer(username: str) -> dict[str, str]:
            response = await client.post("/api/session", json={"username": username,
                                                               "password": PASSWORD})
            return {"Authorization": f"Bearer {(await response.json())['token']}"}

        table = app[ROUTE_TABLE]
        admin_routes = [r for r in table.routes if r.path.startswith("/api/admin/")]
        assert len([r for r in admin_routes if r.method != "HEAD"]) == 24
        assert all(r.access.roles == {"admin"} for r in admin_routes)
        for who in ("op1", "sup1"):
            headers = await bearer(who)
            for route in admin_routes:
                path = route.path.replace("{version_id}", "1").replace(
                    "{prompt}", "saring").replace("{queue}", "fire").replace(
                    "{username}", "op1").replace("{recipient_id}", "1")
                response = await client.request(route.method, path, headers=headers)
                assert response.status == 403, (who, route.method, path)

        headers = await bearer("admin1")
        listed = await client.get("/api/admin/menu/versions", headers=headers)
        body = await listed.json()
        conforms(body, "ConfigVersionList")
        first = body["live_version_id"]
        detail = await (await client.get(f"/api/admin/versions/{first}",
                                         headers=headers)).json()
        conforms(detail, "ConfigVersionDetail")

        # The console's way: the session cookie, and the CSRF token in a header.
        login = await client.post("/api/session", json={"username": "admin1",
                                                        "password": PASSWORD})
        csrf = (await login.json())["csrf_token"]
        edited = edited_menu(detail["document"])
        no_csrf = await client.post("/api/admin/menu/versions",
                                    json={"document": edited, "based_on": first})
        assert no_csrf.status == 403
        saved = await client.post("/api/admin/menu/versions", headers={CSRF_HEADER: csrf},
                                  json={"document": edited, "based_on": first,
                                        "note": "<b>lebih singkat</b>"})
        assert saved.status == 201, await saved.text()
        version = (await saved.json())["version"]
        assert version["state"] == "draft" and version["note"] == "<b>lebih singkat</b>"

        preview = await client.post(f"/api/admin/versions/{version['version_id']}/preview",
                                    headers={CSRF_HEADER: csrf})
        shown = await preview.json()
        conforms(shown, "ConfigPreview")
        audio = await client.get(shown["prompts"][0]["audio_url"])
        assert audio.status == 200 and audio.content_type == "audio/wav"

        published = await client.post(f"/api/admin/versions/{version['version_id']}/publish",
                                      headers={CSRF_HEADER: csrf}, json={"note": "uji"})
        assert published.status == 200, await published.text()
        assert (await published.json())["state"] == "live"

        bad = await client.put("/api/admin/queues/fire", headers=headers,
                               json={**QUEUE_VALUES, "ring_timeout_seconds": 500})
        assert bad.status == 422
        assert (await bad.json())["error"]["field"] == "ring_timeout_seconds"
        admin.ami.down = True
        kept = await client.put("/api/admin/queues/fire", headers=headers, json=QUEUE_VALUES)
        assert kept.status == 502
        assert "tersimpan" in (await kept.json())["error"]["message"]
        admin.ami.down = False
        queues = await (await client.get("/api/admin/queues", headers=headers)).json()
        conforms(queues, "QueueOverview")

        targets = await client.put("/api/admin/dispatch-targets", headers=headers,
                                   json={"targets": {"fire": 200}})
        conforms(await targets.json(), "DispatchTargets")
        shifts = await client.put("/api/admin/shifts", headers=headers, json={
            "shifts": [{"name": "pagi", "start": "07:00"}, {"name": "malam", "start": "19:00"}]})
        conforms(await shifts.json(), "Shifts")
        agency = await client.post("/api/admin/agencies", headers=headers,
                                   json={"code": "tagana", "name": "Tagana"})
        assert agency.status == 200
        recipient = await client.post("/api/admin/recipients", headers=headers, json={
            "agency": "tagana", "name": "Budi", "contact": "+6281200000000",
            "report_type": "flood"})
        assert recipient.status == 201, await recipient.text()
        rid = (await recipient.json())["recipient_id"]
        stopped = await client.patch(f"/api/admin/recipients/{rid}", headers=headers,
                                     json={"active": False})
        assert (await stopped.json())["active"] is False
        listed_recipients = await (await client.get("/api/admin/recipients",
                                                    headers=headers)).json()
        conforms(listed_recipients, "RecipientList")

        # A desk's phone gets a SIP secret once, shown in this answer only; a new one on demand.
        desk = await client.put("/api/admin/operators/op1", headers=headers,
                                json={"interface": "PJSIP/op2001", "skills": {"fire": 3}})
        assigned = await desk.json()
        conforms(assigned, "OperatorUpdate")
        secret = assigned["phone_secret"]
        assert secret["username"] == "op2001" and secret["realm"] == "siaga112"
        assert assigned["phone_pending"] is None  # PJSIP reloaded: the queues ring it
        assert admin.ami.named("Reload") == [PJSIP_RELOAD]
        again = await client.put("/api/admin/operators/op1", headers=headers,
                                 json={"interface": "PJSIP/op2001", "skills": {"fire": 4}})
        assert (await again.json())["phone_secret"] is None
        # Asterisk refuses the reload: the new secret is stored and shown all the same, and
        # the answer says Asterisk has not taken it yet.
        admin.ami.refuse = {"Reload"}
        renewed = await client.post("/api/admin/operators/op1/phone-secret", headers=headers)
        body = await renewed.json()
        assert renewed.status == 200, body
        conforms(body, "RenewedPhoneSecret")
        assert body["secret"] != secret["secret"]
        assert body["phone_pending"].startswith("Telepon tersimpan, tetapi belum diterapkan")
        stored = await admin.fetch("SELECT * FROM phone_secrets")
        assert len(stored) == 1 and body["secret"] not in repr(dict(stored[0]))
        audit = repr([dict(r) for r in await admin.fetch("SELECT * FROM audit_log")])
        assert secret["secret"] not in audit and body["secret"] not in audit
        nobody = await client.post("/api/admin/operators/sup1/phone-secret", headers=headers)
        assert nobody.status == 409

        actions = [r["action"] for r in await admin.fetch(
            "SELECT action FROM audit_log WHERE actor = 'admin1' ORDER BY audit_id")]
        assert [a for a in actions if a != "login"] == [
            "config.save", "config.publish", "queue.update", "dispatch_targets.update",
            "shifts.update", "agency.save", "recipient.add", "recipient.update",
            "operator.skills", "operator.skills", "operator.phone_secret"]


# -- the console pages -------------------------------------------------------------------------


@pytest.fixture
async def browsers(admin: Admin) -> AsyncIterator[dict[str, Browser]]:
    """The admin console with an admin's and an operator's browser, logged in."""
    context = make_context(admin.settings, admin.database)
    directory = context.directory
    app = build_app(context, [
        *AdminApi(admin.configs, admin.queues, admin.site, directory).routes(),
        *AdminPages(admin.configs, admin.queues, admin.site, directory).routes()])
    async with TestClient(TestServer(app)) as client:
        found: dict[str, Browser] = {}
        for username, role in (("admin1", "admin"), ("op1", "operator")):
            await context.accounts.create(username, role, PASSWORD, actor="test")
            http = aiohttp.ClientSession(base_url=client.make_url(""),
                                         cookie_jar=aiohttp.CookieJar(unsafe=True))
            found[username] = Browser(http)
            response = await found[username].log_in(username)
            assert response.status == 303
        found["nobody"] = Browser(aiohttp.ClientSession(
            base_url=client.make_url(""), cookie_jar=aiohttp.CookieJar(unsafe=True)))
        try:
            yield found
        finally:
            for browser in found.values():
                await browser.http.close()


ADMIN_PAGES = ("/console/admin/ivr", "/console/admin/screening", "/console/admin/versions/1",
               "/console/admin/queues", "/console/admin/reference")


async def test_the_admin_pages_are_for_admins_only(admin: Admin,
                                                   browsers: dict[str, Browser]) -> None:
    await admin.configs.versions(ConfigKind.MENU)
    for path in ADMIN_PAGES:
        status, html, response = await browsers["admin1"].get(path)
        assert status == 200, (path, html)
        assert "media-src 'self'" in response.headers["Content-Security-Policy"]
        status, _, _ = await browsers["op1"].get(path)
        assert status == 403, path
        status, _, response = await browsers["nobody"].get(path)
        assert status == 303 and response.headers["Location"] == "/console/login"
    _, home, _ = await browsers["admin1"].get("/console/")
    assert 'href="/console/admin/ivr"' in home
    refused = await browsers["admin1"].post("/console/admin/versions/1/publish", {},
                                            csrf=False)
    assert refused.status == 403


async def test_an_admin_edits_previews_and_publishes_the_menu_in_the_console(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    web_admin = browsers["admin1"]
    first = (await admin.configs.versions(ConfigKind.MENU))[0].version_id
    _, html, _ = await web_admin.get(f"/console/admin/versions/{first}")
    assert 'name="prompt.menu-utama"' in html and 'name="option.utama.1"' in html
    assert "Versi ini yang berjalan" in html

    kind, text = await web_admin.flash(await web_admin.post(
        f"/console/admin/versions/{first}/form", {"menu.utama.timeout": "0,1"}))
    assert kind == "error" and "timeout_ms" in text
    assert len(await admin.configs.versions(ConfigKind.MENU)) == 1

    hostile = "Tekan satu <script>alert(1)</script> untuk darurat."
    response = await web_admin.post(f"/console/admin/versions/{first}/form", {
        "prompt.menu-utama": hostile, "menu.utama.timeout": "2,5",
        "option.utama.9": "", "new.utama.key": "7",
        "new.utama.target": "route:emergency:medical:medical",
        "note": "<b>lebih singkat</b>"})
    kind, text = await web_admin.flash(response)
    assert kind == "ok" and "draf" in text
    draft = (await admin.configs.versions(ConfigKind.MENU))[0]
    assert response.headers["Location"] == f"/console/admin/versions/{draft.version_id}"
    saved = await admin.configs.version(draft.version_id)
    utama = saved.document["menus"]["utama"]
    assert utama["timeout_ms"] == 2500 and "9" not in utama["options"]
    assert utama["options"]["7"] == {"route": {"category": "emergency", "skill": "medical",
                                               "queue": "medical"}}
    _, html, _ = await web_admin.get(f"/console/admin/versions/{draft.version_id}")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<b>lebih singkat</b>" not in html and "&lt;b&gt;lebih singkat" in html
    assert "<audio" not in html

    kind, _ = await web_admin.flash(await web_admin.post(
        f"/console/admin/versions/{draft.version_id}/preview", {}))
    assert kind == "ok"
    _, html, _ = await web_admin.get(f"/console/admin/versions/{draft.version_id}")
    assert f'src="/api/admin/versions/{draft.version_id}/prompts/menu-utama/audio"' in html

    kind, text = await web_admin.flash(await web_admin.post(
        f"/console/admin/versions/{draft.version_id}/publish", {"note": "uji"}))
    assert kind == "ok" and "panggilan berikutnya" in text
    assert admin.menus.current().version == draft.version_id
    assert admin.menus.current().prompts[f"menu-utama-v{draft.version_id}"] == hostile

    kind, _ = await web_admin.flash(await web_admin.post(
        f"/console/admin/versions/{first}/json", {"document": "{bukan json"}))
    assert kind == "error"


async def test_an_admin_changes_queues_operators_and_reference_data_in_the_console(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    web_admin = browsers["admin1"]
    queue_form = {"strategy": "ringall", "ring_timeout_seconds": "20", "retry_seconds": "2",
                  "wrapup_seconds": "5", "announce_frequency_seconds": "0",
                  "max_wait_seconds": "90"}
    kind, text = await web_admin.flash(await web_admin.post(
        "/console/admin/queues/fire", {**queue_form, "announce_position": "1"}))
    assert kind == "error" and "selang pengumuman" in text
    kind, _ = await web_admin.flash(await web_admin.post("/console/admin/queues/fire",
                                                         queue_form))
    assert kind == "ok"
    assert "[fire](queue)\nstrategy = ringall\ntimeout = 20" in (
        admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")

    await add_operator(admin, "sari")
    assigned = await web_admin.post("/console/admin/operators/sari", {
        "interface": "PJSIP/op1002", "skill.fire": "4", "skill.medical": "0"})
    # The phone's new secret is shown this once, on a page of its own: never in the flash
    # cookie, which the browser would keep and send back.
    assert assigned.status == 200 and assigned.headers["Cache-Control"] == "no-store"
    html = await assigned.text()
    assert "Keahlian sari disimpan" in html
    assert "mendaftar (REGISTER) dengan nama pengguna op1002" in html
    assert web_admin.cookie(FLASH_COOKIE) is None
    assert {a.username: a.skills for a in await admin.queues.operators()}["sari"] == {
        "fire": 4}

    for path, form in (
            ("/console/admin/agencies", {"code": "tagana", "name": "Tagana <i>x</i>",
                                         "active": "1"}),
            ("/console/admin/recipients", {"agency": "tagana", "name": "Budi",
                                           "contact": "+6281200000000", "report_type": ""}),
            ("/console/admin/dispatch-targets", {"target.fire": "4", "target.flood": "30"}),
            ("/console/admin/shifts", {"shift.0.name": "pagi", "shift.0.start": "06:00",
                                       "shift.1.name": "malam", "shift.1.start": "18:00"})):
        kind, text = await web_admin.flash(await web_admin.post(path, form))
        assert kind == "ok", (path, text)
    assert admin.site.dispatch_targets() == {ReportType.FIRE: 240, ReportType.FLOOD: 1800}
    assert [s.name for s in admin.calendar.definitions] == ["pagi", "malam"]
    rows = await admin.fetch("SELECT recipient_id FROM agency_recipients")
    kind, text = await web_admin.flash(await web_admin.post(
        f"/console/admin/recipients/{rows[0]['recipient_id']}", {"active": "0"}))
    assert kind == "ok" and "dihentikan" in text
    _, html, _ = await web_admin.get("/console/admin/reference")
    assert "Tagana &lt;i&gt;x&lt;/i&gt;" in html and 'value="4"' in html


async def test_two_admins_with_the_queues_page_open_do_not_undo_each_others_change(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    """Two admins have the Antrean page open. One (through the API) gives fire a 30 s
    wrap-up; the other then changes fire's strategy on the page loaded before, whose form
    still carries the old wrap-up: refused with who changed it, nothing stored or applied,
    instead of putting the wrap-up back unseen. Reloaded, their change goes through and
    keeps the 30 s. The API refuses a stale expected_updated_at alike (409)."""
    web_admin = browsers["admin1"]

    async def fire_form() -> dict[str, str]:
        """The fire form's hidden and number fields as the page shows them now."""
        _, html, _ = await web_admin.get("/console/admin/queues")
        form = re.search(r'action="/console/admin/queues/fire".*?</form>', html, re.S)
        assert form is not None
        fields = re.findall(r'type="(?:hidden|number)" name="(\w+)"[^>]*value="([^"]*)"',
                            form.group(0))
        return {name: value for name, value in fields if name != "csrf_token"}

    page = await fire_form()
    assert page["expected_updated_at"] == "" and page["wrapup_seconds"] == "5"

    headers = {CSRF_HEADER: web_admin.cookie(CSRF_COOKIE) or ""}
    listed = await (await web_admin.http.get("/api/admin/queues")).json()
    fire = next(q for q in listed["queues"] if q["queue"] == "fire")
    other = await web_admin.http.put("/api/admin/queues/fire", headers=headers, json={
        **QUEUE_VALUES, "strategy": fire["strategy"], "wrapup_seconds": 30,
        "expected_updated_at": fire["updated_at"]})
    assert other.status == 200, await other.text()
    stored = await admin.fetch("SELECT * FROM queue_settings")
    admin.ami.actions.clear()

    kind, text = await web_admin.flash(await web_admin.post("/console/admin/queues/fire",
                                                            {**page, "strategy": "ringall"}))
    assert kind == "error" and "baru saja diubah oleh admin1" in text, text
    assert await admin.fetch("SELECT * FROM queue_settings") == stored
    assert admin.ami.named("QueueReload") == []  # nothing applied either
    again = await web_admin.http.put("/api/admin/queues/fire", headers=headers, json={
        **QUEUE_VALUES, "expected_updated_at": fire["updated_at"]})
    assert again.status == 409 and (await again.json())["error"]["code"] == "stale"
    odd = await web_admin.http.put("/api/admin/queues/fire", headers=headers, json={
        **QUEUE_VALUES, "expected_updated_at": "kemarin"})
    assert odd.status == 422 and (await odd.json())["error"]["field"] == "expected_updated_at"
    assert await admin.fetch("SELECT * FROM queue_settings") == stored

    page = await fire_form()
    assert page["wrapup_seconds"] == "30"
    kind, _ = await web_admin.flash(await web_admin.post("/console/admin/queues/fire",
                                                         {**page, "strategy": "ringall"}))
    assert kind == "ok"
    (row,) = await admin.fetch("SELECT strategy, wrapup_seconds FROM queue_settings")
    assert (row["strategy"], row["wrapup_seconds"]) == ("ringall", 30)
    assert "[fire](queue)\nstrategy = ringall" in (
        admin.asterisk.etc_dir / QUEUES_CONF).read_text("utf-8")


async def test_an_operators_skills_changed_by_another_admin_are_not_undone_unseen(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    """The operator form posts the desk and every skill level whole: one made before another
    admin gave Sari her desk and fire skill is refused (nothing stored), not allowed to put
    her back without them; a stale expected_revision over the API likewise (409)."""
    web_admin = browsers["admin1"]
    await add_operator(admin, "sari")

    async def sari_form() -> str:
        _, html, _ = await web_admin.get("/console/admin/queues")
        found = re.search(r'action="/console/admin/operators/sari".*?'
                          r'name="expected_revision" value="(\w+)"', html, re.S)
        assert found is not None
        return found.group(1)

    seen = await sari_form()
    headers = {CSRF_HEADER: web_admin.cookie(CSRF_COOKIE) or ""}
    listed = await (await web_admin.http.get("/api/admin/operators")).json()
    sari = next(o for o in listed["operators"] if o["username"] == "sari")
    assert sari["revision"] == seen
    other = await web_admin.http.put("/api/admin/operators/sari", headers=headers, json={
        "interface": "PJSIP/op1002", "skills": {"fire": 4}, "expected_revision": seen})
    assert other.status == 200, await other.text()
    assigned = await admin.queues.operators()

    kind, text = await web_admin.flash(await web_admin.post("/console/admin/operators/sari", {
        "expected_revision": seen, "interface": "PJSIP/op1003", "skill.medical": "3"}))
    assert kind == "error" and "baru saja diubah admin lain" in text, text
    stale = await web_admin.http.put("/api/admin/operators/sari", headers=headers, json={
        "interface": "PJSIP/op1003", "skills": {"medical": 3}, "expected_revision": seen})
    assert stale.status == 409 and (await stale.json())["error"]["code"] == "stale"
    assert await admin.queues.operators() == assigned

    kind, _ = await web_admin.flash(await web_admin.post("/console/admin/operators/sari", {
        "expected_revision": await sari_form(), "interface": "PJSIP/op1002",
        "skill.fire": "4", "skill.medical": "3"}))
    assert kind == "ok"
    assert {a.username: a.skills for a in await admin.queues.operators()}["sari"] == {
        "fire": 4, "medical": 3}


async def test_a_publish_from_a_page_opened_before_another_admins_publish_is_refused(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    """Two admins each made a draft from the live menu. One publishes theirs while the other
    has their own draft's page open: publishing from that page would drop the first one's
    edits unseen, so it is refused (saying which version now runs and who published it),
    and nothing changes; the API refuses a stale expected_live_version_id alike (409).
    Reloaded, the page publishes: the admin has seen what runs now."""
    web_admin = browsers["admin1"]
    first = (await admin.configs.versions(ConfigKind.MENU))[0]
    base = await admin.configs.version(first.version_id)
    theirs = await admin.configs.save(ConfigKind.MENU, edited_menu(base.document),
                                      actor="admin2", based_on=first.version_id)
    mine = await admin.configs.save(ConfigKind.MENU, {**base.document, "default_line": "119"},
                                    actor="admin1", based_on=first.version_id)

    async def publish_form() -> dict[str, str]:
        _, html, _ = await web_admin.get(f"/console/admin/versions/{mine.version_id}")
        form = re.search(r'id="publish-form".*?</form>', html, re.S)
        assert form is not None
        fields = re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form.group(0))
        return {name: value for name, value in fields if name != "csrf_token"}

    page = await publish_form()
    assert page == {"expected_live_version_id": str(first.version_id)}
    await admin.configs.publish(theirs.version_id, actor="admin2")
    kind, text = await web_admin.flash(await web_admin.post(
        f"/console/admin/versions/{mine.version_id}/publish", {**page, "note": "uji"}))
    assert kind == "error", text
    assert f"sudah berganti menjadi versi #{theirs.version_id} (diterbitkan admin2)" in text
    assert admin.menus.current().version == theirs.version_id
    assert not (await admin.configs.version(mine.version_id)).last_published_at
    stale = await web_admin.http.post(
        f"/api/admin/versions/{mine.version_id}/publish",
        headers={CSRF_HEADER: web_admin.cookie(CSRF_COOKIE) or ""},
        json={"expected_live_version_id": first.version_id})
    assert stale.status == 409 and (await stale.json())["error"]["code"] == "stale"
    assert admin.menus.current().version == theirs.version_id

    page = await publish_form()
    assert page == {"expected_live_version_id": str(theirs.version_id)}
    kind, _ = await web_admin.flash(await web_admin.post(
        f"/console/admin/versions/{mine.version_id}/publish", {**page, "note": "uji"}))
    assert kind == "ok"
    assert admin.menus.current().version == mine.version_id


# -- hostile input (issue 13, items 9 and 10) ---------------------------------------------------


async def live_menu(admin: Admin) -> dict[str, Any]:
    first = (await admin.configs.versions(ConfigKind.MENU))[0]
    return edited_menu((await admin.configs.version(first.version_id)).document)


async def test_a_json_escape_for_a_nul_or_a_lone_surrogate_is_refused_not_a_500(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    # The console's JSON editor posts the document as text: "\u0000" in it is six harmless
    # characters to the form's checks, and a NUL once decoded, which JSONB refuses (a 500,
    # as was a lone surrogate, and a nesting deeper than the decoder goes).
    first = (await admin.configs.versions(ConfigKind.MENU))[0].version_id
    document = await live_menu(admin)
    for escape in ("\\u0000", "\\ud800"):
        text = json.dumps(document).replace("Layanan darurat", f"Layanan{escape}darurat")
        kind, message = await browsers["admin1"].flash(await browsers["admin1"].post(
            f"/console/admin/versions/{first}/json", {"document": text}))
        assert kind == "error" and "karakter yang tidak sah" in message, message
    kind, message = await browsers["admin1"].flash(await browsers["admin1"].post(
        f"/console/admin/versions/{first}/json", {"document": "[" * 100_000}))
    assert kind == "error" and "terlalu dalam" in message, message
    # The service refuses it whoever calls, in a key or a part the line ignores too.
    for hidden in ({"x\x00": 1}, {"notes": ["\udfff"]}):
        with pytest.raises(InvalidConfig, match="karakter yang tidak sah"):
            await admin.configs.save(ConfigKind.MENU, {**document, **hidden}, actor="admin")
    assert len(await admin.configs.versions(ConfigKind.MENU)) == 1


async def test_a_prompt_text_that_looks_like_an_option_is_refused(admin: Admin) -> None:
    document = await live_menu(admin)
    for text in ("-f/etc/passwd", "  --help"):
        document["prompts"]["menu-utama"] = text
        with pytest.raises(InvalidConfig, match="tidak boleh diawali tanda '-'"):
            await admin.configs.save(ConfigKind.MENU, document, actor="admin", based_on=1)
    assert len(await admin.configs.versions(ConfigKind.MENU)) == 1


async def test_names_with_a_trailing_newline_or_an_expression_are_refused(admin: Admin) -> None:
    base = await live_menu(admin)
    evil_queue = json.loads(json.dumps(base))
    evil_queue["known_queues"].append("evil\n")
    evil_skill = json.loads(json.dumps(base))
    evil_skill["lines"]["119"]["route"]["skill"] = "${SHELL(id)}"
    for document, field_name in ((evil_queue, "evil"), (evil_skill, "SHELL")):
        with pytest.raises(InvalidConfig, match=field_name):
            await admin.configs.save(ConfigKind.MENU, document, actor="admin", based_on=1)
    assert len(await admin.configs.versions(ConfigKind.MENU)) == 1
    with pytest.raises(InvalidConfig):
        await admin.site.set_shifts([{"name": "pagi\n", "start": "06:00"},
                                     {"name": "malam", "start": "18:00\n"}], "admin")
    with pytest.raises(InvalidConfig):
        await admin.site.set_shifts([{"name": "pagi\n", "start": "06:00"},
                                     {"name": "malam", "start": "18:00"}], "admin")
    assert await admin.fetch("SELECT * FROM shifts WHERE name LIKE '%' || chr(10)") == []


async def test_a_bidi_control_in_a_name_is_refused_over_http_and_in_the_console(
        admin: Admin, browsers: dict[str, Browser]) -> None:
    """An override shows a name reversed ("\u202eanagaT" reads "Tagana"): one agency or
    contact passing for another on every list and dispatch. Refused, nothing kept."""
    context = make_context(admin.settings, admin.database)
    app = build_app(context, AdminApi(admin.configs, admin.queues, admin.site,
                                      context.directory).routes())
    async with TestClient(TestServer(app)) as client:
        await context.accounts.create("admin2", "admin", PASSWORD, actor="test")
        login = await client.post("/api/session", json={"username": "admin2",
                                                        "password": PASSWORD})
        headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
        for control in BIDI_CONTROLS:
            for path, body, field_name in (
                    ("/api/admin/agencies", {"code": "tagana", "name": spoofed("Tagana", control)},
                     "name"),
                    ("/api/admin/recipients", {"agency": "damkar", "name": spoofed("Budi", control),
                                               "contact": "+6281200000000"}, "name"),
                    ("/api/admin/recipients", {"agency": "damkar", "name": "Budi",
                                               "contact": spoofed("+6281200000000", control)},
                     "contact"),
                    ("/api/admin/recipients", {"agency": "damkar", "name": "Budi", "contact": "x",
                                               "role": spoofed("Komandan", control)}, "role")):
                response = await client.post(path, headers=headers, json=body)
                assert response.status == 422, (path, body, await response.text())
                error = (await response.json())["error"]
                assert error["field"] == field_name and "pengatur arah teks" in error["message"]
    for control in BIDI_CONTROLS:
        kind, text = await browsers["admin1"].flash(await browsers["admin1"].post(
            "/console/admin/agencies", {"code": "tagana", "name": spoofed("Tagana", control),
                                        "active": "1"}))
        assert kind == "error" and "pengatur arah teks" in text, (control, text)
    assert await admin.fetch("SELECT * FROM agencies WHERE code = 'tagana'") == []
    assert await admin.fetch("SELECT * FROM agency_recipients") == []


async def test_newlines_in_path_ids_and_phone_ids_are_refused_over_http(admin: Admin) -> None:
    context = make_context(admin.settings, admin.database)
    app = build_app(context, AdminApi(admin.configs, admin.queues, admin.site,
                                      context.directory).routes())
    async with TestClient(TestServer(app)) as client:
        await context.accounts.create("admin1", "admin", PASSWORD, actor="test")
        await context.accounts.create("op1", "operator", PASSWORD, actor="test")
        login = await client.post("/api/session", json={"username": "admin1",
                                                        "password": PASSWORD})
        headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
        queue = await client.put("/api/admin/queues/fire%0A", headers=headers,
                                 json=QUEUE_VALUES)
        assert queue.status == 404, await queue.text()
        shifts = await client.put("/api/admin/shifts", headers=headers, json={
            "shifts": [{"name": "pagi\n", "start": "07:00"}, {"name": "malam",
                                                              "start": "19:00"}]})
        assert shifts.status == 422, await shifts.text()
        phone = await client.put("/api/admin/operators/op1", headers=headers,
                                 json={"interface": "PJSIP/op2001\n", "skills": {"fire": 3}})
        assert phone.status == 422, await phone.text()
        assert (await phone.json())["error"]["code"] == "invalid"
    assert await admin.fetch("SELECT * FROM account_operators") == []
    assert not (admin.asterisk.etc_dir / QUEUES_CONF).exists() or "evil" not in (
        admin.asterisk.etc_dir / QUEUES_CONF).read_text()
