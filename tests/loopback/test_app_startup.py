"""The line starts in order and, when a part cannot start, stops what had started.

Against a real PostgreSQL: a failed start must leave no task running, no connection open and
no file behind, and ``siaga112 serve`` must say what failed in one line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from telephony.admin.site_service import SiteService
from telephony.app import running_line
from telephony.callpath import LineStartError
from telephony.settings import Settings

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A TCP port on the loopback that another process already listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def files_under(root: Path) -> set[Path]:
    """The files (spooled facts, recordings ...) under ``root``. Directories do not count:
    the spool makes its own as the line starts."""
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


async def other_sessions(dsn: str, within: float = 5.0) -> int:
    """Connections to the test database other than this query's own, once they are gone or
    ``within`` seconds have passed: a closed connection's server process leaves
    pg_stat_activity a moment after the client closed it."""
    deadline = asyncio.get_running_loop().time() + within
    connection = await asyncpg.connect(dsn)
    try:
        while True:
            count: int = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if count == 0 or asyncio.get_running_loop().time() >= deadline:
                return count
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def test_a_taken_fastagi_port_stops_the_line_with_nothing_left_behind(
    line_settings: Settings, taken_port: int, database_dsn: str
) -> None:
    settings = replace(line_settings, agi_port=taken_port)
    before_files = files_under(settings.state_dir)
    before_tasks = asyncio.all_tasks()
    with pytest.raises(LineStartError, match=f"127.0.0.1:{taken_port}") as raised:
        async with running_line(settings):
            pytest.fail("the line started on a taken port")
    assert "\n" not in str(raised.value)
    assert asyncio.all_tasks() == before_tasks
    assert await other_sessions(database_dsn) == 0
    assert files_under(settings.state_dir) == before_files


async def test_a_failed_administration_start_stops_what_had_started(
    line_settings: Settings, database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_: SiteService) -> None:
        raise RuntimeError("the admin's settings are unreadable")

    monkeypatch.setattr(SiteService, "restore", broken)
    before_files = files_under(line_settings.state_dir)
    before_tasks = asyncio.all_tasks()
    with pytest.raises(RuntimeError, match="unreadable"):
        async with running_line(line_settings):
            pytest.fail("the line started without its administration")
    assert asyncio.all_tasks() == before_tasks
    assert await other_sessions(database_dsn) == 0
    assert files_under(line_settings.state_dir) == before_files


async def test_a_line_that_started_stops_every_part(
    line_settings: Settings, database_dsn: str
) -> None:
    before_tasks = asyncio.all_tasks()
    async with running_line(line_settings) as line:
        assert line.web.url is not None
        assert len(asyncio.all_tasks() - before_tasks) >= 7
    assert asyncio.all_tasks() == before_tasks
    assert line.web.url is None
    assert await other_sessions(database_dsn) == 0


async def test_serve_says_in_one_line_which_address_is_taken(
    line_settings: Settings, taken_port: int
) -> None:
    environ = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"):
        environ.pop(name, None)
    sets = {"database_dsn": line_settings.database_dsn, "state_dir": line_settings.state_dir,
            "agi_port": taken_port, "ami_port": line_settings.ami_port, "http_port": 0,
            "asterisk_etc_dir": line_settings.asterisk_etc_dir,
            "ami_secret": line_settings.ami_secret,
            "asterisk_sounds_dir": line_settings.asterisk_sounds_dir,
            "recordings_incoming_dir": line_settings.recordings_incoming_dir}
    argv = [arg for name, value in sets.items() for arg in ("--set", f"{name}={value}")]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony", *argv, "serve", env=environ, cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    errors = stderr.decode()
    assert process.returncode == 1, errors
    assert "Traceback" not in errors
    failures = [line for line in errors.splitlines() if f"127.0.0.1:{taken_port}" in line]
    assert failures == [f"siaga112: gagal: FastAGI tidak dapat mendengarkan di "
                        f"127.0.0.1:{taken_port}: Address already in use"], errors
    assert b"Layanan berjalan" not in stdout
