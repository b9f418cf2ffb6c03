"""The shift roster a site runs on, over a real PostgreSQL and a whole line: the admin's
stored roster wins over the settings file's, also for a line that started while the database
was away."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from telephony.admin import site_service
from telephony.admin.site_service import SHIFTS, SiteService
from telephony.admin.store import AdminSettingsRepository
from telephony.app import running_line, schema_preparation
from telephony.calls.facts import CallStarted
from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.calls.store import CallRepository
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.settings import DEFAULT_SHIFTS, Settings, ShiftDefinition
from tests.support.ami import eventually
from tests.support.db import OutageDatabase, execute, fetch
from tests.support.web import make_context

WITA = ZoneInfo("Asia/Makassar")
ADMINS = [{"name": "pagi", "start": "06:00"}, {"name": "malam", "start": "18:00"}]


async def store_admins_roster(dsn: str) -> None:
    """An admin moved the shifts to 06:00 and 18:00 in the console, through a line before."""
    connection = await asyncpg.connect(dsn)
    try:
        await AdminSettingsRepository().save_site_setting(connection, SHIFTS, ADMINS, "admin")
    finally:
        await connection.close()


async def shifts_table(dsn: str) -> list[tuple[str, time]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT name, starts_at FROM shifts ORDER BY starts_at")
    finally:
        await connection.close()
    return [(row["name"], row["starts_at"]) for row in rows]


async def test_the_shifts_table_holds_the_admins_roster_whichever_pool_opens_last(
    line_settings: Settings, database_dsn: str
) -> None:
    """Each pool's preparation mirrors the roster into the ``shifts`` table (the line's
    pool, its AMI thread's, another node's at its start); it used to be the settings
    file's, put back over the admin's by whichever opened after the admin's was applied."""
    await store_admins_roster(database_dsn)
    async with running_line(line_settings) as line:
        assert line.reports.calendar.names == ("pagi", "malam")
        assert await shifts_table(database_dsn) == [("pagi", time(6)), ("malam", time(18))]
        await line.database.run_as_owner(schema_preparation(line_settings))
        assert await shifts_table(database_dsn) == [("pagi", time(6)), ("malam", time(18))]


async def test_a_line_started_while_the_database_was_away_takes_the_admins_roster_when_it_is_back(
    line_settings: Settings, database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store_admins_roster(database_dsn)  # a WITA site's
    restore = SiteService.restore
    tries = 0

    async def away_at_first(site: SiteService) -> None:
        nonlocal tries
        tries += 1
        if tries == 1:  # the line's start: PostgreSQL not up yet (a host's reboot)
            raise DatabaseUnavailable("PostgreSQL unavailable: connection refused (test)")
        await restore(site)

    monkeypatch.setattr(SiteService, "restore", away_at_first)
    async with running_line(replace(line_settings, timezone="Asia/Makassar")) as line:
        calendar = line.reports.calendar
        # The admin's values are read again once the database answers (their dispatch
        # targets with them); a call at 06:30 WITA is the morning's, not the night's.
        await eventually(lambda: tries == 2)
        assert calendar.names == ("pagi", "malam")
        assert calendar.slot_for(datetime(2026, 12, 7, 6, 30, tzinfo=WITA)) == ShiftSlot(
            date(2026, 12, 7), "pagi")


async def test_calls_written_at_the_first_open_after_an_outage_are_in_the_admins_shifts(
    line_settings: Settings, database_dsn: str
) -> None:
    """A line that started while the database was away spooled its calls, on the file's
    roster; the recorder's pool opens when the database is back, and its preparation runs
    before the first write: the spooled calls go in the admin's shifts, not in the file's
    (the admin's values are read again only later, SiteService.restore_when_back)."""
    await store_admins_roster(database_dsn)
    calendar = ShiftCalendar(line_settings.shifts, "Asia/Makassar")
    database = Database(line_settings, prepare=schema_preparation(line_settings, calendar))
    repository = CallRepository(calendar)
    spooled = [CallStarted("1796596200.1", "1796596200.1", "PJSIP/carrier-1", "081234567890",
                           "", "112", datetime(2026, 12, 7, 6, 30, tzinfo=WITA))]
    try:
        await database.run(lambda connection: repository.apply(connection, spooled))
        assert calendar.names == ("pagi", "malam")
        rows = await fetch(database_dsn, "SELECT shift_day, shift_name FROM calls")
        assert [tuple(row) for row in rows] == [(date(2026, 12, 7), "pagi")]
        # A roster an admin applied since is theirs: a later preparation leaves it alone.
        calendar.redefine([ShiftDefinition("siang", time(12))])
        await database.run_as_owner(schema_preparation(line_settings, calendar))
        assert [shift.name for shift in calendar.definitions] == ["siang"]
    finally:
        await database.close()


async def test_a_restore_that_fails_for_another_reason_says_so_at_once_and_stops(
    database_dsn: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """Not an outage (a stored value that no longer reads): one log line now, the file's
    values stand, and no failed task left for the line's stop to trip over."""
    await execute(database_dsn, "INSERT INTO site_settings (name, value, updated_by) "
                                "VALUES ('shifts', '[{\"name\": \"Pagi\"}]', 'admin')")
    database = OutageDatabase(replace(settings, database_dsn=database_dsn))
    calendar = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Makassar")
    site = SiteService(database, make_context(settings, database).dispatches, calendar)
    monkeypatch.setattr(site_service, "RESTORE_RETRY_SECONDS", (0.01,))
    database.down = True
    try:
        restoring = asyncio.create_task(site.restore_when_back())
        await asyncio.sleep(0.05)  # retrying through the outage
        assert not restoring.done()
        with caplog.at_level("ERROR", "telephony.admin"):
            database.down = False
            async with asyncio.timeout(5):
                await restoring
        assert [r.getMessage() for r in caplog.records] == [
            "admin's dispatch targets and shifts not applied; the settings file's stand"]
        assert calendar.names == ("pagi", "siang", "malam")
    finally:
        await database.close()
