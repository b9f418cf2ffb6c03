"""SQL for the shifts table: the configured shift roster, mirrored for reports."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from telephony.settings import ShiftDefinition


async def sync_shifts(connection: asyncpg.Connection, shifts: Sequence[ShiftDefinition]) -> None:
    """Make the ``shifts`` table hold exactly the configured roster."""
    async with connection.transaction():
        await connection.execute("DELETE FROM shifts")
        await connection.executemany(
            "INSERT INTO shifts (name, starts_at) VALUES ($1, $2)",
            [(shift.name, shift.start) for shift in shifts],
        )
