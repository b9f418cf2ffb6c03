"""A cluster node's operator queue members brought to the stored ones (issue 15): the pure
rules of telephony/cluster/members.py."""

from __future__ import annotations

from telephony.admin.queues import Member, MemberChange
from telephony.cluster.members import WantedMember, member_changes_to, parse_wanted, snapshot

OP = "PJSIP/op1001"


def member(queue: str, *, interface: str = OP, penalty: int = 0, paused: bool = False,
           reason: str = "", dynamic: bool = True, name: str = "Ani") -> Member:
    return Member(queue, interface, name, penalty, paused, reason, dynamic, in_call=False)


def wanted(queue: str, *, penalty: int = 0, paused: bool = False, reason: str = "",
           name: str = "Ani") -> WantedMember:
    return WantedMember(queue, penalty, name, paused, reason)


def test_a_snapshot_is_the_interfaces_dynamic_members_only() -> None:
    members = [member("medical", penalty=1), member("fire", paused=True, reason="break"),
               member("general", dynamic=False), member("fire", interface="PJSIP/op1002"),
               member("security", reason="stale")]  # a reason kept past its pause
    assert snapshot(OP, members) == [wanted("fire", paused=True, reason="break"),
                                     wanted("medical", penalty=1), wanted("security")]


def test_a_login_elsewhere_is_added_here_with_its_penalty_name_and_pause() -> None:
    changes = member_changes_to({OP: [wanted("fire", penalty=2),
                                      wanted("all-operators", penalty=4)]}, [])
    assert changes == [MemberChange("add", "all-operators", OP, 4, False, "", "Ani"),
                       MemberChange("add", "fire", OP, 2, False, "", "Ani")]
    paused = member_changes_to({OP: [wanted("fire", paused=True, reason="wrapup")]}, [])
    assert paused == [MemberChange("add", "fire", OP, 0, True, "wrapup", "Ani")]


def test_a_pause_a_resume_a_penalty_and_a_logout_elsewhere_follow() -> None:
    here = [member("fire"), member("medical", penalty=3)]
    assert member_changes_to({OP: [wanted("fire", paused=True, reason="break"),
                                   wanted("medical", penalty=1)]}, here) == [
        MemberChange("pause", "fire", OP, 0, True, "break"),
        MemberChange("penalty", "medical", OP, 1)]
    paused_here = [member("fire", paused=True, reason="break")]
    assert member_changes_to({OP: [wanted("fire")]}, paused_here) == [
        MemberChange("pause", "fire", OP, 0, False, "")]
    # Another reason for the same pause: the pause is made again with it.
    assert member_changes_to({OP: [wanted("fire", paused=True, reason="meeting")]},
                             paused_here) == [
        MemberChange("pause", "fire", OP, 0, True, "meeting")]
    assert member_changes_to({OP: []}, here) == [MemberChange("remove", "fire", OP),
                                                 MemberChange("remove", "medical", OP)]


def test_in_line_already_nothing_is_sent() -> None:
    here = [member("fire", penalty=2, paused=True, reason="break")]
    assert member_changes_to({OP: [wanted("fire", penalty=2, paused=True,
                                          reason="break")]}, here) == []
    # The member's name is not compared (Asterisk cannot change it in place).
    assert member_changes_to({OP: [wanted("fire", penalty=2, paused=True, reason="break",
                                          name="Other")]}, here) == []


def test_static_members_other_interfaces_and_callers_are_left_alone() -> None:
    here = [member("fire", dynamic=False), member("general", interface="PJSIP/op1002"),
            member("medical", interface="PJSIP/op1003", dynamic=False)]
    # op1001 static in fire: no QueueAdd there, and no QueueRemove of the static member.
    assert member_changes_to({OP: [wanted("fire")]}, here) == []
    assert member_changes_to({OP: []}, here) == []
    # op1002 has no stored row: its membership here is not the cluster's business.
    assert member_changes_to({}, here) == []


def test_pauses_come_first_and_removals_last() -> None:
    here = [member("fire"), member("general")]
    changes = member_changes_to({OP: [wanted("fire", paused=True, reason="break"),
                                      wanted("medical", paused=True, reason="break")]}, here)
    assert [change.action for change in changes] == ["pause", "add", "remove"]


def test_stored_rows_are_checked_before_any_action() -> None:
    good = {"queue": "fire", "penalty": 2, "name": "Ani", "paused": True, "reason": "break"}
    assert parse_wanted(OP, [good]) == [wanted("fire", penalty=2, paused=True, reason="break")]
    # Not an operator's interface, or not a list: the row is ignored whole.
    for interface in ("PJSIP/op1001\r\nAction: Originate", "Local/x@y", "SIP/op1", ""):
        assert parse_wanted(interface, [good]) is None
    assert parse_wanted(OP, {"queue": "fire"}) is None
    bad_items: list[object] = [
        {**good, "queue": "fire\r\nAction: Hangup"}, {**good, "queue": "-x"},
        {**good, "queue": "Fire"}, {**good, "queue": 7}, {**good, "penalty": "2"},
        {**good, "penalty": True}, {**good, "penalty": -1}, {**good, "penalty": 100},
        {**good, "name": "Ani\r\nAction: Hangup"}, {**good, "name": "x" * 81},
        {**good, "paused": "yes"}, {**good, "reason": "break\nx"},
        {**good, "reason": "a b"}, "fire", None, ["fire"]]
    assert parse_wanted(OP, bad_items) == []
    # One queue once: the first stands.
    assert parse_wanted(OP, [good, {**good, "penalty": 4}]) == [
        wanted("fire", penalty=2, paused=True, reason="break")]
    # A reason without a pause is dropped; missing optional fields take their defaults.
    assert parse_wanted(OP, [{"queue": "all-operators", "penalty": 4, "reason": "break"}]) == [
        WantedMember("all-operators", 4, "", False, "")]


def test_a_bad_interface_among_the_wanted_is_skipped() -> None:
    assert member_changes_to({"PJSIP/op1\nx": [wanted("fire")]}, []) == []
