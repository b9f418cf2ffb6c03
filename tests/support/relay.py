"""A TCP relay on loopback that a test can cut: the network between a browser and a server.

Bytes pass through untouched (a WSS connection stays TLS from end to end). :meth:`Relay.cut`
drops every connection and refuses new ones, as a pulled cable does to the browser (its
WebSocket closes; its reconnects fail); :meth:`Relay.restore` lets them through again.

The relay connects onwards from ``source`` (another loopback address): in the lab the carrier
is identified by the address 127.0.0.1, so a phone registering from there would be taken for
the carrier (a real site's browsers are never on the carrier's address).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from tests.support.net import free_port

CHUNK = 65536


class Relay:
    """Listens on ``127.0.0.1:port`` (any free one by default) and relays each connection to
    ``target``."""

    def __init__(self, target: tuple[str, int], *, port: int | None = None,
                 source: str = "127.0.0.2") -> None:
        self.target = target
        self.source = source
        self.port = port or free_port()
        self.connections = 0  # accepted so far
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        """Accept and relay connections (again)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Close every relayed connection and stop accepting new ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.target, local_addr=(self.source, 0))
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        # One side ended: so does the other.
        writer.transport.abort()
        self._writers.discard(writer)

    async def close(self) -> None:
        """Cut, and wait for the relaying to end."""
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Relay:
        await self.restore()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
