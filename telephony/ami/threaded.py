"""The AMI listener on a thread and event loop of its own, as the main loop's services see it.

Which thread owns what:

- The AMI thread (a :class:`~telephony.core.threads.LoopThread` named ``ami``) owns the
  :class:`~telephony.ami.listener.AmiListener` (panoramisk's connection, the decoder, the
  tracker, the outage watch, the event queue and the backlog), the recorder that writes its
  facts (its spool, its flusher, and the database pool it writes through), the backfill from
  Asterisk's queue_log and the vanish watch (telephony/app.py puts them there). Their methods
  run only on that loop.
- The main loop owns everything else: HTTP, the console, the reports, and the services that
  use the listener (desks, transfers, supervision, surveys, call-backs, the admin, the peer
  watch, the wallboard, the call counter). They use :class:`ThreadedListener` as they used
  the listener, and it owns their observers, hooks and subscribers.
- Read across: the main thread reads plain attributes of the AMI thread's objects (logged in,
  events and facts waiting, lags, the spool's depth and alarms) for health, readiness and
  metrics; such a read is at worst one scrape's figure out of date, never a change of state.

How things cross: an action (the ports of telephony/ami/actions.py) runs on the AMI loop and
its reply is awaited on the main loop (:func:`~telephony.core.threads.in_loop`). Facts,
resyncs, subscribed events and the batches the recorder has persisted come back with
``call_soon_threadsafe`` as soon as the AMI thread has them (facts as soon as they are
tracked, never after the database has them). The main loop runs such callbacks first in,
first out, so each observer sees the facts in the listener's order, exactly once, and a
subscriber sees an event before the facts tracked from it, as when everything shared one loop.

Why a thread and not a process: what the listener produces, facts in order within
milliseconds to a dozen observers and the replies of the services' actions, crosses a thread
by reference, and the spool's order and exactly-once guarantees stay those of one process;
across processes every fact would be serialized twice and the line would need a protocol and
a supervisor for a second process. The cost of a thread is the interpreter's lock: Python code
on the main loop yields it within the switch interval (1 ms, telephony/app.py) once this
thread asks, and a main loop that waits (on the database, or blocked in C) does not hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from panoramisk.message import Message

from telephony.ami.actions import AmiActionError
from telephony.ami.listener import AmiListener, FactObserver
from telephony.ami.tracker import QueueSnapshot
from telephony.calls.facts import CallFact
from telephony.core.threads import LoopThread

logger = logging.getLogger("telephony.ami")

T = TypeVar("T")


class _Crossing:
    """The listener's observer on the AMI thread: hands each batch to the main loop."""

    def __init__(self, to_main: Callable[..., None],
                 recorded: Callable[[Sequence[CallFact]], None],
                 resynced: Callable[[QueueSnapshot | None], None]) -> None:
        self._to_main = to_main
        self._recorded = recorded
        self._resynced = resynced

    def recorded(self, facts: Sequence[CallFact]) -> None:
        """Tracked just now: to the main loop's observers (a copy: the list is the
        listener's)."""
        self._to_main(self._recorded, tuple(facts))

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """A resync finished: to the main loop's observers, after its facts."""
        self._to_main(self._resynced, queues)


class ThreadedListener:
    """An :class:`AmiListener` running on ``thread``, used from the main loop.

    It offers the listener's interface to the main loop's services: the AMI actions
    (:meth:`send_action`, :meth:`send_list_action`), :meth:`observe`, :meth:`after_persisted`,
    :meth:`subscribe`, :meth:`wait_ready`, :meth:`request_resync`, and the figures. Build it
    before the listener starts and do not touch ``listener`` from the main loop afterwards
    (what must be set on it before start, such as ``backfill_from``, is set before).
    """

    def __init__(self, listener: AmiListener, thread: LoopThread) -> None:
        self._listener = listener
        self._thread = thread
        self._main: asyncio.AbstractEventLoop | None = None
        # The main loop's: observers, hooks and subscribers, called there.
        self._observers: list[FactObserver] = []
        self._persisted_hooks: list[Callable[[Sequence[CallFact]], None]] = []
        self._subscribers: dict[str, list[Callable[[Message], None]]] = {}
        listener.observe(_Crossing(self._to_main, self._recorded, self._resynced))
        listener.after_persisted(self._persisted_on_thread)

    @property
    def thread(self) -> LoopThread:
        """The thread the listener runs on (with the recorder and what writes with it)."""
        return self._thread

    # -- lifecycle (from the main loop) ---------------------------------------------------

    async def start(self) -> None:
        """Connect and start consuming events, on the AMI thread (already started)."""
        self._main = asyncio.get_running_loop()
        await self._thread.run(self._listener.start())

    async def stop(self) -> None:
        """Stop the listener on its thread: what it had received is tracked and handed to
        the recorder (and the facts to the main loop's observers) before this returns."""
        if self._thread.loop is None:
            return
        await self._thread.run(self._listener.stop())

    # -- the port the services use --------------------------------------------------------

    async def send_action(self, action: Mapping[str, str]) -> Message:
        """See :meth:`AmiListener.send_action`."""
        return await self._on_thread(self._listener.send_action(action))

    async def send_list_action(self, action: Mapping[str, str]) -> list[Message]:
        """See :meth:`AmiListener.send_list_action`."""
        return await self._on_thread(self._listener.send_list_action(action))

    async def wait_ready(self) -> None:
        """Wait until logged in and resynced (bound it with ``asyncio.timeout``)."""
        await self._on_thread(self._listener.wait_ready())

    def request_resync(self) -> None:
        """See :meth:`AmiListener.request_resync`."""
        self._thread.call(self._listener.request_resync)

    def observe(self, observer: FactObserver) -> None:
        """Also tell ``observer``, on the main loop, every batch of facts as soon as it is
        tracked (before the recorder has it), and every resync."""
        self._observers.append(observer)

    def after_persisted(self, hook: Callable[[Sequence[CallFact]], None]) -> None:
        """Also call ``hook``, on the main loop, with every batch once the recorder has
        written (or spooled) it. It must return at once."""
        self._persisted_hooks.append(hook)

    def subscribe(self, event: str, handler: Callable[[Message], None]) -> None:
        """Also hand every ``event`` to ``handler``, on the main loop, as it arrives (before
        the facts tracked from it). It must return at once; an exception it raises is
        logged."""
        name = event.lower()
        handlers = self._subscribers.get(name)
        if handlers is None:
            self._subscribers[name] = handlers = []
            # Only the events someone subscribed to cross: not every event of a surge.
            forward = functools.partial(self._event_on_thread, name)
            if self._thread.loop is None:
                self._listener.subscribe(name, forward)
            else:
                # Before any action sent after this call (both go through the loop in order).
                self._thread.call(self._listener.subscribe, name, forward)
        handlers.append(handler)

    # -- figures (plain reads of the AMI thread's state) ----------------------------------

    @property
    def logged_in(self) -> bool:
        """True while an authenticated AMI session is up."""
        return self._listener.logged_in

    @property
    def answering(self) -> bool:
        """True unless Asterisk has left a Ping unanswered for a while (hung)."""
        return self._listener.answering

    @property
    def events_waiting(self) -> int:
        """Events received and not yet tracked."""
        return self._listener.events_waiting

    @property
    def event_lag_seconds(self) -> float:
        """How long the oldest event not yet tracked has waited; 0 when none waits."""
        return self._listener.event_lag_seconds

    @property
    def facts_waiting(self) -> int:
        """Facts tracked and not yet persisted."""
        return self._listener.facts_waiting

    @property
    def fact_lag_seconds(self) -> float:
        """How long the oldest fact in the backlog has waited for the recorder."""
        return self._listener.fact_lag_seconds

    @property
    def seconds_since_facts(self) -> float:
        """How long ago the last call facts were tracked; infinite before the first."""
        return self._listener.seconds_since_facts

    @property
    def facts_overflowed(self) -> int:
        """Facts sent to the spool because the backlog was full (since start)."""
        return self._listener.facts_overflowed

    @property
    def live_calls(self) -> frozenset[str]:
        """Calls whose start the listener has tracked and whose end it has not yet."""
        return self._listener.live_calls

    @property
    def resync_incomplete(self) -> bool:
        """The last resync could not read the store."""
        return self._listener.resync_incomplete

    # -- crossing ---------------------------------------------------------------------------

    async def _on_thread(self, work: Coroutine[Any, Any, T]) -> T:
        if self._thread.loop is None:
            work.close()
            raise AmiActionError("the AMI listener is not running")
        return await self._thread.run(work)

    def _to_main(self, callback: Callable[..., None], *args: object) -> None:
        """On the AMI thread: run ``callback(*args)`` on the main loop, after what was
        handed to it before."""
        main = self._main
        if main is None:
            return
        # The main loop closed: the line is gone, and so is anyone to tell.
        with contextlib.suppress(RuntimeError):
            main.call_soon_threadsafe(callback, *args)

    def _persisted_on_thread(self, facts: Sequence[CallFact]) -> None:
        self._to_main(self._persisted, tuple(facts))

    def _event_on_thread(self, name: str, event: Message) -> None:
        self._to_main(self._deliver, name, event)

    # -- on the main loop -------------------------------------------------------------------

    def _recorded(self, facts: Sequence[CallFact]) -> None:
        for observer in self._observers:
            try:
                observer.recorded(facts)
            except Exception:
                logger.exception("fact observer %r failed", observer)

    def _resynced(self, queues: QueueSnapshot | None) -> None:
        for observer in self._observers:
            try:
                observer.resynced(queues)
            except Exception:
                logger.exception("fact observer %r failed on resync", observer)

    def _persisted(self, facts: Sequence[CallFact]) -> None:
        for hook in self._persisted_hooks:
            try:
                hook(facts)
            except Exception:
                logger.exception("after-persisted hook %r failed", hook)

    def _deliver(self, name: str, event: Message) -> None:
        for handler in self._subscribers.get(name, ()):
            try:
                handler(event)
            except Exception:
                logger.exception("subscriber to %s failed", event.get("Event"))
