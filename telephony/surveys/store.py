"""SQL for the survey family of tables: ``surveys`` (one caller-rating callback per resolved
incident) and ``survey_attempts`` (every call placed for it).

Plain reads and writes only: the rules live in ``telephony.surveys.model`` and the
transactions, locking order and clock in ``telephony.surveys.service``. Every method takes the
connection to run on and, where it writes a time, the instant to write: the service's clock is
the only one, so tests can move it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from telephony.calls.outages import OPEN_CALL_HORIZON
from telephony.db.rows import from_row
from telephony.surveys.model import FINAL_STATES, AttemptOutcome, SurveyState


@dataclass(frozen=True)
class Survey:
    """A survey as stored."""

    survey_id: int
    incident_id: int
    call_id: str | None
    number: str
    state: SurveyState
    attempts: int
    next_attempt_at: datetime | None
    rating: int | None
    detail: str
    resolved_at: datetime
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """One callback as stored; ``outcome`` ``None`` while it rings."""

    survey_id: int
    attempt: int
    action_id: str
    number: str
    started_at: datetime
    deadline: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: AttemptOutcome | None
    reason_code: int | None
    hangup_cause: int | None
    channel: str
    detail: str


@dataclass(frozen=True)
class ResolvedIncident:
    """A resolved (or since closed) incident that has no survey yet."""

    incident_id: int
    resolved_at: datetime


@dataclass(frozen=True)
class DueSurvey:
    """A scheduled survey whose next attempt is due, locked for this transaction."""

    survey_id: int
    incident_id: int
    number: str
    attempts: int
    incident_rating: int | None  # a rating already on the incident: no call is needed
    caller_key: str | None  # whom it rings (telephony.calls.ids), however the number is written


class SurveyRepository:
    """The SQL of surveys and their attempts."""

    async def resolved_without_survey(
        self, connection: asyncpg.Connection, *, since: datetime, limit: int
    ) -> list[ResolvedIncident]:
        """Incidents resolved at or after ``since`` (and resolved or closed now) that have no
        survey, first resolved first."""
        rows = await connection.fetch(
            """
            SELECT i.incident_id, r.at AS resolved_at
            FROM incidents i
            CROSS JOIN LATERAL (
                SELECT min(e.at) AS at FROM incident_events e
                WHERE e.incident_id = i.incident_id AND e.kind = 'status'
                  AND e.detail ->> 'to' = 'resolved'
            ) r
            WHERE i.status IN ('resolved', 'closed')
              AND i.status_changed_at >= $1  -- closing comes after resolving
              AND r.at >= $1
              AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.incident_id = i.incident_id)
            ORDER BY r.at
            LIMIT $2
            """,
            since, limit,
        )
        return [from_row(ResolvedIncident, row) for row in rows]

    async def caller_numbers(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[tuple[str, str]]:
        """(call id, caller number) of the incident's calls, first arrival first."""
        rows = await connection.fetch(
            """
            SELECT c.call_id, c.caller_number
            FROM incident_calls ic JOIN calls c USING (call_id)
            WHERE ic.incident_id = $1
            ORDER BY c.arrived_at NULLS LAST, ic.linked_at, c.call_id
            """,
            incident_id,
        )
        return [(row["call_id"], row["caller_number"]) for row in rows]

    async def insert_survey(
        self, connection: asyncpg.Connection, *, incident_id: int, call_id: str | None,
        number: str, state: SurveyState, next_attempt_at: datetime | None, detail: str,
        resolved_at: datetime, now: datetime,
    ) -> int | None:
        """A new survey; ``None`` if the incident has one already (another worker was first)."""
        value = await connection.fetchval(
            """
            INSERT INTO surveys (incident_id, call_id, number, state, next_attempt_at, detail,
                                 resolved_at, created_at, updated_at, finished_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8,
                    CASE WHEN $4 = ANY($9::text[]) THEN $8::timestamptz END)
            ON CONFLICT (incident_id) DO NOTHING
            RETURNING survey_id
            """,
            incident_id, call_id, number, state.value, next_attempt_at, detail, resolved_at,
            now, sorted(FINAL_STATES),
        )
        return int(value) if value is not None else None

    async def in_flight_count(self, connection: asyncpg.Connection) -> int:
        """How many attempts ring or run their survey right now."""
        value = await connection.fetchval(
            "SELECT count(*) FROM survey_attempts WHERE outcome IS NULL OR outcome = 'answered'"
        )
        return int(value)

    async def claim_due(
        self, connection: asyncpg.Connection, now: datetime, *, limit: int,
        quiet: timedelta = timedelta(0),
    ) -> list[DueSurvey]:
        """Scheduled surveys due at ``now``, locked (skipping any another worker holds).

        A survey whose caller is on the line now (a call of theirs, by ``caller_key``, so
        ``0812…`` and ``+62812…`` alike, that has not ended), or whose call ended less than
        ``quiet`` ago, is left scheduled for a later pass: a rating call must never ring a
        phone that is on a new emergency call, nor follow one at once. An operator's call-back
        of one of their calls (a ``callback`` leg) is such a call too, though the line keeps
        no ``calls`` row of it: without it, the survey rang in as call waiting while the
        caller told the operator what happened. A call (or call-back) asked for more than
        :data:`OPEN_CALL_HORIZON` ago and never marked ended (its end went unrecorded) holds
        nothing up. Nor is a survey placed while another survey's call to the same caller
        rings or runs, or ended less than ``quiet`` ago: a caller with two incidents resolved
        together was rung twice at once (the second call busy, or call waiting); of two due
        in one pass only the first is returned.
        """
        rows = await connection.fetch(
            """
            SELECT s.survey_id, s.incident_id, s.number, s.attempts, i.rating AS incident_rating,
                   (SELECT o.caller_key FROM calls o WHERE o.call_id = s.call_id) AS caller_key
            FROM surveys s JOIN incidents i USING (incident_id)
            WHERE s.state = 'scheduled' AND s.next_attempt_at <= $1
              AND NOT EXISTS (
                  SELECT 1 FROM calls o JOIN calls c ON c.caller_key = o.caller_key
                  JOIN surveys other ON other.call_id = c.call_id
                  JOIN survey_attempts a ON a.survey_id = other.survey_id
                  WHERE o.call_id = s.call_id AND other.survey_id <> s.survey_id
                    AND (a.outcome IS NULL OR a.outcome = 'answered'
                         OR a.ended_at > $1 - $4::interval))
              AND NOT EXISTS (
                  SELECT 1 FROM calls o JOIN calls c ON c.caller_key = o.caller_key
                  WHERE o.call_id = s.call_id
                    AND ((c.ended_at IS NULL AND c.arrived_at >= $1 - $3::interval)
                         OR c.ended_at > $1 - $4::interval
                         OR EXISTS (
                             SELECT 1 FROM call_legs l
                             WHERE l.call_id = c.call_id AND l.kind = 'callback'
                               AND ((l.ended_at IS NULL AND l.requested_at >= $1 - $3::interval)
                                    OR l.ended_at > $1 - $4::interval))))
            ORDER BY s.next_attempt_at
            LIMIT $2
            FOR UPDATE OF s SKIP LOCKED
            """,
            now, limit, OPEN_CALL_HORIZON, quiet,
        )
        due: list[DueSurvey] = []
        for survey in (from_row(DueSurvey, row) for row in rows):
            if survey.caller_key is None or all(survey.caller_key != d.caller_key for d in due):
                due.append(survey)
        return due

    async def start_attempt(
        self, connection: asyncpg.Connection, *, survey_id: int, attempt: int, action_id: str,
        number: str, now: datetime, deadline: datetime,
    ) -> None:
        """Record a call about to be placed; the survey is then calling."""
        await connection.execute(
            """
            INSERT INTO survey_attempts (survey_id, attempt, action_id, number, started_at,
                                         deadline)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            survey_id, attempt, action_id, number, now, deadline,
        )
        await connection.execute(
            """
            UPDATE surveys SET state = 'calling', attempts = $2, next_attempt_at = NULL,
                               updated_at = $3
            WHERE survey_id = $1
            """,
            survey_id, attempt, now,
        )

    async def lock_survey(self, connection: asyncpg.Connection, survey_id: int) -> Survey | None:
        """The survey, locked for this transaction."""
        row = await connection.fetchrow(
            "SELECT * FROM surveys WHERE survey_id = $1 FOR UPDATE", survey_id
        )
        return from_row(Survey, row) if row is not None else None

    async def survey(self, connection: asyncpg.Connection, survey_id: int) -> Survey | None:
        """One survey."""
        row = await connection.fetchrow("SELECT * FROM surveys WHERE survey_id = $1", survey_id)
        return from_row(Survey, row) if row is not None else None

    async def survey_of_incident(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> Survey | None:
        """The incident's survey, if it has one."""
        row = await connection.fetchrow(
            "SELECT * FROM surveys WHERE incident_id = $1", incident_id
        )
        return from_row(Survey, row) if row is not None else None

    async def attempts(self, connection: asyncpg.Connection, survey_id: int) -> list[Attempt]:
        """A survey's attempts, first first."""
        rows = await connection.fetch(
            "SELECT * FROM survey_attempts WHERE survey_id = $1 ORDER BY attempt", survey_id
        )
        return [from_row(Attempt, row) for row in rows]

    async def attempt(
        self, connection: asyncpg.Connection, survey_id: int, attempt: int
    ) -> Attempt | None:
        """One attempt."""
        row = await connection.fetchrow(
            "SELECT * FROM survey_attempts WHERE survey_id = $1 AND attempt = $2",
            survey_id, attempt,
        )
        return from_row(Attempt, row) if row is not None else None

    async def attempt_by_action(
        self, connection: asyncpg.Connection, action_id: str
    ) -> Attempt | None:
        """The attempt whose Originate had ``action_id``."""
        row = await connection.fetchrow(
            "SELECT * FROM survey_attempts WHERE action_id = $1", action_id
        )
        return from_row(Attempt, row) if row is not None else None

    async def expired_attempts(
        self, connection: asyncpg.Connection, now: datetime, *, limit: int
    ) -> list[Attempt]:
        """Attempts still in flight past their deadline, oldest deadline first."""
        rows = await connection.fetch(
            """
            SELECT * FROM survey_attempts
            WHERE (outcome IS NULL OR outcome = 'answered') AND deadline < $1
            ORDER BY deadline
            LIMIT $2
            """,
            now, limit,
        )
        return [from_row(Attempt, row) for row in rows]

    async def mark_answered(
        self, connection: asyncpg.Connection, *, survey_id: int, attempt: int, now: datetime,
        deadline: datetime, reason_code: int | None, channel: str,
        over: Collection[AttemptOutcome],
    ) -> bool:
        """The caller picked up: the attempt is answered until ``deadline``. Applies to an
        attempt still ringing or with an outcome in ``over``; ``False`` if it had another."""
        status = await connection.execute(
            """
            UPDATE survey_attempts SET
                outcome = 'answered', answered_at = coalesce(answered_at, $3),
                deadline = $4, ended_at = NULL,
                reason_code = coalesce($5, reason_code),
                channel = CASE WHEN $6 = '' THEN channel ELSE $6 END
            WHERE survey_id = $1 AND attempt = $2
              AND (outcome IS NULL OR outcome = ANY($7::text[]))
            """,
            survey_id, attempt, now, deadline, reason_code, channel,
            sorted(o.value for o in over),
        )
        return status != "UPDATE 0"

    async def end_attempt(
        self, connection: asyncpg.Connection, *, survey_id: int, attempt: int,
        outcome: AttemptOutcome, now: datetime, detail: str = "",
        reason_code: int | None = None, channel: str = "",
        over: Collection[AttemptOutcome] = (),
    ) -> bool:
        """Give the attempt its final ``outcome``. Applies to an attempt still ringing or with
        an outcome in ``over``; ``False`` if it had another (the first word stands)."""
        status = await connection.execute(
            """
            UPDATE survey_attempts SET
                outcome = $3, ended_at = $4, detail = $5,
                reason_code = coalesce($6, reason_code),
                channel = CASE WHEN $7 = '' THEN channel ELSE $7 END
            WHERE survey_id = $1 AND attempt = $2
              AND (outcome IS NULL OR outcome = ANY($8::text[]))
            """,
            survey_id, attempt, outcome.value, now, detail, reason_code, channel,
            sorted(o.value for o in over),
        )
        return status != "UPDATE 0"

    async def set_hangup(
        self, connection: asyncpg.Connection, *, survey_id: int, attempt: int, cause: int | None,
        outcome: AttemptOutcome | None,
    ) -> None:
        """Record the hangup cause of the attempt's channel, and its outcome as refined by it."""
        await connection.execute(
            """
            UPDATE survey_attempts SET hangup_cause = $3, outcome = $4
            WHERE survey_id = $1 AND attempt = $2
            """,
            survey_id, attempt, cause, None if outcome is None else outcome.value,
        )

    async def set_state(
        self, connection: asyncpg.Connection, survey_id: int, state: SurveyState, *,
        now: datetime, next_attempt_at: datetime | None = None, rating: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Move the survey to ``state`` (a final state also stamps ``finished_at``)."""
        await connection.execute(
            """
            UPDATE surveys SET
                state = $2, next_attempt_at = $3, rating = $4,
                detail = coalesce($5, detail), updated_at = $6,
                finished_at = CASE WHEN $2 = ANY($7::text[]) THEN $6::timestamptz END
            WHERE survey_id = $1
            """,
            survey_id, state.value, next_attempt_at, rating, detail, now, sorted(FINAL_STATES),
        )

