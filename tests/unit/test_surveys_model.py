"""Survey rules: callback numbers, Asterisk's originate reasons, retries, the call window, the
Originate action, the dialplan's arguments, and the survey settings."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from telephony.ami.originate import parse_code
from telephony.lab import sipp
from telephony.settings import SettingsError, load_settings
from telephony.surveys.model import (
    AttemptOutcome,
    CallWindow,
    SurveyState,
    action_id,
    after_survey,
    after_unreached,
    callback_number,
    originate_action,
    outcome_for_reason,
    parse_call_window,
    parse_survey_ids,
)
from telephony.surveys.service import SurveyConfig

JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(("number", "dialled"), [
    ("081234567890", "081234567890"), ("+6281234567890", "+6281234567890"),
    ("0313021112", "0313021112"), ("81234567890", "081234567890"),
    # Separators as a tel URI may carry them: the worklist calls this caller back, so the
    # survey does too (it recorded them as withheld).
    ("0812 3456 789", "08123456789"), ("+62-812-3456-7890", "+6281234567890"),
    ("(031) 302-1112", "0313021112"),
])
def test_dialable_numbers(number: str, dialled: str) -> None:
    assert callback_number([("1.1", number)]) == ("1.1", dialled)
    action = originate_action(survey_id=1, attempt=1, number=number, caller_id="112",
                              ring_seconds=25)
    assert action["Channel"] == f"PJSIP/{dialled}@carrier-callback"


@pytest.mark.parametrize("number", [
    "", "anonymous", "unknown", "<unknown>", "Restricted", "112", "1234", "+", "++6281234",
    "1" * 16, "٠٨١٢٣٤٥٦٧٨", "0812345\n6789", "sip:0812@x",
    "12345", "14045",  # service codes and the like: no caller's number
    "356938035643809",  # a SIM-less phone's IMEI (telephony/calls/ids.py)
])
def test_withheld_or_unusable_numbers(number: str) -> None:
    assert callback_number([("1.1", number)]) is None
    with pytest.raises(ValueError, match="dialable"):
        originate_action(survey_id=1, attempt=1, number=number, caller_id="112",
                         ring_seconds=25)


def test_the_first_dialable_caller_is_called_back() -> None:
    assert callback_number([("1.1", "anonymous"), ("1.2", ""), ("1.3", "081111111111"),
                            ("1.4", "082222222222")]) == ("1.3", "081111111111")
    # A SIM-less phone's bare IMEI (15 Luhn-valid digits) is no number to call back.
    assert callback_number([("1.1", "356938035643809"), ("1.2", "081111111111")]) == (
        "1.2", "081111111111")
    assert callback_number([("1.1", "anonymous"), ("1.2", "112")]) is None
    assert callback_number([]) is None


@pytest.mark.parametrize(("response", "reason", "outcome"), [
    ("Success", "4", AttemptOutcome.ANSWERED),
    ("Failure", "4", AttemptOutcome.FAILED),  # contradictory: not answered
    ("Failure", "5", AttemptOutcome.BUSY),
    ("Failure", "3", AttemptOutcome.NO_ANSWER),
    ("Failure", "1", AttemptOutcome.NO_ANSWER),
    ("Failure", "8", AttemptOutcome.FAILED),
    ("Failure", "0", AttemptOutcome.FAILED),
    ("Failure", "42", AttemptOutcome.FAILED),
    ("Failure", "", AttemptOutcome.FAILED),
    ("Failure", "x", AttemptOutcome.FAILED),
    ("Success", "٤", AttemptOutcome.FAILED),  # a non-ASCII digit is not a reason
])
def test_originate_reasons(response: str, reason: str, outcome: AttemptOutcome) -> None:
    assert outcome_for_reason(response, parse_code(reason)) is outcome


@pytest.mark.parametrize(("reason", "cause", "outcome"), [
    (0, 17, AttemptOutcome.BUSY),  # 486 Busy Here
    (0, 19, AttemptOutcome.NO_ANSWER),  # 480 Temporarily Unavailable
    (0, 18, AttemptOutcome.NO_ANSWER),
    (0, 21, AttemptOutcome.FAILED),  # 603 Decline
    (0, None, AttemptOutcome.FAILED),
    (3, 17, AttemptOutcome.NO_ANSWER),  # a precise reason stands
    (8, 17, AttemptOutcome.FAILED),
])
def test_the_hangup_cause_makes_a_failure_precise(
    reason: int, cause: int | None, outcome: AttemptOutcome,
) -> None:
    assert outcome_for_reason("Failure", reason, cause) is outcome


def test_retries_until_the_last_attempt_then_exhausted() -> None:
    retry_at = datetime(2025, 1, 1, 3, tzinfo=UTC)
    assert after_unreached(1, 3, retry_at) == (SurveyState.SCHEDULED, retry_at)
    assert after_unreached(2, 3, retry_at) == (SurveyState.SCHEDULED, retry_at)
    assert after_unreached(3, 3, retry_at) == (SurveyState.EXHAUSTED, None)
    assert after_unreached(1, 1, retry_at) == (SurveyState.EXHAUSTED, None)


def test_a_reached_caller_ends_the_survey_rated_or_not() -> None:
    assert after_survey(4) == (AttemptOutcome.RATED, SurveyState.RATED)
    assert after_survey(None) == (AttemptOutcome.NO_RATING, SurveyState.NO_RATING)


def local(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=JAKARTA)


def test_the_call_window_defers_to_its_next_start() -> None:
    window = CallWindow(time(8), time(20))
    assert window.earliest(local(9), JAKARTA) == local(9)
    assert window.earliest(local(8), JAKARTA) == local(8)
    # Before the window: today at 08:00; at or after its end: tomorrow at 08:00.
    assert window.earliest(local(1, 30), JAKARTA) == local(8)
    assert window.earliest(local(20), JAKARTA) == local(8, day=11)
    assert window.earliest(local(23, 59), JAKARTA) == local(8, day=11)
    assert window.earliest(local(1, 30), JAKARTA).tzinfo == UTC


def test_a_window_across_midnight() -> None:
    window = CallWindow(time(22), time(2))
    assert window.allows(time(23)) and window.allows(time(1, 59))
    assert not window.allows(time(2)) and not window.allows(time(12))
    assert window.earliest(local(12), JAKARTA) == local(22)
    assert window.earliest(local(1), JAKARTA) == local(1)


def test_call_window_texts() -> None:
    assert parse_call_window("08:00-20:00") == CallWindow(time(8), time(20))
    assert parse_call_window(" 07:30-21:15 ") == CallWindow(time(7, 30), time(21, 15))
    assert parse_call_window("") is None
    for bad in ("8-20", "08:00", "08:00-25:00", "08:00-08:00", "08:60-20:00", "pagi"):
        with pytest.raises(ValueError, match=r"."):
            parse_call_window(bad)


def test_the_originate_action() -> None:
    action = originate_action(survey_id=12, attempt=2, number="+6281234567890",
                              caller_id="112", ring_seconds=25)
    assert action == {
        "Action": "Originate",
        "ActionID": "siaga112-survey-12-2",
        "Channel": "PJSIP/+6281234567890@carrier-callback",
        "Context": "siaga112-survey",
        "Exten": "s",
        "Priority": "1",
        "Timeout": "25000",
        "CallerID": "112",
        "Variable": "SURVEY_ID=12,SURVEY_ATTEMPT=2",
        "ChannelId": "siaga112-survey-12-2",
        "Async": "true",
    }
    assert action_id(12, 2) == action["ActionID"]
    # A mobile number the carrier presented without its trunk 0 is dialled with it.
    bare = originate_action(survey_id=12, attempt=2, number="81234567890", caller_id="112",
                            ring_seconds=25)
    assert bare["Channel"] == "PJSIP/081234567890@carrier-callback"
    with pytest.raises(ValueError, match="dialable"):
        originate_action(survey_id=1, attempt=1, number="0812,X=1", caller_id="112",
                         ring_seconds=25)


def test_the_dialplan_s_arguments() -> None:
    assert parse_survey_ids("12", "3") == (12, 3)
    for survey, attempt in (("", "1"), ("1", ""), ("0", "1"), ("-1", "1"), ("1", "x"),
                            ("01", "1"), ("1" * 19, "1"), ("\u0661", "1")):
        assert parse_survey_ids(survey, attempt) is None


def test_survey_settings() -> None:
    settings = load_settings(environ={}, overrides={
        "survey_delay_seconds": "0", "survey_max_attempts": "2", "survey_retry_seconds": "60",
        "survey_ring_seconds": "20", "survey_caller_id": "+62112", "survey_hours": "",
        "survey_lookback_hours": "24", "carrier_sip_port": "5080",
    })
    config = SurveyConfig.from_settings(settings)
    assert (config.delay, config.max_attempts, config.retry, config.ring_seconds) == (
        timedelta(0), 2, timedelta(seconds=60), 20)
    assert (config.caller_id, config.window, config.lookback) == ("+62112", None,
                                                                  timedelta(hours=24))
    assert config.session_seconds == settings.agi_session_timeout
    assert settings.survey_agi_url == "agi://127.0.0.1:4573/survey"
    assert SurveyConfig.from_settings(load_settings(environ={})).window == CallWindow(
        time(8), time(20))


@pytest.mark.parametrize(("name", "value"), [
    ("survey_max_attempts", "0"), ("survey_retry_seconds", "0"), ("survey_ring_seconds", "-1"),
    ("survey_delay_seconds", "-1"), ("survey_lookback_hours", "0"),
    ("survey_caller_id", "112\r\nAction: Logoff"), ("survey_caller_id", ""),
    ("survey_hours", "siang"), ("survey_hours", "08:00-08:00"), ("carrier_sip_port", "70000"),
])
def test_invalid_survey_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        SurveyConfig.from_settings(load_settings(environ={}, overrides={name: value}))


def test_the_callee_phone_scenario() -> None:
    answering = sipp.render_callee(dtmf="4", dtmf_delay=1.5)
    assert "dtmf-0.pcap" in answering.files and "SIP/2.0 200 OK" in answering.xml
    assert 'ontimeout="hangup"' in answering.xml
    busy = sipp.render_callee(refuse=486).xml
    assert "SIP/2.0 486 Busy Here" in busy
    assert '<recv request="ACK" crlf="true" next="end"/>' in busy
    never = sipp.render_callee(answer=False).xml
    assert '<recv request="CANCEL" next="cancelled"/>' in never
    with pytest.raises(ValueError, match="refuse"):
        sipp.render_callee(refuse=200)
    with pytest.raises(ValueError, match="DTMF"):
        sipp.render_callee(dtmf="4x")
