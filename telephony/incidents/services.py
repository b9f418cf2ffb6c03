"""The incident feature's services built together, and the upkeep loop they share.

Incidents, dispatches, the directory and the notification outbox are separate services over
one database; this puts them together the way the line runs them, so the composition root
and the tests wire the feature in one step.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from telephony.core.loops import run_passes
from telephony.db.connection import Database
from telephony.incidents.config import IncidentConfig
from telephony.incidents.directory_service import Directory
from telephony.incidents.dispatch_service import DispatchService
from telephony.incidents.notifiers import Notifier
from telephony.incidents.outbox_service import NotificationOutbox
from telephony.incidents.service import IncidentService

log = logging.getLogger("telephony.incidents")


@dataclass(frozen=True)
class IncidentServices:
    """Every service of the incident feature."""

    incidents: IncidentService
    dispatches: DispatchService
    directory: Directory
    outbox: NotificationOutbox

    @classmethod
    def build(cls, database: Database, notifier: Notifier,
              config: IncidentConfig) -> IncidentServices:
        """The services over ``database``, delivering through ``notifier``."""
        return cls(IncidentService(database, config), DispatchService(database, config),
                   Directory(database), NotificationOutbox(database, notifier, config))

    async def run_upkeep(self, interval: float) -> None:
        """Forever: open incidents for newly answered calls, settle those whose call was
        labelled a nuisance (or no longer is), settle the dispatches by phone the agency
        never answered, deliver due notifications.

        A database outage is logged once and retried at the same pace; the calls wait in the
        database (or the call spool), the notifications in the outbox, and nothing is lost.
        """
        await run_passes("incident upkeep", self._upkeep_pass,
                         lambda: asyncio.sleep(interval), log)

    async def _upkeep_pass(self) -> None:
        await self.incidents.create_for_answered_calls()
        await self.incidents.settle_labelled_calls()
        await self.dispatches.settle_unanswered_phone()
        await self.outbox.deliver_notifications()
