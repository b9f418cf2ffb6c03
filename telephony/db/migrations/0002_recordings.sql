-- Call recordings. Asterisk's MixMonitor writes <call_id>.wav while the call runs; the
-- recordings worker pairs the file with its call, measures and transcodes it, and files it in
-- the dated storage layout. This table is both the record of each recording and the worker's
-- durable work queue (state, attempts, lease), so a restart or a crash loses nothing.
--
-- An incident finds its recordings through its calls (JOIN recordings USING (call_id)), so a
-- recording pairs with an incident as soon as its call does, whichever comes first.

CREATE TABLE recordings (
    recording_id      bigserial PRIMARY KEY,
    call_id           text NOT NULL REFERENCES calls (call_id),
    -- 'mixed': both parties in one file. Separate legs would be further kinds of one call.
    kind              text NOT NULL DEFAULT 'mixed',
    state             text NOT NULL CHECK (state IN
                          ('pending', 'processing', 'done', 'failed', 'missing', 'expired')),
    source_file       text NOT NULL DEFAULT '',   -- name in Asterisk's monitor directory
    -- The call's arrival: dates the storage layout and starts the retention clock.
    started_at        timestamptz NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    claim_token       uuid,                       -- the worker holding the job ...
    -- ... until then, afterwards anyone may take it over; of a pending job: not before then.
    lease_until       timestamptz,
    reason            text,                       -- why failed or missing; a retry's last error
    duration_seconds  double precision,
    silence_share     double precision CHECK (silence_share BETWEEN 0 AND 1),
    loudness_dbfs     double precision,           -- NULL: digital silence throughout
    format            text,                       -- opus (Ogg Opus) or mp3
    storage_path      text,                       -- relative to the storage directory
    size_bytes        bigint,
    sha256            text,
    quarantine_path   text,                       -- where an unprocessable source was kept
    legal_hold        boolean NOT NULL DEFAULT false,  -- exempt from retention while set
    enqueued_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    expired_at        timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, kind)
);

-- What the worker claims: pending jobs and processing jobs whose lease may have run out.
CREATE INDEX recordings_queue_idx ON recordings (recording_id)
    WHERE state IN ('pending', 'processing');
-- What retention looks at.
CREATE INDEX recordings_retention_idx ON recordings (started_at) WHERE state = 'done';

-- The worker looks for recently ended calls that have no recording yet.
CREATE INDEX calls_ended_at_idx ON calls (ended_at);
