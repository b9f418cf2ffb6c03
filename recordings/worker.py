"""The recordings worker: pairs each ended call with Asterisk's file, processes it, stores it.

How a recording travels
    1. Asterisk's MixMonitor writes ``<call_id>.wav`` into its monitor directory while the call
       lasts (the dialplan starts it right after Answer, so this needs nothing of ours), and
       with separate legs on also ``<call_id>-caller.wav`` and ``<call_id>-line.wav``.
    2. Every ``poll_seconds`` the worker looks for calls that have ended (``calls.ended_at``)
       within ``lookback_hours``, or before that if their file is in the monitor directory
       (unchanged that long: a line down longer than that while Asterisk recorded), and have
       no recording row, and for operators' call-backs of callers (``call_legs`` of kind
       ``callback``) that the caller answered and for attended transfers and conferences that
       the agency answered (the operator's talk with the agency), once ended, alike: each is
       recorded as ``<call_id>-callback<leg_id>.wav`` (``-consult<leg_id>``) and becomes a
       recording of the call.
       Once the call's files have stopped changing, it gets a ``pending`` row per file, in
       one transaction (:func:`recordings.domain.pair_files`); a call that ended long enough
       ago without a file, or a leg absent when legs are recorded, gets a ``missing`` row,
       reported once; so does a file Asterisk left empty (its disk was full or read-only all
       call long: :data:`recordings.domain.NOT_WRITTEN`), which is removed, not quarantined as
       a broken recording, and a file missing while that disk takes no new file
       (:data:`recordings.domain.NOT_CREATED`); a call id that is not an Asterisk unique id is
       refused (``failed``) with one log line and never names a file. This is decoupled from
       AMI: a listener that was down, or a worker restarted, still finds every call in the
       database.
    3. Jobs are claimed from the table (``FOR UPDATE SKIP LOCKED``, with a lease), so several
       workers may run. A child process (:mod:`recordings.audio`) measures the file with pydub
       and writes it, compressed, under a temporary name beside its final place. While the
       child works, the worker renews the job's lease every ``heartbeat_seconds``; the lease
       itself is short (30 s by default), so a crashed worker's job is retried within it, and
       at once by any worker on the same host, which sees that the holding process is gone
       (:meth:`RecordingWorker.reclaim_abandoned`). A worker whose renewal is refused (its lease
       ran out and another worker took the job) kills its child and leaves the job alone.
    4. Holding the job's row lock, the worker renames that file into the dated layout and marks
       the row done, in one transaction; only then is Asterisk's file removed. A worker that
       lost its lease finds the lock refused and throws its work away, so the stored file is
       always the one whose checksum the row holds.
    5. A file that cannot be decoded, or that failed ``max_attempts`` times, is moved to the
       quarantine directory and its row marked ``failed`` with the reason. Nothing of a caller's
       recording is ever deleted here. Each leg is a job of its own: a broken leg fails alone.
    6. A disk that is full or read-only (the storage's, or the temporary directory's; the
       kernel remounts a disk with errors read-only) is the site's trouble, not the
       recording's, and may last hours before anybody frees room or repairs it: the job goes
       back to ``pending`` without counting the attempt, so no recording is given up on and
       quarantined for it; the worker says so in one log line, then tries one job per
       ``retry_seconds`` (each try decodes a whole call, which costs a line busy with callers
       CPU) until one is stored. Meanwhile the backlog grows on the metrics
       (``siaga112_recordings_backlog``, ``..._oldest_seconds``).

Cancelling :meth:`RecordingWorker.run` (the line stopping) kills and reaps a running child and
leaves its job as a crash would: the next worker takes it over. A worker killed outright takes
its child with it: the child asks the kernel for a signal when its parent dies and then kills
its process group, ffmpeg included (:mod:`recordings.audio`).

Why a 30 s lease renewed every 10 s: a renewal is one small UPDATE, so renewing often costs
nothing; three renewals per lease let two in a row fail (a database hiccup, a machine busy
with calls) before another worker takes the job over, which would only cost repeated work (the
claim token still lets one result be stored). A lease much shorter than that would be taken
over under load; much longer, and a crashed job waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from recordings.audio import (
    EXIT_BAD_AUDIO,
    EXIT_NO_SPACE,
    EXIT_READ_ONLY,
    WORKER_PID_ENV,
    BadAudio,
    Measurements,
)
from recordings.domain import (
    CALL_KINDS,
    NOT_RECORDED,
    Kind,
    Pairing,
    State,
    describe,
    holder_is_gone,
    pair_files,
    pair_leg,
    processing_bound,
    source_name,
    state_after_error,
    storage_relpath,
    temp_name,
)
from recordings.files import (
    discard,
    incoming_sources,
    put_in_place,
    quarantine,
    refuses_files,
    unchanged_sources,
)
from recordings.holder import process_started, this_process
from recordings.store import EndedCall, EndedLeg, Job, Processed, RecordingRepository
from telephony.asterisk.site import AsteriskSite
from telephony.calls.ids import valid_call_id
from telephony.core.errors import SiagaError
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.settings import Settings

log = logging.getLogger("recordings")

ENQUEUE_BATCH = 500  # calls looked at per pass
PROCESS_BATCH = 20  # jobs per pass, so that newly ended calls are not kept waiting
_OUTPUT_LIMIT = 64 * 1024  # of the child's stdout and stderr kept for a report
# The storage refusing a write for the site's reasons (full, over quota, read-only).
_UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class TranscodeError(SiagaError, RuntimeError):
    """Processing failed in a way a retry may fix (timeout, disk, a crashed decoder)."""


class NoSpace(TranscodeError):
    """A disk the recording is written to is full or read-only: the job waits, uncounted."""


class LeaseLost(SiagaError, RuntimeError):
    """The job's lease ran out and another worker took it over while this one worked."""


@dataclass(frozen=True)
class RecordingsConfig:
    """What the worker needs to know; :meth:`from_settings` builds it for a line."""

    incoming_dir: Path
    storage_dir: Path
    quarantine_dir: Path
    fmt: str
    timezone: str
    poll_seconds: float
    settle_seconds: float
    missing_after_seconds: float
    lookback_hours: int
    lease_seconds: float
    process_timeout: float
    max_attempts: int
    separate_legs: bool = False  # the dialplan records each leg too: a leg's absence is news
    heartbeat_seconds: float = 10.0  # how often a running job's lease is renewed
    retry_seconds: float = 60.0  # a job that failed in a way a retry may fix waits this long
    # The child that measures and transcodes one file; its arguments are appended. It runs
    # niced: on a busy line, answering callers (the IVR shares this machine) comes before
    # processing the recordings of calls that have already ended. In a session of its own it
    # also lowers that session's rank, where the kernel shares the CPU by session first
    # (recordings.audio.yield_the_session).
    transcoder: tuple[str, ...] = ("nice", "-n", "15", sys.executable, "-m", "recordings.audio")
    # A cluster node's systemname: its worker pairs and processes only its own calls, whose
    # files are in its own Asterisk's monitor directory (None: one node, every call).
    node: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingsConfig:
        """The line's configuration; the incoming directory is the site Asterisk's monitor."""
        return cls(
            incoming_dir=AsteriskSite.from_settings(settings).monitor_dir,
            storage_dir=settings.recordings_dir,
            quarantine_dir=settings.recordings_quarantine_dir,
            fmt=settings.recordings_format,
            timezone=settings.timezone,
            poll_seconds=settings.recordings_poll_seconds,
            settle_seconds=settings.recordings_settle_seconds,
            missing_after_seconds=settings.recordings_missing_after_seconds,
            lookback_hours=settings.recordings_lookback_hours,
            lease_seconds=settings.recordings_lease_seconds,
            process_timeout=settings.recordings_process_timeout,
            max_attempts=settings.recordings_max_attempts,
            separate_legs=settings.recordings_separate_legs,
            heartbeat_seconds=settings.recordings_heartbeat_seconds,
            node=settings.asterisk_systemname,
        )


@dataclass(frozen=True)
class Outcome:
    """What happened to one call's recording in a pass (for logs and the CLI)."""

    call_id: str
    state: State
    detail: str = ""  # storage path when done, else the reason
    kind: Kind = Kind.MIXED
    leg_id: int | None = None  # a call-back's


class RecordingWorker:
    """Pairs, processes and stores recordings; see the module documentation."""

    def __init__(
        self,
        database: Database,
        config: RecordingsConfig,
        repository: RecordingRepository | None = None,
    ) -> None:
        self._database = database
        self._config = config
        self._repository = repository or RecordingRepository()
        self._trouble: str | None = None  # the problem last logged, so a pass repeats no log
        self._holder = this_process()
        # While a disk is full: when the next job may be tried (None: there is room).
        self._room_wait_until: float | None = None
        # Recordings Asterisk wrote nothing of since start (siaga112_recordings_not_written).
        self.not_written = 0

    # ----------------------------------------------------------------- loop

    async def run(self) -> None:
        """Work until cancelled: a pass every ``poll_seconds``, after one sweep of leftovers."""
        swept = False
        while True:
            swept = swept or await self._guarded(self.sweep_incoming)
            await self._guarded(self.run_once)
            await asyncio.sleep(self._config.poll_seconds)

    async def _guarded(self, work: Callable[[], Awaitable[object]]) -> bool:
        """One unit of background work; a problem that persists is logged once, not per pass."""
        try:
            await work()
        except DatabaseUnavailable as exc:
            if self._trouble != "database":
                log.warning("recordings wait for the database: %s", exc)
            self._trouble = "database"
            return False
        except Exception as exc:  # the loop must outlive a bug in one pass; the traceback tells
            if self._trouble != repr(exc):
                log.exception("recordings pass failed")
            self._trouble = repr(exc)
            return False
        if self._trouble is not None:
            log.info("recordings work again")
        self._trouble = None
        return True

    async def run_once(self) -> list[Outcome]:
        """Pair newly ended calls, free the jobs of dead holders, then process up to
        :data:`PROCESS_BATCH` jobs."""
        outcomes = await self.enqueue()
        await self.reclaim_abandoned()
        for _ in range(PROCESS_BATCH):
            outcome = await self.process_next()
            if outcome is None:
                break
            outcomes.append(outcome)
            if self._room_wait_until is not None:
                break  # the disk is full: the next jobs would fail alike
        return outcomes

    # ----------------------------------------------------------------- pairing

    async def enqueue(self) -> list[Outcome]:
        """Create the rows of ended calls whose files are complete, missing or refused."""
        config = self._config
        # Files unchanged for the lookback: their calls ended before it (none, as a rule).
        waiting = await asyncio.to_thread(unchanged_sources, config.incoming_dir,
                                          config.lookback_hours * 3600.0)
        calls = await self._database.run(functools.partial(
            self._repository.calls_awaiting_recording,
            lookback_hours=config.lookback_hours, limit=ENQUEUE_BATCH, node=config.node,
            with_files=sorted({s.call_id for s in waiting if s.leg_id is None}),
        ))
        now = time.time()
        outcomes = []
        for call in calls:
            rows = self._pairing(call, now)
            if rows is None:
                continue
            # Empty when another worker was quicker.
            added = await self._database.run(functools.partial(self._add, call=call, rows=rows))
            for row, name in added:
                if row.reason in NOT_RECORDED:
                    self._not_written(f"call {call.call_id}", row.kind,
                                      source_name(call.call_id, row.kind), row.reason)
                elif row.state is State.MISSING:
                    log.warning("call %s ended %.0f s ago without %s in %s", call.call_id,
                                call.ended_seconds_ago, _file_of(row.kind), config.incoming_dir)
                outcomes.append(Outcome(call.call_id, row.state, row.reason or name, row.kind))
        outcomes += await self._enqueue_legs(
            now, sorted({s.leg_id for s in waiting if s.leg_id is not None}))
        return outcomes

    async def _enqueue_legs(self, now: float, with_files: list[int]) -> list[Outcome]:
        """Create the rows of ended call-backs and consults whose files are complete or
        missing (``with_files``: the legs whose files are in the monitor directory)."""
        config = self._config
        ended = await self._database.run(functools.partial(
            self._repository.legs_awaiting_recording,
            lookback_hours=config.lookback_hours, limit=ENQUEUE_BATCH, node=config.node,
            with_files=with_files,
        ))
        outcomes = []
        for leg in ended:
            row = self._leg_pairing(leg, now)
            if row is None:
                continue
            name = (source_name(leg.call_id, leg.kind, leg.leg_id)
                    if row.state is State.PENDING else "")

            async def add(connection: asyncpg.Connection, leg: EndedLeg = leg,
                          row: Pairing = row, name: str = name) -> bool:
                return await self._repository.add(
                    connection, leg.call_id, row.state, kind=leg.kind, leg_id=leg.leg_id,
                    started_at=leg.started_at, source_file=name, reason=row.reason)

            if not await self._database.run(add):
                continue  # another worker was quicker
            if row.reason in NOT_RECORDED:
                self._not_written(f"leg {leg.leg_id} of call {leg.call_id}", leg.kind,
                                  source_name(leg.call_id, leg.kind, leg.leg_id), row.reason)
            elif row.state is State.MISSING:
                log.warning("leg %d of call %s ended %.0f s ago without its %s in %s",
                            leg.leg_id, leg.call_id, leg.ended_seconds_ago,
                            describe(leg.kind), config.incoming_dir)
            outcomes.append(Outcome(leg.call_id, row.state, row.reason or name, leg.kind,
                                    leg.leg_id))
        return outcomes

    def _not_written(self, whose: str, kind: Kind, name: str, reason: str) -> None:
        """Say that Asterisk wrote nothing of a recording, and remove its empty file if any (it
        holds nothing to keep; left, it would lie in the monitor directory for good)."""
        self.not_written += 1
        log.error("%s has no %s: %s; the call itself was answered as usual. Free space on the "
                  "disk of %s, or repair its mount", whose, describe(kind), reason,
                  self._config.incoming_dir)
        with contextlib.suppress(OSError):  # a read-only disk: the file stays, empty, harmless
            discard(self._config.incoming_dir / name)

    def _leg_pairing(self, leg: EndedLeg, now: float) -> Pairing | None:
        """The row an ended leg gets now, or None to wait."""
        if not valid_call_id(leg.call_id):  # call_legs references calls: cannot happen
            log.error("leg %d names call id %r: not an Asterisk unique id",
                      leg.leg_id, leg.call_id)
            return None
        try:
            stat = (self._config.incoming_dir / source_name(
                leg.call_id, leg.kind, leg.leg_id)).stat()
        except FileNotFoundError:
            mtime: float | None = None
            empty = False
        else:
            mtime, empty = stat.st_mtime, stat.st_size == 0
        config = self._config
        return pair_leg(mtime, now=now, ended_seconds_ago=leg.ended_seconds_ago,
                        settle_seconds=config.settle_seconds,
                        missing_after_seconds=config.missing_after_seconds, kind=leg.kind,
                        empty=empty,
                        disk_refuses=mtime is None and refuses_files(config.incoming_dir))

    def _pairing(self, call: EndedCall, now: float) -> list[Pairing] | None:
        """The rows an ended call gets now, or None to wait."""
        if not valid_call_id(call.call_id):
            log.error("refusing to pair a recording with call id %r: not an Asterisk unique id",
                      call.call_id)
            return [Pairing(Kind.MIXED, State.FAILED,
                            "invalid recording name (not an Asterisk unique id)")]
        mtimes = {}
        empty = set()
        for kind in CALL_KINDS:
            try:
                stat = (self._config.incoming_dir / source_name(call.call_id, kind)).stat()
            except FileNotFoundError:
                continue
            mtimes[kind] = stat.st_mtime
            if stat.st_size == 0:
                empty.add(kind)
        config = self._config
        return pair_files(
            mtimes, now=now, ended_seconds_ago=call.ended_seconds_ago,
            settle_seconds=config.settle_seconds,
            missing_after_seconds=config.missing_after_seconds,
            separate_legs=config.separate_legs, empty=frozenset(empty),
            disk_refuses=len(mtimes) < len(CALL_KINDS) and refuses_files(config.incoming_dir),
        )

    async def _add(
        self, connection: asyncpg.Connection, call: EndedCall, rows: list[Pairing]
    ) -> list[tuple[Pairing, str]]:
        """Create a call's rows in one transaction, so that a stop midway cannot leave the
        mixed row without its legs (a call with a mixed row is not paired again); returns the
        rows created, each with its source file."""
        added = []
        async with connection.transaction():
            for row in rows:
                name = source_name(call.call_id, row.kind) if row.state is State.PENDING else ""
                if await self._repository.add(
                    connection, call.call_id, row.state, kind=row.kind,
                    started_at=call.started_at, source_file=name, reason=row.reason,
                ):
                    added.append((row, name))
        return added

    async def sweep_incoming(self) -> int:
        """Remove Asterisk's files whose recordings are already stored; returns how many.

        Only a worker stopped between storing a recording and removing its source leaves one.
        Files that are not ``<unique id>.wav`` (or a leg's ``<unique id>-<leg>.wav``) are not
        ours and are left alone.
        """
        candidates = await asyncio.to_thread(incoming_sources, self._config.incoming_dir)
        if not candidates:
            return 0
        finished = await self._database.run(functools.partial(
            self._repository.finished,
            call_ids=sorted({source.call_id for source in candidates}),
        ))
        stored = [source for source in candidates if source in finished]
        for source in stored:
            discard(self._config.incoming_dir / source_name(*source))
        if stored:
            log.info("removed %d already stored recordings from %s", len(stored),
                     self._config.incoming_dir)
        return len(stored)

    # ----------------------------------------------------------------- processing

    async def reclaim_abandoned(self) -> int:
        """End the leases of jobs held by processes of this host that are gone, so they are
        claimed again now rather than when their lease runs out; returns how many."""
        host = self._holder.host
        held = await self._database.run(functools.partial(self._repository.held_on, host=host))
        reclaimed = 0
        for job in held:
            if not holder_is_gone(job.claim_pid_started, process_started(job.claim_pid)):
                continue
            if await self._database.run(functools.partial(self._repository.expire, held=job)):
                log.warning("recording job %d was held by process %d, which is gone: "
                            "taking it over", job.recording_id, job.claim_pid)
                reclaimed += 1
        return reclaimed

    async def process_next(self) -> Outcome | None:
        """Claim one job and see it through; None when there is nothing to claim, or while
        a full disk's retry delay lasts."""
        if self._room_wait_until is not None and time.monotonic() < self._room_wait_until:
            return None
        token = uuid.uuid4()
        job = await self._database.run(functools.partial(
            self._repository.claim, token=token, lease_seconds=self._config.lease_seconds,
            holder=self._holder, node=self._config.node,
        ))
        if job is None:
            return None
        return await self._process(job)

    async def _process(self, job: Job) -> Outcome:
        config = self._config
        if not valid_call_id(job.call_id) or job.source_file != source_name(
                job.call_id, job.kind, job.leg_id):
            # Rows are only created for valid ids; one that is not must still name no file.
            log.error("refusing recording job %d for call id %r: not an Asterisk unique id",
                      job.recording_id, job.call_id)
            return await self._fail(job, "invalid recording name", None)
        source = config.incoming_dir / job.source_file
        if job.attempts > config.max_attempts:
            reason = job.reason or "the worker stopped while processing it"
            return await self._give_up(
                job, source, f"gave up after {config.max_attempts} attempts: {reason}")
        absent = self._absent_source(job, source)
        if absent is not None:
            return await self._fail(job, *absent)
        final = config.storage_dir / storage_relpath(
            job.call_id, job.started_at, config.timezone, config.fmt, job.kind,
            leg_id=job.leg_id)
        temporary = final.parent / temp_name(job.call_id, job.token.hex, job.kind, job.leg_id)
        try:
            measured = await self._transcode_holding(job, source, temporary)
        except LeaseLost:
            discard(temporary)
            log.warning("%s was taken over by another worker (lease ran out): stopped",
                        _subject(job))
            return Outcome(job.call_id, State.PROCESSING, "taken over by another worker",
                           job.kind, job.leg_id)
        except NoSpace as exc:
            with contextlib.suppress(OSError):  # read-only: its next attempt removes it
                discard(temporary)
            return await self._wait_for_room(job, str(exc))
        except (BadAudio, TranscodeError) as exc:
            discard(temporary)
            if state_after_error(job.attempts, config.max_attempts,
                                 permanent=isinstance(exc, BadAudio)) is State.FAILED:
                return await self._give_up(job, source, str(exc))
            log.warning("%s: attempt %d failed, will retry: %s",
                        _subject(job), job.attempts, exc)
            await self._database.run(functools.partial(
                self._repository.release, job=job, reason=str(exc),
                retry_seconds=config.retry_seconds,
            ))
            return Outcome(job.call_id, State.PENDING, str(exc), job.kind, job.leg_id)
        return await self._store(job, source, temporary, final, measured)

    async def _wait_for_room(self, job: Job, reason: str) -> Outcome:
        """Hand a job that found a disk full back, its attempt not counted (module doc, 6)."""
        if self._room_wait_until is None:
            log.warning("recordings cannot be stored (%s): they wait where Asterisk left "
                        "them, none is given up on, until they can be written; one is tried "
                        "every %g s: %s", self._config.storage_dir, self._config.retry_seconds,
                        reason)
        self._room_wait_until = time.monotonic() + self._config.retry_seconds
        await self._database.run(functools.partial(
            self._repository.release, job=job, reason=reason,
            retry_seconds=self._config.retry_seconds, counted=False,
        ))
        return Outcome(job.call_id, State.PENDING, reason, job.kind, job.leg_id)

    def _absent_source(self, job: Job, source: Path) -> tuple[str, Path | None] | None:
        """Why the job has no source to process (reason, where it was kept), or None."""
        if source.exists():
            return None
        kept = self._config.quarantine_dir / job.source_file
        if kept.exists():  # quarantined by an attempt that stopped before recording it
            return job.reason or "kept in quarantine", kept
        return f"source file vanished from {self._config.incoming_dir}", None

    async def _store(
        self, job: Job, source: Path, temporary: Path, final: Path, measured: Measurements
    ) -> Outcome:
        """Rename the transcoded file into place and record it, under the job's row lock."""
        relpath = final.relative_to(self._config.storage_dir).as_posix()
        result = Processed(
            duration_seconds=measured.duration_seconds,
            silence_share=measured.silence_share,
            loudness_dbfs=measured.loudness_dbfs,
            format=self._config.fmt,
            storage_path=relpath,
            size_bytes=measured.size_bytes,
            sha256=measured.sha256,
        )

        async def commit(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                if not await self._repository.hold_claim(connection, job):
                    return False
                await asyncio.to_thread(put_in_place, temporary, final, job.call_id, job.kind,
                                        job.leg_id)
                return await self._repository.mark_done(connection, job, result)

        try:
            committed = await self._database.run(commit)
        except OSError as exc:
            if exc.errno not in _UNWRITABLE:
                raise
            # The disk filled up, or went read-only, between the transcoding and the rename.
            with contextlib.suppress(OSError):  # read-only: its next attempt removes it
                discard(temporary)
            return await self._wait_for_room(job, f"cannot be put in place: {exc}")
        if not committed:
            discard(temporary)
            log.warning("%s was taken over by another worker (lease ran out)", _subject(job))
            return Outcome(job.call_id, State.PROCESSING, "taken over by another worker",
                           job.kind, job.leg_id)
        # Stored and recorded: Asterisk's copy can go. A stop right here leaves it for the sweep.
        discard(source)
        if self._room_wait_until is not None:
            log.info("there is room to store recordings again: the waiting ones go on")
            self._room_wait_until = None
        if measured.header_repaired:
            log.warning("%s: the WAV header was never finalised (Asterisk stopped mid-call); "
                        "its sizes were recomputed from the file's length", _subject(job))
        log.info("%s stored: %s (%.1f s, %.0f%% silence)", _subject(job),
                 relpath, measured.duration_seconds, measured.silence_share * 100)
        return Outcome(job.call_id, State.DONE, relpath, job.kind, job.leg_id)

    async def _give_up(self, job: Job, source: Path, reason: str) -> Outcome:
        """Keep the source in quarantine and mark the job failed."""
        kept = await asyncio.to_thread(quarantine, source, self._config.quarantine_dir)
        return await self._fail(job, reason, kept)

    async def _fail(self, job: Job, reason: str, kept: Path | None) -> Outcome:
        log.error("%s failed: %s%s", _subject(job), reason,
                  f" (kept in {kept})" if kept else "")
        await self._database.run(functools.partial(
            self._repository.mark_failed, job=job, reason=reason,
            quarantine_path=str(kept) if kept else None,
        ))
        return Outcome(job.call_id, State.FAILED, reason, job.kind, job.leg_id)

    async def _transcode_holding(self, job: Job, source: Path, target: Path) -> Measurements:
        """:meth:`_transcode`, renewing the job's lease meanwhile; raises :class:`LeaseLost`
        (the child killed) if another worker took the job over."""
        transcoding = asyncio.create_task(self._transcode(source, target))
        keeping = asyncio.create_task(self._keep_lease(job))
        try:
            await asyncio.wait({transcoding, keeping}, return_when=asyncio.FIRST_COMPLETED)
            if transcoding.done():
                return transcoding.result()
            raise LeaseLost(f"recording job {job.recording_id} was taken over")
        finally:
            # Cancelling the transcoding kills and reaps the child (or it is over already).
            for task in (transcoding, keeping):
                task.cancel()
            await asyncio.gather(transcoding, keeping, return_exceptions=True)

    async def _keep_lease(self, job: Job) -> None:
        """Renew the job's lease every ``heartbeat_seconds``; return once a renewal is refused.

        While the database cannot be reached nobody can take the job over either, so the
        heartbeat keeps trying; the commit at the end checks the claim anyway.
        """
        config = self._config
        while True:
            await asyncio.sleep(config.heartbeat_seconds)
            try:
                held = await self._database.run(functools.partial(
                    self._repository.renew, job=job, lease_seconds=config.lease_seconds))
            except DatabaseUnavailable as exc:
                log.warning("%s: cannot renew its lease: %s", _subject(job), exc)
                continue
            if not held:
                return

    async def _transcode(self, source: Path, target: Path) -> Measurements:
        """Run the child process on one file; bounded by ``process_timeout`` and the file's
        length (:func:`recordings.domain.processing_bound`)."""
        try:
            size = (await asyncio.to_thread(source.stat)).st_size
        except OSError:
            size = 0  # gone meanwhile: the child says so at once
        timeout = processing_bound(self._config.process_timeout, size)
        process = await asyncio.create_subprocess_exec(
            *self._config.transcoder, str(source), str(target), self._config.fmt,
            f"{timeout:g}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group: killing it also kills the ffmpeg that pydub started.
            start_new_session=True,
            env={**os.environ, WORKER_PID_ENV: str(os.getpid())},
        )
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await process.communicate()
        except TimeoutError as exc:
            raise TranscodeError(f"processing took longer than {timeout:.0f} s") from exc
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        lines = stdout[-_OUTPUT_LIMIT:].decode("utf-8", errors="replace").strip().splitlines()
        try:
            report = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            report = {}
        if process.returncode == 0:
            try:
                return Measurements(**report)
            except TypeError as exc:
                raise TranscodeError(f"processing reported {report!r}") from exc
        error = report.get("error") or stderr[-2000:].decode("utf-8", errors="replace").strip()
        if process.returncode == EXIT_BAD_AUDIO:
            raise BadAudio(error)
        if process.returncode == EXIT_NO_SPACE:
            raise NoSpace(f"no space to store it, waiting for room: {error}")
        if process.returncode == EXIT_READ_ONLY:
            raise NoSpace(f"its storage is read-only, waiting until it can be written: {error}")
        raise TranscodeError(f"processing exited with {process.returncode}: {error}")


def _file_of(kind: Kind) -> str:
    """A missing file, for the log."""
    return "a recording" if kind is Kind.MIXED else f"its {describe(kind)}"


def _subject(job: Job) -> str:
    """What a job processes, for the log: ``recording of call '1.2'``, ``caller leg of ...``."""
    leg = f" {job.leg_id}" if job.leg_id is not None else ""
    return f"{describe(job.kind)}{leg} of call {job.call_id!r}"
