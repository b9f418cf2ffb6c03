-- Caller-rating surveys: once an incident is resolved the line calls its caller back (AMI
-- Originate) into a short IVR survey. One survey per incident; every call placed for it is an
-- attempt. All of the callback's state lives here, so a restart loses nothing and a callback
-- in flight when the server died is retried. The code lists in CHECK constraints mirror
-- telephony/surveys/model.py.

CREATE TABLE surveys (
    survey_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id      bigint NOT NULL UNIQUE REFERENCES incidents (incident_id),
    call_id          text REFERENCES calls (call_id),   -- the call whose number is called back
    number           text NOT NULL DEFAULT '',          -- '' when no callback is possible
    state            text NOT NULL CHECK (state IN (
                         'scheduled', 'calling', 'rated', 'no_rating', 'exhausted',
                         'not_possible')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    rating           smallint CHECK (rating BETWEEN 1 AND 5),
    detail           text NOT NULL DEFAULT '',          -- why not possible, exhausted, ...
    resolved_at      timestamptz NOT NULL,              -- when the incident became resolved
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,                       -- reached a final state
    CHECK ((state = 'scheduled') = (next_attempt_at IS NOT NULL)),
    CHECK ((state = 'rated') = (rating IS NOT NULL)),
    CHECK ((state IN ('scheduled', 'calling')) = (finished_at IS NULL))
);

CREATE INDEX surveys_due_idx ON surveys (next_attempt_at) WHERE state = 'scheduled';

-- One row per call placed. An attempt is in flight while its outcome is NULL (ringing) or
-- 'answered' (the caller is in the survey); past its deadline it is 'lost' and retried.
CREATE TABLE survey_attempts (
    survey_id    bigint NOT NULL REFERENCES surveys (survey_id),
    attempt      integer NOT NULL CHECK (attempt >= 1),
    action_id    text NOT NULL UNIQUE,                  -- Originate's ActionID and ChannelId
    number       text NOT NULL,
    started_at   timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    outcome      text CHECK (outcome IN (
                     'answered', 'no_answer', 'busy', 'failed', 'lost', 'rated', 'no_rating')),
    reason_code  integer,                               -- OriginateResponse Reason
    hangup_cause integer,                               -- Q.850 cause of the channel's Hangup
    channel      text NOT NULL DEFAULT '',
    detail       text NOT NULL DEFAULT '',
    PRIMARY KEY (survey_id, attempt),
    CHECK ((outcome IS NULL OR outcome = 'answered') = (ended_at IS NULL))
);

CREATE INDEX survey_attempts_in_flight_idx ON survey_attempts (deadline)
    WHERE outcome IS NULL OR outcome = 'answered';

-- Finding resolved incidents that have no survey yet.
CREATE INDEX incidents_resolved_idx ON incidents (status_changed_at)
    WHERE status IN ('resolved', 'closed');
