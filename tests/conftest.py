"""Shared fixtures: a real PostgreSQL cluster for the session, one fresh database per test."""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import migrate
from telephony.settings import Settings, load_settings


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL cluster for the whole test session."""
    root = Path(tempfile.mkdtemp(prefix="siaga112-test-pg-"))
    root.chmod(0o755)  # the postgres system user must reach the data directory below
    cluster = EmbeddedPostgres(root / "pgdata", free_port())
    cluster.ensure_initialized()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def create_database(cluster: EmbeddedPostgres) -> str:
    """A new database in ``cluster`` with every migration applied; returns its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = cluster.dsn().rsplit("/", 1)[0] + "/" + name
    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    return dsn


async def drop_database(cluster: EmbeddedPostgres, dsn: str) -> None:
    """Drop a database made by :func:`create_database`, closing its sessions."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'DROP DATABASE "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """A new, migrated database; dropped after the test."""
    dsn = await create_database(pg_cluster)
    yield dsn
    await drop_database(pg_cluster, dsn)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment, state under tmp_path."""
    base = load_settings(environ={})
    return replace(base, state_dir=tmp_path / "state")

