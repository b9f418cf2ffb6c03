"""The call path's own thread and event loop (a :class:`~telephony.core.threads.LoopThread`):
the FastAGI server (the IVR, and the route the caller-rating callbacks run on) lives there, so
a caller's AGI replies never wait behind the HTTP API, reports and the console, which share
the line's main loop, nor behind the AMI listener and the recorder, which have a thread and
loop of their own (telephony/ami/threaded.py).

A thread rather than a process, because the IVR needs little of the line: its own database
pool for the prank score, and the watched menu and screening files. The one thing it needs
from the main loop, a survey's answer, crosses over with :func:`in_loop`. Two costs are bounded
instead: Python code on the main loop can hold the interpreter's lock only up to a switch
interval (set to 1 ms here) once this thread asks for it, and the thread asks the kernel for
real-time priority (``callpath_rt_priority``) so that a machine saturated by Asterisk in a surge
does not leave it waiting for a core.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from dataclasses import replace

from ivr.flow import run_ivr
from ivr.menu import IvrMenu
from telephony.agi.channel import OPENED_BY_MENU, OPENING, AgiChannel
from telephony.agi.server import AgiObserver, AgiSession, FastAgiConfig, FastAgiServer
from telephony.core.errors import SiagaError
from telephony.core.threads import LoopThread, in_loop
from telephony.core.watched import WatchedFile
from telephony.db.connection import Database
from telephony.metrics.loops import LoopStalls
from telephony.screening.ivr import PreQueueScoring, PreQueueScreener
from telephony.screening.score import ScoreConfig
from telephony.screening.service import ScreeningService
from telephony.settings import Settings
from telephony.surveys.route import SurveyAnswers, SurveyApplication
from telephony.surveys.store import Survey

log = logging.getLogger("telephony.callpath")

# The IVR's pool: one pre-queue history query per arriving call, a few milliseconds each, so a
# handful of connections carries a surge.
CALLPATH_POOL_SIZE = 4
# How long the main thread may keep the interpreter's lock once the call path asks for it
# (Python's default is 5 ms): the call path's replies wait at most this for Python code on the
# main loop. The call path itself rarely runs long, so the switches this asks for are few.
SWITCH_INTERVAL = 0.001


class LineStartError(SiagaError):
    """A part of the line could not start; every part started before it has been stopped."""

    code = "line_start"


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


class SurveysOnLoop:
    """The survey service of the main loop, answered from the call path's loop."""

    def __init__(self, surveys: SurveyAnswers, loop: asyncio.AbstractEventLoop) -> None:
        self._surveys = surveys
        self._loop = loop

    async def begin(self, survey_id: int, attempt: int) -> bool:
        """See :meth:`telephony.surveys.service.SurveyService.begin`."""
        return await in_loop(self._loop, self._surveys.begin(survey_id, attempt))

    async def finish(self, survey_id: int, attempt: int, rating: int | None) -> Survey | None:
        """See :meth:`telephony.surveys.service.SurveyService.finish`."""
        return await in_loop(self._loop, self._surveys.finish(survey_id, attempt, rating))


class CallPath:
    """The FastAGI server on a thread and event loop of its own (a :class:`LoopThread`).

    :meth:`start` returns once the server listens (or raises :class:`LineStartError` when it
    cannot, with the thread gone); :meth:`stop` lets the sessions in progress finish
    (``shutdown_drain_seconds``), then ends the thread. Both are called from the main loop.
    """

    def __init__(self, settings: Settings, *, menus: WatchedFile[IvrMenu],
                 scoring: WatchedFile[ScoreConfig], surveys: SurveyAnswers,
                 observer: AgiObserver, stalls: LoopStalls | None = None) -> None:
        self._settings = settings
        self._menus = menus
        self._scoring = scoring
        self._surveys = surveys
        self._observer = observer
        self._stalls = stalls
        self._thread = LoopThread("call-path", prepare=self._raise_priority)
        self._agi: FastAgiServer | None = None
        # The call path's own, on its thread: created and closed there.
        self._database: Database | None = None
        self._probe: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The call path's event loop while it runs (benchmarks probe it)."""
        return self._thread.loop

    @property
    def serving(self) -> bool:
        """True while the FastAGI server listens (the line's readiness)."""
        return self._agi is not None and self._agi.serving

    @property
    def port(self) -> int:
        """The TCP port the FastAGI server bound."""
        if self._agi is None:
            raise RuntimeError("the call path is not running")
        return self._agi.port

    async def start(self) -> None:
        """Start the thread and wait until its FastAGI server listens."""
        if self._thread.loop is not None:
            raise RuntimeError("the call path is already running")
        main = asyncio.get_running_loop()
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        # A call path stopped may start again (a test takes the IVR down and back up).
        self._agi = None
        await self._thread.start()
        try:
            self._agi = await self._thread.run(self._serve(main))
        except BaseException as exc:
            await self._thread.stop()
            if not isinstance(exc, OSError):
                raise
            # Without it no call reaches the IVR: a taken address stops the line, with one
            # line that names it.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise LineStartError(f"FastAGI tidak dapat mendengarkan di "
                                 f"{self._settings.agi_host}:{self._settings.agi_port}: "
                                 f"{reason}") from exc

    async def stop(self) -> None:
        """Drain the FastAGI sessions and end the thread; a no-op when not running."""
        if self._thread.loop is None:
            return
        try:
            await self._thread.run(self._close())
        finally:
            await self._thread.stop()

    def _raise_priority(self) -> None:
        priority = self._settings.callpath_rt_priority
        if priority == 0:
            return
        try:
            # Real-time round robin, not a lower nice value: nice weighs a thread only against
            # its own session's or cgroup's (Asterisk runs in a session, a container or a
            # systemd unit of its own), so it cannot put the callers' thread ahead of Asterisk.
            # The thread spends little CPU; if it ever spun, the kernel's real-time throttling
            # (sched_rt_runtime_us) still leaves the rest of each second to everyone else.
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_RR,
                                  os.sched_param(priority))
        except OSError as exc:
            log.warning("call path runs at normal priority, real-time priority %d refused (%s; "
                        "a container needs CAP_SYS_NICE)", priority, os.strerror(exc.errno or 0))

    async def _serve(self, main: asyncio.AbstractEventLoop) -> FastAgiServer:
        """On the call path's loop: build the IVR over a pool of its own and listen."""
        settings = self._settings
        self._database = database = Database(settings, max_size=CALLPATH_POOL_SIZE)
        if self._stalls is not None:
            self._probe = asyncio.create_task(self._stalls.watch("callpath"),
                                              name="callpath-stalls")
        try:
            screening = ScreeningService(database, self._scoring, settings.timezone)
            ivr = IvrApplication(self._menus, screening, settings.screening_timeout_ms / 1000)
            survey = SurveyApplication(SurveysOnLoop(self._surveys, main))
            # Every session opens with the GOSUB that lifts the dialplan's first-command
            # deadline (the menu's routine runs it itself).
            config = replace(FastAgiConfig.from_settings(settings), opening=OPENING,
                             opening_implied_by=OPENED_BY_MENU)
            agi = FastAgiServer(config, {"ivr": ivr.handle, "survey": survey.handle},
                                observer=self._observer)
            await agi.start()
        except BaseException:
            await self._release()
            raise
        return agi

    async def _close(self) -> None:
        """On the call path's loop: drain and close the server, then the pool."""
        try:
            if self._agi is not None:
                await self._agi.stop()
        finally:
            await self._release()

    async def _release(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.wait([probe])
        database, self._database = self._database, None
        if database is not None:
            await database.close()
