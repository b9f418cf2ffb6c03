"""The FastAGI route ``survey``: a caller-rating callback, once answered, runs the survey here.

The dialplan (``[siaga112-survey]``) passes the survey id and the attempt as the AGI
arguments (the channel variables the Originate set). Anything else is refused with one log
line and nothing changed; the dialplan then hangs up. With the database away the caller who
picked up is asked all the same; the service holds the answer until it is back.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ivr.survey import run_survey
from telephony.agi.channel import AgiChannel
from telephony.agi.server import AgiSession
from telephony.db.connection import DatabaseUnavailable
from telephony.surveys.model import parse_survey_ids
from telephony.surveys.store import Survey

log = logging.getLogger("telephony.surveys")


class SurveyAnswers(Protocol):
    """What the survey route needs of the survey service (it may run on another loop)."""

    async def begin(self, survey_id: int, attempt: int) -> bool:
        """The attempt was answered; ``False``: do not ask."""
        ...

    async def finish(self, survey_id: int, attempt: int, rating: int | None) -> Survey | None:
        """Store the caller's rating (or none) and close the survey."""
        ...


class SurveyApplication:
    """Runs the survey on an answered callback and hands the result to the service."""

    def __init__(self, surveys: SurveyAnswers) -> None:
        self._surveys = surveys

    async def handle(self, session: AgiSession) -> None:
        """One answered callback: ask only if the survey still wants an answer."""
        env = session.env
        ids = parse_survey_ids(env.get("agi_arg_1"), env.get("agi_arg_2"))
        if ids is None:
            log.warning("survey session %s refused: survey id and attempt expected, got %r %r",
                        env.uniqueid, env.get("agi_arg_1")[:40], env.get("agi_arg_2")[:40])
            return
        survey_id, attempt = ids
        try:
            if not await self._surveys.begin(survey_id, attempt):
                log.info("survey %d attempt %d: nothing to ask (no such attempt, or the survey "
                         "has its answer)", survey_id, attempt)
                return
        except DatabaseUnavailable as exc:
            # The caller picked up: ask all the same rather than hang up on them in silence
            # and ring again later. The answer is stored once the database is back, and a
            # survey that had its answer meanwhile keeps it (a rating is stored once).
            log.warning("survey %d attempt %d: database unavailable (%s); asked all the same, "
                        "the answer is stored when it is back", survey_id, attempt, exc)
        rating = await run_survey(AgiChannel(session))
        try:
            await self._surveys.finish(survey_id, attempt, rating)
        except DatabaseUnavailable as exc:
            log.error("survey %d attempt %d: rating %s not stored yet, database unavailable "
                      "(stored when it is back, unless the line restarts first): %s",
                      survey_id, attempt, rating, exc)
