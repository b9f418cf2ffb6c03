-- One caller, one history key, however the trunk presents the number: a number with the
-- trunk 0 kept after the country code ("+62 (0)812...", "620812...") is the national
-- number 0812... (telephony/calls/ids.py parse_caller_id). It used to be keyed as presented,
-- "620812...", so such a caller's calls, labels and post-call results formed a history of
-- their own, apart from the same phone's calls presented as 0812... or +62812...: a prank
-- number labelled under one spelling started afresh under the other, and the call-back
-- worklist listed the one caller twice.
--
-- The keys are re-made by the rule parse_caller_id now applies: "620" and a national number's
-- 8-12 digits (not starting 0) become "62" and those digits; any other key starting "620"
-- (too short, or 0 again after it) identifies nobody and becomes NULL, as a malformed number's.
-- The bounds are a range on the key, so the indexes by caller_key find the few rows.
UPDATE calls SET caller_key = CASE WHEN caller_key ~ '^620[1-9][0-9]{7,11}$'
                                THEN '62' || substr(caller_key, 4) END
WHERE caller_key >= '620' AND caller_key < '621';

UPDATE call_screening SET caller_key = CASE WHEN caller_key ~ '^620[1-9][0-9]{7,11}$'
                                THEN '62' || substr(caller_key, 4) END
WHERE caller_key >= '620' AND caller_key < '621';

-- Labels are append-only for everyone else; the key is a copy of the call's, not the label.
ALTER TABLE call_labels DISABLE TRIGGER call_labels_append_only;
UPDATE call_labels SET caller_key = CASE WHEN caller_key ~ '^620[1-9][0-9]{7,11}$'
                                THEN '62' || substr(caller_key, 4) END
WHERE caller_key >= '620' AND caller_key < '621';
ALTER TABLE call_labels ENABLE TRIGGER call_labels_append_only;
