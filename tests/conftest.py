"""Shared fixtures: a real PostgreSQL cluster for the session, one fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.settings import Settings, load_settings
from tests.support.db import create_database, drop_database, owner_dsn


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL cluster for the whole test session."""
    with temporary_cluster("siaga112-test-pg-") as (_root, cluster):
        yield cluster


@pytest.fixture
async def database_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """A new, migrated database, as the line's role (which owns nothing); dropped after the
    test."""
    dsn = await create_database(pg_cluster)
    yield dsn
    await drop_database(pg_cluster, dsn)


@pytest.fixture
def database_owner_dsn(pg_cluster: EmbeddedPostgres, database_dsn: str) -> str:
    """The test's database as the owner of its schema (migrations, grants, restores)."""
    return owner_dsn(pg_cluster, database_dsn)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment, state under tmp_path."""
    base = load_settings(environ={})
    return replace(base, state_dir=tmp_path / "state")


@pytest.fixture
async def database(database_dsn: str, settings: Settings) -> AsyncIterator[Database]:
    """The connection pool of the test's database, closed after the test."""
    database = Database(replace(settings, database_dsn=database_dsn))
    try:
        yield database
    finally:
        await database.close()
