"""Clean stops and upgrades of ``siaga112 serve``, on real sockets and a real PostgreSQL.

SIGTERM: the line takes no new FastAGI session, lets the IVR session in progress finish (a
fake Asterisk keeps answering its commands), and exits; a session that hangs is cut after
``shutdown_drain_seconds`` (the dialplan fails open for it) and the exit stays bounded.
Upgrades: the line migrates the database before its first piece of work, also when the
database only comes up after the line started.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import asyncpg
import pytest

from telephony.app import running_line
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import bundled_migrations
from telephony.db.roles import prepare_schema
from telephony.lab.line import LineServer
from telephony.settings import Settings
from tests.support.db import create_empty_database, drop_database, fetch, line_dsn, line_role
from tests.support.net import free_port

WAIT = 10.0  # bound on each wait; a healthy run needs a fraction of it


def environment(uniqueid: str) -> bytes:
    """The FastAGI environment the dialplan's ``AGI(agi://.../ivr,112)`` sends."""
    lines = ["agi_network: yes", "agi_network_script: ivr",
             "agi_request: agi://127.0.0.1/ivr", "agi_channel: PJSIP/carrier-00000001",
             "agi_language: id", f"agi_uniqueid: {uniqueid}", "agi_callerid: 081234567890",
             "agi_calleridname: unknown", "agi_context: siaga112-ivr", "agi_extension: s",
             "agi_priority: 3", "agi_enhanced: 0.0", "agi_accountcode: ", "agi_arg_1: 112", ""]
    return "".join(f"{line}\n" for line in lines).encode()


def reply_to(command: list[str]) -> bytes:
    """What Asterisk answers when the caller presses nothing."""
    verb = " ".join(command[:2])
    if verb == "GET DATA":
        return b"200 result= (timeout)\n"
    if verb == "SET VARIABLE":
        return b"200 result=1\n"
    return b"200 result=0 endpos=8000\n"


@dataclass
class AsteriskSession:
    """One IVR session as Asterisk holds it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def start(cls, port: int) -> tuple[AsteriskSession, list[str]]:
        """Connect, send the environment; returns the session and the IVR's first command."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        session = cls(reader, writer)
        writer.write(environment(f"{int(time.time())}.{uuid.uuid4().int % 1000}"))
        await writer.drain()
        first = await session.command()
        assert first is not None, "the server closed the session at once"
        return session, first

    async def command(self) -> list[str] | None:
        """The next command, or None once the server has closed the session."""
        async with asyncio.timeout(WAIT):
            line = await self.reader.readline()
        return shlex.split(line.decode()) if line else None

    async def play_to_the_end(self, first: list[str]) -> dict[str, str]:
        """Answer every command until the IVR is done; the channel variables it set."""
        variables: dict[str, str] = {}
        command: list[str] | None = first
        while command is not None:
            if command[:2] == ["SET", "VARIABLE"]:
                variables[command[2]] = command[3]
            if command[:2] == ["EXEC", "MSet"]:
                for pair in command[2].split(","):
                    name, _, value = pair.partition("=")
                    variables[name] = value
            self.writer.write(reply_to(command))
            await self.writer.drain()
            command = await self.command()
        return variables

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def serving(settings: Settings, drain: float) -> AsyncIterator[LineServer]:
    """``siaga112 serve`` as a process (the lab's one way), once its FastAGI server is up
    (this line has no Asterisk); killed if a test leaves it."""
    line = LineServer(replace(settings, http_port=free_port(), shutdown_drain_seconds=drain))
    try:
        yield await line.start(parts=frozenset({"fastagi"}))
    finally:
        if line.pid is not None:
            line.kill()
            await line.wait()


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # Caught in the listener's backlog as it closed: not refused yet, ask again.
        return False
    writer.close()
    with contextlib.suppress(OSError):  # a server closing under us may reset the close too
        await writer.wait_closed()
    return False


async def wait_refused(port: int) -> None:
    """Bounded polling until the FastAGI port refuses connections."""
    async with asyncio.timeout(WAIT):
        while not await refused(port):  # noqa: ASYNC110 - polling a socket, not an event
            await asyncio.sleep(0.05)


async def test_sigterm_lets_the_ivr_session_in_progress_finish_and_refuses_new_ones(
    line_settings: Settings,
) -> None:
    async with serving(line_settings, drain=WAIT) as line:
        session, first = await AsteriskSession.start(line_settings.agi_port)
        line.signal(signal.SIGTERM)
        await wait_refused(line_settings.agi_port)
        # The caller in the IVR presses nothing, and the IVR routes them as ever.
        variables = await session.play_to_the_end(first)
        session.close()
        assert variables["IVR_OUTCOME"] == "no_input"
        assert variables["IVR_QUEUE"]
        async with asyncio.timeout(WAIT):
            status = await line.wait()
    output = line.output()
    assert status == 0, output
    assert "Layanan dihentikan." in output
    assert "Traceback" not in output
    assert "cutting" not in output


async def test_a_hanging_session_is_cut_after_the_drain_time(line_settings: Settings) -> None:
    async with serving(line_settings, drain=0.5) as line:
        session, _ = await AsteriskSession.start(line_settings.agi_port)  # never answered
        started = time.monotonic()
        line.signal(signal.SIGTERM)
        assert await session.command() is None  # cut: Asterisk continues its dialplan
        async with asyncio.timeout(WAIT):
            status = await line.wait()
        session.close()
    output = line.output()
    assert time.monotonic() - started < WAIT
    assert status == 0, output
    assert "FastAGI shutdown: cutting 1 sessions still running after 0.5 s" in output
    assert "Traceback" not in output


# --- upgrades ------------------------------------------------------------------------------


@pytest.fixture
async def bare_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """A database as an older or brand-new site has it: nothing migrated."""
    dsn = await create_empty_database(pg_cluster)
    yield dsn
    await drop_database(pg_cluster, dsn)


async def test_the_line_migrates_before_it_takes_calls(
    line_settings: Settings, bare_dsn: str, pg_cluster: EmbeddedPostgres
) -> None:
    # As on a site: the owner migrates and grants, the line then connects as its own role.
    configured = replace(line_settings, database_dsn=line_dsn(pg_cluster, bare_dsn),
                         database_owner_dsn=bare_dsn)
    async with running_line(configured) as line:
        assert line.callpath.port == line_settings.agi_port
        rows = await fetch(bare_dsn, "SELECT max(version) AS level FROM schema_migrations")
        assert rows[0]["level"] == bundled_migrations()[-1].version
        assert await line.database.run(lambda c: c.fetchval("SELECT current_user")) \
            == configured.database_line_user


async def test_a_database_that_comes_up_later_is_migrated_before_any_work(
    line_settings: Settings, bare_dsn: str, pg_cluster: EmbeddedPostgres
) -> None:
    attempts: list[str] = []

    async def prepare(connection: asyncpg.Connection) -> None:
        if not attempts:
            attempts.append("down")
            raise ConnectionResetError("the server went away")  # as a restarting server
        attempts.append("migrated")
        await prepare_schema(connection, line_role(pg_cluster))

    database = Database(replace(line_settings, database_dsn=line_dsn(pg_cluster, bare_dsn),
                                database_owner_dsn=bare_dsn), prepare=prepare)
    try:
        with pytest.raises(DatabaseUnavailable):
            await database.run(lambda c: c.fetchval("SELECT 1"))
        level = await database.run(lambda c: c.fetchval(
            "SELECT max(version) FROM schema_migrations"))
        assert level == bundled_migrations()[-1].version
        await database.run(lambda c: c.fetchval("SELECT 1"))
        assert attempts == ["down", "migrated"]  # once per pool, not per piece of work
    finally:
        await database.close()
