"""Asterisk's outages as stored (``asterisk_outages``).

The call store writes them, and the calls they cut (``calls.cut_reason``), with the other
facts of a batch (``record_call_facts``, migration 0033); :mod:`telephony.calls.outages` says
where the facts come from. Replays change nothing: an outage is keyed by when it began, a call
keeps its first cut, and a cut only ever moves a vanished call's end earlier, to when it was
last seen alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from telephony.calls.outages import OutageKind
from telephony.db.rows import from_row


@dataclass(frozen=True)
class AsteriskOutage:
    """One outage as stored."""

    outage_id: int
    kind: OutageKind
    began_at: datetime
    lost_at: datetime | None
    booted_at: datetime | None
    back_at: datetime | None
    calls_cut: int


async def outages(connection: asyncpg.Connection, *, since: datetime) -> list[AsteriskOutage]:
    """The outages that began since ``since``, oldest first (for reports and incidents)."""
    rows = await connection.fetch(
        "SELECT * FROM asterisk_outages WHERE began_at >= $1 ORDER BY began_at", since)
    return [from_row(AsteriskOutage, row) for row in rows]
