"""FastAgiServer over real loopback sockets, driven by a scripted fake Asterisk.

Every hostile session must end with exactly one clear log line on ``telephony.agi`` and must
leave the server able to serve the next, normal session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import random
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ivr.channel import CallerHungUp
from telephony.agi import server as agi_server
from telephony.agi.access import AgiAccess
from telephony.agi.channel import OPENED_BY_MENU, OPENING, AgiChannel
from telephony.agi.protocol import AgiReply, EnvironmentParser
from telephony.agi.server import (
    AgiHandler,
    AgiHungUpError,
    AgiObserver,
    AgiSession,
    FastAgiConfig,
    FastAgiServer,
)
from telephony.metrics.agi import AgiTimings
from telephony.settings import Settings
from tests.support.agi import WAIT, FakeAsterisk, environment
from tests.support.polling import eventually

TRANSCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "agi_session.txt"


@contextlib.asynccontextmanager
async def running(routes: dict[str, AgiHandler], observer: AgiObserver | None = None,
                  **overrides: Any) -> AsyncIterator[FastAgiServer]:
    config = dataclasses.replace(FastAgiConfig.from_settings(Settings()), port=0, **overrides)
    server = FastAgiServer(config, routes, observer=observer)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Ivr:
    """A small IVR route: ask for a digit, publish it; records what each call saw."""

    def __init__(self) -> None:
        self.choices: list[str | None] = []
        self.errors: list[BaseException] = []

    async def __call__(self, session: AgiSession) -> None:
        channel = AgiChannel(session)
        try:
            choice = await channel.ask_digit(["siaga112/menu"], 3000)
            await channel.set_variable("IVR_CHOICE", choice or "")
        except BaseException as exc:
            self.errors.append(exc)
            raise
        self.choices.append(choice)


async def normal_call(port: int, uniqueid: str = "1.1", digit: str = "2",
                      script: str = "ivr") -> None:
    """The exchange a healthy call has with the Ivr route."""
    async with await FakeAsterisk.connect(port) as asterisk:
        await asterisk.send(environment(script=script, uniqueid=uniqueid))
        assert await asterisk.expect_command() == ["GET", "DATA", "siaga112/menu", "3000", "1"]
        await asterisk.send(f"200 result={digit}\n".encode())
        assert await asterisk.expect_command() == ["SET", "VARIABLE", "IVR_CHOICE", digit]
        await asterisk.send(b"200 result=1\n")
        assert await asterisk.wait_closed_by_server() == b""


def agi_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "telephony.agi" and r.levelno >= logging.INFO]


def assert_one_line(caplog: pytest.LogCaptureFixture, fragment: str) -> logging.LogRecord:
    records = agi_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    message = records[0].getMessage()
    assert fragment in message, message
    assert "\n" not in message
    return records[0]


@pytest.fixture(autouse=True)
def _agi_log_level(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO, logger="telephony.agi")
    yield
    # Errors the event loop logs itself (an exception nobody retrieved, a failing callback).
    loop_errors = [r.getMessage() for r in caplog.get_records("call") if r.name == "asyncio"]
    assert loop_errors == []


# --- the happy path ----------------------------------------------------------------------


async def test_sessions_and_commands_are_timed_for_the_metrics() -> None:
    registry = CollectorRegistry()
    async with running({"ivr": Ivr()}, observer=AgiTimings(registry)) as server:
        await normal_call(server.port)
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="1.2"))
            await asterisk.expect_command()
            await asterisk.send(b"HANGUP\n")
            await asterisk.wait_closed_by_server()

    def count(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"siaga112_agi_{name}_count", labels)

    assert count("session_seconds", route="ivr", outcome="completed") == 1
    assert count("session_seconds", route="ivr", outcome="hangup") == 1
    # The hung-up session's GET DATA got no answer: only answered commands are timed.
    assert count("command_seconds", command="GET DATA") == 1
    assert count("command_seconds", command="SET VARIABLE") == 1
    total = registry.get_sample_value("siaga112_agi_command_seconds_sum",
                                      {"command": "GET DATA"})
    assert total is not None and 0 <= total < WAIT


async def test_normal_call(caplog: pytest.LogCaptureFixture) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}) as server:
        assert server.port > 0
        caplog.clear()
        await normal_call(server.port)
        assert ivr.choices == ["2"]
        assert agi_records(caplog) == []


async def test_environment_with_crlf_and_query_string() -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}) as server, await FakeAsterisk.connect(server.port) as ast:
        await ast.send(environment(script="ivr?line=112", eol=b"\r\n"))
        assert (await ast.expect_command())[:2] == ["GET", "DATA"]
        await ast.send(b"200 result= (timeout)\r\n")
        assert await ast.expect_command() == ["SET", "VARIABLE", "IVR_CHOICE", ""]
        await ast.send(b"200 result=1\r\n")
        assert await ast.wait_closed_by_server() == b""
    assert ivr.choices == [None]


async def test_a_caller_id_that_is_not_utf8_runs_the_menu() -> None:
    """A carrier's number or name with bytes that are not UTF-8: the session was refused, so
    the caller skipped the menu (failed open). The menu runs for them."""
    ivr = Ivr()
    async with running({"ivr": ivr}) as server, await FakeAsterisk.connect(server.port) as ast:
        await ast.send(environment().replace(b"agi_callerid: 0812", b"agi_callerid: 0812\xc3\x28")
                       .replace(b"agi_calleridname: unknown", b"agi_calleridname: caf\xe9"))
        assert (await ast.expect_command())[:2] == ["GET", "DATA"]
        await ast.send(b"200 result=2\n")
        assert await ast.expect_command() == ["SET", "VARIABLE", "IVR_CHOICE", "2"]
        await ast.send(b"200 result=1\n")
        assert await ast.wait_closed_by_server() == b""
    assert ivr.choices == ["2"]


async def test_many_concurrent_calls() -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}) as server:
        await asyncio.gather(*(normal_call(server.port, f"1.{i}", str(i % 10)) for i in range(50)))
        assert sorted(c or "" for c in ivr.choices) == sorted(str(i % 10) for i in range(50))
        assert server.active_sessions == 0


async def test_usage_reply_reaches_the_handler_whole(caplog: pytest.LogCaptureFixture) -> None:
    replies: list[AgiReply] = []

    async def handler(session: AgiSession) -> None:
        replies.append(await session.command("GET DATA"))
        replies.append(await session.command("ANSWER"))

    usage = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
        b"520 End of proper usage.\n"
    )
    async with running({"ivr": handler}) as server, await FakeAsterisk.connect(server.port) as ast:
        caplog.clear()
        await ast.send(environment())
        assert await ast.expect_command() == ["GET", "DATA"]
        await ast.send(usage[:30])
        await ast.send(usage[30:])
        assert await ast.expect_command() == ["ANSWER"]
        await ast.send(b"100 result=0 Trying...\n200 result=0\n")
        assert await ast.wait_closed_by_server() == b""
    assert [r.code for r in replies] == [520, 200]
    assert replies[0].line == usage.decode().rstrip("\n")
    assert agi_records(caplog) == []


# --- hostile or broken peers: one log line, then a normal call still works ----------------


async def send_garbage(asterisk: FakeAsterisk) -> None:
    await asterisk.send(random.Random(112).randbytes(4096))


async def send_megabyte_line(asterisk: FakeAsterisk) -> None:
    await asterisk.send(b"agi_network: " + b"x" * (1 << 20))


async def send_megabyte_of_lines(asterisk: FakeAsterisk) -> None:
    await asterisk.send(b"".join(b"agi_k%d: %s\n" % (i, b"v" * 90) for i in range(10_000)))


async def send_half_a_frame(asterisk: FakeAsterisk) -> None:
    await asterisk.send(environment()[:40])
    asterisk.writer.write_eof()


async def send_invalid_utf8(asterisk: FakeAsterisk) -> None:
    await asterisk.send(b"agi_network: yes\nagi_caller\xc3\x28: x\n\n")  # in a key


async def send_unknown_route(asterisk: FakeAsterisk) -> None:
    await asterisk.send(environment(script="nope/../admin", uniqueid="9.9"))


async def send_nothing(asterisk: FakeAsterisk) -> None:
    """A peer that connects and stays silent; the short environment timeout ends it."""


async def send_http_request(asterisk: FakeAsterisk) -> None:
    await asterisk.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


async def hang_up_mid_command(asterisk: FakeAsterisk) -> None:
    await asterisk.send(environment(uniqueid="7.7"))
    await asterisk.expect_command()
    await asterisk.send(b"HANGUP\n")


async def close_mid_command(asterisk: FakeAsterisk) -> None:
    await asterisk.send(environment(uniqueid="7.8"))
    await asterisk.expect_command()
    asterisk.writer.write_eof()


async def reply_garbage_mid_command(asterisk: FakeAsterisk) -> None:
    await asterisk.send(environment(uniqueid="7.9"))
    await asterisk.expect_command()
    await asterisk.send(b"\x00\x01garbage\n")


async def refuse_the_command(asterisk: FakeAsterisk) -> None:
    await asterisk.send(environment(uniqueid="8.1"))
    await asterisk.expect_command()
    await asterisk.send(b"510 Invalid or unknown command\n")


HOSTILE: list[tuple[Callable[[FakeAsterisk], Awaitable[None]], str]] = [
    (send_garbage, "FastAGI connection from 127.0.0.1:"),
    (send_megabyte_line, "(protocol_error): environment line longer than 16384 bytes"),
    (send_megabyte_of_lines, "(protocol_error): environment block larger than 16384 bytes"),
    (send_half_a_frame, "(protocol_error): connection closed after 1 environment lines"),
    (send_invalid_utf8, "(protocol_error): environment line 2: key 'agi_caller\\\\xc3('"),
    (send_unknown_route, "(no_route): no route for script 'nope/../admin'"),
    (send_nothing, "(no_environment): no complete environment within 0.2 s"),
    (send_http_request, "(protocol_error): environment line 1 has no ': ': 'GET / HTTP/1.1'"),
    (hang_up_mid_command, "7.7 ended: GET DATA siaga112/menu 3000 1: caller hung up (HANGUP"),
    (close_mid_command, "7.8 ended: GET DATA siaga112/menu 3000 1: Asterisk closed the conn"),
    (reply_garbage_mid_command, "7.9 ended on a channel error: GET DATA siaga112/menu 3000 1:"),
    (refuse_the_command, "8.1 ended on a channel error: GET DATA 'siaga112/menu' '3000' '1'"),
]


@pytest.mark.parametrize(("misbehave", "fragment"), HOSTILE, ids=[f.__name__ for f, _ in HOSTILE])
async def test_hostile_session_logs_one_line_and_the_next_call_works(
    caplog: pytest.LogCaptureFixture,
    misbehave: Callable[[FakeAsterisk], Awaitable[None]],
    fragment: str,
) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}, environment_timeout=0.2) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await misbehave(asterisk)
            await asterisk.wait_closed_by_server()
        assert_one_line(caplog, fragment)
        caplog.clear()
        await normal_call(server.port)
        assert ivr.choices == ["2"]
        assert agi_records(caplog) == []
        assert server.active_sessions == 0


async def test_unknown_route_names_the_script(caplog: pytest.LogCaptureFixture) -> None:
    async with running({"ivr": Ivr()}) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await send_unknown_route(asterisk)
            await asterisk.wait_closed_by_server()
    assert_one_line(caplog, "no route for script 'nope/../admin'")


async def test_hangup_mid_command_surfaces_as_caller_hung_up() -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}) as server, await FakeAsterisk.connect(server.port) as ast:
        await hang_up_mid_command(ast)
        await ast.wait_closed_by_server()
    assert len(ivr.errors) == 1
    assert isinstance(ivr.errors[0], CallerHungUp)


async def test_hangup_sent_with_the_environment_reaches_the_first_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}) as server, await FakeAsterisk.connect(server.port) as ast:
        caplog.clear()
        await ast.send(environment(uniqueid="7.6") + b"HANGUP\nHANGUP\n")
        assert (await ast.expect_command())[:2] == ["GET", "DATA"]
        assert await ast.wait_closed_by_server() == b""
    assert isinstance(ivr.errors[0], CallerHungUp)
    assert_one_line(caplog, "7.6 ended: GET DATA siaga112/menu 3000 1: caller hung up (HANGUP")


async def test_reply_split_across_the_environment_read() -> None:
    replies: list[AgiReply] = []

    async def handler(session: AgiSession) -> None:
        replies.append(await session.command("ANSWER"))

    async with running({"ivr": handler}) as server, await FakeAsterisk.connect(server.port) as ast:
        # Not something Asterisk does, but the bytes after the blank line must not be lost.
        await ast.send(environment() + b"200 res")
        assert await ast.expect_command() == ["ANSWER"]
        await ast.send(b"ult=0\n")
        assert await ast.wait_closed_by_server() == b""
    assert replies == [AgiReply(200, "200 result=0", result="0")]


async def test_handler_exception_is_logged_once_with_the_uniqueid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(session: AgiSession) -> None:
        await session.command("ANSWER")
        raise RuntimeError("database on fire")

    async with running({"ivr": broken}) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="5.5"))
            assert await asterisk.expect_command() == ["ANSWER"]
            await asterisk.send(b"200 result=0\n")
            assert await asterisk.wait_closed_by_server() == b""
    record = assert_one_line(caplog, "FastAGI session 5.5: handler 'ivr' failed")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_handlers_own_timeout_error_is_a_handler_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def slow_database(session: AgiSession) -> None:
        raise TimeoutError("database did not answer")

    async with running({"ivr": slow_database}) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="5.6"))
            await asterisk.wait_closed_by_server()
    assert_one_line(caplog, "FastAGI session 5.6: handler 'ivr' failed")


async def test_session_timeout_cuts_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}, session_timeout=0.3) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="6.6"))
            await asterisk.expect_command()  # and never answer it
            started = time.monotonic()
            await asterisk.wait_closed_by_server()
            assert time.monotonic() - started < WAIT / 2
        assert_one_line(caplog, "FastAGI session 6.6 cut after the 0.3 s session limit")
        assert ivr.errors and isinstance(ivr.errors[0], asyncio.CancelledError)


async def test_command_timeout_is_a_channel_error(caplog: pytest.LogCaptureFixture) -> None:
    async with running({"ivr": Ivr()}, command_timeout=0.2) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="6.7"))
            await asterisk.expect_command()  # and never answer it
            await asterisk.wait_closed_by_server()
    assert_one_line(
        caplog, "6.7 ended on a channel error: GET DATA siaga112/menu 3000 1: no reply within 0.2 s"
    )


async def test_each_command_has_its_own_timeout() -> None:
    """One timer serves the session's commands: it must give each one the whole timeout,
    however long the session has run, and end the one that overstays it."""
    outcomes: list[str] = []

    async def handler(session: AgiSession) -> None:
        for _ in range(4):
            try:
                outcomes.append((await session.command("ANSWER")).line)
            except Exception as exc:
                outcomes.append(str(exc))

    async with (
        running({"ivr": handler}, command_timeout=0.3) as server,
        await FakeAsterisk.connect(server.port) as asterisk,
    ):
        await asterisk.send(environment())
        for _ in range(3):
            assert await asterisk.expect_command() == ["ANSWER"]
            # A slow Asterisk: the three answers take longer together than one timeout.
            await asyncio.sleep(0.15)
            await asterisk.send(b"200 result=0\n")
        await asterisk.expect_command()  # and never answer the fourth
        started = time.monotonic()
        await asterisk.wait_closed_by_server()
        assert time.monotonic() - started < WAIT / 2
    assert outcomes == [*["200 result=0"] * 3, "ANSWER: no reply within 0.3 s"]


async def test_a_failing_deadline_check_ends_that_session_and_not_the_sweep(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session whose deadlines cannot be checked is closed (the dialplan fails open), and
    the other sessions' deadlines go on being kept."""
    real_check = agi_server._Connection.check

    def check(connection: Any, now: float) -> None:
        if connection.session_timeout is not None and connection.deadline is not None:
            raise RuntimeError("broken check")  # the first session, once it awaits a reply
        real_check(connection, now)

    monkeypatch.setattr(agi_server._Connection, "check", check)
    async with running({"ivr": Ivr()}, command_timeout=0.2) as server:
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="4.1"))
            await asterisk.expect_command()
            assert await asterisk.wait_closed_by_server() == b""
        failures = [r for r in agi_records(caplog) if "deadline check failed" in r.getMessage()]
        assert len(failures) == 1
        monkeypatch.setattr(agi_server._Connection, "check", real_check)
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="4.2"))
            await asterisk.expect_command()  # and never answer it: the timeout still works
            await asterisk.wait_closed_by_server()
        assert_one_line(caplog, "4.2 ended on a channel error: GET DATA siaga112/menu 3000 1: no")


async def test_session_refuses_commands_after_a_timeout() -> None:
    outcomes: list[str] = []

    async def handler(session: AgiSession) -> None:
        for _ in range(2):
            try:
                await session.command("ANSWER")
            except Exception as exc:
                outcomes.append(str(exc))

    async with (
        running({"ivr": handler}, command_timeout=0.2) as server,
        await FakeAsterisk.connect(server.port) as asterisk,
    ):
        await asterisk.send(environment())
        await asterisk.expect_command()
        await asterisk.wait_closed_by_server()
    assert outcomes == [
        "ANSWER: no reply within 0.2 s",
        "ANSWER: session unusable after a command timeout",
    ]


async def test_session_refuses_commands_after_a_hangup() -> None:
    outcomes: list[BaseException] = []

    async def handler(session: AgiSession) -> None:
        for _ in range(2):
            try:
                await session.command("ANSWER")
            except AgiHungUpError as exc:
                outcomes.append(exc)
        assert session.hung_up

    async with (
        running({"ivr": handler}) as server,
        await FakeAsterisk.connect(server.port) as asterisk,
    ):
        await asterisk.send(environment())
        await asterisk.expect_command()
        await asterisk.send(b"HANGUP\n")
        # Only the first command went out: the second is refused without a write.
        assert await asterisk.wait_closed_by_server() == b""
    assert [str(e) for e in outcomes] == [
        "ANSWER: caller hung up (HANGUP from Asterisk)",
        "ANSWER: the caller has already hung up",
    ]


async def test_concurrent_session_limit(caplog: pytest.LogCaptureFixture) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}, max_sessions=1) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as first:
            await first.send(environment(uniqueid="1.1"))
            assert (await first.expect_command())[:2] == ["GET", "DATA"]
            async with await FakeAsterisk.connect(server.port) as second:
                await second.send(environment(uniqueid="1.2"))
                assert await second.wait_closed_by_server() == b""
            assert_one_line(caplog, "refused (session_cap): 1 sessions already running")
            await first.send(b"200 result=3\n")
            await first.expect_command()
            await first.send(b"200 result=1\n")
            assert await first.wait_closed_by_server() == b""
        await normal_call(server.port)
    assert ivr.choices == ["3", "2"]


async def sessions_settle(server: FastAgiServer, count: int) -> None:
    async def settled() -> bool | None:
        return True if server.active_sessions == count else None

    await eventually(f"{count} sessions", settled, within=WAIT, interval=0.01)


async def test_the_cap_refuses_the_next_session_at_once() -> None:
    """N sessions in progress: the N+1th connection is closed before it says anything, long
    before any timeout, so Asterisk fails the call open; a freed slot serves again."""
    cap = 5
    ivr = Ivr()
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(running({"ivr": ivr}, max_sessions=cap))
        held = []
        for i in range(cap):
            asterisk = await stack.enter_async_context(await FakeAsterisk.connect(server.port))
            await asterisk.send(environment(uniqueid=f"2.{i}"))
            assert (await asterisk.expect_command())[:2] == ["GET", "DATA"]
            held.append(asterisk)
        assert server.active_sessions == cap
        started = time.monotonic()
        async with await FakeAsterisk.connect(server.port) as refused:
            assert await refused.wait_closed_by_server() == b""
        assert time.monotonic() - started < 0.5
        assert server.refused == {"session_cap": 1}
        await held[0].send(b"200 result=1\n")
        await held[0].expect_command()
        await held[0].send(b"200 result=1\n")
        assert await held[0].wait_closed_by_server() == b""
        await sessions_settle(server, cap - 1)
        await normal_call(server.port, uniqueid="2.9")
    assert ivr.choices == ["1", "2"]


async def _hostile(port: int, kind: int, secret: str) -> None:
    """One hostile connection of four kinds: garbage, silence, a wrong secret, HTTP."""
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with await FakeAsterisk.connect(port) as asterisk:
            if kind == 0:
                await asterisk.send(b"\x00\xff garbage\n\n")
            elif kind == 2:
                await asterisk.send(environment(script=f"survey?secret={secret}x"))
            elif kind == 3:
                await asterisk.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asterisk.wait_closed_by_server()


async def test_a_flood_of_hostile_connections_logs_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Thousands of refusals in ~2 s: a handful of log lines (the first refusal in full, then
    one summary per interval), not one per connection; the next real call is served."""
    secret = "s3cret-of-the-line-asterisk"
    interval = 0.5
    ivr = Ivr()
    async with running({"ivr": ivr}, max_sessions=20, environment_timeout=0.2,
                       refusal_log_interval=interval,
                       access=AgiAccess(secret=secret)) as server:
        caplog.clear()
        started = time.monotonic()
        deadline = started + 2.0

        async def attacker(kind: int) -> None:
            while time.monotonic() < deadline:
                await _hostile(server.port, kind, secret)

        await asyncio.gather(*(attacker(i % 4) for i in range(40)))
        await sessions_settle(server, 0)
        elapsed = time.monotonic() - started
        refused = sum(server.refused.values())
        await normal_call(server.port, uniqueid="3.1", script=f"ivr?secret={secret}")
    lines = agi_records(caplog)
    messages = [r.getMessage() for r in lines if "refuse" in r.getMessage()]
    assert refused >= 500, server.refused
    assert set(server.refused) >= {"protocol_error", "bad_secret"}
    # The first in full, a summary per interval (and the last one at stop), nothing more.
    assert len(messages) <= 2 + elapsed / interval + 1, messages
    assert sum(int(m.split("refused ")[1].split(" more")[0]) for m in messages[1:]) == (
        refused - 1)
    assert all(secret not in m for m in messages)
    assert ivr.choices == ["2"]


async def test_a_wrong_or_missing_secret_is_refused_before_any_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "the-right-secret-0123456789"
    ivr = Ivr()
    async with running({"ivr": ivr}, access=AgiAccess(secret=secret)) as server:
        for script in ("ivr", f"ivr?secret={secret[:-1]}", f"nope?secret={secret}x"):
            caplog.clear()
            async with await FakeAsterisk.connect(server.port) as asterisk:
                await asterisk.send(environment(script=script))
                assert await asterisk.wait_closed_by_server() == b""  # not one command
        assert server.refused == {"bad_secret": 3}
        await normal_call(server.port, script=f"ivr?secret={secret}")
    assert ivr.choices == ["2"] and ivr.errors == []
    assert not [r for r in caplog.records if secret[:-1] in r.getMessage()]


async def test_a_peer_outside_the_allowlist_is_refused_on_connect() -> None:
    ivr = Ivr()
    elsewhere = AgiAccess.of([ipaddress.ip_network("192.0.2.0/24")], None)
    async with running({"ivr": ivr}, access=elsewhere) as server:
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment())
            assert await asterisk.wait_closed_by_server() == b""
        assert server.refused == {"peer_not_allowed": 1}
    assert ivr.choices == [] and ivr.errors == []


@pytest.mark.parametrize("reply", [b"200 result=0 Gosub complete\n",
                                   b"200 result=-1 Gosub failed\n"])
async def test_a_session_opens_with_the_opening_command(
    caplog: pytest.LogCaptureFixture, reply: bytes,
) -> None:
    """The line's server sends the GOSUB that lifts the dialplan's first-command deadline
    before the session's first command; a dialplan without the routine costs one log line,
    and the call goes on (the dialplan's deadline then fails it open)."""
    ivr = Ivr()
    async with running({"ivr": ivr}, opening=OPENING,
                       opening_implied_by=OPENED_BY_MENU) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment(uniqueid="4.1"))
            assert await asterisk.expect_command() == ["GOSUB", "siaga112-agi-alive", "s", "1"]
            await asterisk.send(b"100 result=0 Trying...\n" + reply)
            assert (await asterisk.expect_command())[:2] == ["GET", "DATA"]
            await asterisk.send(b"200 result=5\n")
            assert (await asterisk.expect_command())[:2] == ["SET", "VARIABLE"]  # once only
            await asterisk.send(b"200 result=1\n")
            assert await asterisk.wait_closed_by_server() == b""
    assert ivr.choices == ["5"]
    refused = [r.getMessage() for r in agi_records(caplog) if "opening command" in r.getMessage()]
    assert len(refused) == (0 if b"complete" in reply else 1)


async def test_the_menu_gosub_goes_first_and_opens_the_session_itself() -> None:
    """No key may be lost before the menu: its GOSUB is the first command, and its routine
    lifts the deadline itself, so no opening GOSUB goes before it."""
    async def menu_first(session: AgiSession) -> None:
        await session.command("GOSUB", "siaga112-menu", "s", "1", "greeting", session_bound=True)
        await session.command("GET VARIABLE", "GOSUB_RETVAL")

    async with (running({"ivr": menu_first}, opening=OPENING,
                        opening_implied_by=OPENED_BY_MENU) as server,
                await FakeAsterisk.connect(server.port) as asterisk):
        await asterisk.send(environment(uniqueid="4.2"))
        assert (await asterisk.expect_command())[:2] == ["GOSUB", "siaga112-menu"]
        await asterisk.send(b"200 result=0 Gosub complete\n")
        assert await asterisk.expect_command() == ["GET", "VARIABLE", "GOSUB_RETVAL"]
        await asterisk.send(b"200 result=1 (1@900)\n")
        assert await asterisk.wait_closed_by_server() == b""


# --- shutdown ----------------------------------------------------------------------------


async def test_stop_lets_a_running_session_finish(caplog: pytest.LogCaptureFixture) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}, shutdown_timeout=WAIT) as server:
        port = server.port
        async with await FakeAsterisk.connect(port) as asterisk:
            await asterisk.send(environment())
            await asterisk.expect_command()
            caplog.clear()
            stopping = asyncio.create_task(server.stop())
            await asterisk.send(b"200 result=4\n")
            await asterisk.expect_command()
            await asterisk.send(b"200 result=1\n")
            assert await asterisk.wait_closed_by_server() == b""
            async with asyncio.timeout(WAIT):
                await stopping
        assert ivr.choices == ["4"]
        assert agi_records(caplog) == []
        with pytest.raises(ConnectionRefusedError):
            await FakeAsterisk.connect(port)


async def test_stop_cuts_sessions_past_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    ivr = Ivr()
    async with running({"ivr": ivr}, shutdown_timeout=0.2) as server:
        async with await FakeAsterisk.connect(server.port) as asterisk:
            await asterisk.send(environment())
            await asterisk.expect_command()  # and never answer it
            caplog.clear()
            started = time.monotonic()
            await server.stop()
            assert time.monotonic() - started < WAIT / 2
            assert await asterisk.wait_closed_by_server() == b""
        assert_one_line(caplog, "FastAGI shutdown: cutting 1 sessions still running after 0.2 s")
        assert server.active_sessions == 0
        assert ivr.errors and isinstance(ivr.errors[0], asyncio.CancelledError)


async def test_binds_only_the_configured_host() -> None:
    async with running({"ivr": Ivr()}) as server:
        with pytest.raises(RuntimeError, match="already running"):
            await server.start()
        assert server.port > 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


async def test_from_settings_takes_the_agi_settings() -> None:
    settings = Settings(
        agi_host="127.0.0.2",
        agi_port=4600,
        agi_command_timeout=7.0,
        agi_session_timeout=70.0,
        agi_max_frame_bytes=4096,
    )
    config = FastAgiConfig.from_settings(settings)
    assert (config.host, config.port, config.command_timeout) == ("127.0.0.2", 4600, 7.0)
    assert (config.session_timeout, config.max_frame_bytes) == (70.0, 4096)


# --- replaying the recorded Asterisk 22 transcript ----------------------------------------


def transcript_session(index: int) -> list[tuple[str, bytes]]:
    sessions: list[list[tuple[str, bytes]]] = []
    for line in TRANSCRIPT.read_bytes().splitlines(keepends=True):
        if line.startswith(b"# Session"):
            sessions.append([])
        elif line[:2] in (b"< ", b"> "):
            sessions[-1].append((line[:1].decode(), line[2:]))
    return sessions[index]


def recorded_uniqueid(script: list[tuple[str, bytes]]) -> str:
    env = EnvironmentParser().feed(b"".join(data for direction, data in script if direction == "<"))
    assert env is not None
    return env.uniqueid


async def replay(port: int, script: list[tuple[str, bytes]]) -> None:
    """Play Asterisk's side of ``script``; each command must mean what the transcript has."""
    async with await FakeAsterisk.connect(port) as asterisk:
        for direction, data in script:
            if direction == "<":
                await asterisk.send(data)
            else:
                assert await asterisk.expect_command() == shlex.split(data.decode())
        asterisk.writer.write_eof()
        assert await asterisk.wait_closed_by_server() == b""


async def test_replay_recorded_call(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[object] = []

    async def handler(session: AgiSession) -> None:
        channel = AgiChannel(session)
        seen.append((await session.command("ANSWER")).result)
        seen.append(await channel.ask_digit(["siaga112/x"], 3000))
        seen.append(await channel.ask_digit(["siaga112/y"], 1000))
        seen.append((await session.command("STREAM FILE", "siaga112/x", "12")).result)
        await channel.set_variable("IVR_CHOICE", "1")
        await channel.ask_digit(["siaga112/x"], 3000)

    script = transcript_session(0)
    async with running({"ivr": handler}) as server:
        caplog.clear()
        await replay(server.port, script)
    assert seen == ["0", "1", None, "50"]
    uniqueid = recorded_uniqueid(script)
    assert_one_line(caplog, f"{uniqueid} ended: GET DATA 'siaga112/x': caller hung up (result=-1)")


async def test_replay_recorded_hangup_while_idle(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(session: AgiSession) -> None:
        # Asterisk's HANGUP lines wait in the socket until the next command reads them.
        await session.command("ANSWER")

    script = transcript_session(1)
    async with running({"ivr": handler}) as server:
        caplog.clear()
        async with await FakeAsterisk.connect(server.port) as asterisk:
            for direction, data in script:
                assert direction == "<"
                await asterisk.send(data)
            assert await asterisk.expect_command() == ["ANSWER"]
            assert await asterisk.wait_closed_by_server() == b""
    uniqueid = recorded_uniqueid(script)
    assert_one_line(caplog, f"{uniqueid} ended: ANSWER: caller hung up (HANGUP from Asterisk)")
