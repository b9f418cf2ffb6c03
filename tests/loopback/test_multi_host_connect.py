"""A multi-host DSN whose first node is gone without a word (its machine is off: connection
attempts get no answer, not a refusal): the line still connects, to the next node, within
one connect timeout per host, and goes straight to the node that worked from then on
(telephony/db/connection.py connect_postgres). asyncpg alone spends its whole timeout on the
first host and never tries the second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import asyncpg
import pytest

from telephony.db.connection import Database, DatabaseUnavailable, connect_postgres
from telephony.settings import Settings
from tests.support import net


@pytest.fixture
def silent_port() -> Iterator[int]:
    with net.silent_port() as port:
        yield port


async def test_asyncpg_alone_never_reaches_the_second_host(database_dsn: str,
                                                           silent_port: int) -> None:
    with pytest.raises(TimeoutError):
        await asyncpg.connect(net.behind_silent_node(database_dsn, silent_port), timeout=1.0)


async def test_each_host_gets_its_own_timeout_and_the_one_that_worked_comes_first(
        database_dsn: str, silent_port: int) -> None:
    dsn = net.behind_silent_node(database_dsn, silent_port)
    started = time.monotonic()
    connection = await connect_postgres(dsn, timeout=1.0)
    try:
        assert await connection.fetchval("SELECT NOT pg_is_in_recovery()")
    finally:
        await connection.close()
    assert 1.0 <= time.monotonic() - started < 3.0
    started = time.monotonic()
    connection = await connect_postgres(dsn, timeout=1.0)
    await connection.close()
    assert time.monotonic() - started < 0.9  # straight to the node that took the last one


async def test_the_line_pool_writes_through_a_silent_first_node(
        settings: Settings, database_dsn: str, silent_port: int) -> None:
    dsn = net.behind_silent_node(database_dsn, silent_port)
    database = Database(replace(settings, database_dsn=dsn, db_connect_timeout=1.0))
    try:
        await database.ping()
    finally:
        await database.close()


async def test_no_node_taking_writes_is_an_outage_not_a_crash(
        settings: Settings, database_dsn: str, database_owner_dsn: str) -> None:
    """During a switchover every node may be read-only for a moment: asyncpg then raises
    "no host matches read-write", which the line must spool through like any outage."""
    name = database_dsn.rsplit("/", 1)[1]
    owner = await asyncpg.connect(database_owner_dsn)
    try:
        await owner.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await owner.close()
    database = Database(replace(settings, database_dsn=f"{database_dsn}"
                                "?target_session_attrs=read-write"))
    try:
        with pytest.raises(DatabaseUnavailable):
            await database.ping()
    finally:
        await database.close()


async def test_a_connection_left_mid_operation_is_an_outage_to_spool_through(
    settings: Settings, database_dsn: str
) -> None:
    """A primary killed mid-write can leave a connection mid-protocol, and its COMMIT then
    fails with asyncpg's InternalClientError: that write did not happen, and its facts must be
    spooled like any outage's, not dropped as a bug's."""
    database = Database(replace(settings, database_dsn=database_dsn))

    async def cut_off(_: asyncpg.Connection) -> None:
        raise asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress")

    try:
        with pytest.raises(DatabaseUnavailable):
            await database.run(cut_off)
    finally:
        await database.close()
