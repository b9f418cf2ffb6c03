"""The directory service: the agencies incidents are dispatched to, the people each notifies,
and the gazetteer's places for pickers. Admins keep it; dispatching reads it.
"""

from __future__ import annotations

import asyncpg

from telephony.db.connection import Database
from telephony.incidents.directory import (
    Agency,
    Place,
    Recipient,
    parse_agency,
    parse_recipient,
)
from telephony.incidents.directory_store import DirectoryStore
from telephony.incidents.errors import RecipientNotFound, ValidationError
from telephony.incidents.model import ReportType, check_id


class Directory:
    """Agencies, their recipients, and places."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._repo = DirectoryStore()

    async def agencies(self) -> list[Agency]:
        """Every agency, active or not."""
        return await self._database.run(self._repo.agencies)

    async def save_agency(self, code: str, name: str, *, active: bool = True) -> Agency:
        """Add an agency, or rename it or (de)activate it."""
        agency = parse_agency(code, name, active)

        async def work(connection: asyncpg.Connection) -> Agency:
            await self._repo.save_agency(connection, agency)
            return agency

        return await self._database.run(work)

    async def add_recipient(
        self, agency_code: str, *, name: str, contact: str, role: str = "",
        report_type: ReportType | str | None = None,
    ) -> Recipient:
        """Add a person notified when the agency is dispatched (to ``report_type`` reports
        only, or to all when ``None``)."""
        recipient = parse_recipient(agency_code, report_type, name, role, contact)

        async def work(connection: asyncpg.Connection) -> Recipient:
            if await self._repo.agency(connection, recipient.agency_code) is None:
                raise ValidationError("agency",
                                      f"Instansi {recipient.agency_code} tidak dikenal.")
            return await self._repo.add_recipient(connection, recipient)

        return await self._database.run(work)

    async def recipients(self) -> list[Recipient]:
        """Every recipient of every agency, active or not."""
        return await self._database.run(self._repo.recipients)

    async def set_recipient_active(self, recipient_id: int, active: bool) -> Recipient:
        """Stop (or resume) notifying a recipient; their past notifications stay."""
        checked = check_id("recipient_id", recipient_id)

        async def work(connection: asyncpg.Connection) -> Recipient | None:
            return await self._repo.set_recipient_active(connection, checked, active)

        recipient = await self._database.run(work)
        if recipient is None:
            raise RecipientNotFound(checked)
        return recipient

    async def places(self, *, sub_district_code: str | None = None) -> list[Place]:
        """The gazetteer's villages (of one sub-district, if given)."""

        async def work(connection: asyncpg.Connection) -> list[Place]:
            return await self._repo.places(connection, sub_district_code=sub_district_code)

        return await self._database.run(work)
