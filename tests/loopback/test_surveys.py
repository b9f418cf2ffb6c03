"""The survey service against a real PostgreSQL, with a scripted AMI and a clock the tests move:
scheduling, placing, Asterisk's outcomes, retries, restarts, ratings; the FastAGI route; and
the AMI listener handing OriginateResponse over without disturbing the call tracker."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from telephony.agi.access import AgiAccess
from telephony.agi.protocol import AgiEnvironment, AgiReply
from telephony.agi.server import AgiSession, FastAgiConfig, FastAgiServer
from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.ami.testing import ListSink, fake_asterisk, render
from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    LegProgressed,
    OperatorAnswered,
)
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository, LegRepository
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.incidents.config import IncidentConfig
from telephony.incidents.model import Status
from telephony.incidents.service import IncidentService
from telephony.settings import DEFAULT_SHIFTS, Settings
from telephony.surveys.model import AttemptOutcome, CallWindow, SurveyState
from telephony.surveys.route import SurveyApplication
from telephony.surveys.service import RING_GRACE, SurveyConfig, SurveyService
from telephony.surveys.store import Survey
from tests.support.agi import FakeAsterisk
from tests.support.agi import environment as agi_environment
from tests.support.ami import eventually, listener
from tests.support.calls import call_facts
from tests.support.db import OutageDatabase, execute

CALENDAR = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
JAKARTA = ZoneInfo("Asia/Jakarta")
CONFIG = SurveyConfig(delay=timedelta(seconds=60), retry=timedelta(seconds=600),
                      max_attempts=3, ring_seconds=20, window=None)


class FakeAmi:
    """Takes Originates (recording them), or refuses or loses them when told to."""

    def __init__(self) -> None:
        self.logged_in = True
        self.actions: list[dict[str, str]] = []
        self.handlers: dict[str, list[Callable[[Mapping[str, Any]], None]]] = {}
        self.failure: AmiActionError | None = None

    def subscribe(self, event: str, handler: Callable[[Mapping[str, Any]], None]) -> None:
        self.handlers.setdefault(event, []).append(handler)

    async def send_action(self, action: Mapping[str, str]) -> Mapping[str, Any]:
        self.actions.append(dict(action))
        if self.failure is not None:
            raise self.failure
        return {"Response": "Success", "ActionID": action["ActionID"],
                "Message": "Originate successfully queued"}

    def emit(self, event: Mapping[str, Any]) -> None:
        for handler in self.handlers[str(event["Event"])]:
            handler(event)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def response(action: Mapping[str, str], reason: int) -> dict[str, str]:
    """Asterisk's OriginateResponse to ``action``."""
    return {"Event": "OriginateResponse", "ActionID": action["ActionID"],
            "Response": "Success" if reason == 4 else "Failure",
            "Channel": action["Channel"], "Context": "siaga112-survey", "Exten": "s",
            "Reason": str(reason), "Uniqueid": "1732345678.9"}


def hangup(action: Mapping[str, str], cause: int) -> dict[str, str]:
    """The Hangup of the callback channel ``action`` created (its Uniqueid is the ChannelId)."""
    return {"Event": "Hangup", "Channel": "PJSIP/carrier-callback-00000001",
            "Uniqueid": action["ChannelId"], "Linkedid": action["ChannelId"],
            "Cause": str(cause), "Cause-txt": "User busy"}


@pytest.fixture
def incidents(database: Database) -> IncidentService:
    return IncidentService(database, IncidentConfig())


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


@pytest.fixture
def ami() -> FakeAmi:
    return FakeAmi()


def make_surveys(database: Database, ami: FakeAmi, incidents: IncidentService, clock: Clock,
                 config: SurveyConfig = CONFIG) -> SurveyService:
    return SurveyService(database, ami, incidents, config, clock=clock)


@pytest.fixture
def surveys(database: Database, ami: FakeAmi, incidents: IncidentService,
            clock: Clock) -> SurveyService:
    return make_surveys(database, ami, incidents, clock)


async def add_call(dsn: str, caller: str, *, start: datetime | None = None,
                   ended: bool = True) -> str:
    """An answered call from ``caller`` (ended two minutes later unless told otherwise);
    returns its id."""
    call_id = f"call.{uuid.uuid4().hex[:8]}"
    start = start or datetime.now(UTC) - timedelta(minutes=5)
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}", caller, "", "112", start),
        OperatorAnswered(call_id, "fire", "PJSIP/op1001", 10, 2, start + timedelta(seconds=20)),
    ]
    if ended:
        facts.append(CallEnded(call_id, 16, "Normal Clearing", start + timedelta(minutes=2)))
    await apply_facts(dsn, facts)
    return call_id


async def apply_facts(dsn: str, facts: Sequence[CallFact]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, list(facts))
    finally:
        await connection.close()


async def resolved_incident(dsn: str, incidents: IncidentService, *callers: str) -> int:
    """An incident holding one call per caller (first caller first), resolved."""
    first, *others = [await add_call(dsn, caller) for caller in callers]
    incident = await incidents.create_for_call(first)
    for call_id in others:
        await incidents.link_call(incident.incident_id, call_id, actor="op1001")
    for status in (Status.VERIFIED, Status.DISPATCHED, Status.ON_SCENE, Status.RESOLVED):
        await incidents.change_status(incident.incident_id, status, actor="op1001")
    return incident.incident_id


async def survey_of(surveys: SurveyService, incident_id: int) -> Survey:
    survey = await surveys.survey_of_incident(incident_id)
    assert survey is not None
    return survey


async def polled(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Bounded polling of state a test cannot wait on (the database, a fake)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def dump(dsn: str) -> list[list[dict[str, Any]]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [[dict(row) for row in await connection.fetch(f"SELECT * FROM {table} ORDER BY 1")]
                for table in ("surveys", "survey_attempts", "incidents", "incident_events")]
    finally:
        await connection.close()


async def test_a_resolved_incident_is_called_back_and_rated(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567890")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    assert (survey.state, survey.number, survey.attempts) == (SurveyState.SCHEDULED,
                                                              "081234567890", 0)
    assert survey.next_attempt_at == survey.resolved_at + CONFIG.delay
    assert ami.actions == []  # not before the delay
    clock.now = survey.resolved_at + CONFIG.delay
    await surveys.upkeep()
    (action,) = ami.actions
    assert (action["Channel"], action["Context"], action["Async"], action["Variable"]) == (
        "PJSIP/081234567890@carrier-callback", "siaga112-survey", "true",
        f"SURVEY_ID={survey.survey_id},SURVEY_ATTEMPT=1")
    assert (await survey_of(surveys, incident_id)).state is SurveyState.CALLING
    assert await surveys.originate_response(response(action, 4))
    (attempt,) = await surveys.attempts(survey.survey_id)
    assert (attempt.outcome, attempt.reason_code, attempt.answered_at) == (
        AttemptOutcome.ANSWERED, 4, clock.now)
    assert await surveys.begin(survey.survey_id, 1)
    finished = await surveys.finish(survey.survey_id, 1, 4)
    assert finished is not None
    assert (finished.state, finished.rating, finished.finished_at) == (SurveyState.RATED, 4,
                                                                       clock.now)
    incident = await incidents.get(incident_id)
    assert incident.rating == 4
    events = await incidents.timeline(incident_id)
    assert [(e.kind, e.actor, e.detail) for e in events][-1] == ("rating", "survey",
                                                                 {"rating": 4})
    ((attempt,),) = [await surveys.attempts(survey.survey_id)]
    assert attempt.outcome is AttemptOutcome.RATED
    clock.advance(days=1)
    await surveys.upkeep()
    assert len(ami.actions) == 1  # rated: never called again
    # The line's log is kept for months (and shipped off the host): a caller's number is
    # not in it, the survey's id says which call it was.
    assert "081234567890" not in caplog.text
    assert f"survey {survey.survey_id} attempt 1: calling the caller" in caplog.text


async def test_unreached_callbacks_are_retried_then_recorded_as_exhausted(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567891")
    clock.advance(seconds=61)
    await surveys.upkeep()
    assert await surveys.originate_response(response(ami.actions[-1], 5))  # busy
    survey = await survey_of(surveys, incident_id)
    assert (survey.state, survey.next_attempt_at) == (SurveyState.SCHEDULED,
                                                      clock.now + CONFIG.retry)
    clock.advance(seconds=599)
    await surveys.upkeep()
    assert len(ami.actions) == 1  # not before the retry delay
    clock.advance(seconds=1)
    await surveys.upkeep()
    assert ami.actions[-1]["ActionID"] == f"siaga112-survey-{survey.survey_id}-2"
    assert await surveys.originate_response(response(ami.actions[-1], 3))  # rang out
    # The same response again (a replay) changes nothing: the first word stands.
    assert not await surveys.originate_response(response(ami.actions[-1], 4))
    clock.advance(seconds=600)
    ami.failure = AmiActionRefusedError("Originate refused: Permission denied")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    assert (survey.state, survey.attempts, survey.next_attempt_at) == (
        SurveyState.EXHAUSTED, 3, None)
    assert survey.finished_at == clock.now and "3 kali" in survey.detail
    attempts = await surveys.attempts(survey.survey_id)
    assert [(a.attempt, a.outcome, a.reason_code) for a in attempts] == [
        (1, AttemptOutcome.BUSY, 5), (2, AttemptOutcome.NO_ANSWER, 3),
        (3, AttemptOutcome.FAILED, None)]
    assert all(a.ended_at is not None for a in attempts)
    clock.advance(days=1)
    ami.failure = None
    await surveys.upkeep()
    assert len(ami.actions) == 3
    assert (await incidents.get(incident_id)).rating is None


async def test_the_hangup_cause_tells_busy_and_unanswered_from_failed_in_either_order(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567880")
    clock.advance(seconds=61)
    await surveys.upkeep()
    # Asterisk 22 answers 486 Busy Here with Reason 0; the channel's Hangup (cause 17, user
    # busy) follows.
    first = ami.actions[-1]
    assert await surveys.originate_response(response(first, 0))
    assert await surveys.callback_hangup(hangup(first, 17))
    clock.advance(seconds=600)
    await surveys.upkeep()
    # 480 Temporarily Unavailable, with the Hangup (cause 19, no answer) first this time.
    second = ami.actions[-1]
    assert await surveys.callback_hangup(hangup(second, 19))
    assert await surveys.originate_response(response(second, 0))
    clock.advance(seconds=600)
    await surveys.upkeep()
    # 603 Decline stays a failure.
    third = ami.actions[-1]
    assert await surveys.originate_response(response(third, 0))
    assert await surveys.callback_hangup(hangup(third, 21))
    survey = await survey_of(surveys, incident_id)
    attempts = await surveys.attempts(survey.survey_id)
    assert [(a.outcome, a.reason_code, a.hangup_cause) for a in attempts] == [
        (AttemptOutcome.BUSY, 0, 17), (AttemptOutcome.NO_ANSWER, 0, 19),
        (AttemptOutcome.FAILED, 0, 21)]
    assert survey.state is SurveyState.EXHAUSTED
    assert not await surveys.callback_hangup({"Event": "Hangup", "Uniqueid": "1732345678.1",
                                              "Cause": "16"})


async def test_the_first_dialable_caller_is_called_back_and_a_withheld_one_is_not(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    withheld = await resolved_incident(database_dsn, incidents, "anonymous")
    repeat = await resolved_incident(database_dsn, incidents, "", "082233445566",
                                     "081100000000")
    # A number with a tel URI's separators is a caller's number (the call-back worklist rings
    # it), not a withheld one: it was recorded as "disembunyikan" and never asked.
    spelled = await resolved_incident(database_dsn, incidents, "+62-813-3344-5577")
    await surveys.upkeep()
    survey = await survey_of(surveys, withheld)
    assert (survey.state, survey.number, survey.next_attempt_at) == (
        SurveyState.NOT_POSSIBLE, "", None)
    assert survey.finished_at is not None and "disembunyikan" in survey.detail
    assert (await survey_of(surveys, repeat)).number == "082233445566"
    assert (await survey_of(surveys, spelled)).number == "+6281333445577"
    clock.advance(seconds=61)
    await surveys.upkeep()
    assert sorted(a["Channel"] for a in ami.actions) == [
        "PJSIP/+6281333445577@carrier-callback", "PJSIP/082233445566@carrier-callback"]
    # A survey scheduled under the older rule, for a short code it took for a number: never
    # dialled, closed as not possible (not a failed Originate at every pass).
    short = await resolved_incident(database_dsn, incidents, "081100000001")
    await surveys.open_surveys()
    await execute(database_dsn, "UPDATE surveys SET number = '12345' WHERE incident_id = $1",
                  short)
    clock.advance(seconds=61)
    await surveys.upkeep()
    survey = await survey_of(surveys, short)
    assert (survey.state, survey.attempts) == (SurveyState.NOT_POSSIBLE, 0)
    assert "disembunyikan" in survey.detail and len(ami.actions) == 2
    assert (await survey_of(surveys, withheld)).attempts == 0


async def test_a_callback_in_flight_when_the_server_died_is_retried_never_double_rated(
    database: Database, database_dsn: str, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567892")
    before = make_surveys(database, ami, incidents, clock)
    clock.advance(seconds=61)
    await before.upkeep()
    first = ami.actions[-1]
    # The server dies with the call ringing; the one started after it knows only the database.
    after_ami = FakeAmi()
    after = make_surveys(database, after_ami, incidents, clock)
    clock.advance(seconds=CONFIG.ring_seconds)
    await after.upkeep()
    assert after_ami.actions == []  # still within its deadline: maybe ringing
    clock.advance(seconds=RING_GRACE.total_seconds() + 1)
    await after.upkeep()
    survey = await survey_of(after, incident_id)
    assert (survey.state, survey.attempts) == (SurveyState.SCHEDULED, 1)
    (lost,) = await after.attempts(survey.survey_id)
    assert lost.outcome is AttemptOutcome.LOST
    # Asterisk's word on the lost call comes too late to count.
    assert not await after.originate_response(response(first, 5))
    clock.advance(seconds=600)
    await after.upkeep()
    (second,) = after_ami.actions
    assert second["ActionID"].endswith("-2")
    assert await after.originate_response(response(second, 4))
    assert await after.begin(survey.survey_id, 2)
    assert (await after.finish(survey.survey_id, 2, 4)) is not None
    # The first call was answered after all and reaches the survey: nothing is asked, and
    # even a forged finish does not change the rating.
    assert not await after.begin(survey.survey_id, 1)
    await after.finish(survey.survey_id, 1, 2)
    assert (await incidents.get(incident_id)).rating == 4
    survey = await survey_of(after, incident_id)
    assert (survey.state, survey.rating) == (SurveyState.RATED, 4)
    ratings = [e for e in await incidents.timeline(incident_id) if e.kind == "rating"]
    assert len(ratings) == 1


async def test_a_survey_ended_by_a_crash_after_the_rating_is_not_called_again(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567893")
    clock.advance(seconds=61)
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    assert await surveys.begin(survey.survey_id, 1)
    # The rating reached the incident; the server died before the survey was closed.
    await incidents.record_rating(incident_id, 5, actor="survey")
    clock.advance(seconds=CONFIG.session_seconds + 60)
    await surveys.upkeep()  # lost, scheduled again
    clock.advance(seconds=600)
    await surveys.upkeep()
    assert len(ami.actions) == 1
    survey = await survey_of(surveys, incident_id)
    assert (survey.state, survey.rating) == (SurveyState.RATED, 5)


async def test_a_rating_given_while_the_database_is_away_is_stored_when_it_returns(
    database_dsn: str, settings: Settings, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    """The caller pressed 4 while the database was away: the rating was dropped, the attempt
    ended as lost at its deadline, and the caller was rung again half an hour later to be
    asked the same question."""
    database = OutageDatabase(replace(settings, database_dsn=database_dsn))
    surveys = make_surveys(database, ami, IncidentService(database, IncidentConfig()), clock)
    try:
        incident_id = await resolved_incident(database_dsn, incidents, "081234567894")
        clock.advance(seconds=61)
        await surveys.upkeep()
        (action,) = ami.actions
        assert await surveys.originate_response(response(action, 4))
        survey = await survey_of(surveys, incident_id)
        assert await surveys.begin(survey.survey_id, 1)
        database.down = True
        with pytest.raises(DatabaseUnavailable):
            await surveys.finish(survey.survey_id, 1, 4)
        clock.advance(minutes=5)  # past the attempt's deadline
        with pytest.raises(DatabaseUnavailable):
            await surveys.upkeep()
        database.down = False
        await surveys.upkeep()
        survey = await survey_of(surveys, incident_id)
        assert (survey.state, survey.rating) == (SurveyState.RATED, 4)
        (attempt,) = await surveys.attempts(survey.survey_id)
        assert attempt.outcome is AttemptOutcome.RATED
        assert (await incidents.get(incident_id)).rating == 4
        clock.advance(seconds=CONFIG.retry.total_seconds() + 1)
        await surveys.upkeep()
        assert ami.actions == [action]  # never asked again
    finally:
        await database.close()


async def test_a_caller_who_picks_up_while_the_database_is_away_is_asked_all_the_same(
    database_dsn: str, settings: Settings, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    """The survey's call was placed and the database went away before the caller picked up:
    the caller heard nothing and the line hung up on them, then rang again later."""
    database = OutageDatabase(replace(settings, database_dsn=database_dsn))
    surveys = make_surveys(database, ami, IncidentService(database, IncidentConfig()), clock)
    try:
        incident_id = await resolved_incident(database_dsn, incidents, "081234567892")
        clock.advance(seconds=61)
        await surveys.upkeep()
        survey = await survey_of(surveys, incident_id)
        database.down = True
        session = FakeSession([str(survey.survey_id), "1"], ["5"])
        await SurveyApplication(surveys).handle(cast(AgiSession, session))
        assert [c[0] for c in session.commands] == ["STREAM FILE", "GET DATA", "STREAM FILE"]
        database.down = False
        clock.advance(minutes=5)  # past the attempt's deadline
        await surveys.upkeep()
        assert (await survey_of(surveys, incident_id)).rating == 5
        assert (await incidents.get(incident_id)).rating == 5
        assert len(ami.actions) == 1
    finally:
        await database.close()


async def test_an_answered_survey_without_rating_is_final(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567894")
    clock.advance(seconds=61)
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    # The route begins before the OriginateResponse is applied: both orders work.
    assert await surveys.begin(survey.survey_id, 1)
    assert await surveys.originate_response(response(ami.actions[-1], 4))
    (attempt,) = await surveys.attempts(survey.survey_id)
    assert (attempt.outcome, attempt.reason_code) == (AttemptOutcome.ANSWERED, 4)
    finished = await surveys.finish(survey.survey_id, 1, None)
    assert finished is not None and finished.state is SurveyState.NO_RATING
    clock.advance(days=1)
    await surveys.upkeep()
    assert len(ami.actions) == 1
    assert not await surveys.begin(survey.survey_id, 1)


async def test_no_attempt_is_spent_while_ami_is_down_or_outside_the_call_window(
    database: Database, database_dsn: str, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    # 23:00 in Jakarta (within the next day, so the incident is recent enough).
    local = clock.now.astimezone(JAKARTA)
    night = datetime.combine(local.date(), time(23), JAKARTA)
    if night <= local:  # 23:00 or later in Jakarta (16:00 UTC on): tomorrow's
        night += timedelta(days=1)
    clock.now = night.astimezone(UTC)
    config = replace(CONFIG, window=CallWindow(time(8), time(20)))
    surveys = make_surveys(database, ami, incidents, clock, config)
    incident_id = await resolved_incident(database_dsn, incidents, "081234567895")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    morning = datetime.combine(night.date() + timedelta(days=1), time(8), JAKARTA)
    assert survey.next_attempt_at == morning.astimezone(UTC)
    clock.now = morning.astimezone(UTC) - timedelta(minutes=1)
    await surveys.upkeep()
    assert ami.actions == []
    clock.now = morning.astimezone(UTC)
    ami.logged_in = False
    await surveys.upkeep()
    assert ami.actions == []
    assert (await survey_of(surveys, incident_id)).attempts == 0
    ami.logged_in = True
    await surveys.upkeep()
    assert len(ami.actions) == 1
    # Busy at 19:59: the retry waits for the next morning, not 20:09.
    clock.now = datetime.combine(morning.date(), time(19, 59), JAKARTA).astimezone(UTC)
    assert await surveys.originate_response(response(ami.actions[-1], 5))
    survey = await survey_of(surveys, incident_id)
    assert survey.next_attempt_at == (morning + timedelta(days=1)).astimezone(UTC)


async def rung_after_the_delay(surveys: SurveyService, ami: FakeAmi, clock: Clock) -> str:
    """The caller's call just ended: no survey at once, one the survey delay after it; the
    channel it rings."""
    await surveys.upkeep()
    assert ami.actions == []
    clock.advance(seconds=CONFIG.delay.total_seconds() + 1)
    await surveys.upkeep()
    (action,) = ami.actions
    return str(action["Channel"])


async def test_a_caller_on_a_new_emergency_call_is_not_rung_for_a_survey(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567896")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    # The survey falls due while the same caller, presented as +62…, is on a new 112 call.
    clock.now = survey.resolved_at + CONFIG.delay
    new_call = await add_call(database_dsn, "+6281234567896", start=clock.now, ended=False)
    await surveys.upkeep()
    assert ami.actions == []
    clock.advance(minutes=20)  # a long emergency call: still never rung
    await surveys.upkeep()
    assert ami.actions == []
    survey = await survey_of(surveys, incident_id)
    assert (survey.state, survey.attempts) == (SurveyState.SCHEDULED, 0)
    # The call ends: the survey waits its delay again, then calls.
    await apply_facts(database_dsn, [CallEnded(new_call, 16, "Normal Clearing", clock.now)])
    assert await rung_after_the_delay(surveys, ami, clock) == "PJSIP/081234567896@carrier-callback"


async def test_a_caller_talking_to_an_operator_on_a_call_back_is_not_rung_for_a_survey(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567893")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    clock.now = survey.resolved_at + CONFIG.delay
    # The caller rang again (as +62…) and gave up long ago; an operator calls them back now:
    # a call-back is no call of the line (no `calls` row), but it is an emergency call all the
    # same, and a survey ringing in would be call waiting in the middle of it.
    given_up = await add_call(database_dsn, "+6281234567893",
                              start=clock.now - timedelta(minutes=30))
    connection = await asyncpg.connect(database_dsn)
    try:
        leg = await LegRepository().open(
            connection, kind=LegKind.CALLBACK, call_id=given_up, incident_id=None,
            operator="PJSIP/op1001", actor="op1001", number="081234567893",
            target="penelepon")
    finally:
        await connection.close()
    await surveys.upkeep()  # asked for, ringing the operator's phone and then the caller's
    assert ami.actions == []
    await apply_facts(database_dsn, [LegProgressed(leg, "answered", "", "1790.5", clock.now)])
    clock.advance(minutes=20)  # a long talk: never rung
    await surveys.upkeep()
    assert ami.actions == []
    assert (await survey_of(surveys, incident_id)).state is SurveyState.SCHEDULED
    # The call-back ends: the survey waits its delay after it, as after any call, then calls.
    await apply_facts(database_dsn, [LegProgressed(leg, "ended", "ANSWER", "1790.5", clock.now)])
    assert await rung_after_the_delay(surveys, ami, clock) == "PJSIP/081234567893@carrier-callback"


async def test_a_caller_waiting_on_the_call_back_list_is_not_rung_for_a_survey(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    """The caller rang again after their incident was resolved and gave up in the queue: they
    wait for an operator to call them back. The survey's delay after that call passed and the
    rating call rang them first, asking how their last emergency went while the new one
    waited. It waits until an operator's call-back reaches them (one cut by their network
    does not), then the survey's delay after that call-back."""
    incident_id = await resolved_incident(database_dsn, incidents, "081234567891")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    clock.now = survey.resolved_at + CONFIG.delay
    gave_up = "1790000001.1"
    await apply_facts(database_dsn, call_facts(gave_up, "+6281234567891",
                                               at=clock.now - timedelta(seconds=30),
                                               answered_at=None))
    clock.advance(minutes=30)  # long past the survey's delay after that call
    await surveys.upkeep()
    assert ami.actions == []
    survey = await survey_of(surveys, incident_id)
    assert (survey.state, survey.attempts) == (SurveyState.SCHEDULED, 0)
    assert survey.next_attempt_at is not None and survey.next_attempt_at > clock.now

    async def call_back(*, cause: int) -> None:
        connection = await asyncpg.connect(database_dsn)
        try:
            leg = await LegRepository().open(
                connection, kind=LegKind.CALLBACK, call_id=gave_up, incident_id=None,
                operator="PJSIP/op1001", actor="op1001", number="081234567891",
                target="penelepon")
            # Asked for now by the test's clock (the database's own is behind it).
            await connection.execute("UPDATE call_legs SET requested_at = $2 WHERE leg_id = $1",
                                     leg, clock.now)
        finally:
            await connection.close()
        answered = clock.now
        clock.advance(minutes=2)
        await apply_facts(database_dsn, [
            LegProgressed(leg, "dialling", "", "1790.5", answered),
            LegProgressed(leg, "answered", "", "1790.6", answered),
            LegProgressed(leg, "ended", "ANSWER", "1790.6", clock.now, cause)])

    # Called back, and the caller's network cut it: still waiting, still not surveyed.
    await call_back(cause=41)
    clock.advance(minutes=30)
    await surveys.upkeep()
    assert ami.actions == []
    # Called back and reached: surveyed the delay after that call-back.
    await call_back(cause=16)
    assert await rung_after_the_delay(surveys, ami, clock) == "PJSIP/081234567891@carrier-callback"


async def test_a_caller_with_two_resolved_incidents_gets_one_rating_call_at_a_time(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    """Two incidents of one caller (written two ways), resolved together: both surveys fell
    due in one pass and the caller's phone rang twice at once, the second call as call waiting
    or busy (then rung again, as unreached)."""
    first = await resolved_incident(database_dsn, incidents, "081234567880")
    second = await resolved_incident(database_dsn, incidents, "+6281234567880")
    clock.advance(seconds=61)
    await surveys.upkeep()
    (action,) = ami.actions
    assert action["Channel"] == "PJSIP/081234567880@carrier-callback"
    await surveys.upkeep()
    assert len(ami.actions) == 1  # not while the first rings
    (rung,) = [s for s in [await survey_of(surveys, first), await survey_of(surveys, second)]
               if s.state is SurveyState.CALLING]
    assert await surveys.originate_response(response(action, 4))
    assert await surveys.begin(rung.survey_id, 1)
    await surveys.finish(rung.survey_id, 1, 5)
    await surveys.upkeep()
    assert len(ami.actions) == 1  # nor at once after it
    clock.advance(seconds=CONFIG.delay.total_seconds() + 1)
    await surveys.upkeep()
    assert [a["Channel"] for a in ami.actions] == [
        "PJSIP/081234567880@carrier-callback", "PJSIP/+6281234567880@carrier-callback"]


async def test_a_call_whose_end_was_never_recorded_does_not_hold_a_survey_forever(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567897")
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    clock.now = survey.resolved_at + CONFIG.delay
    await add_call(database_dsn, "081234567897", start=clock.now - timedelta(hours=4),
                   ended=False)
    await surveys.upkeep()
    assert len(ami.actions) == 1


async def test_an_unconfirmed_originate_waits_for_its_deadline(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567896")
    clock.advance(seconds=61)
    ami.failure = AmiActionError("Originate: no answer within 10.0 s")
    await surveys.upkeep()
    ami.failure = None
    survey = await survey_of(surveys, incident_id)
    assert survey.state is SurveyState.CALLING  # Asterisk may have queued it after all
    # It had: the call is answered and reported late, but within the deadline.
    assert await surveys.originate_response(response(ami.actions[-1], 4))
    (attempt,) = await surveys.attempts(survey.survey_id)
    assert attempt.outcome is AttemptOutcome.ANSWERED
    assert attempt.deadline > clock.now + timedelta(seconds=CONFIG.session_seconds)


async def test_what_is_not_ours_changes_nothing(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567897")
    clock.advance(seconds=61)
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    before = await dump(database_dsn)
    stranger = {"Event": "OriginateResponse", "ActionID": "console-42", "Response": "Failure",
                "Reason": "5"}
    assert not await surveys.originate_response(stranger)
    assert not await surveys.begin(survey.survey_id + 1000, 1)
    assert not await surveys.begin(survey.survey_id, 2)
    assert await surveys.finish(survey.survey_id + 1000, 1, 3) is None
    assert await dump(database_dsn) == before


class FakeSession:
    """An AGI session whose caller presses the scripted keys (GET DATA) in turn."""

    def __init__(self, arguments: Sequence[str], keys: Sequence[str]) -> None:
        variables = {"agi_network": "yes", "agi_network_script": "survey",
                     "agi_uniqueid": "1732345678.7"}
        variables |= {f"agi_arg_{i}": value for i, value in enumerate(arguments, 1)}
        self.env = AgiEnvironment(variables)
        self.keys = list(keys)
        self.commands: list[tuple[str, ...]] = []

    async def command(self, verb: str, *arguments: str, session_bound: bool = False) -> AgiReply:
        self.commands.append((verb, *arguments))
        if verb == "GET DATA":
            key = self.keys.pop(0)
            return AgiReply(200, f"200 result={key}", result=key)
        return AgiReply(200, "200 result=0 endpos=8000", result="0", endpos=8000)


async def test_the_fastagi_route_runs_the_survey_and_refuses_bad_arguments(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567898")
    clock.advance(seconds=61)
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    route = SurveyApplication(surveys)
    before = await dump(database_dsn)
    for arguments in ([], [str(survey.survey_id)], ["x", "1"], [str(survey.survey_id), "0"]):
        session = FakeSession(arguments, [])
        await route.handle(cast(AgiSession, session))
        assert session.commands == []
    assert await dump(database_dsn) == before
    session = FakeSession([str(survey.survey_id), "1"], ["4"])
    await route.handle(cast(AgiSession, session))
    assert [c[0] for c in session.commands] == ["STREAM FILE", "GET DATA", "STREAM FILE"]
    assert (await incidents.get(incident_id)).rating == 4
    # Called again on the same attempt (a duplicate call): nothing is asked.
    again = FakeSession([str(survey.survey_id), "1"], ["2"])
    await route.handle(cast(AgiSession, again))
    assert again.commands == []


async def rate_over_fastagi(port: int, script: str, survey_id: int, key: str) -> bytes:
    """A callback's FastAGI session as Asterisk holds it, the callee pressing ``key``;
    returns every command the server sent (b"" when it refused the session at once)."""
    received = b""
    async with await FakeAsterisk.connect(port) as asterisk:
        await asterisk.send(agi_environment(script=script, arguments=(str(survey_id), "1")))
        while True:
            try:
                command = await asterisk.expect_command()
            except asyncio.IncompleteReadError as closed:
                return received + closed.partial
            except ConnectionResetError:  # closed with the environment unread: a reset
                return received
            received += (" ".join(command) + "\n").encode()
            reply = f"200 result={key}\n" if command[:2] == ["GET", "DATA"] else (
                "200 result=0 endpos=8000\n")
            await asterisk.send(reply.encode())


async def test_the_survey_route_is_refused_to_a_wrong_secret_or_peer_and_stores_nothing(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, clock: Clock,
) -> None:
    """Any local process could reach the FastAGI port and store a rating: without the AGI
    secret in the URL, or from a peer not allowed, the session is refused before the route
    runs; with both, the same session stores the rating."""
    incident_id = await resolved_incident(database_dsn, incidents, "081234567896")
    clock.advance(seconds=61)
    await surveys.upkeep()
    survey = await survey_of(surveys, incident_id)
    before = await dump(database_dsn)
    secret = "only-asterisk-knows-this-1"
    routes = {"survey": SurveyApplication(surveys).handle}
    loopback = AgiAccess.of([ipaddress.ip_network("127.0.0.0/8")], secret)
    elsewhere = AgiAccess.of([ipaddress.ip_network("192.0.2.0/24")], secret)
    async with FastAgiServer(FastAgiConfig(port=0, access=elsewhere), routes) as server:
        assert await rate_over_fastagi(server.port, f"survey?secret={secret}",
                                       survey.survey_id, "1") == b""
        assert server.refused == {"peer_not_allowed": 1}
    async with FastAgiServer(FastAgiConfig(port=0, access=loopback), routes) as server:
        for script in ("survey", "survey?secret=guess-guess-guess-1", f"survey?secret={secret}&"
                       "secret=x"):
            assert await rate_over_fastagi(server.port, script, survey.survey_id, "1") == b""
        assert server.refused == {"bad_secret": 3}
        assert await dump(database_dsn) == before
        sent = await rate_over_fastagi(server.port, f"survey?secret={secret}", survey.survey_id,
                                       "5")
        assert b"GET DATA" in sent
    assert (await incidents.get(incident_id)).rating == 5


async def test_the_upkeep_loop_applies_the_callbacks_events_as_they_arrive(
    database_dsn: str, surveys: SurveyService, incidents: IncidentService, ami: FakeAmi,
    clock: Clock,
) -> None:
    incident_id = await resolved_incident(database_dsn, incidents, "081234567899")
    clock.advance(seconds=61)
    loop = asyncio.create_task(surveys.run_upkeep(60))

    async def placed() -> bool:
        return bool(ami.actions)

    async def busy() -> bool:
        survey = await survey_of(surveys, incident_id)
        attempts = await surveys.attempts(survey.survey_id)
        return survey.state is SurveyState.SCHEDULED and attempts[0].outcome is (
            AttemptOutcome.BUSY)

    try:
        await polled(placed)
        ami.emit({"Event": "Hangup", "Uniqueid": "1732345678.1", "Cause": "16"})  # not ours
        ami.emit(response(ami.actions[0], 0))
        ami.emit(hangup(ami.actions[0], 17))
        await polled(busy)
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


async def test_the_listener_hands_originate_responses_over_and_the_tracker_ignores_callbacks(
) -> None:
    """A callback's own channel starts in the survey context: no call is tracked for it."""
    sink = ListSink()
    received: list[Mapping[str, Any]] = []
    async with fake_asterisk() as server:
        ami = listener(server.port, sink)
        ami.subscribe("OriginateResponse", received.append)
        async with ami:
            async with asyncio.timeout(5):
                await ami.wait_ready()
            await server.send(b"".join(render(frame) for frame in (
                (("Event", "Newchannel"), ("Channel", "PJSIP/carrier-callback-00000001"),
                 ("Context", "siaga112-survey"), ("Exten", "s"),
                 ("CallerIDNum", "081234567890"), ("Uniqueid", "1732345678.9"),
                 ("Linkedid", "1732345678.9"), ("Timestamp", "1732345678.000000")),
                (("Event", "OriginateResponse"), ("ActionID", "siaga112-survey-1-1"),
                 ("Response", "Success"), ("Channel", "PJSIP/carrier-callback-00000001"),
                 ("Reason", "4"), ("Uniqueid", "1732345678.9")),
                (("Event", "Hangup"), ("Channel", "PJSIP/carrier-callback-00000001"),
                 ("Uniqueid", "1732345678.9"), ("Linkedid", "1732345678.9"),
                 ("Cause", "16"), ("Cause-txt", "Normal Clearing"),
                 ("Timestamp", "1732345690.000000")),
            )))
            await eventually(lambda: len(received) == 1)
    assert (received[0]["ActionID"], received[0]["Reason"]) == ("siaga112-survey-1-1", "4")
    assert sink.facts == []
