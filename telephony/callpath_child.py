"""The call path's own process: the FastAGI IVR (and the survey route), started and watched by
the line (telephony/callpath.py) as ``python -m telephony.callpath_child <line's pid>``.

It owns what a caller's AGI exchange needs and nothing else: the FastAGI listening socket, a
small database pool of its own (the pre-queue prank score's history), and the menu and the
screening weights, read from the same watched files as the line. Its event loop shares no
interpreter lock and no garbage collector with HTTP, the reports, the console, the AMI
listener or the recorder, so none of them can hold a caller's reply.

What crosses to the line, over the child's stdout (telephony/callpath_wire.py): that it
listens (or why it could not), the AGI timings and the loop's stalls a few times a second (the
line's metrics; also the sign it is alive), its log records (the line's handlers write them),
and a survey's questions for the line's survey service, whose answers come back over stdin
with the line's orders (stop, probe).

Never orphaned: the kernel kills it when the line dies (``PR_SET_PDEATHSIG``), and it exits at
once when its stdin closes (the line is gone), so a killed line leaves no process holding the
FastAGI port. SIGTERM (a service manager stopping the whole group) drains as the line's stop
does; SIGINT (Ctrl-C in a terminal reaches the whole group) is left to the line.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import importlib
import itertools
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Final

from ivr.flow import run_ivr
from ivr.menu import IvrMenu
from ivr.source import line_menu_source
from telephony.agi.channel import OPENED_BY_MENU, OPENING, AgiChannel
from telephony.agi.server import AgiSession, FastAgiConfig, FastAgiServer
from telephony.callpath_wire import (
    MAX_LOG_TEXT,
    Answer,
    FigureBatch,
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
from telephony.core.watched import WatchedFile
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.metrics.loops import PROBE_INTERVAL, probe
from telephony.screening.ivr import PreQueueScoring, PreQueueScreener
from telephony.screening.score import ScoreConfig
from telephony.screening.service import ScreeningService, line_screening_source
from telephony.settings import Settings
from telephony.surveys.route import SurveyApplication
from telephony.surveys.store import Survey

log = logging.getLogger("telephony.callpath")

# The IVR's pool: one pre-queue history query per arriving call, a few milliseconds each, so a
# handful of connections carries a surge.
CALLPATH_POOL_SIZE: Final = 4
# How often the figures go to the line (and so how often it hears the child is alive).
FIGURES_INTERVAL: Final = 0.2
# Figures and log records wait in memory while the line does not read them (its loop held by a
# report); past this many bytes they are dropped and counted, never the caller's work.
OUT_BOUND: Final = 4 << 20
# How long the last frames may take to reach the line when the child exits.
FLUSH_SECONDS: Final = 2.0
_PR_SET_PDEATHSIG: Final = 1


class IvrApplication:
    """The FastAGI route ``ivr``: runs the current menu's flow on the caller's channel, with
    the caller scored for prank screening while the greeting plays."""

    def __init__(self, menus: WatchedFile[IvrMenu], scoring: PreQueueScoring,
                 screening_timeout: float) -> None:
        self._menus = menus
        self._scoring = scoring
        self._screening_timeout = screening_timeout

    async def handle(self, session: AgiSession) -> None:
        """One call. The dialplan passes the line (112/119) as the first AGI argument."""
        env = session.env
        line = env.get("agi_arg_1") or env.get("agi_dnid") or ""
        screener = PreQueueScreener(
            self._scoring, line, env.get("agi_callerid", ""), self._screening_timeout,
            call_id=env.get("agi_uniqueid", ""),
        )
        try:
            await run_ivr(AgiChannel(session), self._menus.current(), line, screener)
        finally:
            await screener.close()


class _Closed(asyncio.Protocol):
    """The stdout pipe's protocol: tells when the last frame has gone."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class Channel:
    """Frames to the line. Never blocks: the pipe is written by the event loop, and what the
    line cannot take yet waits in memory, up to :data:`OUT_BOUND` for what may be dropped."""

    def __init__(self, transport: asyncio.WriteTransport, closed: _Closed) -> None:
        self._transport = transport
        self._closed = closed

    @classmethod
    async def open(cls, fd: int) -> Channel:
        """The channel over the pipe ``fd``."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(
            _Closed, os.fdopen(fd, "wb", buffering=0))
        return cls(transport, protocol)

    def send(self, message: object, *, essential: bool = True) -> bool:
        """Queue ``message``; ``False`` when it was not (the line is gone, or it is not
        ``essential`` and the line is behind)."""
        transport = self._transport
        if transport.is_closing():
            return False
        if not essential and transport.get_write_buffer_size() > OUT_BOUND:
            return False
        transport.write(encode(message))
        return True

    async def close(self) -> None:
        """Send what is queued (bounded by :data:`FLUSH_SECONDS`), then close."""
        self._transport.close()
        try:
            async with asyncio.timeout(FLUSH_SECONDS):
                await self._closed.closed
        except TimeoutError:
            self._transport.abort()


class ForwardedLog(logging.Handler):
    """Sends the child's log records to the line, whose handlers write them."""

    def __init__(self, channel: Channel, figures: FigureBatch) -> None:
        super().__init__()
        self._channel = channel
        self._figures = figures
        self._format = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        """Forward ``record``; one the line is too far behind to take is counted."""
        try:
            exc_text = (self._format.formatException(record.exc_info)[:MAX_LOG_TEXT]
                        if record.exc_info else None)
            line = LogLine(record.name, record.levelno, record.getMessage()[:MAX_LOG_TEXT],
                           exc_text, record.created)
            if not self._channel.send(line, essential=record.levelno >= logging.ERROR):
                self._figures.dropped += 1
        except Exception:
            self.handleError(record)


class SurveysOverPipe:
    """The line's survey service (telephony/surveys/service.py), asked over the pipe."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._calls = itertools.count(1)
        self._pending: dict[int, asyncio.Future[bool | None]] = {}

    async def begin(self, survey_id: int, attempt: int) -> bool:
        """See :meth:`telephony.surveys.service.SurveyService.begin`."""
        return bool(await self._ask(survey_id, attempt, finish=False, rating=None))

    async def finish(self, survey_id: int, attempt: int, rating: int | None) -> Survey | None:
        """See :meth:`telephony.surveys.service.SurveyService.finish`. The survey route only
        waits for it to be stored, so the closed survey itself does not cross back."""
        await self._ask(survey_id, attempt, finish=True, rating=rating)
        return None

    async def _ask(self, survey_id: int, attempt: int, *, finish: bool,
                   rating: int | None) -> bool | None:
        call = next(self._calls)
        answer: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._pending[call] = answer
        try:
            if not self._channel.send(SurveyCall(call, survey_id, attempt, finish, rating)):
                raise DatabaseUnavailable("the line is not there to store the survey")
            return await answer
        finally:
            self._pending.pop(call, None)

    def answered(self, message: Answer) -> None:
        """The line's answer to one of the questions."""
        answer = self._pending.get(message.call)
        if answer is None or answer.done():
            return
        if message.unavailable is not None:
            answer.set_exception(DatabaseUnavailable(message.unavailable))
        elif message.failed is not None:
            answer.set_exception(RuntimeError(f"the survey service failed: {message.failed}"))
        else:
            answer.set_result(message.value)


class Orders(asyncio.Protocol):
    """The stdin pipe's protocol: the line's frames after :class:`Start`."""

    def __init__(self, decoder: FrameDecoder, stop: asyncio.Event, surveys: SurveysOverPipe,
                 figures: FigureBatch) -> None:
        self._decoder = decoder
        self._stop = stop
        self._surveys = surveys
        self._figures = figures
        self._probe: asyncio.Task[None] | None = None

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except WireError as exc:
            log.error("the call path process read a bad frame from the line (%s); it stops", exc)
            self._stop.set()
            return
        self.obey(messages)

    def obey(self, messages: list[object]) -> None:
        """Act on the line's ``messages``, in order."""
        for message in messages:
            if isinstance(message, Stop):
                self._stop.set()
            elif isinstance(message, Answer):
                self._surveys.answered(message)
            elif isinstance(message, Probe):
                self._set_probe(message.interval)

    def eof_received(self) -> bool | None:
        self._gone()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        if self._stop.is_set():
            return
        # The line died (its end of the pipe closed with it): nobody is left to stop this
        # process, to restart it, or to read its figures, and the port must be free for the
        # line that comes next. Sessions in progress fail open in the dialplan.
        os._exit(0)

    def _set_probe(self, interval: float | None) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if interval is not None and interval > 0:
            self._probe = asyncio.create_task(probe(interval, self._figures.probe.append),
                                              name="callpath-bench-probe")

    def close(self) -> None:
        """End the probe, if any."""
        self._set_probe(None)


def read_start(fd: int, decoder: FrameDecoder) -> tuple[Start, list[object]]:
    """The first frame, read before the event loop starts (what the child serves with), and
    any frames that came with it."""
    while True:
        data = os.read(fd, 65536)
        if not data:
            raise SystemExit(0)  # the line went away before saying anything
        messages = decoder.feed(data)
        if messages:
            start, *rest = messages
            if not isinstance(start, Start):
                raise SystemExit(f"the call path expected Start, got {type(start).__name__}")
            return start, rest


def die_with(parent: int) -> None:
    """Have the kernel kill this process when the line's thread that started it ends; exit
    at once when the line is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed stdin still ends the process
        pass
    if os.getppid() != parent:
        raise SystemExit(0)


def raise_priority(settings: Settings) -> None:
    """Real-time round robin for the whole process (``callpath_rt_priority``; 0: normal).

    Not a lower nice value: nice weighs a process only against its own session's or cgroup's
    (Asterisk runs in a session, a container or a systemd unit of its own), so it cannot put
    the callers' process ahead of Asterisk. The process spends little CPU; if it ever spun,
    the kernel's real-time throttling (sched_rt_runtime_us) still leaves the rest of each
    second to everyone else.
    """
    priority = settings.callpath_rt_priority
    if priority == 0:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except OSError as exc:
        log.warning("call path runs at normal priority, real-time priority %d refused (%s; "
                    "a container needs CAP_SYS_NICE)", priority, os.strerror(exc.errno or 0))


def fastagi_server(settings: Settings, database: Database, surveys: SurveysOverPipe,
                   figures: FigureBatch, last_good: Mapping[str, object] | None = None
                   ) -> FastAgiServer:
    """The IVR and the survey route over this process's pool and watched files; each file
    that does not load now starts from the line's value in ``last_good`` (Start.last_good)."""
    held = last_good or {}
    config = held.get("screening")
    menu = held.get("menu")
    scoring = line_screening_source(
        settings, last_good=config if isinstance(config, ScoreConfig) else None)
    screening = ScreeningService(database, scoring, settings.timezone)
    menus = line_menu_source(settings, last_good=menu if isinstance(menu, IvrMenu) else None)
    ivr = IvrApplication(menus, screening, settings.screening_timeout_ms / 1000)
    survey = SurveyApplication(surveys)
    # Every session opens with the GOSUB that lifts the dialplan's first-command deadline (the
    # menu's routine runs it itself).
    config = replace(FastAgiConfig.from_settings(settings), opening=OPENING,
                     opening_implied_by=OPENED_BY_MENU)
    return FastAgiServer(config, {"ivr": ivr.handle, "survey": survey.handle},
                         observer=figures)


async def send_figures(channel: Channel, figures: FigureBatch) -> None:
    """The figures to the line every :data:`FIGURES_INTERVAL`, until cancelled."""
    while True:
        await asyncio.sleep(FIGURES_INTERVAL)
        batch = figures.take()
        if not channel.send(batch, essential=False):
            figures.dropped += (batch.dropped + len(batch.sessions) + len(batch.commands)
                                + len(batch.stalls) + len(batch.probe))


async def refuse(channel: Channel, stop: asyncio.Event, database: Database | None,
                 failed: StartFailed) -> int:
    """Tell the line why this process cannot serve, and end it: the exit status."""
    channel.send(failed)
    stop.set()  # what follows is this process's own end, not the line's
    if database is not None:
        await database.close()
    await channel.close()
    return 1


async def serve(start: Start, rest: list[object], decoder: FrameDecoder, out: int) -> int:
    """Listen, serve until the line (or SIGTERM) says stop, drain; the exit status."""
    loop = asyncio.get_running_loop()
    settings = start.settings
    channel = await Channel.open(out)
    figures = FigureBatch()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(ForwardedLog(channel, figures))
    root.setLevel(start.log_level)
    raise_priority(settings)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    surveys = SurveysOverPipe(channel)
    orders = Orders(decoder, stop, surveys, figures)
    orders.obey(rest)
    await loop.connect_read_pipe(lambda: orders, os.fdopen(0, "rb", buffering=0))
    database: Database | None = None
    try:
        database = Database(settings, max_size=CALLPATH_POOL_SIZE)
        for name in start.instrument:
            importlib.import_module(name).instrument()
        agi = fastagi_server(settings, database, surveys, figures, start.last_good)
    except Exception as exc:
        log.exception("the call path could not start")
        return await refuse(channel, stop, database, StartFailed(None, str(exc)))
    try:
        await agi.start()
    except OSError as exc:  # the address is taken, or not this machine's
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return await refuse(channel, stop, database, StartFailed(exc.errno, reason))
    channel.send(Listening(agi.port))
    # What this process built lives as long as it does: out of every later collection.
    gc.freeze()
    tasks = [asyncio.create_task(send_figures(channel, figures), name="callpath-figures"),
             asyncio.create_task(probe(PROBE_INTERVAL, figures.stalls.append),
                                 name="callpath-stalls")]
    try:
        await stop.wait()
        await agi.stop()  # lets the sessions in progress finish (shutdown_drain_seconds)
    finally:
        orders.close()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        await database.close()
        channel.send(figures.take())
        await channel.close()
    return 0


def main(argv: list[str]) -> int:
    """``python -m telephony.callpath_child <line's pid>``: the Start frame on stdin."""
    die_with(int(argv[1]))
    # The frames get stdout's pipe to themselves; anything printed goes to stderr (the line's).
    out = os.dup(1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    decoder = FrameDecoder()
    start, rest = read_start(0, decoder)
    return asyncio.run(serve(start, rest, decoder, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
