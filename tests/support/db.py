"""Databases for tests: one migrated database per test (or module) in the session's cluster,
and plain queries to look at what a test left behind.

As on a site, the schema belongs to the owner (the cluster's superuser) and the line connects
as its own role (telephony/db/roles.py), which the owner grants: :func:`create_database`
returns the line's DSN, so every test that runs the line's code through it proves the grants
are enough; :func:`owner_dsn` is the same database as the owner, for what only it may do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from telephony.db.connection import Database, DatabaseUnavailable, DatabaseWork, T
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import bundled_migrations, migrate
from telephony.db.roles import LineRole, prepare_schema
from telephony.settings import Settings

# The line's role in every test database: the settings' default.
LINE_ROLE = Settings().database_line_user

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


def cluster_processes(cluster: EmbeddedPostgres) -> list[int]:
    """The pids of ``cluster``'s postmaster, first, and of every backend and helper it runs."""
    pid = int((cluster.data_dir / "postmaster.pid").read_text(encoding="ascii").split()[0])
    return [pid, *(int(p.name) for p in Path("/proc").iterdir()
                   if p.name.isdigit() and _parent_of(p) == pid)]


def _parent_of(proc: Path) -> int | None:
    try:
        # The command name in parentheses may hold spaces: the fields after its ")" are fixed.
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def frozen(cluster: EmbeddedPostgres) -> Iterator[None]:
    """``cluster`` hung, as a server whose machine stalls (swap storm, a stuck disk, a
    debugger) is: every process stopped (SIGSTOP), so the kernel still accepts TCP
    connections and nothing ever answers; continued (SIGCONT) on leaving."""
    pids = cluster_processes(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class HungRead:
    """A read on a hung PostgreSQL without the server: no answer ever, and once cancelled it
    stops only after ``unwind`` seconds (asyncpg's pool waits for the cancellation's
    acknowledgement, its acquire timeout), raising as the pool then does."""

    def __init__(self, unwind: float) -> None:
        self.unwind = unwind
        self.stopped = False

    async def __call__(self) -> bool:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(self.unwind)
            self.stopped = True
            raise DatabaseUnavailable("PostgreSQL unavailable: ") from None
        return True


def line_role(cluster: EmbeddedPostgres) -> LineRole:
    """The line's role in ``cluster``, with its password."""
    return LineRole(LINE_ROLE, cluster.line_password())


def owner_dsn(cluster: EmbeddedPostgres, dsn: str) -> str:
    """The database of ``dsn`` (a test database in ``cluster``) as its owner."""
    return cluster.dsn().rsplit("/", 1)[0] + "/" + dsn.rsplit("/", 1)[1]


def line_dsn(cluster: EmbeddedPostgres, dsn: str) -> str:
    """The database of ``dsn`` (a test database in ``cluster``) as the line's role."""
    return cluster.line_dsn(LINE_ROLE).rsplit("/", 1)[0] + "/" + dsn.rsplit("/", 1)[1]


async def create_database(cluster: EmbeddedPostgres) -> str:
    """A new database in ``cluster`` with every migration applied by its owner and the line's
    role granted; returns the DSN the line connects with (its role, not the owner)."""
    dsn = await create_empty_database(cluster)
    connection = await asyncpg.connect(dsn)
    try:
        await prepare_schema(connection, line_role(cluster))
    finally:
        await connection.close()
    return line_dsn(cluster, dsn)


async def create_database_before(cluster: EmbeddedPostgres, version: int) -> str:
    """A new database in ``cluster`` as a site's is before an upgrade brings migration
    ``version``: the migrations before it applied, so that :func:`upgrade_database` applies
    the rest. Returns the owner's DSN."""
    dsn = await create_empty_database(cluster)
    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection, [m for m in bundled_migrations() if m.version < version])
    finally:
        await connection.close()
    return dsn


async def upgrade_database(cluster: EmbeddedPostgres, dsn: str) -> None:
    """Apply the pending migrations to the database of ``dsn`` (in ``cluster``) as its owner
    and grant the line's role, as a line's start does after an upgrade."""
    connection = await asyncpg.connect(owner_dsn(cluster, dsn))
    try:
        await prepare_schema(connection, line_role(cluster))
    finally:
        await connection.close()


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


async def execute(dsn: str, query: str, *args: object) -> None:
    """One statement, on a connection of its own."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(query, *args)
    finally:
        await connection.close()


async def refuse_event_writes(owner_dsn: str, errcode: str, *, kind: str | None = None,
                              times: int | None = None) -> None:
    """From now on PostgreSQL itself refuses writing call events (of ``kind``, or any) with
    the SQLSTATE condition ``errcode`` (``check_violation`` for a fact the schema does not
    take, ``deadlock_detected`` for a deadlock's victim), the next ``times`` writes or all.
    The count is a sequence's, which the refused transactions' rollbacks do not undo.
    :func:`allow_event_writes` ends it."""
    kind_matches = "true" if kind is None else f"NEW.kind = {_literal(kind)}"
    counted = "true" if times is None else f"nextval('refused_event_writes') <= {int(times)}"
    owner = await asyncpg.connect(owner_dsn)
    try:
        await owner.execute(f"""
            CREATE SEQUENCE refused_event_writes;
            GRANT USAGE ON SEQUENCE refused_event_writes TO PUBLIC;
            CREATE FUNCTION refuse_event_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {kind_matches} AND {counted} THEN
                    RAISE EXCEPTION 'refused by the test' USING ERRCODE = {_literal(errcode)};
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_event_write BEFORE INSERT ON call_events
                FOR EACH ROW EXECUTE FUNCTION refuse_event_write();
        """)
    finally:
        await owner.close()


async def allow_event_writes(owner_dsn: str) -> None:
    """Undo :func:`refuse_event_writes`."""
    owner = await asyncpg.connect(owner_dsn)
    try:
        await owner.execute("DROP TRIGGER refuse_event_write ON call_events")
    finally:
        await owner.close()


def _literal(text: str) -> str:
    """``text`` as an SQL string literal (a test's own constants, but quoted all the same)."""
    return "'" + text.replace("'", "''") + "'"


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
