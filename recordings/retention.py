"""Applying the retention policy: stored recordings past their category's age are removed.

Which recordings expire is :meth:`recordings.domain.RetentionPolicy.is_expired`; here each one
is removed under its row lock, re-read so that a legal hold set meanwhile still wins, and its
row kept as ``expired`` with its measurements and checksum, so the record of the call says
that a recording existed and when it was removed. Failed recordings (kept in quarantine) are
never removed here: somebody has to look at them. A call's incident still being worked on keeps
its recordings, and once it has ended their retention is counted from its end
(:meth:`~recordings.domain.RetentionPolicy.is_expired`).

A call's legs have its start, its category and its legal hold, so they expire in the same run as
its mixed recording (listed right after it) and a hold keeps them all.

A file that cannot be removed (a disk the kernel remounted read-only, a directory the user
running retention may not write) is named with the reason in one log line and its row stays
``done``, so the next run tries it again; the run goes on with the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from recordings.domain import Kind, RetentionPolicy, describe
from recordings.store import RecordingRepository, RetentionCandidate
from telephony.core.errors import SiagaError
from telephony.core.loops import run_passes
from telephony.core.storage import StoredFileError, checked_relpath
from telephony.core.text import os_reason
from telephony.db.connection import Database
from telephony.settings import Settings

log = logging.getLogger("recordings.retention")


def policy_from_settings(settings: Settings) -> RetentionPolicy:
    """The line's retention policy."""
    return RetentionPolicy(
        emergency_days=settings.recordings_retention_emergency_days,
        complaint_days=settings.recordings_retention_complaint_days,
        information_days=settings.recordings_retention_information_days,
        default_days=settings.recordings_retention_default_days,
    )


@dataclass(frozen=True)
class Removal:
    """One recording the policy removed (or, in a dry run, would remove)."""

    call_id: str
    category: str | None
    started_at: datetime
    storage_path: str
    size_bytes: int | None
    file_found: bool  # False: the file was already gone, only the row was marked
    kind: Kind = Kind.MIXED
    # Why the file could not be removed (in Bahasa Indonesia): nothing was, its row stays
    # 'done' for the next run.
    error: str | None = None


class _NotRemoved(SiagaError):
    """The file is there and could not be removed; the transaction marking it rolls back."""


def _remove_file(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        # Raised as ours: the database layer reads any OSError as the server gone.
        raise _NotRemoved(os_reason(exc)) from exc
    return True


async def apply_retention(
    database: Database,
    policy: RetentionPolicy,
    storage_dir: Path,
    now: datetime,
    *,
    dry_run: bool = False,
    repository: RecordingRepository | None = None,
) -> list[Removal]:
    """Remove every stored recording that has expired at ``now``; returns what was removed,
    and what could not be (its ``error`` set)."""
    repo = repository or RecordingRepository()

    async def candidates(connection: asyncpg.Connection) -> list[RetentionCandidate]:
        by_category, others = policy.cutoffs(now)
        return await repo.retention_candidates(
            connection, started_before=policy.earliest_cutoff(now), by_category=by_category,
            others_before=others)

    removed = []
    for candidate in await database.run(candidates):
        if not policy.is_expired(candidate.category, candidate.started_at,
                                 candidate.legal_hold, now,
                                 incident_open=candidate.incident_open,
                                 incident_ended_at=candidate.incident_ended_at):
            continue
        try:
            path = storage_dir / checked_relpath(candidate.storage_path)
        except StoredFileError as exc:
            log.error("retention skips call %s: %s", candidate.call_id, exc)
            continue
        if dry_run:
            removed.append(_removal(candidate, await asyncio.to_thread(path.exists)))
            continue

        async def expire(connection: asyncpg.Connection, candidate: RetentionCandidate = candidate,
                         path: Path = path) -> bool | None:
            async with connection.transaction():
                if not await repo.hold_for_expiry(connection, candidate):
                    return None  # put on hold, or expired by someone else, since the listing
                # Removed before the row is marked: a crash in between leaves a row that the
                # next run marks, never a file that outlives its retention unnoticed.
                found = await asyncio.to_thread(_remove_file, path)
                await repo.mark_expired(connection, candidate)
                return found

        try:
            found = await database.run(expire)
        except _NotRemoved as exc:
            log.error("retention could not remove %s (the %s of call %s): %s; it stays for "
                      "the next run", path, describe(candidate.kind), candidate.call_id,
                      exc.__cause__)
            removed.append(_removal(candidate, True, error=exc.message))
            continue
        if found is None:
            continue
        log.info("retention removed the %s of call %s (%s, started %s)",
                 describe(candidate.kind),
                 candidate.call_id, candidate.category or "no category", candidate.started_at)
        removed.append(_removal(candidate, found))
    return removed


def _removal(candidate: RetentionCandidate, found: bool, error: str | None = None) -> Removal:
    return Removal(candidate.call_id, candidate.category, candidate.started_at,
                   candidate.storage_path, candidate.size_bytes, found, candidate.kind, error)


async def run_retention(
    database: Database, policy: RetentionPolicy, storage_dir: Path, interval_seconds: float,
    *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Apply the policy at once, then every ``interval_seconds``, until cancelled.

    The line does it itself: a site that had to remember a cron job for it found its disk full
    of recordings past their retention a year or two on. Each removal is logged where it
    happens; a pass that removed or failed to remove anything adds one line of totals. Nodes of
    a cluster share the recordings and may each run it: a row is locked and re-read before its
    file goes, so only one of them removes it.
    """

    async def one_pass() -> None:
        outcome = await apply_retention(database, policy, storage_dir, clock())
        failed = sum(1 for removal in outcome if removal.error is not None)
        gone = [removal for removal in outcome if removal.error is None]
        if gone or failed:
            log.info("retention pass: %d recordings (%.1f MB) removed, %d could not be",
                     len(gone), sum(r.size_bytes or 0 for r in gone) / 1_000_000, failed)

    await run_passes("recordings retention", one_pass,
                     lambda: asyncio.sleep(interval_seconds), log)
