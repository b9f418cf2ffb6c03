"""The listener's part in Asterisk outages (telephony/calls/outages.py), against the fake
Asterisk: a session lost under a live call, then a greeting from a restarted Asterisk (a
smaller Uptime), cuts the call at the loss; a greeting from the same Asterisk does not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from telephony.ami.listener import AmiListener, refused
from telephony.ami.testing import SECRET, USERNAME, FakeAsterisk, ListSink, fake_asterisk
from telephony.ami.tracker import CallTracker
from telephony.calls.facts import AsteriskReturned, CallCut, CallStarted, CallVanished
from telephony.calls.outages import CutReason, OutageKind
from telephony.settings import Settings
from tests.support.ami import ABANDONED, eventually


def real_clock_listener(port: int, sink: ListSink) -> AmiListener:
    """A listener whose tracker reads the real clock: FullyBooted carries no Timestamp, and
    the greeting's time is what dates Asterisk's start."""
    settings = Settings(ami_host="127.0.0.1", ami_port=port, ami_username=USERNAME,
                        ami_secret=SECRET, ami_reconnect_seconds=0.05)
    return AmiListener(settings, sink, tracker=CallTracker(), action_timeout=2.0,
                       auth_retry_seconds=0.1)


@pytest.mark.parametrize("restarted", [True, False], ids=["crash", "same-asterisk"])
async def test_a_session_lost_under_a_call(restarted: bool) -> None:
    sink = ListSink()
    async with fake_asterisk() as server, real_clock_listener(server.port, sink) as ami:
        async with asyncio.timeout(5):
            await ami.wait_ready()
        await server.send_frames(ABANDONED[:3])  # a caller arrives, and is live
        await eventually(lambda: bool(sink.of(CallStarted)))
        (started,) = sink.of(CallStarted)
        if restarted:
            server.uptime = 0  # the Asterisk that greets next started after the loss
        before = datetime.now(UTC)
        server.drop()  # no Shutdown, no Hangup: the session just ends
        after = datetime.now(UTC)
        await eventually(lambda: server.logins == 2)
        await eventually(lambda: bool(sink.of(CallVanished)))
        (vanished,) = sink.of(CallVanished)
        if restarted:
            (returned,) = sink.of(AsteriskReturned)
            assert (returned.outage, returned.calls_cut) == (OutageKind.CRASH.value, 1)
            assert sink.of(CallCut) == [
                CallCut(started.call_id, CutReason.ASTERISK_CRASH.value, vanished.at)]
            # Ended when the session was lost, not when the resync noticed.
            assert before <= vanished.at <= returned.lost_at
            assert returned.lost_at < returned.at
        else:
            assert sink.of(AsteriskReturned) == [] and sink.of(CallCut) == []
            assert vanished.at > after  # an ordinary vanish: when the resync noticed


async def test_an_asterisk_that_refuses_every_reconnection_has_its_calls_cut() -> None:
    """Asterisk killed and not back: once every reconnection has been refused for
    vanish_check_seconds, the live call is cut at the loss, without waiting for Asterisk; its
    return (a new process) counts it and cuts nothing twice."""
    sink = ListSink()
    server = FakeAsterisk()
    await server.start()
    port = server.port
    settings = Settings(ami_host="127.0.0.1", ami_port=port, ami_username=USERNAME,
                        ami_secret=SECRET, ami_reconnect_seconds=0.05, vanish_check_seconds=5)
    async with AmiListener(settings, sink, tracker=CallTracker(), action_timeout=2.0,
                           auth_retry_seconds=0.1) as ami:
        try:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            await server.send_frames(ABANDONED[:3])
            await eventually(lambda: bool(sink.of(CallStarted)))
            (started,) = sink.of(CallStarted)
            before = datetime.now(UTC)
            await server.close()  # nothing listens on the port any more: refused
            after = datetime.now(UTC)
            await eventually(lambda: bool(sink.of(CallCut)), 15.0)
            cut_at = datetime.now(UTC)
            assert (cut_at - after).total_seconds() >= 4.5  # not before the bound
            (vanished,) = sink.of(CallVanished)
            assert sink.of(CallCut) == [
                CallCut(started.call_id, CutReason.ASTERISK_CRASH.value, vanished.at)]
            assert before <= vanished.at <= after  # ended at the loss
            assert sink.of(AsteriskReturned) == []  # Asterisk is not back
        finally:
            server = FakeAsterisk()
            server.uptime = 0  # a new process
            await server.start(port)
        try:
            await eventually(lambda: bool(sink.of(AsteriskReturned)), 10.0)
            (returned,) = sink.of(AsteriskReturned)
            assert (returned.outage, returned.calls_cut) == (OutageKind.CRASH.value, 1)
            async with asyncio.timeout(5):
                await ami.wait_ready()
            assert len(sink.of(CallCut)) == 1 and len(sink.of(CallVanished)) == 1
        finally:
            await server.close()


def test_only_a_connection_refused_at_every_address_says_asterisk_is_gone() -> None:
    assert refused(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5038)"))
    assert refused(OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5038, "
                           "0, 0), [Errno 111] Connect call failed ('127.0.0.1', 5038)"))
    assert not refused(OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', "
                               "5038, 0, 0), [Errno 113] No route to host"))
    assert not refused(TimeoutError())
    assert not refused(OSError(113, "No route to host"))


async def test_a_resync_refused_while_asterisk_loads_its_modules_is_retried_soon(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    # Asterisk takes AMI logins before app_queue has registered QueueStatus: a restart's first
    # resync is refused with "Invalid/unknown command". That is retried at the normal pace, not
    # after auth_retry_seconds; a module that never comes is retried at the slow pace.
    monkeypatch.setattr("telephony.ami.listener.LOADING_RETRIES", 3)
    async with fake_asterisk() as server:
        server.unknown = {"queuestatus"}
        settings = Settings(ami_host="127.0.0.1", ami_port=server.port, ami_username=USERNAME,
                            ami_secret=SECRET, ami_reconnect_seconds=0.05)
        async with AmiListener(settings, ListSink(), tracker=CallTracker(), action_timeout=2.0,
                               auth_retry_seconds=30.0):
            await eventually(lambda: server.logins == 4, 5.0)  # 3 quick retries
            await eventually(lambda: "reconnecting in 30.0 s" in caplog.text, 5.0)
            paces = [r.getMessage().rsplit("reconnecting in ", 1)[1]
                     for r in caplog.records if "AMI resync failed" in r.getMessage()]
            assert paces == ["0.1 s to try again"] * 3 + ["30.0 s to try again"]
            server.unknown.clear()
    async with fake_asterisk() as server:
        server.unknown = {"queuestatus"}
        settings = Settings(ami_host="127.0.0.1", ami_port=server.port, ami_username=USERNAME,
                            ami_secret=SECRET, ami_reconnect_seconds=0.05)
        async with AmiListener(settings, ListSink(), tracker=CallTracker(), action_timeout=2.0,
                               auth_retry_seconds=30.0) as ami:
            await eventually(lambda: server.logins >= 2, 5.0)
            server.unknown.clear()  # app_queue is in
            async with asyncio.timeout(5):
                await ami.wait_ready()
