"""The AMI listener against a fake Asterisk on a loopback socket speaking the real protocol."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.ami.framing import AmiFrame, AmiFrameDecoder
from telephony.ami.listener import AmiListener
from telephony.ami.tracker import AmiEvent, CallTracker
from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    OperatorAnswered,
    QueueJoined,
)
from telephony.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = datetime(2024, 11, 23, 7, 0, tzinfo=UTC)
USER, SECRET = "siaga112", "right-secret"
Fields = tuple[tuple[str, str], ...]
F = TypeVar("F", bound=CallFact)


def transcript(name: str) -> list[Fields]:
    """The events of a transcript (a recorded one also holds the login response)."""
    items = AmiFrameDecoder().feed((FIXTURES / name).read_bytes())
    return [item.fields for item in items if isinstance(item, AmiFrame) and item.get("Event")]


def existing(*names: str) -> list[str]:
    """Recorded transcripts join the synthetic ones as soon as they are in the tree."""
    return [name for name in names if (FIXTURES / name).exists()]


ANSWERED = transcript("ami_synthetic_call_answered.txt")
ABANDONED = transcript("ami_synthetic_call_abandoned.txt")
CALLER = "1732345678.0"  # the answered transcript's call
CALLS = existing(
    "ami_call_answered.txt",
    "ami_call_abandoned.txt",
    "ami_synthetic_call_answered.txt",
    "ami_synthetic_call_abandoned.txt",
)
RESYNCS = existing("ami_resync.txt", "ami_synthetic_resync.txt")


def render(fields: Fields) -> bytes:
    return "".join(f"{key}: {value}\r\n" for key, value in fields).encode() + b"\r\n"


def expected_facts(frames: Sequence[Fields]) -> list[CallFact]:
    tracker = CallTracker(clock=lambda: NOW)
    return [fact for frame in frames for fact in tracker.handle(AmiFrame(frame).to_message())]


class FakeAsterisk:
    """Banner, Login, Ping, list actions with ActionIDs, QueueAdd/QueuePause, dropping."""

    def __init__(self) -> None:
        self.secret = SECRET
        self.answer_pings = True
        self.channels: list[Fields] = []  # CoreShowChannel events
        self.status: list[Fields] = []  # Status events
        self.queues: list[Fields] = []  # QueueParams/QueueMember/QueueEntry events
        self.actions: list[dict[str, str]] = []
        self.logins = 0
        self.login_times: list[float] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._session: asyncio.StreamWriter | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        # Python 3.11's wait_closed() does not wait for the connection handlers.
        await asyncio.gather(*self._handlers)

    def names(self) -> list[str]:
        return [action.get("action", "") for action in self.actions]

    async def send(self, data: bytes) -> None:
        """Write to the logged-in session, as Asterisk writes events."""
        assert self._session is not None
        self._session.write(data)
        await self._session.drain()

    async def send_frames(self, frames: Sequence[Fields]) -> None:
        await self.send(b"".join(render(frame) for frame in frames))

    def drop(self) -> None:
        assert self._session is not None
        self._session.close()
        self._session = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        authenticated = False
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = raw.decode().strip().split("\r\n")
                action = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
                self.actions.append(action)
                name, aid = action.get("action", "").lower(), action.get("actionid", "")
                if name == "login":
                    self.logins += 1
                    self.login_times.append(asyncio.get_running_loop().time())
                    if action.get("username") != USER or action.get("secret") != self.secret:
                        writer.write(self._response(aid, "Error", "Authentication failed"))
                        await writer.drain()
                        return  # Asterisk ends the session after a failed login
                    authenticated = True
                    self._session = writer
                    writer.write(self._response(aid, "Success", "Authentication accepted"))
                    writer.write(
                        b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\n"
                        b"LastReload: 5\r\nStatus: Fully Booted\r\n\r\n"
                    )
                elif not authenticated:
                    writer.write(self._response(aid, "Error", "Permission denied"))
                elif name == "ping":
                    if self.answer_pings:
                        writer.write(
                            f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n"
                            f"Timestamp: 1732345678.000000\r\n\r\n".encode()
                        )
                elif name in ("coreshowchannels", "status", "queuestatus"):
                    writer.write(self._list_reply(name, aid))
                elif name == "queueadd":
                    writer.write(self._response(aid, "Success", "Added interface to queue"))
                else:
                    writer.write(self._response(aid, "Error", "Interface not found"))
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)

    @staticmethod
    def _response(aid: str, response: str, message: str) -> bytes:
        return f"Response: {response}\r\nActionID: {aid}\r\nMessage: {message}\r\n\r\n".encode()

    def _list_reply(self, name: str, aid: str) -> bytes:
        items, complete, message = {
            "coreshowchannels": (self.channels, "CoreShowChannelsComplete", "Channels"),
            "status": (self.status, "StatusComplete", "Channel status"),
            "queuestatus": (self.queues, "QueueStatusComplete", "Queue status"),
        }[name]
        out = [
            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
            f"Message: {message} will follow\r\n\r\n".encode()
        ]
        out += [render((*item[:1], ("ActionID", aid), *item[1:])) for item in items]
        out.append(
            render(
                (
                    ("Event", complete),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", str(len(items))),
                )
            )
        )
        return b"".join(out)


class ListSink:
    """The store, as a list; open calls are those started and not ended or vanished."""

    def __init__(self, open_ids: Sequence[str] = ()) -> None:
        self.facts: list[CallFact] = []
        self.preset_open = set(open_ids)

    async def record(self, facts: Sequence[CallFact]) -> None:
        self.facts.extend(facts)

    async def open_call_ids(self) -> set[str]:
        started = {f.call_id for f in self.facts if isinstance(f, CallStarted)}
        closed = {f.call_id for f in self.facts if isinstance(f, CallEnded | CallVanished)}
        return (started | self.preset_open) - closed

    def of(self, kind: type[F]) -> list[F]:
        return [f for f in self.facts if isinstance(f, kind)]


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Bounded polling: the condition must hold within ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polling, not an Event: the conditions span the sink, the server and the logs.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@asynccontextmanager
async def fake_asterisk() -> AsyncIterator[FakeAsterisk]:
    server = FakeAsterisk()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def listener(port: int, sink: ListSink, *, secret: str = SECRET, **options: float) -> AmiListener:
    settings = Settings(
        ami_host="127.0.0.1",
        ami_port=port,
        ami_username=USER,
        ami_secret=secret,
        ami_reconnect_seconds=0.05,
    )
    options.setdefault("action_timeout", 2.0)
    return AmiListener(
        settings, sink, tracker=CallTracker(clock=lambda: NOW), auth_retry_seconds=0.1, **options
    )


def live_call_snapshot(uid: str) -> tuple[list[Fields], list[Fields], list[Fields]]:
    """What Asterisk reports for one caller waiting in the medical queue."""
    base = (
        ("Channel", "PJSIP/carrier-00000000"),
        ("ChannelState", "6"),
        ("CallerIDNum", "081234567890"),
        ("Context", "siaga112-queue"),
        ("Exten", "s"),
        ("Uniqueid", uid),
        ("Linkedid", uid),
    )
    channels: list[Fields] = [(("Event", "CoreShowChannel"), *base, ("Duration", "00:00:09"))]
    status: list[Fields] = [
        (
            ("Event", "Status"),
            *base,
            ("Variable", "IVR_LINE=112"),
            ("Variable", "IVR_CHOICE=2"),
            ("Variable", "IVR_OUTCOME=chosen"),
            ("Variable", "IVR_CATEGORY="),
        )
    ]
    queues: list[Fields] = [
        (
            ("Event", "QueueEntry"),
            ("Queue", "medical"),
            ("Position", "1"),
            ("Channel", "PJSIP/carrier-00000000"),
            ("Uniqueid", uid),
            ("Wait", "4"),
        )
    ]
    return channels, status, queues


def ami_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CALLS)
async def test_facts_are_recorded_in_event_order(name: str) -> None:
    frames = transcript(name)
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


@pytest.mark.parametrize("name", RESYNCS)
async def test_resync_from_recorded_replies(name: str) -> None:
    replies: dict[str, list[Fields]] = {"Queue": [], "CoreShowChannel": [], "Status": []}
    for frame in transcript(name):
        event = dict(frame)["Event"]
        kind = next(k for k in replies if event.startswith(k))
        if not event.endswith("Complete"):  # the fake server writes its own, with its count
            replies[kind].append(tuple((k, v) for k, v in frame if k != "ActionID"))
    sink = ListSink(open_ids=["1700000000.99"])
    async with fake_asterisk() as server:
        server.queues = replies["Queue"]
        server.channels = replies["CoreShowChannel"]
        server.status = replies["Status"]
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
    split = next(i for i, f in enumerate(ANSWERED) if ("Event", "QueueCallerJoin") in f) + 1
    async with fake_asterisk() as server:
        async with listener(server.port, sink) as first:
            async with asyncio.timeout(5):
                await first.wait_ready()
            await server.send_frames(ANSWERED[:split])
            await eventually(lambda: bool(sink.of(QueueJoined)))
        before = len(sink.facts)
        assert [type(f) for f in sink.facts].count(CallVanished) == 1  # the preset open call

        server.channels, server.status, server.queues = live_call_snapshot(CALLER)
        async with listener(server.port, sink) as second:
            async with asyncio.timeout(5):
                await second.wait_ready()
            restored = sink.facts[before:]
            assert not [f for f in restored if isinstance(f, CallStarted)]
            assert not [f for f in restored if isinstance(f, CallVanished)]
            assert {(f.name, f.value) for f in restored if isinstance(f, IvrVariableSet)} == {
                ("line", "112"),
                ("choice", "2"),
                ("outcome", "chosen"),
            }
            assert [f for f in restored if isinstance(f, QueueJoined)] == [
                QueueJoined(CALLER, "medical", 1, NOW - timedelta(seconds=4))
            ]
            await server.send_frames(ANSWERED[split:])
            await eventually(lambda: bool(sink.of(CallEnded)))
        assert [type(f) for f in sink.of(OperatorAnswered)] == [OperatorAnswered]
        assert await sink.open_call_ids() == set()
        assert server.logins == 2


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
    # Invalid UTF-8 is replaced, not dropped: one line says so, and the frame goes on.
    assert [w for w in warnings if w.startswith("AMI frame kept: ")] == [
        "AMI frame kept: invalid UTF-8 at byte 17 of line 2 replaced: "
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
