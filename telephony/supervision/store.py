"""SQL of listening in: the supervisor's phone and the operator account at an interface. Both
live in the desks' tables (``account_operators``: one phone per account, one account per
phone). Plain reads only; the rules live in ``telephony.supervision.service``.
"""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from telephony.db.rows import from_row
from telephony.supervision.model import PhoneHolder


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


    async def holders(self, connection: asyncpg.Connection, phones: Collection[str]
                      ) -> dict[str, PhoneHolder]:
        """The account at each of ``phones`` (a phone no account holds is left out)."""
        rows = await connection.fetch(
            """
            SELECT d.operator, a.username, a.role, a.active
            FROM account_operators d JOIN accounts a USING (account_id)
            WHERE d.operator = ANY($1::text[])
            """,
            sorted(phones))
        return {row["operator"]: from_row(PhoneHolder, row) for row in rows}
