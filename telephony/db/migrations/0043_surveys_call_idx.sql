-- A survey by the call whose caller it rings: a survey is not placed while another survey
-- call to the same caller (by caller_key, through the surveys' calls) rings or has just
-- ended (telephony/surveys/store.py claim_due), and without this the check read the whole
-- table, one row per resolved incident ever, for every due survey at every upkeep pass.
CREATE INDEX surveys_call_idx ON surveys (call_id);
