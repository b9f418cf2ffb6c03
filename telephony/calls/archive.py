"""Reading call records for people: recent calls with filters, one call and its incident."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from telephony.calls.legs import Leg
from telephony.calls.store import CallRecord, CallRepository, LegRepository
from telephony.db.connection import Database
from telephony.incidents.errors import CallNotFound
from telephony.incidents.store import IncidentRepository

# What ``call_outcomes.disposition`` can say (0001_calls.sql).
DISPOSITIONS: Final = ("answered", "abandoned", "vanished", "ended_in_ivr", "in_progress",
                       "ended_in_queue")
# What operators read for a call's IVR category and what became of the call. An unknown code
# is shown as it is.
CATEGORY_LABELS: Final[Mapping[str, str]] = {
    "emergency": "Darurat", "complaint": "Pengaduan", "information": "Informasi"}
DISPOSITION_LABELS: Final[Mapping[str, str]] = {
    "answered": "Dijawab", "abandoned": "Ditinggal di antrean", "vanished": "Hilang",
    "ended_in_ivr": "Berakhir di IVR", "in_progress": "Berlangsung",
    "ended_in_queue": "Berakhir di antrean"}
LINES: Final = ("112", "119")
MAX_LIMIT: Final = 500


@dataclass(frozen=True)
class CallFilter:
    """Which calls to list; ``None`` filters nothing. Checked by the caller against
    :data:`DISPOSITIONS`, :data:`LINES` and :data:`MAX_LIMIT`."""

    since: datetime | None = None
    until: datetime | None = None
    line: str | None = None
    caller_number: str | None = None
    disposition: str | None = None
    limit: int = 100


class CallArchive:
    """Recent calls and single calls, as the call tracker recorded them."""

    def __init__(self, database: Database, calls: CallRepository,
                 incidents: IncidentRepository | None = None) -> None:
        self._database = database
        self._calls = calls
        self._incidents = incidents or IncidentRepository()

    async def recent(self, which: CallFilter) -> list[CallRecord]:
        """Matching calls, newest first."""

        async def work(connection: asyncpg.Connection) -> list[CallRecord]:
            return await self._calls.call_records(
                connection, since=which.since, until=which.until, line=which.line,
                caller_number=which.caller_number, disposition=which.disposition,
                limit=which.limit)

        return await self._database.run(work)

    async def get(self, call_id: str) -> tuple[CallRecord, int | None]:
        """One call and the incident it belongs to; :class:`CallNotFound` if there is none."""

        async def work(connection: asyncpg.Connection) -> tuple[CallRecord | None, int | None]:
            record = await self._calls.call_record(connection, call_id)
            owner = await self._incidents.incident_of_call(connection, call_id)
            return record, owner

        record, incident_id = await self._database.run(work)
        if record is None:
            raise CallNotFound(call_id)
        return record, incident_id

    async def records(self, call_ids: list[str]) -> list[CallRecord]:
        """These calls, in the order given (ids without a record are left out)."""

        async def work(connection: asyncpg.Connection) -> list[CallRecord]:
            found = [await self._calls.call_record(connection, call_id) for call_id in call_ids]
            return [record for record in found if record is not None]

        return await self._database.run(work)

    async def legs(self, call_ids: list[str]) -> list[Leg]:
        """The legs the line placed on these calls (transfers, call-backs), oldest first."""

        async def work(connection: asyncpg.Connection) -> list[Leg]:
            return await LegRepository().legs(connection, call_ids)

        return await self._database.run(work)

    async def outlived_call_backs(self, legs: list[Leg]) -> set[int]:
        """Which of these call-backs, answered with no end reported, their operator has
        since moved on from (``LegRepository.outlived_call_backs``)."""

        async def work(connection: asyncpg.Connection) -> set[int]:
            return await LegRepository().outlived_call_backs(connection, legs)

        return await self._database.run(work)
