from collections.abc import Mapping
from typing import Any

import pytest

from ivr.menu import load_menu
from telephony.desks.operators import OperatorDesk, OperatorError, PauseReason, skill_queues

MENU = load_menu()


class RecordingAmi:
    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []

    async def send_action(self, action: Mapping[str, str]) -> Any:
        self.actions.append(dict(action))


def test_skills_map_to_the_menus_queues() -> None:
    mapping = skill_queues(MENU)
    assert mapping["general"] == {"emergency-general", "non-emergency", "information"}
    assert mapping["medical"] == {"medical"}
    assert mapping["javanese"] == {"javanese"}


async def test_login_joins_skill_queues_and_overflow_with_level_as_penalty() -> None:
    ami = RecordingAmi()
    queues = await OperatorDesk(ami, MENU).log_in("PJSIP/op1001", {"medical": 5, "fire": 2})
    assert queues == ["all-operators", "fire", "medical"]
    assert [(a["Queue"], a["Penalty"]) for a in ami.actions] == [
        ("all-operators", "4"), ("fire", "3"), ("medical", "0")]
    assert {a["Action"] for a in ami.actions} == {"QueueAdd"}


@pytest.mark.parametrize(
    ("interface", "skills", "message"),
    [
        ("PJSIP/op1001\r\nAction: Originate", {"medical": 3}, "not an operator interface"),
        ("PJSIP/op1001\n", {"medical": 3}, "not an operator interface"),
        ("SIP/op1", {"medical": 3}, "not an operator interface"),
        ("PJSIP/..", {"medical": 3}, "not an operator interface"),
        ("PJSIP/-x", {"medical": 3}, "not an operator interface"),
        ("PJSIP/op1001", {"plumbing": 3}, "unknown skill"),
        ("PJSIP/op1001", {"medical": 9}, "level must be 1 to 5"),
        ("PJSIP/op1001", {}, "at least one skill"),
    ],
)
async def test_bad_logins_send_nothing(
    interface: str, skills: dict[str, int], message: str
) -> None:
    ami = RecordingAmi()
    with pytest.raises(OperatorError, match=message):
        await OperatorDesk(ami, MENU).log_in(interface, skills)
    assert ami.actions == []


async def test_login_skips_the_queues_already_joined() -> None:
    ami = RecordingAmi()
    queues = await OperatorDesk(ami, MENU).log_in("PJSIP/op1001", {"medical": 5, "fire": 2},
                                                  already={"all-operators", "medical"})
    assert queues == ["fire"] and [a["Queue"] for a in ami.actions] == ["fire"]


async def test_pause_and_resume_cover_every_queue_with_the_reason_code() -> None:
    ami = RecordingAmi()
    desk = OperatorDesk(ami, MENU)
    await desk.pause("PJSIP/op1001", PauseReason.WRAPUP)
    await desk.resume("PJSIP/op1001")
    assert ami.actions == [
        {"Action": "QueuePause", "Interface": "PJSIP/op1001", "Paused": "true",
         "Reason": "wrapup"},
        {"Action": "QueuePause", "Interface": "PJSIP/op1001", "Paused": "false"}]
    with pytest.raises(OperatorError, match="not an operator interface"):
        await desk.pause("PJSIP/op1001\r\nAction: Originate", PauseReason.BREAK)
    assert len(ami.actions) == 2
