"""SQL for the directory: agencies, the people they notify, and the gazetteer's villages and
sub-districts. Plain reads and writes; every method takes the connection to run on.
"""

from __future__ import annotations

import asyncpg

from telephony.db.rows import from_row
from telephony.incidents.directory import Agency, Place, Recipient, RecipientInput
from telephony.incidents.model import ReportType


class DirectoryStore:
    """Reads and writes agencies, recipients and the gazetteer. Holds no connection."""

    # -- agencies and recipients ---------------------------------------------------------------

    async def agencies(self, connection: asyncpg.Connection) -> list[Agency]:
        """Every agency, active or not, by name."""
        rows = await connection.fetch("SELECT code, name, active FROM agencies ORDER BY name")
        return [from_row(Agency, row) for row in rows]

    async def agency(self, connection: asyncpg.Connection, code: str) -> Agency | None:
        """One agency."""
        row = await connection.fetchrow(
            "SELECT code, name, active FROM agencies WHERE code = $1", code
        )
        return from_row(Agency, row) if row is not None else None

    async def save_agency(self, connection: asyncpg.Connection, agency: Agency) -> None:
        """Add an agency or change its name and whether it can be dispatched."""
        await connection.execute(
            """
            INSERT INTO agencies (code, name, active) VALUES ($1, $2, $3)
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, active = EXCLUDED.active
            """,
            agency.code, agency.name, agency.active,
        )

    async def add_recipient(
        self, connection: asyncpg.Connection, recipient: RecipientInput
    ) -> Recipient:
        """Add a person to notify."""
        row = await connection.fetchrow(
            """
            INSERT INTO agency_recipients (agency_code, report_type, name, role, contact)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING *
            """,
            recipient.agency_code,
            recipient.report_type.value if recipient.report_type else None,
            recipient.name, recipient.role, recipient.contact,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return from_row(Recipient, row)

    async def recipients(self, connection: asyncpg.Connection) -> list[Recipient]:
        """Every recipient, by agency then in the order they were added."""
        rows = await connection.fetch(
            "SELECT * FROM agency_recipients ORDER BY agency_code, recipient_id")
        return [from_row(Recipient, row) for row in rows]

    async def set_recipient_active(
        self, connection: asyncpg.Connection, recipient_id: int, active: bool
    ) -> Recipient | None:
        """Turn a recipient's notifications on or off; ``None`` if there is no such one."""
        row = await connection.fetchrow(
            "UPDATE agency_recipients SET active = $2 WHERE recipient_id = $1 RETURNING *",
            recipient_id, active)
        return from_row(Recipient, row) if row is not None else None

    async def recipients_for(
        self, connection: asyncpg.Connection, agency_code: str, report_type: ReportType
    ) -> list[Recipient]:
        """Active recipients of an agency for a report type (or for every type)."""
        rows = await connection.fetch(
            """
            SELECT * FROM agency_recipients
            WHERE agency_code = $1 AND active AND (report_type IS NULL OR report_type = $2)
            ORDER BY recipient_id
            """,
            agency_code, report_type.value,
        )
        return [from_row(Recipient, row) for row in rows]

    # -- gazetteer -----------------------------------------------------------------------------

    async def village_sub_district(
        self, connection: asyncpg.Connection, village_code: str
    ) -> str | None:
        """The sub-district a village lies in; ``None`` if the village is unknown."""
        value = await connection.fetchval(
            "SELECT sub_district_code FROM villages WHERE code = $1", village_code
        )
        return str(value) if value is not None else None

    async def sub_district_exists(
        self, connection: asyncpg.Connection, sub_district_code: str
    ) -> bool:
        """Whether the gazetteer knows this sub-district."""
        return bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sub_districts WHERE code = $1)", sub_district_code
        ))

    async def places(
        self, connection: asyncpg.Connection, *, sub_district_code: str | None = None
    ) -> list[Place]:
        """Villages with their sub-district, by sub-district then village name."""
        rows = await connection.fetch(
            """
            SELECT v.code AS village_code, v.name AS village_name,
                   s.code AS sub_district_code, s.name AS sub_district_name
            FROM villages v JOIN sub_districts s ON s.code = v.sub_district_code
            WHERE $1::text IS NULL OR s.code = $1
            ORDER BY s.name, v.name
            """,
            sub_district_code,
        )
        return [from_row(Place, row) for row in rows]
