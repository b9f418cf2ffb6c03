"""Fixtures of the loopback modules that more than one of them uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from telephony.accounts.model import ThrottlePolicy
from telephony.ami.testing import SECRET
from telephony.db.connection import Database
from telephony.settings import Settings
from telephony.web.server import build_app
from tests.support.console import Console, ConsoleFactory, StandInAsterisk
from tests.support.net import free_port
from tests.support.web import Browser, make_context


@pytest.fixture
def line_settings(settings: Settings, database_dsn: str, database_owner_dsn: str) -> Settings:
    """A whole line on free ports with no Asterisk behind its AMI port. Its Asterisk's
    directories are its own, so it is not the lab: it has an AMI secret of its own (the fake
    Asterisk's), as the lab's is refused there. It connects as the line's role and migrates
    as the owner, as a site does."""
    return replace(settings, database_dsn=database_dsn, database_owner_dsn=database_owner_dsn,
                   http_port=0, agi_port=free_port(),
                   ami_port=free_port(), recordings_incoming_dir=settings.state_dir / "monitor",
                   asterisk_etc_dir=settings.state_dir / "asterisk-etc",
                   asterisk_sounds_dir=settings.state_dir / "sounds", ami_secret=SECRET)


@pytest.fixture
async def console_factory(database_dsn: str, settings: Settings
                          ) -> AsyncIterator[ConsoleFactory]:
    configured = replace(settings, database_dsn=database_dsn)
    database = Database(configured)
    sessions: list[aiohttp.ClientSession] = []
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(throttle: ThrottlePolicy | None = None, *,
                    softphone: bool = False) -> Console:
        asterisk = StandInAsterisk(database)
        app = build_app(make_context(configured, database, throttle=throttle, ami=asterisk,
                                     softphone=softphone))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)

        async def browser() -> Browser:
            http = aiohttp.ClientSession(base_url=client.make_url(""),
                                         cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(http)
            return Browser(http)

        return Console(client, asterisk, database, database_dsn, configured, browser)

    yield start
    for http in sessions:
        await http.close()
    for client in clients:
        await client.close()
    await database.close()


@pytest.fixture
async def console(console_factory: ConsoleFactory) -> Console:
    return await console_factory()
