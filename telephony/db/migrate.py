"""Versioned schema migrations: ``migrations/NNNN_name.sql``, each applied once, in order.

Each file runs in its own transaction under an advisory lock, so two processes starting at
once cannot both apply it. A file changed after it was applied is refused (its checksum no
longer matches): fix forward with a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

from telephony.core.errors import SiagaError
from telephony.db.transient import TRANSIENT_ERRORS

log = logging.getLogger("telephony.db")

# Any constant shared by our processes; pg_advisory_xact_lock takes a bigint.
_MIGRATION_LOCK = 112_119
# How long a migration waits for a table another session holds before it gives way.
MIGRATION_LOCK_TIMEOUT = "5s"


async def hold_schema_lock(connection: asyncpg.Connection) -> None:
    """Wait for the lock every change of ours to the schema and its grants takes, and hold it
    until the connection's transaction ends (call it inside one)."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)


class MigrationError(SiagaError, RuntimeError):
    """The schema is in a state these migrations cannot move forward."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in this package, in version order."""
    found = []
    for entry in resources.files("telephony.db.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, _, rest = entry.name.partition("_")
        found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if len({m.version for m in found}) != len(found):
        raise MigrationError("two migration files share a version number")
    return found


def cannot_apply(migration: Migration, exc: asyncpg.PostgresError) -> str:
    """Why ``migration`` cannot apply to this database, for the site engineer: the server's
    words and its detail, which names what is in the way (a view of the site's own on a column
    the migration changes, rows a new constraint refuses)."""
    # One line: str(exc) adds the detail and PostgreSQL's hint (CASCADE) on lines of their own.
    return (f"Migrasi {migration.version:04d}_{migration.name} tidak dapat diterapkan "
            f"(transaksinya dibatalkan, migrasi sebelumnya tetap): {exc.message}"
            + (f" ({exc.detail})" if exc.detail else "")
            + ". Perbaiki basis datanya, lalu jalankan lagi 'siaga112 migrate'.")


async def migrate(connection: asyncpg.Connection,
                  migrations: Sequence[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration of ``migrations`` (by default the bundled ones, which
    a line always applies; a test stops short of one to upgrade a schema of before it);
    returns the ones applied now.

    A role that may not create tables (the line's own, telephony/db/roles.py) gets through
    when nothing is pending: the bookkeeping table is only created if missing, and a
    migration already recorded is skipped. Anything pending needs the owner."""
    if await connection.fetchval("SELECT to_regclass('schema_migrations')") is None:
        # Under the lock too: a cluster's lines migrating a new database together each ran
        # this CREATE TABLE IF NOT EXISTS, which is not safe against a concurrent create (the
        # loser fails on pg_type's unique index), and that line's start failed.
        async with connection.transaction():
            await hold_schema_lock(connection)
            await connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    checksum    text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """
            )
    applied_now = []
    for migration in bundled_migrations() if migrations is None else migrations:
        async with connection.transaction():
            await hold_schema_lock(connection)
            recorded = await connection.fetchval(
                "SELECT checksum FROM schema_migrations WHERE version = $1", migration.version
            )
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} changed after it was "
                        "applied; add a new migration instead"
                    )
                continue
            # After the schema lock, whose wait is another line's migrations and must not
            # time out. A table lock held elsewhere (a backup's pg_dump holds one on every
            # table until it ends) is waited for this long only: the migration's queued
            # request would hold every read and write of that table, a running node's
            # included, behind it for the whole dump. It is tried again on the next use.
            await connection.execute(
                f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")
            try:
                await connection.execute(migration.sql)
            except asyncpg.exceptions.LockNotAvailableError:
                log.warning("migration %04d_%s waited %s for a table another session holds "
                            "(a backup's pg_dump, a long report); tried again later",
                            migration.version, migration.name, MIGRATION_LOCK_TIMEOUT)
                raise
            except asyncpg.PostgresError as exc:
                if isinstance(exc, TRANSIENT_ERRORS):
                    raise  # the server went away meanwhile: an outage, retried as one
                raise MigrationError(cannot_apply(migration, exc)) from exc
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version, migration.name, migration.checksum,
            )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration)
    if migrations is None:
        await _warn_if_newer(connection)
    return applied_now


async def _warn_if_newer(connection: asyncpg.Connection) -> None:
    """Say so when a newer siaga112 has migrated this database (an upgrade rolled back to the
    previous image): this software then runs on tables it may not understand, and its writes
    may be refused. Not refused here: going back is how a site gets out of a bad upgrade."""
    newest = await connection.fetchval("SELECT max(version) FROM schema_migrations")
    known = bundled_migrations()[-1].version
    if newest is not None and newest > known:
        log.warning("the database's schema is at migration %04d, newer than this software's "
                    "%04d: a newer siaga112 migrated it; upgrade again, or restore a backup "
                    "taken before that upgrade", newest, known)
