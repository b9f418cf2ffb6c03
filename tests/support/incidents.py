"""The incident service for tests."""

from __future__ import annotations

from typing import Any

from telephony.db.connection import Database
from telephony.incidents.notifiers import LogNotifier, Notifier
from telephony.incidents.service import IncidentConfig, IncidentService


def make_service(
    database: Database, notifier: Notifier | None = None, **config: Any
) -> IncidentService:
    """The service over ``database``, notifying through ``notifier`` (a log by default);
    ``config``: :class:`IncidentConfig` fields."""
    return IncidentService(database, notifier or LogNotifier(),
                           IncidentConfig(**config))
