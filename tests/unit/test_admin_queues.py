"""Queue settings as an admin sets them, the queues include Asterisk reads, and the
membership moves that follow a change of skills or of the menu."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import pytest

from ivr.menu import IvrMenu, load_menu, parse_menu
from telephony.admin.errors import InvalidConfig
from telephony.admin.queues import (
    Member,
    MemberChange,
    QueueDefaults,
    dropped_members,
    effective_settings,
    max_wait_key,
    member_changes,
    parse_queue_settings,
    planned_membership,
    render_queues_conf,
)
from telephony.admin.site import parse_dispatch_targets, parse_shifts, shifts_value
from telephony.desks.operators import OperatorDesk
from telephony.incidents.model import ReportType

MENU = load_menu()
KNOWN = {*MENU.known_queues, "all-operators"}
DEFAULTS = QueueDefaults(wrapup_seconds=5, max_wait_seconds=60)


def values(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "strategy": "fewestcalls", "ring_timeout_seconds": 20, "retry_seconds": 2,
        "wrapup_seconds": 10, "announce_position": True, "announce_holdtime": False,
        "announce_frequency_seconds": 30, "max_wait_seconds": 90,
    }
    return {**base, **changes}


def test_valid_settings_are_taken_as_given() -> None:
    settings = parse_queue_settings("fire", values(), KNOWN)
    assert (settings.queue, settings.strategy, settings.max_wait_seconds) == (
        "fire", "fewestcalls", 90)
    assert parse_queue_settings("fire", values(announce_position=False,
                                               announce_frequency_seconds=0), KNOWN
                                ).announce_frequency_seconds == 0


@pytest.mark.parametrize(("queue", "changes", "field", "message"), [
    ("nowhere", {}, "queue", "tidak dikenal"),
    ("fire", {"strategy": "linear"}, "strategy", "tidak dikenal"),
    ("fire", {"ring_timeout_seconds": 2}, "ring_timeout_seconds", "5-120"),
    ("fire", {"ring_timeout_seconds": True}, "ring_timeout_seconds", "bilangan bulat"),
    ("fire", {"retry_seconds": -1}, "retry_seconds", "1-60"),
    ("fire", {"retry_seconds": 0}, "retry_seconds", "1-60"),  # Asterisk: 0 is 5 s
    ("fire", {"wrapup_seconds": 601}, "wrapup_seconds", "0-600"),
    ("fire", {"announce_position": "ya"}, "announce_position", "ya atau tidak"),
    ("fire", {"announce_frequency_seconds": 0}, "announce_frequency_seconds", "selang"),
    ("fire", {"announce_frequency_seconds": 5}, "announce_frequency_seconds", "15-600"),
    ("fire", {"max_wait_seconds": 15}, "max_wait_seconds", "lebih singkat"),
    ("fire", {"max_wait_seconds": 4000}, "max_wait_seconds", "10-3600"),
])
def test_bad_settings_are_refused_with_the_field(queue: str, changes: dict[str, Any],
                                                 field: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message) as refused:
        parse_queue_settings(queue, values(**changes), KNOWN)
    assert refused.value.field == field


def test_a_missing_field_is_named() -> None:
    raw = values()
    del raw["retry_seconds"]
    with pytest.raises(InvalidConfig, match="retry_seconds") as refused:
        parse_queue_settings("fire", raw, KNOWN)
    assert refused.value.field == "retry_seconds"


def test_every_queue_of_the_menu_and_the_overflow_is_rendered() -> None:
    stored = {"fire": parse_queue_settings("fire", values(), KNOWN)}
    queues = effective_settings(MENU.known_queues, stored, DEFAULTS)
    assert [q.queue for q in queues] == sorted(KNOWN)
    text = render_queues_conf(queues)
    fire = text.split("[fire](queue)\n")[1].split("\n\n")[0]
    assert fire.splitlines() == [
        "strategy = fewestcalls", "timeout = 20", "retry = 2", "wrapuptime = 10",
        "announce-frequency = 30", "announce-position = yes", "announce-holdtime = no"]
    # Only the overflow keeps callers with nobody to answer them (queues.conf's templates).
    overflow = text.split("[all-operators](overflow)\n")[1].split("\n\n")[0]
    assert overflow.startswith("strategy = ringall\ntimeout = 15\nretry = 1\nwrapuptime = 5\n")
    assert "[medical](queue)\nstrategy = leastrecent\n" in text
    assert text.count("](overflow)\n") == 1
    assert text.count("](queue)\n") == len(KNOWN) - 1
    assert max_wait_key("fire") == "max_wait.fire"


def member(queue: str, penalty: int = 0, *, interface: str = "PJSIP/op1001",
           paused: bool = False, dynamic: bool = True) -> Member:
    return Member(queue, interface, "Sari", penalty, paused, "break" if paused else "",
                  dynamic, False)


def test_membership_changes_add_first_and_keep_a_pause() -> None:
    current = [member("fire", 0, paused=True), member("all-operators", 4, paused=True),
               member("security", 1, paused=True), member("fire", 0, interface="PJSIP/op1002"),
               member("medical", 0, dynamic=False)]
    changes = member_changes("PJSIP/op1001", current,
                             {"fire": 2, "all-operators": 4, "medical": 0})
    assert changes == [
        MemberChange("add", "medical", "PJSIP/op1001", 0, True, "break", "Sari"),
        MemberChange("penalty", "fire", "PJSIP/op1001", 2),
        MemberChange("remove", "security", "PJSIP/op1001"),
    ]
    assert member_changes("PJSIP/op1001", current, {"fire": 0, "all-operators": 4,
                                                    "security": 1}) == []


def plan(menu: IvrMenu, levels: Mapping[str, int]) -> dict[str, int]:
    return OperatorDesk(None, menu).plan("PJSIP/op1001", levels)  # type: ignore[arg-type]


def planned(levels: dict[str, int], joined: list[str], before: IvrMenu = MENU,
            now: IvrMenu = MENU) -> dict[str, int]:
    return planned_membership(levels, joined, before, now, lambda s: plan(now, s))


def test_only_the_skills_an_operator_joined_are_planned() -> None:
    # Joined fire only (and the overflow), though they also have medical.
    assert planned({"fire": 5, "medical": 3}, ["fire", "all-operators"]) == {
        "fire": 0, "all-operators": 4}
    # A new level changes the penalty; a new skill waits for the operator to join it.
    assert planned({"fire": 2, "security": 5}, ["fire", "all-operators"]) == {
        "fire": 3, "all-operators": 4}
    # The only joined skill taken away: out of every queue.
    assert planned({"medical": 5}, ["fire", "all-operators"]) == {}


def test_a_menu_that_sends_a_skill_elsewhere_moves_its_operators() -> None:
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    document["known_queues"].append("kebakaran")
    document["menus"]["darurat"]["options"]["2"]["route"]["queue"] = "kebakaran"
    now = parse_menu(document)
    assert planned({"fire": 5}, ["fire", "all-operators"], MENU, now) == {
        "kebakaran": 0, "all-operators": 4}


def test_dispatch_targets_and_shifts_as_an_admin_sets_them() -> None:
    assert parse_dispatch_targets({"fire": 300, "flood": 3600}) == {
        ReportType.FIRE: 300, ReportType.FLOOD: 3600}
    for bad, message in (({"volcano": 300}, "tidak dikenal"), ({"fire": 30}, "60-86400"),
                         ({"fire": "300"}, "60-86400"), ([], "daftar")):
        with pytest.raises(InvalidConfig, match=message):
            parse_dispatch_targets(bad)
    roster = parse_shifts([{"name": "malam", "start": "22:00"},
                           {"name": "pagi", "start": "06:00"}])
    assert shifts_value(roster) == [{"name": "pagi", "start": "06:00"},
                                    {"name": "malam", "start": "22:00"}]
    for bad_roster, message in (
            ([], "1-6"), ([{"name": "Pagi", "start": "06:00"}], "Nama shift"),
            ([{"name": "pagi", "start": "6:00"}], "JJ:MM"),
            ([{"name": "pagi", "start": "06:00"}, {"name": "pagi", "start": "07:00"}],
             "bernama sama"),
            ([{"name": "a", "start": "06:00"}, {"name": "b", "start": "06:00"}], "jam yang sama")):
        with pytest.raises(InvalidConfig, match=message):
            parse_shifts(bad_roster)


def test_a_dropped_queue_is_emptied_of_operators_but_not_of_static_members() -> None:
    current = [member("madurese"), member("all-operators"),
               member("madurese", interface="PJSIP/op1002"),
               member("madurese", interface="PJSIP/op1009", dynamic=False)]
    kept = {"all-operators", "fire"}
    assert dropped_members(current, kept) == [
        MemberChange("remove", "madurese", "PJSIP/op1001"),
        MemberChange("remove", "madurese", "PJSIP/op1002")]
    assert dropped_members(current, {"all-operators", "madurese"}) == []
