"""SQL of Asterisk's outages (``asterisk_outages``) and of the calls they cut
(``calls.cut_reason``), applied by the call store with the other facts of a batch
(:mod:`telephony.calls.outages` says where the facts come from).

Replays change nothing: an outage is keyed by when it began, a call keeps its first cut, and a
cut only ever moves a vanished call's end earlier, to when it was last seen alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from telephony.calls.facts import AsteriskReturned, AsteriskShutdown, CallCut, CallFact
from telephony.calls.outages import OutageKind
from telephony.db.rows import from_row

_SHUTDOWN = """
    INSERT INTO asterisk_outages (kind, began_at) VALUES ($1, $2)
    ON CONFLICT (began_at) DO NOTHING
"""
_RETURNED = """
    INSERT INTO asterisk_outages (kind, began_at, lost_at, booted_at, back_at, calls_cut)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (began_at) DO UPDATE SET
        lost_at = COALESCE(asterisk_outages.lost_at, EXCLUDED.lost_at),
        booted_at = COALESCE(asterisk_outages.booted_at, EXCLUDED.booted_at),
        back_at = COALESCE(asterisk_outages.back_at, EXCLUDED.back_at),
        calls_cut = GREATEST(asterisk_outages.calls_cut, EXCLUDED.calls_cut)
"""
# A vanished call's end is when the resync noticed; the cut knows when it was last alive.
# An answered call Asterisk cut had no AgentComplete to say how long it talked: it talked
# until it was cut (its end as moved here; SET reads the old ended_at, hence the repeat).
_CUT = """
    UPDATE calls SET
        cut_reason = COALESCE(cut_reason, $2),
        ended_at = CASE WHEN vanished THEN LEAST(ended_at, $3) ELSE ended_at END,
        talk_seconds = COALESCE(talk_seconds, CASE WHEN answered_at IS NOT NULL
            THEN GREATEST(0, round(extract(epoch FROM
                CASE WHEN vanished THEN LEAST(ended_at, $3) ELSE ended_at END - answered_at)))::int
            END),
        updated_at = now()
    WHERE call_id = $1
"""


async def write_outage_facts(connection: asyncpg.Connection, facts: Sequence[CallFact]) -> None:
    """Apply the batch's outage facts and cuts, in order (after its ends)."""
    shutdowns = [(OutageKind.RESTART.value if f.restart else OutageKind.STOP.value, f.at)
                 for f in facts if isinstance(f, AsteriskShutdown)]
    if shutdowns:
        await connection.executemany(_SHUTDOWN, shutdowns)
    returns = [(f.outage, f.began_at, f.lost_at, f.booted_at, f.at, f.calls_cut)
               for f in facts if isinstance(f, AsteriskReturned)]
    if returns:
        await connection.executemany(_RETURNED, returns)
    cuts = [(f.call_id, f.reason, f.at) for f in facts if isinstance(f, CallCut)]
    if cuts:
        await connection.executemany(_CUT, cuts)


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
