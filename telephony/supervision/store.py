"""SQL of listening in: the supervisor's phone and the operator account at an interface. Both
live in the desks' tables (``account_operators``: one phone per account, one account per
phone); and the call an operator is answering, from the call records. Plain reads only; the
rules live in ``telephony.supervision.service``.
"""

from __future__ import annotations

import asyncpg


class SupervisionRepository:
    """Reads the desks' tables. Holds no connection: callers pass one in."""

    async def phone(self, connection: asyncpg.Connection, account_id: int) -> str | None:
        """The interface of the account's phone; ``None`` if it has none."""
        interface: str | None = await connection.fetchval(
            "SELECT operator FROM account_operators WHERE account_id = $1", account_id)
        return interface

    async def operator_at(self, connection: asyncpg.Connection, interface: str) -> str | None:
        """The username of the operator account working at ``interface``; ``None`` if no
        operator does (a supervisor's own phone is no operator's)."""
        username: str | None = await connection.fetchval(
            """
            SELECT a.username FROM account_operators d JOIN accounts a USING (account_id)
            WHERE d.operator = $1 AND a.role = 'operator'
            """,
            interface)
        return username

    async def live_call(self, connection: asyncpg.Connection, interface: str) -> str | None:
        """The call the operator at ``interface`` answered last and that has not ended, or
        the Uniqueid of the channel of such a call-back leg (placed by whichever node), as
        recorded; ``None`` if none. Within the last day: a call a dead node carried may be
        left open for hours."""
        found: str | None = await connection.fetchval(
            """
            SELECT id FROM (
                SELECT call_id AS id, answered_at FROM calls
                WHERE operator = $1 AND answered_at > now() - interval '1 day'
                  AND ended_at IS NULL
                UNION ALL
                SELECT channel_id, answered_at FROM call_legs
                WHERE kind = 'callback' AND operator = $1
                  AND requested_at > now() - interval '1 day'
                  AND answered_at IS NOT NULL AND ended_at IS NULL AND channel_id IS NOT NULL
            ) live
            ORDER BY answered_at DESC
            LIMIT 1
            """,
            interface)
        return found
