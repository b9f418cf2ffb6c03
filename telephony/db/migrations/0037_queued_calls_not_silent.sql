-- A call that joined a queue and was never answered no longer looks silent
-- (CallFeatures.looks_silent, telephony/screening/features.py): nobody was there to hear the
-- caller, and a 119 caller has no key to press at all. Counted silent, a caller who gave up
-- in a busy queue and rang straight back (the caller the call-back worklist lists as
-- abandoned) had the new call lowered as a nuisance number's: one silent call within the hour
-- is enough, and the operator read "100% dari 1 panggilan sebelumnya diam atau iseng".
--
-- PostgreSQL 15 cannot change a generated column's expression, so the column is made again
-- (its index with it, and the view of 0015 that shows every column of calls). The rule on
-- the row alone, as 0004 maps it, plus:
--   shape.queued             <- queue IS NOT NULL (set when the call first joined a queue)
DROP VIEW call_outcomes;
ALTER TABLE calls DROP COLUMN looks_silent;
ALTER TABLE calls
    ADD COLUMN looks_silent boolean NOT NULL GENERATED ALWAYS AS (
        COALESCE(
            ended_at IS NOT NULL
            AND ivr_first_key_ms IS NULL
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

-- Post-call results already stored for such calls follow the rule too: unanswered, the
-- recording cannot make them silent, so the new rule's answer is false whatever it heard.
UPDATE call_screening s SET looked_silent = false
  FROM calls c
 WHERE c.call_id = s.call_id AND s.looked_silent
   AND c.answered_at IS NULL AND c.queue IS NOT NULL;
