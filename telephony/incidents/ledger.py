"""The steps every incident service shares inside its transactions: read an incident or be
refused, lock it (checking the version the caller read), move its status, and record an entry
on its timeline. One copy, so the dispatch service keeps the incident service's locking order
and event shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from telephony.incidents.errors import IncidentNotFound, StaleIncident
from telephony.incidents.model import Incident, Status, check_transition
from telephony.incidents.store import IncidentRepository


class IncidentLedger:
    """Incident reads, locks, status moves and timeline entries on a caller's connection."""

    def __init__(self, repository: IncidentRepository) -> None:
        self.repo = repository

    async def fetch(self, connection: asyncpg.Connection, incident_id: int) -> Incident:
        """The incident as it is now; :class:`IncidentNotFound` if there is none."""
        incident = await self.repo.incident(connection, incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    async def locked(
        self, connection: asyncpg.Connection, incident_id: int, expected_version: int | None
    ) -> Incident:
        """Lock the incident for this transaction and read it as it is now."""
        if not await self.repo.lock_incidents(connection, [incident_id]):
            raise IncidentNotFound(incident_id)
        return await self.checked(connection, incident_id, expected_version)

    async def checked(
        self, connection: asyncpg.Connection, incident_id: int, expected_version: int | None
    ) -> Incident:
        """The incident, refused as :class:`StaleIncident` if it is no longer at
        ``expected_version`` (``None``: any version)."""
        incident = await self.fetch(connection, incident_id)
        if expected_version is not None and incident.version != expected_version:
            raise StaleIncident(incident_id, expected_version, incident.version)
        return incident

    async def record(
        self, connection: asyncpg.Connection, incident_id: int, actor: str, kind: str,
        detail: Mapping[str, Any],
    ) -> None:
        """Append one entry to the incident's timeline."""
        await self.repo.append_event(connection, incident_id, actor, kind, detail)

    async def set_status(
        self, connection: asyncpg.Connection, current: Incident, target: Status, actor: str,
        detail: Mapping[str, object],
    ) -> None:
        """Move ``current`` to ``target`` if the timeline allows it, and record the move."""
        check_transition(current.status, target)
        await self.repo.set_status(connection, current.incident_id, target)
        await self.record(connection, current.incident_id, actor, "status", {
            "from": current.status.value, "to": target.value, **detail,
        })
