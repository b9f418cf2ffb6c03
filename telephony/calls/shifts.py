"""Shift attribution: which operator shift an instant belongs to.

Call centres work three shifts a day in local time (Asia/Jakarta has no daylight saving, but
the code does not assume that). A shift is named by its name and the local date on which it
*started*: the night shift that starts at 23:00 on the 1st and ends at 07:00 on the 2nd is
("malam", 1st) for its whole length. Calls are attributed by their arrival instant, so a call
that crosses a shift boundary stays with the shift it arrived in; its times are kept as they
are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from telephony.settings import ShiftDefinition


@dataclass(frozen=True, order=True)
class ShiftSlot:
    """One concrete shift: a named shift on the local date it started."""

    day: date
    name: str


class ShiftCalendar:
    """Attributes instants to shifts for one set of shift definitions and one time zone."""

    def __init__(self, shifts: Sequence[ShiftDefinition], timezone: str) -> None:
        if not shifts:
            raise ValueError("at least one shift is needed")
        self._shifts = sorted(shifts, key=lambda s: s.start)
        self._zone = ZoneInfo(timezone)

    @property
    def names(self) -> tuple[str, ...]:
        """The shifts' names in the order they start in a day."""
        return tuple(s.name for s in self._shifts)

    @property
    def definitions(self) -> tuple[ShiftDefinition, ...]:
        """The shifts, in the order they start in a day."""
        return tuple(self._shifts)

    def redefine(self, shifts: Sequence[ShiftDefinition]) -> None:
        """Attribute instants by ``shifts`` from now on (an admin changed the roster); whoever
        holds this calendar sees the change."""
        if not shifts:
            raise ValueError("at least one shift is needed")
        self._shifts = sorted(shifts, key=lambda s: s.start)

    def frozen(self) -> ShiftCalendar:
        """A calendar of the roster in force now that a later :meth:`redefine` leaves alone:
        for work that reads the roster again after waiting (a report cut by one roster, not
        by two, or by a shift dropped meanwhile)."""
        return ShiftCalendar(self._shifts, self._zone.key)

    def slot_for(self, instant: datetime) -> ShiftSlot:
        """The shift in which ``instant`` (timezone-aware) falls."""
        if instant.tzinfo is None:
            raise ValueError("shift attribution needs a timezone-aware instant")
        local = instant.astimezone(self._zone)
        clock = local.time()
        started_today = [s for s in self._shifts if s.start <= clock]
        if started_today:
            return ShiftSlot(local.date(), started_today[-1].name)
        # Before the first start of the day: still in the last shift that began yesterday.
        return ShiftSlot(local.date() - timedelta(days=1), self._shifts[-1].name)

    def bounds(self, slot: ShiftSlot) -> tuple[datetime, datetime]:
        """Start (inclusive) and end (exclusive) of ``slot`` as aware datetimes."""
        index = next(i for i, s in enumerate(self._shifts) if s.name == slot.name)
        start = datetime.combine(slot.day, self._shifts[index].start, self._zone)
        if index + 1 < len(self._shifts):
            end = datetime.combine(slot.day, self._shifts[index + 1].start, self._zone)
        else:
            end = datetime.combine(slot.day + timedelta(days=1), self._shifts[0].start, self._zone)
        return start, end

    def split(self, start: datetime, end: datetime) -> list[tuple[ShiftSlot, datetime, datetime]]:
        """Cut the interval [start, end) at shift boundaries.

        Used for operator state intervals (an operator logged in across a handover counts in
        both shifts, each for its own part).
        """
        pieces: list[tuple[ShiftSlot, datetime, datetime]] = []
        cursor = start
        while cursor < end:
            slot = self.slot_for(cursor)
            _, slot_end = self.bounds(slot)
            piece_end = min(end, slot_end)
            pieces.append((slot, cursor, piece_end))
            cursor = piece_end
        return pieces
