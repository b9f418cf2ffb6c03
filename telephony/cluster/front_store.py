"""SQL of the front's dispatched calls (``front_calls``, migration 0026), of the records a
line makes of the lost ones, and of the offers the front withdrew (``withdrawn_offers``,
0034) (:mod:`telephony.cluster.front` has the rules).

Several lines reconcile at once (every node runs it): each pass claims the rows it looks at
with ``FOR UPDATE SKIP LOCKED``, so two lines never work on one row, and a lost call's record
is one per Call-ID (a partial unique index) whatever happens. Reconciled rows past their
retention are deleted the same way (:func:`purge`), a bounded batch per statement.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from telephony.cluster.front import FrontCall, NodeRecord, withdrawn_offers
from telephony.db.rows import from_row
from telephony.settings import ClusterNode

log = logging.getLogger("telephony.cluster")

# How far back a lost call's record may still give way to its node's own record (a node that
# comes back with its spool: days would be a machine rebuilt, not a spool replayed).
SUPERSEDE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Claimed:
    """The front rows a pass took: those a node recorded, and those none did; and of the
    recorded, those more than one record carries (an offer withdrawn, or a lost record's
    node back with its own)."""

    recorded: list[int]
    unrecorded: list[FrontCall]
    shared: list[FrontCall]

    @property
    def ids(self) -> list[int]:
        """Every row taken."""
        return [*self.recorded, *(row.id for row in self.unrecorded)]


async def claim(connection: asyncpg.Connection, *, grace: timedelta, limit: int) -> Claimed:
    """Lock up to ``limit`` rows written at least ``grace`` ago and not yet reconciled (none
    another line holds), oldest first; in a transaction."""
    rows = await connection.fetch(
        """
        SELECT f.id, f.method, f.callid, f.sip_code, f.sip_reason, f.caller, f.line, f.node,
               f.dispatched, f.recorded_at,
               (SELECT count(*) FROM calls c WHERE c.sip_call_id = f.callid) AS records
        FROM front_calls f
        WHERE f.reconciled_at IS NULL AND f.recorded_at <= now() - $1::interval
        ORDER BY f.recorded_at, f.id
        LIMIT $2
        FOR UPDATE OF f SKIP LOCKED
        """, grace, limit)
    return Claimed([row["id"] for row in rows if row["records"]],
                   [from_row(FrontCall, row) for row in rows if not row["records"]],
                   [from_row(FrontCall, row) for row in rows if row["records"] > 1])


async def mark_reconciled(connection: asyncpg.Connection, ids: Sequence[int]) -> None:
    """These rows are done: their call has a record (or cannot have one)."""
    if ids:
        await connection.execute(
            "UPDATE front_calls SET reconciled_at = now() WHERE id = ANY($1::bigint[])",
            list(ids))


async def purge(connection: asyncpg.Connection, *, older_than: timedelta, limit: int) -> int:
    """Delete up to ``limit`` reconciled rows the front wrote more than ``older_than`` ago,
    oldest first (by ``front_calls_reconciled_idx``; rows another line is deleting are left
    to it); how many. An unreconciled row stays whatever its age: it is still owed a
    record."""
    status = await connection.execute(
        """
        DELETE FROM front_calls WHERE id = ANY (ARRAY(
            SELECT id FROM front_calls
            WHERE reconciled_at IS NOT NULL AND recorded_at < now() - $1::interval
            ORDER BY recorded_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED))
        """, older_than, limit)
    return int(status.rsplit(" ", 1)[-1])


async def supersede(connection: asyncpg.Connection, stuck: set[str]) -> int:
    """Give way to a node's own record of a lost call: a node that came back had recorded it
    after all (its spool replayed, its queue_log backfilled). Once every such record has ended,
    the lost record is deleted, and if the node's record ended without a hang-up seen
    (vanished, and cut by nothing else) it takes on the lost one's reason: the call was lost
    with its node. Its post-call score goes with it: the screening's upkeep scores every ended
    call, the lost record too, and scores the node's record in turn. A lost record a person
    already acted on (an incident, a label, a call-back closed) stays, logged once (``stuck``
    remembers it). Returns how many gave way."""
    rows = await connection.fetch(
        """
        SELECT l.call_id, l.sip_call_id, l.hangup_cause_text FROM calls l
        WHERE l.cut_reason = 'node_lost' AND l.arrived_at > now() - $1::interval
          AND EXISTS (SELECT 1 FROM calls c
                      WHERE c.sip_call_id = l.sip_call_id AND c.call_id <> l.call_id)
          AND NOT EXISTS (SELECT 1 FROM calls c
                          WHERE c.sip_call_id = l.sip_call_id AND c.call_id <> l.call_id
                            AND c.ended_at IS NULL)
        """, SUPERSEDE_WINDOW)
    deleted = 0
    for row in rows:
        call_id = row["call_id"]
        if call_id in stuck:
            continue
        try:
            async with connection.transaction():
                await connection.execute("DELETE FROM call_screening WHERE call_id = $1",
                                         call_id)
                await connection.execute(
                    "DELETE FROM calls WHERE call_id = $1 AND cut_reason = 'node_lost'", call_id)
                await connection.execute(
                    """
                    UPDATE calls SET cut_reason = 'node_lost', hangup_cause_text = $2,
                                     updated_at = now()
                    WHERE call_id = (SELECT call_id FROM calls
                                     WHERE sip_call_id = $1 AND vanished AND cut_reason IS NULL
                                     ORDER BY arrived_at DESC, call_id LIMIT 1)
                    """, row["sip_call_id"], row["hangup_cause_text"])
        except asyncpg.ForeignKeyViolationError:
            stuck.add(call_id)
            log.warning("lost call %s: its node recorded it after all, but it is referenced "
                        "(incident, label, call-back): both records stay", call_id)
            continue
        deleted += 1
    return deleted


async def withdraw_offers(connection: asyncpg.Connection, rows: Sequence[FrontCall],
                          nodes: Sequence[ClusterNode]) -> tuple[int, list[str]]:
    """Move the records of ``rows``' calls that are offers the front withdrew
    (:func:`telephony.cluster.front.withdrawn_offers`) into ``withdrawn_offers``, whole, and
    out of ``calls`` with their post-call score, one savepoint each; in a transaction. A
    record something refers to (its recording, an incident, a label, a call-back) stays.
    Returns how many moved, and the ids of those that stayed."""
    if not rows:
        return 0, []
    found = await connection.fetch(
        """
        SELECT call_id, sip_call_id, ended_at IS NOT NULL AS ended,
               queue IS NOT NULL OR operator IS NOT NULL AS queued,
               cut_reason IS NOT DISTINCT FROM 'node_lost' AS lost,
               extract(epoch FROM ended_at - arrived_at)::float8 AS seconds, arrived_at
        FROM calls WHERE sip_call_id = ANY($1::text[])
        """, [row.callid for row in rows])
    records: dict[str, list[NodeRecord]] = defaultdict(list)
    for record in found:
        records[record["sip_call_id"]].append(NodeRecord(
            record["call_id"], record["ended"], record["queued"], record["lost"],
            record["seconds"], record["arrived_at"]))
    moved, stayed = 0, []
    for row in rows:
        withdrawn, kept = withdrawn_offers(row, records[row.callid], nodes)
        for call_id in withdrawn:
            try:
                async with connection.transaction():
                    await connection.execute(
                        """
                        INSERT INTO withdrawn_offers (call_id, sip_call_id, kept_call_id, record)
                        SELECT call_id, sip_call_id, $2, to_jsonb(c) FROM calls c
                        WHERE call_id = $1
                        ON CONFLICT (call_id) DO NOTHING
                        """, call_id, kept)
                    await connection.execute(
                        "DELETE FROM call_screening WHERE call_id = $1", call_id)
                    await connection.execute(
                        "DELETE FROM call_screening_due WHERE call_id = $1", call_id)
                    await connection.execute("DELETE FROM calls WHERE call_id = $1", call_id)
            except asyncpg.ForeignKeyViolationError:
                stayed.append(call_id)
                continue
            moved += 1
    return moved, stayed
