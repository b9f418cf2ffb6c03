-- Legs the line placed itself (transfers to agencies, call-backs) are logged by the dialplan to
-- the queue_log too (SIAGALEG, telephony/calls/backfill.py): the backfill applies what the line
-- did not hear. Until when the log's leg reports have been applied: the last-resort rule for a
-- by-phone dispatch whose leg nobody reported (telephony/incidents/dispatch_service.py) waits
-- until the log was read past the leg's ring time, so an agency that answered while the line
-- was down is not taken for one that did not. NULL: never read (the rule does not wait).
ALTER TABLE asterisk_log_cursors ADD COLUMN legs_read_at timestamptz;
