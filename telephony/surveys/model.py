"""Caller-rating survey rules: who can be called back, what an attempt's outcome means, when
the next attempt is due and when the callback gives up. Pure: no I/O and no clock of its own
(instants come in as arguments).

A survey's states::

    scheduled --(a call is placed)--> calling --(rated)--------> rated
        ^                                |     --(no rating)----> no_rating
        '---(unreached, attempts left)---'     --(unreached, none left)--> exhausted
    not_possible: the incident's callers gave no number that can be dialled (withheld).

"Unreached" is an attempt that ended without the caller in the survey: no answer, busy,
failed, or lost (no word from Asterisk by the attempt's deadline, e.g. our server was down).
An answered call whose caller gives no rating is final: the caller was reached and chose not
to rate, and calling again would pester them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from telephony.ami.originate import OriginateReason
from telephony.calls.legs import dial_number


class SurveyState(StrEnum):
    """Where a survey is."""

    SCHEDULED = "scheduled"  # waiting for its next attempt
    CALLING = "calling"  # an attempt is in flight: ringing, or the caller is in the survey
    RATED = "rated"
    NO_RATING = "no_rating"  # answered, but the caller gave no rating
    EXHAUSTED = "exhausted"  # every allowed attempt went unanswered, busy or failed
    NOT_POSSIBLE = "not_possible"  # no dialable number (withheld)


FINAL_STATES: Final = frozenset({SurveyState.RATED, SurveyState.NO_RATING,
                                 SurveyState.EXHAUSTED, SurveyState.NOT_POSSIBLE})
# A survey in one of these takes no further call into the survey: it has its answer.
ANSWERED_STATES: Final = frozenset({SurveyState.RATED, SurveyState.NO_RATING,
                                    SurveyState.NOT_POSSIBLE})


class AttemptOutcome(StrEnum):
    """How one callback went."""

    ANSWERED = "answered"  # interim: the caller picked up and the survey runs
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # refused, congestion, unreachable, unknown number
    LOST = "lost"  # no outcome by the deadline: our server or AMI was away
    RATED = "rated"
    NO_RATING = "no_rating"


# What each OriginateResponse Reason (telephony.ami.originate) means for an attempt.
REASON_OUTCOMES: Final[Mapping[int, AttemptOutcome]] = {
    OriginateReason.FAILURE: AttemptOutcome.FAILED,
    OriginateReason.HUNG_UP: AttemptOutcome.NO_ANSWER,
    OriginateReason.NO_ANSWER: AttemptOutcome.NO_ANSWER,
    OriginateReason.ANSWERED: AttemptOutcome.ANSWERED,
    OriginateReason.BUSY: AttemptOutcome.BUSY,
    OriginateReason.CONGESTION: AttemptOutcome.FAILED,
}
# Asterisk 22 reports a busy (486) or unanswered (480) callee as Reason 0; the Q.850 cause on
# the callback channel's Hangup event says which.
CAUSE_OUTCOMES: Final[Mapping[int, AttemptOutcome]] = {
    17: AttemptOutcome.BUSY,  # user busy
    18: AttemptOutcome.NO_ANSWER,  # no user responding
    19: AttemptOutcome.NO_ANSWER,  # no answer from user
}

SURVEY_CONTEXT: Final = "siaga112-survey"  # asterisk-conf/extensions.conf
# The outbound endpoint to the carrier (asterisk-conf/pjsip.conf). Its channels start in the
# survey context, never in from-carrier, so the call tracker never takes them for callers.
CALLBACK_ENDPOINT: Final = "carrier-callback"
ACTION_PREFIX: Final = "siaga112-survey-"
SURVEY_ACTOR: Final = "survey"  # who stores the rating in the incident's timeline

_WINDOW = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_ID = re.compile(r"[1-9][0-9]{0,17}")


def callback_number(calls: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The first of an incident's calls (call id, caller number; first caller first) whose
    caller can be called back, with the number to dial, if any. The rule is an operator's
    call-back's (:func:`telephony.calls.legs.dial_number`): a caller the worklist can ring is
    never recorded here as withheld, and a service code, a malformed id or a SIM-less phone's
    IMEI is never dialled."""
    return next(((call_id, dialled) for call_id, number in calls
                 if (dialled := dial_number(number)) is not None), None)


def outcome_for_reason(
    response: str, reason: int | None, cause: int | None = None
) -> AttemptOutcome:
    """The outcome an OriginateResponse reports, made precise by the callback channel's hangup
    ``cause`` when it is known; anything unexpected counts as failed."""
    outcome = REASON_OUTCOMES.get(-1 if reason is None else reason, AttemptOutcome.FAILED)
    if outcome is AttemptOutcome.ANSWERED and response != "Success":
        return AttemptOutcome.FAILED
    if reason == 0 and cause is not None:
        return CAUSE_OUTCOMES.get(cause, outcome)
    return outcome


def after_unreached(
    attempts: int, max_attempts: int, retry_at: datetime
) -> tuple[SurveyState, datetime | None]:
    """The survey's state (and next attempt time) after its latest attempt went unreached."""
    if attempts >= max_attempts:
        return SurveyState.EXHAUSTED, None
    return SurveyState.SCHEDULED, retry_at


def after_survey(rating: int | None) -> tuple[AttemptOutcome, SurveyState]:
    """The attempt's outcome and the survey's state once the caller went through the survey."""
    if rating is None:
        return AttemptOutcome.NO_RATING, SurveyState.NO_RATING
    return AttemptOutcome.RATED, SurveyState.RATED


@dataclass(frozen=True)
class CallWindow:
    """Local hours callbacks may ring in, ``[start, end)``; wraps midnight if end < start."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a call window must not start where it ends")

    def allows(self, local: time) -> bool:
        """Whether a call may ring at local wall-clock time ``local``."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def earliest(self, at: datetime, zone: ZoneInfo) -> datetime:
        """``at`` if it falls in the window, else the window's next start (UTC)."""
        local = at.astimezone(zone)
        if self.allows(local.time()):
            return at
        day = local.date()
        if local.time() >= self.start:  # past today's window: tomorrow's
            day += timedelta(days=1)
        return datetime.combine(day, self.start, zone).astimezone(UTC)


# Callbacks ring in the daytime only: a caller resolved at 01:30 is asked after breakfast.
DEFAULT_CALL_WINDOW: Final = CallWindow(time(8), time(20))


def parse_call_window(text: str) -> CallWindow | None:
    """``"08:00-20:00"`` (local time) as a :class:`CallWindow`; ``""`` means any hour."""
    if not text.strip():
        return None
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected HH:MM-HH:MM, got {text!r}")
    hours_a, minutes_a, hours_b, minutes_b = (int(part) for part in match.groups())
    try:
        return CallWindow(time(hours_a, minutes_a), time(hours_b, minutes_b))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from exc


def action_id(survey_id: int, attempt: int) -> str:
    """The ActionID of an attempt's Originate; OriginateResponse carries it back."""
    return f"{ACTION_PREFIX}{survey_id}-{attempt}"


def originate_action(
    *, survey_id: int, attempt: int, number: str, caller_id: str, ring_seconds: float
) -> dict[str, str]:
    """The AMI Originate that calls ``number`` back into the survey context.

    ``Async`` so the action returns at once and the outcome comes as an OriginateResponse
    event, which carries the ActionID back; the channel's Uniqueid is the same id, so its
    Hangup event can be told apart too. The survey id and attempt ride along as channel
    variables for the dialplan.
    """
    dialled = dial_number(number)
    if dialled is None:
        raise ValueError(f"not a dialable number: {number!r}")
    return {
        "Action": "Originate",
        "ActionID": action_id(survey_id, attempt),
        # The carrier dials national numbers: a mobile number presented without its trunk 0
        # (812…) gets it back, and separators go.
        "Channel": f"PJSIP/{dialled}@{CALLBACK_ENDPOINT}",
        "Context": SURVEY_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "Timeout": str(round(ring_seconds * 1000)),
        "CallerID": caller_id,
        "Variable": f"SURVEY_ID={survey_id},SURVEY_ATTEMPT={attempt}",
        "ChannelId": action_id(survey_id, attempt),
        "Async": "true",
    }


def parse_survey_ids(survey_arg: str, attempt_arg: str) -> tuple[int, int] | None:
    """The survey id and attempt the dialplan passes to the FastAGI route, or ``None`` when
    either is not a positive whole number."""
    if _ID.fullmatch(survey_arg) is None or _ID.fullmatch(attempt_arg) is None:
        return None
    return int(survey_arg), int(attempt_arg)
