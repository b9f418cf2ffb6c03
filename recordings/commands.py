"""``siaga112 recordings process|retention|hold``: what the people running the line type.

Output is in Bahasa Indonesia (the operators and supervisors read it); logs stay in English.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from recordings.domain import State
from recordings.retention import Removal, apply_retention, policy_from_settings
from recordings.store import RecordingRepository
from recordings.worker import Outcome, RecordingsConfig, RecordingWorker
from telephony.db.connection import Database
from telephony.settings import Settings


def format_outcome(outcome: Outcome) -> str:
    """One line per recording handled by ``recordings process``."""
    return (f"  {outcome.call_id:24} {outcome.kind.label:9} "
            f"{outcome.state.label:13} {outcome.detail}")


def format_removal(removal: Removal, timezone: str) -> str:
    """One line per recording removed by ``recordings retention``."""
    day = removal.started_at.astimezone(ZoneInfo(timezone)).date().isoformat()
    gone = "" if removal.file_found else "  (berkas sudah tidak ada)"
    return (f"  {removal.call_id:24} {removal.kind.label:9} "
            f"{removal.category or 'tanpa kategori':13} {day}  {removal.storage_path}{gone}")


async def process(settings: Settings) -> int:
    """Pair ended calls with their files and process every job that can be processed now."""
    database = Database(settings)
    try:
        worker = RecordingWorker(database, RecordingsConfig.from_settings(settings))
        await worker.sweep_incoming()
        outcomes = await worker.enqueue()
        await worker.reclaim_abandoned()  # a killed earlier run's jobs: now, not after the lease
        # A job that failed in a way a retry may fix is not claimable again at once, so this ends.
        while (outcome := await worker.process_next()) is not None:
            outcomes.append(outcome)
    finally:
        await database.close()
    if not outcomes:
        print("Rekaman: tidak ada yang perlu diproses.")
        return 0
    print(f"Rekaman: {len(outcomes)} ditangani.")
    for outcome in outcomes:
        print(format_outcome(outcome))
    return 1 if any(o.state is State.FAILED for o in outcomes) else 0


async def retention(settings: Settings, *, dry_run: bool, now: datetime | None = None) -> int:
    """Apply the retention policy and print what it removed (or would remove)."""
    database = Database(settings)
    try:
        removed = await apply_retention(
            database, policy_from_settings(settings), settings.recordings_dir,
            now or datetime.now(UTC), dry_run=dry_run,
        )
    finally:
        await database.close()
    failed = [r for r in removed if r.error is not None]
    removed = [r for r in removed if r.error is None]
    if failed:
        print(f"Retensi: {len(failed)} rekaman tidak dapat dihapus (dicoba lagi berikutnya):")
        for removal in failed:
            print(f"{format_removal(removal, settings.timezone)}: {removal.error}")
    if not removed:
        if not failed:
            print("Retensi: tidak ada rekaman yang melewati masa simpannya.")
        return 1 if failed else 0
    size_mb = sum(r.size_bytes or 0 for r in removed) / 1_000_000
    if dry_run:
        print(f"Retensi (uji coba, tidak ada yang dihapus): {len(removed)} rekaman "
              f"({size_mb:.1f} MB) akan dihapus:")
    else:
        print(f"Retensi: {len(removed)} rekaman ({size_mb:.1f} MB) dihapus:")
    for removal in removed:
        print(format_removal(removal, settings.timezone))
    return 1 if failed else 0


async def hold(settings: Settings, call_id: str, *, release: bool) -> int:
    """Set or lift the legal hold on a call's recordings."""
    database = Database(settings)
    repository = RecordingRepository()
    try:
        found = await database.run(
            lambda connection: repository.set_legal_hold(connection, call_id, not release))
    finally:
        await database.close()
    if not found:
        print(f"Panggilan {call_id!r} tidak punya rekaman.")
        return 1
    print(f"Penahanan hukum {'dilepas dari' if release else 'dipasang pada'} rekaman "
          f"panggilan {call_id}.")
    return 0
