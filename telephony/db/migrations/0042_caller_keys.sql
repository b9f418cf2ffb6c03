-- Caller keys re-made by the rules telephony/calls/ids.py parse_caller_id applies now, so that
-- a caller's history is one, and shared with nobody else.
--
-- 1. One caller, one key, however the trunk presents the number: a number with the trunk 0
--    kept after the country code ("+62 (0)812...", "620812...") is the national number
--    0812.... It used to be keyed as presented, "620812...", so such a caller's calls,
--    labels and post-call results formed a history of their own, apart from the same
--    phone's calls presented as 0812... or +62812...: a prank number labelled under one
--    spelling started afresh under the other, and the call-back worklist listed the one
--    caller twice. "620" and a national number's 8-12 digits (not starting 0) become "62"
--    and those digits; any other key starting "620" (too short, or 0 again after it)
--    identifies nobody and becomes NULL, as a malformed number's.
-- 2. A placeholder IMEI identifies nobody (parse_caller_id's imei_key): a type allocation
--    code of zeros, or one digit repeated, which many unrelated phones without a real IMEI
--    present. Their calls shared one history; the key becomes NULL.
--
-- The bounds are ranges on the key, so the indexes by caller_key find the few rows; they
-- hold whatever the database's collation (one that weighs ":" as nothing still orders the
-- digits after "imei:"), and the regular expressions decide.
-- Labels are append-only for everyone else; the key is a copy of the call's, not the label.
ALTER TABLE call_labels DISABLE TRIGGER call_labels_append_only;

UPDATE calls SET caller_key = CASE WHEN caller_key ~ '^620[1-9][0-9]{7,11}$'
                                THEN '62' || substr(caller_key, 4) END
WHERE caller_key >= '620' AND caller_key < '621';
UPDATE call_screening SET caller_key = CASE WHEN caller_key ~ '^620[1-9][0-9]{7,11}$'
                                THEN '62' || substr(caller_key, 4) END
WHERE caller_key >= '620' AND caller_key < '621';
UPDATE call_labels SET caller_key = CASE WHEN caller_key ~ '^620[1-9][0-9]{7,11}$'
                                THEN '62' || substr(caller_key, 4) END
WHERE caller_key >= '620' AND caller_key < '621';

UPDATE calls SET caller_key = NULL
WHERE caller_key BETWEEN 'imei:00000000000000' AND 'imei:99999999999999'
  AND caller_key ~ '^imei:(0{8}[0-9]{6}|([0-9])\2{13})$';
UPDATE call_screening SET caller_key = NULL
WHERE caller_key BETWEEN 'imei:00000000000000' AND 'imei:99999999999999'
  AND caller_key ~ '^imei:(0{8}[0-9]{6}|([0-9])\2{13})$';
UPDATE call_labels SET caller_key = NULL
WHERE caller_key BETWEEN 'imei:00000000000000' AND 'imei:99999999999999'
  AND caller_key ~ '^imei:(0{8}[0-9]{6}|([0-9])\2{13})$';

ALTER TABLE call_labels ENABLE TRIGGER call_labels_append_only;
