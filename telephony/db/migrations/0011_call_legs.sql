-- Legs the line places itself on a call: transfers and conferences to agencies, call-backs
-- of dropped callers (telephony/calls/legs.py). A service opens the row; the dialplan's
-- UserEvent SiagaLeg reports its progress, which the call store writes into the times and
-- the outcome (telephony/calls/store.py, LegRepository). Codes mirror telephony/calls/legs.py.

CREATE TABLE call_legs (
    leg_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL
                  CHECK (kind IN ('blind_transfer', 'attended_transfer', 'conference',
                                  'callback')),
    call_id       text NOT NULL REFERENCES calls (call_id),
    incident_id   bigint REFERENCES incidents (incident_id),
    operator      text NOT NULL,
    actor         text NOT NULL,
    number        text NOT NULL CHECK (number ~ '^\+?[0-9]{3,20}$'),
    target        text NOT NULL DEFAULT '',
    requested_at  timestamptz NOT NULL DEFAULT now(),
    channel_id    text,
    rang_at       timestamptz,
    answered_at   timestamptz,
    ended_at      timestamptz,
    outcome       text CHECK (outcome IN ('answered', 'no_answer', 'busy', 'cancelled',
                                          'failed')),
    status        text NOT NULL DEFAULT '',
    CHECK (outcome IS NULL OR ended_at IS NOT NULL)
);

CREATE INDEX call_legs_call_idx ON call_legs (call_id, leg_id);
CREATE INDEX call_legs_incident_idx ON call_legs (incident_id) WHERE incident_id IS NOT NULL;
