"""SQL for transfers: agency numbers, what each transfer leg was for, and the operator's steps
on it (migration 0013). The leg itself is a ``call_legs`` row (``LegRepository``). Plain reads
and writes; every method takes the connection to run on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from telephony.calls.legs import Leg
from telephony.db.rows import from_row
from telephony.transfers.model import AgencyNumber, NumberInput, Step, TransferLeg

_NUMBERS = """
    SELECT n.number_id, n.agency_code, a.name AS agency_name, n.label, n.number, n.active,
           a.active AS agency_active
    FROM agency_numbers n JOIN agencies a ON a.code = n.agency_code
"""

_LEGS = """
    SELECT l.*, t.number_id, t.operator_channel, t.dispatch_id, n.agency_code, n.label
    FROM call_legs l
    JOIN transfer_legs t USING (leg_id)
    JOIN agency_numbers n USING (number_id)
"""


class TransferStore:
    """Reads and writes agency numbers and transfer legs. Holds no connection."""

    # -- agency numbers ----------------------------------------------------------------------------

    async def numbers(self, connection: asyncpg.Connection) -> list[AgencyNumber]:
        """Every number, by agency name then label."""
        rows = await connection.fetch(_NUMBERS + " ORDER BY a.name, n.label, n.number_id")
        return [from_row(AgencyNumber, row) for row in rows]

    async def number(self, connection: asyncpg.Connection, number_id: int
                     ) -> AgencyNumber | None:
        """One number."""
        row = await connection.fetchrow(_NUMBERS + " WHERE n.number_id = $1", number_id)
        return from_row(AgencyNumber, row) if row is not None else None

    async def add_number(self, connection: asyncpg.Connection, entry: NumberInput) -> int:
        """Add a number (or change the label and activity of the agency's same number)."""
        value = await connection.fetchval(
            """
            INSERT INTO agency_numbers (agency_code, label, number, active)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (agency_code, number)
            DO UPDATE SET label = EXCLUDED.label, active = EXCLUDED.active
            RETURNING number_id
            """,
            entry.agency_code, entry.label, entry.number, entry.active)
        return int(value)

    async def update_number(self, connection: asyncpg.Connection, number_id: int,
                            entry: NumberInput) -> bool:
        """Change a number; False when there is no such one (or it moved to another agency,
        which is refused: a past leg must keep naming the agency it went to)."""
        status = await connection.execute(
            """
            UPDATE agency_numbers SET label = $3, number = $4, active = $5
            WHERE number_id = $1 AND agency_code = $2
            """,
            number_id, entry.agency_code, entry.label, entry.number, entry.active)
        return str(status).endswith(" 1")

    # -- legs ------------------------------------------------------------------------------------

    async def lock_call(self, connection: asyncpg.Connection, call_id: str) -> None:
        """Serialise transfer requests of one call until the transaction ends (two clicks at
        once must not both start a transfer)."""
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('transfer:' || $1))",
                                 call_id)

    async def add_leg(self, connection: asyncpg.Connection, leg_id: int, number_id: int,
                      operator_channel: str) -> None:
        """What a new leg is for."""
        await connection.execute(
            "INSERT INTO transfer_legs (leg_id, number_id, operator_channel) VALUES ($1, $2, $3)",
            leg_id, number_id, operator_channel)

    async def set_dispatch(self, connection: asyncpg.Connection, leg_id: int,
                           dispatch_id: int) -> None:
        """The dispatch the transfer recorded by phone."""
        await connection.execute(
            "UPDATE transfer_legs SET dispatch_id = $2 WHERE leg_id = $1", leg_id, dispatch_id)

    async def add_step(self, connection: asyncpg.Connection, leg_id: int, step: Step,
                       actor: str, at: datetime | None = None) -> datetime:
        """The operator took ``step`` (once Asterisk accepted it), now or at ``at`` (a step
        learnt of later than it was taken); when it is recorded as taken."""
        recorded: datetime = await connection.fetchval(
            "INSERT INTO transfer_steps (leg_id, step, actor, at)"
            " VALUES ($1, $2, $3, COALESCE($4, now())) RETURNING at",
            leg_id, step.value, actor, at)
        return recorded

    async def steps(self, connection: asyncpg.Connection, leg_ids: Sequence[int]
                    ) -> dict[int, tuple[tuple[Step, str, datetime], ...]]:
        """The steps of these legs, oldest first."""
        rows = await connection.fetch(
            "SELECT leg_id, step, actor, at FROM transfer_steps WHERE leg_id = ANY($1::bigint[])"
            " ORDER BY step_id", list(leg_ids))
        found: dict[int, list[tuple[Step, str, datetime]]] = {}
        for row in rows:
            found.setdefault(row["leg_id"], []).append((Step(row["step"]), row["actor"],
                                                        row["at"]))
        return {leg_id: tuple(steps) for leg_id, steps in found.items()}

    async def legs_of_call(self, connection: asyncpg.Connection, call_id: str
                           ) -> list[TransferLeg]:
        """The transfer legs of a call, oldest first."""
        rows = await connection.fetch(_LEGS + " WHERE l.call_id = $1 ORDER BY l.leg_id", call_id)
        return await self._with_steps(connection, rows)

    async def answered_legs(self, connection: asyncpg.Connection, since: datetime
                            ) -> list[TransferLeg]:
        """Legs requested since ``since``, answered and not ended (their phase says which
        are three-way calls going on), oldest first."""
        rows = await connection.fetch(
            _LEGS + " WHERE l.requested_at > $1 AND l.answered_at IS NOT NULL"
                    " AND l.ended_at IS NULL ORDER BY l.leg_id", since)
        return await self._with_steps(connection, rows)

    async def leg(self, connection: asyncpg.Connection, leg_id: int, *, lock: bool = False
                  ) -> TransferLeg | None:
        """One transfer leg (its row locked for this transaction when asked)."""
        suffix = " WHERE l.leg_id = $1" + (" FOR UPDATE OF l" if lock else "")
        rows = await connection.fetch(_LEGS + suffix, leg_id)
        found = await self._with_steps(connection, rows)
        return found[0] if found else None

    async def _with_steps(self, connection: asyncpg.Connection,
                          rows: Sequence[asyncpg.Record]) -> list[TransferLeg]:
        steps = await self.steps(connection, [row["leg_id"] for row in rows])
        return [TransferLeg(
            leg=from_row(Leg, row), number_id=row["number_id"],
            agency_code=row["agency_code"], label=row["label"],
            operator_channel=row["operator_channel"], dispatch_id=row["dispatch_id"],
            steps=steps.get(row["leg_id"], ())) for row in rows]

    async def incident_legs(self, connection: asyncpg.Connection, incident_id: int
                            ) -> list[tuple[Leg, tuple[tuple[Step, str, datetime], ...]]]:
        """Every leg of the incident's calls (transfers, conferences, call-backs alike),
        oldest first, with the operator's steps on each."""
        rows = await connection.fetch(
            """
            SELECT l.* FROM call_legs l
            WHERE l.incident_id = $1
               OR l.call_id IN (SELECT call_id FROM incident_calls WHERE incident_id = $1)
            ORDER BY l.requested_at, l.leg_id
            """, incident_id)
        steps = await self.steps(connection, [row["leg_id"] for row in rows])
        return [(from_row(Leg, row), steps.get(row["leg_id"], ())) for row in rows]
