"""The call store against a real PostgreSQL: projections, idempotency, outage and spool."""

import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.legs import LegKind, LegOutcome
from telephony.calls.recorder import CallRecorder
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.spool import FactSpool
from telephony.calls.store import IVR_COLUMNS, CallRepository, IvrColumn, LegRepository
from telephony.db.connection import Database, DatabaseConflict
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import migrate
from telephony.settings import DEFAULT_SHIFTS, Settings
from tests.support.db import allow_event_writes, refuse_event_writes
from tests.support.net import free_port

T0 = datetime(2026, 11, 23, 7, 59, 50, tzinfo=UTC)  # 14:59:50 in Jakarta: end of "pagi"
CALENDAR = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")


def answered_call(call_id: str = "1700000000.1") -> list[CallFact]:
    def s(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    return [
        CallStarted(call_id, call_id, "PJSIP/carrier-00000001", "081234567890", "", "112", s(0)),
        IvrVariableSet(call_id, "queue", "emergency-general", s(0)),
        IvrVariableSet(call_id, "choice", "1", s(4)),
        IvrVariableSet(call_id, "outcome", "chosen", s(4)),
        IvrVariableSet(call_id, "category", "emergency", s(4)),
        IvrVariableSet(call_id, "skill", "fire", s(4)),
        IvrVariableSet(call_id, "queue", "fire", s(4)),
        QueueJoined(call_id, "fire", 2, s(5)),
        OperatorAnswered(call_id, "fire", "PJSIP/op1001", 12, 2, s(17)),
        QueueLeft(call_id, "fire", 1, s(17)),
        OperatorCompleted(call_id, "fire", "PJSIP/op1001", 12, 30, "caller", s(47)),
        CallEnded(call_id, 16, "Normal Clearing", s(47)),
    ]


async def test_answered_call_record_and_shift_by_arrival(
    database_dsn: str, settings: Settings
) -> None:
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        assert await repository.apply(connection, answered_call()) == 12
        record = await repository.call_record(connection, "1700000000.1")
    finally:
        await connection.close()
    assert record is not None
    assert (record.line, record.caller_number, record.ivr_choice, record.ivr_skill) == (
        "112", "081234567890", "1", "fire")
    assert (record.queue, record.queue_position, record.operator) == ("fire", 2, "PJSIP/op1001")
    assert (record.wait_seconds, record.talk_seconds, record.hangup_cause) == (12, 30, 16)
    assert record.disposition == "answered"
    # Arrived 14:59:50 local, answered after 15:00: the call stays in the morning shift.
    assert (str(record.shift_day), record.shift_name) == ("2026-11-23", "pagi")


async def test_replayed_and_reordered_duplicates_change_nothing(database_dsn: str) -> None:
    repository = CallRepository(CALENDAR)
    facts = answered_call()
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, facts)
        before = await connection.fetchrow("SELECT * FROM calls")
        events_before = await connection.fetchval("SELECT count(*) FROM call_events")
        assert await repository.apply(connection, facts) == 0
        assert await repository.apply(connection, list(reversed(facts[7:]))) == 0
        after = await connection.fetchrow("SELECT * FROM calls")
        assert await connection.fetchval("SELECT count(*) FROM call_events") == events_before
        visits = await connection.fetchval("SELECT count(*) FROM queue_visits")
    finally:
        await connection.close()
    assert before is not None and after is not None
    assert dict(before) == dict(after)
    assert visits == 1


async def test_a_batch_is_one_round_trip(database_dsn: str) -> None:
    """Issue 12: a batch of facts costs one statement, new or replayed, whatever its kinds
    (the recorder used to send a transaction of up to 22, each a round trip)."""
    repository = CallRepository(CALENDAR)
    sent: list[str] = []
    connection = await asyncpg.connect(database_dsn)
    try:
        # The first statement of a connection also asks about the types it sends (once).
        await repository.apply(connection, answered_call("1700000000.0"))
        connection.add_query_logger(lambda record: sent.append(record.query))
        facts = [*answered_call("1700000000.1"), *answered_call("1700000000.2"),
                 OperatorStateChanged("PJSIP/op1001", "fire", "idle", False, "", T0),
                 CallVanished("1700000000.3", T0)]
        assert await repository.apply(connection, facts) == len(facts)
        assert await repository.apply(connection, facts) == 0
    finally:
        await connection.close()
    assert len(sent) == 2, sent


async def test_every_ivr_column_is_written(database_dsn: str) -> None:
    """Each IVR variable of the mapping reaches its column (the server-side function of
    migration 0033 names them one by one)."""
    def valid(column: IvrColumn) -> str:
        return next(value for value in ("1", "pressed") if _parses(column, value))

    variables = tuple((name, valid(column)) for name, column in IVR_COLUMNS.items())
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, [
            CallStarted("c.1", "c.1", "PJSIP/x", "0812", "", "112", T0),
            IvrVariablesSet("c.1", variables, T0)])
        row = await connection.fetchrow("SELECT * FROM calls WHERE call_id = 'c.1'")
    finally:
        await connection.close()
    assert row is not None
    assert {column.column: row[column.column] is not None
            for column in IVR_COLUMNS.values()} == {
                column.column: True for column in IVR_COLUMNS.values()}


def _parses(column: IvrColumn, value: str) -> bool:
    try:
        return column.parse(value) is not None
    except ValueError:
        return False


async def test_complete_alone_fills_the_answer(database_dsn: str) -> None:
    """If the listener missed AgentConnect (restarting), AgentComplete still completes the row."""
    facts = [f for f in answered_call() if not isinstance(f, OperatorAnswered)]
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, facts)
        record = await repository.call_record(connection, "1700000000.1")
        answered_at = await connection.fetchval("SELECT answered_at FROM calls")
    finally:
        await connection.close()
    assert record is not None and record.disposition == "answered"
    assert (record.operator, record.wait_seconds, record.talk_seconds) == ("PJSIP/op1001", 12, 30)
    assert answered_at == T0 + timedelta(seconds=17)


async def test_abandon_and_resync_rejoin_are_one_visit(database_dsn: str) -> None:
    call_id = "1700000000.9"
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, "PJSIP/carrier-9", "", "", "112", T0),
        QueueJoined(call_id, "emergency-general", 3, T0 + timedelta(seconds=3)),
        # A resync while waiting re-reports the same visit with an estimated join instant.
        QueueJoined(call_id, "emergency-general", 1, T0 + timedelta(seconds=4)),
        QueueAbandoned(call_id, "emergency-general", 3, 1, 20, T0 + timedelta(seconds=23)),
        CallEnded(call_id, 16, "Normal Clearing", T0 + timedelta(seconds=23)),
    ]
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, facts)
        record = await repository.call_record(connection, call_id)
        visits = await connection.fetch("SELECT * FROM queue_visits")
    finally:
        await connection.close()
    assert record is not None and record.disposition == "abandoned"
    assert (record.queue_position, record.abandon_original_position,
            record.abandon_final_position) == (3, 3, 1)
    assert len(visits) == 1 and visits[0]["left_position"] == 1


async def test_vanished_call_and_operator_states(database_dsn: str) -> None:
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, [
            CallStarted("v.1", "v.1", "PJSIP/carrier-1", "", "", "112", T0),
            CallVanished("v.1", T0 + timedelta(minutes=5)),
            OperatorStateChanged("PJSIP/op1001", "fire", "idle", False, "", T0),
            OperatorStateChanged("PJSIP/op1001", "fire", "paused", True, "istirahat",
                                 T0 + timedelta(minutes=1)),
        ])
        assert await repository.open_call_ids(connection) == set()
        record = await repository.call_record(connection, "v.1")
        member = await connection.fetchrow("SELECT * FROM queue_members")
        intervals = await connection.fetch(
            "SELECT state, shift_name, ended_at FROM operator_intervals ORDER BY started_at")
    finally:
        await connection.close()
    assert record is not None and record.disposition == "vanished"
    assert member is not None
    assert (member["state"], member["paused"], member["pause_reason"]) == (
        "paused", True, "istirahat")
    assert [(r["state"], r["shift_name"]) for r in intervals] == [
        ("idle", "pagi"), ("paused", "siang")]


async def test_outage_spools_in_order_then_writes_exactly_once(
    tmp_path: Path, settings: Settings
) -> None:
    """A real second cluster is stopped and started again around the writes."""
    root = Path(tempfile.mkdtemp(prefix="siaga112-outage-"))
    root.chmod(0o755)  # the postgres system user must reach the data directory
    cluster = EmbeddedPostgres(root / "pgdata", free_port())
    cluster.ensure_initialized()
    settings = replace(settings, database_dsn=cluster.dsn(), db_connect_timeout=1.0)
    connection = await asyncpg.connect(cluster.dsn())
    await migrate(connection)
    await connection.close()
    cluster.stop()

    database = Database(settings)
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    facts = answered_call("out.1")
    for fact in facts:
        await recorder.record([fact])  # the database is down: nothing raises
    assert spool.pending_count() == len(facts)
    assert await recorder.open_calls() == {}

    cluster.start()
    try:
        assert await recorder.flush() == len(facts)
        assert spool.is_empty()
        await recorder.flush()  # nothing left, nothing written twice
        connection = await asyncpg.connect(cluster.dsn())
        try:
            rows = await connection.fetch("SELECT * FROM call_outcomes")
            events = await connection.fetchval("SELECT count(*) FROM call_events")
        finally:
            await connection.close()
        await recorder.record([CallEnded("out.1", 16, "Normal Clearing", T0)])  # live again
        assert spool.is_empty()
    finally:
        await database.close()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert events == len(facts)
    assert [(r["call_id"], r["disposition"], r["talk_seconds"]) for r in rows] == [
        ("out.1", "answered", 30)]


def test_spool_keeps_undecodable_lines(tmp_path: Path) -> None:
    spool = FactSpool(tmp_path)
    spool.append(answered_call()[:2])
    segment = spool.seal()[0]
    with spool.segment_paths(segment)[0].open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "call_started", "call_id": "cut sh')  # a crash mid-write
    assert len(spool.read(segment)) == 2
    assert "cut sh" in spool.rejected_path.read_text(encoding="utf-8")


async def test_a_fact_the_database_refuses_costs_only_itself(
    database_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """A batch with one fact the schema refuses: the others are written, that one is kept."""
    database = Database(replace(settings, database_dsn=database_dsn))
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    facts = answered_call("bad.1")
    # A position beyond PostgreSQL's integer: refused by the database, not by the network.
    poison = QueueJoined("bad.1", "fire", 2**40, T0)
    try:
        await recorder.record([*facts[:7], poison, *facts[7:]])
        record = await database.run(lambda c: CallRepository(CALENDAR).call_record(c, "bad.1"))
    finally:
        await database.close()
    assert record is not None and record.disposition == "answered"
    assert record.talk_seconds == 30
    assert spool.is_empty()
    assert '"position":1099511627776' in spool.rejected_path.read_text(encoding="utf-8")


async def test_a_deadlocked_batch_is_written_again_not_rejected(
    database_dsn: str, database_owner_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """A batch the server rolled back against another transaction is done again at once:
    every fact is written, none kept as refused (each used to go one by one, and the first
    to meet the deadlock again was rejected, never to be written)."""
    # The server itself rolls back the next two writes, as a deadlock's victim.
    await refuse_event_writes(database_owner_dsn, "deadlock_detected", times=2)
    database = Database(replace(settings, database_dsn=database_dsn))
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    try:
        await recorder.record(answered_call("dead.1"))
        record = await database.run(lambda c: CallRepository(CALENDAR).call_record(c, "dead.1"))
    finally:
        await database.close()
    assert spool.is_empty()
    assert not spool.rejected_path.exists()
    assert record is not None and record.talk_seconds == 30


async def test_a_batch_still_deadlocked_after_its_tries_waits_in_the_spool(
    database_dsn: str, database_owner_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """Past its tries the batch is spooled like an outage's, and written once the
    conflict is over; nothing is rejected."""
    await refuse_event_writes(database_owner_dsn, "deadlock_detected")
    database = Database(replace(settings, database_dsn=database_dsn))
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.1)
    facts = answered_call("dead.2")
    try:
        with pytest.raises(DatabaseConflict):
            await database.run(lambda c: CallRepository(CALENDAR).apply(c, facts))
        await recorder.record(facts)
        assert spool.pending_count() == len(facts)
        await allow_event_writes(database_owner_dsn)
        assert await recorder.flush() == len(facts)
        record = await database.run(lambda c: CallRepository(CALENDAR).call_record(c, "dead.2"))
    finally:
        await database.close()
    assert not spool.rejected_path.exists()
    assert record is not None and record.talk_seconds == 30


async def test_leg_progress_fills_the_leg_once(database_dsn: str) -> None:
    """A leg the line opened gets its times and outcome from the dialplan's reports; replayed
    or repeated reports change nothing, and an unanswered leg ends with Dial()'s status."""
    repository = CallRepository(CALENDAR)
    legs = LegRepository()
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, answered_call())
        answered = await legs.open(
            connection, kind=LegKind.BLIND_TRANSFER, call_id="1700000000.1", incident_id=None,
            operator="PJSIP/op1001", actor="budi", number="0293113", target="Damkar")
        unanswered = await legs.open(
            connection, kind=LegKind.CONFERENCE, call_id="1700000000.1", incident_id=None,
            operator="PJSIP/op1001", actor="budi", number="0293110", target="Polsek")
        reports = [
            LegProgressed(answered, "dialling", "", "1700000020.5", T0 + timedelta(seconds=20)),
            LegProgressed(answered, "answered", "", "1700000020.6", T0 + timedelta(seconds=26)),
            LegProgressed(answered, "ended", "CANCEL", "1700000020.5", T0 + timedelta(seconds=90)),
            LegProgressed(unanswered, "dialling", "", "1700000030.1", T0 + timedelta(seconds=30)),
            LegProgressed(unanswered, "ended", "NOANSWER", "1700000030.1",
                          T0 + timedelta(seconds=60)),
        ]
        assert await repository.apply(connection, reports) == 5
        assert await repository.apply(connection, reports) == 0
        first, second = await legs.legs(connection, ["1700000000.1"])
    finally:
        await connection.close()
    assert (first.outcome, first.channel_id) == (LegOutcome.ANSWERED, "1700000020.5")
    assert first.talk_time == timedelta(seconds=64)
    assert (second.outcome, second.status, second.answered_at) == (
        LegOutcome.NO_ANSWER, "NOANSWER", None)
    assert second.rang_at == T0 + timedelta(seconds=30)


async def test_a_cluster_nodes_open_calls_are_its_own(database_dsn: str, settings: Settings,
                                                      tmp_path: Path) -> None:
    """Two nodes' lines share the database: each resyncs and vanishes only its own calls
    (call ids <systemname>-<epoch>.<seq>), never the other node's live ones."""
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, [
            CallStarted(call_id, call_id, "PJSIP/carrier-1", "", "", "112", T0)
            for call_id in ("node1-1700000000.1", "node2-1700000000.1", "node10-1700000000.2",
                            "1700000000.3")])
        assert await repository.open_call_ids(connection, node="node1") == {
            "node1-1700000000.1"}
        assert len(await repository.open_call_ids(connection)) == 4
    finally:
        await connection.close()
    database = Database(replace(settings, database_dsn=database_dsn))
    try:
        recorder = CallRecorder(database, repository, FactSpool(tmp_path / "spool"),
                                retry_seconds=0.1, node="node2")
        assert await recorder.open_calls() == {"node2-1700000000.1": set()}
    finally:
        await database.close()
