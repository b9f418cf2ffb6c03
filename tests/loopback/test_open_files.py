"""Servers and a flood of connections, with real sockets, a real flood in a process of its own
and a lowered ``RLIMIT_NOFILE``: the console's flood cannot take the descriptors the line needs
to reach PostgreSQL, and the server answers again once the connections close; a server out of
descriptors is one log line, not a traceback per refused accept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from telephony.core.open_files import ACCEPT_EXHAUSTED, guard_accepts
from telephony.db.connection import Database
from telephony.settings import Settings
from telephony.web.server import WebServer, open_descriptors
from tests.support.polling import eventually, throughout

# Opens the connections it is told to once it reads a line, holds them until stdin closes. Its
# own limit is raised first: it is started by a process whose limit is lowered.
FLOOD = r"""
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.stdin.readline()
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        for _ in range(int(sys.argv[2]))]
print(len(held), flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def descriptors_left(free: int) -> Iterator[int]:
    """The soft ``RLIMIT_NOFILE`` lowered to what is open now plus ``free``; the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = open_descriptors()
    assert opened is not None
    resource.setrlimit(resource.RLIMIT_NOFILE, (opened + free, hard))
    try:
        yield opened + free
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.asynccontextmanager
async def holding(port: int, connections: int) -> AsyncIterator[None]:
    """``connections`` held open to ``port`` by a process of their own (:data:`FLOOD`)."""
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, str(port), str(connections),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert flood.stdin is not None and flood.stdout is not None
    try:
        flood.stdin.write(b"go\n")
        await flood.stdin.drain()
        assert int(await flood.stdout.readline()) == connections
        yield
    finally:
        flood.stdin.close()
        await flood.wait()


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def logged(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and text in r.getMessage()]


async def test_a_connection_flood_leaves_the_line_descriptors_to_reach_postgresql(
    settings: Settings, database_dsn: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Half of the descriptors stay the line's: a new pool reaches PostgreSQL while a flood
    holds more connections than the limit allows (without the mark: EMFILE), one line says
    so, and the console answers once the flood is gone."""
    app = web.Application()
    app.router.add_get("/", hello)
    caplog.set_level(logging.INFO)
    database = Database(replace(settings, database_dsn=database_dsn), max_size=2)

    async def one(connection: asyncpg.Connection) -> int:
        value: int = await connection.fetchval("SELECT 1")
        return value

    with descriptors_left(300) as limit:
        server = WebServer(app, "127.0.0.1", 0)
        await server.start()
        assert server.port is not None
        try:
            # More than the limit: without the mark the server takes every descriptor.
            async with holding(server.port, limit + 50):

                async def taken() -> bool | None:
                    # The server took what it would: it refused past the mark, or (without
                    # one) ran out of descriptors.
                    found = (logged(caplog, "telephony.web", "HTTP connections refused")
                             or logged(caplog, "telephony.open_files", "cannot accept"))
                    return True if found else None

                await eventually("the flood taken as far as the server takes it", taken,
                                 within=10.0)
                assert await database.run(one) == 1
            async with aiohttp.ClientSession() as http, http.get(f"{server.url}/") as response:
                assert (response.status, await response.text()) == (200, "ok")
        finally:
            await database.close()
            await server.stop()
    assert len(logged(caplog, "telephony.web", "HTTP connections refused")) == 1


async def serve_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_a_server_out_of_descriptors_is_one_log_line_not_a_traceback_per_accept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As the FastAGI server and the console's are (both put the guard on their loop): asyncio
    retries every second, each time refusing its whole backlog anew."""
    caplog.set_level(logging.INFO)
    guard_accepts()
    server = await asyncio.start_server(serve_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with descriptors_left(20):
            async with holding(port, 100):

                async def refused() -> bool | None:
                    found = (logged(caplog, "telephony.open_files", "cannot accept")
                             or logged(caplog, "asyncio", ACCEPT_EXHAUSTED))
                    return True if found else None

                await eventually("an accept refused for want of descriptors", refused,
                                 within=10.0)

                async def quiet() -> bool:
                    return not logged(caplog, "asyncio", ACCEPT_EXHAUSTED) and len(
                        logged(caplog, "telephony.open_files", "cannot accept")) == 1

                await throughout("one line, no traceback per refused accept", quiet,
                                 seconds=2.5)
    finally:
        server.close()
        await server.wait_closed()
    line = logged(caplog, "telephony.open_files", "cannot accept")[0]
    assert line.levelno == logging.ERROR and line.exc_info is None
    assert "new connections wait until some close" in line.getMessage()
