"""The AMI listener and its recorder run on a thread and loop of their own
(telephony/ami/threaded.py): while the main loop, where HTTP, the reports and the console
run, is held, a call's AMI events are still read, tracked and written to PostgreSQL; once it
runs again its observers, hooks and subscribers get everything, on the main loop, in the
listener's order, exactly once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from panoramisk.message import Message

from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.ami.testing import FakeAsterisk, ListSink, fake_asterisk
from telephony.ami.threaded import ThreadedListener
from telephony.ami.tracker import QueueSnapshot
from telephony.app import running_line
from telephony.calls.facts import CallEnded, CallFact
from telephony.core.threads import LoopThread
from telephony.settings import Settings
from tests.support.ami import ABANDONED, ANSWERED, CALLER, eventually, expected_facts, listener
from tests.support.db import fetch

HOLD = 1.5  # how long the main loop is held, as a long report or a stalled handler would
WAIT = 10.0


@pytest.fixture
async def asterisk(line_settings: Settings) -> AsyncIterator[FakeAsterisk]:
    async with fake_asterisk(line_settings.ami_port) as server:
        yield server


class MainSide:
    """A main-loop observer, hook and subscriber: what each heard, in one log, and on which
    thread."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.facts: list[CallFact] = []
        self.persisted: list[CallFact] = []
        self.threads: set[str] = set()

    def _heard(self, what: str, detail: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.log.append((what, detail))

    def recorded(self, facts: Sequence[CallFact]) -> None:
        self.facts.extend(facts)
        for fact in facts:
            self._heard("fact", type(fact).__name__)

    def resynced(self, queues: QueueSnapshot | None) -> None:
        self._heard("resync", "")

    def after_persisted(self, facts: Sequence[CallFact]) -> None:
        self.persisted.extend(facts)
        self._heard("persisted", str(len(facts)))

    def hangup(self, event: Message) -> None:
        self._heard("event", str(event.get("Event")))


def stored_within(dsn: str, call_id: str, bound: float) -> float | None:
    """From a plain thread (the main loop is held): seconds until ``call_id`` is stored as
    ended, or None if it is not within ``bound``."""

    async def poll() -> float | None:
        began = time.monotonic()
        while time.monotonic() - began < bound:
            rows = await fetch(dsn, "SELECT 1 FROM calls WHERE call_id = $1 AND ended_at IS "
                                    "NOT NULL", call_id)
            if rows:
                return time.monotonic() - began
            await asyncio.sleep(0.02)
        return None

    return asyncio.run(poll())


async def test_facts_reach_the_database_while_the_main_loop_is_held(
    line_settings: Settings, asterisk: FakeAsterisk, database_dsn: str
) -> None:
    async with running_line(line_settings) as line:
        main = MainSide()
        async with asyncio.timeout(WAIT):
            await line.listener.wait_ready()
        line.listener.observe(main)
        line.listener.after_persisted(main.after_persisted)
        line.listener.subscribe("Hangup", main.hangup)
        # Subscribed above, before anything sent after it (both cross in order).
        await line.listener.send_action({"Action": "QueueAdd", "Queue": "medical",
                                         "Interface": "PJSIP/op1001"})
        watcher = asyncio.get_running_loop().run_in_executor(
            None, stored_within, database_dsn, CALLER, WAIT)
        await asterisk.send_frames(ANSWERED)  # in the socket before the hold
        began = time.monotonic()
        # Blocks the main loop on purpose: the stall under test, not a wait for something.
        time.sleep(HOLD)  # noqa: ASYNC251
        held = time.monotonic() - began
        nothing_yet = list(main.log)  # the main loop's callbacks wait for it
        stored = await watcher
        async with asyncio.timeout(WAIT):
            # Polling, not an Event: the condition is the hook's list.
            while not main.facts or main.persisted[-len(main.facts):] != main.facts:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert stored is not None, "the call never reached the database"
    assert stored < held, f"the call reached the database {stored:.2f} s in, after the hold"
    assert nothing_yet == []
    assert main.threads == {threading.main_thread().name}
    # The listener's facts, in its order, once each (the tracker's clock differs).
    expected = expected_facts(ANSWERED)
    assert [(type(f), getattr(f, "call_id", None)) for f in main.facts] == \
        [(type(f), getattr(f, "call_id", None)) for f in expected]
    # Persisted once each, after what the resync had handed over before.
    assert not any(fact in main.facts for fact in main.persisted[:-len(main.facts)])
    # A subscriber hears the hang-up before the facts tracked from it.
    events = [i for i, entry in enumerate(main.log) if entry == ("event", "Hangup")]
    (ended,) = [i for i, entry in enumerate(main.log) if entry == ("fact", CallEnded.__name__)]
    assert events and events[0] < ended



async def test_the_main_loop_hears_everything_in_order_and_its_actions_cross(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def recorded(self, facts: Sequence[CallFact]) -> None:
            raise RuntimeError("observer bug")

        def resynced(self, queues: QueueSnapshot | None) -> None:
            raise RuntimeError("observer bug")

    sink = ListSink()
    main = MainSide()
    thread = LoopThread("ami-under-test")
    await thread.start()
    try:
        async with fake_asterisk() as server:
            ami = ThreadedListener(listener(server.port, sink), thread)
            ami.observe(Broken())
            ami.observe(main)
            ami.after_persisted(main.after_persisted)
            ami.subscribe("Hangup", main.hangup)
            await ami.start()
            try:
                async with asyncio.timeout(WAIT):
                    await ami.wait_ready()
                reply = await ami.send_action({"Action": "QueueAdd", "Queue": "medical",
                                               "Interface": "PJSIP/op1001"})
                assert reply.success
                with pytest.raises(AmiActionRefusedError, match="Interface not found"):
                    await ami.send_action({"Action": "QueuePause", "Interface": "PJSIP/x"})
                with caplog.at_level(logging.ERROR, "telephony.ami"):
                    await server.send_frames([*ANSWERED, *ABANDONED])
                    expected = expected_facts([*ANSWERED, *ABANDONED])
                    await eventually(lambda: len(main.persisted) >= len(expected))
            finally:
                await ami.stop()
    finally:
        await thread.stop()
    with pytest.raises(AmiActionError, match="not running"):
        await ami.send_action({"Action": "Ping"})
    assert main.facts == sink.facts == expected
    assert main.persisted == expected
    assert main.threads == {threading.main_thread().name}
    assert [entry for entry in main.log if entry[0] == "resync"] == [("resync", "")]
    hangups = [i for i, entry in enumerate(main.log) if entry == ("event", "Hangup")]
    ends = [i for i, entry in enumerate(main.log) if entry == ("fact", CallEnded.__name__)]
    assert len(ends) == 2 and len(hangups) >= 2 and hangups[0] < ends[0]
    assert any("fact observer" in r.getMessage() for r in caplog.records)
