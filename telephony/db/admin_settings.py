"""SQL for what an admin sets outside the versioned documents: queue_settings and
site_settings (migration 0009).

Plain reads and writes only: the rules live in ``telephony.admin``. Every method takes the
connection to run on.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import asyncpg

from telephony.admin.queues import EDITABLE, QueueSettings


class AdminSettingsRepository:
    """Reads and writes the admin's settings tables. Holds no connection."""

    async def queue_settings(self, connection: asyncpg.Connection) -> dict[str, QueueSettings]:
        """Queue -> the settings an admin stored for it."""
        rows = await connection.fetch("SELECT * FROM queue_settings ORDER BY queue")
        return {row["queue"]: QueueSettings(**dict(row)) for row in rows}

    async def save_queue_settings(self, connection: asyncpg.Connection,
                                  settings: QueueSettings, actor: str) -> QueueSettings:
        """Store one queue's settings; returns them as stored (with who and when)."""
        values = asdict(settings)
        columns = ", ".join(EDITABLE)
        placeholders = ", ".join(f"${i}" for i in range(3, len(EDITABLE) + 3))
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in EDITABLE)
        # The column names come from EDITABLE, a constant; values are parameters.
        row = await connection.fetchrow(
            f"""
            INSERT INTO queue_settings (queue, updated_by, {columns})
            VALUES ($1, $2, {placeholders})
            ON CONFLICT (queue) DO UPDATE SET {updates},
                updated_by = EXCLUDED.updated_by, updated_at = now()
            RETURNING *
            """,  # noqa: S608
            settings.queue, actor, *(values[name] for name in EDITABLE))
        assert row is not None  # INSERT ... RETURNING always returns the row
        return QueueSettings(**dict(row))

    async def site_setting(self, connection: asyncpg.Connection, name: str) -> Any:
        """The decoded value an admin set for ``name``; ``None`` if they never did."""
        value = await connection.fetchval("SELECT value::text FROM site_settings WHERE name = $1",
                                          name)
        return None if value is None else json.loads(value)

    async def save_site_setting(self, connection: asyncpg.Connection, name: str, value: Any,
                                actor: str) -> None:
        """Store an admin's value for ``name``."""
        await connection.execute(
            """
            INSERT INTO site_settings (name, value, updated_by) VALUES ($1, $2::jsonb, $3)
            ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value,
                updated_by = EXCLUDED.updated_by, updated_at = now()
            """,
            name, json.dumps(value, ensure_ascii=False), actor)
