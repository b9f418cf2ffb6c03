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

    async def answered_queue(self, connection: asyncpg.Connection, call_id: str,
                             operator: str) -> str | None:
        """The queue ``operator`` answered ``call_id`` in (``None``: not known)."""
        value = await connection.fetchval(
            """
            SELECT COALESCE(
                (SELECT queue FROM call_answers WHERE call_id = $1 AND operator = $2),
                (SELECT answered_queue FROM calls WHERE call_id = $1 AND operator = $2))
            """, call_id, operator)
        return None if value is None else str(value)

    async def left(self, connection: asyncpg.Connection, call_id: str, operator: str) -> bool:
        """Whether ``operator`` left a three-way call of ``call_id`` (a ``leave`` step of
        one of their legs): their wrap-up began there, not at the call's end."""
        return bool(await connection.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM transfer_steps s JOIN call_legs l USING (leg_id)
                           WHERE l.call_id = $1 AND l.operator = $2 AND s.step = 'leave')
            """, call_id, operator))

    async def announce(self, connection: asyncpg.Connection, wrap: WrapUp) -> None:
        """Tell every line (this one too) that ``wrap`` began."""
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, wrap.payload())
