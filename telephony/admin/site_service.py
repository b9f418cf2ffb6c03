"""Dispatch targets and shifts as an admin sets them: stored, and applied to the running
services at once (the incident service's SLA clocks, the shift calendar that attributes calls
and reports, and the ``shifts`` table the reports read)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg

from telephony.admin.errors import InvalidConfig
from telephony.admin.site import (
    dispatch_targets_value,
    parse_dispatch_targets,
    parse_shifts,
    shifts_value,
)
from telephony.admin.store import AdminSettingsRepository
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import sync_shifts
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.incidents.dispatch_service import DispatchService
from telephony.incidents.model import ReportType
from telephony.settings import ShiftDefinition

log = logging.getLogger("telephony.admin")

# How soon a line that started without the database reads the admin's values again: soon
# after a short blip, then every few seconds for as long as the outage lasts.
RESTORE_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)

DISPATCH_TARGETS = "dispatch_targets"
SHIFTS = "shifts"


async def mirror_shifts(connection: asyncpg.Connection,
                        configured: tuple[ShiftDefinition, ...],
                        calendar: ShiftCalendar | None = None,
                        repository: AdminSettingsRepository | None = None) -> None:
    """Make the ``shifts`` table hold the roster in force: the admin's stored one, else
    ``configured`` (the settings file's). Each pool's preparation runs this (the line's,
    then its AMI thread's, another node's at its start): with the file's roster only, a
    later one put the file's shifts back over the admin's, and the table said 07:00 while
    calls were attributed by the admin's 06:00.

    ``calendar`` (the line's) still on ``configured`` takes the stored roster too: a line
    that started while the database was away has not read it yet (:meth:`SiteService.
    restore_when_back` reads it later), and this runs before the pool's first write, so the
    calls spooled during the outage are put in the admin's shifts, not the file's. A
    calendar already on another roster (an admin's, applied) is left alone."""
    stored = await (repository or AdminSettingsRepository()).site_setting(connection, SHIFTS)
    roster = configured
    if stored is not None:
        try:
            roster = parse_shifts(stored)
        except InvalidConfig as exc:  # not as an admin saved it: the file's, said once here
            log.error("stored shifts unreadable, the settings file's mirrored: %s", exc.message)
    await sync_shifts(connection, roster)
    if calendar is not None and calendar.definitions == configured:
        calendar.redefine(roster)


class SiteService:
    """An admin's dispatch targets and shift roster, over the settings file's."""

    def __init__(self, database: Database, dispatches: DispatchService, calendar: ShiftCalendar,
                 repository: AdminSettingsRepository | None = None) -> None:
        self._database = database
        self._dispatches = dispatches
        self._calendar = calendar
        self._repo = repository or AdminSettingsRepository()
        # A read of the stored values and their application, or an admin's change and its
        # application: one at a time, so a restore that read before an admin's change cannot
        # apply the older values after it.
        self._applying = asyncio.Lock()

    def _use_targets(self, targets: Mapping[ReportType, int]) -> None:
        self._dispatches.use_dispatch_targets(
            {kind: timedelta(seconds=seconds) for kind, seconds in targets.items()})

    async def restore(self) -> None:
        """Apply what an admin stored (at start: the settings file's values until then)."""
        await self._apply(sync_table=True)

    async def restore_when_back(self) -> None:
        """:meth:`restore`, retried while the database is unavailable. A line started during
        an outage ran on the settings file's roster and targets (the start logged it) and
        kept them until restarted: every call since was put in the file's shifts, not the
        admin's, and the SLA clocks ran on the file's targets."""
        delays = iter(RESTORE_RETRY_SECONDS)
        while True:
            await asyncio.sleep(next(delays, RESTORE_RETRY_SECONDS[-1]))
            try:
                await self.restore()
            except DatabaseUnavailable:
                continue
            except Exception:  # not an outage: said now, not at the line's stop
                log.exception("admin's dispatch targets and shifts not applied; the settings "
                              "file's stand")
                return
            log.info("admin's dispatch targets and shifts read now that the database is back")
            return

    async def follow(self) -> None:
        """A cluster node: apply what an admin stored through any node's line (that line
        already made the ``shifts`` table hold its roster)."""
        await self._apply(sync_table=False)

    async def _apply(self, *, sync_table: bool) -> None:
        async with self._applying:
            await self._apply_stored(sync_table=sync_table)

    async def _apply_stored(self, *, sync_table: bool) -> None:

        async def work(connection: asyncpg.Connection) -> tuple[Any, Any]:
            return (await self._repo.site_setting(connection, DISPATCH_TARGETS),
                    await self._repo.site_setting(connection, SHIFTS))

        targets, shifts = await self._database.run(work)
        if targets is not None:
            self._use_targets(parse_dispatch_targets(targets))
        if shifts is not None:
            roster = parse_shifts(shifts)
            if sync_table:
                await self._database.run(lambda connection: sync_shifts(connection, roster))
            self._calendar.redefine(roster)
        if targets is not None or shifts is not None:
            log.info("admin's site settings applied: %s", ", ".join(
                name for name, value in ((DISPATCH_TARGETS, targets), (SHIFTS, shifts))
                if value is not None))

    def dispatch_targets(self) -> dict[ReportType, int]:
        """Report type -> target seconds, for the types that have one."""
        return {kind: int(target.total_seconds())
                for kind, target in self._dispatches.dispatch_targets.items()}

    async def set_dispatch_targets(self, raw: Any, actor: str) -> dict[ReportType, int]:
        """Replace every dispatch target (a type left out has none)."""
        targets = parse_dispatch_targets(raw)

        async def work(connection: asyncpg.Connection) -> None:
            await self._repo.save_site_setting(connection, DISPATCH_TARGETS,
                                               dispatch_targets_value(targets), actor)

        async with self._applying:
            await self._database.run(work)
            self._use_targets(targets)
        log.info("dispatch targets changed by %s: %s", actor, dispatch_targets_value(targets))
        return targets

    def shifts(self) -> tuple[ShiftDefinition, ...]:
        """The roster in force."""
        return self._calendar.definitions

    async def set_shifts(self, raw: Any, actor: str) -> tuple[ShiftDefinition, ...]:
        """Replace the roster; calls arriving from now on are attributed by it."""
        roster = parse_shifts(raw)

        async def work(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await self._repo.save_site_setting(connection, SHIFTS, shifts_value(roster),
                                                   actor)
                await sync_shifts(connection, roster)

        async with self._applying:
            await self._database.run(work)
            self._calendar.redefine(roster)
        log.info("shifts changed by %s: %s", actor, shifts_value(roster))
        return roster
