"""The thin async layer: Asterisk's AMI in, call facts out to the store, strictly in order.

:class:`AmiListener` keeps one panoramisk ``Manager`` connected (reconnecting forever), puts
every AMI event on a queue, and has one consumer task turn them into facts with
:class:`~telephony.ami.tracker.CallTracker`, one event after the other. The consumer hands
the facts to the observers (the wallboard) at once and then to a bounded backlog
(:class:`~telephony.calls.backlog.FactBacklog`) that a second task, the persister, writes
through the sink in batches: the wallboard never waits for the database. Beyond the backlog's
bound facts go to the sink's on-disk spool (``FactSink.overflow``), never to unbounded memory.
On every (re)login the consumer first resyncs from Asterisk's snapshots (``CoreShowChannels``,
``Status`` with the ``IVR_*`` variables, ``QueueStatus``) and from the sink's open calls, so
calls that ended while we were away become ``CallVanished``.

The listener works on whichever loop starts it and is not thread-safe. The line runs it, with
the recorder, on a thread and loop of their own, and the main loop's services reach it through
:class:`~telephony.ami.threaded.ThreadedListener` (which thread owns what: see there).

The event queue (events received, not yet tracked) is unbounded on purpose: dropping an event
is never acceptable, and pausing reads instead would make Asterisk drop the session after its
``writetimeout`` (100 ms by default), losing events all the same. It stays short because
nothing on its consumer's path waits for I/O: tracking is CPU only (tens of thousands of
events a second), and the bound that matters, the database backlog, is the persister's. A
growing event queue is logged.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from panoramisk import Manager
from panoramisk.message import Message

from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.ami.framing import AmiProtocol
from telephony.ami.tracker import AmiEventError, CallTracker, QueueSnapshot
from telephony.calls.backfill import Backfill, History, not_before
from telephony.calls.backlog import DEFAULT_BOUND, FactBacklog
from telephony.calls.facts import CallFact, CallVanished
from telephony.calls.outages import OutageWatch
from telephony.calls.spool import SpooledCall
from telephony.secrets import ami_secret
from telephony.settings import Settings

logger = logging.getLogger("telephony.ami")

IVR_VARIABLES = (
    "IVR_CALL_ID",
    "IVR_LINE",
    "IVR_CHOICE",
    "IVR_OUTCOME",
    "IVR_CATEGORY",
    "IVR_SKILL",
    "IVR_QUEUE",
    "IVR_FIRST_KEY_MS",
    "IVR_INVALID_KEYS",
    "IVR_SCORE",
    "IVR_REASONS",
    "IVR_PRIORITY",
    "IVR_SCREENING",
    "IVR_SIP_CALL_ID",  # the carrier's Call-ID: the CallStarted a resync gives carries it
)
MAX_BATCH_FACTS = 500  # one transaction's worth when a backlog is recorded
# How long the recorder, idle until now, lets the facts that woke it gather before it writes.
# A batch is a transaction of 6-12 round trips whatever its size, and on a saturated machine
# each round trip waits for a core: in a 50/s surge the recorder wrote 60-170 batches of 1-20
# facts a second and was busy 70-94 % of the time. Fewer, larger batches; the wallboard does
# not wait for them (observers hear facts when tracked), and the database hears 20 ms later.
PERSIST_LINGER_SECONDS = 0.02
BACKLOG_WARNING = 10_000  # events waiting for the consumer; logged at each multiple
# Asterisk's answer to an action no loaded module has registered (yet).
UNKNOWN_ACTION = "Invalid/unknown command"
# How often the session is pinged, and how long a Ping may go unanswered before the session
# counts as not answering (the wallboard then says its picture may not be current). A hung
# Asterisk (stopped, or its manager deadlocked) keeps the TCP session open and sends
# nothing: with a Ping every ping interval (10 s) the board showed its old picture as live
# for 10-20 s, until the session was dropped. The drop itself still waits the ping interval:
# a resync in a surge costs more than a few seconds' doubt.
PING_EVERY_SECONDS = 2.0
PING_STALL_SECONDS = 2.0
LOADING_RETRIES = 20  # resyncs refused so in a row before the slow pace (a module missing)
HISTORY_TIMEOUT = 60.0  # seconds a resync's backfill may take (a 16 MB read at most)
TRACK_CHUNK = 200  # events tracked before the observers hear of them and others get the loop


class FactSink(Protocol):
    """Where facts go: the call store. It never raises for database outages; it spools."""

    async def record(self, facts: Sequence[CallFact]) -> None:
        """Store ``facts`` in order (called by one task, one batch at a time)."""

    def overflow(self, facts: Sequence[CallFact]) -> None:
        """Keep ``facts`` durably, without waiting, behind everything handed to ``record``
        (the backlog in memory is full); they are stored in order later."""

    async def open_calls(self) -> Mapping[str, Collection[str]]:
        """The calls the store still considers live (no end and no vanish recorded), each
        with the queues it has them waiting in (joined, not left)."""

    def spooled_calls(self) -> Mapping[str, SpooledCall]:
        """The calls the facts in the store's spool name, not yet written: what
        :meth:`open_calls` cannot say while the database is away."""


def _spooled_start(spooled: Mapping[str, SpooledCall], fact: CallFact) -> datetime | None:
    call = spooled.get(str(getattr(fact, "call_id", "")))
    return None if call is None else call.started_at


class FactObserver(Protocol):
    """Follows what the listener learns (the supervisor's wallboard). Both methods run in the
    listener's consumer, so they must return at once; an exception they raise is logged."""

    def recorded(self, facts: Sequence[CallFact]) -> None:
        """``facts`` were just tracked, in this order; the sink has them, or will soon: an
        observer that reads the store back uses :meth:`AmiListener.after_persisted`."""

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """A resync finished (its facts went to :meth:`recorded` first); ``queues`` is the
        whole queue picture, or ``None`` if Asterisk's reply could not be trusted whole."""


@dataclass(frozen=True)
class _Resync:
    """Queue marker: resync before the events after it, if the login is still current."""

    generation: int


def refused(exc: BaseException) -> bool:
    """Whether a failed connection attempt was refused by every address tried: a host name
    with several addresses (``localhost``: ::1 and 127.0.0.1) fails with one plain OSError
    naming each attempt's error, not a ConnectionRefusedError."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    codes = re.findall(r"\[Errno (\d+)\]", str(exc)) if isinstance(exc, OSError) else []
    return bool(codes) and all(int(code) == errno.ECONNREFUSED for code in codes)


@dataclass(frozen=True)
class _Gone:
    """Queue marker: Asterisk is gone (see ``AmiListener._connect_failed``); its calls are cut
    after the events before it, unless a session came back meanwhile."""


class _Stop:
    """Queue marker: the listener is stopping; everything before it is still recorded."""


class _Manager(Manager):  # type: ignore[misc]  # panoramisk ships no type hints
    """panoramisk's ``Manager`` with the fixes this line needs, each explained where it is."""

    pinger: asyncio.TimerHandle | None

    def __init__(
        self,
        *,
        reconnect_seconds: float,
        auth_retry_seconds: float,
        ping_interval: float,
        on_connect_failed: Callable[[BaseException], None],
        on_login_failed: Callable[[Message], None],
        on_heard: Callable[[], None] = lambda: None,
        **config: object,
    ) -> None:
        super().__init__(**config)
        self._on_heard = on_heard
        self.went_silent = False  # the last session was dropped for an unanswered Ping
        # panoramisk int()s these: 0.5 s would become 0 and reconnect or ping in a tight loop.
        self.reconnect_timeout = reconnect_seconds
        self.ping_interval = ping_interval
        self.ping_delay = self.ping_every = min(ping_interval, PING_EVERY_SECONDS)
        # The Pings sent on this session and not answered yet, oldest first, with when.
        self._unanswered: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._reconnect_seconds = reconnect_seconds
        self._auth_retry_seconds = auth_retry_seconds
        self._on_connect_failed = on_connect_failed
        self._on_login_failed = on_login_failed
        self.closing = False
        self._connecting: asyncio.Task[Any] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def connect(self) -> asyncio.Task[Any] | None:
        """Start one connection attempt, unless the manager was closed meanwhile."""
        # panoramisk schedules reconnects on timers nobody can cancel; after close() one of
        # them would quietly open a new session.
        if self.closing:
            return None
        self._connecting = super().connect()
        return self._connecting

    def connection_made(self, attempt: asyncio.Future[Any]) -> None:
        """Finish a connection attempt; on failure retry, whatever the exception."""
        if attempt.cancelled():
            return
        exc = attempt.exception()
        if self.closing:
            if exc is None:
                attempt.result()[0].close()
            return
        if exc is not None:
            # panoramisk handles only OSError here (anything else raises inside a loop
            # callback and never reconnects), and logs every attempt of a long outage.
            self._on_connect_failed(exc)
            self._schedule_reconnect()
            return
        self.went_silent = False
        super().connection_made(attempt)

    def login(self, future: asyncio.Future[Any]) -> bool:
        """panoramisk's login callback, plus a slow, quiet retry when the secret is wrong."""
        authenticated = bool(super().login(future))
        if authenticated:
            self.reconnect_timeout = self._reconnect_seconds
            return True
        # panoramisk has no notion of a refused login: it logs nothing, keeps pinging, and when
        # Asterisk hangs up reconnects at the normal pace, hammering it with a bad secret.
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        self.reconnect_timeout = self._auth_retry_seconds
        self._on_login_failed(future.result())
        self.protocol.transport.close()
        return False

    def connection_lost(self, exc: object) -> None:
        """Report the loss and reconnect on a timer that ``close()`` can cancel.

        ``exc`` may be the ``Shutdown`` event's Message: panoramisk's protocol closes the
        connection itself on that event and passes the event along as the "exception".
        """
        self._connected = False
        self._unanswered.clear()
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        # Called directly, not with call_soon as panoramisk does: the listener must stop
        # sending on this connection before anything else runs.
        self.on_disconnect(self, exc)
        self._schedule_reconnect()

    def ping(self) -> None:
        """Send a Ping and drop the connection if it goes unanswered for a ping interval.

        panoramisk fires its Ping and forgets it: a half-open socket (Asterisk gone without a
        FIN) is never noticed, and every unanswered Ping stays in ``responses`` for good.
        """
        self.pinger = self.loop.call_later(self.ping_every, self.ping)
        protocol = self.protocol
        if protocol is None or protocol.closed:
            return
        pong = protocol.send({"Action": "Ping"})
        pong.add_done_callback(self._ponged)
        self._unanswered.append((pong, time.monotonic()))
        self._timers["pong"] = self.loop.call_later(
            self.ping_interval, self._check_pong, protocol, pong
        )

    def _ponged(self, pong: asyncio.Future[Any]) -> None:
        """Asterisk answered a Ping: it was alive just now (calls without events were too),
        and the Pings sent before it are moot."""
        while self._unanswered:
            earlier, _sent = self._unanswered.popleft()
            if earlier is pong:
                break
        if not pong.cancelled() and pong.exception() is None:
            self._on_heard()

    @property
    def answering(self) -> bool:
        """No Ping of this session has waited for its answer over :data:`PING_STALL_SECONDS`
        (Asterisk answers them in order: the oldest unanswered one is the one that tells).
        Read from other threads (the wallboard's): it only reads a copy."""
        waiting = list(self._unanswered)
        return not waiting or time.monotonic() - waiting[0][1] <= PING_STALL_SECONDS

    def _check_pong(self, protocol: AmiProtocol, pong: asyncio.Future[Any]) -> None:
        if pong.done() or protocol.closed:
            return
        self.went_silent = True
        logger.warning(
            "no answer to AMI Ping within %.1f s; dropping the connection", self.ping_interval
        )
        # abort(), not close(): close() waits to flush a send buffer that will never drain.
        protocol.transport.abort()

    def _schedule_reconnect(self) -> None:
        if self.closing:
            return
        if "reconnect" in self._timers:
            self._timers["reconnect"].cancel()
        self._timers["reconnect"] = self.loop.call_later(self.reconnect_timeout, self.connect)

    def close(self) -> None:
        """Close for good: no reconnect, no pending attempt, no timer left behind."""
        self.closing = True
        for timer in self._timers.values():
            timer.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        super().close()


class AmiListener:
    """Follows every call through AMI and records the facts through ``sink``, in order.

    Use ``async with AmiListener(settings, sink):`` or ``start()``/``stop()``. The listener
    never gives up: connection failures retry every ``settings.ami_reconnect_seconds``, a
    refused login every ``auth_retry_seconds`` (logged once per streak of failures).
    """

    def __init__(
        self,
        settings: Settings,
        sink: FactSink,
        *,
        tracker: CallTracker | None = None,
        backlog_bound: int = DEFAULT_BOUND,
        action_timeout: float = 10.0,
        ping_interval: float = 10.0,
        auth_retry_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        self._outages = OutageWatch()  # what an Asterisk restart or crash cuts
        self._heard = 0.0  # wall clock of the last event or Ping answer on the AMI session
        # Asterisk's own log of the calls (queue_log): read on every resync for what the line
        # missed while it was away (telephony/calls/backfill.py); see backfill_from.
        self._history: History | None = None
        # The last resync could not read the store (open calls, or the backfill's check of what
        # it holds): the vanish watch asks for another once the store answers (vanish.py).
        self._resync_incomplete = False
        self._loading_retries = 0  # resyncs refused in a row while Asterisk loads modules
        self._resync_requested = False  # request_resync's marker waits in the event queue
        self._sink = sink
        self._tracker = tracker if tracker is not None else CallTracker()
        self._action_timeout = action_timeout
        self._ping_interval = ping_interval
        self._auth_retry_seconds = auth_retry_seconds
        self._events: asyncio.Queue[Message | _Resync | _Gone | _Stop] = asyncio.Queue()
        self._manager: _Manager | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._logged_in = asyncio.Event()
        self._ready = asyncio.Event()
        self._generation = 0
        self._inflight: set[asyncio.Future[Any]] = set()
        self._failing: str | None = None  # "connect" or "login" while attempts keep failing
        # Since when (monotonic) every connection attempt was refused, after a lost session;
        # None while Asterisk may be there. Whether its calls were declared cut since.
        self._refused_since: float | None = None
        self._declared_gone = False
        self._subscribers: dict[str, list[Callable[[Message], None]]] = {}
        self._observers: list[FactObserver] = []
        self._persisted_hooks: list[Callable[[Sequence[CallFact]], None]] = []
        # When each event not yet tracked arrived (monotonic), oldest first: the event lag.
        self._arrivals: deque[float] = deque()
        self._backlog = FactBacklog(backlog_bound)
        self._persister: asyncio.Task[None] | None = None
        self._more = asyncio.Event()  # the backlog got facts, or the listener is stopping
        self._idle = asyncio.Event()  # the backlog is empty and no batch is being written
        self._idle.set()
        self._closing = False
        # Facts of the batch being written, and of the hand-over in progress: counted before
        # they leave the backlog's count, so that facts_waiting, read from another thread (the
        # line's main loop), is never 0 while a fact is on its way to the sink.
        self._writing = 0
        self._handing = 0
        self._last_facts = float("-inf")  # time.monotonic() of the last facts handed over

    async def __aenter__(self) -> AmiListener:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def logged_in(self) -> bool:
        """True while an authenticated AMI session is up."""
        return self._logged_in.is_set()

    @property
    def answering(self) -> bool:
        """True unless Asterisk has left a Ping unanswered over :data:`PING_STALL_SECONDS`
        (hung, its session still open): what the session tells may not be current."""
        manager = self._manager
        return manager is None or manager.answering

    @property
    def events_waiting(self) -> int:
        """Events received and not yet tracked (their facts not yet seen by the observers)."""
        return len(self._arrivals)

    @property
    def event_lag_seconds(self) -> float:
        """How long the oldest event not yet tracked has waited; 0 when none waits."""
        try:
            oldest = self._arrivals[0]
        except IndexError:  # also when the consumer emptied it meanwhile (another thread)
            return 0.0
        return time.monotonic() - oldest

    @property
    def facts_waiting(self) -> int:
        """Facts tracked and not yet persisted: in the backlog, or in the batch being written."""
        return len(self._backlog) + self._writing + self._handing

    @property
    def fact_lag_seconds(self) -> float:
        """How long the oldest fact in the backlog has waited for the sink; 0 when none."""
        return self._backlog.lag_seconds()

    @property
    def seconds_since_facts(self) -> float:
        """How long ago the last call facts were tracked; infinite before the first."""
        return time.monotonic() - self._last_facts

    @property
    def facts_overflowed(self) -> int:
        """Facts sent to the sink's spool because the backlog was full (since start)."""
        return self._backlog.spilled

    @property
    def live_calls(self) -> frozenset[str]:
        """Calls whose start the listener has tracked and whose end it has not yet."""
        return self._tracker.live_calls

    async def start(self) -> None:
        """Connect (in the background) and start consuming events."""
        if self._manager is not None:
            raise RuntimeError("AmiListener already started")
        settings = self._settings
        self._manager = _Manager(
            reconnect_seconds=settings.ami_reconnect_seconds,
            auth_retry_seconds=self._auth_retry_seconds,
            ping_interval=self._ping_interval,
            on_connect_failed=self._connect_failed,
            on_login_failed=self._login_failed,
            on_heard=self._on_heard,
            # panoramisk falls back to asyncio.get_event_loop(), deprecated outside a loop.
            loop=asyncio.get_running_loop(),
            host=settings.ami_host,
            port=settings.ami_port,
            username=settings.ami_username,
            secret=ami_secret(settings),
            protocol_factory=AmiProtocol,
            on_login=self._on_login,
            on_disconnect=self._on_disconnect,
        )
        self._manager.register_event("*", self._on_event)
        self._persister = asyncio.create_task(self._persist(), name="ami-persister")
        self._consumer = asyncio.create_task(self._consume(), name="ami-consumer")
        self._manager.connect()

    async def stop(self) -> None:
        """Disconnect, then track and record (or spool) what is still queued, then return."""
        manager, consumer = self._manager, self._consumer
        if manager is None or consumer is None:
            return
        manager.close()
        self._on_disconnect(manager, None)
        self._events.put_nowait(_Stop())
        await consumer

    def subscribe(self, event: str, handler: Callable[[Message], None]) -> None:
        """Also hand every ``event`` (e.g. ``OriginateResponse``) to ``handler`` as it arrives;
        the tracker still sees it. ``handler`` runs inside the connection's data callback, so
        it must return at once (queue the event); an exception it raises is logged."""
        self._subscribers.setdefault(event.lower(), []).append(handler)

    def observe(self, observer: FactObserver) -> None:
        """Also tell ``observer`` every batch of facts as soon as it is tracked (before the
        sink has it), and every resync."""
        self._observers.append(observer)

    def backfill_from(self, history: History) -> None:
        """On every resync, first record what ``history`` (Asterisk's queue_log) holds that
        the line missed; its instants replace the resync's estimates (call it before start)."""
        self._history = history

    def after_persisted(self, hook: Callable[[Sequence[CallFact]], None]) -> None:
        """Also call ``hook`` with every batch once the sink has recorded (or spooled) it, for
        what reads the store back. It runs in the persister: it must return at once."""
        self._persisted_hooks.append(hook)

    async def wait_ready(self) -> None:
        """Wait until logged in and resynced (bound it with ``asyncio.timeout``)."""
        await self._ready.wait()

    async def send_action(self, action: Mapping[str, str]) -> Message:
        """Send one AMI action (QueueAdd, QueueRemove, QueuePause...) and return its response.

        Waits up to the action timeout for a login. Raises :class:`AmiActionError` if there
        is no session, no answer in time, or Asterisk answers with an error.
        """
        if "Action" not in action:
            raise AmiActionError(f"not an AMI action (no Action header): {sorted(action)!r}")
        try:
            async with asyncio.timeout(self._action_timeout):
                await self._logged_in.wait()
        except TimeoutError as exc:
            raise AmiActionError(f"{action['Action']}: not logged in to Asterisk") from exc
        # as_list=False: panoramisk guesses a list reply from the message, and QueueAdd's
        # "Added interface to queue" matches its guess, so the future would never complete.
        reply = await self._request(action, as_list=False)
        if not reply.success:
            raise AmiActionRefusedError(f"{action['Action']} refused: {reply.message}")
        return reply

    async def send_list_action(self, action: Mapping[str, str]) -> list[Message]:
        """Send an AMI action that answers with a list of events (QueueStatus...) and return
        them; waits for a login and raises like :meth:`send_action`."""
        if "Action" not in action:
            raise AmiActionError(f"not an AMI action (no Action header): {sorted(action)!r}")
        try:
            async with asyncio.timeout(self._action_timeout):
                await self._logged_in.wait()
        except TimeoutError as exc:
            raise AmiActionError(f"{action['Action']}: not logged in to Asterisk") from exc
        return await self._list_action(action)

    # -- manager callbacks (plain functions: they run inside data_received) ------------------

    def _connect_failed(self, exc: BaseException) -> None:
        """Log a failed connection attempt, once per outage."""
        if self._failing != "connect":
            logger.warning(
                "cannot connect to AMI at %s:%s (%s); retrying every %.1f s",
                self._settings.ami_host,
                self._settings.ami_port,
                exc,
                self._settings.ami_reconnect_seconds,
            )
        self._failing = "connect"
        self._refusal(refused(exc))

    def _refusal(self, refused: bool) -> None:
        """Count a streak of refused connections: Asterisk's host says nothing listens on its
        AMI port, which a live Asterisk always does. Once the streak has lasted
        ``vanish_check_seconds``, the calls the lost session carried are cut now rather than at
        Asterisk's return (telephony/calls/outages.py): a supervisor sees them ended and their
        callers on the call-back worklist. Anything else (a timeout: a frozen or unreachable
        host, whose calls may be alive) ends the streak."""
        if not refused:
            self._refused_since = None
            return
        now = time.monotonic()
        if self._refused_since is None:
            self._refused_since = now
        if (not self._declared_gone and not self._logged_in.is_set()
                and now - self._refused_since >= self._settings.vanish_check_seconds):
            self._declared_gone = True
            self._events.put_nowait(_Gone())

    def _login_failed(self, response: Message) -> None:
        """Log a refused login, once per streak of refusals."""
        if self._failing != "login":
            logger.error(
                "AMI login as %r to %s:%s refused (%s); check ami_username/ami_secret; "
                "retrying every %.1f s",
                self._settings.ami_username,
                self._settings.ami_host,
                self._settings.ami_port,
                response.message or response.response,
                self._auth_retry_seconds,
            )
        self._failing = "login"

    def _on_login(self, manager: _Manager) -> None:
        # panoramisk calls this with call_soon: the session may already be gone.
        if not manager.authenticated or manager.protocol.closed:
            return
        self._failing = None
        self._refused_since = None
        self._declared_gone = False
        self._generation += 1
        self._logged_in.set()
        logger.info(
            "logged in to AMI at %s:%s (Asterisk Call Manager %s)",
            self._settings.ami_host,
            self._settings.ami_port,
            manager.protocol.version,
        )
        self._events.put_nowait(_Resync(self._generation))

    def _on_heard(self) -> None:
        self._heard = time.time()

    def _session_lost(self, manager: _Manager) -> None:
        """Tell the outage watch when the session ended and until when Asterisk was alive:
        now if Asterisk closed it (a process killed closes its sockets at once), the last
        event or Ping answer if the listener dropped it for silence (telephony/calls/outages.py)."""
        now = time.time()
        alive = self._heard if manager.went_silent and self._heard else now
        self._outages.lost(datetime.fromtimestamp(now, UTC), datetime.fromtimestamp(alive, UTC))

    def _on_disconnect(self, manager: _Manager, _exc: object) -> None:
        if self._logged_in.is_set():
            self._session_lost(manager)
        was_up = self._logged_in.is_set()
        self._logged_in.clear()
        self._ready.clear()
        for future in list(self._inflight):
            if not future.done():
                future.set_exception(ConnectionError("AMI connection lost"))
        # panoramisk re-sends unanswered actions after the next FullyBooted: a QueuePause the
        # console already reported as failed must not happen minutes later, and the resync
        # runs afresh on every login anyway.
        manager.awaiting_actions.clear()
        if was_up and not manager.closing:
            logger.warning(
                "AMI connection lost; reconnecting in %.1f s", self._settings.ami_reconnect_seconds
            )

    def _on_event(self, _manager: _Manager, event: Message) -> None:
        self._on_heard()
        self._arrivals.append(time.monotonic())
        self._events.put_nowait(event)
        for handler in self._subscribers.get(str(event.get("Event", "")).lower(), ()):
            try:
                handler(event)
            except Exception:
                logger.exception("subscriber to %s failed", event.get("Event"))
        backlog = self._events.qsize()
        if backlog % BACKLOG_WARNING == 0:
            logger.warning("%d AMI events waiting to be tracked", backlog)

    # -- the consumer ------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Track events in order; hand their facts to the observers, then to the backlog.

        Nothing here waits for the database: the observers see a fact as soon as it is
        tracked. Markers end a chunk: facts before a resync or a stop reach the observers and
        the backlog before it runs.
        """
        try:
            stopping = False
            while not stopping:
                item = await self._events.get()
                facts: list[CallFact] = []
                taken = 0  # events whose facts are in ``facts``
                while True:
                    if isinstance(item, _Stop):
                        stopping = True
                        break
                    if isinstance(item, _Gone):
                        self._hand_over(facts)
                        facts = []
                        self._asterisk_gone()
                    elif isinstance(item, _Resync):
                        self._hand_over(facts)
                        facts = []
                        self._tracked_events(taken)
                        taken = 0
                        await self._resync(item)
                    else:
                        facts.extend(self._track(item))
                        taken += 1
                    if self._events.empty() or taken >= TRACK_CHUNK:
                        break
                    item = self._events.get_nowait()
                self._hand_over(facts)
                self._tracked_events(taken)
                # Queue.get() does not yield while events are queued: let the persister and
                # the rest of the line run between chunks of a surge.
                await asyncio.sleep(0)
        finally:
            self._closing = True
            self._more.set()
            if self._persister is not None:
                await self._persister

    def _asterisk_gone(self) -> None:
        if self._logged_in.is_set():
            return  # Asterisk answered again meanwhile: its greeting and resync decide
        self._outages.gone()
        facts = self._tracker.asterisk_gone()
        calls = sum(isinstance(fact, CallVanished) for fact in facts)
        if calls:
            logger.warning(
                "Asterisk at %s:%s has refused every connection for %.0f s: the %d calls it "
                "carried are recorded as cut, their callers on the call-back worklist",
                self._settings.ami_host, self._settings.ami_port,
                self._settings.vanish_check_seconds, calls)
        self._hand_over(facts)

    def _tracked_events(self, count: int) -> None:
        for _ in range(min(count, len(self._arrivals))):
            self._arrivals.popleft()

    def _hand_over(self, facts: Sequence[CallFact]) -> None:
        """Tell the observers, then queue for the sink (or spool what passes the bound)."""
        facts = self._outages.follow(facts)  # adds what an Asterisk restart or crash cut
        if not facts:
            return
        self._last_facts = time.monotonic()
        for observer in self._observers:
            try:
                observer.recorded(facts)
            except Exception:
                logger.exception("fact observer %r failed", observer)
        self._handing = len(facts) + len(self._backlog)
        try:
            spill = self._backlog.offer(facts)
            if not spill:
                self._idle.clear()
                self._more.set()
                return
            logger.warning("%d call facts waiting for the database: spooling them to disk",
                           len(spill))
            try:
                self._sink.overflow(spill)
            except Exception:
                # Like record(): the sink promises not to raise; losing the listener would
                # lose every later call too.
                logger.exception("the call store failed to spool %d facts", len(spill))
        finally:
            self._handing = 0
        self._persisted(spill)

    async def _persist(self) -> None:
        """Write the backlog through the sink, a batch at a time, until stopped and empty."""
        while True:
            self._writing = min(MAX_BATCH_FACTS, len(self._backlog))
            batch = self._backlog.take(MAX_BATCH_FACTS)
            if not batch:
                self._idle.set()
                if self._closing:
                    return
                self._more.clear()
                await self._more.wait()
                if not self._closing:
                    await asyncio.sleep(PERSIST_LINGER_SECONDS)
                continue
            try:
                await self._sink.record(batch)
            except Exception:
                # The sink promises not to raise; if it does, losing the listener would lose
                # every later call too.
                logger.exception("the call store failed to record %d facts", len(batch))
            finally:
                self._writing = 0
            self._persisted(batch)

    def _persisted(self, facts: Sequence[CallFact]) -> None:
        for hook in self._persisted_hooks:
            try:
                hook(facts)
            except Exception:
                logger.exception("after-persisted hook %r failed", hook)

    def _track(self, event: Message) -> list[CallFact]:
        try:
            return self._tracker.handle(event)
        except AmiEventError as exc:
            logger.warning("rejected AMI event: %s", exc)
        except Exception:
            # A tracker bug must cost one event, not every later call.
            logger.exception("could not track AMI event %r", str(event.get("Event"))[:40])
        return []

    def _resynced(self, queues: QueueSnapshot | None) -> None:
        for observer in self._observers:
            try:
                observer.resynced(queues)
            except Exception:
                logger.exception("fact observer %r failed on resync", observer)

    async def _resync(self, marker: _Resync) -> None:
        self._resync_requested = False
        if marker.generation != self._generation or not self._logged_in.is_set():
            return  # that session is gone; the next login brings its own marker
        try:
            channels = await self._list_action({"Action": "CoreShowChannels"})
            status = await self._list_action(
                {"Action": "Status", "Variables": ",".join(IVR_VARIABLES)}
            )
            queues = await self._list_action({"Action": "QueueStatus"})
        except AmiActionError as exc:
            self._resync_failed(exc)
            return
        self._resync_incomplete = False
        self._loading_retries = 0  # Asterisk answered every action: its modules are in
        backfill = await self._catch_up(channels)
        spooled: Mapping[str, SpooledCall] = {}
        open_calls: Mapping[str, Collection[str]] = {}
        try:
            async with asyncio.timeout(self._action_timeout):
                # What was tracked before is in the store first, as when the consumer wrote it
                # itself: the store's open calls must include the calls it has just learned of.
                await self._idle.wait()
                # Read before the store: a start the spool hands to the database meanwhile
                # is in one of the two.
                spooled = self._sink.spooled_calls()
                open_calls = await self._sink.open_calls()
            open_ids = set(open_calls)
        except Exception as exc:  # the store being down must not stop the tracking
            logger.warning(
                "could not read open calls from the store (%s); resyncing from memory only", exc
            )
            open_ids = set()
            self._resync_incomplete = True
        if self._history is not None and self._history.postponed:
            # The queue_log may end these calls properly (cause, talk) once the spool is
            # written; vanished now, they would keep the worse end. The vanish watch asks for
            # another resync, which backfills first and vanishes what is left.
            open_ids = set()
        # A call the spool names (this line restarted while the database was away) was
        # followed before: started again from Asterisk's snapshot it would have two starts
        # (the second at the Uniqueid's whole second) and joins, and what the resync
        # restores of it would be stamped before the start seen live.
        # A restarted line (its tracker empty) joining a call the store has waiting to that
        # queue again would write a second queue_joined for the same wait.
        outcome = self._tracker.resync(
            queues, channels, status, open_ids,
            spooled={call_id: call.waiting for call_id, call in spooled.items()},
            waiting={call_id: open_calls[call_id] for call_id in open_ids})
        for rejected in outcome.rejected:
            logger.warning("resync: %s", rejected)
        facts = [not_before(fact, _spooled_start(spooled, fact))
                 for fact in outcome.facts] if spooled else outcome.facts
        self._hand_over(facts if backfill is None else backfill.amend(facts))
        self._resynced(outcome.queues)
        logger.info(
            "AMI resync: %d live calls, %d facts", len(self._tracker.live_calls), len(outcome.facts)
        )
        self._ready.set()

    @property
    def resynced(self) -> bool:
        """Logged in, and this session's resync has run (whether or not it could read the
        store: :attr:`resync_incomplete` says)."""
        return self._ready.is_set()

    @property
    def resync_incomplete(self) -> bool:
        """The last resync could not read the store: what it restores from the store's side
        (calls to close as vanished, calls to backfill from the queue_log) waits for another."""
        return self._resync_incomplete

    def request_resync(self) -> None:
        """Resync from Asterisk's snapshots before the events received from now on (what
        the store was told may be incomplete: facts were lost on the way to it)."""
        if self._logged_in.is_set() and not self._resync_requested:
            self._resync_requested = True  # one at a time: it reads the store when it runs
            self._events.put_nowait(_Resync(self._generation))

    def vanish_check(self, channels: Sequence[Message], open_call_ids: Collection[str]) -> int:
        """Close as vanished the calls the store has open (``open_call_ids``, read before
        ``channels``, a whole ``CoreShowChannels`` reply) that Asterisk no longer has and that
        the tracker does not follow (telephony/ami/vanish.py); returns how many. It runs
        between two chunks of tracked events, so its facts go to the store in order."""
        outcome = self._tracker.vanished(channels, open_call_ids)
        for rejected in outcome.rejected:
            logger.warning("vanish check: %s", rejected)
        if outcome.facts:
            logger.warning("vanish check: %d open calls no longer exist in Asterisk; closed "
                           "as vanished", len(outcome.facts))
        self._hand_over(outcome.facts)
        return len(outcome.facts)

    async def _catch_up(self, channels: Sequence[Message]) -> Backfill | None:
        """Backfill what Asterisk logged while we were away, once what was tracked before is
        in the store (the backfill leaves out what the store holds). Never fatal: the tracking
        goes on without it, and the next resync reads the log from the same point."""
        if self._history is None:
            return None
        try:
            async with asyncio.timeout(HISTORY_TIMEOUT):
                await self._idle.wait()
                backfill = await self._history.catch_up(channels)
        except Exception:
            logger.exception("backfill from Asterisk's queue_log failed; the next resync "
                             "tries again")
            self._resync_incomplete = True
            return None
        # Put off (the spool not drained, the store away): the vanish watch asks again.
        self._resync_incomplete = self._resync_incomplete or self._history.postponed
        return backfill

    def _resync_failed(self, exc: AmiActionError) -> None:
        manager = self._manager
        if manager is None or manager.closing:
            return
        if not self._logged_in.is_set():
            logger.warning("AMI resync interrupted (%s); it runs again on the next login", exc)
            return
        if isinstance(exc, AmiActionRefusedError):
            # An action Asterisk does not know yet is a module still loading: Asterisk takes
            # AMI logins before app_queue has registered QueueStatus, and a restart's first
            # resync meets that. Retry at the normal pace for a while, not 30 s later.
            loading = UNKNOWN_ACTION in str(exc) and self._loading_retries < LOADING_RETRIES
            self._loading_retries += loading
            if not loading:
                # A permission problem will not fix itself in a second: the slow pace.
                manager.reconnect_timeout = self._auth_retry_seconds
        logger.error(
            "AMI resync failed (%s); reconnecting in %.1f s to try again",
            exc,
            manager.reconnect_timeout,
        )
        # Without a resync the tracker's picture cannot be trusted; a new login brings one.
        manager.protocol.transport.abort()

    async def _list_action(self, action: Mapping[str, str]) -> list[Message]:
        # as_list=None lets panoramisk see "EventList: start": with as_list=True an error
        # reply (one message) never completes the future and we would only see a timeout.
        reply = await self._request(action, as_list=None)
        if not isinstance(reply, list):
            raise AmiActionRefusedError(f"{action['Action']} refused: {reply.message}")
        return reply

    async def _request(self, action: Mapping[str, str], *, as_list: bool | None) -> Message:
        manager = self._manager
        name = action["Action"]
        # panoramisk would send it anyway: on an unauthenticated session (Asterisk answers
        # "Permission denied"), or before the first connection (AttributeError on None).
        if manager is None or not self._logged_in.is_set() or manager.protocol.closed:
            raise AmiActionError(f"{name}: not logged in to Asterisk")
        future: asyncio.Future[Any] = manager.send_action(dict(action), as_list=as_list)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        try:
            async with asyncio.timeout(self._action_timeout):
                return await future
        except TimeoutError as exc:
            raise AmiActionError(f"{name}: no answer within {self._action_timeout} s") from exc
        except ConnectionError as exc:
            raise AmiActionError(f"{name}: {exc}") from exc
        finally:
            if future.cancelled():
                # panoramisk keeps an action it got no answer for and hands it every later
                # message with its ActionID, for good: a late answer and, for an Async
                # Originate, its OriginateResponse, which then never reached the service
                # waiting for how its call-back or survey call went.
                protocol = manager.protocol
                for key in [k for k, pending in protocol.responses.items()
                            if pending.future is future]:
                    del protocol.responses[key]
