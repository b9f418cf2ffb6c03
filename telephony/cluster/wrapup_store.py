"""SQL of the wrap-ups announced across a cluster (telephony/cluster/wrapup_sync.py): a
queue's stored wrap-up seconds, and the NOTIFY every line hears. Nothing is stored: a
wrap-up lasts seconds, and a line that missed one (its database connection away) merely
does what a node did before it was shared."""

from __future__ import annotations

import asyncpg

from telephony.cluster.wrapup import CHANNEL, WrapUp


class WrapUpRepository:
    """Reads ``queue_settings`` and sends the announcements. Holds no connection."""

    async def wrapup_seconds(self, connection: asyncpg.Connection, queue: str) -> int | None:
        """The wrap-up seconds an admin stored for ``queue`` (``None``: the default's)."""
        value = await connection.fetchval(
            "SELECT wrapup_seconds FROM queue_settings WHERE queue = $1", queue)
        return None if value is None else int(value)

    async def announce(self, connection: asyncpg.Connection, wrap: WrapUp) -> None:
        """Tell every line (this one too) that ``wrap`` began."""
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, wrap.payload())
