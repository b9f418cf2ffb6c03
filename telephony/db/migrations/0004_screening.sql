-- Prank screening: what the IVR published about each call, the caller identity its history is
-- kept under, operator labels, and the post-call score. SQL for these lives in
-- telephony/db/screening.py; the semantics it must agree with in telephony/screening/features.py.

ALTER TABLE calls
    -- parse_caller_id(caller_number).key: E.164 digits or imei:<14 digits>; NULL when the
    -- number is withheld or malformed (such a call has no history).
    ADD COLUMN caller_key        text,
    ADD COLUMN ivr_first_key_ms  integer,      -- IVR_FIRST_KEY_MS; NULL: no key pressed
    ADD COLUMN ivr_invalid_keys  integer,      -- IVR_INVALID_KEYS
    ADD COLUMN prank_score       real,         -- IVR_SCORE: the pre-queue score, in [0, 1]
    ADD COLUMN prank_reasons     text,         -- IVR_REASONS, "; "-separated, as shown
    ADD COLUMN queue_priority    integer,      -- IVR_PRIORITY: the priority screening chose
    ADD COLUMN screening         text,         -- IVR_SCREENING: pressed | spoke | timeout
    -- What the row alone says about silence, for a call not yet post-call scored: the
    -- CallFeatures.looks_silent rule of telephony/screening/features.py without a recording
    -- (silence_share unknown). Mapping, column by column:
    --   ivr.pressed_a_key        <- ivr_first_key_ms IS NOT NULL
    --   shape.answered           <- answered_at IS NOT NULL
    --   shape.caller_ended       <- ended_by IS NULL OR ended_by = 'caller'
    --   shape.talk_seconds       <- talk_seconds, else ended_at - answered_at
    --   shape.hung_up_on_answer  <- caller_ended AND talk <= 5 (QUICK_HANGUP_SECONDS)
    -- Only an ended call can look silent: a call still in progress is not yet evidence.
    -- Kept in step with telephony.screening.service.call_features by a loopback test.
    ADD COLUMN looks_silent      boolean NOT NULL GENERATED ALWAYS AS (
        COALESCE(
            ended_at IS NOT NULL
            AND ivr_first_key_ms IS NULL
            AND (answered_at IS NULL
                 OR (COALESCE(ended_by, 'caller') = 'caller'
                     AND COALESCE(talk_seconds::float8,
                                  extract(epoch FROM ended_at - answered_at)::float8) <= 5)),
            false)
    ) STORED;

-- A caller's history is three range scans by caller_key, one per table, answered from the
-- indexes alone and merged by call id (telephony/db/screening.py): no per-call probes, so a
-- number with thousands of calls costs a few milliseconds. Hence call_labels and
-- call_screening carry copies of their call's caller_key (and arrived_at), taken from calls
-- when the row is written; both are fixed once the call has started.
CREATE INDEX calls_caller_history_idx ON calls (caller_key, arrived_at)
    INCLUDE (call_id, ended_at, looks_silent)
    WHERE caller_key IS NOT NULL;

-- Operator labels, append-only: a correction is a newer event for the same call.
CREATE TABLE call_labels (
    label_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id      text NOT NULL REFERENCES calls (call_id),
    caller_key   text,                         -- the call's, for the caller's history
    label        text NOT NULL CHECK (label IN ('genuine', 'prank', 'silent', 'accidental',
                                                'test')),
    labelled_by  text NOT NULL CHECK (labelled_by <> ''),
    labelled_at  timestamptz NOT NULL DEFAULT now(),
    note         text NOT NULL DEFAULT ''
);

-- The label a call has at an instant: its latest event then (ties: the later entry).
CREATE INDEX call_labels_latest_idx ON call_labels (call_id, labelled_at DESC, label_id DESC)
    INCLUDE (label);
-- The same, for every call of one caller in one scan.
CREATE INDEX call_labels_caller_idx
    ON call_labels (caller_key, call_id, labelled_at DESC, label_id DESC)
    INCLUDE (label)
    WHERE caller_key IS NOT NULL;

CREATE FUNCTION call_labels_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'call_labels is append-only: correct a label with a newer one';
END
$$;

CREATE TRIGGER call_labels_append_only BEFORE UPDATE OR DELETE ON call_labels
    FOR EACH ROW EXECUTE FUNCTION call_labels_append_only();

-- The post-call score of each ended call, redone when its recording's silence share arrives.
CREATE TABLE call_screening (
    call_id        text PRIMARY KEY REFERENCES calls (call_id),
    caller_key     text,                       -- the call's, for the caller's history
    arrived_at     timestamptz,                -- the call's, likewise
    looked_silent  boolean NOT NULL,           -- CallFeatures.looks_silent, recording included
    post_score     real NOT NULL CHECK (post_score BETWEEN 0 AND 1),
    post_reasons   jsonb NOT NULL,             -- [{code, text, contribution}], largest first
    silence_share  double precision,           -- the recording's, NULL if scored without one
    scored_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX call_screening_history_idx ON call_screening (caller_key, arrived_at)
    INCLUDE (call_id, looked_silent)
    WHERE caller_key IS NOT NULL;
