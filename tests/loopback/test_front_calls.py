"""The front's dispatched calls in PostgreSQL (migration 0026, telephony/cluster/front_store.py,
telephony/cluster/reconcile.py): the front writes them as the Asterisk role, a line makes the
ones no node recorded records of their own, once however often and by however many lines it
runs, and a node's own record, arriving late, takes the lost one's place. A record of an offer
the front withdrew (0034) moves out of the calls. Reconciled rows past their retention are
deleted by the same passes, in bounded batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from telephony.calls.facts import CallEnded, CallStarted, CallVanished
from telephony.calls.history import recorded_calls
from telephony.calls.store import CallRepository
from telephony.cluster import reconcile
from telephony.cluster.front import LOST_SEQ_BASE
from telephony.cluster.reconcile import FrontReconciler
from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.desks.store import DeskRepository
from telephony.settings import ClusterNode, Settings
from tests.support.calls import CALENDAR

NODES = (ClusterNode("node1", "127.0.0.11", 5061, 4574),
         ClusterNode("node2", "127.0.0.12", 5062, 4575))
FRONT_ROLE, FRONT_PASSWORD = "siaga112_front_test", "front-test-secret"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)


@pytest.fixture
async def front(pg_cluster: EmbeddedPostgres, database_owner_dsn: str,
                ) -> AsyncIterator[asyncpg.Connection]:
    """The test database as the SIP front connects to it: the nodes' Asterisk role, as the
    line grants it at start."""
    owner = await asyncpg.connect(database_owner_dsn)
    try:
        await DeskRepository().grant_phone_reader(owner, FRONT_ROLE, FRONT_PASSWORD)
    finally:
        await owner.close()
    database = database_owner_dsn.rsplit("/", 1)[1]
    connection = await asyncpg.connect(
        f"postgresql://{FRONT_ROLE}:{FRONT_PASSWORD}@127.0.0.1:{pg_cluster.port}/{database}")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def database(settings: Settings, database_dsn: str) -> AsyncIterator[Database]:
    db = Database(replace(settings, database_dsn=database_dsn))
    try:
        yield db
    finally:
        await db.close()


def reconciler(database: Database, grace: float = 60.0) -> FrontReconciler:
    return FrontReconciler(database, CallRepository(CALENDAR), NODES, grace_seconds=grace,
                           interval_seconds=1.0)


async def dispatch(front: asyncpg.Connection, callid: str, node: str, *,
                   written: datetime, code: str = "200", caller: str = "081234567") -> None:
    """A row as Kamailio's acc writes it (default columns and the front's extras; no
    RETURNING: the front may not read the table)."""
    await front.execute(
        """
        INSERT INTO front_calls (method, from_tag, to_tag, callid, sip_code, sip_reason, time,
                                 caller, line, node, dispatched, recorded_at)
        VALUES ('INVITE', 'ft', 'tt', $1, $2, 'OK', $3, $4, '112', $5, $6, $7)
        """, callid, code, written.replace(tzinfo=None), caller, node,
        f"{written.timestamp() - 0.5:.6f}", written)


async def test_each_dispatched_call_no_node_recorded_becomes_one_record(
        front: asyncpg.Connection, database: Database, database_dsn: str) -> None:
    line = await asyncpg.connect(database_dsn)
    try:
        # node2 recorded its call with the carrier's Call-ID; node1 died with its call.
        await CallRepository(CALENDAR).apply(line, [CallStarted(
            "node2-1796472000.7", "node2-1796472000.7", "PJSIP/carrier-7", "0812", "", "112",
            T0, sip_call_id="kept@carrier")])
        await dispatch(front, "kept@carrier", "sip:127.0.0.12:5062", written=T0)
        await dispatch(front, "lost@carrier", "sip:127.0.0.11:5061", written=T0,
                       caller="\u202e0812\x1b[2J")
        lost = await line.fetchval("SELECT id FROM front_calls WHERE callid = 'lost@carrier'")
        await dispatch(front, "bad id@carrier", "sip:127.0.0.11:5061", written=T0)
        await dispatch(front, "fresh@carrier", "sip:127.0.0.11:5061",
                       written=datetime.now(UTC))  # within the grace: not yet

        # Two lines at it at once, and again: one record.
        made = await asyncio.gather(reconciler(database).reconcile(),
                                    reconciler(database).reconcile())
        assert sorted(made) == [0, 1]
        assert await reconciler(database).reconcile() == 0

        rows = await line.fetch("SELECT c.*, o.disposition FROM calls c "
                                "JOIN call_outcomes o USING (call_id) "
                                "WHERE c.cut_reason = 'node_lost'")
        assert len(rows) == 1
        (row,) = rows
        assert row["call_id"] == f"node1-{int(T0.timestamp() - 0.5)}.{LOST_SEQ_BASE + lost}"
        assert row["sip_call_id"] == "lost@carrier"
        assert row["caller_number"] == "0812[2J" and row["line"] == "112"
        assert row["arrived_at"] == row["ended_at"] == T0 - timedelta(seconds=0.5)
        assert row["disposition"] == "vanished"
        assert row["hangup_cause_text"] == "hilang bersama node node1"
        assert row["shift_day"] is not None and row["shift_name"] is not None
        assert await line.fetchval(
            "SELECT count(*) FROM call_events WHERE kind = 'call_lost'") == 1
        # Every row old enough is done (the malformed one too: logged, never retried); the
        # fresh one waits for the grace.
        pending = await line.fetch("SELECT callid FROM front_calls WHERE reconciled_at IS NULL")
        assert [r["callid"] for r in pending] == ["fresh@carrier"]
        # The front may write its rows, and read nothing back.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await front.fetch("SELECT * FROM front_calls")
    finally:
        await line.close()


async def test_a_nodes_own_record_arriving_late_takes_the_lost_ones_place(
        front: asyncpg.Connection, database: Database, database_dsn: str) -> None:
    await dispatch(front, "late@carrier", "sip:127.0.0.11:5061", written=T0)
    await dispatch(front, "held@carrier", "sip:127.0.0.11:5061", written=T0)
    assert await reconciler(database).reconcile() == 2
    line = await asyncpg.connect(database_dsn)
    try:
        lost = {r["sip_call_id"]: r["call_id"] for r in await line.fetch(
            "SELECT call_id, sip_call_id FROM calls WHERE cut_reason = 'node_lost'")}
        # The screening's upkeep scored the ended lost record of one (it scores every ended
        # call): that does not keep it. A supervisor closed the other's call-back entry
        # meanwhile: that one is kept, whatever comes.
        await line.execute(
            "INSERT INTO call_screening (call_id, looked_silent, post_score, post_reasons) "
            "VALUES ($1, false, 0.1, '[]')", lost["late@carrier"])
        await line.execute(
            "INSERT INTO callback_closures (call_id, closed_by, reason) "
            "VALUES ($1, 'sup', 'reached')", lost["held@carrier"])
        # node1 comes back and replays its spool: it had recorded both calls after all.
        started = [CallStarted(f"node1-1796472000.{n}", f"node1-1796472000.{n}",
                               "PJSIP/carrier-1", "0812", "", "112", T0, sip_call_id=callid)
                   for n, callid in ((1, "late@carrier"), (2, "held@carrier"))]
        repository = CallRepository(CALENDAR)
        await repository.apply(line, started)
        # Not while the node's record is open: it may still end otherwise.
        await reconciler(database).reconcile()
        assert await line.fetchval(
            "SELECT count(*) FROM calls WHERE sip_call_id = 'late@carrier'") == 2
        # Its resync finds the call gone (the node died with it): vanished, lost with node1.
        gone = T0 + timedelta(seconds=30)
        await repository.apply(line, [CallVanished("node1-1796472000.1", gone),
                                      CallVanished("node1-1796472000.2", gone)])
        await reconciler(database).reconcile()
        await reconciler(database).reconcile()
        rows = await line.fetch("SELECT call_id, cut_reason, hangup_cause_text FROM calls "
                                "WHERE sip_call_id = 'late@carrier'")
        assert [tuple(r) for r in rows] == [
            ("node1-1796472000.1", "node_lost", "hilang bersama node node1")]
        held = await line.fetch("SELECT call_id FROM calls WHERE sip_call_id = 'held@carrier' "
                                "ORDER BY call_id")
        assert [r["call_id"] for r in held] == sorted(["node1-1796472000.2",
                                                       lost["held@carrier"]])
    finally:
        await line.close()


async def test_a_record_of_an_offer_the_front_withdrew_moves_out_of_the_calls(
        front: asyncpg.Connection, database: Database, database_dsn: str) -> None:
    # The front gave both calls to node2 after node1 let its timeout pass; node1 took each
    # INVITE moments later and its line recorded a channel that ended at once.
    kept = [CallStarted(f"node2-1796472000.{n}", f"node2-1796472000.{n}", "PJSIP/carrier-2",
                        "0812", "", "112", T0, sip_call_id=callid)
            for n, callid in ((1, "moved@carrier"), (2, "labelled@carrier"))]
    offers = [CallStarted(f"node1-1796472001.{n}", f"node1-1796472001.{n}", "PJSIP/carrier-1",
                          "0812", "", "112", T0 + timedelta(seconds=1), sip_call_id=callid)
              for n, callid in ((1, "moved@carrier"), (2, "labelled@carrier"))]
    ended = [CallEnded(offer.call_id, 16, "Normal Clearing", T0 + timedelta(seconds=1.002))
             for offer in offers]
    line = await asyncpg.connect(database_dsn)
    try:
        await CallRepository(CALENDAR).apply(line, [*kept, *offers, *ended])
        # An operator labelled the other offer meanwhile: what a person did stays.
        await line.execute("INSERT INTO call_labels (call_id, label, labelled_by) "
                           "VALUES ('node1-1796472001.2', 'silent', 'op')")
        for callid in ("moved@carrier", "labelled@carrier"):
            await dispatch(front, callid, "sip:127.0.0.12:5062", written=T0)

        assert await reconciler(database).reconcile() == 0  # no lost call to make
        assert await reconciler(database).reconcile() == 0

        rows = await line.fetch("SELECT call_id FROM calls WHERE sip_call_id = 'moved@carrier'")
        assert [r["call_id"] for r in rows] == ["node2-1796472000.1"]
        withdrawn = await line.fetch("SELECT * FROM withdrawn_offers")
        assert [(r["call_id"], r["sip_call_id"], r["kept_call_id"]) for r in withdrawn] == [
            ("node1-1796472001.1", "moved@carrier", "node2-1796472000.1")]
        (moved,) = withdrawn
        assert '"hangup_cause_text": "Normal Clearing"' in moved["record"]
        assert await line.fetchval("SELECT count(*) FROM calls WHERE sip_call_id = "
                                   "'labelled@carrier'") == 2
        # Not a call to rebuild from node1's queue_log either.
        held = await recorded_calls(line, ["node1-1796472001.1"])
        assert held["node1-1796472001.1"].ended
    finally:
        await line.close()


async def test_a_failing_withdrawal_holds_back_no_lost_call(
        front: asyncpg.Connection, database: Database, database_dsn: str,
        database_owner_dsn: str) -> None:
    kept = CallStarted("node2-1796472000.5", "node2-1796472000.5", "PJSIP/carrier-2", "0812", "",
                       "112", T0, sip_call_id="shared@carrier")
    offer = CallStarted("node1-1796472001.5", "node1-1796472001.5", "PJSIP/carrier-1", "0812",
                        "", "112", T0 + timedelta(seconds=1), sip_call_id="shared@carrier")
    line = await asyncpg.connect(database_dsn)
    owner = await asyncpg.connect(database_owner_dsn)
    try:
        await CallRepository(CALENDAR).apply(line, [kept, offer, CallEnded(
            offer.call_id, 16, "Normal Clearing", T0 + timedelta(seconds=1.002))])
        await dispatch(front, "shared@carrier", "sip:127.0.0.12:5062", written=T0)
        await dispatch(front, "gone@carrier", "sip:127.0.0.11:5061", written=T0)
        # The withdrawal breaks (its table gone): the lost call is recorded all the same.
        await owner.execute("ALTER TABLE withdrawn_offers RENAME TO withdrawn_offers_away")
        try:
            assert await reconciler(database).reconcile() == 1
        finally:
            await owner.execute("ALTER TABLE withdrawn_offers_away RENAME TO withdrawn_offers")
        assert await line.fetchval("SELECT count(*) FROM calls WHERE sip_call_id = "
                                   "'gone@carrier' AND cut_reason = 'node_lost'") == 1
        assert await line.fetchval("SELECT count(*) FROM calls WHERE sip_call_id = "
                                   "'shared@carrier'") == 2
        assert await line.fetchval("SELECT count(*) FROM front_calls "
                                   "WHERE reconciled_at IS NULL") == 0
    finally:
        await owner.close()
        await line.close()


async def test_reconciled_rows_past_their_retention_are_deleted_in_bounded_batches(
        front: asyncpg.Connection, database: Database, database_dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    await dispatch(front, "recent@carrier", "sip:127.0.0.12:5062",
                   written=datetime.now(UTC) - timedelta(days=30))
    await dispatch(front, "owed@carrier", "sip:127.0.0.11:5061", written=old)
    await front.executemany(
        """
        INSERT INTO front_calls (method, callid, sip_code, caller, line, node, recorded_at)
        VALUES ('INVITE', $1, '200', '0812', '112', 'sip:127.0.0.12:5062', $2)
        """, [(f"old-{n}@carrier", old - timedelta(seconds=n)) for n in range(2500)])
    line = await asyncpg.connect(database_dsn)
    try:
        # Every row but one reconciled (their calls have records); "owed" is still owed one.
        await line.execute("UPDATE front_calls SET reconciled_at = now() "
                           "WHERE callid <> 'owed@carrier'")
        monkeypatch.setattr(reconcile, "PURGE_BATCHES", 2)
        retention = reconciler(database)  # 31 days, the default
        assert await retention.purge() == 2000  # two batches of 1000 in one pass, at most
        assert await retention.purge() == 500
        assert await retention.purge() == 0
        left = await line.fetch("SELECT callid FROM front_calls ORDER BY callid")
        assert [r["callid"] for r in left] == ["owed@carrier", "recent@carrier"]
        # The reconcile pass first gives the owed row its lost call's record, then deletes it.
        assert await retention.reconcile() == 1
        left = await line.fetch("SELECT callid FROM front_calls")
        assert [r["callid"] for r in left] == ["recent@carrier"]
        assert await line.fetchval(
            "SELECT count(*) FROM calls WHERE sip_call_id = 'owed@carrier'") == 1
    finally:
        await line.close()
