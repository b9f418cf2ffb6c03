from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.settings import DEFAULT_SHIFTS, ShiftDefinition

JKT = ZoneInfo("Asia/Jakarta")
calendar = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=JKT)


@pytest.mark.parametrize(
    ("instant", "slot"),
    [
        (at(2, 7, 0), ShiftSlot(datetime(2026, 11, 2).date(), "pagi")),
        (at(2, 14, 59), ShiftSlot(datetime(2026, 11, 2).date(), "pagi")),
        (at(2, 15, 0), ShiftSlot(datetime(2026, 11, 2).date(), "siang")),
        (at(2, 23, 30), ShiftSlot(datetime(2026, 11, 2).date(), "malam")),
        # After midnight the night shift still belongs to the day it started.
        (at(3, 2, 0), ShiftSlot(datetime(2026, 11, 2).date(), "malam")),
        (at(3, 6, 59), ShiftSlot(datetime(2026, 11, 2).date(), "malam")),
    ],
)
def test_slot_for_local_times(instant: datetime, slot: ShiftSlot) -> None:
    assert calendar.slot_for(instant) == slot


def test_utc_instant_is_converted_to_local_time() -> None:
    # 16:30 UTC is 23:30 in Jakarta (UTC+7): night shift of that local date.
    instant = datetime(2026, 11, 2, 16, 30, tzinfo=UTC)
    assert calendar.slot_for(instant) == ShiftSlot(datetime(2026, 11, 2).date(), "malam")


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.slot_for(datetime(2026, 11, 2, 8, 0))


def test_bounds_of_night_shift_cross_midnight() -> None:
    start, end = calendar.bounds(ShiftSlot(datetime(2026, 11, 2).date(), "malam"))
    assert (start, end) == (at(2, 23), at(3, 7))


def test_split_interval_across_handover() -> None:
    pieces = calendar.split(at(2, 14, 30), at(2, 15, 45))
    assert [(p[0].name, p[1], p[2]) for p in pieces] == [
        ("pagi", at(2, 14, 30), at(2, 15)),
        ("siang", at(2, 15), at(2, 15, 45)),
    ]


def test_custom_two_shift_roster() -> None:
    roster = ShiftCalendar(
        [ShiftDefinition("day", time(8)), ShiftDefinition("night", time(20))], "Asia/Makassar"
    )
    instant = datetime(2026, 11, 2, 3, 0, tzinfo=ZoneInfo("Asia/Makassar"))
    assert roster.slot_for(instant) == ShiftSlot(datetime(2026, 11, 1).date(), "night")


def test_a_frozen_calendar_keeps_the_roster_it_was_taken_with() -> None:
    calendar = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Makassar")
    frozen = calendar.frozen()
    calendar.redefine([ShiftDefinition("siang", time(8)), ShiftDefinition("malam", time(20))])
    assert frozen.names == ("pagi", "siang", "malam")
    assert calendar.names == ("siang", "malam")
    instant = datetime(2025, 3, 10, 7, 30, tzinfo=ZoneInfo("Asia/Makassar"))
    assert frozen.slot_for(instant) == ShiftSlot(date(2025, 3, 10), "pagi")
    assert calendar.slot_for(instant) == ShiftSlot(date(2025, 3, 9), "malam")
