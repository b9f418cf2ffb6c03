"""Every node's line makes records of the calls the front dispatched that no node recorded
(the rules: :mod:`telephony.cluster.front`; the SQL: :mod:`telephony.cluster.front_store`).

Why in every node's line: the front is Kamailio and runs no line of ours; the line already
holds the database, the call records' vocabulary and the call store that writes a record
idempotently; and the node that lost the calls is the one that cannot do it, so each of the
others must be able to. Two lines at it at once cost nothing: each pass claims its rows with
``FOR UPDATE SKIP LOCKED`` and a lost call's record is one per Call-ID (a unique key).

When a call counts as lost: a grace period (``front_reconcile_grace_seconds``) after the front
wrote its row, at its final reply, with no record carrying its Call-ID. A live node records a
call's start within a second of its INVITE, or spools it while the database is down (and then
no line can reconcile either), so the grace needs no word on which nodes are alive. A node
that comes back later and replays a spool that held the call after all: its record replaces
the lost one at the next pass (:func:`telephony.cluster.front_store.supersede`).

The same pass moves out of ``calls`` the records of offers the front withdrew
(:func:`telephony.cluster.front.withdrawn_offers`): a node that took a call after the front's
timeout had given it to the next node. They are looked for once, when the front row is
claimed, a grace after the call's final reply: such a record ends within a second of its start.

The front's table would grow with every call for ever: each pass also deletes the reconciled
rows older than ``front_calls_retention_days`` (:func:`telephony.cluster.front_store.purge`),
:data:`PURGE_BATCH` rows per statement (short transactions: the front's inserts and the other
line's passes never wait long) and at most :data:`PURGE_BATCHES` per pass, so a backlog (an
upgrade over months of rows) drains over a few passes rather than in one long burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from telephony.calls.store import CallRepository
from telephony.cluster.front import FrontCall, lost_calls
from telephony.cluster.front_store import (
    claim,
    mark_reconciled,
    purge,
    supersede,
    withdraw_offers,
)
from telephony.core.loops import run_passes
from telephony.db.connection import Database
from telephony.settings import ClusterNode, Settings

log = logging.getLogger("telephony.cluster")

BATCH = 500  # front rows per transaction
PURGE_BATCH = 1000  # front rows per deleting statement
PURGE_BATCHES = 20  # deleting statements per pass at most (20,000 rows)


class FrontReconciler:
    """Turns the front's unrecorded dispatched calls into call records, pass after pass."""

    def __init__(self, database: Database, repository: CallRepository,
                 nodes: Sequence[ClusterNode], *, grace_seconds: float,
                 interval_seconds: float, retention_days: int = 31) -> None:
        self._database = database
        self._repository = repository
        self._nodes = tuple(nodes)
        self._grace = timedelta(seconds=grace_seconds)
        self._interval = interval_seconds
        self._retention = timedelta(days=retention_days)
        self._stuck: set[str] = set()

    @classmethod
    def from_settings(cls, database: Database, repository: CallRepository,
                      settings: Settings) -> FrontReconciler | None:
        """The reconciler of a cluster node's line; None for a single node (no front)."""
        if settings.cluster_self is None:
            return None
        return cls(database, repository, settings.cluster_nodes,
                   grace_seconds=settings.front_reconcile_grace_seconds,
                   interval_seconds=settings.front_reconcile_seconds,
                   retention_days=settings.front_calls_retention_days)

    async def reconcile(self) -> int:
        """One pass over everything due (a batch per transaction); the records it made."""
        made = 0
        while True:
            batch, more = await self._database.run(self._batch)
            made += batch
            if not more:
                break
        deleted = await self._database.run(
            lambda connection: supersede(connection, self._stuck))
        if deleted:
            log.warning("%d lost-call records gave way to their node's own records", deleted)
        await self.purge()
        return made

    async def purge(self) -> int:
        """Delete reconciled front rows past their retention, a batch per statement, up to
        :data:`PURGE_BATCHES` batches; how many."""
        purged = 0
        for _ in range(PURGE_BATCHES):
            batch = await self._database.run(lambda connection: purge(
                connection, older_than=self._retention, limit=PURGE_BATCH))
            purged += batch
            if batch < PURGE_BATCH:
                break
        if purged:
            log.info("%d front call rows older than %d days deleted", purged,
                     self._retention.days)
        return purged

    async def _batch(self, connection: asyncpg.Connection) -> tuple[int, bool]:
        async with connection.transaction():
            claimed = await claim(connection, grace=self._grace, limit=BATCH)
            facts, refused = lost_calls(claimed.unrecorded, self._nodes)
            for problem in refused:
                log.warning("front call not recorded: %s", problem)
            made = await self._repository.apply(connection, facts) if facts else 0
            moved, stayed = await self._withdraw(connection, claimed.shared)
            await mark_reconciled(connection, claimed.ids)
        if moved:
            log.warning("%d records of calls the front gave another node moved to "
                        "withdrawn_offers (their node took the call after the front's "
                        "timeout)", moved)
        for call_id in stayed:
            log.warning("record %s of a call the front gave another node stays in calls: "
                        "something refers to it (recording, incident, label, call-back)",
                        call_id)
        if facts:
            nodes = Counter(fact.node for fact in facts)
            log.warning("calls the front dispatched and no node recorded, now recorded as lost "
                        "with their node: %s", ", ".join(f"{node} {count}" for node, count
                                                         in sorted(nodes.items())))
        return made, len(claimed.ids) == BATCH

    async def _withdraw(self, connection: asyncpg.Connection, rows: Sequence[FrontCall],
                        ) -> tuple[int, list[str]]:
        """:func:`withdraw_offers` in a savepoint of its own: whatever goes wrong there, the
        lost calls' records (on the call-back worklist) are still made and the rows marked;
        those rows' offers stay in calls, logged."""
        try:
            async with connection.transaction():
                return await withdraw_offers(connection, rows, self._nodes)
        except asyncpg.PostgresError as exc:
            log.error("offers the front withdrew not moved out of calls (%d front rows): %s",
                      len(rows), exc)
            return 0, []

    async def run(self) -> None:
        """Forever (until cancelled); a database outage pauses it, logged once."""
        await run_passes("front call reconciliation", self.reconcile,
                         lambda: asyncio.sleep(self._interval), log)
