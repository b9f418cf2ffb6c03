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


@pytest.fixture
async def database_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """A new, migrated database; dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_dsn = pg_cluster.dsn()
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    yield dsn
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment, state under tmp_path."""
    base = load_settings(environ={})
    return replace(base, state_dir=tmp_path / "state")

