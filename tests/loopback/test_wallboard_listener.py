"""The AMI listener feeds the wallboard (``AmiListener.observe``) against a fake Asterisk on a
loopback socket: facts after the store has them, the whole queue picture on every resync, so
the board is right after a reconnection; a failing observer costs nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

import pytest

from telephony.ami.testing import ListSink, fake_asterisk
from telephony.ami.tracker import QueueSnapshot
from telephony.calls.facts import CallFact
from telephony.wallboard.state import LiveBoard
from tests.support.ami import (
    ANSWERED,
    NOW,
    eventually,
    expected_facts,
    listener,
    live_call_snapshot,
)

CALLER = "1732345999.5"


class BoardObserver:
    """The wallboard's side of the hook: a live board, and what it saw when."""

    def __init__(self, sink: ListSink) -> None:
        self.sink = sink
        self.board = LiveBoard(wrapup_seconds=0)
        self.recorded_facts: list[CallFact] = []
        self.snapshots: list[QueueSnapshot | None] = []
        self.board_first = True
        self.persisted_facts: list[CallFact] = []
        self.stored_when_persisted = True

    def recorded(self, facts: Sequence[CallFact]) -> None:
        # The board hears of facts before the store has them: it never waits for the database.
        self.board_first &= not any(fact in self.sink.facts for fact in facts)
        self.recorded_facts.extend(facts)
        self.board.apply(facts)

    def persisted(self, facts: Sequence[CallFact]) -> None:
        # What reads the store back (the wallboard's counters) is told once the store has them.
        self.stored_when_persisted &= all(fact in self.sink.facts for fact in facts)
        self.persisted_facts.extend(facts)

    def resynced(self, queues: QueueSnapshot | None) -> None:
        self.snapshots.append(queues)
        self.board.resync(queues)


def waiting(observer: BoardObserver) -> list[str]:
    view = observer.board.view(NOW + timedelta(seconds=10))
    return [q.queue for q in view.queues for _ in q.callers]


async def test_the_board_follows_facts_and_every_resync() -> None:
    sink = ListSink()
    observer = BoardObserver(sink)
    async with fake_asterisk() as server:
        server.channels, server.status, server.queues = live_call_snapshot(CALLER)
        ami = listener(server.port, sink)
        ami.observe(observer)
        ami.after_persisted(observer.persisted)
        async with ami:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            assert len(observer.snapshots) == 1
            assert waiting(observer) == ["medical"]
            # Live events reach the board first, in the order the store gets them.
            await server.send_frames(ANSWERED)
            expected = expected_facts(ANSWERED)
            await eventually(lambda: len(observer.recorded_facts) >= len(sink.facts) > 0
                             and len(sink.facts) >= len(expected))
            assert observer.recorded_facts == sink.facts
            assert observer.board_first
            await eventually(lambda: observer.persisted_facts == sink.facts)
            assert observer.stored_when_persisted
            # Away, the caller was answered: Asterisk no longer lists the wait, and no
            # QueueCallerLeave reached us. The next resync's picture clears it.
            assert waiting(observer) == ["medical"]
            server.queues = []
            server.drop()
            await eventually(lambda: len(observer.snapshots) == 2)
            assert waiting(observer) == []


async def test_a_failing_observer_costs_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def recorded(self, facts: Sequence[CallFact]) -> None:
            raise RuntimeError("observer bug")

        def resynced(self, queues: QueueSnapshot | None) -> None:
            raise RuntimeError("observer bug")

    sink = ListSink()
    good = BoardObserver(sink)
    async with fake_asterisk() as server:
        ami = listener(server.port, sink)
        ami.observe(Broken())
        ami.observe(good)
        with caplog.at_level(logging.ERROR, "telephony.ami"):
            async with ami:
                async with asyncio.timeout(5):
                    await ami.wait_ready()
                await server.send_frames(ANSWERED)
                expected = expected_facts(ANSWERED)
                await eventually(lambda: len(good.recorded_facts) >= len(expected))
    assert sink.facts == expected
    assert good.snapshots and good.recorded_facts == expected
    assert any("fact observer" in r.getMessage() for r in caplog.records)
