"""The outage rules (telephony/calls/outages.py): which calls Asterisk's restart or crash cut,
when each was last seen, and the outage recorded; and the tracker's two events behind them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from telephony.ami.tracker import CallTracker
from telephony.calls.facts import (
    AsteriskBooted,
    AsteriskReturned,
    AsteriskShutdown,
    CallCut,
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    LegCut,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    QueueJoined,
)
from telephony.calls.outages import (
    BURST_GAP,
    SHUTDOWN_WINDOW,
    CutReason,
    OutageKind,
    OutageWatch,
    burst_before,
    rebooted,
)
from telephony.metrics.calls import CallCounter

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
BOOT = T0 - timedelta(hours=3)  # the first Asterisk's start


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def started(call_id: str, at: float) -> CallStarted:
    return CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}", "0812", "", "112", s(at))


def greeting(at: float, booted: datetime) -> AsteriskBooted:
    return AsteriskBooted(int((s(at) - booted).total_seconds()), s(at))


def watching(*facts: CallFact) -> OutageWatch:
    """A watch that followed the first session's greeting, then ``facts``."""
    watch = OutageWatch()
    assert watch.follow([greeting(0, BOOT), *facts]) == list(facts)  # greetings stop here
    return watch


def extra(watch: OutageWatch, facts: Sequence[CallFact]) -> list[CallFact]:
    """What the watch adds to (or changes in) ``facts``."""
    out = watch.follow(facts)
    return [fact for fact in out if fact not in facts]


# -- a restart: the hang-up burst before Shutdown ----------------------------------------------


def test_burst_is_the_run_of_ends_just_before_the_shutdown() -> None:
    ends = [("early", s(1)), ("a", s(10)), ("b", s(10.4)), ("c", s(10.5))]
    assert burst_before(ends, s(11.6)) == [("c", s(10.5)), ("b", s(10.4)), ("a", s(10))]
    # A normal hang-up more than a gap before the burst is not part of it.
    assert ("early", s(1)) not in burst_before(ends, s(11.6))
    # Nothing ended close enough before the Shutdown: nothing was cut by it.
    assert burst_before(ends, s(10.5) + SHUTDOWN_WINDOW + timedelta(seconds=0.1)) == []
    # Ends after the Shutdown (none should be) are not counted.
    assert burst_before([("late", s(20))], s(11)) == []
    assert BURST_GAP < SHUTDOWN_WINDOW


def test_core_restart_now_cuts_the_calls_hung_up_just_before_the_shutdown() -> None:
    watch = watching(started("talk", 1), OperatorAnswered("talk", "fire", "PJSIP/op1", 3, 1, s(4)),
                     started("wait", 5), QueueJoined("wait", "fire", 1, s(6)),
                     started("done", 2), CallEnded("done", 16, "Normal Clearing", s(7)))
    hangups: list[CallFact] = [CallEnded("talk", 16, "Normal Clearing", s(60)),
                               CallEnded("wait", 0, "Unknown", s(60.002))]
    assert extra(watch, hangups) == []  # a hang-up alone says nothing yet
    shutdown = AsteriskShutdown(True, s(61.1))
    assert extra(watch, [shutdown]) == [
        CallCut("talk", CutReason.ASTERISK_RESTART.value, s(60)),
        CallCut("wait", CutReason.ASTERISK_RESTART.value, s(60.002))]
    watch.lost(s(61.1), s(61.1))
    back = greeting(63, s(62.5))
    assert extra(watch, [back]) == [AsteriskReturned(
        OutageKind.RESTART.value, s(61.1), s(61.1), s(63), 2, s(63))]
    # A replayed Shutdown cuts nothing twice.
    assert extra(watch, [shutdown]) == []


def test_core_stop_is_an_outage_of_its_own_kind() -> None:
    watch = watching()
    watch.follow([AsteriskShutdown(False, s(10))])
    watch.lost(s(10), s(10))
    (returned,) = extra(watch, [greeting(300, s(299))])
    assert isinstance(returned, AsteriskReturned) and returned.outage == OutageKind.STOP.value


def test_calls_still_live_at_a_shutdown_are_cut_when_asterisk_is_back() -> None:
    """Asterisk gave up waiting for a channel (Shutdown: Uncleanly)."""
    watch = watching(started("stuck", 1))
    watch.follow([AsteriskShutdown(True, s(30))])
    watch.lost(s(30), s(30))
    (returned,) = extra(watch, [greeting(40, s(39))])
    assert isinstance(returned, AsteriskReturned) and returned.calls_cut == 1
    assert extra(watch, [CallVanished("stuck", s(41))]) == [
        CallVanished("stuck", s(30)), CallCut("stuck", CutReason.ASTERISK_RESTART.value, s(30))]


# -- the legs the line placed (call-backs, transfers) ------------------------------------------


def leg(leg_id: int, state: str, at: float, cause: int = 0) -> LegProgressed:
    return LegProgressed(leg_id, state, "ANSWER" if state == "ended" else "", f"ch{leg_id}",
                         s(at), cause)


def test_a_restart_cuts_the_legs_hung_up_in_its_burst() -> None:
    """A call-back talking when ``core restart now`` hung every channel up: its end came in
    the burst, as the calls' did; one that ended by itself earlier is not cut."""
    watch = watching(leg(7, "dialling", 1), leg(7, "answered", 3),
                     leg(8, "dialling", 2), leg(8, "answered", 4), leg(8, "ended", 20, 16))
    assert extra(watch, [leg(7, "ended", 60, 16)]) == []
    shutdown = AsteriskShutdown(True, s(61))
    assert extra(watch, [shutdown]) == [LegCut(7, CutReason.ASTERISK_RESTART.value, s(60))]
    assert extra(watch, [shutdown]) == []  # replayed: cut once


def test_a_crash_cuts_the_legs_not_ended_at_the_end_of_the_lost_session() -> None:
    watch = watching(leg(7, "dialling", 1), leg(7, "answered", 3),
                     leg(9, "dialling", 2), leg(9, "ended", 5))
    watch.lost(s(50), s(50))
    returned, cut = extra(watch, [greeting(53, s(52.6))])
    assert isinstance(returned, AsteriskReturned) and returned.calls_cut == 0
    assert cut == LegCut(7, CutReason.ASTERISK_CRASH.value, s(50))
    # A new session of the same Asterisk (only the connection was lost) cuts nothing.
    watch = watching(leg(7, "answered", 3))
    watch.lost(s(50), s(50))
    assert extra(watch, [greeting(53, BOOT)]) == []


# -- a crash: the session lost, a new Asterisk at the next greeting ----------------------------


def test_a_crash_cuts_every_live_call_at_the_end_of_the_lost_session() -> None:
    watch = watching(started("talk", 1), OperatorAnswered("talk", "fire", "PJSIP/op1", 3, 1, s(4)),
                     started("wait", 5), QueueJoined("wait", "fire", 1, s(6)))
    watch.lost(s(50), s(50))  # Asterisk's process died: its socket closed at once
    watch.lost(s(51), s(51))  # a failed reconnection learns nothing more
    (returned,) = extra(watch, [greeting(53, s(52.6))])
    assert returned == AsteriskReturned(OutageKind.CRASH.value, s(50), s(50), s(53), 2, s(53))
    assert watch.live_calls == frozenset()
    # The resync declares them vanished at its own time; they ended when last seen.
    resync: list[CallFact] = [CallVanished("talk", s(54)), CallVanished("wait", s(54))]
    assert watch.follow(resync) == [
        CallVanished("talk", s(50)), CallCut("talk", CutReason.ASTERISK_CRASH.value, s(50)),
        CallVanished("wait", s(50)), CallCut("wait", CutReason.ASTERISK_CRASH.value, s(50))]


def test_an_asterisk_that_stays_away_has_its_calls_cut_before_it_returns() -> None:
    """Killed, and every reconnection refused: the tracker vanishes its calls (gone); each is
    cut at the end of the lost session, and the return counts them without cutting again."""
    watch = watching(started("talk", 1), started("ivr", 2))
    watch.lost(s(50), s(50))
    watch.gone()
    assert watch.follow([CallVanished("talk", s(110)), CallVanished("ivr", s(110))]) == [
        CallVanished("talk", s(50)), CallCut("talk", CutReason.ASTERISK_CRASH.value, s(50)),
        CallVanished("ivr", s(50)), CallCut("ivr", CutReason.ASTERISK_CRASH.value, s(50))]
    assert watch.live_calls == frozenset()
    (returned,) = extra(watch, [greeting(300, s(299))])
    assert returned == AsteriskReturned(OutageKind.CRASH.value, s(50), s(50), s(299), 2, s(300))
    # The new Asterisk's resync knows nothing more of them: a late vanish changes nothing.
    assert extra(watch, [CallVanished("talk", s(301))]) == []


def test_gone_without_a_lost_session_cuts_nothing() -> None:
    watch = watching(started("talk", 1))
    watch.gone()  # the listener never had a session to lose: nothing known of its calls
    assert extra(watch, [CallVanished("talk", s(9))]) == []
    assert watch.live_calls == frozenset()


def test_tracker_vanishes_every_call_it_follows_when_asterisk_is_gone() -> None:
    tracker = CallTracker(clock=lambda: s(100))
    tracker.handle({"Event": "Newchannel", "Uniqueid": "node1-1.1", "Linkedid": "node1-1.1",
                    "Channel": "PJSIP/carrier-00000001", "CallerIDNum": "0812",
                    "CallerIDName": "", "Exten": "112", "Context": "from-carrier"})
    assert tracker.live_calls == {"node1-1.1"}
    facts = tracker.asterisk_gone()
    assert facts[-1] == CallVanished("node1-1.1", s(100))
    assert tracker.live_calls == frozenset()
    assert tracker.asterisk_gone() == []


def test_a_silent_session_dates_the_cut_from_the_last_thing_heard() -> None:
    watch = watching(started("talk", 1))
    watch.lost(s(70), s(48))  # dropped for an unanswered Ping; last heard at 48
    watch.follow([greeting(90, s(88))])
    assert extra(watch, [CallVanished("talk", s(91))]) == [
        CallVanished("talk", s(48)), CallCut("talk", CutReason.ASTERISK_CRASH.value, s(48))]


def test_a_resync_before_the_greeting_is_cut_at_the_greeting() -> None:
    """Asterisk took the login before it was fully booted: the resync vanished the calls at
    its own time; the cut carries when they were last seen (the store moves the end back)."""
    watch = watching(started("talk", 1))
    watch.lost(s(50), s(50))
    assert extra(watch, [CallVanished("talk", s(55))]) == []
    (returned, cut) = extra(watch, [greeting(56, s(54))])
    assert isinstance(returned, AsteriskReturned) and returned.calls_cut == 1
    assert cut == CallCut("talk", CutReason.ASTERISK_CRASH.value, s(50))


def test_a_new_session_to_the_same_asterisk_cuts_nothing() -> None:
    watch = watching(started("talk", 1))
    watch.lost(s(50), s(50))  # the session only (a network hiccup, manager reload)
    assert extra(watch, [greeting(51, BOOT)]) == []
    # The call ended while the listener was away: an ordinary vanish.
    assert extra(watch, [CallVanished("talk", s(52))]) == []
    # And the duplicate greeting (the boot's broadcast) of a restart is no second outage.
    watch.lost(s(60), s(60))
    assert len(extra(watch, [greeting(62, s(61))])) == 1
    assert extra(watch, [greeting(62.001, s(61))]) == []


def test_without_a_session_before_it_a_greeting_cuts_nothing() -> None:
    """The listener started after Asterisk: it cannot know what Asterisk's end cut."""
    watch = OutageWatch()
    watch.follow([started("old", 1)])
    assert extra(watch, [greeting(10, s(9))]) == []


def test_calls_of_the_new_asterisk_are_not_cut() -> None:
    watch = watching(started("old", 1))
    watch.lost(s(50), s(50))
    (returned,) = extra(watch, [started("new", 55), greeting(56, s(54))])
    assert isinstance(returned, AsteriskReturned) and returned.calls_cut == 1
    assert watch.live_calls == {"new"}


def test_last_seen_is_the_latest_fact_and_ends_forget_the_call() -> None:
    watch = watching(started("c", 1), QueueJoined("c", "fire", 1, s(3)))
    assert watch.last_seen("c") == s(3)
    watch.follow([CallEnded("c", 16, "Normal Clearing", s(9)),
                  # AgentComplete may come after the caller's Hangup: the call stays ended.
                  OperatorCompleted("c", "fire", "PJSIP/op1", 2, 5, "caller", s(9.1))])
    assert watch.last_seen("c") is None and watch.live_calls == frozenset()


@pytest.mark.parametrize(("previous", "booted", "restarted"), [
    (None, s(0), False),
    (s(0), s(1.5), False),  # whole-second Uptime, read a moment late
    (s(0), s(3), True),
    (s(0), s(-30), True),  # a clock stepped back: still another start
])
def test_rebooted(previous: datetime | None, booted: datetime, restarted: bool) -> None:
    assert rebooted(previous, booted) is restarted


# -- the tracker's part: Shutdown and FullyBooted as facts ---------------------------------------


def test_tracker_reports_shutdown_and_greeting() -> None:
    tracker = CallTracker(clock=lambda: T0)
    assert tracker.handle({"Event": "Shutdown", "Shutdown": "Cleanly", "Restart": "True",
                           "Timestamp": "1796450000.500000"}) == [
        AsteriskShutdown(True, datetime.fromtimestamp(1796450000.5, UTC))]
    assert tracker.handle({"Event": "Shutdown", "Shutdown": "Uncleanly",
                           "Restart": "False"}) == [AsteriskShutdown(False, T0)]
    assert tracker.handle({"Event": "FullyBooted", "Status": "Fully Booted", "Uptime": "42",
                           "LastReload": "42"}) == [AsteriskBooted(42, T0)]
    assert tracker.handle({"Event": "FullyBooted", "Status": "Fully Booted"}) == []


def test_cuts_and_outages_are_counted() -> None:
    registry = CollectorRegistry()
    counter = CallCounter(registry, lambda: ["112"])
    counter.recorded([CallCut("a", CutReason.ASTERISK_CRASH.value, s(1)),
                      CallCut("b", CutReason.ASTERISK_CRASH.value, s(1)),
                      AsteriskReturned(OutageKind.CRASH.value, s(0), s(0), s(2), 2, s(3))])
    assert registry.get_sample_value(
        "siaga112_calls_cut_total", {"reason": "asterisk_crash"}) == 2
    assert registry.get_sample_value(
        "siaga112_asterisk_outages_total", {"kind": "crash"}) == 1


def test_every_cut_reason_and_outage_kind_is_counted_from_zero() -> None:
    # Prometheus' increase() sees nothing in a series that first appears at 1, so the alert
    # on cut calls would miss the first crash of a line's life without these zeros.
    registry = CollectorRegistry()
    CallCounter(registry, lambda: ["112"])
    for reason in CutReason:
        assert registry.get_sample_value(
            "siaga112_calls_cut_total", {"reason": reason.value}) == 0
    for kind in OutageKind:
        assert registry.get_sample_value(
            "siaga112_asterisk_outages_total", {"kind": kind.value}) == 0


def test_a_fail_open_of_a_call_not_seen_starting_is_counted_from_zero() -> None:
    # Its line is unknown; that series appeared at 1, so the fail-open alert (an increase())
    # missed it.
    registry = CollectorRegistry()
    counter = CallCounter(registry, lambda: ["112"])
    assert registry.get_sample_value("siaga112_ivr_failopen_total", {"line": "unknown"}) == 0
    counter.recorded([IvrVariableSet("gone.1", "outcome", "failopen", s(1))])
    assert registry.get_sample_value("siaga112_ivr_failopen_total", {"line": "unknown"}) == 1
