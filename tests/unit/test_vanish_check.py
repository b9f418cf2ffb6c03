"""The vanish check's rule (calls the store has open that Asterisk no longer has and the
tracker does not follow) and its schedule (periodic; retried until the store answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from telephony.ami.actions import AmiActionError
from telephony.ami.tracker import CallTracker
from telephony.ami.vanish import VanishWatch
from telephony.calls.facts import CallVanished
from tests.support.ami import NOW, eventually


def channel(uid: str) -> dict[str, str]:
    return {"Event": "CoreShowChannel", "Channel": f"PJSIP/carrier-{uid[-4:]}",
            "Context": "siaga112-queue", "Exten": "s", "Uniqueid": uid, "Linkedid": uid,
            "CallerIDNum": "081234567890", "Duration": "00:01:00"}


def reply(*uids: str, items: int | None = None) -> list[dict[str, str]]:
    count = len(uids) if items is None else items
    return [*(channel(uid) for uid in uids),
            {"Event": "CoreShowChannelsComplete", "EventList": "Complete",
             "ListItems": str(count)}]


def tracker() -> CallTracker:
    return CallTracker(clock=lambda: NOW)


def test_open_calls_asterisk_no_longer_has_vanish_once() -> None:
    t = tracker()
    outcome = t.vanished(reply("1.2"), {"1.1", "1.2"})
    assert outcome.facts == [CallVanished("1.1", NOW)] and outcome.rejected == []
    # The store may still list it until the fact is written: not declared twice.
    assert t.vanished(reply("1.2"), {"1.1", "1.2"}).facts == []


def test_calls_the_tracker_follows_or_saw_end_are_left_to_their_events() -> None:
    t = tracker()
    for uid in ("2.1", "2.2"):
        t.handle({**channel(uid), "Event": "Newchannel", "Context": "from-carrier",
                  "Exten": "112"})
    t.handle({**channel("2.2"), "Event": "Hangup", "Cause": "16"})
    # Its Hangup is still on its way (queued after Asterisk's answer), or was tracked.
    assert t.vanished(reply(), {"2.1", "2.2"}).facts == []
    assert t.live_calls == {"2.1"}


def test_a_reply_not_whole_declares_nothing() -> None:
    outcome = tracker().vanished(reply("3.2", items=2), {"3.1"})
    assert outcome.facts == [] and outcome.rejected
    broken = [{"Event": "CoreShowChannel", "Uniqueid": "bad id\n"}, *reply(items=1)]
    outcome = tracker().vanished(broken, {"3.1"})
    assert outcome.facts == [] and outcome.rejected


class Port:
    """The listener as the watch sees it."""

    def __init__(self) -> None:
        self.channels: list[dict[str, str]] = reply()
        self.asked = 0
        self.checked: list[set[str]] = []
        self.refuse = False
        self.resynced = True  # this session's resync has run
        self.resync_incomplete = False
        self.resyncs_requested = 0

    def request_resync(self) -> None:
        self.resyncs_requested += 1
        self.resync_incomplete = False  # the listener's next resync reads the store

    async def send_list_action(self, action: Mapping[str, str]) -> list[Any]:
        assert action == {"Action": "CoreShowChannels"}
        self.asked += 1
        if self.refuse:
            raise AmiActionError("CoreShowChannels: not logged in to Asterisk")
        return list(self.channels)

    def vanish_check(self, channels: Sequence[Any], open_call_ids: Collection[str]) -> int:
        self.checked.append(set(open_call_ids))
        return 0


class Store:
    def __init__(self) -> None:
        self.open: set[str] | None = None  # None: the database cannot say
        self.asked = 0

    async def open_calls(self) -> set[str] | None:
        self.asked += 1
        return None if self.open is None else set(self.open)


async def test_asterisk_is_asked_only_when_the_store_has_open_calls() -> None:
    port, store = Port(), Store()
    watch = VanishWatch(port, store.open_calls, interval=60, retry=1)
    assert not await watch.check() and port.asked == 0  # the store is away
    store.open = set()
    assert await watch.check() and port.asked == 0  # nothing open: nothing to check
    store.open = {"4.1"}
    port.refuse = True
    assert not await watch.check() and port.checked == []  # AMI away: later
    port.refuse = False
    assert await watch.check() and port.checked == [{"4.1"}]


async def test_the_check_runs_soon_after_the_store_comes_back_then_periodically() -> None:
    port, store = Port(), Store()
    watch = VanishWatch(port, store.open_calls, interval=0.3, retry=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await eventually(lambda: store.asked >= 3)  # retried at the short pace while away
        assert port.checked == []
        store.open = {"5.1"}
        await eventually(lambda: port.checked == [{"5.1"}], 0.2)  # within a few retries
        asked = store.asked
        await eventually(lambda: len(port.checked) == 2, 1.0)  # the next period
        assert store.asked == asked + 1
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_a_resync_that_could_not_read_the_store_is_repeated_once_it_answers() -> None:
    # serve started during a database outage: its resync neither closed missed hang-ups nor
    # backfilled from the queue_log; a whole resync does both, so the watch asks for one.
    port, store = Port(), Store()
    port.resync_incomplete = True
    watch = VanishWatch(port, store.open_calls, interval=60, retry=1)
    assert not await watch.check() and port.resyncs_requested == 0  # the store is still away
    store.open = {"6.1"}
    assert not await watch.check() and port.resyncs_requested == 1 and port.asked == 0
    assert await watch.check() and port.resyncs_requested == 1 and port.checked == [{"6.1"}]


async def test_nothing_is_checked_before_the_sessions_resync_has_run() -> None:
    # The resync's backfill ends from the queue_log the calls that ended while the line was
    # away; checked before it, they would vanish first.
    port, store = Port(), Store()
    store.open = {"7.1"}
    port.resynced = False
    watch = VanishWatch(port, store.open_calls, interval=60, retry=1)
    assert not await watch.check() and port.asked == 0 and port.checked == []
    port.resynced = True
    assert await watch.check() and port.checked == [{"7.1"}]


async def test_a_resync_that_could_not_read_the_store_is_seen_before_the_next_period() -> None:
    # The AMI session came back while the database was away, between two periodic checks:
    # the store back seconds later, the watch asked for the resync at once, not up to a
    # period (a minute) later.
    port, store = Port(), Store()
    store.open = set()
    watch = VanishWatch(port, store.open_calls, interval=60, retry=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await eventually(lambda: store.asked == 1)  # checked; the next period is a minute away
        port.resync_incomplete = True
        await eventually(lambda: port.resyncs_requested == 1, 1.0)
    finally:
        task.cancel()
        await asyncio.wait([task])
