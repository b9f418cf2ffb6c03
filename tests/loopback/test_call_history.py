"""The backfill's reading and writing (telephony/calls/history.py) on a real PostgreSQL: the
queue_log from its cursor, the calls written with the cursor in one transaction, a replay that
adds nothing, a log rotated between two catch-ups, and recordings that no call owns."""

from __future__ import annotations

import logging
import os
import time
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
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    QueueJoined,
)
from telephony.calls.history import ORPHAN_AFTER, CallHistory, legs_read_at
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository, LegRepository
from telephony.db.connection import Database
from telephony.settings import DEFAULT_SHIFTS
from tests.support.calls import add_calls, call_facts

# Ten minutes ago, not a fixed date: the cursor lets a live call older than MAX_PIN go, so
# lines dated in the past would stop holding it back (this test failed once that date passed).
T = int(time.time()) - 600
UID = f"{T}.57"
OTHER = f"{T + 9}.60"
ANSWERED = [
    f"{T}|{UID}|NONE|NONE|SIAGALINE|112",
    f"{T + 1}|{UID}|emergency-general|NONE|ENTERQUEUE||0812555|1",
    f"{T + 4}|{UID}|emergency-general|PJSIP/op1008|CONNECT|3|{T + 1}.58|2",
    f"{T + 8}|{UID}|emergency-general|PJSIP/op1008|COMPLETECALLER|3|4|1",
]
ABANDONED = [
    f"{T + 10}|{OTHER}|medical|NONE|ENTERQUEUE||0812666|1",
    f"{T + 19}|{OTHER}|medical|NONE|ABANDON|1|1|9",
]
WHOLE_EMPTY = [{"Response": "Success", "EventList": "start"},
               {"Event": "CoreShowChannelsComplete", "ListItems": "0"}]


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


@pytest.fixture
def repository() -> CallRepository:
    return CallRepository(ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta"))


@pytest.fixture
def history(database: Database, repository: CallRepository, tmp_path: Path) -> CallHistory:
    (tmp_path / "monitor").mkdir()
    return CallHistory(database, repository, tmp_path / "queue_log", tmp_path / "monitor")


async def fetch(database: Database, sql: str) -> list[asyncpg.Record]:
    async def work(connection: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await connection.fetch(sql)
        return rows
    return await database.run(work)


async def test_calls_logged_after_the_cursor_are_written_once(
    history: CallHistory, database: Database, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    before_the_line = f"{T - 111}|{T - 112}.1|fire|NONE|ENTERQUEUE||0811|1"
    append(log, [before_the_line])
    assert await history.catch_up(WHOLE_EMPTY) is not None  # first start: cursor at the end
    append(log, ANSWERED)
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [UID]
    calls = await fetch(database, "SELECT * FROM calls")
    assert [(c["call_id"], c["line"], c["caller_number"], c["queue"], c["queue_position"],
             c["operator"], c["wait_seconds"], c["talk_seconds"], c["backfilled"])
            for c in calls] == [
        (UID, "112", "0812555", "emergency-general", 1, "PJSIP/op1008", 3, 4, True)]
    assert calls[0]["ended_at"] is not None and calls[0]["vanished"]
    events = await fetch(database, "SELECT dedupe_key FROM call_events ORDER BY event_id")
    assert await history.catch_up(WHOLE_EMPTY) is not None  # nothing new: nothing written
    # The same lines read again (a cursor saved late, say): nothing new either.
    async def rewind(connection: asyncpg.Connection) -> None:
        await connection.execute('UPDATE asterisk_log_cursors SET "offset" = $1',
                                 len(before_the_line) + 1)
    await database.run(rewind)
    again = await history.catch_up(WHOLE_EMPTY)
    assert again is not None and again.written == []
    assert await fetch(database, "SELECT dedupe_key FROM call_events ORDER BY event_id") == events


async def test_a_rotation_between_two_catch_ups_loses_nothing(
    history: CallHistory, database: Database, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)
    append(log, ANSWERED[:2])
    log.rename(tmp_path / "queue_log.1")  # logrotate, then Asterisk opens a new file
    append(tmp_path / "queue_log.1", ANSWERED[2:])  # still written until "logger reload"
    append(log, ABANDONED)
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and sorted(plan.backfilled) == [UID, OTHER]
    rows = await fetch(database, "SELECT call_id, talk_seconds, abandon_wait_seconds FROM calls "
                                 "ORDER BY call_id")
    assert [tuple(r) for r in rows] == [(UID, 4, None), (OTHER, None, 9)]


async def test_each_node_of_a_cluster_reads_its_own_log_from_its_own_cursor(
    database: Database, repository: CallRepository, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    # Two nodes share the database, each reading its own Asterisk's queue_log. With one
    # cursor row each took the other's (another inode) for a rotation whose file was gone,
    # warned so and read its whole log again: a call either node's line missed after that
    # was found again and again, or, with a log past one read's budget, never.
    nodes = []
    for name in ("node1", "node2"):
        (tmp_path / name / "monitor").mkdir(parents=True)
        (tmp_path / name / "queue_log").write_text("")
        nodes.append(CallHistory(database, repository, tmp_path / name / "queue_log",
                                 tmp_path / name / "monitor", source=f"queue_log@{name}"))
    for node in nodes:
        await node.catch_up(WHOLE_EMPTY)
    append(tmp_path / "node1" / "queue_log", ANSWERED)
    append(tmp_path / "node2" / "queue_log", ABANDONED)
    with caplog.at_level(logging.WARNING):
        first = await nodes[0].catch_up(WHOLE_EMPTY)
        second = await nodes[1].catch_up(WHOLE_EMPTY)
        again = [await node.catch_up(WHOLE_EMPTY) for node in nodes]
    assert first is not None and first.backfilled == [UID]
    assert second is not None and second.backfilled == [OTHER]
    assert all(plan is not None and plan.written == [] for plan in again)
    assert not [r for r in caplog.records if "rotated" in r.getMessage()]
    cursors = await fetch(database, 'SELECT source, "offset" FROM asterisk_log_cursors '
                                    "ORDER BY source")
    assert [tuple(c) for c in cursors] == [
        ("queue_log@node1", (tmp_path / "node1" / "queue_log").stat().st_size),
        ("queue_log@node2", (tmp_path / "node2" / "queue_log").stat().st_size)]


async def test_a_node_upgraded_to_its_own_cursor_takes_over_the_one_on_its_log(
    history: CallHistory, database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    # Before cursors were per node, one row served the cluster: the node whose file it was
    # taken on goes on from it (the calls logged across the upgrade are read); the other
    # starts at its log's end, as a new line does.
    log = tmp_path / "queue_log"
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)  # the old single row, on this log
    append(log, ANSWERED)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "queue_log").write_text("\n".join(ABANDONED) + "\n")
    other = CallHistory(database, repository, tmp_path / "other" / "queue_log",
                        tmp_path / "monitor", source="queue_log@node2")
    plan = await other.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.written == []
    upgraded = CallHistory(database, repository, log, tmp_path / "monitor",
                           source="queue_log@node1")
    plan = await upgraded.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [UID]


async def test_the_leg_rule_waits_for_the_slowest_node_that_still_reads_its_log(
    database: Database
) -> None:
    async def read_at(connection: asyncpg.Connection) -> datetime | None:
        await connection.execute(
            """
            INSERT INTO asterisk_log_cursors (source, inode, "offset", legs_read_at, updated_at)
            VALUES ('queue_log@node1', 1, 0, now() - interval '1 minute', now()),
                   ('queue_log@node2', 2, 0, now() - interval '3 minutes', now()),
                   ('queue_log@node3', 3, 0, now() - interval '2 hours',
                    now() - interval '1 hour')
            """)
        return await legs_read_at(connection, ["queue_log@node1", "queue_log@node2",
                                               "queue_log@node3"])
    read = await database.run(read_at)
    # node3 (switched off an hour ago) holds nobody's legs; node2, reading, is waited for.
    assert read is not None
    assert timedelta(minutes=2) < datetime.now(UTC) - read < timedelta(minutes=4)


async def seen_live(history: CallHistory, database: Database, repository: CallRepository,
                    tmp_path: Path, *facts: CallFact) -> Path:
    """An empty queue_log the history has caught up with, and ``facts`` the line recorded
    live; returns the log."""
    log = tmp_path / "queue_log"
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)

    async def seen(connection: asyncpg.Connection) -> int:
        return await repository.apply(connection, list(facts))
    await database.run(seen)
    return log


async def test_a_call_seen_live_until_a_crash_gets_only_what_it_missed(
    history: CallHistory, database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    started = CallStarted(UID, UID, "PJSIP/carrier-1", "0812555", "Budi", "112",
                          datetime.fromisoformat(
                              "2026-12-05T04:38:31.250+00:00"))
    log = await seen_live(history, database, repository, tmp_path, started)
    append(log, ANSWERED)
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and not any(isinstance(f, CallStarted) for f in plan.written)
    row = (await fetch(database, "SELECT * FROM calls"))[0]
    # What the line saw is kept (the channel, the name, the precise arrival) ...
    assert (row["channel"], row["caller_name"], row["arrived_at"]) == (
        "PJSIP/carrier-1", "Budi", started.at)
    # ... and what it missed is added.
    assert (row["operator"], row["talk_seconds"], row["backfilled"]) == (
        "PJSIP/op1008", 4, True)


async def test_recordings_without_a_call_are_counted_and_named_once(
    history: CallHistory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = tmp_path / "monitor"
    old = time.time() - ORPHAN_AFTER - 60
    for name in ("1796440000.1.wav", "1796440000.2.wav", "notours.wav"):
        (monitor / name).write_bytes(b"RIFF")
        os.utime(monitor / name, (old, old))
    (monitor / "1796449999.9.wav").write_bytes(b"RIFF")  # a call in progress: too young
    with caplog.at_level(logging.WARNING):
        await history.report_orphans()
        await history.report_orphans()
    assert history.orphans == 2
    lines = [r.getMessage() for r in caplog.records if "have no call" in r.getMessage()]
    assert len(lines) == 1 and "1796440000.1 1796440000.2" in lines[0]


async def test_an_unwhole_channel_list_or_an_unreadable_log_changes_nothing(
    history: CallHistory, database: Database, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)
    append(log, ANSWERED)
    assert await history.catch_up(WHOLE_EMPTY[:1]) is None  # a live call could be missing
    log.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        assert await history.catch_up(WHOLE_EMPTY) is None
    log.chmod(0o644)
    assert await fetch(database, "SELECT call_id FROM calls") == []
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [UID]


async def test_the_cursor_advances_past_calls_recorded_live_only(
    history: CallHistory, database: Database, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    log.write_text("")
    assert await history.advance() is None  # no catch-up yet: nothing to move
    await history.catch_up(WHOLE_EMPTY)
    append(log, ANSWERED)
    held = await history.advance()  # not in the database: the next catch-up needs its lines
    assert held is not None and held.offset == 0
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [UID]
    moved = await history.advance()
    assert moved is not None and moved.offset == log.stat().st_size


async def test_the_catch_up_waits_for_the_spool_to_drain(
    database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    # Facts still in the spool are not in the store: a plan made now would take their call
    # for a missed one and write a second, made-up story of it.
    (tmp_path / "monitor").mkdir()
    waiting = [3]
    history = CallHistory(database, repository, tmp_path / "queue_log", tmp_path / "monitor",
                          spooled=lambda: waiting[0])
    log = tmp_path / "queue_log"
    append(log, [f"{T - 111}|{T - 112}.1|fire|NONE|ENTERQUEUE||0811|1"])
    assert await history.catch_up(WHOLE_EMPTY) is None and history.postponed
    assert await fetch(database, "SELECT * FROM asterisk_log_cursors") == []
    waiting[0] = 0
    assert await history.catch_up(WHOLE_EMPTY) is not None and not history.postponed
    append(log, ANSWERED)
    waiting[0] = 1
    assert await history.catch_up(WHOLE_EMPTY) is None and history.postponed
    assert await fetch(database, "SELECT * FROM calls") == []
    waiting[0] = 0
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [UID] and not history.postponed


async def test_a_call_closed_as_vanished_gets_its_logged_end(
    history: CallHistory, database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    # The AMI session was cut while the database was away: the resync could not read the
    # log, and closed the call it no longer saw as vanished. The log has its real end.
    started = CallStarted(UID, UID, "PJSIP/carrier-1", "0812555", "Budi", "112",
                          datetime.fromtimestamp(T, UTC))
    log = await seen_live(history, database, repository, tmp_path, started,
                          CallVanished(UID, datetime.fromtimestamp(T + 60, UTC)))
    append(log, [*ANSWERED, f"{T + 8}|{UID}|NONE|NONE|SIAGAEND|16"])
    held = await history.advance()  # its end is not in the database: its lines are kept
    assert held is not None and held.offset == 0
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [UID]
    row = (await fetch(database, "SELECT * FROM calls"))[0]
    assert (row["vanished"], row["hangup_cause"], row["ended_at"], row["talk_seconds"],
            row["operator"]) == (False, 16, datetime.fromtimestamp(T + 8, UTC), 4,
                                 "PJSIP/op1008")
    moved = await history.advance()
    assert moved is not None and moved.offset == log.stat().st_size


async def callback_leg(database: Database, dsn: str) -> int:
    """A call-back leg of the call UID (stored answered, ended), as the call-back desk opens
    it (at T + 99), its dialling heard live."""
    await add_calls(dsn, call_facts(UID, answered_at=datetime.fromtimestamp(T, UTC)))

    async def open_leg(connection: asyncpg.Connection) -> int:
        leg_id = await LegRepository().open(
            connection, kind=LegKind.CALLBACK, call_id=UID, incident_id=None,
            operator="PJSIP/op1008", actor="op1", number="0812555", target="penelepon")
        # Asked for as the log's lines say (they are dated by T, ten minutes ago).
        await connection.execute(
            "UPDATE call_legs SET requested_at = to_timestamp($2) WHERE leg_id = $1",
            leg_id, T + 99)
        return leg_id
    leg_id = await database.run(open_leg)
    await add_calls(dsn, [LegProgressed(leg_id, "dialling", "", f"{T + 100}.90",
                                                 datetime.fromtimestamp(T + 100.4, UTC))])
    return leg_id


def leg_lines(leg_id: int) -> list[str]:
    return [f"{T + 100}|{T + 100}.90|NONE|NONE|SIAGALEG|{leg_id}|dialling||",
            f"{T + 107}|{T + 101}.91|NONE|NONE|SIAGALEG|{leg_id}|answered||",
            f"{T + 170}|{T + 100}.90|NONE|NONE|SIAGALEG|{leg_id}|ended|ANSWER|16"]


async def test_a_call_backs_outcome_missed_while_the_line_was_down_is_recorded_once(
    history: CallHistory, database: Database, database_dsn: str, tmp_path: Path
) -> None:
    # The operator called a dropped caller back; the line went down while they talked and
    # came back after: the call-back stayed "dialling" for good, on nobody's list as reached.
    log = tmp_path / "queue_log"
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)
    leg_id = await callback_leg(database, database_dsn)
    append(log, leg_lines(leg_id))
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == []  # a leg's channel is no call
    (leg,) = await fetch(database, "SELECT * FROM call_legs")
    assert (leg["rang_at"], leg["answered_at"], leg["ended_at"], leg["outcome"], leg["status"],
            leg["hangup_cause"]) == (
        datetime.fromtimestamp(T + 100.4, UTC), datetime.fromtimestamp(T + 107, UTC),
        datetime.fromtimestamp(T + 170, UTC), "answered", "ANSWER", 16)
    assert [row["call_id"] for row in await fetch(database, "SELECT call_id FROM calls")] == [
        UID]
    events = await fetch(database, "SELECT dedupe_key FROM call_events ORDER BY event_id")

    async def rewind(connection: asyncpg.Connection) -> None:
        await connection.execute('UPDATE asterisk_log_cursors SET "offset" = 0')
    await database.run(rewind)
    again = await history.catch_up(WHOLE_EMPTY)
    assert again is not None and again.written == []
    assert await fetch(database, "SELECT * FROM call_legs") == [leg]
    assert await fetch(database, "SELECT dedupe_key FROM call_events ORDER BY event_id") == events


async def test_a_leg_report_the_ami_lost_while_the_line_ran_is_applied_by_the_advancer(
    history: CallHistory, database: Database, database_dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)
    leg_id = await callback_leg(database, database_dsn)
    lines = leg_lines(leg_id)
    # The end was just logged: the listener may still be writing it, so it waits.
    lines[2] = lines[2].replace(f"{T + 170}|", f"{int(time.time())}|")
    append(log, lines)
    held = await history.advance()
    assert held is not None and held.offset == sum(len(line) + 1 for line in lines[:2])
    (leg,) = await fetch(database, "SELECT answered_at, ended_at FROM call_legs")
    assert tuple(leg) == (datetime.fromtimestamp(T + 107, UTC), None)
    moved = await history.advance()  # nothing more until the end is old enough
    assert moved == held


# A blind transfer nobody answered (a call seen live up to it): the operator's talk until the
# transfer (2 s), then [siaga112-back-answered]'s talk back (40 s) as the dialplan logs it.
BACK_UID = f"{T + 200}.70"
BACK_CHANNEL = f"{T + 210}.77"
OP = "PJSIP/op1001"


def until_transfer() -> list[CallFact]:
    """What the line recorded live of the call, up to the transfer (the AMI's sub-seconds)."""
    def sub(seconds: float) -> datetime:
        return datetime.fromtimestamp(T + 200 + seconds, UTC)
    return [CallStarted(BACK_UID, BACK_UID, "PJSIP/carrier-7", "0812777", "", "112", sub(0.25)),
            QueueJoined(BACK_UID, "medical", 1, sub(1.3)),
            OperatorAnswered(BACK_UID, "medical", OP, 2, 1, sub(3.4)),
            OperatorCompleted(BACK_UID, "medical", OP, 2, 2, "transfer", sub(5.2))]


def back_lines(answered: int = T + 210, ended: int = T + 250) -> list[str]:
    return [f"{T + 200}|{BACK_UID}|NONE|NONE|SIAGALINE|112",
            f"{T + 201}|{BACK_UID}|medical|NONE|ENTERQUEUE||0812777|1",
            f"{T + 203}|{BACK_UID}|medical|{OP}|CONNECT|2|{T + 202}.71|1",
            f"{T + 205}|{BACK_UID}|medical|{OP}|BLINDTRANSFER|9*0215550100|siaga112-transfer"
            "|2|2|1",
            f"{answered}|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_UID}|answered",
            f"{ended}|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_UID}|ended",
            f"{ended}|{BACK_UID}|NONE|NONE|SIAGAEND|16"]


async def talk_of(database: Database) -> tuple[object, ...]:
    (row,) = await fetch(database, "SELECT c.talk_seconds, c.completed_at, a.talk_seconds,"
                                   " a.completed_at FROM calls c JOIN call_answers a USING"
                                   f" (call_id) WHERE call_id = '{BACK_UID}'")
    return tuple(row)


async def test_a_talk_back_missed_while_the_line_was_down_is_added_once(
    history: CallHistory, database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    # The agency did not answer, the caller came back to the operator, who talked 40 s more;
    # the line was down then: the call's talk stayed the 2 s before the transfer for good.
    log = await seen_live(history, database, repository, tmp_path, *until_transfer())
    append(log, back_lines())
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None and plan.backfilled == [BACK_UID]  # its end, from the log
    end = datetime.fromtimestamp(T + 250, UTC)
    assert await talk_of(database) == (42, end, 42, end)
    assert [row["call_id"] for row in await fetch(database, "SELECT call_id FROM calls")] == [
        BACK_UID]  # the operator's channel is no call
    events = await fetch(database, "SELECT dedupe_key FROM call_events ORDER BY event_id")

    async def rewind(connection: asyncpg.Connection) -> None:
        await connection.execute('UPDATE asterisk_log_cursors SET "offset" = 0')
    await database.run(rewind)
    again = await history.catch_up(WHOLE_EMPTY)
    assert again is not None and again.written == []
    assert await fetch(database, "SELECT dedupe_key FROM call_events ORDER BY event_id") == events
    assert await talk_of(database) == (42, end, 42, end)


async def test_a_talk_back_heard_live_is_left_as_the_tracker_gave_it(
    history: CallHistory, database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    completed = until_transfer()[-1]
    assert isinstance(completed, OperatorCompleted)
    ended = datetime.fromtimestamp(T + 250.6, UTC)
    heard = replace(completed, talk_seconds=41, at=ended)  # the AMI's own seconds
    log = await seen_live(history, database, repository, tmp_path, *until_transfer(), heard,
                          CallEnded(BACK_UID, 16, "Normal Clearing", ended))
    append(log, back_lines())
    plan = await history.catch_up(WHOLE_EMPTY)
    assert plan is not None
    assert not any(isinstance(fact, OperatorCompleted) for fact in plan.written)
    assert await talk_of(database) == (41, ended, 41, ended)


async def test_a_talk_back_the_restarted_tracker_could_not_add_is_applied_by_the_advancer(
    history: CallHistory, database: Database, repository: CallRepository, tmp_path: Path
) -> None:
    # serve restarted while the caller rang the agency: its tracker no longer knew the
    # transfer, and gave nothing for the talk back it heard.
    log = await seen_live(history, database, repository, tmp_path, *until_transfer())
    now = int(time.time())
    lines = back_lines(ended=now)  # just ended: the listener may still be writing it
    append(log, lines[4:6])
    held = await history.advance()
    assert held is not None and held.offset == 0
    assert (await talk_of(database))[0] == 2
    log.write_text("")
    await history.catch_up(WHOLE_EMPTY)
    append(log, back_lines()[4:6])  # ended long enough ago
    moved = await history.advance()
    assert moved is not None and moved.offset == log.stat().st_size
    end = datetime.fromtimestamp(T + 250, UTC)
    assert await talk_of(database) == (42, end, 42, end)
    assert await history.advance() == moved
    assert (await talk_of(database)) == (42, end, 42, end)
