"""The listener's side of items 3 and 4 against a fake Asterisk on a real socket: the vanish
watch closes calls the store has open and Asterisk no longer lists once the store answers
again, and a loss in the recorder makes the listener resync."""

from __future__ import annotations

import asyncio

from telephony.ami.testing import ListSink, fake_asterisk
from telephony.ami.vanish import VanishWatch
from telephony.calls.facts import CallVanished
from tests.support.ami import NOW, eventually, listener, live_call_snapshot


async def test_calls_the_store_has_open_vanish_once_it_answers_again() -> None:
    sink = ListSink()  # at the resync the store cannot say: no open call known
    store: dict[str, set[str] | None] = {"open": None}

    async def open_calls() -> set[str] | None:
        return store["open"]

    async with fake_asterisk() as server:
        channels, status, queues = live_call_snapshot("1700000000.7")
        server.channels, server.status, server.queues = channels, status, queues
        ami = listener(server.port, sink)
        async with ami:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            assert sink.of(CallVanished) == []
            watch = asyncio.create_task(
                VanishWatch(ami, open_calls, interval=60, retry=0.02).run())
            try:
                # The store back: a call it had open is gone, the live one stays.
                store["open"] = {"1700000000.3", "1700000000.7"}
                await eventually(lambda: bool(sink.of(CallVanished)))
            finally:
                watch.cancel()
                await asyncio.wait([watch])
    assert sink.of(CallVanished) == [CallVanished("1700000000.3", NOW)]
    assert server.names().count("CoreShowChannels") == 2  # the resync's, and the check's


async def test_a_requested_resync_asks_asterisk_again() -> None:
    async with fake_asterisk() as server:
        ami = listener(server.port, ListSink())
        async with ami:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            assert server.names().count("QueueStatus") == 1
            ami.request_resync()
            await eventually(lambda: server.names().count("QueueStatus") == 2)


class PutOffHistory:
    """A queue_log backfill that cannot run yet (the spool still holds facts)."""

    def __init__(self) -> None:
        self.postponed = True
        self.asked = 0

    async def catch_up(self, channels: object) -> None:
        self.asked += 1
        return None


async def test_open_calls_wait_for_a_put_off_backfill_before_they_vanish() -> None:
    # Vanished at once, a call the queue_log ends properly (cause, talk) once the spool is
    # written would keep the worse end; the resync leaves it open and another one follows.
    sink = ListSink(open_ids=["7.1"])
    history = PutOffHistory()
    async with fake_asterisk() as server:
        ami = listener(server.port, sink)
        ami.backfill_from(history)
        async with ami:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            assert history.asked == 1 and ami.resync_incomplete
            assert sink.of(CallVanished) == []
            history.postponed = False  # the spool is written
            ami.request_resync()
            await eventually(lambda: [f.call_id for f in sink.of(CallVanished)] == ["7.1"])
            assert history.asked == 2 and not ami.resync_incomplete


class HeldHistory:
    """A queue_log backfill that takes its time (a long log to read after a restart), until
    ``release``; it ends the calls in ``ends`` in the store, as the real one writes them."""

    def __init__(self, sink: ListSink, ends: set[str]) -> None:
        self.postponed = False
        self.asked = 0
        self.release = asyncio.Event()
        self._sink, self._ends = sink, ends

    async def catch_up(self, channels: object) -> None:
        self.asked += 1
        await self.release.wait()
        self._sink.preset_open -= self._ends
        return None


async def test_the_watch_waits_for_the_sessions_resync_before_declaring_a_call_vanished() -> None:
    # Trial 2026-12-06: the line SIGKILLed while a caller talked, the caller hung up while it
    # was down; on the restart the watch's first check ran during the resync, before its
    # backfill had written the call's end from the queue_log, and closed it as vanished (a
    # call_vanished event after the real end, the call's end "now" for a moment).
    sink = ListSink(open_ids=["7.1"])
    history = HeldHistory(sink, {"7.1"})
    async with fake_asterisk() as server:
        ami = listener(server.port, sink)
        ami.backfill_from(history)
        watch = VanishWatch(ami, sink.open_call_ids, interval=60, retry=0.02)
        async with ami:
            await eventually(lambda: history.asked == 1)  # the resync reads the log
            try:
                assert not await watch.check()  # not yet: ask again soon
            finally:
                history.release.set()
            async with asyncio.timeout(5):
                await ami.wait_ready()
            assert await watch.check()
    assert sink.of(CallVanished) == []
