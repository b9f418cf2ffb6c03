"""The survey service: calls callers back after their incident is resolved and stores their
rating, with every step in PostgreSQL.

The upkeep loop (:meth:`SurveyService.run_upkeep`), in each pass:

1. opens a survey for every recently resolved incident that has none, due
   ``delay`` later (inside the call window), or ``not_possible`` when no caller of the
   incident left a dialable number;
2. ends attempts past their deadline as ``lost`` (our server or AMI was away when Asterisk
   reported, or the survey never finished) and schedules a retry or gives up;
3. claims due surveys (``FOR UPDATE SKIP LOCKED``), records each attempt *before* sending its
   ``Originate`` (``Async``, ActionID ``siaga112-survey-<survey>-<attempt>``), then sends it.
   A survey whose caller waits on the call-back list (a call of theirs dropped, and no
   operator has reached them since: :mod:`telephony.callbacks`) is put off: the call-back
   comes first, the survey the delay after it.

Before all that it stores the answers callers gave while the database was away
(:meth:`SurveyService.finish` holds them).

Between passes it applies the AMI events about its callbacks that the listener hands over:
``OriginateResponse`` (answered, rang out, failed...) and the callback channel's ``Hangup``,
whose cause tells a busy callee from a failure. The attempt is found by its id (the
Originate's ActionID and ChannelId) in the database, never in memory, so an event about a call
placed before a restart still lands. An answered call runs the FastAGI route ``survey``
(:mod:`telephony.surveys.route`), which calls :meth:`begin` and :meth:`finish`.

Never double-rated: the rating goes through :meth:`IncidentService.record_rating`, which
stores a rating once (the same rating again is a no-op, a different one is refused); a survey
whose incident already has a rating is closed as rated instead of being called; and a survey
that has its answer takes no further call into the survey.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg

from telephony.ami.actions import AmiActionError, AmiActionRefusedError, AmiActions
from telephony.ami.originate import ORIGINATE_RESPONSE, parse_code, printable
from telephony.callbacks.service import CallbackConfig, waiting_for_call_back
from telephony.calls.legs import dial_number
from telephony.core.loops import run_passes
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.incidents.errors import IncidentError
from telephony.incidents.service import IncidentService
from telephony.settings import Settings, SettingsError
from telephony.surveys.model import (
    ACTION_PREFIX,
    ANSWERED_STATES,
    DEFAULT_CALL_WINDOW,
    SURVEY_ACTOR,
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
)
from telephony.surveys.store import Attempt, Survey, SurveyRepository

log = logging.getLogger("telephony.surveys")

HANGUP = "Hangup"
NOT_POSSIBLE_DETAIL = "Nomor penelepon disembunyikan atau tidak dapat dihubungi."
# Past the ring time Asterisk still has to give up on the carrier (SIP timer B is 32 s) and
# report; past the FastAGI session limit the survey has ended one way or another.
RING_GRACE = timedelta(seconds=35)
SESSION_GRACE = timedelta(seconds=15)
# How soon a survey put off for a caller waiting on the call-back list looks again, at least.
WAITING_RECHECK = timedelta(minutes=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SurveyConfig:
    """The tunables the service needs, taken from the settings."""

    delay: timedelta = timedelta(minutes=10)
    retry: timedelta = timedelta(minutes=30)
    max_attempts: int = 3
    ring_seconds: float = 30.0
    caller_id: str = "112"
    window: CallWindow | None = DEFAULT_CALL_WINDOW
    timezone: str = "Asia/Jakarta"
    lookback: timedelta = timedelta(hours=72)
    # The FastAGI session limit: an answered callback's survey is over by then.
    session_seconds: float = 90.0
    max_in_flight: int = 10  # calls ringing or in the survey at once
    batch: int = 50
    # The call-back list's window and ring time: a caller waiting on it is not surveyed.
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> SurveyConfig:
        """The configuration described by ``settings``; raises :class:`SettingsError` for
        survey hours that are not ``HH:MM-HH:MM`` (the settings hold them as plain text)."""
        try:
            window = parse_call_window(settings.survey_hours)
        except ValueError as exc:
            raise SettingsError(f"survey_hours: {exc}") from exc
        return cls(
            delay=timedelta(seconds=settings.survey_delay_seconds),
            retry=timedelta(seconds=settings.survey_retry_seconds),
            max_attempts=settings.survey_max_attempts,
            ring_seconds=settings.survey_ring_seconds,
            caller_id=settings.survey_caller_id,
            window=window,
            timezone=settings.timezone,
            lookback=timedelta(hours=settings.survey_lookback_hours),
            session_seconds=settings.agi_session_timeout,
            callbacks=CallbackConfig.from_settings(settings),
        )


class SurveyAmi(AmiActions, Protocol):
    """What the service needs of AMI (``telephony.ami.listener.AmiListener``): actions, and
    the events that tell how an Originate went."""

    @property
    def logged_in(self) -> bool:
        """True while an AMI session is up."""
        ...

    def subscribe(self, event: str, handler: Callable[[Mapping[str, Any]], None]) -> None:
        """Hand every ``event`` to ``handler`` as it arrives."""
        ...


@dataclass(frozen=True)
class _Call:
    """An attempt recorded and about to be placed."""

    survey_id: int
    attempt: int
    number: str


class SurveyService:
    """Schedules, places and follows caller-rating callbacks; stores the ratings."""

    def __init__(
        self,
        database: Database,
        ami: SurveyAmi,
        incidents: IncidentService,
        config: SurveyConfig,
        *,
        repository: SurveyRepository | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._database = database
        self._ami = ami
        self._incidents = incidents
        self._config = config
        self._repo = repository or SurveyRepository()
        self._clock = clock
        self._zone = ZoneInfo(config.timezone)
        self._events: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        # Answers the database could not take (survey and attempt -> rating or None), stored
        # by the next upkeep pass that reaches it.
        self._held: dict[tuple[int, int], int | None] = {}
        for event in (ORIGINATE_RESPONSE, HANGUP):
            ami.subscribe(event, self._on_ami_event)

    def _on_ami_event(self, event: Mapping[str, Any]) -> None:
        """Keep the events about our callbacks: their ActionID (OriginateResponse) or channel
        Uniqueid (Hangup) is an attempt's id. Runs inside the listener's data callback."""
        if printable(event.get("ActionID") or event.get("Uniqueid")).startswith(ACTION_PREFIX):
            self._events.put_nowait(event)

    # -- the loop ------------------------------------------------------------------------------

    async def run_upkeep(self, interval: float) -> None:
        """Forever: one upkeep pass every ``interval`` s, the callbacks' AMI events in between.

        A database outage is logged once and retried at the same pace; the surveys wait in the
        database and nothing is lost.
        """
        await run_passes("survey upkeep", self.upkeep,
                         lambda: self._apply_events_for(interval), log)

    async def upkeep(self) -> None:
        """One pass: store held answers, open surveys, end lost attempts, place due calls."""
        await self.store_held_answers()
        await self.open_surveys()
        await self.expire_attempts()
        await self.place_due_calls()

    async def _apply_events_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    event = await self._events.get()
            except TimeoutError:
                return
            name = printable(event.get("Event"))
            try:
                if name == ORIGINATE_RESPONSE:
                    await self.originate_response(event)
                else:
                    await self.callback_hangup(event)
            except DatabaseUnavailable as exc:
                # The attempt stays in flight and ends as lost at its deadline.
                log.error("%s of survey callback %s not recorded, database unavailable: %s",
                          name, printable(event.get("ActionID") or event.get("Uniqueid")), exc)
            except Exception:
                log.exception("%s of survey callback %s not applied", name,
                              printable(event.get("ActionID") or event.get("Uniqueid")))

    # -- opening surveys -----------------------------------------------------------------------

    async def open_surveys(self) -> int:
        """A survey for every incident resolved within the lookback that has none; returns how
        many were opened. Idempotent: safe to run again, or in two workers at once."""
        config = self._config
        now = self._clock()

        async def work(connection: asyncpg.Connection) -> tuple[int, int]:
            opened = 0
            candidates = await self._repo.resolved_without_survey(
                connection, since=now - config.lookback, limit=config.batch)
            for incident in candidates:
                calls = await self._repo.caller_numbers(connection, incident.incident_id)
                first = callback_number(calls)
                if first is None:
                    survey_id = await self._repo.insert_survey(
                        connection, incident_id=incident.incident_id,
                        call_id=calls[0][0] if calls else None, number="",
                        state=SurveyState.NOT_POSSIBLE, next_attempt_at=None,
                        detail=NOT_POSSIBLE_DETAIL,
                        resolved_at=incident.resolved_at, now=now)
                    what = "not possible (no dialable number)"
                else:
                    call_id, number = first
                    due = self._in_window(max(incident.resolved_at + config.delay, now))
                    survey_id = await self._repo.insert_survey(
                        connection, incident_id=incident.incident_id,
                        call_id=call_id, number=number,
                        state=SurveyState.SCHEDULED, next_attempt_at=due, detail="",
                        resolved_at=incident.resolved_at, now=now)
                    what = f"scheduled for {due:%Y-%m-%d %H:%M:%S} UTC"
                if survey_id is not None:  # else another worker opened it first
                    opened += 1
                    log.info("survey %d for incident #%d %s", survey_id, incident.incident_id,
                             what)
            return len(candidates), opened

        total = 0
        while True:
            found, opened = await self._database.run(work)
            total += opened
            if found < config.batch:
                return total

    def _in_window(self, at: datetime) -> datetime:
        window = self._config.window
        return at if window is None else window.earliest(at, self._zone)

    # -- placing calls -------------------------------------------------------------------------

    async def place_due_calls(self) -> int:
        """Place the calls of due surveys; returns how many were sent to Asterisk.

        Nothing is claimed while AMI is down (an attempt is never spent on a call that cannot
        be placed) or outside the call window (a survey due at 19:59 whose server was down
        overnight waits for the morning).
        """
        config = self._config
        now = self._clock()
        if not self._ami.logged_in:
            return 0
        if config.window is not None and not config.window.allows(
                now.astimezone(self._zone).time()):
            return 0

        async def claim(connection: asyncpg.Connection) -> list[_Call]:
            async with connection.transaction():
                room = config.max_in_flight - await self._repo.in_flight_count(connection)
                if room <= 0:
                    return []
                calls = []
                # The survey's own wait after a resolution is also how long it waits after
                # any call of the caller ends: a caller just off a new emergency call is not
                # asked to rate the old one (and an operator may be calling them back).
                for due in await self._repo.claim_due(connection, now, limit=room,
                                                      quiet=config.delay):
                    if due.incident_rating is not None:
                        # Rated meanwhile (say, a survey whose last step was cut short by a
                        # crash): no call is needed.
                        await self._repo.set_state(
                            connection, due.survey_id, SurveyState.RATED, now=now,
                            rating=due.incident_rating,
                            detail="Penilaian sudah tercatat pada insiden.")
                        continue
                    if dial_number(due.number) is None:
                        # Scheduled under the older rule, which took short codes and
                        # malformed ids for numbers: no call-back may dial it, nor may this.
                        await self._repo.set_state(connection, due.survey_id,
                                                   SurveyState.NOT_POSSIBLE, now=now,
                                                   detail=NOT_POSSIBLE_DETAIL)
                        continue
                    if due.caller_key is not None and await waiting_for_call_back(
                            connection, config.callbacks, due.caller_key, now=now):
                        # A call of theirs dropped and they wait for an operator to call
                        # back: a rating call first reads as the line ringing to ask how it
                        # went while their emergency waits. Asked again after the survey's
                        # delay; once called back, after the delay since the call-back
                        # ended (claim_due).
                        later = self._in_window(now + max(config.delay, WAITING_RECHECK))
                        await self._repo.set_state(connection, due.survey_id,
                                                   SurveyState.SCHEDULED, now=now,
                                                   next_attempt_at=later)
                        log.info("survey %d: the caller waits on the call-back list; "
                                 "put off to %s UTC", due.survey_id,
                                 f"{later:%Y-%m-%d %H:%M:%S}")
                        continue
                    attempt = due.attempts + 1
                    await self._repo.start_attempt(
                        connection, survey_id=due.survey_id, attempt=attempt,
                        action_id=action_id(due.survey_id, attempt), number=due.number,
                        now=now,
                        deadline=now + timedelta(seconds=config.ring_seconds) + RING_GRACE)
                    calls.append(_Call(due.survey_id, attempt, due.number))
                return calls

        calls = await self._database.run(claim)
        for call in calls:
            await self._originate(call)
        return len(calls)

    async def _originate(self, call: _Call) -> None:
        config = self._config
        action = originate_action(
            survey_id=call.survey_id, attempt=call.attempt, number=call.number,
            caller_id=config.caller_id, ring_seconds=config.ring_seconds)
        try:
            reply = await self._ami.send_action(action)
        except AmiActionRefusedError as exc:
            log.warning("survey %d attempt %d: Originate refused: %s",
                        call.survey_id, call.attempt, exc)
            await self._unreached(action["ActionID"], AttemptOutcome.FAILED, detail=str(exc))
            return
        except AmiActionError as exc:
            # Asterisk may or may not have queued it: its OriginateResponse decides, or the
            # attempt's deadline does.
            log.warning("survey %d attempt %d: Originate unconfirmed (%s); waiting for its "
                        "outcome until the deadline", call.survey_id, call.attempt, exc)
            return
        # Not the number: the log is kept for months and shipped off the host; the survey's
        # id finds it for whoever may read it.
        log.info("survey %d attempt %d: calling the caller", call.survey_id, call.attempt)
        # A call that fails at once can report before the action's own response arrives;
        # the event then answers the action.
        if printable(reply.get("Event")) == ORIGINATE_RESPONSE:
            await self.originate_response(reply)

    # -- what Asterisk reports -----------------------------------------------------------------

    async def originate_response(self, event: Mapping[str, Any]) -> bool:
        """Apply an OriginateResponse; ``False`` if it is not one of our attempts, or its
        attempt already had an outcome (the first word stands)."""
        aid = printable(event.get("ActionID"))
        reason_text = printable(event.get("Reason"))
        reason = parse_code(reason_text)
        response = printable(event.get("Response"))
        channel = printable(event.get("Channel"))
        now = self._clock()

        async def work(connection: asyncpg.Connection) -> tuple[Attempt, AttemptOutcome] | None:
            async with connection.transaction():
                attempt = await self._locked_attempt(connection, aid)
                if attempt is None:
                    return None
                outcome = outcome_for_reason(response, reason, attempt.hangup_cause)
                if outcome is AttemptOutcome.ANSWERED:
                    # The survey route may have begun first: the answer is then known
                    # already, and this adds Asterisk's reason and channel to it.
                    applied = await self._repo.mark_answered(
                        connection, survey_id=attempt.survey_id, attempt=attempt.attempt,
                        now=now, deadline=self._session_deadline(now), reason_code=reason,
                        channel=channel, over=(AttemptOutcome.ANSWERED,))
                else:
                    applied = await self._end_unreached(
                        connection, attempt, outcome, now, reason_code=reason, channel=channel,
                        detail=f"OriginateResponse Reason {reason_text!r}")
                return (attempt, outcome) if applied else None

        applied = await self._database.run(work)
        if applied is not None:
            attempt, outcome = applied
            log.info("survey %d attempt %d: %s", attempt.survey_id, attempt.attempt,
                     outcome.value)
        return applied is not None

    async def callback_hangup(self, event: Mapping[str, Any]) -> bool:
        """Apply the Hangup of a callback's channel: its cause tells a busy or unanswered
        callee from a failure, which Asterisk's OriginateResponse does not. ``False`` if it is
        not one of our attempts."""
        aid = printable(event.get("Uniqueid"))
        cause = parse_code(printable(event.get("Cause")))

        async def work(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                attempt = await self._locked_attempt(connection, aid)
                if attempt is None:
                    return False
                outcome = attempt.outcome
                if outcome is AttemptOutcome.FAILED and attempt.reason_code == 0:
                    outcome = outcome_for_reason("Failure", 0, cause)
                await self._repo.set_hangup(connection, survey_id=attempt.survey_id,
                                            attempt=attempt.attempt, cause=cause,
                                            outcome=outcome)
                return True

        return await self._database.run(work)

    async def _locked_attempt(self, connection: asyncpg.Connection, aid: str) -> Attempt | None:
        """The attempt with id ``aid``, read after locking its survey (every change of an
        attempt holds its survey's lock, so this is its current state)."""
        found = await self._repo.attempt_by_action(connection, aid)
        if found is None:
            return None
        await self._repo.lock_survey(connection, found.survey_id)
        return await self._repo.attempt(connection, found.survey_id, found.attempt)

    async def _unreached(self, aid: str, outcome: AttemptOutcome, *, detail: str) -> None:
        now = self._clock()

        async def work(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                attempt = await self._locked_attempt(connection, aid)
                if attempt is not None:
                    await self._end_unreached(connection, attempt, outcome, now, detail=detail)

        await self._database.run(work)

    async def _end_unreached(
        self, connection: asyncpg.Connection, attempt: Attempt, outcome: AttemptOutcome,
        now: datetime, *, detail: str, reason_code: int | None = None, channel: str = "",
    ) -> bool:
        """End an attempt that did not reach the caller, then retry or give up. Lost also ends
        an answered attempt whose survey never finished."""
        survey = await self._repo.lock_survey(connection, attempt.survey_id)
        assert survey is not None  # attempts reference their survey
        ended = await self._repo.end_attempt(
            connection, survey_id=attempt.survey_id, attempt=attempt.attempt, outcome=outcome,
            now=now, detail=detail, reason_code=reason_code, channel=channel,
            over=(AttemptOutcome.ANSWERED,) if outcome is AttemptOutcome.LOST else ())
        # Only the survey's latest attempt moves it on, and only while it is calling.
        if ended and survey.state is SurveyState.CALLING and survey.attempts == attempt.attempt:
            config = self._config
            state, next_at = after_unreached(survey.attempts, config.max_attempts,
                                             self._in_window(now + config.retry))
            note = (f"Tidak tersambung setelah {survey.attempts} kali panggilan."
                    if state is SurveyState.EXHAUSTED else None)
            await self._repo.set_state(connection, survey.survey_id, state, now=now,
                                       next_attempt_at=next_at, detail=note)
            if state is SurveyState.EXHAUSTED:
                log.info("survey %d exhausted after %d attempts", survey.survey_id,
                         survey.attempts)
        return ended

    async def expire_attempts(self) -> int:
        """End every attempt past its deadline as lost; returns how many."""
        now = self._clock()
        batch = self._config.batch

        async def work(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                expired = await self._repo.expired_attempts(connection, now, limit=batch)
                count = 0
                for attempt in expired:
                    if await self._end_unreached(
                            connection, attempt, AttemptOutcome.LOST, now,
                            detail="Tidak ada kabar dari Asterisk sampai batas waktu."):
                        count += 1
                return count

        expired = 0
        while True:
            count = await self._database.run(work)
            expired += count
            if count:
                log.warning("%d survey callbacks lost (no outcome by their deadline); "
                            "they are retried", count)
            if count < batch:
                return expired

    def _session_deadline(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._config.session_seconds) + SESSION_GRACE

    # -- the survey call -----------------------------------------------------------------------

    async def begin(self, survey_id: int, attempt: int) -> bool:
        """The callback of ``attempt`` is answered and about to ask; ``False`` (do not ask)
        if there is no such attempt or the survey already has its answer.

        A call answered after its attempt was given up as lost still counts: the caller is on
        the line.
        """
        now = self._clock()

        async def work(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                survey = await self._repo.lock_survey(connection, survey_id)
                if survey is None or survey.state in ANSWERED_STATES:
                    return False
                if not await self._repo.mark_answered(
                        connection, survey_id=survey_id, attempt=attempt, now=now,
                        deadline=self._session_deadline(now), reason_code=None, channel="",
                        over=(AttemptOutcome.ANSWERED, AttemptOutcome.LOST)):
                    return False
                if survey.state is not SurveyState.CALLING:
                    await self._repo.set_state(connection, survey_id, SurveyState.CALLING,
                                               now=now)
                return True

        return await self._database.run(work)

    async def finish(self, survey_id: int, attempt: int, rating: int | None) -> Survey | None:
        """The caller went through the survey: store ``rating`` (1-5, or ``None`` for none)
        on the incident and close the survey. Returns the survey, ``None`` if unknown.

        With the database away the answer is held and :class:`DatabaseUnavailable` raised:
        the next upkeep pass that reaches the database stores it before it ends attempts
        past their deadline, so the caller's answer stands and they are not rung again to
        give it twice. (A restart meanwhile forgets it: the attempt then ends as lost and is
        retried, as before.)
        """
        try:
            return await self._finish(survey_id, attempt, rating)
        except DatabaseUnavailable:
            self._held[(survey_id, attempt)] = rating
            raise

    async def store_held_answers(self) -> int:
        """Store the answers :meth:`finish` held while the database was away; returns how
        many. Raises :class:`DatabaseUnavailable` (keeping the rest) while it still is."""
        stored = 0
        for (survey_id, attempt), rating in list(self._held.items()):
            try:
                await self._finish(survey_id, attempt, rating)
            except DatabaseUnavailable:
                raise
            except Exception:
                # Not the outage: holding it would fail every pass after it.
                log.exception("survey %d attempt %d: the answer held while the database was "
                              "away not stored", survey_id, attempt)
            else:
                stored += 1
                log.info("survey %d attempt %d: the answer held while the database was away "
                         "is stored", survey_id, attempt)
            del self._held[(survey_id, attempt)]
        return stored

    async def _finish(self, survey_id: int, attempt: int, rating: int | None
                      ) -> Survey | None:
        now = self._clock()
        survey = await self.survey(survey_id)
        if survey is None:
            return None
        detail = ""
        if rating is not None:
            try:
                await self._incidents.record_rating(survey.incident_id, rating,
                                                    actor=SURVEY_ACTOR)
            except IncidentError as exc:
                log.warning("survey %d: rating %d not stored on incident #%d: %s",
                            survey_id, rating, survey.incident_id, exc.message)
                rating, detail = None, exc.message
        outcome, state = after_survey(rating)

        async def work(connection: asyncpg.Connection) -> Survey | None:
            async with connection.transaction():
                current = await self._repo.lock_survey(connection, survey_id)
                if current is None or current.state is SurveyState.RATED:
                    return current
                await self._repo.end_attempt(
                    connection, survey_id=survey_id, attempt=attempt, outcome=outcome, now=now,
                    detail=detail, over=(AttemptOutcome.ANSWERED, AttemptOutcome.LOST))
                await self._repo.set_state(connection, survey_id, state, now=now,
                                           rating=rating, detail=detail)
                return await self._repo.survey(connection, survey_id)

        finished = await self._database.run(work)
        log.info("survey %d attempt %d: %s", survey_id, attempt,
                 f"rated {rating}" if rating is not None else "no rating")
        return finished

    # -- reading -------------------------------------------------------------------------------

    async def survey(self, survey_id: int) -> Survey | None:
        """One survey."""

        async def work(connection: asyncpg.Connection) -> Survey | None:
            return await self._repo.survey(connection, survey_id)

        return await self._database.run(work)

    async def survey_of_incident(self, incident_id: int) -> Survey | None:
        """The incident's survey, if it has one yet."""

        async def work(connection: asyncpg.Connection) -> Survey | None:
            return await self._repo.survey_of_incident(connection, incident_id)

        return await self._database.run(work)

    async def attempts(self, survey_id: int) -> list[Attempt]:
        """A survey's attempts, first first."""

        async def work(connection: asyncpg.Connection) -> list[Attempt]:
            return await self._repo.attempts(connection, survey_id)

        return await self._database.run(work)
