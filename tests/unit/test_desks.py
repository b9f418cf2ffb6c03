"""The operator desk's pure rules, and the console's templates escaping what they show."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from telephony.calls.legs import Leg, LegKind, LegOutcome
from telephony.db.connection import Database, DatabaseWork, T
from telephony.desks.service import (
    InvalidDeskInput,
    call_state,
    callback_is_newer,
    grant_phone_reader,
    parse_skill_levels,
)
from telephony.desks.store import CallView
from telephony.settings import Settings
from telephony.web.console.render import ENV, Flash
from telephony.web.errors import ApiError

NOW = datetime(2025, 1, 31, 8, 0, tzinfo=UTC)
CALL = CallView(
    call_id="1700000000.1", line="112", caller_number="081234567890",
    caller_key="6281234567890", arrived_at=NOW, ivr_choice="1", ivr_outcome="chosen",
    ivr_category="emergency", ivr_skill="fire", queue="fire", operator=None, answered_at=None,
    wait_seconds=None, talk_seconds=None, ended_at=None, disposition="in_progress",
    prank_score=0.2, prank_reasons=None, queue_priority=10, screening=None, label=None,
    incident_id=None)


def test_a_call_is_ringing_until_answered_here_and_ended_once_hung_up() -> None:
    assert call_state(CALL, "PJSIP/op1001") == "ringing"
    answered = replace(CALL, operator="PJSIP/op1001", answered_at=NOW)
    assert call_state(answered, "PJSIP/op1001") == "talking"
    assert call_state(replace(answered, ended_at=NOW), "PJSIP/op1001") == "ended"
    assert call_state(replace(CALL, ended_at=NOW), "PJSIP/op1001") == "ended"


def test_a_call_whose_three_way_call_the_operator_left_is_ended_for_them() -> None:
    # The caller talks on with the agency (no end yet); the operator's part is over.
    left = replace(CALL, operator="PJSIP/op1001", answered_at=NOW, left_at=NOW)
    assert call_state(left, "PJSIP/op1001") == "ended"
    assert call_state(left, "PJSIP/op1002") == "ringing"  # as any call answered elsewhere


def test_the_desk_shows_a_call_back_going_on_or_that_reached_the_caller() -> None:
    later = NOW + timedelta(minutes=5)
    callback = Leg(leg_id=7, kind=LegKind.CALLBACK, call_id="1700000000.2", incident_id=None,
                   operator="PJSIP/op1001", actor="budi", number="081234567890",
                   target="penelepon", requested_at=later, channel_id=None, rang_at=later,
                   answered_at=None, ended_at=None, outcome=None, status="")
    answered = replace(CALL, operator="PJSIP/op1001", answered_at=NOW)
    assert callback_is_newer(answered, callback)  # dialling the caller
    assert callback_is_newer(None, callback)
    talked = replace(callback, answered_at=later, ended_at=later + timedelta(minutes=1),
                     outcome=LegOutcome.ANSWERED)
    assert callback_is_newer(answered, talked)  # the conversation an incident may need
    # Busy: the operator is free again and the desk as it was before the call-back.
    busy = replace(callback, ended_at=later, outcome=LegOutcome.BUSY)
    assert not callback_is_newer(answered, busy)
    assert not callback_is_newer(answered, replace(callback, rang_at=None))  # phone not taken
    assert not callback_is_newer(replace(answered, answered_at=later + timedelta(hours=1)),
                                 callback)


def test_skill_levels_are_name_equals_level() -> None:
    assert parse_skill_levels(["fire=5", " Medical =3"]) == {"fire": 5, "medical": 3}
    assert parse_skill_levels([]) == {}


@pytest.mark.parametrize("raw", [["fire"], ["fire=0"], ["fire=6"], ["=3"], ["fire=x"],
                                 ["fire=5", "fire=4"], ["fire=" + "9" * 5000]])
def test_bad_skill_levels_are_refused(raw: list[str]) -> None:
    with pytest.raises(InvalidDeskInput):
        parse_skill_levels(raw)


def test_templates_escape_every_value() -> None:
    html = ENV.get_template("error.html").render(
        session=None, role_label="", nav=[], csrf="", tz="Asia/Jakarta", path="/",
        flash=Flash("error", "<b>flash</b>"), title="<i>t</i>",
        error=ApiError(400, "x", '"><script>alert(1)</script>'))
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;flash&lt;/b&gt;" in html and "&#34;&gt;&lt;script&gt;" in html


class RefusingOwner(Database):
    """The schema's owner, whose every statement PostgreSQL refuses with ``error``."""

    def __init__(self, error: asyncpg.PostgresError) -> None:
        super().__init__(Settings())
        self.error = error

    async def run_as_owner(self, work: DatabaseWork[T]) -> T:
        raise self.error


async def test_a_refused_phone_reader_grant_leaves_the_line_starting(
        caplog: pytest.LogCaptureFixture) -> None:
    """Only registering phones need the role: a refusal other than a missing privilege (here
    the concurrent GRANT that once failed a cluster line's start) is one error line, and the
    line goes on."""
    database = RefusingOwner(asyncpg.InternalServerError("tuple concurrently updated"))
    with caplog.at_level(logging.ERROR, logger="telephony.desks"):
        assert await grant_phone_reader(database, "asterisk_phones", "secret") is False
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "tuple concurrently updated" in record.getMessage()
    assert "asterisk_phones" in record.getMessage()
