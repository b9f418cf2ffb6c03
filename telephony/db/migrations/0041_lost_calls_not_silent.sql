-- A call the network or the line cut no longer looks silent (CallFeatures.looks_silent,
-- telephony/screening/features.py): a caller whose call dropped in the IVR (a network
-- hang-up cause, telephony/asterisk/causes.py NETWORK_CAUSES) or whom an Asterisk restart
-- or crash cut (cut_reason) did not leave; the call-back worklist lists them for that very
-- reason. Counted silent, the caller who rang straight back had the new call lowered as a
-- nuisance number's: one silent call within the hour is enough, and the operator read
-- "100% dari 1 panggilan sebelumnya diam atau iseng".
--
-- PostgreSQL 15 cannot change a generated column's expression, so the column is made again
-- (its index with it, and the view of 0015 that shows every column of calls), as in 0037.
-- The rule on the row alone, as 0037 has it, plus:
--   shape.caller_ended       <- ... AND the call was not lost: cut_reason IS NULL and its
--                               hangup_cause is none of NETWORK_CAUSES
DROP VIEW call_outcomes;
ALTER TABLE calls DROP COLUMN looks_silent;
ALTER TABLE calls
    ADD COLUMN looks_silent boolean NOT NULL GENERATED ALWAYS AS (
        COALESCE(
            ended_at IS NOT NULL
            AND ivr_first_key_ms IS NULL
            AND cut_reason IS NULL
            AND COALESCE(hangup_cause NOT IN (27, 34, 38, 41, 42, 44, 47, 102), true)
            AND ((answered_at IS NULL AND queue IS NULL)
                 OR (answered_at IS NOT NULL
                     AND COALESCE(ended_by, 'caller') = 'caller'
                     AND COALESCE(talk_seconds::float8,
                                  extract(epoch FROM ended_at - answered_at)::float8) <= 5)),
            false)
    ) STORED;
CREATE INDEX calls_caller_history_idx ON calls (caller_key, arrived_at)
    INCLUDE (call_id, ended_at, looks_silent)
    WHERE caller_key IS NOT NULL;

CREATE VIEW call_outcomes AS
SELECT c.*,
       CASE
           WHEN c.answered_at IS NOT NULL OR c.completed_at IS NOT NULL THEN 'answered'
           WHEN c.abandoned_at IS NOT NULL THEN 'abandoned'
           WHEN c.vanished THEN 'vanished'
           WHEN c.queue IS NULL AND c.ended_at IS NOT NULL THEN 'ended_in_ivr'
           WHEN c.ended_at IS NULL THEN 'in_progress'
           ELSE 'ended_in_queue'
       END AS disposition
FROM calls c;

-- The post-call score reads the cause and the cut too, and a cut can be written after the
-- end (a crash is known when Asterisk is back): such a write makes the call due again.
CREATE TRIGGER call_screening_due_call_lost AFTER UPDATE OF cut_reason, hangup_cause ON calls
    FOR EACH ROW WHEN (NEW.ended_at IS NOT NULL
                       AND (NEW.cut_reason IS DISTINCT FROM OLD.cut_reason
                            OR NEW.hangup_cause IS DISTINCT FROM OLD.hangup_cause))
    EXECUTE FUNCTION call_screening_due_add();

-- Post-call results already stored for such calls: an unanswered one follows the new rule
-- (the recording cannot make it silent, 0037); each one still within the post-call upkeep's
-- reach (SCORING_MAX_AGE, 3 days) is scored again, its hang-up in the menu no longer held
-- against it.
UPDATE call_screening s SET looked_silent = false
  FROM calls c
 WHERE c.call_id = s.call_id AND s.looked_silent AND c.answered_at IS NULL
   AND (c.cut_reason IS NOT NULL OR c.hangup_cause IN (27, 34, 38, 41, 42, 44, 47, 102));
INSERT INTO call_screening_due (call_id)
SELECT call_id FROM calls
 WHERE ended_at >= now() - interval '3 days'
   AND (cut_reason IS NOT NULL OR hangup_cause IN (27, 34, 38, 41, 42, 44, 47, 102));
