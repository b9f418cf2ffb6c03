"""A small asyncio FastAGI server: Asterisk connects, we run one handler per call.

Every read is bounded in size (agi_max_frame_bytes: the parsers bound lines and blocks, and a
connection stops reading while what it holds unparsed passes twice that) and in time (the
environment, each command and each whole session have their own deadline). Whatever goes
wrong in one session ends that session with one log line and leaves the others alone; when
we close a session early Asterisk sets AGISTATUS=FAILURE and the dialplan fails open. A
connection refused before its session began (a peer or secret not allowed, over the
session cap, no or a malformed environment, no route) is only counted: one log line per
interval sums them up (telephony/agi/access.py), so a flood cannot flood the log.

The bytes move through :class:`_Connection`, an asyncio protocol, rather than asyncio's
streams: a StreamReader/StreamWriter pair and a timeout context per command cost more than
everything else a session does, and FastAGI needs neither (one command, then one reply).
The deadlines are kept as plain times on each connection, and one sweep of the server checks
them all a few times a second (:func:`_sweep_interval`): timers per session and per command,
three per call, cost the event loop more than the session's own work (each is a heap entry
compared in Python, and a cancelled one lingers in the heap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Protocol, Self

from telephony.agi.access import AgiAccess, RefusalTally, allowed_networks
from telephony.agi.protocol import (
    AgiEnvironment,
    AgiEvent,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
    EnvironmentParser,
    ReplyParser,
    encode_command,
)
from telephony.core.errors import SiagaError
from telephony.core.open_files import guard_accepts
from telephony.secrets import agi_secret
from telephony.settings import Settings

log = logging.getLogger("telephony.agi")

AgiHandler = Callable[["AgiSession"], Awaitable[None]]

# How much one read of a socket may take: replies are a line, the environment ~1 KiB.
_RECEIVE_BYTES = 65536
# Deadlines are checked every tenth of the shortest timeout, within these bounds (seconds): a
# timeout then fires at most that much late (0.1 s with the line's 5 / 30 / 90 s).
_SWEEP_MIN = 0.01
_SWEEP_MAX = 0.1
# Bound on waiting for cancelled sessions and the listener to close during stop().
_CLOSE_TIMEOUT = 1.0
_HANDLER_FAILED = "FastAGI session %s: handler %r failed"


class AgiObserver(Protocol):
    """Told how long sessions and commands take (the line's metrics). Both run inside a
    session, so they must return at once."""

    def session_ended(self, route: str, outcome: str, seconds: float) -> None:
        """A session of ``route`` ended: ``completed``, ``hangup``, ``channel_error``,
        ``timeout`` (the session limit cut it) or ``failed`` (the handler raised)."""

    def command_answered(self, verb: str, seconds: float) -> None:
        """Asterisk answered ``verb`` after ``seconds`` (GET DATA includes its prompt)."""


class _Unobserved:
    def session_ended(self, route: str, outcome: str, seconds: float) -> None:
        pass

    def command_answered(self, verb: str, seconds: float) -> None:
        pass


@dataclass(frozen=True)
class FastAgiConfig:
    """Tunables of :class:`FastAgiServer`; build it with :meth:`from_settings`."""

    host: str = "127.0.0.1"
    port: int = 4573
    command_timeout: float = 30.0
    session_timeout: float = 90.0
    max_frame_bytes: int = 16384
    # Asterisk writes the whole environment at once right after connecting; anything slower
    # is not Asterisk.
    environment_timeout: float = 5.0
    # Connections at once, those still sending their environment included (see
    # Settings.agi_max_sessions); above it a connection is closed at once.
    max_sessions: int = 500
    # How long stop() lets sessions in progress finish (Settings.shutdown_drain_seconds).
    shutdown_timeout: float = 10.0
    # Who may connect, and the secret the AGI URL must carry (default: anyone, no secret).
    access: AgiAccess = field(default_factory=AgiAccess)
    # Sent before a session's first command: the dialplan's proof that the server is alive
    # (the line's is the GOSUB that lifts the first-command deadline). Not when that first
    # command starts with ``opening_implied_by``: a routine that runs the opening's itself
    # (the IVR's menu GOSUB, which must stay the first command: see AgiChannel).
    opening: tuple[str, ...] = ()
    opening_implied_by: tuple[str, ...] = ()
    # Refused connections are logged as one line of counts per this many seconds.
    refusal_log_interval: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FastAgiConfig:
        """The FastAGI part of the line's settings; other fields keep their defaults."""
        return cls(
            host=settings.agi_host,
            port=settings.agi_port,
            command_timeout=settings.agi_command_timeout,
            session_timeout=settings.agi_session_timeout,
            max_frame_bytes=settings.agi_max_frame_bytes,
            max_sessions=settings.agi_max_sessions,
            shutdown_timeout=settings.shutdown_drain_seconds,
            access=AgiAccess.of(allowed_networks(settings), agi_secret(settings)),
        )


class AgiSessionError(SiagaError):
    """A session cannot carry out a command: no reply in time, a malformed reply, or the
    session was already broken by one of those. The session ends; the dialplan fails open."""


class AgiHungUpError(AgiSessionError):
    """The caller has gone: ``HANGUP`` from Asterisk, or Asterisk closed the connection."""


class _Connection(asyncio.BufferedProtocol):
    """One FastAGI connection: the bytes that arrived and are not parsed yet, whether more can
    come, and a way to wait for either (what a StreamReader/StreamWriter pair does for us,
    without their per-read machinery).

    Reading stops while more than ``2 * limit`` bytes wait (as a StreamReader's does), so a
    peer that sends faster than the session reads is held back by TCP, never buffered. The
    socket is read into a buffer the server lends every connection in turn (asyncio reads,
    then hands over, one connection at a time): a plain protocol would get a fresh 256 KiB
    bytes object per read, which the allocator maps and unmaps each time.
    """

    def __init__(self, server: FastAgiServer, limit: int, receive: memoryview) -> None:
        self._server = server
        self._limit = limit
        self._receive = receive
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None  # the session's, kept alive here
        self._chunks: list[bytes] = []  # received, not read yet
        self._pending = 0  # their length
        self._eof = False
        self.lost = False
        self._reading_paused = False
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        # When the environment or the command in progress runs out of time (loop time), and
        # whether it has: its waits then raise TimeoutError. Both cleared when it ends.
        self.deadline: float | None = None
        self.expired = False
        # When the session's handler runs out of time, and the timeout context that then
        # cancels it (asyncio's own, so that cancellation means what it always means).
        self.session_deadline: float | None = None
        self.session_timeout: asyncio.Timeout | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.task = self._loop.create_task(self._server._on_connect(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._receive

    def buffer_updated(self, nbytes: int) -> None:
        self._chunks.append(bytes(self._receive[:nbytes]))
        self._pending += nbytes
        if self._pending > 2 * self._limit and not self._reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep our side open: the session closes it when it ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self.lost = True
        self._wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the connection lives on (asked once: each ask costs a getpid)."""
        return self._loop

    def check(self, now: float) -> None:
        """End what has run out of time at ``now``: the wait for the environment or a reply
        (now or next, it raises TimeoutError), or the session's handler (cancelled)."""
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.expired = True
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(TimeoutError())
        if self.session_deadline is not None and now >= self.session_deadline:
            self.session_deadline = None
            if self.session_timeout is not None:
                self.session_timeout.reschedule(now)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        if self.expired:
            raise TimeoutError
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self) -> bytes:
        """Everything received and not read yet, after waiting for some; b"" at the end."""
        while not self._chunks:
            if self._eof:
                return b""
            if self.expired:
                raise TimeoutError
            # _wait() written out: this runs for every reply.
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._pending = 0
        if self._reading_paused and not self.lost:
            assert self.transport is not None
            self.transport.resume_reading()
            self._reading_paused = False
        return data

    async def drain(self) -> None:
        """Wait while the transport's buffer is full; raise if the connection is gone."""
        while True:
            if self.lost:
                raise ConnectionResetError("Connection lost")
            if not self.writing_paused:
                return
            await self._wait()


def _sweep_interval(config: FastAgiConfig) -> float:
    """How often the deadlines are checked: a tenth of the shortest timeout, bounded."""
    shortest = min(config.environment_timeout, config.command_timeout, config.session_timeout)
    return min(max(shortest / 10, _SWEEP_MIN), _SWEEP_MAX)


def _shown(line: bytes) -> str:
    """An encoded command as it reads in a log line (built only when something went wrong)."""
    return line.decode("utf-8").rstrip("\n")


class AgiSession:
    """One call's FastAGI connection, handed to a route handler."""

    def __init__(
        self,
        env: AgiEnvironment,
        connection: _Connection,
        *,
        command_timeout: float,
        max_frame_bytes: int,
        received: bytes = b"",
        observer: AgiObserver | None = None,
        opening: tuple[str, ...] = (),
        opening_implied_by: tuple[str, ...] = (),
    ) -> None:
        self._env = env
        # Sent before the first command unless that starts with _implied (FastAgiConfig).
        self._opening = opening
        self._implied = opening_implied_by
        self._connection = connection
        self._command_timeout = command_timeout
        self._parser = ReplyParser(max_line_bytes=max_frame_bytes)
        # Bytes read along with the environment (a HANGUP can come before any command).
        self._received = received
        self._events: deque[AgiEvent] = deque()
        # The protocol is strictly one command, one reply: two concurrent commands would
        # each read the other's reply.
        self._lock = asyncio.Lock()
        self._hung_up = False
        self._broken: str | None = None
        self._observer = observer or _Unobserved()

    @property
    def env(self) -> AgiEnvironment:
        """The environment Asterisk sent when the session started."""
        return self._env

    @property
    def hung_up(self) -> bool:
        """True once Asterisk reported the caller gone (``HANGUP`` or a closed connection)."""
        return self._hung_up

    async def command(self, verb: str, *arguments: str, session_bound: bool = False) -> AgiReply:
        """Send ``verb`` with safely quoted ``arguments`` and return Asterisk's reply.

        ``session_bound``: the reply may take as long as the session may last (a GOSUB that
        runs a whole menu), so only the session limit applies, not the command timeout.

        5xx replies are returned, not raised: what a refusal means is the caller's business.
        Raises :class:`~telephony.agi.protocol.AgiArgumentError` before sending anything if an
        argument is unsafe, :class:`AgiHungUpError` on ``HANGUP`` or when Asterisk
        closed the connection, and :class:`AgiSessionError` on a timeout or a
        malformed reply; after those two the session accepts no more commands.
        """
        line = encode_command(verb, *arguments)
        async with self._lock:
            if self._opening:
                opening, self._opening = self._opening, ()
                implied = self._implied and (verb, *arguments)[:len(self._implied)] == self._implied
                if not implied:
                    await self._open(opening)
            return await self._exchange(verb, line, session_bound)

    async def _open(self, opening: tuple[str, ...]) -> None:
        """Send the opening command. A refusal (the dialplan lacks the routine) is logged and
        the session goes on: the dialplan's first-command deadline then fails the call open,
        which is all a missing routine can cost."""
        reply = await self._exchange(opening[0], encode_command(*opening), False)
        if reply.code != 200 or (reply.result or "").startswith("-"):
            log.warning("FastAGI session %s: opening command %s refused: %r",
                        self._env.uniqueid, " ".join(opening), reply.line)

    async def _exchange(self, verb: str, line: bytes, session_bound: bool) -> AgiReply:
        """Send one encoded command and read its reply (the caller holds the lock)."""
        if self._hung_up:
            raise AgiHungUpError(f"{_shown(line)}: the caller has already hung up")
        if self._broken is not None:
            raise AgiSessionError(f"{_shown(line)}: session unusable after {self._broken}")
        connection = self._connection
        started = connection.loop.time()
        connection.deadline = None if session_bound else started + self._command_timeout
        try:
            assert connection.transport is not None
            connection.transport.write(line)
            if connection.lost or connection.writing_paused:
                await connection.drain()
            reply = await self._read_reply(line)
        except TimeoutError:
            self._broken = "a command timeout"
            raise AgiSessionError(
                f"{_shown(line)}: no reply within {self._command_timeout:g} s"
            ) from None
        except AgiProtocolError as exc:
            self._broken = "a protocol error"
            raise AgiSessionError(f"{_shown(line)}: {exc}") from None
        except ConnectionError as exc:
            self._hung_up = True
            raise AgiHungUpError(f"{_shown(line)}: connection lost ({exc})") from None
        finally:
            connection.deadline = None
            connection.expired = False
        self._observer.command_answered(verb, connection.loop.time() - started)
        return reply

    async def _read_reply(self, line: bytes) -> AgiReply:
        while not self._events:
            if self._received:
                data, self._received = self._received, b""
            else:
                data = await self._connection.read()
                if not data:
                    # Asterisk only closes a FastAGI connection once the channel is gone.
                    self._hung_up = True
                    raise AgiHungUpError(f"{_shown(line)}: Asterisk closed the connection")
            self._events.extend(self._parser.feed(data))
        event = self._events.popleft()
        if isinstance(event, AgiHangup):
            self._hung_up = True
            raise AgiHungUpError(f"{_shown(line)}: caller hung up (HANGUP from Asterisk)")
        return event


def _peer(transport: asyncio.Transport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _peer_host(transport: asyncio.Transport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


def _close(transport: asyncio.Transport) -> None:
    # Replies are awaited after each write, so the buffer is normally empty and close() sends
    # FIN at once. Bytes still queued mean a peer that stopped reading: do not wait for it.
    if transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


class FastAgiServer:
    """Serves FastAGI sessions, dispatching on the script path of ``agi://host:port/<path>``.

    Use ``async with FastAgiServer(config, {"ivr": handler}) as server:`` or
    :meth:`start` / :meth:`stop`. A handler is ``async def handler(session) -> None``.
    """

    def __init__(self, config: FastAgiConfig, routes: Mapping[str, AgiHandler], *,
                 observer: AgiObserver | None = None) -> None:
        self._config = config
        self._routes = MappingProxyType(dict(routes))
        self._observer = observer or _Unobserved()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Connections whose deadlines the sweep checks, and the sweep's next run.
        self._watched: set[_Connection] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_every = _sweep_interval(config)
        # Connections refused before a session began: counted, one log line per interval.
        self._refusals: RefusalTally | None = None
        self._refusal_timer: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the FastAGI server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def serving(self) -> bool:
        """True while listening for Asterisk's connections (the line's readiness)."""
        return self._server is not None and self._server.is_serving()

    @property
    def active_sessions(self) -> int:
        """Connections currently being served."""
        return len(self._sessions)

    @property
    def refused(self) -> Mapping[str, int]:
        """Connections refused or dropped before a session began, by reason, since start."""
        return {} if self._refusals is None else dict(self._refusals.total)

    def _refuse(self, reason: str, transport: asyncio.Transport, detail: str) -> None:
        """Count a connection refused before its session began (logged in summaries)."""
        loop = asyncio.get_running_loop()
        if self._refusals is None:
            self._refusals = RefusalTally(log, self._config.refusal_log_interval, loop.time)
        self._refusals.record(reason, _peer(transport), detail)
        if self._refusal_timer is None and self._refusals.due is not None:
            self._refusal_timer = loop.call_at(self._refusals.due, self._flush_refusals)

    def _flush_refusals(self) -> None:
        self._refusal_timer = None
        tally = self._refusals
        if tally is None or tally.due is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= tally.due:
            tally.flush()
        if tally.due is not None:
            self._refusal_timer = loop.call_at(tally.due, self._flush_refusals)

    async def start(self) -> None:
        """Listen on the configured host and port only."""
        if self._server is not None:
            raise RuntimeError("the FastAGI server is already running")
        self._stopping = False
        limit = self._config.max_frame_bytes
        receive = memoryview(bytearray(_RECEIVE_BYTES))
        guard_accepts()  # out of descriptors: one log line, not a traceback per refusal
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self, limit, receive),
            host=self._config.host,
            port=self._config.port,
        )
        log.info("FastAGI listening on %s:%d", self._config.host, self.port)

    async def stop(self) -> None:
        """Stop accepting; let running sessions finish up to ``shutdown_timeout``, then cut them.

        A cut session's socket is closed, so Asterisk continues the dialplan (fails open).
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        self._stopping = True
        server.close()
        running = set(self._sessions)
        if running:
            _, pending = await asyncio.wait(running, timeout=self._config.shutdown_timeout)
            if pending:
                log.warning(
                    "FastAGI shutdown: cutting %d sessions still running after %g s",
                    len(pending),
                    self._config.shutdown_timeout,
                )
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=_CLOSE_TIMEOUT * 2)
        # Since Python 3.12 this also waits for every accepted connection; all are closed by
        # now, the bound only guards against a transport that never reports it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await server.wait_closed()
        if self._sweep_handle is not None and not self._watched:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        if self._refusal_timer is not None:
            self._refusal_timer.cancel()
            self._refusal_timer = None
        if self._refusals is not None:
            self._refusals.flush()  # what the last window counted, if anything;
            self._refusals.flush()  # then the window that opened is closed, empty

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _sweep(self) -> None:
        """Check every connection's deadlines; again later while there are connections."""
        self._sweep_handle = None
        if not self._watched:
            return
        loop = asyncio.get_running_loop()
        # The next sweep first: whatever one check does, the timeouts must go on working.
        self._sweep_handle = loop.call_later(self._sweep_every, self._sweep)
        now = loop.time()
        for connection in list(self._watched):
            try:
                connection.check(now)
            except Exception:
                # A session whose deadlines cannot be kept is ended (the dialplan fails open).
                log.exception("FastAGI deadline check failed: connection closed")
                self._watched.discard(connection)
                if connection.transport is not None:
                    connection.transport.abort()

    async def _on_connect(self, connection: _Connection) -> None:
        task = connection.task
        assert connection.transport is not None
        transport = connection.transport
        self._watched.add(connection)
        if self._sweep_handle is None:
            self._sweep_handle = connection.loop.call_later(self._sweep_every, self._sweep)
        try:
            if self._stopping:
                self._refuse("shutting_down", transport, "the server is shutting down")
                return
            access = self._config.access
            if access.networks and not access.peer_allowed(_peer_host(transport)):
                self._refuse("peer_not_allowed", transport, "not in agi_allowed_peers")
                return
            if len(self._sessions) >= self._config.max_sessions:
                self._refuse("session_cap", transport,
                             f"{len(self._sessions)} sessions already running "
                             f"(agi_max_sessions)")
                return
            if task is not None:
                self._sessions.add(task)
            await self._serve(connection)
        except asyncio.CancelledError:
            # Only stop() cancels a session, and it has logged that: end normally (the task
            # is nobody's to await, and a cancelled one would only make noise).
            pass
        except Exception:
            # _serve handles every expected failure; this is a bug, and must not kill the loop.
            log.exception("FastAGI session from %s failed unexpectedly", _peer(transport))
        finally:
            self._watched.discard(connection)
            if task is not None:
                self._sessions.discard(task)
            _close(transport)

    async def _serve(self, connection: _Connection) -> None:
        config = self._config
        assert connection.transport is not None
        transport = connection.transport  # its peer is named only in a log line
        # Reading the environment only waits in connection.read(), which the sweep ends.
        connection.deadline = connection.loop.time() + config.environment_timeout
        try:
            env, early_replies = await self._read_environment(connection)
        except TimeoutError:
            self._refuse("no_environment", transport,
                         f"no complete environment within {config.environment_timeout:g} s")
            return
        except AgiProtocolError as exc:
            self._refuse("protocol_error", transport, str(exc))
            return
        except ConnectionError as exc:
            self._refuse("lost", transport, f"lost while reading the environment: {exc}")
            return
        finally:
            connection.deadline = None
            connection.expired = False

        if not config.access.secret_matches(env.network_script):
            # Checked before the route: a caller without the secret learns nothing of them.
            self._refuse("bad_secret", transport,
                         f"script {env.script_path[:40]!r} without the AGI secret")
            return
        handler = self._routes.get(env.script_path)
        if handler is None:
            # The script without its query: that holds the secret.
            self._refuse("no_route", transport, f"no route for script {env.script_path[:40]!r}")
            return

        session = AgiSession(
            env,
            connection,
            command_timeout=config.command_timeout,
            max_frame_bytes=config.max_frame_bytes,
            received=early_replies,
            observer=self._observer,
            opening=config.opening,
            opening_implied_by=config.opening_implied_by,
        )
        started = time.monotonic()
        outcome = await self._run(handler, session, connection)
        self._observer.session_ended(env.script_path, outcome, time.monotonic() - started)

    async def _run(self, handler: AgiHandler, session: AgiSession, connection: _Connection) -> str:
        """Run one session's handler within the session limit; how it ended."""
        env = session.env
        # A timeout context without a timer of its own: the sweep expires it at the deadline.
        deadline = asyncio.timeout(None)
        connection.session_timeout = deadline
        connection.session_deadline = connection.loop.time() + self._config.session_timeout
        try:
            async with deadline:
                await handler(session)
        # A handler that speaks through telephony.agi.channel gets these as the IVR's own
        # exceptions, which the adapter raises as subclasses of both (see AgiChannel).
        except AgiHungUpError as exc:
            log.info("FastAGI session %s ended: %s", env.uniqueid, exc)
            return "hangup"
        except AgiSessionError as exc:
            log.warning("FastAGI session %s ended on a channel error: %s", env.uniqueid, exc)
            return "channel_error"
        except TimeoutError:
            if not deadline.expired():
                # The handler's own TimeoutError (a database call, say), not our deadline.
                log.exception(_HANDLER_FAILED, env.uniqueid, env.script_path)
                return "failed"
            log.warning(
                "FastAGI session %s cut after the %g s session limit; the dialplan continues",
                env.uniqueid,
                self._config.session_timeout,
            )
            return "timeout"
        except Exception:
            log.exception(_HANDLER_FAILED, env.uniqueid, env.script_path)
            return "failed"
        finally:
            connection.session_deadline = None
            connection.session_timeout = None
        log.debug("FastAGI session %s finished", env.uniqueid)
        return "completed"

    async def _read_environment(self, connection: _Connection) -> tuple[AgiEnvironment, bytes]:
        """The environment and any bytes that followed it in the same read."""
        parser = EnvironmentParser(max_bytes=self._config.max_frame_bytes)
        while True:
            # Asterisk writes the ~23 lines in one go: parsing what has arrived saves a read
            # per line. The connection holds back what passes its bound; the parser bounds the
            # block.
            chunk = await connection.read()
            if not chunk:
                return parser.feed_eof(), b""  # raises: the block is incomplete
            env = parser.feed(chunk)
            if env is not None:
                return env, parser.remainder
