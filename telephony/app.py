"""Composition root: builds the line's services from the settings and runs them together.

``serve`` = the FastAGI IVR + the AMI listener + the recorder that writes call facts to
PostgreSQL (or its spool) + the recordings worker that pairs, processes and stores Asterisk's
call recordings + the incident upkeep (an incident for each answered call, notifications).
Each service gets its collaborators through its constructor here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from ivr.flow import run_ivr
from ivr.source import MenuSource
from recordings.worker import RecordingsConfig, RecordingWorker
from telephony.agi.channel import AgiChannel
from telephony.agi.server import AgiSession, FastAgiConfig, FastAgiServer
from telephony.ami.listener import AmiListener
from telephony.db.calls import CallRepository
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.db.migrate import migrate
from telephony.db.shifts import sync_shifts
from telephony.incidents.notifiers import notifier_from_settings
from telephony.incidents.service import IncidentConfig, IncidentService
from telephony.recorder import CallRecorder
from telephony.settings import Settings
from telephony.shifts import ShiftCalendar
from telephony.spool import FactSpool

log = logging.getLogger("telephony.app")


class IvrApplication:
    """The FastAGI route ``ivr``: runs the current menu's flow on the caller's channel."""

    def __init__(self, menus: MenuSource) -> None:
        self._menus = menus

    async def handle(self, session: AgiSession) -> None:
        """One call. The dialplan passes the line (112/119) as the first AGI argument."""
        line = session.env.get("agi_arg_1") or session.env.get("agi_dnid")
        await run_ivr(AgiChannel(session), self._menus.current(), line)


@dataclass
class Line:
    """The running services of one line."""

    settings: Settings
    database: Database
    repository: CallRepository
    incidents: IncidentService
    recorder: CallRecorder
    agi: FastAgiServer
    listener: AmiListener


async def prepare_database(database: Database, settings: Settings) -> None:
    """Apply migrations and mirror the shift roster; the line starts even if this fails."""

    async def work(connection: asyncpg.Connection) -> None:
        await migrate(connection)
        await sync_shifts(connection, settings.shifts)

    try:
        await database.run(work)
    except DatabaseUnavailable as exc:
        log.error("database not ready at start, calls are spooled until it is: %s", exc)


@contextlib.asynccontextmanager
async def running_line(settings: Settings) -> AsyncIterator[Line]:
    """Start every service of the line; stop them all on exit."""
    database = Database(settings)
    await prepare_database(database, settings)
    repository = CallRepository(ShiftCalendar(settings.shifts, settings.timezone))
    recorder = CallRecorder(
        database, repository, FactSpool(settings.spool_dir),
        retry_seconds=settings.db_retry_seconds,
    )
    ivr = IvrApplication(MenuSource(settings.menu_file))
    agi = FastAgiServer(FastAgiConfig.from_settings(settings), {"ivr": ivr.handle})
    listener = AmiListener(settings, recorder)
    flusher = asyncio.create_task(recorder.run_flusher(), name="spool-flusher")
    # Recording happens in Asterisk; this only pairs, processes and stores the files.
    recordings = asyncio.create_task(
        RecordingWorker(database, RecordingsConfig.from_settings(settings)).run(),
        name="recordings",
    )
    notifier = notifier_from_settings(settings)
    incidents = IncidentService(database, notifier, IncidentConfig.from_settings(settings))
    upkeep = asyncio.create_task(
        incidents.run_upkeep(settings.incident_upkeep_seconds), name="incident-upkeep")
    await agi.start()
    try:
        await listener.start()
        try:
            yield Line(settings, database, repository, incidents, recorder, agi, listener)
        finally:
            await listener.stop()
    finally:
        await agi.stop()
        for task in (flusher, recordings, upkeep):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await notifier.close()
        with contextlib.suppress(DatabaseUnavailable):
            await recorder.flush()
        await database.close()


async def serve(settings: Settings) -> None:
    """Run the line until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_line(settings):
        print(f"Layanan berjalan: FastAGI {settings.agi_host}:{settings.agi_port}, "
              f"AMI {settings.ami_host}:{settings.ami_port}. Tekan Ctrl-C untuk berhenti.")
        await stop.wait()
    print("Layanan dihentikan.")
