"""Reports as the supervisor asks for them: read the calls of a period, compute the figures.

Every read is one ``Database.run`` (so an outage is :class:`DatabaseUnavailable`, for the web
layer to answer 503); the maths are ``model``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.db.connection import Database
from telephony.reports.model import (
    CallRow,
    DailySummary,
    Figures,
    LivePicture,
    Period,
    ShiftReport,
    check_period,
    daily_summary,
    day_bounds,
    figures,
    shift_report,
    shift_slots,
    wrapup_seconds,
)
from telephony.reports.store import ReportRepository
from telephony.settings import Settings


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


@dataclass(frozen=True)
class LiveCounters:
    """The wallboard's figures: the current shift and the operational day it belongs to."""

    at: datetime
    shift: ShiftSlot
    shift_figures: Figures
    day_figures: Figures
    names: Mapping[str, str]  # operator interface -> display name


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

    async def shift_report(self, period: Period) -> ShiftReport:
        """The figures of ``period`` in total, per shift, per operator and per queue.
        :class:`~telephony.reports.model.InvalidPeriod` if it cannot be reported."""
        check_period(period, self._calendar.names)

        async def work(connection: asyncpg.Connection
                       ) -> tuple[list[CallRow], dict[str, float], dict[str, str]]:
            rows = await self._repo.call_rows(connection, period)
            wrapups = await self._wrapups(connection, rows)
            return rows, wrapups, await self._repo.operator_names(connection)

        rows, wrapups, names = await self._database.run(work)
        return shift_report(period, shift_slots(self._calendar, period), rows,
                            wrapups=wrapups, names=names, now=self._clock())

    async def _wrapups(self, connection: asyncpg.Connection, rows: Sequence[CallRow]
                       ) -> dict[str, float]:
        """Answered call id -> its operator's wrap-up seconds."""
        done = [r for r in rows if r.completed_at is not None and r.operator is not None]
        if not done:
            return {}
        changes = await self._repo.state_changes(
            connection, {r.operator for r in done if r.operator is not None},
            min(r.completed_at for r in done if r.completed_at is not None),
            max(r.completed_at for r in done if r.completed_at is not None))
        automatic = self._config.wrapup_seconds
        return {r.call_id: wrapup_seconds(r.completed_at, changes.get(r.operator, []), automatic)
                for r in done if r.completed_at is not None and r.operator is not None}

    async def daily_summary(self, day: date) -> DailySummary:
        """The regency head's summary of the operational day ``day``."""
        since, until = day_bounds(self._calendar, day)

        async def work(connection: asyncpg.Connection) -> DailySummary:
            rows = await self._repo.call_rows(connection, Period(day, day))
            return daily_summary(
                day, rows,
                report_types=await self._repo.report_types(connection, day),
                villages=await self._repo.villages(connection, day),
                ratings=await self._repo.ratings(connection, since, until),
                now=self._clock())

        return await self._database.run(work)

    async def live_counters(self) -> LiveCounters:
        """The current shift's and day's figures, for the wallboard."""
        now = self._clock()
        slot = self._calendar.slot_for(now)

        async def work(connection: asyncpg.Connection
                       ) -> tuple[list[CallRow], dict[str, str]]:
            rows = await self._repo.call_rows(connection, Period(slot.day, slot.day))
            return rows, await self._repo.operator_names(connection)

        rows, names = await self._database.run(work)
        mine = [r for r in rows if r.shift_name == slot.name]
        return LiveCounters(now, slot, figures(mine, now), figures(rows, now), names)

    async def live_picture(self) -> LivePicture:
        """What the database believes is live now (the wallboard's start before a resync)."""
        now = self._clock()
        return await self._database.run(lambda c: self._repo.live_picture(c, now))
