"""The rules of an operator's wrap-up held on every node (telephony/cluster/wrapup.py)."""

from __future__ import annotations

import json
from typing import cast

import pytest

from telephony.cluster.peers import BUSY_STATE, NO_STATE, entity_id, state_request
from telephony.cluster.wrapup import (
    MAX_HELD,
    WRAPUP_EID,
    Changes,
    WrapHolds,
    WrapUp,
    completed_call,
    left_call,
    parse_wrapup,
    timed,
)
from telephony.cluster.wrapup_sync import WrapUpSync
from telephony.db.connection import Database
from tests.support.ami import RecordingAmi

WRAP = WrapUp("node1", "PJSIP/op1001", "information", 6, 1795427811.687069)


def holds() -> WrapHolds:
    return WrapHolds("node2", frozenset({"node1", "node3"}))


def test_an_announcement_reads_back_as_it_was_sent() -> None:
    assert WRAP.payload() == "node1 PJSIP/op1001 information 6 1795427811.687069"
    assert parse_wrapup(WRAP.payload()) == WRAP


@pytest.mark.parametrize(("payload", "reason"), [
    ("", "not a wrap-up announcement"),
    ("node1 PJSIP/op1001 information 6", "not a wrap-up announcement"),
    ("node1 PJSIP/op1001 information 6 1795427811.6 extra", "not a wrap-up announcement"),
    ("Node1 PJSIP/op1001 information 6 1795427811.6", "not a wrap-up announcement"),
    ("node1 PJSIP/op1001 information -6 1795427811.6", "not a wrap-up announcement"),
    ("node1 PJSIP/op1001 information 6 nan", "not a wrap-up announcement"),
    ("node1 PJSIP/op1001  information 6 1795427811.6", "not a wrap-up announcement"),
    ("node1 Local/op1001@x information 6 1795427811.6", "not an operator device"),
    ("node1 PJSIP/op1001;x=1 information 6 1795427811.6", "not an operator device"),
    ("node1 PJSIP/op1001 Information! 6 1795427811.6", "not a queue"),
    ("node1 PJSIP/op1001 information 0 1795427811.6", "out of 1-600"),
    ("node1 PJSIP/op1001 information 601 1795427811.6", "out of 1-600"),
    ("node1 PJSIP/op1001\ninformation 6 1795427811.6", "not a wrap-up announcement"),
])
def test_anything_but_a_well_formed_announcement_is_refused(payload: str, reason: str
                                                            ) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_wrapup(payload)


def test_an_agent_complete_gives_the_call_its_end_and_queue() -> None:
    event = {"Interface": "PJSIP/op1001", "Queue": "information",
             "Timestamp": "1795427811.687069"}
    assert completed_call(event, "node1", 1.0e9) == WrapUp(
        "node1", "PJSIP/op1001", "information", 0, 1795427811.687069)
    # No usable Timestamp (timestampevents off): the line's clock.
    assert completed_call({**event, "Timestamp": ""}, "node1", 1.5e9) == WrapUp(
        "node1", "PJSIP/op1001", "information", 0, 1.5e9)
    assert completed_call({**event, "Timestamp": "inf"}, "node1", 1.5e9) is not None
    # A member that is no operator's device, or no queue: nothing to share.
    assert completed_call({**event, "Interface": "Local/1001@agents"}, "node1", 1.5e9) is None
    assert completed_call({**event, "Queue": ""}, "node1", 1.5e9) is None


def test_the_queues_stored_wrapup_else_the_default_and_none_without_one() -> None:
    call = WrapUp("node1", "PJSIP/op1001", "fire", 0, 1.0e9)
    assert timed(call, 12, 5) == WrapUp("node1", "PJSIP/op1001", "fire", 12, 1.0e9)
    assert timed(call, None, 5) == WrapUp("node1", "PJSIP/op1001", "fire", 5, 1.0e9)
    assert timed(call, 0, 5) is None  # the admin took the wrap-up away
    assert timed(call, None, 0) is None
    assert timed(call, 10_000, 5) == WrapUp("node1", "PJSIP/op1001", "fire", 600, 1.0e9)


def test_a_peers_wrapup_is_held_then_released_when_its_seconds_have_passed() -> None:
    book = holds()
    assert book.announced(WRAP, now=100.0)
    assert book.due(100.0) == Changes(hold=("PJSIP/op1001",))
    assert book.due(100.5) == Changes()  # published once
    assert book.next_end() == 106.0
    assert book.due(105.9) == Changes()
    assert book.due(106.0) == Changes(release=("PJSIP/op1001",))
    assert book.next_end() is None and book.held() == []


def test_this_nodes_own_calls_and_strangers_are_not_held() -> None:
    book = holds()
    assert not book.announced(WrapUp("node2", "PJSIP/op1001", "information", 6, 1.0e9), 0.0)
    assert not book.announced(WrapUp("node9", "PJSIP/op1001", "information", 6, 1.0e9), 0.0)
    assert book.due(0.0) == Changes()


def test_a_newer_calls_wrapup_replaces_the_older_ones() -> None:
    book = holds()
    book.announced(WrapUp("node1", "PJSIP/op1001", "fire", 30, 1.0e9), now=0.0)
    book.due(0.0)
    # The operator's next call (on node3) ended at 40 s, its queue wraps up for 5 s: held
    # until 45 s, as app_queue's lastcall and lastqueue are replaced.
    book.announced(WrapUp("node3", "PJSIP/op1001", "information", 5, 1.0e9), now=40.0)
    assert book.due(40.0) == Changes(hold=("PJSIP/op1001",))
    assert book.ends_in("PJSIP/op1001", 40.0) == 5.0
    # A shorter queue's wrap-up announced during a longer one also replaces it.
    book.announced(WrapUp("node1", "PJSIP/op1001", "medical", 2, 1.0e9), now=41.0)
    assert book.next_end() == 43.0


def test_a_new_hold_during_a_release_is_a_hold() -> None:
    book = holds()
    book.announced(WRAP, now=0.0)
    book.due(0.0)
    changes = book.due(6.0)
    assert changes == Changes(release=("PJSIP/op1001",))
    book.announced(WRAP, now=6.1)
    book.failed(changes)  # the release was not taken: but the operator is held again
    assert book.due(6.1) == Changes(hold=("PJSIP/op1001",))


def test_what_asterisk_did_not_take_is_due_again() -> None:
    book = holds()
    book.announced(WRAP, now=0.0)
    book.announced(WrapUp("node1", "PJSIP/op1002", "fire", 2, 1.0e9), now=0.0)
    changes = book.due(0.0)
    assert changes.hold == ("PJSIP/op1001", "PJSIP/op1002")
    book.failed(changes)
    assert book.due(1.0) == changes
    # A hold that ended meanwhile is not held again: released.
    book.failed(changes)
    assert book.due(2.5) == Changes(hold=("PJSIP/op1001",), release=("PJSIP/op1002",))


def test_a_new_ami_session_releases_every_member_but_those_held_again() -> None:
    book = holds()
    book.announced(WRAP, now=0.0)
    book.due(0.0)
    book.relearn(["PJSIP/op1001", "PJSIP/op1002", "PJSIP/op1003", "Local/x@y"])
    assert book.due(1.0) == Changes(hold=("PJSIP/op1001",),
                                    release=("PJSIP/op1002", "PJSIP/op1003"))


def test_the_book_holds_a_bounded_number_of_devices() -> None:
    book = holds()
    for index in range(MAX_HELD):
        assert book.announced(WrapUp("node1", f"PJSIP/op{index}", "fire", 5, 1.0e9), 0.0)
    assert not book.announced(WrapUp("node1", "PJSIP/another", "fire", 5, 1.0e9), 0.0)
    assert book.announced(WrapUp("node1", "PJSIP/op0", "fire", 5, 1.0e9), 1.0)  # renewed


def test_the_states_published_under_the_wrapups_own_entity_id() -> None:
    assert entity_id("node1") != WRAPUP_EID
    assert Changes(("PJSIP/op1",), ("PJSIP/op2",)).states() == [
        ("PJSIP/op1", BUSY_STATE), ("PJSIP/op2", NO_STATE)]
    request = state_request(device="PJSIP/op1", state=BUSY_STATE, eid=WRAPUP_EID,
                            target=("127.0.0.12", 5070), source=("127.0.0.12", 40000))
    body = json.loads(request.decode().split("\r\n\r\n", 1)[1])
    assert body == {"type": "devicestate", "device": "PJSIP/op1", "state": "INUSE",
                    "cachable": 1, "eid": WRAPUP_EID}
    with pytest.raises(ValueError, match="not a state"):
        state_request(device="PJSIP/op1", state="NOT_INUSE", eid=WRAPUP_EID,
                      target=("127.0.0.12", 5070), source=("127.0.0.12", 40000))
    with pytest.raises(ValueError, match="not an entity id"):
        state_request(device="PJSIP/op1", state=BUSY_STATE, eid='x","eid":"y',
                      target=("127.0.0.12", 5070), source=("127.0.0.12", 40000))


def sync() -> WrapUpSync:
    """A node2 line's sync, not running: no database or Asterisk is touched."""
    return WrapUpSync(cast(Database, object()), RecordingAmi(), node="node2",
                      peers=["node1"], own_host="127.0.0.12", sip_port=5060,
                      default_seconds=5, clock=lambda: 100.0)


def test_a_bad_notification_is_one_log_line_and_holds_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    follower = sync()
    for payload in ("", "node1 PJSIP/op1001 information 6", "x" * 10_000,
                    "node1 PJSIP/op1001;evil information 6 1795427811.6",
                    "node9 PJSIP/op1001 information 6 1795427811.6"):
        caplog.clear()
        follower.notified(payload)
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1, caplog.records
        assert len(warnings[0].getMessage()) < 300
    # Its own announcement: its own app_queue's business, said nothing about.
    caplog.clear()
    follower.notified("node2 PJSIP/op1001 information 6 1795427811.6")
    assert caplog.records == []
    follower.notified(WRAP.payload())  # a peer's: held
    assert follower._holds.held() == ["PJSIP/op1001"]


def test_an_agent_complete_is_queued_for_announcing_only_for_an_operator() -> None:
    follower = sync()
    follower.agent_complete({"Interface": "Local/1@x", "Queue": "fire"})
    follower.agent_complete({"Interface": "PJSIP/op1001", "Queue": "fire",
                             "Timestamp": "1795427811.5"})
    assert follower._ended.qsize() == 1
    assert follower._ended.get_nowait().wrap == WrapUp(
        "node2", "PJSIP/op1001", "fire", 0, 1795427811.5)


def test_a_leave_starts_a_wrapup_whose_queue_is_not_known_yet() -> None:
    assert left_call("PJSIP/op1001", "node2", 1795427811.5) == WrapUp(
        "node2", "PJSIP/op1001", "", 0, 1795427811.5)
    assert left_call("Local/1@x", "node2", 1795427811.5) is None
