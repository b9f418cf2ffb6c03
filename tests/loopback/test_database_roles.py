"""The line's database role (telephony/db/roles.py) against a real PostgreSQL: it owns
nothing, may only INSERT and SELECT the audit log, and can neither drop nor alter a table;
the append-only tables refuse TRUNCATE even to their owner (migration 0020)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import MigrationError, bundled_migrations, hold_schema_lock
from telephony.db.roles import (
    LINE_PRIVILEGES,
    UNLISTED,
    LineRole,
    grant_line_role,
    prepare_schema,
    schema_relations,
)
from telephony.desks.service import grant_phone_reader
from telephony.settings import Settings
from tests.support.db import LINE_ROLE, create_empty_database, line_dsn, line_role
from tests.support.polling import eventually

APPEND_ONLY = ("audit_log", "incident_events", "call_labels", "config_versions",
               "config_publications")


@pytest.fixture
async def line(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_dsn)
    yield connection
    await connection.close()


@pytest.fixture
async def owner(database_owner_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_owner_dsn)
    yield connection
    await connection.close()


async def audit_rows(connection: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await connection.fetch("SELECT actor, action FROM audit_log ORDER BY audit_id")
    return [(row["actor"], row["action"]) for row in rows]


async def test_the_line_connects_as_a_role_that_owns_nothing_and_may_create_nothing(
        line: asyncpg.Connection, owner: asyncpg.Connection) -> None:
    assert await line.fetchval("SELECT current_user") == LINE_ROLE
    role = await owner.fetchrow("SELECT * FROM pg_roles WHERE rolname = $1", LINE_ROLE)
    assert role is not None
    assert not (role["rolsuper"] or role["rolcreaterole"] or role["rolcreatedb"]
                or role["rolbypassrls"] or role["rolreplication"])
    owned = await owner.fetch(
        "SELECT relname FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
        "WHERE rolname = $1)", LINE_ROLE)
    assert owned == []
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await line.execute("CREATE TABLE audit_log_copy (x int)")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await line.execute("CREATE SCHEMA mine")


async def test_the_line_may_append_to_and_read_the_audit_log_and_nothing_more(
        line: asyncpg.Connection) -> None:
    await line.execute("INSERT INTO audit_log (actor, action) VALUES ('cli', 'account.create')")
    await line.execute("INSERT INTO audit_log (actor, action) VALUES ('cli', 'account.disable')")
    before = await audit_rows(line)
    assert before == [("cli", "account.create"), ("cli", "account.disable")]
    for statement in ("TRUNCATE audit_log", "TRUNCATE audit_log CASCADE",
                      "UPDATE audit_log SET actor = 'nobody'",
                      "DELETE FROM audit_log",
                      "DELETE FROM audit_log WHERE action = 'account.disable'",
                      "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
                      "ALTER TABLE audit_log DISABLE TRIGGER ALL",
                      "DROP TRIGGER audit_log_append_only ON audit_log",
                      "DROP TRIGGER audit_log_no_truncate ON audit_log",
                      "DROP TABLE audit_log", "DROP TABLE audit_log CASCADE",
                      "ALTER TABLE audit_log RENAME TO audit_log_old",
                      "DROP FUNCTION audit_log_append_only() CASCADE",
                      "SET session_replication_role = replica",
                      "SELECT * FROM audit_log FOR UPDATE"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await line.execute(statement)
    # A grant by a role that holds no grant option grants nothing (a warning, not an error).
    await line.execute("GRANT DELETE, TRUNCATE ON audit_log TO PUBLIC")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await line.execute("DELETE FROM audit_log")
    assert await audit_rows(line) == before


async def test_no_table_or_view_can_be_dropped_or_altered_by_the_line(
        line: asyncpg.Connection, owner: asyncpg.Connection) -> None:
    relations = await schema_relations(owner)
    assert len(relations) > 40
    for relation in relations:
        for statement in (f"DROP TABLE IF EXISTS {relation} CASCADE",
                          f"DROP VIEW IF EXISTS {relation} CASCADE",
                          f"ALTER TABLE {relation} ADD COLUMN planted text",
                          f"ALTER TABLE {relation} OWNER TO {LINE_ROLE}",
                          f"TRUNCATE {relation} CASCADE",
                          f"CREATE INDEX ON {relation} ((1))"):
            with pytest.raises((asyncpg.InsufficientPrivilegeError,
                                asyncpg.WrongObjectTypeError)):
                await line.execute(statement)
    assert await schema_relations(owner) == relations


async def test_the_owner_cannot_truncate_the_append_only_tables_either(
        owner: asyncpg.Connection) -> None:
    await owner.execute("INSERT INTO audit_log (actor, action) VALUES ('cli', 'x')")
    for table in APPEND_ONLY:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await owner.execute(f"TRUNCATE {table} CASCADE")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):  # 0005's row trigger
        await owner.execute("DELETE FROM audit_log")
    assert await audit_rows(owner) == [("cli", "x")]


async def test_every_relation_of_the_schema_has_its_grants_decided(
        owner: asyncpg.Connection) -> None:
    """A migration that adds a table must say here what the line may do to it."""
    assert set(await schema_relations(owner)) == set(LINE_PRIVILEGES)
    assert LINE_PRIVILEGES["audit_log"] == ("SELECT", "INSERT")
    for privileges in LINE_PRIVILEGES.values():
        assert set(privileges) <= {"SELECT", "INSERT", "UPDATE", "DELETE"}


async def test_the_grants_are_exactly_the_table_of_roles_py(
        owner: asyncpg.Connection) -> None:
    rows = await owner.fetch(
        """
        SELECT table_name, array_agg(privilege_type::text ORDER BY privilege_type) AS granted
        FROM information_schema.role_table_grants
        WHERE grantee = $1 AND table_schema = 'public'
        GROUP BY table_name
        """, LINE_ROLE)
    granted = {row["table_name"]: set(row["granted"]) for row in rows}
    assert granted == {table: set(privileges)
                       for table, privileges in LINE_PRIVILEGES.items() if privileges}


async def test_a_table_granted_by_hand_is_put_back_and_a_new_one_gets_plain_dml(
        pg_cluster: EmbeddedPostgres, line: asyncpg.Connection, owner: asyncpg.Connection,
        caplog: pytest.LogCaptureFixture) -> None:
    await owner.execute(f"GRANT ALL ON audit_log TO {LINE_ROLE}")
    await owner.execute("CREATE TABLE later_feature (x int)")
    with caplog.at_level(logging.WARNING, logger="telephony.db"):
        await grant_line_role(owner, line_role(pg_cluster))
        await grant_line_role(owner, line_role(pg_cluster))  # idempotent
    assert "later_feature has no entry" in caplog.text
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await line.execute("TRUNCATE audit_log")
    await line.execute("INSERT INTO later_feature VALUES (1)")
    assert await line.execute("DELETE FROM later_feature") == "DELETE 1"
    privileges = {row["privilege_type"] for row in await owner.fetch(
        "SELECT privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = $1 AND table_name = 'later_feature'", LINE_ROLE)}
    assert privileges == set(UNLISTED)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await line.execute("TRUNCATE later_feature")


async def test_an_owner_that_is_no_superuser_migrates_and_grants(
        pg_cluster: EmbeddedPostgres, owner: asyncpg.Connection) -> None:
    """As on a docker site: the owner has CREATEROLE and owns the database, nothing more."""
    name = f"t_owner_{uuid.uuid4().hex[:8]}"
    await owner.execute(f"CREATE ROLE {name} LOGIN CREATEROLE PASSWORD 'owner-pw'")
    await owner.execute(f"CREATE DATABASE {name} OWNER {name}")
    base = pg_cluster.dsn().rsplit("@", 1)[1].rsplit("/", 1)[0]
    try:
        site_owner = await asyncpg.connect(f"postgresql://{name}:owner-pw@{base}/{name}")
        try:
            assert await prepare_schema(site_owner, line_role(pg_cluster)) > 0
            assert await prepare_schema(site_owner, line_role(pg_cluster)) == 0
        finally:
            await site_owner.close()
        site_line = await asyncpg.connect(line_dsn(pg_cluster, f"/{name}"))
        try:
            await site_line.execute("INSERT INTO audit_log (actor, action) VALUES ('cli', 'x')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await site_line.execute("TRUNCATE audit_log")
        finally:
            await site_line.close()
    finally:
        await owner.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await owner.execute(f"DROP ROLE {name}")


async def test_a_line_role_with_powers_beyond_its_grants_is_refused(
        owner: asyncpg.Connection) -> None:
    name = f"t_line_{uuid.uuid4().hex[:8]}"
    await owner.execute(f"CREATE ROLE {name} LOGIN BYPASSRLS")
    try:
        with pytest.raises(MigrationError, match="may do more than its grants"):
            await grant_line_role(owner, LineRole(name, None))
        with pytest.raises(MigrationError, match="cannot be the owner"):
            await grant_line_role(owner, LineRole(await owner.fetchval("SELECT current_user"),
                                                  None))
    finally:
        await owner.execute(f"DROP ROLE {name}")


async def test_lines_preparing_a_new_database_together_take_turns(
        pg_cluster: EmbeddedPostgres, owner: asyncpg.Connection) -> None:
    """A cluster's lines start together on a new database. Each waits for the schema lock
    before it creates anything, the migrations' own bookkeeping table included: two
    unlocked CREATE TABLE IF NOT EXISTS raced, and the loser's line failed to start."""
    dsn = await create_empty_database(pg_cluster)
    holder, first, second = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        held = holder.transaction()
        await held.start()
        await hold_schema_lock(holder)
        both = asyncio.gather(prepare_schema(first, line_role(pg_cluster)),
                              prepare_schema(second, line_role(pg_cluster)))

        async def waiting() -> int | None:
            count = await owner.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' "
                "AND pid = ANY($1::int[])",
                [first.get_server_pid(), second.get_server_pid()])
            return count if count == 2 else None

        await eventually("both lines waiting for the schema lock", waiting, within=10,
                         interval=0.05)
        assert await holder.fetchval("SELECT to_regclass('schema_migrations')") is None
        await held.rollback()
        # Both started; each migration was applied once, by one or the other.
        assert sum(await asyncio.wait_for(both, 120)) == len(bundled_migrations())
    finally:
        for connection in (holder, first, second):
            await connection.close()
        name = dsn.rsplit("/", 1)[1]
        await owner.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_lines_granting_the_phone_reader_together_take_turns(
        pg_cluster: EmbeddedPostgres, owner: asyncpg.Connection, settings: Settings,
        database_dsn: str, database_owner_dsn: str) -> None:
    """A cluster's lines start together and each grants Asterisk's phone reader its views.
    Unlocked, two GRANTs on the same objects raced ("tuple concurrently updated") and the
    loser's line failed to start: each now waits for the schema lock."""
    role = f"phones_{uuid.uuid4().hex[:8]}"
    database = Database(replace(settings, database_dsn=database_dsn,
                                database_owner_dsn=database_owner_dsn))
    holder = await asyncpg.connect(database_owner_dsn)
    try:
        held = holder.transaction()
        await held.start()
        await hold_schema_lock(holder)
        both = asyncio.gather(grant_phone_reader(database, role, "first secret"),
                              grant_phone_reader(database, role, "second secret"))

        async def waiting() -> int | None:
            # This test's database only: the other worker's tests take the lock in theirs.
            count = await owner.fetchval("SELECT count(*) FROM pg_stat_activity "
                                         "WHERE wait_event = 'advisory' "
                                         "AND datname = current_database()")
            return count if count == 2 else None

        await eventually("both lines waiting for the schema lock", waiting, within=10,
                         interval=0.05)
        assert not await owner.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
        await held.rollback()
        assert list(await asyncio.wait_for(both, 30)) == [True, True]
        assert await owner.fetchval(
            "SELECT has_table_privilege($1, 'front_calls', 'INSERT') "
            "AND has_table_privilege($1, 'ps_endpoints', 'SELECT')", role)
    finally:
        await holder.close()
        await database.close()
        if await owner.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                                role):
            await owner.execute(f'DROP OWNED BY "{role}"')
            await owner.execute(f'DROP ROLE "{role}"')
