"""The AMI listener against a fake Asterisk on a loopback socket speaking the real protocol."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from telephony.ami import listener as listener_module
from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.ami.framing import AmiFrame
from telephony.ami.testing import FakeAsterisk, ListSink, fake_asterisk, read_events
from telephony.ami.tracker import AmiEvent, CallTracker
from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariablesSet,
    OperatorAnswered,
    QueueJoined,
)
from telephony.calls.recorder import CallRecorder
from telephony.calls.spool import FactSpool, SpooledCall
from telephony.calls.store import CallRepository
from telephony.settings import Settings
from tests.support import polling
from tests.support.ami import (
    ABANDONED,
    ANSWERED,
    CALLER,
    NOW,
    SeenFacts,
    eventually,
    existing,
    expected_facts,
    listener,
    live_call_snapshot,
)
from tests.support.calls import CALENDAR
from tests.support.db import OutageDatabase, fetch

CALLS = existing(
    "ami_call_answered.txt",
    "ami_call_abandoned.txt",
    "ami_synthetic_call_answered.txt",
    "ami_synthetic_call_abandoned.txt",
)
RESYNCS = existing("ami_resync.txt", "ami_synthetic_resync.txt")

# ANSWERED up to its caller joining the queue: a line stopped there leaves a caller waiting.
JOIN = next(i for i, f in enumerate(ANSWERED) if ("Event", "QueueCallerJoin") in f) + 1


def ami_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CALLS, ids=lambda p: p.name)
async def test_facts_are_recorded_in_event_order(path: Path) -> None:
    frames = read_events(path)
    sink = ListSink()
    async with fake_asterisk() as server, listener(server.port, sink) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        assert server.names()[1:] == ["CoreShowChannels", "Status", "QueueStatus"]
        (status,) = [a for a in server.actions if a.get("action") == "Status"]
        assert status["variables"].split(",")[:2] == ["IVR_CALL_ID", "IVR_LINE"]
        await server.send_frames(frames)
        expected = expected_facts(frames)
        await eventually(lambda: len(sink.facts) >= len(expected))
    assert sink.facts == expected


class BatchSink(ListSink):
    """A ListSink that keeps each batch it was handed as it came."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def record(self, facts: Sequence[CallFact]) -> None:
        self.batches.append(len(facts))
        await super().record(facts)


async def test_facts_that_wake_an_idle_recorder_gather_for_the_linger(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What arrives while the recorder lingers goes in the same batch (a transaction's round
    trips are paid once); the observers hear each fact when it is tracked, not after."""
    monkeypatch.setattr(listener_module, "PERSIST_LINGER_SECONDS", 0.5)
    sink = BatchSink()
    seen = SeenFacts()
    async with fake_asterisk() as server, listener(server.port, sink) as ami:
        ami.observe(seen)
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await eventually(lambda: not ami.facts_waiting)
        before = len(sink.batches)
        await server.send_frames(ANSWERED)
        await eventually(lambda: len(seen.facts) == len(expected_facts(ANSWERED)))
        assert len(sink.batches) == before  # tracked and told, still gathering
        await server.send_frames(ABANDONED)
        expected = expected_facts(ANSWERED) + expected_facts(ABANDONED)
        await eventually(lambda: len(seen.facts) == len(expected))
        await eventually(lambda: len(sink.facts) == len(expected))
    assert sink.facts == expected
    assert sink.batches[before:] == [len(expected)]


async def test_the_listener_tells_how_long_ago_it_tracked_call_facts() -> None:
    """What the reports' gate reads to know that calls are being recorded: nothing before the
    first facts, then the age of the last ones, growing until more come."""
    async with fake_asterisk() as server, listener(server.port, ListSink()) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        assert ami.seconds_since_facts == float("inf")
        await server.send_frames(ANSWERED)
        await eventually(lambda: ami.seconds_since_facts < 1.0)
        first = ami.seconds_since_facts
        await eventually(lambda: ami.seconds_since_facts > first)


@pytest.mark.parametrize("path", RESYNCS, ids=lambda p: p.name)
async def test_resync_from_recorded_replies(path: Path) -> None:
    sink = ListSink(open_ids=["1700000000.99"])
    async with fake_asterisk() as server:
        server.load_resync(path)
        replies = {"Queue": server.queues, "CoreShowChannel": server.channels,
                   "Status": server.status}
        async with listener(server.port, sink) as ami, asyncio.timeout(5):
            await ami.wait_ready()

    def whole(kind: str, complete: str) -> list[AmiEvent]:
        events = [AmiFrame(frame).to_message() for frame in replies[kind]]
        return [*events, {"Event": complete, "ListItems": str(len(events))}]

    expected = CallTracker(clock=lambda: NOW).resync(
        whole("Queue", "QueueStatusComplete"),
        whole("CoreShowChannel", "CoreShowChannelsComplete"),
        whole("Status", "StatusComplete"),
        open_call_ids={"1700000000.99"},
    )
    assert expected.rejected == []
    assert sink.facts == expected.facts
    assert CallVanished("1700000000.99", NOW) in sink.facts
    assert sink.of(CallStarted)


async def test_listener_restart_mid_call_resyncs() -> None:
    sink = ListSink(open_ids=["1732340000.5"])  # ended while nobody was listening
    async with fake_asterisk() as server:
        async with listener(server.port, sink) as first:
            async with asyncio.timeout(5):
                await first.wait_ready()
            await server.send_frames(ANSWERED[:JOIN])
            await eventually(lambda: bool(sink.of(QueueJoined)))
        before = len(sink.facts)
        assert [type(f) for f in sink.facts].count(CallVanished) == 1  # the preset open call

        server.channels, server.status, server.queues = live_call_snapshot(CALLER)
        async with listener(server.port, sink) as second:
            async with asyncio.timeout(5):
                await second.wait_ready()
            # The resync's facts reach the store after the recorder's linger.
            await eventually(lambda: bool([f for f in sink.facts[before:]
                                           if isinstance(f, QueueJoined)]))
            restored = sink.facts[before:]
            assert not [f for f in restored if isinstance(f, CallStarted)]
            assert not [f for f in restored if isinstance(f, CallVanished)]
            ivr = [f for f in restored if isinstance(f, IvrVariablesSet)]
            assert {pair for f in ivr for pair in f.variables} == {
                ("line", "112"),
                ("choice", "2"),
                ("outcome", "chosen"),
            }
            assert [f for f in restored if isinstance(f, QueueJoined)] == [
                QueueJoined(CALLER, "medical", 1, NOW - timedelta(seconds=4))
            ]
            await server.send_frames(ANSWERED[JOIN:])
            await eventually(lambda: bool(sink.of(CallEnded)))
        assert [type(f) for f in sink.of(OperatorAnswered)] == [OperatorAnswered]
        assert await sink.open_calls() == {}
        assert server.logins == 2


async def join_stored(server: FakeAsterisk, recorder: CallRecorder, database_dsn: str) -> None:
    """A line that hears the caller of ANSWERED join its queue, and stops once the join is
    in the database."""
    async with listener(server.port, recorder) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await server.send_frames(ANSWERED[:JOIN])

        async def stored() -> bool | None:
            return bool(await fetch(database_dsn, "SELECT 1 FROM call_events WHERE "
                                    "call_id = $1 AND kind = 'queue_joined'", CALLER)) or None

        await polling.eventually("the call's join stored", stored, 5)


def spooling_recorder(database: OutageDatabase, tmp_path: Path) -> CallRecorder:
    """A line's recorder over ``database`` with its spool in ``tmp_path``: a second one made
    later is a restarted line finding the first one's spool."""
    return CallRecorder(database, CallRepository(CALENDAR), FactSpool(tmp_path / "spool"),
                        retry_seconds=0.05)


async def test_a_line_restarted_while_the_database_is_away_starts_a_live_call_once(
    database_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """The database is away; a caller waits in a queue; the line restarts. Its resync found
    the call in Asterisk's channels, could not ask the store, and started it again (at the
    Uniqueid's whole second) and joined it again: on the database's return the spool wrote
    two call_started events, and the call's arrival moved to before its real start. The
    spool says which calls the line followed: each fact is written once."""
    database = OutageDatabase(replace(settings, database_dsn=database_dsn))
    database.down = True

    def recorder() -> CallRecorder:  # each process opens the spool it finds
        return spooling_recorder(database, tmp_path)

    first = recorder()
    try:
        async with fake_asterisk() as server:
            async with listener(server.port, first) as ami:
                async with asyncio.timeout(5):
                    await ami.wait_ready()
                await server.send_frames(ANSWERED[:JOIN])
                await eventually(lambda: first.spooled_calls().get(CALLER, SpooledCall())
                                 .waiting == {"medical"})
            server.channels, server.status, server.queues = live_call_snapshot(CALLER)
            second = recorder()
            async with listener(server.port, second) as ami:
                async with asyncio.timeout(5):
                    await ami.wait_ready()
                await server.send_frames(ANSWERED[JOIN:])
                await eventually(lambda: second.pending() >= len(expected_facts(ANSWERED)))
        database.down = False
        await second.flush()
        kinds = [r["kind"] for r in await fetch(
            database_dsn, "SELECT kind FROM call_events WHERE call_id = $1 ORDER BY at",
            CALLER)]
        (call,) = await fetch(database_dsn, "SELECT arrived_at, ended_at FROM calls "
                              "WHERE call_id = $1", CALLER)
    finally:
        await database.close()
    assert kinds.count("call_started") == 1, kinds
    assert kinds.count("queue_joined") == 1, kinds
    assert call["ended_at"] is not None
    assert call["arrived_at"].timestamp() == pytest.approx(1732345678.1)  # seen live


async def test_a_start_stored_before_the_outage_is_not_stored_again_after_a_restart(
    database_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """The call's start reached the database; then the database went away and the line
    restarted with nothing of the call in its spool. Its resync cannot know the database
    has the call and starts it again, and joins it again to the queue it waits in: on the
    database's return that second start is left out (the first, seen live, stands), not
    written as a second call_started that moves the arrival to the Uniqueid's whole second;
    and so is the second join (it was written as a second queue_joined, the call's history
    showing it queued twice)."""
    database = OutageDatabase(replace(settings, database_dsn=database_dsn))

    def recorder() -> CallRecorder:  # each process opens the spool it finds
        return spooling_recorder(database, tmp_path)

    first = recorder()
    try:
        async with fake_asterisk() as server:
            await join_stored(server, first, database_dsn)
            database.down = True
            server.channels, server.status, server.queues = live_call_snapshot(CALLER)
            second = recorder()
            async with listener(server.port, second) as ami:
                async with asyncio.timeout(5):
                    await ami.wait_ready()
                await server.send_frames(ANSWERED[JOIN:])
                await eventually(lambda: CALLER not in ami.live_calls and second.pending() > 0)
        database.down = False
        await second.flush()
        kinds = [r["kind"] for r in await fetch(
            database_dsn, "SELECT kind FROM call_events WHERE call_id = $1", CALLER)]
        (call,) = await fetch(database_dsn, "SELECT arrived_at, ended_at FROM calls "
                              "WHERE call_id = $1", CALLER)
    finally:
        await database.close()
    assert kinds.count("call_started") == 1, kinds
    assert kinds.count("queue_joined") == 1, kinds
    assert call["ended_at"] is not None
    assert call["arrived_at"].timestamp() == pytest.approx(1732345678.1)  # seen live


async def test_a_restarted_line_does_not_join_a_stored_waiting_call_again(
    database_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """A caller waits in a queue, its start and join stored; the line restarts (the database
    up). Its resync knew the call was open but not where it waited, and joined it again to
    its queue at an instant estimated from its wait: a second queue_joined, the call's
    history showing it queued twice. The store says which queues its open calls wait in."""
    database = OutageDatabase(replace(settings, database_dsn=database_dsn))
    first = spooling_recorder(database, tmp_path)
    try:
        async with fake_asterisk() as server:
            await join_stored(server, first, database_dsn)
            server.channels, server.status, server.queues = live_call_snapshot(CALLER)
            second = spooling_recorder(database, tmp_path)
            async with listener(server.port, second) as ami:
                async with asyncio.timeout(5):
                    await ami.wait_ready()
                await server.send_frames(ANSWERED[JOIN:])

                async def ended() -> bool | None:
                    return bool(await fetch(database_dsn, "SELECT 1 FROM calls WHERE "
                                            "call_id = $1 AND ended_at IS NOT NULL",
                                            CALLER)) or None

                await polling.eventually("the call's end stored", ended, 5)
        kinds = [r["kind"] for r in await fetch(
            database_dsn, "SELECT kind FROM call_events WHERE call_id = $1", CALLER)]
    finally:
        await database.close()
    assert kinds.count("queue_joined") == 1, kinds
    assert kinds.count("call_started") == 1, kinds


async def test_wrong_password_logs_one_error_and_keeps_retrying_slowly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sink = ListSink()
    async with fake_asterisk() as server, listener(server.port, sink, secret="wrong") as ami:
        await eventually(lambda: server.logins >= 3)
        assert not ami.logged_in
        errors = ami_records(caplog, logging.ERROR)
        assert len(errors) == 1, errors
        assert "AMI login as 'siaga112'" in errors[0]
        assert "refused (Authentication failed)" in errors[0]
        assert "retrying every 0.1 s" in errors[0]
        gaps = [b - a for a, b in zip(server.login_times, server.login_times[1:], strict=False)]
        assert min(gaps) > 0.09  # the auth retry pace, not the 0.05 s reconnect pace
        server.secret = "wrong"  # the operator fixes the configuration on Asterisk's side
        async with asyncio.timeout(5):
            await ami.wait_ready()
    assert len(ami_records(caplog, logging.ERROR)) == 1


async def test_garbage_frames_are_logged_once_each_and_the_listener_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="telephony.ami")
    sink = ListSink()
    garbage = [
        b"Event: Newchannel\r\nCallerIDName: caf\xe9\r\n\r\n",  # not UTF-8
        b"hello asterisk\r\n\r\n",  # not Key: value
        b"Foo: bar\r\n\r\n",  # neither event nor response
        b"Event: Flood\r\nData: " + b"x" * 200_000 + b"\r\n\r\n",  # too big
        b"Event: QueueCallerJoin\r\nUniqueid: 1.1\r\nQueue: medical\r\nPosition: abc\r\n\r\n",
    ]
    async with fake_asterisk() as server, listener(server.port, sink) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await server.send(b"".join(garbage))
        await server.send_frames(ABANDONED)
        expected = expected_facts(ABANDONED)
        await eventually(lambda: len(sink.facts) >= len(expected))
        assert ami.logged_in
    assert sink.facts == expected
    warnings = ami_records(caplog, logging.WARNING)
    frames = [w for w in warnings if w.startswith("rejected AMI frame: ")]
    assert len(frames) == 3, warnings
    assert "exceeds 65536 bytes" in frames[2]
    # Invalid UTF-8 is escaped, not dropped: one line says so, and the frame goes on.
    assert [w for w in warnings if w.startswith("AMI frame kept: ")] == [
        "AMI frame kept: invalid UTF-8 at byte 17 of line 2 escaped: "
        "b'CallerIDName: caf\\xe9'"
    ]
    assert [w for w in warnings if w.startswith("rejected AMI event: ")] == [
        "rejected AMI event: 'Newchannel' uniqueid='': Uniqueid missing",
        "rejected AMI event: 'QueueCallerJoin' uniqueid='1.1': Position is not a number: 'abc'",
    ]


@pytest.mark.parametrize("how", ["drop", "shutdown"])
async def test_lost_connection_reconnects_and_resyncs(how: str) -> None:
    sink = ListSink()
    async with fake_asterisk() as server, listener(server.port, sink) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await server.send_frames(ABANDONED[:3])  # the call starts ...
        await eventually(lambda: bool(sink.of(CallStarted)))
        (started,) = sink.of(CallStarted)
        if how == "shutdown":
            await server.send(
                b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\n\r\n"
            )
        server.drop()  # ... and ends while the listener is away
        await eventually(lambda: server.logins == 2)
        await eventually(lambda: bool(sink.of(CallVanished)))
        assert sink.of(CallVanished) == [CallVanished(started.call_id, NOW)]
        assert server.names().count("CoreShowChannels") == 2
        await server.send_frames(ANSWERED)
        await eventually(lambda: bool(sink.of(CallEnded)))
        assert ami.logged_in


async def test_unanswered_ping_drops_the_connection_and_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = ListSink()
    async with fake_asterisk() as server, listener(server.port, sink, ping_interval=0.1) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await eventually(lambda: "Ping" in server.names())
        server.answer_pings = False  # a half-open socket: nothing comes back
        await eventually(lambda: server.logins == 2)
        server.answer_pings = True
        async with asyncio.timeout(5):
            await ami.wait_ready()
    assert any("no answer to AMI Ping" in m for m in ami_records(caplog, logging.WARNING))


async def test_a_hung_asterisk_is_not_answering_within_seconds_before_the_session_drops(
) -> None:
    # Asterisk hung (stopped, or its manager deadlocked) keeps its session open and sends
    # nothing: the wallboard showed its old picture as live until the unanswered Ping dropped
    # the session, 10-20 s. It is told within PING_EVERY + PING_STALL seconds now, while the
    # session lives on (a resync costs more than a few seconds' doubt), and answering again
    # once Asterisk answers.
    sink = ListSink()
    async with fake_asterisk() as server, listener(server.port, sink, ping_interval=10.0) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await eventually(lambda: "Ping" in server.names(), within=3)
        assert ami.answering
        server.answer_pings = False
        bound = listener_module.PING_EVERY_SECONDS + listener_module.PING_STALL_SECONDS
        await eventually(lambda: not ami.answering, within=bound + 0.5)
        assert ami.logged_in and server.logins == 1
        server.answer_pings = True
        await eventually(lambda: ami.answering, within=listener_module.PING_EVERY_SECONDS + 0.5)
        assert ami.logged_in and server.logins == 1


async def test_asterisk_not_up_yet(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = ListSink()
    async with listener(port, sink) as ami:
        await eventually(lambda: len(caplog.records) > 0)
        server = FakeAsterisk()
        await server.start(port)
        try:
            async with asyncio.timeout(5):
                await ami.wait_ready()
        finally:
            await server.close()
    failures = [m for m in ami_records(caplog, logging.WARNING) if "cannot connect" in m]
    assert len(failures) == 1


async def test_send_action() -> None:
    sink = ListSink()
    async with fake_asterisk() as server, listener(server.port, sink) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        reply = await ami.send_action(
            {"Action": "QueueAdd", "Queue": "medical", "Interface": "PJSIP/op1001"}
        )
        assert reply.success
        assert reply.message == "Added interface to queue"
        assert server.actions[-1] == {
            "action": "QueueAdd",
            "actionid": reply.actionid,
            "interface": "PJSIP/op1001",
            "queue": "medical",
        }
        with pytest.raises(AmiActionRefusedError, match="QueuePause refused: Interface not found"):
            await ami.send_action({"Action": "QueuePause", "Interface": "PJSIP/op9999"})
        with pytest.raises(AmiActionError, match="no Action header"):
            await ami.send_action({"Queue": "medical"})


async def test_send_action_without_asterisk_fails_in_bounded_time() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with listener(port, ListSink(), action_timeout=0.2) as ami:
        with pytest.raises(AmiActionError, match="not logged in"):
            await ami.send_action({"Action": "QueueRemove", "Queue": "medical"})
