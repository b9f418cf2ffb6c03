-- A dispatch can be cancelled, with its reason on the incident's timeline: the agency
-- declined or did not answer. Until now the only way out of 'notified' was 'done', which put
-- the incident on scene with nobody there, and the console had no way at all: the agency
-- could never be dispatched to that incident again.
ALTER TABLE dispatches
    ADD COLUMN cancelled_at timestamptz,
    DROP CONSTRAINT dispatches_state_check,
    ADD CONSTRAINT dispatches_state_check CHECK (state IN (
        'notified', 'acknowledged', 'on_scene', 'done', 'cancelled'));

-- An agency is sent to an incident once at a time; again once its last dispatch is over.
DROP INDEX dispatches_active_idx;
CREATE UNIQUE INDEX dispatches_active_idx ON dispatches (incident_id, agency_code)
    WHERE state NOT IN ('done', 'cancelled');
