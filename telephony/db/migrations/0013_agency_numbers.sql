-- Transfers and conferences to agencies (telephony/transfers/). The numbers an operator can
-- hand a caller to (a station per area is fine), what each transfer leg was for, and the
-- operator's steps on an attended transfer or conference; the leg itself (times, outcome) is
-- its call_legs row (0011). A dispatch the operator made by phone says so.

CREATE TABLE agency_numbers (
    number_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_code text NOT NULL REFERENCES agencies (code),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    number      text NOT NULL CHECK (number ~ '^\+?[0-9]{3,20}$'),
    active      boolean NOT NULL DEFAULT true,
    UNIQUE (agency_code, number)
);

-- One row per transfer or conference leg (kind blind_transfer, attended_transfer,
-- conference); the channel is the operator's the AMI actions went to.
CREATE TABLE transfer_legs (
    leg_id           bigint PRIMARY KEY REFERENCES call_legs (leg_id),
    number_id        bigint NOT NULL REFERENCES agency_numbers (number_id),
    operator_channel text NOT NULL,
    dispatch_id      bigint REFERENCES dispatches (dispatch_id)
);

-- What the operator did on an attended transfer or conference: hand over, join, cancel,
-- leave (codes mirror telephony/transfers/model.py Step).
CREATE TABLE transfer_steps (
    step_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leg_id  bigint NOT NULL REFERENCES call_legs (leg_id),
    step    text NOT NULL CHECK (step IN ('hand_over', 'join', 'cancel', 'leave')),
    actor   text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX transfer_steps_leg_idx ON transfer_steps (leg_id, step_id);

ALTER TABLE dispatches ADD COLUMN by_phone boolean NOT NULL DEFAULT false;
