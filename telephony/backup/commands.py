"""``siaga112 backup DIR`` (then the old backups beside it pruned) and ``siaga112 restore DIR
[--force]``: what the IT staff read."""

from __future__ import annotations

from pathlib import Path

from telephony.backup.model import human_size
from telephony.backup.pruning import prune_backups
from telephony.backup.service import back_up, restore
from telephony.settings import Settings


async def backup(settings: Settings, target: Path) -> int:
    """Write a backup, then remove the old ones beside it; print where and what it holds,
    and what was removed. A backup that is whole exits 0 even when an old one could not be
    removed (the line says which and why; the disk alert follows a backup disk filling)."""
    manifest = await back_up(settings, target)
    total = sum(entry.size for entry in manifest.every_file)
    print(f"Cadangan ditulis ke {target}: basis data (skema versi "
          f"{manifest.schema_version}) dan {len(manifest.files)} berkas, {human_size(total)}.")
    summary = (await prune_backups(settings, target)).summary()
    if summary is not None:
        print(f"Cadangan lama: {summary}")
    return 0


async def restore_backup(settings: Settings, source: Path, *, force: bool) -> int:
    """Restore a backup; print what came back."""
    report = await restore(settings, source, force=force)
    manifest = report.manifest
    print(f"Cadangan {source} dari {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC "
          f"dipulihkan: basis data (skema versi {manifest.schema_version}"
          + (f", {report.migrations_applied} migrasi baru diterapkan" if
             report.migrations_applied else "")
          + f") dan {report.files} berkas, semua diperiksa SHA-256.")
    return 0
