"""The rules for calls the cluster's front dispatched and no node recorded, and for records of
offers it withdrew (telephony/cluster/front.py): every value read from the front's table is
checked first."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from telephony.calls.facts import CallLost
from telephony.calls.ids import valid_call_id
from telephony.cluster.front import (
    LOST_SEQ_BASE,
    OFFER_SECONDS,
    FrontCall,
    NodeRecord,
    dispatched_at,
    lost_call,
    lost_calls,
    node_named,
    withdrawn_offers,
)
from telephony.settings import ClusterNode

NODES = (ClusterNode("node1", "127.0.0.11", 5061, 4574),
         ClusterNode("node2", "127.0.0.12", 5062, 4575))
WRITTEN = datetime(2026, 12, 5, 12, 0, 1, 500000, tzinfo=UTC)


def row(**changes: object) -> FrontCall:
    base = FrontCall(id=42, method="INVITE", callid="1-4242@127.0.0.1", sip_code="200",
                     sip_reason="OK", caller="081234567", line="112", node="sip:127.0.0.11:5061",
                     dispatched="1796472000.250000", recorded_at=WRITTEN)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_dispatched_call_becomes_its_nodes_lost_call() -> None:
    fact = lost_call(row(), NODES)
    assert fact == CallLost(
        call_id=f"node1-1796472000.{LOST_SEQ_BASE + 42}", sip_call_id="1-4242@127.0.0.1",
        node="node1", caller_number="081234567", line="112", reply="200 OK",
        at=datetime(2026, 12, 5, 12, 0, 0, 250000, tzinfo=UTC))
    assert valid_call_id(fact.call_id)
    assert fact.call_id.rpartition("-")[0] == "node1"  # counted as node1's call
    # Above any sequence number Asterisk gives out (a C int counted from 0).
    assert int(fact.call_id.rpartition(".")[2]) > 2**31


def test_the_same_row_gives_the_same_fact() -> None:
    assert lost_call(row(), NODES) == lost_call(row(), NODES)


@pytest.mark.parametrize("uri", ["sip:127.0.0.11:5062", "sip:127.0.0.13:5061", "127.0.0.11:5061",
                                 "sip:127.0.0.11:5061;transport=tcp", "", None])
def test_only_a_node_of_the_cluster_is_one(uri: str | None) -> None:
    assert node_named(uri, NODES) is None
    with pytest.raises(ValueError, match="no cluster node"):
        lost_call(row(node=uri), NODES)


@pytest.mark.parametrize("callid", ["", "a b@c", "a@b@c", "x" * 200, "a\r\nVia: x", "é@x"])
def test_a_malformed_call_id_makes_no_record(callid: str) -> None:
    with pytest.raises(ValueError, match="Call-ID is malformed") as caught:
        lost_call(row(callid=callid), NODES)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("caller", "stored"), [
    ("081234567", "081234567"), ("\u202e0812\x1b[31m", "0812[31m"), ("9" * 200, "9" * 80),
    (None, ""), ("<unknown>", ""), ("anonymous", "anonymous"),
])
def test_an_odd_caller_is_cleaned_as_the_tracker_cleans_one(caller: str | None,
                                                            stored: str) -> None:
    assert lost_call(row(caller=caller), NODES).caller_number == stored


@pytest.mark.parametrize(("line", "stored"), [("112", "112"), ("119", "119"), ("0112", "112"),
                                              ("", "112"), (None, "112"), ("1'19", "112"),
                                              ("+62119", "119"), ("0119", "119")])
def test_the_line_is_the_one_the_dialplan_gives(line: str | None, stored: str) -> None:
    assert lost_call(row(line=line), NODES).line == stored


@pytest.mark.parametrize("dispatched", [None, "", "soon", "1796472000", "-1.5",
                                        "9999999999.0", "1796471000.0", "1.2.3"])
def test_a_dispatch_instant_that_does_not_hold_gives_way_to_the_write(
        dispatched: str | None) -> None:
    assert dispatched_at(row(dispatched=dispatched)) == WRITTEN


def test_an_instant_minutes_before_the_write_holds() -> None:
    """A call whose node accepted the INVITE and died: the front's final reply (and write)
    comes at its INVITE timer, 120 s after the dispatch."""
    at = WRITTEN - timedelta(seconds=120)
    assert dispatched_at(row(dispatched=f"{int(at.timestamp())}.5")) == at.replace(
        microsecond=500000)


@pytest.mark.parametrize(("code", "reason", "reply"), [
    ("200", "OK", "200 OK"), ("408", "Request Timeout", "408 Request Timeout"),
    ("487", "", "487"), ("200", "OK\r\nX: y", "200"), ("2000", "OK", ""), ("abc", "x", ""),
    ("200", "y" * 100, "200 " + "y" * 64),
])
def test_the_reply_is_kept_only_as_a_sip_status(code: str, reason: str, reply: str) -> None:
    assert lost_call(row(sip_code=code, sip_reason=reason), NODES).reply == reply


@pytest.mark.parametrize("method", ["BYE", "invite", "", "INVITE\n"])
def test_only_an_invite_is_a_call(method: str) -> None:
    with pytest.raises(ValueError, match="not an INVITE"):
        lost_call(row(method=method), NODES)


def test_a_call_id_dispatched_twice_is_one_record_and_bad_rows_are_named() -> None:
    rows = [row(id=7, callid="dup@x"), row(id=3, callid="dup@x", node="sip:127.0.0.12:5062"),
            row(id=9, callid="bad id"), row(id=11, node="sip:10.0.0.1:5060"),
            row(id=12, callid="other@x")]
    facts, refused = lost_calls(rows, NODES)
    assert [(f.sip_call_id, f.node) for f in facts] == [("dup@x", "node2"), ("other@x", "node1")]
    assert [str(problem).split(":")[0] for problem in refused] == [
        "front call 9", "front call 11"]


# The front's row() dispatched its call at 12:00:00.25; node1 took the INVITE 1.2 s later.
LATE = datetime(2026, 12, 5, 12, 0, 1, 450000, tzinfo=UTC)


def record(call_id: str, *, ended: bool = True, queued: bool = False, lost: bool = False,
           seconds: float | None = 0.003, arrived: datetime | None = LATE) -> NodeRecord:
    return NodeRecord(call_id, ended=ended, queued=queued, lost=lost, seconds=seconds,
                      arrived=arrived)


def test_a_record_on_a_node_the_front_moved_the_call_from_is_a_withdrawn_offer() -> None:
    # The front gave the call to node2 (its row names the last node it tried); node1 took the
    # INVITE late and its line recorded a channel that ended at once.
    front = row(node="sip:127.0.0.12:5062")
    kept, offer = record("node2-1796472000.7"), record("node1-1796472001.3")
    assert withdrawn_offers(front, [offer, kept], NODES) == (
        ["node1-1796472001.3"], "node2-1796472000.7")


@pytest.mark.parametrize("offer", [
    record("node1-1796472001.3", ended=False, seconds=None),  # still going: it may yet be one
    record("node1-1796472001.3", seconds=OFFER_SECONDS + 0.1),  # someone was on it a while
    record("node1-1796472001.3", seconds=None),  # no start known
    record("node1-1796472001.3", queued=True),  # a caller reached a queue there
    record(f"node1-1796472000.{LOST_SEQ_BASE + 42}", lost=True),  # a lost-call record
    record("1796472001.3"),  # a single node's id: no node to tell apart
    # Another call that reused the Call-ID, before the dispatch or long after it.
    record("node1-1796471000.3", arrived=LATE - timedelta(minutes=20)),
    record("node1-1796473000.3", arrived=LATE + timedelta(minutes=20)),
    record("node1-1796472001.3", arrived=None),
])
def test_a_record_that_may_be_the_call_is_not_withdrawn(offer: NodeRecord) -> None:
    front = row(node="sip:127.0.0.12:5062")
    assert withdrawn_offers(front, [offer, record("node2-1796472000.7")], NODES) == (
        [], "node2-1796472000.7")


@pytest.mark.parametrize("node", ["sip:127.0.0.12:5062", "sip:127.0.0.99:5060", None])
def test_nothing_is_withdrawn_without_a_record_on_the_fronts_node(node: str | None) -> None:
    # The call must keep a record: none on node2 (it failed the call too, or its line has not
    # recorded it yet), or a row naming no cluster node, leaves every record where it is.
    offers = [record("node1-1796472001.3"), record("node1-1796472001.4")]
    assert withdrawn_offers(row(node=node), offers, NODES) == ([], None)
