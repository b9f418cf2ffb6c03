"""A deliberately tiny AMI client for lab tests and fixture recording.

It keeps every byte Asterisk sent (``raw``), so a session can be saved as a transcript, and
parses messages just enough to wait for events and responses. The production listener lives
in ``telephony.ami``; this one exists so that tests of the lab do not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

Message = dict[str, str]


def parse_message(block: bytes) -> Message:
    """One AMI message (``Key: Value`` lines) as a dict; a repeated key keeps its last value."""
    message: Message = {}
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            message[key] = value
    return message


class RawAmi:
    """An AMI session over a plain TCP socket, recording everything it receives.

    ``time_limit`` bounds every login and action; :meth:`wait_for` takes its own bound.
    """

    def __init__(self, host: str, port: int, time_limit: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.time_limit = time_limit
        self.raw = bytearray()
        self.banner = b""
        self.messages: list[Message] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Condition()
        self._ids = itertools.count(1)

    async def login(self, username: str, secret: str, *, events: bool = True) -> Message:
        """Connect, read the banner and log in (``Events: off`` unless ``events``); returns the
        Login response."""
        async with asyncio.timeout(self.time_limit):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self.banner = await self._reader.readline()
        self.raw += self.banner
        self._task = asyncio.create_task(self._read_loop())
        headers = {"Username": username, "Secret": secret}
        if not events:
            headers["Events"] = "off"
        return await self.action("Login", **headers)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        buffer = b""
        while True:
            chunk = await self._reader.read(65536)
            if not chunk:
                break
            self.raw += chunk
            buffer += chunk
            *blocks, buffer = buffer.split(b"\r\n\r\n")
            async with self._arrived:
                self.messages.extend(parse_message(block) for block in blocks)
                self._arrived.notify_all()

    async def send(self, action: str, **headers: str) -> str:
        """Send an action with a fresh ActionID; returns the ActionID."""
        assert self._writer is not None, "login() first"
        action_id = f"t{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return action_id

    async def wait_for(
        self, predicate: Callable[[Message], bool], within: float = 10.0, start: int = 0
    ) -> Message:
        """The first message from index ``start`` on that satisfies ``predicate``, waiting at
        most ``within`` seconds for it."""
        async with asyncio.timeout(within), self._arrived:
            while True:
                for message in self.messages[start:]:
                    if predicate(message):
                        return message
                await self._arrived.wait()

    async def action(self, action: str, **headers: str) -> Message:
        """Send an action and return its Response."""
        action_id = await self.send(action, **headers)
        return await self.wait_for(
            lambda m: m.get("ActionID") == action_id and "Response" in m, self.time_limit
        )

    async def list_action(self, action: str, **headers: str) -> list[Message]:
        """An action answered by a list of events: the Response and every event up to the one
        with ``EventList: Complete``."""
        action_id = await self.send(action, **headers)
        await self.wait_for(
            lambda m: m.get("ActionID") == action_id and m.get("EventList") == "Complete",
            self.time_limit,
        )
        return [m for m in self.messages if m.get("ActionID") == action_id]

    async def close(self) -> None:
        """Log off and close the socket."""
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(2):
                    await self.action("Logoff")
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
