"""The incident services for tests."""

from __future__ import annotations

from typing import Any

from telephony.db.connection import Database
from telephony.incidents.config import IncidentConfig
from telephony.incidents.notifiers import LogNotifier, Notifier
from telephony.incidents.services import IncidentServices


def make_service(
    database: Database, notifier: Notifier | None = None, **config: Any
) -> IncidentServices:
    """The incident services over ``database``, notifying through ``notifier`` (a log by
    default); ``config``: :class:`IncidentConfig` fields."""
    return IncidentServices.build(database, notifier or LogNotifier(), IncidentConfig(**config))
