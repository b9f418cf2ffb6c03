"""Legs the line places: their progress from the dialplan's UserEvent, their outcome, and
finding an operator's channel among the live ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telephony.ami.channels import operator_channel, parse_channels
from telephony.ami.tracker import AmiEventError, CallTracker
from telephony.calls.facts import LegProgressed, fact_from_json, fact_to_json
from telephony.calls.legs import LegOutcome, check_number, leg_outcome

AT = datetime.fromtimestamp(1732345678, UTC)


def leg_event(**fields: str) -> dict[str, str]:
    return {"Event": "UserEvent", "UserEvent": "SiagaLeg", "Uniqueid": "1732345600.7",
            "Timestamp": "1732345678.000000", **fields}


def test_dialplan_leg_reports_become_facts() -> None:
    tracker = CallTracker()
    assert tracker.handle(leg_event(Leg="17", State="dialling")) == [
        LegProgressed(17, "dialling", "", "1732345600.7", AT)]
    ended = tracker.handle(leg_event(Leg="17", State="ended", Status="NOANSWER"))
    assert ended == [LegProgressed(17, "ended", "NOANSWER", "1732345600.7", AT)]
    assert fact_from_json(fact_to_json(ended[0])) == ended[0]


@pytest.mark.parametrize(("cause", "kept"), [
    ("41", 41), ("16", 16), ("", 0), ("abc", 0), ("999", 0)])
def test_a_leg_end_carries_its_hangup_cause(cause: str, kept: int) -> None:
    """The reporting channel's HANGUPCAUSE: a call-back whose caller's phone lost its network
    comes back on the list by it. A cause missing or not a Q.850 code still records the end."""
    (ended,) = CallTracker().handle(leg_event(Leg="17", State="ended", Status="ANSWER",
                                              Cause=cause))
    assert ended == LegProgressed(17, "ended", "ANSWER", "1732345600.7", AT, kept)
    assert fact_from_json(fact_to_json(ended)) == ended
    # Only an end carries one.
    assert CallTracker().handle(leg_event(Leg="17", State="dialling", Cause="41")) == [
        LegProgressed(17, "dialling", "", "1732345600.7", AT)]


def test_other_user_events_are_not_the_lines() -> None:
    assert CallTracker().handle(leg_event(UserEvent="Other", Leg="x", State="?")) == []


@pytest.mark.parametrize("fields", [
    {"Leg": "abc", "State": "dialling"},
    {"Leg": "0", "State": "dialling"},
    {"Leg": "1234567890", "State": "dialling"},
    {"Leg": "5", "State": "ringing"},
    {"Leg": "5", "State": "ended", "Status": "NO ANSWER\r\nEvent: x"},
    {"Leg": "5", "State": "dialling", "Uniqueid": ""},
])
def test_malformed_leg_reports_are_rejected(fields: dict[str, str]) -> None:
    with pytest.raises(AmiEventError):
        CallTracker().handle(leg_event(**fields))


@pytest.mark.parametrize(("status", "answered", "outcome"), [
    ("ANSWER", False, LegOutcome.ANSWERED),
    ("NOANSWER", False, LegOutcome.NO_ANSWER),
    ("BUSY", False, LegOutcome.BUSY),
    ("CANCEL", False, LegOutcome.CANCELLED),
    ("CHANUNAVAIL", False, LegOutcome.FAILED),
    ("", False, LegOutcome.FAILED),
    ("CANCEL", True, LegOutcome.ANSWERED),
])
def test_leg_outcome(status: str, answered: bool, outcome: LegOutcome) -> None:
    assert leg_outcome(status, answered=answered) is outcome


@pytest.mark.parametrize("number", ["0293113", "+6281234567", "112"])
def test_dialable_numbers(number: str) -> None:
    assert check_number(number) == number


@pytest.mark.parametrize(
    "number", ["", "12", "08123,b(x)", "0812\n", "-r", "081234567890123456789"])
def test_numbers_that_cannot_be_dialled(number: str) -> None:
    with pytest.raises(ValueError):
        check_number(number)


def test_operator_channel_is_the_answered_one_on_the_call() -> None:
    def chan(name: str, linked: str, state: str = "Up") -> dict[str, str]:
        return {"Event": "CoreShowChannel", "Channel": name, "Uniqueid": name[-4:],
                "Linkedid": linked, "ChannelStateDesc": state}

    channels = parse_channels([
        {"Response": "Success"},
        chan("PJSIP/op20010-00000001", "1.1"),
        chan("PJSIP/op2001-00000002", "1.1", "Ringing"),
        chan("PJSIP/op2001-00000003", "2.2"),
        chan("PJSIP/op2001-00000004", "1.1"),
        {"Event": "CoreShowChannelsComplete", "ListItems": "4"},
    ])
    assert len(channels) == 4
    found = operator_channel(channels, "PJSIP/op2001", "1.1")
    assert found is not None and found.channel == "PJSIP/op2001-00000004"
    assert operator_channel(channels, "PJSIP/op2001") is not None
    assert operator_channel(channels, "PJSIP/op2002", "1.1") is None
