"""Reports as the supervisor asks for them: the database computes a period's figures, ``model``
puts the report together.

Every read is one ``Database.run`` (so an outage is :class:`DatabaseUnavailable`, for the web
layer to answer 503).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.db.connection import Database
from telephony.reports.gate import ReportGate
from telephony.reports.model import (
    MAX_REPORT_DAYS,
    WRAPUP_PAUSE_GRACE,
    ChangedCalls,
    DailySummary,
    LiveCall,
    LivePicture,
    Period,
    PeriodFigures,
    PhoneTimeouts,
    ShiftReport,
    check_period,
    daily_summary,
    day_bounds,
    period_end,
    shift_report,
    shift_slots,
    with_stray_slots,
)
from telephony.reports.store import WRAPUP_LOOKAHEAD, ReportRepository
from telephony.settings import Settings

# Shifts the wallboard rolls up per call of roll_up_recent at most (each about 10-50 ms at
# 9,000 calls a day): the board stays live while an old month is rolled up.
_ROLLUPS_PER_READ = 2
# Shifts a report rolls up between two looks at the call records' lag (the gate): a month's
# first report after an upgrade rolls up about 90, and gives way between its rounds.
_ROLLUPS_PER_TURN = 8


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReportConfig:
    """The tunables reports need."""

    # The automatic wrap-up of a queue no admin set one for (queues.conf wrapuptime); a
    # call answered in a queue with one recorded it (migration 0044).
    wrapup_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportConfig:
        """The configuration described by ``settings``."""
        return cls(wrapup_seconds=float(settings.queue_wrapup_seconds))


class ReportService:
    """Shift reports, the daily summary, and the wallboard's counters. The reports and the
    background roll-up take turns at ``gate`` and give way to the call records there
    (``telephony.reports.gate``); the wallboard's reads do not: they are small and live."""

    def __init__(self, database: Database, calendar: ShiftCalendar, config: ReportConfig, *,
                 gate: ReportGate | None = None,
                 repository: ReportRepository | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._database = database
        self._calendar = calendar
        self._config = config
        self._gate = gate or ReportGate.open()
        self._repo = repository or ReportRepository()
        self._clock = clock

    @property
    def gate(self) -> ReportGate:
        """Where the reports take turns and give way to the call records."""
        return self._gate

    @property
    def calendar(self) -> ShiftCalendar:
        """The shifts reports are cut by."""
        return self._calendar

    def today(self) -> date:
        """The operational day now: the date the current shift started on."""
        return self._calendar.slot_for(self._clock()).day

    @staticmethod
    def _closed(calendar: ShiftCalendar, slots: list[ShiftSlot], now: datetime
                ) -> list[ShiftSlot]:
        """Those of ``slots`` (of ``calendar``'s roster) final enough to roll up: ended longer
        ago than a wrap-up pause can still start and end in the reports' window. A later fact
        invalidates a rollup anyway; this only keeps live pause changes from invalidating a
        rollup every time."""
        return [slot for slot in slots
                if calendar.bounds(slot)[1] + WRAPUP_PAUSE_GRACE + WRAPUP_LOOKAHEAD <= now]

    async def shift_report(self, period: Period) -> ShiftReport:
        """The figures of ``period`` in total, per shift, per operator and per queue.
        :class:`~telephony.reports.model.InvalidPeriod` if it cannot be reported."""
        # The roster as asked: an admin may change it while the report waits for its turn.
        calendar = self._calendar.frozen()
        check_period(period, calendar.names)
        roster_slots = shift_slots(calendar, period)
        slots = roster_slots
        wrapup = self._config.wrapup_seconds
        async with self._gate.turn("shift report") as turn:
            await turn.clear()
            if period.shift is None:
                called = await self._database.run(lambda c: self._repo.called_slots(
                    c, period.first, period.last))
                slots = with_stray_slots(calendar, roster_slots, called)
            # The report's instant is taken after any wait: its current shift is as of now.
            now = self._clock()
            # Only the roster's slots have bounds to tell whether they are closed; a stray
            # one (a shift renamed or dropped since) is computed from its calls each time.
            closed = self._closed(calendar, roster_slots, now)
            unrolled = await self._database.run(
                lambda c: self._repo.unrolled_slots(c, closed, wrapup))
            for start in range(0, len(unrolled), _ROLLUPS_PER_TURN):
                if start:
                    await turn.clear()
                await self._database.run(functools.partial(
                    self._repo.refresh_rollups, slots=unrolled[start:start + _ROLLUPS_PER_TURN],
                    now=now, automatic_wrapup=wrapup))
            await turn.clear()
            figured, names = await self._database.run(
                lambda c: self._figures_and_names(c, slots, now))
        return shift_report(period, slots, figured, names=names, now=now,
                            ends_at=period_end(calendar, period))

    async def _figures_and_names(self, connection: asyncpg.Connection,
                                 slots: list[ShiftSlot], now: datetime
                                 ) -> tuple[PeriodFigures, dict[str, str]]:
        figured = await self._repo.period_figures(connection, slots, now,
                                                  self._config.wrapup_seconds)
        # Operators by the key of who worked at the phone then; shown by user name (an
        # account) or interface (a phone whose operator was not recorded).
        shown = await self._repo.operators_named(connection, list(figured.operators))
        operators = {shown[key][0]: f for key, f in figured.operators.items()}
        return (dataclasses.replace(figured, operators=operators),
                {label: name for label, name in shown.values()})

    async def daily_summary(self, day: date) -> DailySummary:
        """The regency head's summary of the operational day ``day``."""
        since, until = day_bounds(self._calendar, day)
        async with self._gate.turn("daily summary") as turn:
            await turn.clear()
            now = self._clock()

            async def work(connection: asyncpg.Connection) -> DailySummary:
                return daily_summary(
                    day, await self._repo.day_figures(connection, day, now),
                    report_types=await self._repo.report_types(connection, day),
                    villages=await self._repo.villages(connection, day),
                    ratings=await self._repo.ratings(connection, since, until),
                    now=now, ends_at=until)

            return await self._database.run(work)

    async def rtp_timeouts(self) -> PhoneTimeouts:
        """The phones' talking rtp_timeouts, as the wallboard's counters cut a dead phone's
        talk with them (migration 0055); read with the calls at each seed."""
        return await self._database.run(self._repo.rtp_timeouts)

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

    async def queue_wrapups(self) -> dict[str, int]:
        """Queue -> the wrap-up seconds an admin set for it, for the wallboard."""
        return await self._database.run(self._repo.queue_wrapups)

    async def roll_up_recent(self) -> int:
        """Roll up a few closed shifts of the last month, newest first, that have no rollup
        yet; how many. The wallboard calls it now and then: a month's report then finds them
        rolled up (the first report after an upgrade rolls up the rest itself). None while a
        report has the turn or its rest, or the call records trail: this is background work."""
        if self._gate.busy or self._gate.behind() or self._gate.resting():
            return 0
        now = self._clock()
        slot = self._calendar.slot_for(now)
        recent = shift_slots(self._calendar, Period(
            slot.day - timedelta(days=MAX_REPORT_DAYS), slot.day))
        closed = self._closed(self._calendar, recent, now)[::-1]
        return await self._database.run(lambda c: self._repo.refresh_rollups(
            c, closed, now, self._config.wrapup_seconds, limit=_ROLLUPS_PER_READ))

    async def live_picture(self) -> LivePicture:
        """What the database believes is live now (the wallboard's start before a resync)."""
        now = self._clock()
        return await self._database.run(lambda c: self._repo.live_picture(c, now))
