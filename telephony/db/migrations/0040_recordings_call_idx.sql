-- A call's recordings by its id: a call's page and an incident's list them, the legal hold
-- sets them, and a legal hold is the call's (a call-back recorded after it inherits it, and
-- retention keeps every recording of a held call). The unique index of 0014 covers only the
-- rows without a leg, so the planner could not use it for any of these: each read the whole
-- table, one row per call ever recorded.
CREATE INDEX recordings_call_idx ON recordings (call_id);
