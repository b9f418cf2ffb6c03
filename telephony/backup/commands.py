"""``siaga112 backup DIR`` and ``siaga112 restore DIR [--force]``: what the IT staff read."""

from __future__ import annotations

from pathlib import Path

from telephony.backup.model import human_size
from telephony.backup.service import back_up, restore
from telephony.settings import Settings


async def backup(settings: Settings, target: Path) -> int:
    """Write a backup; print where and what it holds."""
    manifest = await back_up(settings, target)
    total = sum(entry.size for entry in manifest.every_file)
    print(f"Cadangan ditulis ke {target}: basis data (skema versi "
          f"{manifest.schema_version}) dan {len(manifest.files)} berkas, {human_size(total)}.")
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
