"""A cluster line's follower of the admin's changes (telephony/cluster/admin_sync.py) over
in-memory services: what each round applies, what only a notification (or a LISTEN made
again) applies, and a failed round kept for the retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ivr.menu import IvrMenu
from telephony.admin.errors import ApplyFailed
from telephony.admin.versions import ConfigKind
from telephony.cluster.admin_sync import AdminSync
from telephony.db.connection import DatabaseUnavailable
from tests.support.polling import eventually


class Db:
    """No LISTEN connection ever (the safety net and the wakes drive the rounds)."""

    async def connect(self, _name: str) -> Any:
        raise DatabaseUnavailable("no LISTEN here")


class Services:
    """The versions, queues, site settings and member sync of one line, recording calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.followed: list[ConfigKind] = []
        self.site_down = False

    async def follow(self) -> list[ConfigKind]:
        self.calls.append("versions")
        followed, self.followed = self.followed, []
        return followed

    async def apply(self, menu: IvrMenu | None = None) -> bool:
        self.calls.append("queues")
        return False

    async def apply_phones(self) -> str | None:
        self.calls.append("phones")
        return None

    def resync(self) -> None:
        self.calls.append("members")


class Site:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def follow(self) -> None:
        if self.services.site_down:
            raise DatabaseUnavailable("down")
        self.services.calls.append("site")


@pytest.fixture
async def line() -> AsyncIterator[tuple[AdminSync, Services]]:
    services = Services()
    sync = AdminSync(Db(), versions=services, queues=services,  # type: ignore[arg-type]
                     site=Site(services), members=services, interval=3600, retry_seconds=0.01)
    task = asyncio.create_task(sync.run())
    yield sync, services
    task.cancel()
    await asyncio.wait([task])


async def until(predicate: Callable[[], bool]) -> None:
    async def probe() -> bool | None:
        return True if predicate() else None

    await eventually("the sync's work", probe, within=2.0, interval=0.01)


async def test_nothing_is_applied_before_asterisk_greets_the_line(
        line: tuple[AdminSync, Services]) -> None:
    sync, services = line
    sync.notified("queues")
    await asyncio.sleep(0.05)
    assert services.calls == []
    sync.booted({})
    await until(lambda: services.calls == ["versions", "queues"])


async def test_a_followed_menu_makes_the_members_reconcile(
        line: tuple[AdminSync, Services]) -> None:
    sync, services = line
    services.followed = [ConfigKind.MENU]
    sync.booted({})
    await until(lambda: services.calls == ["versions", "members", "queues"])


async def test_phones_and_site_settings_only_when_announced(
        line: tuple[AdminSync, Services]) -> None:
    sync, services = line
    sync.booted({})
    await until(lambda: sync.rounds == 1)
    sync.notified("phones")
    sync.notified("site")
    sync.notified("phones\r\nAction: Hangup")  # not a topic: ignored
    sync.booted({})  # wakes the loop as the ChannelListener's callback would
    await until(lambda: sync.rounds == 2)
    assert services.calls == ["versions", "queues", "versions", "queues", "phones", "site"]
    sync.booted({})
    await until(lambda: sync.rounds == 3)
    assert services.calls[6:] == ["versions", "queues"]  # announced once, done once


async def test_a_new_listen_connection_looks_at_everything(
        line: tuple[AdminSync, Services]) -> None:
    sync, services = line
    sync.listening()
    sync.booted({})
    await until(lambda: sync.rounds == 1)
    assert services.calls == ["versions", "queues", "phones", "site"]


async def test_a_failed_round_is_retried_with_what_was_announced(
        line: tuple[AdminSync, Services]) -> None:
    sync, services = line
    services.site_down = True
    sync.notified("site")
    sync.booted({})
    await until(lambda: sync.rounds >= 3)  # failing, retried
    services.site_down = False
    await until(lambda: "site" in services.calls)
    rounds = sync.rounds
    await asyncio.sleep(0.05)
    assert sync.rounds == rounds  # done: no more retries until the next wake


async def test_an_asterisk_refusal_fails_the_round_and_is_retried() -> None:
    services = Services()
    refusals = [ApplyFailed("no AMI session")]

    async def apply(menu: IvrMenu | None = None) -> bool:
        services.calls.append("queues")
        if refusals:
            raise refusals.pop()
        return True

    services.apply = apply  # type: ignore[method-assign]
    sync = AdminSync(Db(), versions=services, queues=services,  # type: ignore[arg-type]
                     site=Site(services), interval=3600, retry_seconds=0.01)
    task = asyncio.create_task(sync.run())
    try:
        sync.booted({})
        await until(lambda: services.calls.count("queues") == 2)
    finally:
        task.cancel()
        await asyncio.wait([task])
