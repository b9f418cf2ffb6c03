"""The line's HTTP server out of file descriptors (a flood of connections past
``RLIMIT_NOFILE``), with real sockets: one log line, no traceback flood, and it serves again
once the connections close."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys

import aiohttp
import pytest
from aiohttp import web

from telephony.core.open_files import ACCEPT_EXHAUSTED
from telephony.web.server import WebServer
from tests.support.polling import eventually, throughout

# Opens the connections it is told to once it reads a line, holds them until stdin closes. Its
# own limit is raised first: it is started by a process whose limit is about to be lowered.
FLOOD = r"""
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.stdin.readline()
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        for _ in range(int(sys.argv[2]))]
print(len(held), flush=True)
sys.stdin.read()
"""
CONNECTIONS = 100  # past the lowered limit, within the listening socket's backlog (128)


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_a_connection_flood_past_the_open_files_limit_is_one_log_line_then_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    server = WebServer(app, "127.0.0.1", 0)
    await server.start()
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, str(server.port), str(CONNECTIONS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert flood.stdin is not None and flood.stdout is not None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 20, hard))
    caplog.set_level(logging.INFO)

    def refusals(logger: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == logger
                and ("cannot accept connections" in r.getMessage()
                     or ACCEPT_EXHAUSTED in r.getMessage())]

    try:
        flood.stdin.write(b"go\n")
        await flood.stdin.drain()
        assert int(await flood.stdout.readline()) == CONNECTIONS

        async def refused() -> bool | None:
            return True if refusals("telephony.open_files") or refusals("asyncio") else None

        await eventually("an accept refused for want of descriptors", refused, within=10.0)

        # asyncio listens again every second; each time the accepts are refused anew.
        async def quiet() -> bool:
            return not refusals("asyncio") and len(refusals("telephony.open_files")) == 1

        await throughout("one line, no traceback per refused accept", quiet, seconds=2.5)
    finally:
        flood.stdin.close()
        await flood.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    line = refusals("telephony.open_files")[0]
    assert line.levelno == logging.ERROR and line.exc_info is None
    assert "new connections wait until some close" in line.getMessage()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/") as response:
            assert (response.status, await response.text()) == (200, "ok")
    finally:
        await server.stop()
