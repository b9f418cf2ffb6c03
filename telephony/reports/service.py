"""Reports as the supervisor asks for them: the database computes a period's figures, ``model``
puts the report together.

Every read is one ``Database.run`` (so an outage is :class:`DatabaseUnavailable`, for the web
layer to answer 503).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.db.connection import Database
from telephony.reports.model import (
    MAX_REPORT_DAYS,
    WRAPUP_PAUSE_GRACE,
    ChangedCalls,
    DailySummary,
    LiveCall,
    LivePicture,
    Period,
    PeriodFigures,
    ShiftReport,
    check_period,
    daily_summary,
    day_bounds,
    shift_report,
    shift_slots,
)
from telephony.reports.store import WRAPUP_LOOKAHEAD, ReportRepository
from telephony.settings import Settings

# Shifts the wallboard rolls up per call of roll_up_recent at most (each about 10-50 ms at
# 9,000 calls a day): the board stays live while an old month is rolled up.
_ROLLUPS_PER_READ = 2


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReportConfig:
    """The tunables reports need."""

    wrapup_seconds: float = 5.0  # the queues' automatic wrap-up (queues.conf wrapuptime)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportConfig:
        """The configuration described by ``settings``."""
        return cls(wrapup_seconds=float(settings.queue_wrapup_seconds))


class ReportService:
    """Shift reports, the daily summary, and the wallboard's counters."""

    def __init__(self, database: Database, calendar: ShiftCalendar, config: ReportConfig, *,
                 repository: ReportRepository | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._database = database
        self._calendar = calendar
        self._config = config
        self._repo = repository or ReportRepository()
        self._clock = clock

    @property
    def calendar(self) -> ShiftCalendar:
        """The shifts reports are cut by."""
        return self._calendar

    def today(self) -> date:
        """The operational day now: the date the current shift started on."""
        return self._calendar.slot_for(self._clock()).day

    def _closed(self, slots: list[ShiftSlot], now: datetime) -> list[ShiftSlot]:
        """Those of ``slots`` final enough to roll up: ended longer ago than a wrap-up pause
        can still start and end in the reports' window. A later fact invalidates a rollup
        anyway; this only keeps live pause changes from invalidating a rollup every time."""
        return [slot for slot in slots
                if self._calendar.bounds(slot)[1] + WRAPUP_PAUSE_GRACE + WRAPUP_LOOKAHEAD <= now]

    async def shift_report(self, period: Period) -> ShiftReport:
        """The figures of ``period`` in total, per shift, per operator and per queue.
        :class:`~telephony.reports.model.InvalidPeriod` if it cannot be reported."""
        check_period(period, self._calendar.names)
        now = self._clock()

        async def work(connection: asyncpg.Connection
                       ) -> tuple[PeriodFigures, dict[str, str]]:
            slots = shift_slots(self._calendar, period)
            await self._repo.refresh_rollups(connection, self._closed(slots, now), now,
                                             self._config.wrapup_seconds)
            figured = await self._repo.period_figures(connection, slots, now,
                                                      self._config.wrapup_seconds)
            return figured, await self._repo.operator_names(connection)

        figured, names = await self._database.run(work)
        return shift_report(period, shift_slots(self._calendar, period), figured,
                            names=names, now=now)

    async def daily_summary(self, day: date) -> DailySummary:
        """The regency head's summary of the operational day ``day``."""
        since, until = day_bounds(self._calendar, day)
        now = self._clock()

        async def work(connection: asyncpg.Connection) -> DailySummary:
            return daily_summary(
                day, await self._repo.day_figures(connection, day, now),
                report_types=await self._repo.report_types(connection, day),
                villages=await self._repo.villages(connection, day),
                ratings=await self._repo.ratings(connection, since, until),
                now=now)

        return await self._database.run(work)

    async def live_calls(self, day: date) -> list[LiveCall]:
        """The calls of the operational day ``day`` (and the open ones not yet in a shift)
        that the wallboard's live counters start from; read when they are seeded, not per
        refresh (``telephony.wallboard.counters``)."""
        return await self._database.run(lambda c: self._repo.live_calls(c, day))

    async def changed_calls(self, node: str, since: datetime | None) -> ChangedCalls:
        """Other cluster nodes' calls whose rows changed after ``since``, and the database's
        clock before the read (``ReportRepository.changed_calls``)."""
        return await self._database.run(lambda c: self._repo.changed_calls(c, node, since))

    async def operator_names(self) -> dict[str, str]:
        """Operator interface -> display name, for the wallboard."""
        return await self._database.run(self._repo.operator_names)

    async def roll_up_recent(self) -> int:
        """Roll up a few closed shifts of the last month, newest first, that have no rollup
        yet; how many. The wallboard calls it now and then: a month's report then finds them
        rolled up (the first report after an upgrade rolls up the rest itself)."""
        now = self._clock()
        slot = self._calendar.slot_for(now)
        recent = shift_slots(self._calendar, Period(
            slot.day - timedelta(days=MAX_REPORT_DAYS), slot.day))
        return await self._database.run(lambda c: self._repo.refresh_rollups(
            c, self._closed(recent, now)[::-1], now, self._config.wrapup_seconds,
            limit=_ROLLUPS_PER_READ))

    async def live_picture(self) -> LivePicture:
        """What the database believes is live now (the wallboard's start before a resync)."""
        now = self._clock()
        return await self._database.run(lambda c: self._repo.live_picture(c, now))
