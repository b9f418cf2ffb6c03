"""Databases for tests: one migrated database per test (or module) in the session's cluster,
and plain queries to look at what a test left behind."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from telephony.db.connection import Database, DatabaseUnavailable, DatabaseWork, T
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import migrate
from telephony.settings import Settings

# The incident tables, in an order that lists a refused change's possible victims.
INCIDENT_TABLES = ("incidents", "incident_calls", "incident_events", "dispatches",
                   "notification_outbox", "incident_attachments")


async def create_empty_database(cluster: EmbeddedPostgres) -> str:
    """A new database in ``cluster`` as a new or older site's PostgreSQL has it: created,
    nothing migrated; returns its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return cluster.dsn().rsplit("/", 1)[0] + "/" + name


async def create_database(cluster: EmbeddedPostgres) -> str:
    """A new database in ``cluster`` with every migration applied; returns its DSN."""
    dsn = await create_empty_database(cluster)
    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    return dsn


async def drop_database(cluster: EmbeddedPostgres, dsn: str) -> None:
    """Drop a database made here, closing its sessions."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'DROP DATABASE "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    """The rows of one query, on a connection of its own."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


async def incident_state(dsn: str) -> tuple[list[dict[str, Any]], ...]:
    """Everything the incident tables hold, to show a refusal changed nothing."""
    state = []
    for table in INCIDENT_TABLES:
        rows = await fetch(dsn, f"SELECT * FROM {table} ORDER BY 1")
        state.append([dict(row) for row in rows])
    return tuple(state)


class OutageDatabase(Database):
    """A real database that can be made to look away (:attr:`down`): every piece of work
    then fails as in an outage, without stopping the shared test cluster."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.down = False

    async def run(self, work: DatabaseWork[T]) -> T:
        if self.down:
            raise DatabaseUnavailable("outage (test)")
        return await super().run(work)
