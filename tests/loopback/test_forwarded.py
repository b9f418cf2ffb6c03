"""The client's address behind an HTTPS front: X-Forwarded-For is believed only from a
configured front, read from the right, and what it names is what the login throttle and the
audit log see. On a loopback socket over a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from telephony.accounts.model import ThrottlePolicy
from telephony.db.connection import Database
from telephony.settings import Settings
from telephony.web.context import ApiContext, parse_networks
from telephony.web.server import build_app
from tests.support.db import fetch
from tests.support.web import PASSWORD, make_context

Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[tuple[Client, ApiContext]]]
CLIENT, SPOOFED, OTHER = "203.0.113.9", "198.51.100.7", "203.0.113.77"


@pytest.fixture
async def start(database: Database, settings: Settings) -> AsyncIterator[Start]:
    """Starts the API trusting the given fronts (the test client connects from 127.0.0.1)."""
    clients: list[Client] = []

    async def start(trusted: list[str], throttle: ThrottlePolicy | None = None
                    ) -> tuple[Client, ApiContext]:
        context = make_context(settings, database, throttle=throttle)
        context = replace(context, config=replace(context.config,
                                                  trusted_proxies=parse_networks(trusted)))
        client = TestClient(TestServer(build_app(context)))
        await client.start_server()
        clients.append(client)
        return client, context

    yield start
    for client in clients:
        await client.close()


async def login_addresses(dsn: str) -> list[str]:
    rows = await fetch(dsn, "SELECT remote_address FROM audit_log WHERE action = 'login' "
                            "ORDER BY audit_id")
    return [row["remote_address"] for row in rows]


async def log_in(client: Client, forwarded_for: str | None, password: str = PASSWORD) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    response = await client.post("/api/session", headers=headers,
                                 json={"username": "op1", "password": password})
    return response.status


async def test_a_trusted_front_names_the_client_and_the_audit_log_keeps_it(
    start: Start, database_dsn: str
) -> None:
    client, context = await start(["127.0.0.1"])
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    # The client sent a header of its own; the front appended the address it saw.
    assert await log_in(client, f"{SPOOFED}, {CLIENT}") == 201
    assert await log_in(client, None) == 201  # straight to the line, not through the front
    assert await login_addresses(database_dsn) == [CLIENT, "127.0.0.1"]


async def test_a_header_from_an_untrusted_peer_is_ignored(
    start: Start, database_dsn: str
) -> None:
    client, context = await start(["10.0.0.0/8"])
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    assert await log_in(client, CLIENT) == 201
    client2, _ = await start([])  # the default: no front trusted at all
    assert await log_in(client2, CLIENT) == 201
    assert await login_addresses(database_dsn) == ["127.0.0.1", "127.0.0.1"]


async def test_the_login_throttle_counts_per_forwarded_client(start: Start) -> None:
    policy = ThrottlePolicy(max_failures=50, max_failures_per_address=3,
                            first_delay=timedelta(minutes=1))
    client, context = await start(["127.0.0.1"], throttle=policy)
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    for _ in range(3):
        assert await log_in(client, CLIENT, password="salah" * 3) == 401
    assert await log_in(client, CLIENT) == 429
    # The guesser cannot escape by claiming another address left of the front's entry ...
    assert await log_in(client, f"{OTHER}, {CLIENT}") == 429
    # ... and another client behind the same front is not held for its guesses.
    assert await log_in(client, OTHER) == 201
