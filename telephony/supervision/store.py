"""SQL of listening in: the supervisor's phone and the operator account at an interface. Both
live in the desks' tables (``account_operators``: one phone per account, one account per
phone). Plain reads only; the rules live in ``telephony.supervision.service``.
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

