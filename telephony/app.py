"""Composition root: builds the line's services from the settings and runs them together.

``serve`` = the FastAGI IVR (in a process of its own) + the AMI listener and the
recorder that writes call facts to PostgreSQL (or its spool), on a second thread and loop of
their own + the recordings worker that pairs, processes and stores Asterisk's
call recordings + the incident upkeep (an incident for each answered call, notifications) +
the post-call prank screening of ended calls + the HTTP JSON API and the web console (its
operators join queues and pause through the AMI listener) + the caller-rating callbacks
of resolved incidents + operators' call-backs of dropped callers + the supervisor's live
wallboard (fed by the AMI listener).
Each service gets its collaborators through its constructor here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from ivr.menu import IvrMenu
from ivr.source import line_menu_source
from recordings.library import RecordingLibrary
from recordings.retention import policy_from_settings, run_retention
from recordings.worker import RecordingsConfig, RecordingWorker
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.admin.asterisk import AsteriskAdmin
from telephony.admin.configs import ConfigService
from telephony.admin.console import AdminPages
from telephony.admin.files import ConfigFiles
from telephony.admin.http import AdminApi
from telephony.admin.queue_service import QueueService
from telephony.admin.queues import QueueDefaults
from telephony.admin.site_service import SiteService, mirror_shifts
from telephony.admin.sync import AsteriskSync
from telephony.ami.listener import AmiListener
from telephony.ami.threaded import ThreadedListener
from telephony.ami.vanish import VanishWatch
from telephony.asterisk.log_rotation import LogRotation
from telephony.asterisk.site import AsteriskSite
from telephony.callbacks.console import CallbackPages
from telephony.callbacks.http import CallbackApi
from telephony.callbacks.service import CallbackConfig, CallbackService
from telephony.callpath import CallPath
from telephony.calls.archive import CallArchive
from telephony.calls.history import CallHistory, HistoryCollector, queue_log_path
from telephony.calls.recorder import CallRecorder
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.spool import FactSpool
from telephony.calls.store import CallRepository
from telephony.cluster.admin_sync import AdminSync
from telephony.cluster.forward import LineForwarder
from telephony.cluster.member_sync import MemberSync
from telephony.cluster.reconcile import FrontReconciler
from telephony.cluster.watch import CONTACT_STATUS, FULLY_BOOTED, PeerWatch
from telephony.cluster.wrapup_sync import AGENT_COMPLETE, WrapUpSync
from telephony.core.open_files import raise_open_files_limit
from telephony.core.threads import LoopThread
from telephony.core.watched import WatchedFile
from telephony.db.connection import (
    Database,
    DatabaseUnavailable,
    DatabaseWork,
    SchemaNotPrepared,
    line_role,
)
from telephony.db.roles import prepare_schema
from telephony.desks.phones import RtpTimeouts
from telephony.desks.service import (
    DeskConfig,
    DeskService,
    grant_phone_reader,
    set_browser_media_address,
)
from telephony.desks.watch import PhoneWatcher
from telephony.incidents.attachments import AttachmentStore
from telephony.incidents.config import IncidentConfig
from telephony.incidents.notifiers import notifier_from_settings
from telephony.incidents.service import IncidentService
from telephony.incidents.services import IncidentServices
from telephony.kamailio.registrar import FrontRegistrar
from telephony.metrics.agi import AgiTimings
from telephony.metrics.backlogs import (
    LastBackup,
    OutboxBacklogs,
    RecordingsBacklog,
    RecordingsNotWritten,
)
from telephony.metrics.calls import CallCounter
from telephony.metrics.health import Readiness
from telephony.metrics.http import MonitoringApi
from telephony.metrics.live import (
    AmiCollector,
    DiskCollector,
    FrontCollector,
    PeersCollector,
    ReportGateCollector,
    SpoolCollector,
    WallboardCollector,
)
from telephony.metrics.loops import LoopStalls
from telephony.metrics.registry import LineMetrics
from telephony.reports.console import ReportPages
from telephony.reports.gate import GateConfig, ReportGate
from telephony.reports.http import ReportApi
from telephony.reports.service import ReportConfig, ReportService
from telephony.screening.score import ScoreConfig
from telephony.screening.service import ScreeningService, line_screening_source
from telephony.secrets import SecretsError, asterisk_db_password
from telephony.settings import Settings
from telephony.supervision.http import SupervisionApi
from telephony.supervision.rights import ListeningRights
from telephony.supervision.service import SupervisionService
from telephony.surveys.service import SurveyConfig, SurveyService
from telephony.transfers.console import TransferPages
from telephony.transfers.http import TransferApi
from telephony.transfers.service import TransferService
from telephony.wallboard import console as wallboard_console
from telephony.wallboard.http import WallboardApi
from telephony.wallboard.service import WallboardService
from telephony.wallboard.state import LiveBoard
from telephony.web.context import ApiContext, WebConfig, parse_networks
from telephony.web.routing import Route
from telephony.web.server import WebServer, build_app

log = logging.getLogger("telephony.app")

# The AMI thread's pool: the recorder writes one batch at a time; the spool's flusher, the
# resync's and the vanish watch's open calls, and the backfill take one each now and then.
AMI_POOL_SIZE = 4
# Serializes the schema's preparation: the main loop's pool and the AMI thread's each prepare
# before they open, and two line servers of a cluster may start together; concurrent GRANTs
# and the shift roster's rewrite would collide.
PREPARE_LOCK = 0x5161_6761_0112
# How long the main thread may keep the interpreter's lock once the AMI thread asks for it
# (Python's default is 5 ms): the AMI reads wait at most this for Python code on the main loop.
SWITCH_INTERVAL = 0.001


@dataclass
class Line:
    """The running services of one line."""

    settings: Settings
    database: Database
    repository: CallRepository
    incidents: IncidentService
    recorder: CallRecorder  # runs on the listener's thread (telephony/ami/threaded.py)
    callpath: CallPath
    listener: ThreadedListener
    screening: ScreeningService
    surveys: SurveyService
    web: WebServer
    reports: ReportService
    wallboard: WallboardService
    metrics: LineMetrics
    callbacks: CallbackService


async def start_web(web: WebServer) -> None:
    """Serve the HTTP API. It is not on the call path: if its address cannot be bound the
    line takes calls without it, and says so."""
    try:
        await web.start()
    except OSError as exc:
        log.error("HTTP API not started, the line runs without it: %s", exc)


def schema_preparation(settings: Settings,
                       calendar: ShiftCalendar | None = None) -> DatabaseWork[None]:
    """What the line does, as the schema's owner, before every new connection pool: apply
    the migrations, grant the line's role (telephony/db/roles.py) and mirror the shift
    roster in force (the admin's, else the settings file's; the line's ``calendar`` takes
    it if it has none yet: ``mirror_shifts``). An upgrade is therefore migrated, and the
    line's role granted its new tables, before the line writes a single fact, whether the
    database is up at start or comes up later."""
    role = line_role(settings)

    async def work(connection: asyncpg.Connection) -> None:
        await connection.execute("SELECT pg_advisory_lock($1)", PREPARE_LOCK)
        try:
            await prepare_schema(connection, role)
            await mirror_shifts(connection, settings.shifts, calendar)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", PREPARE_LOCK)

    return work


async def prepare_database(database: Database, settings: Settings) -> None:
    """Open (and so migrate) the database before the line takes calls; the line starts
    even if it is down, and migrates it when it comes back."""
    try:
        await database.pool()
    except SchemaNotPrepared:
        # Not an outage to wait out: the engineer upgrading is there to read why, in one line
        # (cli.main), and Asterisk fails the calls open meanwhile.
        raise
    except DatabaseUnavailable as exc:
        log.error("database not ready at start, calls are spooled until it is: %s", exc)
        return
    try:
        # Asterisk reads registering operator phones as this role (asterisk-conf/sorcery.conf).
        await grant_phone_reader(database, settings.asterisk_db_user,
                                 asterisk_db_password(settings))
        timeouts = RtpTimeouts(browser=settings.softphone_rtp_timeout_seconds,
                               desk=settings.desk_phone_rtp_timeout_seconds,
                               desk_hold=settings.desk_phone_rtp_timeout_hold_seconds)
        await set_browser_media_address(database, settings.softphone_media_address,
                                        settings.kamailio_front, rtp_timeouts=timeouts)
    except (DatabaseUnavailable, SecretsError) as exc:
        log.error("the role Asterisk reads operator phones with was not set up: %s", exc)


def monitoring(settings: Settings, database: Database, *, listener: ThreadedListener,
               agi: CallPath, recorder: CallRecorder, wallboard: WallboardService,
               reports: ReportService, menus: WatchedFile[IvrMenu],
               metrics: LineMetrics) -> MonitoringApi:
    """The scrape-time collectors over the line's services, and the monitoring routes."""
    readiness = Readiness.of_line(database, listener, agi, recorder)
    recordings = RecordingsBacklog(database, settings.recordings_quarantine_dir)
    outbox = OutboxBacklogs(database)
    backups = LastBackup(database)
    spool = SpoolCollector(recorder)
    for collector in (AmiCollector(listener), spool,
                      WallboardCollector(wallboard, menus.current),
                      ReportGateCollector(reports.gate), readiness, recordings, outbox, backups):
        metrics.add(collector)
    metrics.add_refresher("readiness", readiness.refresh)
    metrics.add_refresher("spool", spool.refresh)
    metrics.add_refresher("recordings", recordings.refresh)
    metrics.add_refresher("notifications", outbox.refresh)
    metrics.add_refresher("backups", backups.refresh)
    disk = DiskCollector({
        "state": settings.state_dir, "spool": settings.spool_dir,
        **({} if settings.spool_fallback_dir is None
           else {"spool_fallback": settings.spool_fallback_dir}),
        "recordings": settings.recordings_dir,
        "recordings_incoming": AsteriskSite.from_settings(settings).monitor_dir})
    metrics.add(disk)
    metrics.add_refresher("disk", disk.refresh)
    if settings.kamailio_front is not None:  # a cluster node behind the front
        front = FrontCollector(settings.kamailio_host, settings.kamailio_port)
        metrics.add(front)
        metrics.add_refresher("sip_front", front.refresh)
    return MonitoringApi(metrics, readiness, parse_networks(settings.metrics_allowed_addresses))


@dataclass(frozen=True)
class Administration:
    """The admin's services: versions of the menu and screening, queues and operators,
    site settings, and what keeps Asterisk on them."""

    api: AdminApi
    pages: AdminPages
    sync: AsteriskSync
    # A cluster node: what an admin stores through any node's line, applied here too
    # (telephony/cluster/admin_sync.py); None on a single node.
    cluster: AdminSync | None = None

    def routes(self) -> list[Route]:
        """The admin's API and console pages."""
        return [*self.api.routes(), *self.pages.routes()]


async def start_administration(
    settings: Settings, database: Database, stack: contextlib.AsyncExitStack, *,
    listener: ThreadedListener, menus: WatchedFile[IvrMenu], scoring: WatchedFile[ScoreConfig],
    incidents: IncidentServices, calendar: ShiftCalendar, members: MemberSync | None = None,
) -> Administration:
    """Build the admin's services over the line's; an admin's dispatch targets and shifts
    apply from the start (or once the database is back), the stored queue settings once AMI
    greets the line."""
    asterisk = AsteriskAdmin(listener, AsteriskSite.from_settings(settings))
    queues = QueueService(database, asterisk, listener, menus=menus,
                          defaults=QueueDefaults.from_settings(settings),
                          realm=settings.sip_realm, changes=members,
                          front=FrontRegistrar.from_settings(settings))
    configs = ConfigService(database, ConfigFiles.from_settings(settings), asterisk,
                            queues=queues, menus=menus, screening=scoring)
    site = SiteService(database, incidents.dispatches, calendar)
    try:
        await site.restore()
    except DatabaseUnavailable as exc:
        log.error("admin's dispatch targets and shifts not read, the settings' stand until "
                  "the database is back: %s", exc)
        in_background(stack, site.restore_when_back(), "site-restore")
    sync = AsteriskSync(queues, configs)
    listener.subscribe("FullyBooted", sync.booted)
    cluster = None
    if settings.cluster_nodes:
        cluster = AdminSync(database, versions=configs, queues=queues, site=site,
                            members=members)
        listener.subscribe(FULLY_BOOTED, cluster.booted)
    return Administration(AdminApi(configs, queues, site, incidents.directory),
                          AdminPages(configs, queues, site, incidents.directory), sync, cluster)


@dataclass(frozen=True)
class CallHandling:
    """What operators and supervisors do with calls: desks (and their phones), transfers and
    conferences to agencies, call-backs of dropped callers, listening in."""

    desks: DeskService
    transfers: TransferService
    callbacks: CallbackService
    routes: list[Route]
    # Every line hears an account's rights change here (telephony/supervision/rights.py).
    rights: ListeningRights


def start_call_handling(
    settings: Settings, database: Database, stack: contextlib.AsyncExitStack, *,
    listener: ThreadedListener, menus: WatchedFile[IvrMenu], accounts: AccountService,
    incidents: IncidentServices, members: MemberSync | None = None,
) -> CallHandling:
    """The services that act on calls through AMI, and their routes."""
    desks = DeskService(database, listener, menus, accounts,
                        config=DeskConfig.from_settings(settings), changes=members)
    # Browser desks whose softphone went away leave their queues (telephony/desks/watch.py).
    phones = PhoneWatcher(desks, settings.softphone_lost_grace_seconds)
    listener.observe(phones)
    in_background(stack, phones.run(), "phone-watch")
    # Transfers to agencies follow the legs' progress to join conferences when answered.
    transfers = TransferService(database, listener, desks, incidents=incidents.incidents,
                                dispatches=incidents.dispatches, audit=accounts,
                                ring_seconds=settings.transfer_ring_seconds)
    listener.observe(transfers)
    stack.push_async_callback(transfers.close)
    # A supervisor who loses the right (another role, disabled) stops listening at once, on
    # every node (telephony/supervision/rights.py).
    rights = ListeningRights(database, listener, accounts)
    listener.subscribe(FULLY_BOOTED, rights.booted)
    in_background(stack, rights.run(), "listening-rights")
    # Listening in records how each supervisor's Originate went (their phone busy, ...).
    supervision = SupervisionService(database, listener, accounts, rights=rights)
    in_background(stack, supervision.run(), "supervision")
    callbacks = CallbackService(database, listener, desks, accounts,
                                CallbackConfig.from_settings(settings))
    in_background(stack, callbacks.run(), "callbacks")
    # A caller ringing again while called back: the call-back is called off.
    listener.after_persisted(callbacks.calls_started)
    return CallHandling(desks, transfers, callbacks, [
        *TransferApi(transfers).routes(), *TransferPages(transfers, incidents.directory).routes(),
        *SupervisionApi(supervision).routes(), *CallbackApi(callbacks).routes(),
        *CallbackPages(callbacks).routes()], rights)


def forward_to_nodes(settings: Settings, stack: contextlib.AsyncExitStack
                     ) -> LineForwarder | None:
    """A cluster node's console requests that act on a call another node carries are
    answered by that node's line (telephony/cluster/forward.py); ``None`` on a single node."""
    forwarder = LineForwarder.from_settings(settings)
    if forwarder is not None:
        stack.push_async_callback(forwarder.close)
    return forwarder


def watch_peers(settings: Settings, stack: contextlib.AsyncExitStack,
                listener: ThreadedListener, database: Database,
                repository: CallRepository) -> PeerWatch | None:
    """A cluster node: a dead peer's operators are offered calls here at once, and a peer
    that answers again is asked for its whole device state (telephony/cluster/watch.py); the
    calls the front dispatched that no node recorded become records, lost with their node
    (telephony/cluster/reconcile.py)."""
    peers = PeerWatch.from_settings(listener, settings)
    if peers is not None:
        listener.subscribe(CONTACT_STATUS, peers.contact_status)
        listener.subscribe(FULLY_BOOTED, peers.logged_in)
        in_background(stack, peers.run(), "peer-watch")
    front = FrontReconciler.from_settings(database, repository, settings)
    if front is not None:
        in_background(stack, front.run(), "front-reconcile")
    return peers


def follow_members(settings: Settings, stack: contextlib.AsyncExitStack,
                   listener: ThreadedListener, database: Database) -> MemberSync | None:
    """A cluster node: its Asterisk's operator queue members follow the changes made through
    any node's line (telephony/cluster/member_sync.py); ``None`` on a single node."""
    if not settings.cluster_nodes:
        return None
    members = MemberSync(database, AsteriskAdmin(listener, AsteriskSite.from_settings(settings)),
                         settings.asterisk_systemname or "")
    listener.subscribe(FULLY_BOOTED, members.booted)
    in_background(stack, members.run(), "cluster-members")
    return members


def share_wrapups(settings: Settings, stack: contextlib.AsyncExitStack,
                  listener: ThreadedListener, database: Database,
                  transfers: TransferService) -> None:
    """A cluster node: an operator's wrap-up after a queue call this node carried holds on
    every other node, and one after another node's call holds here
    (telephony/cluster/wrapup_sync.py)."""
    wrapups = WrapUpSync.from_settings(listener, database, settings)
    if wrapups is None:
        return
    listener.subscribe(AGENT_COMPLETE, wrapups.agent_complete)
    listener.subscribe(FULLY_BOOTED, wrapups.booted)
    # A leave of a three-way call ends the operator's call for app_queue: their wrap-up.
    transfers.on_left(wrapups.left)
    in_background(stack, wrapups.run(), "cluster-wrapups")


def wallboard_routes(wallboard: WallboardService, rights: ListeningRights) -> list[Route]:
    """The wallboard's routes; a supervisor made an operator or disabled sees their open
    board close at once (the line hears of it: telephony/supervision/rights.py)."""
    api = WallboardApi(wallboard)
    rights.on_change(api.rights_changed)
    return api.routes()


def start_wallboard(settings: Settings, stack: contextlib.AsyncExitStack, *,
                    listener: ThreadedListener, reports: ReportService,
                    incidents: IncidentServices, callbacks: CallbackService,
                    screening: ScreeningService, transfers: TransferService,
                    peers: PeerWatch | None) -> WallboardService:
    """The live wallboard, fed by the listener's facts (and on a cluster node by the other
    nodes' calls in the database, and the peer watch's word on which nodes it reaches)."""
    wallboard = WallboardService(LiveBoard(wrapup_seconds=settings.queue_wrapup_seconds),
                                 reports, incidents.dispatches,
                                 # Logged in and answering: a hung Asterisk keeps
                                 # its session open and tells nothing.
                                 connected=lambda: listener.logged_in and listener.answering,
                                 callbacks=callbacks.backlog,
                                 # A cluster node's listener sees only its own node's calls.
                                 node=(settings.asterisk_systemname
                                       if settings.cluster_nodes else None))
    listener.observe(wallboard)
    listener.after_persisted(wallboard.persisted)
    if peers is not None:  # a dead peer's waiting callers leave the board with it
        peers.on_liveness(wallboard.node_liveness)
    screening.on_labelled(wallboard.labelled)
    transfers.on_left(wallboard.left)  # Asterisk tells nothing of a three-way call's leave
    in_background(stack, wallboard.run(), "wallboard")
    return wallboard


def in_background(stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, object],
                  name: str) -> asyncio.Task[object]:
    """Run ``work`` as a task until ``stack`` unwinds, which cancels it and waits for it."""
    task = asyncio.create_task(work, name=name)
    stack.push_async_callback(_end, task)
    return task


async def on_thread(thread: LoopThread, stack: contextlib.AsyncExitStack,
                    work: Coroutine[Any, Any, object], name: str) -> None:
    """:func:`in_background` on ``thread``'s loop: ``work`` runs there until ``stack``
    unwinds, which cancels it and waits for it there."""
    task = await thread.run(_started(work, name))
    stack.push_async_callback(lambda: thread.run(_end(task)))


async def _started(work: Coroutine[Any, Any, object], name: str) -> asyncio.Task[object]:
    return asyncio.create_task(work, name=name)


async def _end(task: asyncio.Task[object]) -> None:
    task.cancel()
    # wait() rather than await: a cancellation of the caller itself must not be taken for
    # the task's own.
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()  # a task that failed says so


@contextlib.asynccontextmanager
async def running_line(settings: Settings) -> AsyncIterator[Line]:
    """Start every service of the line, in order; stop them all on exit, in reverse order.

    Each part registers its stop right after it started, so a part that fails to start
    stops exactly the parts started before it (no task, pool or server is left behind).
    """
    raise_open_files_limit()  # before any part opens a file: the console keeps to half of it
    async with contextlib.AsyncExitStack() as stack:
        yield await start_line(settings, stack)


@dataclass(frozen=True)
class Recording:
    """The AMI listener and what records its facts, on their thread (not yet listening)."""

    listener: ThreadedListener
    recorder: CallRecorder


async def start_recording(settings: Settings, stack: contextlib.AsyncExitStack, *,
                          repository: CallRepository, metrics: LineMetrics,
                          stalls: LoopStalls) -> Recording:
    """Start the AMI thread (telephony/ami/threaded.py) with what runs there: the recorder
    over a pool of its own, its spool's flusher, the vanish watch, and the backfill from
    Asterisk's queue_log (every resync first records the calls the queue_log holds that the
    line missed; the metrics count them and the recordings no call owns). The listener is
    started later (:func:`start_line`), its stop registered then."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    thread = LoopThread("ami")
    await thread.start()
    # Last of the AMI side on the way out: what was started on it has stopped by then.
    stack.push_async_callback(thread.stop)
    # Without the pool's reset: what runs here (the recorder's transactions, the backfill and
    # the vanish watch's reads) sets no session state, and the reset was one more round trip
    # per recorded batch (3 % of this thread's samples in a profile of a 50/s surge).
    database = Database(settings, max_size=AMI_POOL_SIZE,
                        prepare=schema_preparation(settings, repository.calendar),
                        reset_sessions=False)
    stack.push_async_callback(lambda: thread.run(database.close()))
    recorder = CallRecorder(
        database, repository,
        FactSpool(settings.spool_dir, fallback=settings.spool_fallback_dir),
        retry_seconds=settings.db_retry_seconds, node=settings.asterisk_systemname,
    )
    # Facts still held go to the database, or stay spooled while it is down.
    stack.push_async_callback(lambda: thread.run(recorder.close()))
    listener = AmiListener(settings, recorder)
    # Facts lost while nothing could take them: Asterisk's snapshots restore the live calls.
    recorder.after_spool_failure(listener.request_resync)
    await on_thread(thread, stack, VanishWatch(listener, recorder.stored_open_call_ids,
                                               interval=settings.vanish_check_seconds,
                                               retry=settings.db_retry_seconds).run(),
                    "vanish-check")
    history = CallHistory.from_settings(settings, database, repository,
                                        AsteriskSite.from_settings(settings).monitor_dir,
                                        spooled=recorder.pending)
    listener.backfill_from(history)
    await on_thread(thread, stack, history.run_advancer(), "queue-log-cursor")
    if settings.asterisk_log_rotate_hour >= 0:
        # Next to the backfill that reads the rotated queue_log: the same log directory.
        await on_thread(thread, stack, LogRotation(
            listener, queue_log_path(settings).parent, keep_days=settings.asterisk_log_keep_days,
            hour=settings.asterisk_log_rotate_hour, zone=ZoneInfo(settings.timezone)).run(),
            "asterisk-log-rotation")
    figures = HistoryCollector(history, refresh=lambda: thread.run(history.report_orphans()))
    metrics.add(figures)
    metrics.add_refresher("backfill", figures.refresh)
    await on_thread(thread, stack, recorder.run_flusher(), "spool-flusher")
    await on_thread(thread, stack, stalls.watch("ami"), "ami-stalls")
    return Recording(ThreadedListener(listener, thread), recorder)


def call_path(settings: Settings, metrics: LineMetrics, stalls: LoopStalls, *,
              surveys: SurveyService, menus: WatchedFile[IvrMenu],
              scoring: WatchedFile[ScoreConfig]) -> CallPath:
    """The IVR in a process of its own (telephony/callpath.py), not yet started; its AGI
    timings and the stalls of its loop are the line's metrics. Each process it starts gets
    the line's current menu and screening configuration, to start from if their files do not
    load then."""
    return CallPath(settings, surveys=surveys, observer=AgiTimings(metrics.registry),
                    stalls=stalls, last_good=lambda: {"menu": menus.current(),
                                                      "screening": scoring.current()})


def keep_recordings(settings: Settings, stack: contextlib.AsyncExitStack,
                    database: Database, metrics: LineMetrics) -> None:
    """The recordings worker (its count of recordings Asterisk could not write is a metric)
    and, unless turned off, the retention passes."""
    # Recording happens in Asterisk; this only pairs, processes and stores the files.
    worker = RecordingWorker(database, RecordingsConfig.from_settings(settings))
    metrics.add(RecordingsNotWritten(lambda: worker.not_written))
    in_background(stack, worker.run(), "recordings")
    if settings.recordings_retention_interval_hours > 0:
        in_background(stack, run_retention(
            database, policy_from_settings(settings), settings.recordings_dir,
            settings.recordings_retention_interval_hours * 3600), "recordings-retention")


async def start_line(settings: Settings, stack: contextlib.AsyncExitStack) -> Line:
    """Start the line's parts, each registering its stop on ``stack``."""
    calendar = ShiftCalendar(settings.shifts, settings.timezone)
    database = Database(settings, prepare=schema_preparation(settings, calendar))
    stack.push_async_callback(database.close)
    await prepare_database(database, settings)
    repository = CallRepository(calendar)
    metrics = LineMetrics()
    # How late each loop runs: the main one here, the others on their threads.
    stalls = LoopStalls(metrics.registry)
    in_background(stack, stalls.watch("main"), "main-stalls")
    recording = await start_recording(settings, stack, repository=repository, metrics=metrics,
                                      stalls=stalls)
    listener, recorder = recording.listener, recording.recorder
    scoring = line_screening_source(settings)
    screening = ScreeningService(database, scoring, settings.timezone)
    menus = line_menu_source(settings)
    listener.observe(CallCounter(metrics.registry, lambda: menus.current().lines))
    peers = watch_peers(settings, stack, listener, database, repository)
    if peers is not None:
        metrics.add(PeersCollector(peers))
    keep_recordings(settings, stack, database, metrics)
    notifier = notifier_from_settings(settings)
    stack.push_async_callback(notifier.close)
    incidents = IncidentServices.build(database, notifier,
                                       IncidentConfig.from_settings(settings))
    in_background(
        stack, incidents.run_upkeep(settings.incident_upkeep_seconds), "incident-upkeep")
    surveys = SurveyService(database, listener, incidents.incidents,
                            SurveyConfig.from_settings(settings))
    in_background(
        stack, surveys.run_upkeep(settings.incident_upkeep_seconds), "survey-upkeep")
    callpath = call_path(settings, metrics, stalls, surveys=surveys, menus=menus,
                         scoring=scoring)
    in_background(
        stack, screening.run_upkeep(settings.screening_upkeep_seconds), "screening-upkeep")
    # Reports give way while the call records trail: tracked facts not yet written, or AMI
    # events not yet tracked; and share the time while calls are being recorded.
    gate = ReportGate(lambda: max(listener.fact_lag_seconds, listener.event_lag_seconds),
                      GateConfig.from_settings(settings),
                      since_facts=lambda: listener.seconds_since_facts)
    reports = ReportService(database, calendar, ReportConfig.from_settings(settings),
                            gate=gate)
    accounts = AccountService(database, PasswordHasher(), AccountConfig.from_settings(settings))
    members = follow_members(settings, stack, listener, database)
    tools = start_call_handling(settings, database, stack, listener=listener, menus=menus,
                                accounts=accounts, incidents=incidents, members=members)
    share_wrapups(settings, stack, listener, database, tools.transfers)
    wallboard = start_wallboard(settings, stack, listener=listener, reports=reports,
                                incidents=incidents, callbacks=tools.callbacks,
                                screening=screening, transfers=tools.transfers, peers=peers)
    admin = await start_administration(settings, database, stack, listener=listener,
                                       menus=menus, scoring=scoring, incidents=incidents,
                                       calendar=calendar, members=members)
    in_background(stack, admin.sync.run(), "admin-sync")
    if admin.cluster is not None:
        in_background(stack, admin.cluster.run(), "cluster-admin")
    monitor = monitoring(settings, database, listener=listener, agi=callpath, recorder=recorder,
                         wallboard=wallboard, reports=reports, menus=menus, metrics=metrics)
    web = WebServer(build_app(ApiContext(
        incidents=incidents.incidents,
        dispatches=incidents.dispatches,
        directory=incidents.directory,
        accounts=accounts,
        calls=CallArchive(database, repository),
        recordings=RecordingLibrary(database, settings.recordings_dir),
        attachments=AttachmentStore(settings.attachments_dir, settings.timezone),
        screening=screening,
        desks=tools.desks,
        config=WebConfig.from_settings(settings),
        transfers=tools.transfers,
    ), [*wallboard_routes(wallboard, tools.rights), *ReportApi(reports).routes(), *tools.routes,
        *wallboard_console.routes(), *ReportPages(reports).routes(), *admin.routes(),
        *monitor.routes()], nodes=forward_to_nodes(settings, stack)),
        settings.http_host, settings.http_port)
    # The listener outlives the FastAGI server: the events of the last IVR sessions, and
    # the ends of their calls, still reach the recorder while the server drains. (Its own
    # thread and the recorder's pool outlive it in turn: start_recording.)
    await listener.start()
    stack.push_async_callback(listener.stop)
    await callpath.start()
    stack.push_async_callback(callpath.stop)
    await start_web(web)
    stack.push_async_callback(web.stop)
    # Then: open wallboards say goodbye, so the web server does not wait for their
    # WebSockets.
    stack.callback(wallboard.close)
    # First on the way out (SIGTERM): take no new FastAGI session and let those in progress
    # finish (shutdown_drain_seconds) while the web, the listener and the recorder still
    # run; the later stop in the unwinding is then a no-op.
    stack.push_async_callback(callpath.stop)
    # What the line built to start lives as long as it does: the collector leaves it out of
    # every later collection. A full collection over it held the interpreter, and with it the
    # call path's loop, for up to 0.3 s in a surge. Given back to the collector once the line
    # has stopped (a process that starts lines again, as the tests do, frees their cycles).
    gc.freeze()
    stack.callback(gc.unfreeze)
    return Line(settings, database, repository, incidents.incidents, recorder, callpath, listener,
                screening, surveys, web, reports, wallboard, metrics, tools.callbacks)


async def serve(settings: Settings) -> None:
    """Run the line until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_line(settings) as line:
        print(f"Layanan berjalan: FastAGI {settings.agi_host}:{settings.agi_port}, "
              f"AMI {settings.ami_host}:{settings.ami_port}, "
              f"API HTTP {line.web.url or 'tidak berjalan (lihat log)'}. "
              "Tekan Ctrl-C untuk berhenti.")
        await stop.wait()
    print("Layanan dihentikan.")
