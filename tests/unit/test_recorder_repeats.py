"""What a spool replay leaves out of a restarted line's resync (``without_repeats``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.recorder import without_repeats

T = datetime(2024, 11, 23, 7, 0, tzinfo=UTC)
CALL, OTHER = "1732345678.1", "1732345690.2"


def started(call_id: str) -> CallStarted:
    return CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112", T)


def test_the_resyncs_start_and_join_of_a_stored_waiting_call_are_left_out() -> None:
    again = QueueJoined(CALL, "medical", 1, T + timedelta(seconds=9))
    ended = CallEnded(CALL, 16, "Normal Clearing", T + timedelta(seconds=30))
    assert without_repeats([started(CALL), again, ended], {CALL}, {(CALL, "medical")}) \
        == [ended]


def test_new_waits_and_other_calls_stay() -> None:
    facts: list[CallFact] = [
        started(CALL),
        QueueJoined(CALL, "medical", 1, T),  # the store had it in no queue: a new wait
        QueueLeft(CALL, "medical", 1, T + timedelta(seconds=5)),
        QueueJoined(CALL, "medical", 1, T + timedelta(seconds=6)),  # back again: new
        QueueJoined(CALL, "medical", 1, T + timedelta(seconds=7)),  # that wait again
        QueueAbandoned(CALL, "medical", 1, 1, 3, T + timedelta(seconds=8)),
        started(OTHER),  # its start is not stored: it stays
        QueueJoined(OTHER, "fire", 1, T),  # a wait the store has: left out
        QueueJoined(OTHER, "police", 1, T),
    ]
    assert without_repeats(facts, {CALL}, {(OTHER, "fire")}) == [
        facts[1], facts[2], facts[3], facts[5], facts[6], facts[8]]
