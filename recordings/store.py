"""SQL for the recordings family: the ``recordings`` table, record and work queue in one.

A job is claimed with ``FOR UPDATE SKIP LOCKED`` under a lease: the claiming worker stamps its
own token and a ``lease_until``; once the lease has run out, any worker may claim the job again
(the attempt counter says how often that happened). Every state change names the states it may
come from (:func:`recordings.domain.sources_of`), and the worker's own changes also its token,
so a worker whose lease was taken over cannot overwrite the new owner's result. The lease is
short and its holder renews it while it works (:meth:`RecordingRepository.renew`); the claim
also names the holding process (host, pid, start time: :mod:`recordings.holder`), so a worker
on the same host can take over at once the jobs of a holder that died
(:meth:`RecordingRepository.expire`).

A call has one row per kind (its mixed recording and, when legs are recorded, one per leg), and
one per call-back an operator placed to its caller (kind ``callback``, with the leg's id) and
per agency an operator spoke to before handing the caller over or joining them (kind
``consult``, likewise); each is a job of its own, so a leg that cannot be processed never
holds up the mixed recording.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from recordings.domain import INITIAL_STATES, LEG_KINDS, Kind, Source, State, sources_of
from recordings.holder import Holder
from telephony.db.rows import from_row
from telephony.incidents.model import ENDED_STATUSES


@dataclass(frozen=True)
class EndedCall:
    """A call that has ended and has no recording row yet."""

    call_id: str
    started_at: datetime
    ended_seconds_ago: float


@dataclass(frozen=True)
class EndedLeg:
    """A leg of a call that is recorded on its own (an operator's call-back of the caller, a
    consult with an agency: :data:`recordings.domain.LEG_KINDS`), answered (so recorded) and
    ended, that has no recording row yet."""

    leg_id: int
    call_id: str  # the call the leg belongs to
    started_at: datetime  # that call's: the leg's recording is filed and retained with it
    ended_seconds_ago: float
    kind: Kind  # the recording's


@dataclass(frozen=True)
class Job:
    """A recording claimed for processing by the holder of ``token``."""

    recording_id: int
    call_id: str
    kind: Kind
    source_file: str
    started_at: datetime
    attempts: int
    token: uuid.UUID
    reason: str | None  # the previous attempt's error, if any
    leg_id: int | None = None  # a call-back's leg


@dataclass(frozen=True)
class HeldJob:
    """A job being processed on this host, and the process holding it."""

    recording_id: int
    claim_token: uuid.UUID
    claim_pid: int
    claim_pid_started: int | None


@dataclass(frozen=True)
class Processed:
    """What a finished job stores."""

    duration_seconds: float
    silence_share: float
    loudness_dbfs: float | None
    format: str
    storage_path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Recording:
    """A recording row as the database holds it."""

    recording_id: int
    call_id: str
    kind: Kind
    state: State
    source_file: str
    started_at: datetime
    attempts: int
    reason: str | None
    duration_seconds: float | None
    silence_share: float | None
    loudness_dbfs: float | None
    format: str | None
    storage_path: str | None
    size_bytes: int | None
    sha256: str | None
    quarantine_path: str | None
    legal_hold: bool
    processed_at: datetime | None
    expired_at: datetime | None
    leg_id: int | None = None  # a leg's (kinds callback and consult)


# Sorted: a stable parameter for the statements' plan cache.
_ENDED = sorted(status.value for status in ENDED_STATUSES)


@dataclass(frozen=True)
class RetentionCandidate:
    """A stored recording old enough that retention must look at it."""

    recording_id: int
    call_id: str
    kind: Kind
    category: str | None
    started_at: datetime
    storage_path: str
    size_bytes: int | None
    legal_hold: bool
    # The call's incident, if any: still being worked on (its calls' recordings are the
    # case's evidence), or when it ended (closed, cancelled, a prank): the retention is
    # counted from then.
    incident_open: bool = False
    incident_ended_at: datetime | None = None


@dataclass(frozen=True)
class Backlog:
    """Recordings waiting for the worker, and how long the oldest has waited."""

    waiting: int
    oldest_seconds: float | None  # None when nothing waits


def _states(target: State) -> list[str]:
    return [s.value for s in sources_of(target)]


class RecordingRepository:
    """Reads and writes recordings. Holds no connection: callers pass one in."""

    async def calls_awaiting_recording(
        self, connection: asyncpg.Connection, *, lookback_hours: int, limit: int,
        node: str | None = None, with_files: Sequence[str] = (),
    ) -> list[EndedCall]:
        """Calls that ended within ``lookback_hours``, or before that if their file is in the
        monitor directory (``with_files``, their ids), and have no recording row, oldest
        first (up to ``limit`` of each); only those of the cluster node ``node`` (its
        systemname), if given: another node's files are in that node's monitor directory.

        The lookback bounds the scan, and keeps a first start on an old database from reporting
        every call made before recording began as missing. It must not hide a file: a line
        down longer than the lookback while Asterisk went on recording finds, once the
        backfill has written them, calls that ended before it with their files waiting.
        Two statements, each on its own index (``calls.ended_at``, the call ids): one with
        both conditions OR-ed read every call ever made on each pass. The worker names only
        files that have not changed for the lookback, so the second is rarely run at all.
        """
        awaiting = """
            SELECT c.call_id, COALESCE(c.arrived_at, c.ended_at) AS started_at,
                   extract(epoch FROM now() - c.ended_at)::float8 AS ended_seconds_ago
            FROM calls c
            WHERE {which}
              AND NOT EXISTS (SELECT 1 FROM recordings r
                              WHERE r.call_id = c.call_id AND r.kind = 'mixed')
              AND ($3::text IS NULL OR starts_with(c.call_id, $3 || '-'))
            ORDER BY c.ended_at
            LIMIT $2
            """
        older = await connection.fetch(awaiting.format(which="""
            c.call_id = ANY($4::text[])
              AND c.ended_at <= now() - make_interval(hours => $1)"""),
            lookback_hours, limit, node, list(with_files),
        ) if with_files else []
        recent = await connection.fetch(awaiting.format(which="""
            c.ended_at IS NOT NULL AND c.ended_at > now() - make_interval(hours => $1)"""),
            lookback_hours, limit, node,
        )
        return [from_row(EndedCall, row) for row in [*older, *recent]]

    async def legs_awaiting_recording(
        self, connection: asyncpg.Connection, *, lookback_hours: int, limit: int,
        node: str | None = None, with_files: Sequence[int] = (),
    ) -> list[EndedLeg]:
        """Call-backs, attended transfers and conferences that ended within
        ``lookback_hours``, or at any time if their file is in the monitor directory
        (``with_files``, their leg ids), after the called party answered (the dialplan starts
        recording at that answer, before it reports it) and have no recording row, oldest
        first; only those the cluster node ``node`` placed, if given: the file is in the
        monitor directory of the node whose Asterisk dialled, which need not be the node that
        took the call."""
        rows = await connection.fetch(
            """
            SELECT l.leg_id, l.call_id,
                   COALESCE(c.arrived_at, l.requested_at) AS started_at,
                   extract(epoch FROM now() - l.ended_at)::float8 AS ended_seconds_ago,
                   CASE l.kind WHEN 'callback' THEN 'callback' ELSE 'consult' END AS kind
            FROM call_legs l JOIN calls c USING (call_id)
            WHERE l.kind IN ('callback', 'attended_transfer', 'conference')
              AND l.answered_at IS NOT NULL AND l.ended_at IS NOT NULL
              AND (l.ended_at > now() - make_interval(hours => $1)
                   OR l.leg_id = ANY($4::bigint[]))
              AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.leg_id = l.leg_id)
              -- The node that placed the call-back (its channels' ids name it) has its
              -- file, whichever node took the call.
              AND ($3::text IS NULL OR starts_with(COALESCE(l.channel_id, l.call_id), $3 || '-'))
            ORDER BY l.ended_at
            LIMIT $2
            """,
            lookback_hours, limit, node, list(with_files),
        )
        return [from_row(EndedLeg, row) for row in rows]

    async def add(
        self, connection: asyncpg.Connection, call_id: str, state: State, *,
        started_at: datetime, source_file: str = "", reason: str | None = None,
        kind: Kind = Kind.MIXED, leg_id: int | None = None,
    ) -> bool:
        """Create the call's recording row of ``kind`` (a call-back's: of its ``leg_id``) in
        ``state``; False if it has one. A legal hold is on the call: a row added after it (a
        call-back recorded days later) is held too."""
        if state not in INITIAL_STATES:
            raise ValueError(f"a recording cannot start as {state}")
        if (kind in LEG_KINDS) != (leg_id is not None):
            raise ValueError("a leg's recording, and only one, names its leg")
        # The arbiter is the partial unique index of the row's own sort (0014_callbacks.sql).
        conflict = ("(leg_id) WHERE leg_id IS NOT NULL" if leg_id is not None
                    else "(call_id, kind) WHERE leg_id IS NULL")
        inserted = await connection.fetchval(
            f"""
            INSERT INTO recordings (call_id, kind, state, source_file, started_at, reason,
                                    leg_id, legal_hold)
            VALUES ($1, $2, $3, $4, $5, $6, $7,
                    EXISTS (SELECT 1 FROM recordings h WHERE h.call_id = $1 AND h.legal_hold))
            ON CONFLICT {conflict} DO NOTHING
            RETURNING true
            """,  # noqa: S608 - one of two constant clauses
            call_id, kind.value, state.value, source_file, started_at, reason, leg_id,
        )
        return bool(inserted)

    async def backlog(self, connection: asyncpg.Connection) -> Backlog:
        """Jobs pending or being processed (the queue's partial index answers this)."""
        row = await connection.fetchrow(
            """
            SELECT count(*) AS waiting,
                   extract(epoch FROM now() - min(enqueued_at))::float8 AS oldest_seconds
            FROM recordings WHERE state IN ('pending', 'processing')
            """)
        assert row is not None  # an aggregate always answers one row
        return from_row(Backlog, row)

    async def claim(
        self, connection: asyncpg.Connection, token: uuid.UUID, lease_seconds: float,
        holder: Holder | None = None, node: str | None = None,
    ) -> Job | None:
        """Claim the oldest pending job, or one whose worker's lease ran out; None if none.

        ``holder`` is the claiming process (None: one that cannot be judged, which only the
        lease bounds); ``node``: only a job of that cluster node's calls and call-backs (its
        files)."""
        row = await connection.fetchrow(
            """
            UPDATE recordings r SET
                state = 'processing', attempts = r.attempts + 1, claim_token = $1,
                lease_until = now() + make_interval(secs => $2), updated_at = now(),
                claim_host = $3, claim_pid = $4, claim_pid_started = $5
            WHERE r.recording_id = (
                SELECT recording_id FROM recordings
                -- A pending job's lease_until is when it may be retried; a processing job's
                -- is when its worker's claim runs out.
                WHERE state IN ('pending', 'processing')
                  AND (lease_until IS NULL OR lease_until < now())
                  -- A leg's file is on the node that placed it (see
                  -- legs_awaiting_recording), any other on the call's node.
                  AND ($6::text IS NULL OR starts_with(COALESCE(
                      (SELECT l.channel_id FROM call_legs l
                       WHERE l.leg_id = recordings.leg_id), call_id), $6 || '-'))
                ORDER BY recording_id
                FOR UPDATE SKIP LOCKED
                LIMIT 1
            )
            RETURNING r.recording_id, r.call_id, r.kind, r.source_file, r.started_at,
                      r.attempts, r.reason, r.leg_id
            """,
            token, lease_seconds, holder.host if holder else None,
            holder.pid if holder else None, holder.started if holder else None, node,
        )
        if row is None:
            return None
        return from_row(Job, row, token=token)

    async def renew(
        self, connection: asyncpg.Connection, job: Job, lease_seconds: float
    ) -> bool:
        """Extend the lease of a job ``job.token`` still holds (the heartbeat); False if not."""
        renewed = await connection.fetchval(
            """
            UPDATE recordings SET lease_until = now() + make_interval(secs => $3)
            WHERE recording_id = $1 AND claim_token = $2 AND state = 'processing'
            RETURNING true
            """,
            job.recording_id, job.token, lease_seconds,
        )
        return bool(renewed)

    async def held_on(self, connection: asyncpg.Connection, host: str) -> list[HeldJob]:
        """Jobs being processed by a process of ``host`` whose lease has not run out."""
        rows = await connection.fetch(
            """
            SELECT recording_id, claim_token, claim_pid, claim_pid_started FROM recordings
            WHERE state = 'processing' AND claim_host = $1 AND lease_until >= now()
              AND claim_token IS NOT NULL AND claim_pid IS NOT NULL
            ORDER BY recording_id
            """,
            host,
        )
        return [from_row(HeldJob, row) for row in rows]

    async def expire(self, connection: asyncpg.Connection, held: HeldJob) -> bool:
        """End the lease of a job whose holder died, if that holder still holds it, so that the
        next claim takes it over; False if it moved on meanwhile."""
        expired = await connection.fetchval(
            """
            UPDATE recordings SET lease_until = now() - interval '1 second', updated_at = now()
            WHERE recording_id = $1 AND claim_token = $2 AND state = 'processing'
            RETURNING true
            """,
            held.recording_id, held.claim_token,
        )
        return bool(expired)

    async def hold_claim(self, connection: asyncpg.Connection, job: Job) -> bool:
        """Lock the job's row if ``job.token`` still holds it (call inside a transaction).

        While the lock is held nobody can claim the job, so the holder may put its file in
        place and record the result knowing that nobody else is doing the same.
        """
        held = await connection.fetchval(
            """
            SELECT true FROM recordings
            WHERE recording_id = $1 AND state = 'processing' AND claim_token = $2
            FOR UPDATE
            """,
            job.recording_id, job.token,
        )
        return bool(held)

    async def mark_done(self, connection: asyncpg.Connection, job: Job, result: Processed) -> bool:
        """Record a finished job; False if ``job.token`` no longer holds it."""
        updated = await connection.fetchval(
            """
            UPDATE recordings SET
                state = 'done', duration_seconds = $3, silence_share = $4, loudness_dbfs = $5,
                format = $6, storage_path = $7, size_bytes = $8, sha256 = $9, reason = NULL,
                claim_token = NULL, lease_until = NULL, processed_at = now(), updated_at = now()
            WHERE recording_id = $1 AND claim_token = $2 AND state = ANY($10::text[])
            RETURNING true
            """,
            job.recording_id, job.token, result.duration_seconds, result.silence_share,
            result.loudness_dbfs, result.format, result.storage_path, result.size_bytes,
            result.sha256, _states(State.DONE),
        )
        return bool(updated)

    async def release(
        self, connection: asyncpg.Connection, job: Job, reason: str, retry_seconds: float,
        *, counted: bool = True,
    ) -> bool:
        """Hand the job back for a retry in ``retry_seconds``, noting why this attempt failed;
        not ``counted``: the attempt failed for a reason outside the recording (a full disk),
        so it does not bring the job closer to being given up."""
        updated = await connection.fetchval(
            """
            UPDATE recordings SET
                state = 'pending', reason = $3, claim_token = NULL,
                attempts = attempts - CASE WHEN $6 THEN 0 ELSE 1 END,
                lease_until = now() + make_interval(secs => $4), updated_at = now()
            WHERE recording_id = $1 AND claim_token = $2 AND state = ANY($5::text[])
            RETURNING true
            """,
            job.recording_id, job.token, reason, retry_seconds, _states(State.PENDING), counted,
        )
        return bool(updated)

    async def mark_failed(
        self, connection: asyncpg.Connection, job: Job, reason: str,
        quarantine_path: str | None,
    ) -> bool:
        """Give the job up for good, noting why and where its source was kept."""
        updated = await connection.fetchval(
            """
            UPDATE recordings SET state = 'failed', reason = $3, quarantine_path = $4,
                                  claim_token = NULL, lease_until = NULL, updated_at = now()
            WHERE recording_id = $1 AND claim_token = $2 AND state = ANY($5::text[])
            RETURNING true
            """,
            job.recording_id, job.token, reason, quarantine_path, _states(State.FAILED),
        )
        return bool(updated)

    async def finished(
        self, connection: asyncpg.Connection, call_ids: list[str]
    ) -> set[Source]:
        """The recordings of ``call_ids`` that are stored (or expired)."""
        rows = await connection.fetch(
            """
            SELECT call_id, kind, leg_id FROM recordings
            WHERE call_id = ANY($1::text[]) AND state IN ('done', 'expired')
            """,
            call_ids,
        )
        return {Source(row["call_id"], Kind(row["kind"]), row["leg_id"]) for row in rows}

    async def recording(self, connection: asyncpg.Connection, call_id: str) -> Recording | None:
        """The (mixed) recording of a call."""
        row = await connection.fetchrow(
            "SELECT * FROM recordings WHERE call_id = $1 AND kind = 'mixed'", call_id
        )
        return from_row(Recording, row) if row is not None else None

    async def recording_by_id(
        self, connection: asyncpg.Connection, recording_id: int
    ) -> Recording | None:
        """One recording by its id."""
        row = await connection.fetchrow(
            "SELECT * FROM recordings WHERE recording_id = $1", recording_id)
        return from_row(Recording, row) if row is not None else None

    async def recordings_of_calls(
        self, connection: asyncpg.Connection, call_ids: list[str]
    ) -> list[Recording]:
        """Every recording of these calls, in recording order."""
        rows = await connection.fetch(
            "SELECT * FROM recordings WHERE call_id = ANY($1::text[]) ORDER BY recording_id",
            call_ids,
        )
        return [from_row(Recording, row) for row in rows]

    async def set_legal_hold(
        self, connection: asyncpg.Connection, call_id: str, hold: bool
    ) -> bool:
        """Set or lift the legal hold on a call's recordings; False if it has none."""
        updated = await connection.fetch(
            """
            UPDATE recordings SET legal_hold = $2, updated_at = now()
            WHERE call_id = $1
            RETURNING recording_id
            """,
            call_id, hold,
        )
        return bool(updated)

    async def retention_candidates(
        self, connection: asyncpg.Connection, *, started_before: datetime,
        by_category: Mapping[str, datetime] | None = None, others_before: datetime | None = None,
    ) -> list[RetentionCandidate]:
        """Stored recordings of calls without a legal hold that started before
        ``started_before``, and before their call's category's cutoff in ``by_category``
        (a call of any other category, or of none: ``others_before``, if given).

        The cutoffs by category keep a pass to what may have expired: with ``started_before``
        alone (the shortest retention) every emergency call kept for ten years would be read
        at every daily pass, millions of rows after a few years.

        A hold is on the call: any of its recordings held keeps them all, whatever a row's own
        flag says (a call-back paired while the hold was being set may have missed it). A call's
        legs share its start, category and hold, so they come right after its mixed recording
        and expire with it.
        """
        cutoffs = dict(by_category or {})
        rows = await connection.fetch(
            """
            SELECT r.recording_id, r.call_id, r.kind, c.ivr_category AS category,
                   r.started_at, r.storage_path, r.size_bytes, r.legal_hold,
                   COALESCE(i.status <> ALL($2::text[]), false) AS incident_open,
                   CASE WHEN i.status = ANY($2::text[]) THEN i.status_changed_at END
                       AS incident_ended_at
            FROM recordings r JOIN calls c USING (call_id)
            LEFT JOIN incident_calls ic USING (call_id)
            LEFT JOIN incidents i USING (incident_id)
            WHERE r.state = 'done' AND r.started_at < $1
              AND r.started_at < COALESCE(
                  (SELECT u.cutoff FROM unnest($3::text[], $4::timestamptz[]) AS u (category,
                                                                                   cutoff)
                   WHERE u.category = c.ivr_category), $5)
              AND NOT EXISTS (
                SELECT 1 FROM recordings h WHERE h.call_id = r.call_id AND h.legal_hold)
            ORDER BY r.started_at, r.call_id, r.kind <> 'mixed', r.kind
            """,
            started_before, _ENDED, list(cutoffs), list(cutoffs.values()),
            others_before or started_before,
        )
        return [from_row(RetentionCandidate, row) for row in rows]

    async def hold_for_expiry(
        self, connection: asyncpg.Connection, candidate: RetentionCandidate
    ) -> bool:
        """Lock a candidate's row if it is still stored and its call not on hold (inside a
        transaction).

        A legal hold set after the candidates were listed wins: the row is re-read under lock;
        so does an incident the call was linked to meanwhile, or one reopened by a new link.
        """
        held = await connection.fetchval(
            """
            SELECT true FROM recordings r
            WHERE r.recording_id = $1 AND r.state = ANY($2::text[]) AND NOT EXISTS (
                SELECT 1 FROM recordings h WHERE h.call_id = r.call_id AND h.legal_hold)
              AND NOT EXISTS (
                SELECT 1 FROM incident_calls ic JOIN incidents i USING (incident_id)
                WHERE ic.call_id = r.call_id
                  AND (i.status <> ALL($3::text[]) OR i.status_changed_at > $4))
            FOR UPDATE OF r
            """,
            candidate.recording_id, _states(State.EXPIRED), _ENDED,
            candidate.incident_ended_at or candidate.started_at,
        )
        return bool(held)

    async def mark_expired(
        self, connection: asyncpg.Connection, candidate: RetentionCandidate
    ) -> None:
        """Record that the candidate's file was removed; its measurements and checksum stay."""
        await connection.execute(
            """
            UPDATE recordings SET state = 'expired', expired_at = now(), updated_at = now()
            WHERE recording_id = $1
            """,
            candidate.recording_id,
        )
