-- Calls, their append-only event log, queue visits, operators and their states, shifts.

CREATE TABLE shifts (
    name        text PRIMARY KEY,
    starts_at   time NOT NULL UNIQUE
);

CREATE TABLE operators (
    operator      text PRIMARY KEY,           -- Asterisk interface, e.g. PJSIP/op1001
    display_name  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operator_skills (
    operator  text NOT NULL REFERENCES operators (operator) ON DELETE CASCADE,
    skill     text NOT NULL,                  -- medical, fire, security, disaster, javanese ...
    level     smallint NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 5),
    PRIMARY KEY (operator, skill)
);

-- One row per caller channel, kept current from the facts below.
CREATE TABLE calls (
    call_id                    text PRIMARY KEY,  -- Asterisk Uniqueid of the caller's channel
    linked_id                  text,
    channel                    text,
    caller_number              text NOT NULL DEFAULT '',
    caller_name                text NOT NULL DEFAULT '',
    line                       text,              -- 112 or 119
    arrived_at                 timestamptz,
    shift_day                  date,              -- shift attributed by arrival
    shift_name                 text,
    ivr_choice                 text,
    ivr_outcome                text,              -- chosen, no_input, invalid, direct, failopen
    ivr_category               text,              -- emergency, complaint, information
    ivr_skill                  text,
    ivr_queue                  text,
    queue                      text,              -- first queue joined
    queue_joined_at            timestamptz,
    queue_position             integer,           -- position on arrival in that queue
    queue_left_at              timestamptz,
    answered_queue             text,
    operator                   text,
    answered_at                timestamptz,
    wait_seconds               integer,
    ring_seconds               integer,
    talk_seconds               integer,
    completed_at               timestamptz,
    ended_by                   text,              -- caller, agent, transfer
    abandoned_at               timestamptz,
    abandon_queue              text,
    abandon_original_position  integer,
    abandon_final_position     integer,
    abandon_wait_seconds       integer,
    ended_at                   timestamptz,
    hangup_cause               integer,
    hangup_cause_text          text,
    vanished                   boolean NOT NULL DEFAULT false,
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX calls_arrived_at_idx ON calls (arrived_at);
CREATE INDEX calls_open_idx ON calls (call_id) WHERE ended_at IS NULL;
CREATE INDEX calls_shift_idx ON calls (shift_day, shift_name);

-- Append-only: every fact as it was learnt. The dedupe key makes replays harmless.
CREATE TABLE call_events (
    event_id    bigserial PRIMARY KEY,
    dedupe_key  text NOT NULL UNIQUE,
    call_id     text,
    kind        text NOT NULL,
    at          timestamptz NOT NULL,
    body        jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX call_events_call_idx ON call_events (call_id, at);

-- A caller may visit several queues (skill queue, then the overflow queue).
CREATE TABLE queue_visits (
    call_id        text NOT NULL REFERENCES calls (call_id),
    queue          text NOT NULL,
    joined_at      timestamptz NOT NULL,
    join_position  integer NOT NULL,
    left_at        timestamptz,
    left_position  integer,
    PRIMARY KEY (call_id, queue, joined_at)
);

-- Operator (queue member) states, append-only, and the current state per queue.
CREATE TABLE operator_state_changes (
    operator      text NOT NULL,
    queue         text NOT NULL,
    at            timestamptz NOT NULL,
    state         text NOT NULL,
    paused        boolean NOT NULL,
    pause_reason  text NOT NULL DEFAULT '',
    shift_day     date NOT NULL,
    shift_name    text NOT NULL,
    PRIMARY KEY (operator, queue, at, state, paused)
);

CREATE TABLE queue_members (
    operator      text NOT NULL,
    queue         text NOT NULL,
    state         text NOT NULL,
    paused        boolean NOT NULL,
    pause_reason  text NOT NULL DEFAULT '',
    since         timestamptz NOT NULL,
    PRIMARY KEY (operator, queue)
);

-- Each state lasts until the next change for that member; attributed to the shift it began in.
CREATE VIEW operator_intervals AS
SELECT operator, queue, state, paused, pause_reason, shift_day, shift_name,
       at AS started_at,
       lead(at) OVER (PARTITION BY operator, queue ORDER BY at) AS ended_at
FROM operator_state_changes;

-- What happened to each call, in one word, for reports.
CREATE VIEW call_outcomes AS
SELECT c.*,
       CASE
           WHEN c.answered_at IS NOT NULL OR c.completed_at IS NOT NULL THEN 'answered'
           WHEN c.abandoned_at IS NOT NULL THEN 'abandoned'
           WHEN c.vanished THEN 'vanished'
           WHEN c.queue IS NULL AND c.ended_at IS NOT NULL THEN 'ended_in_ivr'
           WHEN c.ended_at IS NULL THEN 'in_progress'
           ELSE 'ended_in_queue'
       END AS disposition
FROM calls c;
