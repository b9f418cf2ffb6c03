-- Call-backs of dropped and abandoned callers (telephony/callbacks/). The worklist itself is
-- derived from the call records (calls, incident_calls) and the call-backs placed (call_legs,
-- kind 'callback'); only a supervisor's closing of an entry is stored here. SQL for these
-- lives in telephony/callbacks/store.py; the reason codes mirror telephony/callbacks/model.py.

-- A supervisor took an entry off the list, at its latest call, with a reason. It covers that
-- call and the caller's earlier ones; a later call from the same caller opens a new entry.
CREATE TABLE callback_closures (
    closure_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id     text NOT NULL UNIQUE REFERENCES calls (call_id),
    reason      text NOT NULL
                CHECK (reason IN ('reached', 'unreachable', 'handled', 'prank', 'other')),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 300 AND note !~ '[\n\r]'),
    closed_by   text NOT NULL CHECK (closed_by <> ''),
    closed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX callback_closures_closed_at_idx ON callback_closures (closed_at);

-- The call-backs of the window, for the worklist (and the wallboard, which reads it often).
CREATE INDEX call_legs_callback_idx ON call_legs (requested_at) WHERE kind = 'callback';

-- A call-back's recording: MixMonitor on the operator's channel writes
-- <call_id>-callback<leg_id>.wav (the original call's id, then the leg's), which the recordings
-- worker pairs with the leg once it has ended and files beside the original call's recording,
-- as a recording of that call of kind 'callback' (recordings/domain.py). A call may have many
-- call-backs: the call's own recordings stay one per kind, a call-back's one per leg.
ALTER TABLE recordings
    ADD COLUMN leg_id bigint REFERENCES call_legs (leg_id),
    DROP CONSTRAINT recordings_kind_check,
    ADD CONSTRAINT recordings_kind_check
        CHECK (kind IN ('mixed', 'caller', 'line', 'callback')),
    ADD CONSTRAINT recordings_leg_check CHECK ((kind = 'callback') = (leg_id IS NOT NULL)),
    DROP CONSTRAINT recordings_call_id_kind_key;

CREATE UNIQUE INDEX recordings_call_kind_idx ON recordings (call_id, kind) WHERE leg_id IS NULL;
CREATE UNIQUE INDEX recordings_leg_idx ON recordings (leg_id) WHERE leg_id IS NOT NULL;
