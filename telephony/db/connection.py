"""Connecting to PostgreSQL and turning driver errors into our own.

Which server: ``Settings.database_dsn`` if set, else libpq's ``PG*`` environment variables
(asyncpg reads them itself), else the embedded cluster.

As whom (telephony/db/roles.py): the line's pool connects as the line's role, which owns
nothing; migrations, grants and restores connect as the owner (``database_owner_dsn``, or the
embedded cluster's superuser). Without a separate owner the line's DSN is both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast
from urllib.parse import unquote, urlsplit

import asyncpg

from telephony.core.dsn import dsn_hosts
from telephony.core.errors import Unavailable
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import MigrationError
from telephony.db.roles import LineRole
from telephony.db.transient import TRANSIENT_ERRORS as TRANSIENT_ERRORS  # noqa: PLC0414 (re-export)
from telephony.secrets import database_dsn as site_database_dsn
from telephony.secrets import database_owner_dsn as site_database_owner_dsn
from telephony.settings import Settings

log = logging.getLogger("telephony.db")

T = TypeVar("T")
DatabaseWork = Callable[[asyncpg.Connection], Awaitable[T]]

# How long work may run on a pooled connection before the line asks whether its server still
# answers at all (a new connection to the same server, within db_connect_timeout): a slow
# query on a live server goes on. Asked again at the slower pace while it runs, so that work
# waiting on a lock (an admin's open transaction) costs a connection every few seconds, not
# every second.
ANSWER_CHECK_SECONDS: Final = 1.0
ANSWER_RECHECK_SECONDS: Final = 5.0
# The probe connection's name in pg_stat_activity.
PROBE_NAME: Final = "siaga112 answer check"


class DatabaseUnavailable(Unavailable, ConnectionError):
    """The database cannot be reached or refused the work; callers may retry later.

    ``str()`` is the driver's reason, for the log; ``message`` is what a client reads.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.message = "Basis data sedang tidak tersedia. Coba lagi sebentar lagi."


class SchemaNotPrepared(DatabaseUnavailable):
    """The owner could not bring the schema to this software's (a migration that cannot
    apply, telephony/db/migrate.py). At start the line stops with it (app.prepare_database);
    once running, the work waits as in an outage (call facts spooled, not refused) until an
    engineer clears what is in the way and the next use prepares the schema again."""


class DatabaseConflict(DatabaseUnavailable):
    """The server rolled the work back against a concurrent transaction (a deadlock, a
    serialization failure): nothing was written, and the same work may be done again at
    once, where an outage's should wait."""

    retry_after_seconds = 1

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.message = "Basis data sedang sibuk. Coba lagi."


class _OutageInOneLine(logging.Filter):
    """asyncpg's pool logs every failed attempt to restore its connection floor with the whole
    traceback (``exc_info=True``): during a database outage, a screenful every few seconds,
    where the line's own log says "database away" once. An outage is no bug: the record
    keeps asyncpg's sentence and gains the reason, on one line. Anything else keeps its
    traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TRANSIENT_ERRORS):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_OutageInOneLine())

# Of a multi-host DSN (telephony/core/dsn.py), the node that last took a connection, tried
# first next time: after a failover the first connection finds the new primary and every
# later one goes straight to it, not through the dead node's timeout each time.
_LAST_HOST: dict[str, tuple[str, int]] = {}


async def connect_postgres(dsn: str | None = None, *,
                           timeout: float,  # noqa: ASYNC109 - asyncpg.connect's, as the pool calls it
                           **options: Any) -> asyncpg.Connection:
    """``asyncpg.connect``, but with ``timeout`` for each host of a multi-host DSN, as
    libpq's ``connect_timeout``, rather than for all of them together as asyncpg has it.

    Why: a node whose machine is gone answers nothing (no refusal), so asyncpg would spend
    the whole timeout on it and never try the next host, and the line would never reach the
    new primary while the dead node is listed first. Here each host gets its own timeout,
    the one that last worked first. A host that cannot take writes, or cannot be reached, is
    skipped; the last failure is raised when none can.
    """
    hosts = dsn_hosts(dsn) if dsn is not None else ()
    if len(hosts) < 2:
        single: asyncpg.Connection = await asyncpg.connect(dsn=dsn, timeout=timeout, **options)
        return single
    assert dsn is not None
    last = _LAST_HOST.get(dsn)
    order = sorted(hosts, key=lambda host: host != last)  # stable: the DSN's order otherwise
    failure: BaseException | None = None
    for host, port in order:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                dsn=dsn, host=host, port=port, timeout=timeout, **options)
        except TRANSIENT_ERRORS as exc:
            failure = exc
            continue
        _LAST_HOST[dsn] = (host, port)
        return connection
    assert failure is not None
    raise failure


def libpq_connect_timeout(settings: Settings) -> int:
    """``db_connect_timeout`` as libpq's ``connect_timeout`` (``PGCONNECT_TIMEOUT``) for the
    programs that connect through libpq (Kamailio, pg_dump, psql): each host's attempt of a
    multi-host DSN, as :func:`connect_postgres` bounds the line's. Without it a node whose
    machine is switched off (no answer, not a refusal) holds the connection for the kernel's
    SYN retries, about two minutes, before the next node is tried. libpq takes whole seconds
    only and rounds anything under 2 up to 2."""
    return max(2, math.ceil(settings.db_connect_timeout))


def acquire_timeout(settings: Settings, dsn: str | None) -> float:
    """How long to wait for a pooled connection: a new one may try every host in turn."""
    return settings.db_connect_timeout * max(1, len(dsn_hosts(dsn)) if dsn else 1)


def embedded_cluster(settings: Settings) -> EmbeddedPostgres:
    """The embedded cluster described by ``settings``."""
    return EmbeddedPostgres(settings.embedded_pg_dir, settings.embedded_pg_port)


def resolve_dsn(settings: Settings) -> str | None:
    """The DSN the line connects with; ``None`` means libpq's environment variables decide."""
    if settings.database_dsn is not None:
        return site_database_dsn(settings)
    if settings.uses_embedded_database:
        return embedded_cluster(settings).line_dsn(settings.database_line_user)
    return None


def resolve_owner_dsn(settings: Settings) -> str | None:
    """The DSN of the schema's owner: migrations, grants, backup and restore."""
    if settings.database_owner_dsn is not None:
        return site_database_owner_dsn(settings)
    if settings.uses_embedded_database:
        return embedded_cluster(settings).dsn()
    return resolve_dsn(settings)


def line_role(settings: Settings) -> LineRole | None:
    """The line's role for the owner to grant, ``None`` when the line is the owner."""
    if not settings.separate_database_owner:
        return None
    if settings.uses_embedded_database:
        return LineRole(settings.database_line_user,
                        embedded_cluster(settings).line_password())
    dsn = resolve_dsn(settings)
    password = None
    if dsn is not None and urlsplit(dsn).scheme in ("postgres", "postgresql"):
        password = urlsplit(dsn).password
        password = None if password is None else unquote(password)
    return LineRole(settings.database_line_user, password)


async def connect_owner(settings: Settings) -> asyncpg.Connection:
    """One connection as the schema's owner, :class:`DatabaseUnavailable` if none."""
    try:
        return await connect_postgres(resolve_owner_dsn(settings),
                                      timeout=settings.db_connect_timeout, command_timeout=300)
    except TRANSIENT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc


async def run_as_owner(settings: Settings, work: DatabaseWork[T]) -> T:
    """Run ``work`` on a connection of its own as the owner, closed after it."""
    connection = await connect_owner(settings)
    try:
        return await work(connection)
    except TRANSIENT_ERRORS as exc:
        raise DatabaseUnavailable(f"PostgreSQL unavailable: {exc}") from exc
    finally:
        await asyncio.wait_for(connection.close(), timeout=10)


def session_name(settings: Settings, purpose: str = "siaga112") -> str:
    """A line's ``application_name`` for a connection of ``purpose``, with its node's name
    on a cluster: a restore refused for a line still connected (and ``pg_stat_activity``)
    then says which node's, where the nodes' lines connect from one address (the Docker
    cluster on one host) or an engineer does not know the nodes' addresses by heart."""
    node = settings.asterisk_systemname
    return f"{purpose} ({node})" if node else purpose


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A pool's reset that sends nothing: asyncpg still rolls back a transaction left open."""


async def create_pool(settings: Settings, *, max_size: int = 10,
                      reset_sessions: bool = True) -> asyncpg.Pool:
    """Open a connection pool, raising :class:`DatabaseUnavailable` if the server is not there.

    With ``reset_sessions`` false a connection goes back to the pool without asyncpg's reset
    query (advisory locks, cursors, LISTEN, settings): one round trip less per use, for a pool
    whose work leaves no session state behind (see :class:`Database`).
    """
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn=resolve_dsn(settings),
            min_size=1,
            max_size=max_size,
            reset=None if reset_sessions else _keep_session,
            # The stubs' protocol spells out asyncpg.connect's keywords; ours passes them on.
            connect=cast(Any, connect_postgres),
            timeout=settings.db_connect_timeout,
            command_timeout=30,
            server_settings={"application_name": session_name(settings)},
        )
    except TRANSIENT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
    return pool


class Database:
    """A lazily opened pool that turns "no server" into :class:`DatabaseUnavailable`.

    The line starts and keeps taking calls while PostgreSQL is down; the pool is opened on
    first use and reopened after the server comes back. ``prepare`` (the line's migrations
    and grants) runs as the schema's owner on a connection of its own before the line's pool
    opens, so a database that was down when the line started is migrated, and the line's
    role granted, before the first write reaches it. The pool itself is the line's role.
    """

    def __init__(self, settings: Settings, *, max_size: int = 10,
                 prepare: DatabaseWork[object] | None = None,
                 reset_sessions: bool = True) -> None:
        self._settings = settings
        self._max_size = max_size
        self._reset_sessions = reset_sessions
        self._prepare = prepare
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._acquire_timeout = acquire_timeout(settings, resolve_dsn(settings))
        # The last look at whether each server answers (_answers): when it began, and it.
        self._looks: dict[tuple[str, int] | None, tuple[float, asyncio.Task[bool]]] = {}

    async def pool(self) -> asyncpg.Pool:
        """The open pool, opening (and preparing) it if needed."""
        async with self._opening:
            if self._pool is None:
                if self._prepare is not None:
                    # Not kept when it fails: the next use prepares again.
                    try:
                        await run_as_owner(self._settings, self._prepare)
                    except MigrationError as exc:
                        raise SchemaNotPrepared(str(exc)) from exc
                self._pool = await create_pool(self._settings, max_size=self._max_size,
                                               reset_sessions=self._reset_sessions)
            return self._pool

    async def run_as_owner(self, work: DatabaseWork[T]) -> T:
        """Run ``work`` as the schema's owner (creating roles, granting), on a connection of
        its own: the line's pool cannot."""
        return await run_as_owner(self._settings, work)

    async def run(self, work: DatabaseWork[T]) -> T:
        """Run ``work(connection)``; driver connection errors become DatabaseUnavailable, and
        so does a server that stops answering meanwhile (:class:`_AnswerWatch`)."""
        pool = await self.pool()
        watch: _AnswerWatch | None = None
        try:
            async with pool.acquire(timeout=self._acquire_timeout) as proxy:
                # The pool hands out a proxy that forwards every Connection method.
                connection = cast(asyncpg.Connection, proxy)
                since = asyncio.get_running_loop().time()
                watch = _AnswerWatch(connection, lambda: self._answers(connection, since))
                try:
                    return await work(connection)
                finally:
                    watch.stop()
        except asyncpg.exceptions.TransactionRollbackError as exc:
            raise DatabaseConflict(f"PostgreSQL rolled the work back: {exc}") from exc
        except TRANSIENT_ERRORS as exc:
            if watch is not None and watch.hung:
                raise DatabaseUnavailable(
                    "PostgreSQL does not answer (a new connection got no answer within "
                    f"{self._settings.db_connect_timeout:g} s): the work's connection was "
                    "closed") from exc
            raise DatabaseUnavailable(f"PostgreSQL unavailable: {exc}") from exc

    async def _answers(self, connection: asyncpg.Connection, since: float) -> bool:
        """Whether the server ``connection`` is on takes a new connection in time. Only no
        answer at all counts: a refusal (too many connections, a password) is an answer.

        One look per server serves every piece of work that asks within
        :data:`ANSWER_CHECK_SECONDS` of the look's start, if it began while the work ran
        (``since``, the loop's clock): in a surge on a loaded database many pieces of work
        pass the mark together, and a new connection each (a backend started for every one)
        would load the server just when it is slow. Shielded: the work a watch guards may
        end while the look connects, and the look then ends on its own, within
        ``db_connect_timeout``, rather than being cut mid-handshake."""
        # The same host as the work's, not any of a multi-host DSN's: another node answering
        # says nothing of the one the work waits on.
        address = getattr(connection, "_addr", None)
        where = (address[0], address[1]) \
            if isinstance(address, tuple) and len(address) == 2 else None
        loop = asyncio.get_running_loop()
        now = loop.time()
        began, look = self._looks.get(where, (-math.inf, None))
        if look is None or began < since or now - began >= ANSWER_CHECK_SECONDS:
            look = loop.create_task(self._look(where), name="database-answer-check")
            self._looks[where] = (now, look)
        return await asyncio.shield(look)

    async def _look(self, where: tuple[str, int] | None) -> bool:
        """A new connection to ``where`` (the DSN's hosts if None), closed at once: whether
        the server answered it within ``db_connect_timeout``."""
        host, port = where if where is not None else (None, None)
        try:
            probe = await asyncpg.connect(
                dsn=resolve_dsn(self._settings), timeout=self._settings.db_connect_timeout,
                server_settings={"application_name": session_name(self._settings, PROBE_NAME)},
                host=host, port=port)
        except (OSError, TimeoutError):
            return False
        except Exception:  # any other refusal came from a server that answers
            return True
        with contextlib.suppress(Exception):  # it answered; how the probe ends is moot
            await probe.close(timeout=self._settings.db_connect_timeout)
        return True

    async def connect(self, application_name: str) -> asyncpg.Connection:
        """A connection of its own as the line's role, outside the pool (a LISTEN lives as
        long as its connection), named ``application_name`` in ``pg_stat_activity``; the
        caller closes it. The database is prepared first."""
        await self.pool()
        try:
            return await connect_postgres(resolve_dsn(self._settings),
                                          timeout=self._settings.db_connect_timeout,
                                          command_timeout=30, server_settings={
                                              "application_name": session_name(
                                                  self._settings, application_name)})
        except TRANSIENT_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def ping(self) -> None:
        """Ask the server for nothing (readiness); raises :class:`DatabaseUnavailable` if it
        cannot answer."""

        async def work(connection: asyncpg.Connection) -> None:
            await connection.fetchval("SELECT 1")

        await self.run(work)

    async def close(self) -> None:
        """Close the pool, if open, once the looks still connecting have ended (each within
        ``db_connect_timeout``)."""
        looks = [look for _, look in self._looks.values() if not look.done()]
        self._looks.clear()
        if looks:
            await asyncio.wait(looks, timeout=self._settings.db_connect_timeout + 1)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.wait_for(pool.close(), timeout=10)


class _AnswerWatch:
    """Closes a pooled connection whose server stops answering while work runs on it.

    A hung server (its processes stopped, a stalled disk or machine: the kernel still takes
    connections, nothing answers) held each piece of work for the whole command timeout,
    30 s: a console page waited that long for its 503, the call recorder that long before it
    spooled. Work still running after :data:`ANSWER_CHECK_SECONDS` asks whether the server
    takes a new connection; if it does not, the work's connection is closed at once (a
    cancellation would wait for an acknowledgement that never comes), and the work fails as
    the database being away. Costs nothing but a timer while work is quick.
    """

    def __init__(self, connection: asyncpg.Connection,
                 answers: Callable[[], Awaitable[bool]]) -> None:
        self.hung = False
        self._connection = connection
        self._answers = answers
        self._loop = asyncio.get_running_loop()
        self._look: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            ANSWER_CHECK_SECONDS, self._start_look)

    def _start_look(self) -> None:
        self._timer = None
        self._look = self._loop.create_task(self._check(), name="database-answer-check")

    async def _check(self) -> None:
        if await self._answers():
            self._look = None
            self._timer = self._loop.call_later(ANSWER_RECHECK_SECONDS, self._start_look)
            return
        self.hung = True
        log.error("PostgreSQL does not answer: closing a connection whose work waits on it")
        self._connection.terminate()

    def stop(self) -> None:
        """The work is over: no look any more."""
        if self._timer is not None:
            self._timer.cancel()
        if self._look is not None:
            self._look.cancel()
