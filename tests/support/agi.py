"""A scripted FastAGI peer, as Asterisk makes it, for loopback tests of the FastAGI server."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import Sequence
from types import TracebackType
from typing import Self

WAIT = 5.0  # bound on every wait for the server; a healthy run needs milliseconds


def environment(script: str = "ivr", uniqueid: str = "1732350000.17", eol: bytes = b"\n",
                arguments: Sequence[str] = ()) -> bytes:
    """The environment Asterisk sends for ``AGI(agi://127.0.0.1:4573/<script>,<arguments>)``."""
    lines = [
        b"agi_network: yes",
        b"agi_network_script: " + script.encode(),
        b"agi_request: agi://127.0.0.1:4573/" + script.encode(),
        b"agi_channel: PJSIP/carrier-00000006",
        b"agi_language: id",
        b"agi_uniqueid: " + uniqueid.encode(),
        b"agi_callerid: 081234567890",
        b"agi_calleridname: unknown",
        b"agi_context: siaga112-ivr",
        b"agi_extension: s",
        b"agi_priority: 3",
        b"agi_enhanced: 0.0",
        b"agi_accountcode: ",
        *(f"agi_arg_{i}: {value}".encode() for i, value in enumerate(arguments, 1)),
        b"",
    ]
    return b"".join(line + eol for line in lines)


class FakeAsterisk:
    """One FastAGI connection as Asterisk would make it; every read is bounded by WAIT."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def send(self, data: bytes) -> None:
        """Write ``data``; the server may already have cut us off, which is the point."""
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def expect_command(self) -> list[str]:
        """The next command line, split as Asterisk would (quotes and escapes removed)."""
        async with asyncio.timeout(WAIT):
            line = await self.reader.readuntil(b"\n")
        return shlex.split(line.decode())

    async def wait_closed_by_server(self) -> bytes:
        """Read until the server closes the connection; return whatever it still sent."""
        received = b""
        async with asyncio.timeout(WAIT):
            with contextlib.suppress(ConnectionError):
                while chunk := await self.reader.read(65536):
                    received += chunk
        return received
