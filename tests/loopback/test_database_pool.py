"""The line's pools on a real PostgreSQL: a connection goes back to the pool with asyncpg's
reset query (advisory locks, cursors, LISTEN, settings) unless the pool was opened without it,
as the AMI thread's is (telephony/app.py): there it was one more round trip per recorded
batch. Work on a server that stops answering fails within seconds."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest

from telephony.db.connection import ANSWER_CHECK_SECONDS, Database, DatabaseUnavailable
from telephony.db.embedded import EmbeddedPostgres
from telephony.settings import Settings
from tests.support.db import frozen
from tests.support.polling import eventually


@pytest.mark.parametrize("reset_sessions", [True, False])
async def test_a_connection_goes_back_reset_only_when_the_pool_resets(
        settings: Settings, database_dsn: str, reset_sessions: bool) -> None:
    database = Database(replace(settings, database_dsn=database_dsn), max_size=1,
                        reset_sessions=reset_sessions)
    sent: list[str] = []

    def log(record: asyncpg.connection.LoggedQuery) -> None:
        sent.append(record.query)

    async def work(connection: asyncpg.Connection) -> int:
        connection.add_query_logger(log)
        async with connection.transaction():
            value: int = await connection.fetchval("SELECT 1")
        return value

    async def unlogged(connection: asyncpg.Connection) -> int:
        connection.remove_query_logger(log)
        value: int = await connection.fetchval("SELECT 2")
        return value

    try:
        assert await database.run(work) == 1
        # The one connection again, as it came back: the logger saw what its release sent.
        assert await database.run(unlogged) == 2
    finally:
        await database.close()
    resets = [query for query in sent if "pg_advisory_unlock_all" in query]
    assert len(resets) == (1 if reset_sessions else 0), sent
    assert any(query == "SELECT 1" for query in sent)


async def test_a_server_refusing_writes_is_unavailable_not_a_refusal_of_the_work(
        settings: Settings, database_dsn: str) -> None:
    # As a server in read-only mode refuses any write (an admin's switch, a demoted primary):
    # the callers (the call recorder first) must keep the work for later, not drop it as bad.
    database = Database(replace(settings, database_dsn=database_dsn), max_size=1)

    async def write(connection: asyncpg.Connection) -> None:
        async with connection.transaction(readonly=True):
            await connection.execute("CREATE TEMPORARY TABLE refused (n int)")

    try:
        with pytest.raises(DatabaseUnavailable, match="read-only"):
            await database.run(write)
    finally:
        await database.close()


async def test_work_on_a_hung_server_fails_within_seconds_and_slow_work_on_a_live_one_goes_on(
        settings: Settings, database_dsn: str, pg_cluster: EmbeddedPostgres) -> None:
    # A hung server (its processes stopped: the kernel takes connections, nothing answers)
    # held each piece of work for the whole command timeout, 30 s; a query that is only slow
    # on a server that answers must not be cut for it.
    configured = replace(settings, database_dsn=database_dsn, db_connect_timeout=1.0)
    database = Database(configured, max_size=2)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await database.run(lambda c: c.execute("SELECT pg_sleep(2.5)"))
        assert loop.time() - started >= 2.5
        with frozen(pg_cluster):
            started = loop.time()
            with pytest.raises(DatabaseUnavailable, match="does not answer"):
                await database.run(lambda c: c.fetchval("SELECT 1"))
            took = loop.time() - started
        assert took < ANSWER_CHECK_SECONDS + configured.db_connect_timeout + 1.0, took

        async def answered() -> bool | None:  # the pool recovers once the server does
            return True if await database.run(lambda c: c.fetchval("SELECT 1")) == 1 else None

        await eventually("work done again", answered, 10)
    finally:
        await database.close()


async def test_slow_work_in_a_surge_costs_the_server_one_look_a_second(
        settings: Settings, database_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Many pieces of work passing the one-second mark together on a loaded server each opened
    # a connection of their own to ask whether it answers: a backend started for every one
    # just when the server is slow. One look now serves all that ran when it began.
    database = Database(replace(settings, database_dsn=database_dsn), max_size=6)
    looks: list[object] = []
    look = database._look  # counted, not replaced: each look is a real connection

    async def counted(where: tuple[str, int] | None) -> bool:
        looks.append(where)
        return await look(where)

    monkeypatch.setattr(database, "_look", counted)
    try:
        await asyncio.gather(*(database.run(lambda c: c.execute("SELECT pg_sleep(1.5)"))
                               for _ in range(6)))
        assert len(looks) == 1, looks
    finally:
        await database.close()
