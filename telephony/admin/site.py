"""Site settings an admin changes in the console: the dispatch target of each report type
(category) and the shift roster (pure: no I/O). They start as the settings file says; once an
admin saves them they are kept in the database and win over the file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from typing import Any, Final

from telephony.admin.errors import InvalidConfig
from telephony.incidents.model import ReportType
from telephony.settings import SHIFT_NAME, ShiftDefinition

TARGET_SECONDS: Final = (60, 24 * 3600)  # a minute to a day
MAX_SHIFTS: Final = 6
_CLOCK: Final = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def parse_dispatch_targets(raw: Any) -> dict[ReportType, int]:
    """Report type -> seconds from answer to dispatch; a type left out has no target."""
    if not isinstance(raw, Mapping):
        raise InvalidConfig("Target pengiriman harus berupa daftar jenis laporan: detik.",
                            "targets")
    targets: dict[ReportType, int] = {}
    low, high = TARGET_SECONDS
    for name, seconds in raw.items():
        try:
            kind = ReportType(name)
        except ValueError:
            raise InvalidConfig(f"Jenis laporan {str(name)[:40]!r} tidak dikenal.",
                                "targets") from None
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not (
                low <= seconds <= high):
            raise InvalidConfig(f"Target {kind.value} harus {low}-{high} detik.", "targets")
        targets[kind] = seconds
    return targets


def dispatch_targets_value(targets: Mapping[ReportType, int]) -> dict[str, int]:
    """The stored form of :func:`parse_dispatch_targets`'s result."""
    return {kind.value: seconds for kind, seconds in sorted(targets.items())}


def parse_shifts(raw: Any) -> tuple[ShiftDefinition, ...]:
    """A roster: ``[{"name": "pagi", "start": "07:00"}, ...]``; each shift ends where the
    next one starts, so the day is always covered."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SHIFTS:
        raise InvalidConfig(f"Isi 1-{MAX_SHIFTS} shift.", "shifts")
    shifts = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise InvalidConfig("Setiap shift berupa nama dan jam mulai.", "shifts")
        name, start = item.get("name"), item.get("start")
        if not isinstance(name, str) or not SHIFT_NAME.fullmatch(name):
            raise InvalidConfig(f"Nama shift {str(name)[:30]!r} tidak sah: huruf kecil, angka, "
                                "'_' atau '-', paling banyak 20 karakter.", "shifts")
        if not isinstance(start, str) or not _CLOCK.fullmatch(start):
            raise InvalidConfig(f"Jam mulai shift {name} harus JJ:MM (00:00-23:59).", "shifts")
        shifts.append(ShiftDefinition(name, time.fromisoformat(start)))
    if len({s.name for s in shifts}) != len(shifts):
        raise InvalidConfig("Dua shift bernama sama.", "shifts")
    if len({s.start for s in shifts}) != len(shifts):
        raise InvalidConfig("Dua shift mulai pada jam yang sama.", "shifts")
    return tuple(sorted(shifts, key=lambda s: s.start))


def shifts_value(shifts: tuple[ShiftDefinition, ...]) -> list[dict[str, str]]:
    """The stored (and shown) form of a roster."""
    return [{"name": s.name, "start": s.start.strftime("%H:%M")} for s in shifts]
