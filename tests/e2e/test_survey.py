"""Caller-rating callbacks end to end: a real emergency call through the lab Asterisk opens an
incident; once it is resolved the line calls the caller back (AMI Originate through the
carrier-callback endpoint) into the survey, whose answer lands on the incident.

The caller's phone on the carrier side is a sipp UAS on ``carrier_sip_port``: one that
answers and presses 4, one that is busy, one that never answers. Its own lab instance and
ports, so it can run beside the other end-to-end modules. Verdicts are read from the database.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from telephony.app import Line
from telephony.incidents.model import Status
from telephony.incidents.store import IncidentRepository
from telephony.lab import sipp
from telephony.settings import Settings
from telephony.surveys.model import FINAL_STATES, AttemptOutcome, SurveyState
from telephony.surveys.store import Survey
from tests.e2e.harness import ALL_SKILLS, ended_call, unique_caller
from tests.support.net import own_lab

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("survey-test"),
    http_port=0,
    lab_operators=5,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    incident_upkeep_seconds=0.5,
    survey_delay_seconds=0,
    survey_retry_seconds=1,
    survey_max_attempts=3,
    survey_ring_seconds=4,
    survey_hours="",  # the tests run at any hour
)
INCIDENTS = IncidentRepository()


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {"PJSIP/op1001": ALL_SKILLS}


async def resolved_incident_of_a_real_call(line: Line, settings: Settings, caller_id: str) -> int:
    """An emergency call (fire) answered by an operator; its incident, resolved."""
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="12", talk_seconds=2) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.operator) == ("answered", "PJSIP/op1001")
    deadline = time.monotonic() + 15
    while (incident_id := await line.database.run(
            lambda c: INCIDENTS.incident_of_call(c, record.call_id))) is None:
        assert time.monotonic() < deadline, f"no incident for call {record.call_id}"
        await asyncio.sleep(0.2)
    for status in (Status.VERIFIED, Status.DISPATCHED, Status.ON_SCENE, Status.RESOLVED):
        await line.incidents.change_status(incident_id, status, actor="op1001")
    return incident_id


async def finished_survey(line: Line, incident_id: int, within: float = 60.0) -> Survey:
    """The incident's survey once it reached a final state (bounded polling)."""
    deadline = time.monotonic() + within
    while True:
        survey = await line.surveys.survey_of_incident(incident_id)
        if survey is not None and survey.state in FINAL_STATES:
            return survey
        assert time.monotonic() < deadline, f"survey of incident #{incident_id}: {survey}"
        await asyncio.sleep(0.2)


async def test_a_callback_answered_with_dtmf_4_stores_rating_4(
    line: Line, settings: Settings
) -> None:
    caller_id = unique_caller("0815")
    # The caller's phone answers, and presses 4 while the introduction plays.
    async with sipp.callee(settings.carrier_sip_port, dtmf="4", dtmf_delay=2.5, max_calls=1,
                           trace_messages=True) as phone:
        incident_id = await resolved_incident_of_a_real_call(line, settings, caller_id)
        result = await phone.wait(within=60)
        messages = phone.messages
    assert result.ok, result.errors
    # The callback went to the caller's own number, through the carrier trunk.
    assert f"INVITE sip:{caller_id}@127.0.0.1:{settings.carrier_sip_port}" in messages
    survey = await finished_survey(line, incident_id)
    assert (survey.state, survey.rating, survey.number, survey.attempts) == (
        SurveyState.RATED, 4, caller_id, 1)
    incident = await line.incidents.get(incident_id)
    assert (incident.rating, incident.status) == (4, Status.RESOLVED)
    (attempt,) = await line.surveys.attempts(survey.survey_id)
    assert (attempt.outcome, attempt.reason_code) == (AttemptOutcome.RATED, 4)
    assert attempt.answered_at is not None and attempt.channel.startswith(
        "PJSIP/carrier-callback-")
    # The callback is no emergency call: the call tracker recorded only the caller's call.
    records = await line.database.run(lambda c: line.repository.call_records(c, limit=50))
    numbers = [r.caller_number for r in records]
    assert numbers.count(caller_id) == 1
    assert all(n.startswith("0815") for n in numbers), numbers


@pytest.mark.parametrize(("refuse", "answer", "outcome"), [
    (486, True, AttemptOutcome.BUSY),
    (None, False, AttemptOutcome.NO_ANSWER),
], ids=["busy", "no-answer"])
async def test_an_unreached_caller_is_retried_then_recorded_as_exhausted(
    line: Line, settings: Settings, refuse: int | None, answer: bool, outcome: AttemptOutcome,
) -> None:
    async with sipp.callee(settings.carrier_sip_port, refuse=refuse, answer=answer) as phone:
        incident_id = await resolved_incident_of_a_real_call(line, settings, unique_caller("0815"))
        survey = await finished_survey(line, incident_id)
        result = await phone.stop()
    assert (survey.state, survey.attempts, survey.rating) == (
        SurveyState.EXHAUSTED, settings.survey_max_attempts, None)
    attempts = await line.surveys.attempts(survey.survey_id)
    assert [a.outcome for a in attempts] == [outcome] * settings.survey_max_attempts, attempts
    assert all(a.ended_at is not None and a.answered_at is None for a in attempts)
    # Each attempt waited for the one before it to end, and for the retry delay.
    for before, after in itertools.pairwise(attempts):
        assert before.ended_at is not None
        assert (after.started_at - before.ended_at).total_seconds() >= (
            settings.survey_retry_seconds)
    assert result.successful == settings.survey_max_attempts, result.errors
    assert (await line.incidents.get(incident_id)).rating is None
