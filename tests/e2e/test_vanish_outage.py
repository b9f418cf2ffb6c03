"""Calls whose hang-up was missed while both PostgreSQL and the line were down: the line
starts again with the database still down, so its resync cannot know which calls the store
has open; when the database comes back, the vanish check closes them as vanished.

The line runs on a cluster of its own (stopped and started here), and its own lab.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from telephony.app import running_line
from telephony.db.embedded import EmbeddedPostgres
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.net import free_port
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

CALLS = 3
# From the database's return: the watch retries every db_retry_seconds while the store is
# away, then asks Asterisk once; the rest is the spool draining and one write.
BOUND_SECONDS = 10.0


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return Settings(
        lab_instance="vanish-test",
        sip_port=61060,
        ami_port=61038,
        agi_port=61573,
        lab_operator_sip_port=61070,
        rtp_port_start=62000,
        rtp_port_end=62999,
        http_port=0,
        lab_operators=4,
        queue_max_wait=300,  # nobody answers: the callers wait in the queue until cut
        agi_session_timeout=60,
        ami_reconnect_seconds=0.5,
        db_retry_seconds=0.5,
        db_connect_timeout=1.0,
    )


@pytest.fixture
async def own_cluster() -> AsyncIterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="siaga112-vanish-e2e-"))
    root.chmod(0o755)  # the postgres system user must reach the data directory below
    cluster = EmbeddedPostgres(root / "pgdata", free_port())
    cluster.ensure_initialized()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def calls_of(cluster: EmbeddedPostgres, caller_id: str) -> list[asyncpg.Record] | None:
    """The caller's call rows, or None while the database is away."""
    try:
        connection = await asyncpg.connect(cluster.dsn(), timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return await connection.fetch(
            "SELECT call_id, ended_at, vanished FROM calls WHERE caller_number = $1",
            caller_id)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()


async def test_calls_ended_while_the_database_and_the_line_were_down_are_closed(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    line_settings = replace(settings, database_dsn=own_cluster.dsn(),
                            state_dir=tmp_path / "state")
    caller_id = unique_caller("0816")

    async def open_calls() -> list[asyncpg.Record] | None:
        rows = await calls_of(own_cluster, caller_id)
        if rows is None or len(rows) < CALLS or any(r["ended_at"] for r in rows):
            return None
        return rows

    # Callers that would wait for minutes (press 3: the information queue, nobody in it).
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="3", talk_seconds=240, calls=CALLS, rate=5) as callers:
        async with running_line(line_settings) as line:
            async with asyncio.timeout(10):
                await line.listener.wait_ready()
            opened = await eventually("the calls open in the store", open_calls, 30)
        # The line is gone; then the database; then the calls end in Asterisk.
        own_cluster.stop()
        await lab.acli("channel request hangup all")
        await lab.wait_cli("core show channels count",
                           lambda out: out.startswith("0 active channels"))
        await callers.stop()
    async with running_line(line_settings) as line:
        async with asyncio.timeout(10):
            await line.listener.wait_ready()  # resynced with no open call known
        own_cluster.start()
        back = time.monotonic()

        async def closed() -> list[asyncpg.Record] | None:
            rows = await calls_of(own_cluster, caller_id)
            if rows is None or not all(r["ended_at"] for r in rows):
                return None
            return rows

        rows = await eventually("the calls closed as vanished", closed, BOUND_SECONDS + 20)
        took = time.monotonic() - back
    assert sorted(r["call_id"] for r in rows) == sorted(r["call_id"] for r in opened)
    assert all(r["vanished"] for r in rows)
    assert took < BOUND_SECONDS, f"closed {took:.1f} s after the database came back"
