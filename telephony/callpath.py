"""The call path in a process of its own (telephony/callpath_child.py), as the line sees it:
started, watched, restarted and stopped from the main loop.

A process rather than a thread: a thread of the line shares the interpreter's lock and the
garbage collector with HTTP, the reports, the console, the AMI listener and the recorder, and
a caller's AGI reply waited behind them (a surge with a monthly report held the IVR's loop up
to 104 ms, where 20 ms is the bound). The IVR needs little of the line: a database pool of its
own, the watched menu and screening files, and a survey's answers, which cross the pipe.

Started with ``asyncio``'s subprocess support running ``python -m telephony.callpath_child``,
not :mod:`multiprocessing`: the child imports only the call path (a ``spawn`` child re-imports
the parent's ``__main__``, which is pytest's or a benchmark's), the line reads its frames and
sees it exit on the event loop it already runs (no blocking ``recv`` on a thread), and the
child's stdin closing is a parent-death signal for free.

How it fails: the child dies with the line (``PR_SET_PDEATHSIG`` and its stdin's end); a child
that ends, or sends nothing for :data:`HANG_SECONDS`, is killed and started again with one log
line, later and later if it keeps failing (:func:`restart_delay`). Meanwhile Asterisk finds no
FastAGI server and the dialplan fails open. A child started again gets the line's current
menu and screening configuration, to start from if their files do not load then (an edit the
line refused and kept its last good value against must not keep the IVR down). Nothing of
the line waits on the child: frames are read and written by the event loop, and a survey's
question is answered on the main loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from telephony.agi.server import AgiObserver
from telephony.callpath_wire import (
    CHILD_MESSAGES,
    Answer,
    Figures,
    FrameDecoder,
    Listening,
    LogLine,
    Probe,
    Start,
    StartFailed,
    Stop,
    SurveyCall,
    WireError,
    encode,
)
from telephony.core.errors import SiagaError
from telephony.core.text import os_reason
from telephony.db.connection import DatabaseUnavailable
from telephony.metrics.loops import LoopStalls
from telephony.settings import Settings
from telephony.surveys.route import SurveyAnswers

log = logging.getLogger("telephony.callpath")

CHILD_MODULE: Final = "telephony.callpath_child"
# From starting the process to its FastAGI server listening: the interpreter and the IVR's
# imports take well under a second; a loaded machine may take several.
START_SECONDS: Final = 30.0
# A child that sends nothing (not even its figures, every 0.2 s) for this long is hung.
HANG_SECONDS: Final = 5.0
# How often the supervisor looks; a look that comes this much late was the line's own stall,
# not the child's, and decides nothing.
WATCH_SECONDS: Final = 1.0
LATE_LOOK: Final = 0.5
# A child that served this long before it failed was not failing at once: restarted at once.
STABLE_SECONDS: Final = 30.0
MAX_RESTART_DELAY: Final = 10.0
# Beyond the drain, how long a stopping child may take to close its pool and exit.
EXIT_GRACE_SECONDS: Final = 5.0


class LineStartError(SiagaError):
    """A part of the line could not start; every part started before it has been stopped."""

    code = "line_start"


def restart_delay(failures: int) -> float:
    """Seconds before starting the child again after ``failures`` failures in a row (a child
    that served :data:`STABLE_SECONDS` resets the count): at once, then 0.5, 1, 2 ... up to
    :data:`MAX_RESTART_DELAY`, so a child that cannot live does not burn the line's CPU."""
    if failures <= 1:
        return 0.0
    return float(min(MAX_RESTART_DELAY, 0.5 * 2 ** (failures - 2)))


def exit_reason(returncode: int | None) -> str:
    """How a child ended, for the log."""
    if returncode is None:
        return "ended"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def child_environment() -> dict[str, str]:
    """The line's environment, with the line's own import path in front: the child imports
    the same code the line runs (a work tree, an installed copy, a test's path alike)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(entry or str(Path.cwd()) for entry in sys.path)
    return env


class _Child(asyncio.SubprocessProtocol):
    """One call path process, from the line's side."""

    def __init__(self, path: CallPath) -> None:
        self._path = path
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._decoder = FrameDecoder(CHILD_MESSAGES)
        self.transport: asyncio.SubprocessTransport | None = None
        # Listening, StartFailed, or None when the process ended before saying either.
        self.started: asyncio.Future[Listening | StartFailed | None] = loop.create_future()
        # Set when the process has exited and its pipes are closed: its exit status.
        self.ended: asyncio.Future[int | None] = loop.create_future()
        self.port: int | None = None
        self.heard = loop.time()
        self.listening_since: float | None = None
        self.questions: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        return None if self.transport is None else self.transport.get_pid()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd != 1 or isinstance(data, str):
            return
        self.heard = self._loop.time()
        try:
            messages = self._decoder.feed(data)
        except WireError as exc:
            log.error("the call path process %s sent a bad frame (%s); it is killed", self.pid,
                      exc)
            self.kill()
            return
        for message in messages:
            self._path._received(self, message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.started.done():
            self.started.set_result(None)
        if not self.ended.done():
            code = None if self.transport is None else self.transport.get_returncode()
            self.ended.set_result(code)
        for question in self.questions:
            question.cancel()

    def send(self, message: object) -> None:
        """Queue ``message`` for the child (dropped when it has gone)."""
        pipe = None if self.transport is None else self.transport.get_pipe_transport(0)
        if pipe is None or pipe.is_closing() or self.ended.done():
            return
        assert isinstance(pipe, asyncio.WriteTransport)
        pipe.write(encode(message))

    def kill(self) -> None:
        """SIGKILL, if it still runs."""
        if self.transport is not None and not self.ended.done():
            with contextlib.suppress(ProcessLookupError):
                self.transport.kill()

    async def end(self, within: float) -> None:
        """Wait up to ``within`` s for the process to exit, kill it if it has not, and
        release its transport. Always releases, even when cancelled."""
        try:
            await asyncio.wait([self.ended], timeout=within)
        finally:
            if not self.ended.done():
                self.kill()
                await asyncio.wait([asyncio.shield(self.ended)], timeout=EXIT_GRACE_SECONDS)
            if self.transport is not None:
                self.transport.close()


class CallPath:
    """The FastAGI server in a process of its own, started, watched and stopped from here.

    :meth:`start` returns once the child's server listens (or raises
    :class:`LineStartError`, with no child left); :meth:`stop` lets the sessions in progress
    finish (``shutdown_drain_seconds``), then ends the child. Both are called from the main
    loop. In between a child that dies or hangs is replaced. ``instrument`` names modules
    whose ``instrument()`` the child calls before it serves (tests set it before start).
    """

    def __init__(self, settings: Settings, *, surveys: SurveyAnswers,
                 observer: AgiObserver, stalls: LoopStalls | None = None,
                 last_good: Callable[[], Mapping[str, object]] = dict) -> None:
        self._settings = settings
        # The line's current menu and screening configuration, read at each start: a child
        # started after an edit the line refused starts from them (Start.last_good).
        self._last_good = last_good
        self._surveys = surveys
        self._observer = observer
        self._stalls = stalls
        self.instrument: tuple[str, ...] = ()
        self._child: _Child | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._probe: tuple[float, Callable[[float], None]] | None = None

    @property
    def serving(self) -> bool:
        """True while the child's FastAGI server listens (the line's readiness)."""
        child = self._child
        return child is not None and child.port is not None and not child.ended.done()

    @property
    def port(self) -> int:
        """The TCP port the FastAGI server bound."""
        child = self._child
        if child is None or child.port is None:
            raise RuntimeError("the call path is not running")
        return child.port

    @property
    def pid(self) -> int | None:
        """The call path process's id while there is one."""
        return None if self._child is None else self._child.pid

    async def start(self) -> None:
        """Start the child and wait until its FastAGI server listens."""
        if self._supervisor is not None:
            raise RuntimeError("the call path is already running")
        child = await self._spawn()
        self._child = child
        self._supervisor = asyncio.create_task(self._supervise(child), name="callpath-watch")

    async def stop(self) -> None:
        """Drain the FastAGI sessions and end the child; a no-op when not running."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        supervisor.cancel()
        await asyncio.wait([supervisor])
        if not supervisor.cancelled() and supervisor.exception() is not None:
            log.error("the call path's watch had failed: %s", supervisor.exception())
        child, self._child = self._child, None
        if child is None:  # between a failed child and its replacement
            return
        child.send(Stop())
        await child.end(self._settings.shutdown_drain_seconds + EXIT_GRACE_SECONDS)

    def probe_stalls(self, interval: float, sample: Callable[[float], None]) -> Callable[[], None]:
        """Have the child also probe its loop every ``interval`` s, each stall to ``sample``
        (benchmarks); returns what stops it."""
        self._probe = (interval, sample)
        if self._child is not None:
            self._child.send(Probe(interval))

        def stop() -> None:
            self._probe = None
            if self._child is not None:
                self._child.send(Probe(None))

        return stop

    async def _spawn(self) -> _Child:
        """A new child, listening; :class:`LineStartError` (and no child) when it cannot."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        child = _Child(self)
        # From the main loop's thread: the kernel's parent-death signal follows the thread
        # that started the child, and this one lives as long as the line.
        try:
            await loop.subprocess_exec(
                lambda: child, sys.executable, "-m", CHILD_MODULE, str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
                env=child_environment())
        except OSError as exc:
            raise LineStartError(
                f"jalur panggilan tidak dapat dijalankan: {os_reason(exc)}") from exc
        reason = ""
        try:
            child.send(Start(settings, logging.getLogger().getEffectiveLevel(),
                             self.instrument, self._last_good()))
            if self._probe is not None:
                child.send(Probe(self._probe[0]))
            try:
                async with asyncio.timeout(START_SECONDS):
                    outcome = await asyncio.shield(child.started)
            except TimeoutError:
                outcome = None
                reason = f"tidak siap dalam {START_SECONDS:g} detik"
        except BaseException:
            await child.end(0)
            raise
        if isinstance(outcome, Listening):
            return child
        await child.end(0 if reason else EXIT_GRACE_SECONDS)
        where = f"{settings.agi_host}:{settings.agi_port}"
        if isinstance(outcome, StartFailed):
            if outcome.errno is not None:
                # Without it no call reaches the IVR: a taken address stops the line, with one
                # line that names it.
                raise LineStartError(f"FastAGI tidak dapat mendengarkan di {where}: "
                                     f"{outcome.reason}")
            reason = outcome.reason.replace("\n", " ")
        elif not reason:
            reason = f"prosesnya berhenti ({exit_reason(child.ended.result())})"
        raise LineStartError(f"jalur panggilan (FastAGI {where}) tidak dapat dimulai: {reason}")

    async def _supervise(self, child: _Child) -> None:
        """Replace the child whenever it ends or hangs, until cancelled (by :meth:`stop`)."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            reason = await self._watch(child)
            since = child.listening_since
            served = 0.0 if since is None else loop.time() - since
            failures = 1 if served >= STABLE_SECONDS else failures + 1
            self._child = None
            log.error("the call path process %s %s; starting another (calls fail open until "
                      "it listens)", child.pid, reason)
            await child.end(0)
            child = await self._respawn(failures)
            self._child = child

    async def _respawn(self, failures: int) -> _Child:
        while True:
            delay = restart_delay(failures)
            if delay:
                await asyncio.sleep(delay)
            try:
                return await self._spawn()
            except Exception as exc:  # whatever it was, the line must go on trying
                failures += 1
                log.error("the call path process could not start again, next try in %g s: %s",
                          restart_delay(failures), exc)

    async def _watch(self, child: _Child) -> str:
        """Until ``child`` ends, or hangs (then it is killed): how it went."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            done, _ = await asyncio.wait([child.ended], timeout=WATCH_SECONDS)
            if done:
                return exit_reason(child.ended.result())
            now = loop.time()
            if now - before > WATCH_SECONDS + LATE_LOOK:
                continue  # the line's own loop was held: the silence may be ours
            if now - child.heard > HANG_SECONDS:
                child.kill()
                await asyncio.wait([child.ended], timeout=EXIT_GRACE_SECONDS)
                return f"sent nothing for {HANG_SECONDS:g} s (hung) and was killed"

    def _received(self, child: _Child, message: object) -> None:
        """A frame of ``child``'s (on the main loop)."""
        if isinstance(message, Figures):
            self._figures(message)
        elif isinstance(message, LogLine):
            _log_from(child, message)
        elif isinstance(message, SurveyCall):
            question = asyncio.create_task(self._answer(child, message),
                                           name="callpath-survey")
            child.questions.add(question)
            question.add_done_callback(child.questions.discard)
        elif isinstance(message, Listening):
            child.port = message.port
            child.listening_since = asyncio.get_running_loop().time()
            if not child.started.done():
                child.started.set_result(message)
        elif isinstance(message, StartFailed) and not child.started.done():
            child.started.set_result(message)

    def _figures(self, figures: Figures) -> None:
        for route, outcome, seconds in figures.sessions:
            self._observer.session_ended(route, outcome, seconds)
        for verb, seconds in figures.commands:
            self._observer.command_answered(verb, seconds)
        if self._stalls is not None:
            for stall in figures.stalls:
                self._stalls.observe("callpath", stall)
        if self._probe is not None:
            for stall in figures.probe:
                self._probe[1](stall)
        if figures.dropped:
            log.warning("the call path process dropped %d figures and log records: the line "
                        "did not read them in time", figures.dropped)

    async def _answer(self, child: _Child, call: SurveyCall) -> None:
        """Ask the survey service on the main loop; the answer goes back to ``child``."""
        try:
            if call.finish:
                await self._surveys.finish(call.survey_id, call.attempt, call.rating)
                answer = Answer(call.call)
            else:
                answer = Answer(call.call, await self._surveys.begin(call.survey_id,
                                                                      call.attempt))
        except DatabaseUnavailable as exc:
            answer = Answer(call.call, unavailable=str(exc))
        except Exception as exc:
            log.exception("survey %d attempt %d: the survey service failed", call.survey_id,
                          call.attempt)
            answer = Answer(call.call, failed=str(exc))
        child.send(answer)


def _log_from(child: _Child, line: LogLine) -> None:
    """A child's log record, through the line's own loggers and handlers."""
    logger = logging.getLogger(line.name)
    if not logger.isEnabledFor(line.level):
        return
    record = logger.makeRecord(line.name, line.level, "(call path)", 0, line.message, (), None)
    record.exc_text = line.exc_text
    if line.created:
        record.created = line.created
        record.msecs = (line.created - int(line.created)) * 1000
    record.process = child.pid
    record.processName = "call-path"
    logger.handle(record)
