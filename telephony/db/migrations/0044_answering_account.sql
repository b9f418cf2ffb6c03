-- Who answered a call, and with which wrap-up, as it was when the call was answered.
--
-- A call records the phone that answered it (calls.operator, an interface such as
-- PJSIP/op1001), and the reports used to name that phone by the account working at it now
-- (account_operators): after two operators swapped desks, last night's shift report gave
-- last night's calls to this morning's operator. And a report took one automatic wrap-up
-- (the settings file's) for every queue, although an admin sets each queue's own
-- (queue_settings.wrapup_seconds, which app_queue applies after a call answered in it).
--
-- So each call row keeps, beside what it has, copies taken when the facts are recorded (a
-- few milliseconds after Asterisk's event; the recorder writes nothing else in between):
--   answered_account: the account working at the answering phone (account_operators), set
--                     when calls.operator is first set;
--   rung_accounts:    per phone of rung_operators (same order), the account working at it
--                     when it was first rung; NULL where none was;
--   wrapup_seconds:   the answering queue's wrap-up an admin had set (queue_settings) when
--                     calls.answered_queue was first set; NULL: the queue had no admin
--                     setting, the settings file's queue_wrapup_seconds applies.
-- A copy once taken is kept: later desk or queue changes do not rewrite history. Facts a
-- line records long after the event (its spool drained after a database outage, or a call
-- rebuilt from Asterisk's queue_log) take the desks as they are then: a desk can only be
-- given to another account through the database, so during an outage it cannot change.
--
-- The calls before this migration get what can be derived: the account of the phone's
-- latest desk.join (the operator joining the queues from their desk page, audit log) at or
-- before the call's answer (for answered_account) or arrival (for rung_accounts), and the
-- queue's wrap-up an admin has set now (no history of it is kept). Where no desk.join is
-- logged the account stays NULL and the reports show that phone's calls under the phone,
-- "operator tidak tercatat", never under whoever sits there now.

ALTER TABLE calls
    ADD COLUMN answered_account bigint,
    ADD COLUMN rung_accounts    bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN wrapup_seconds   integer;

CREATE FUNCTION calls_answering_copies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.operator IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.operator IS DISTINCT FROM NEW.operator) THEN
        NEW.answered_account := (SELECT account_id FROM account_operators
                                 WHERE operator = NEW.operator);
    END IF;
    IF NEW.answered_queue IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.answered_queue IS DISTINCT FROM NEW.answered_queue) THEN
        NEW.wrapup_seconds := (SELECT wrapup_seconds FROM queue_settings
                               WHERE queue = NEW.answered_queue);
    END IF;
    IF TG_OP = 'INSERT' OR OLD.rung_operators IS DISTINCT FROM NEW.rung_operators THEN
        -- A phone rung before keeps the account it had then (OLD is NULL on an insert).
        NEW.rung_accounts := ARRAY(
            SELECT CASE WHEN array_position(OLD.rung_operators, d.desk) IS NOT NULL
                        THEN OLD.rung_accounts[array_position(OLD.rung_operators, d.desk)]
                        ELSE (SELECT account_id FROM account_operators
                              WHERE operator = d.desk) END
            FROM unnest(NEW.rung_operators) WITH ORDINALITY AS d (desk, n)
            ORDER BY d.n);
    END IF;
    RETURN NEW;
END
$$;

-- After calls_report_copies (0015: BEFORE INSERT triggers run in name order), which sets
-- rung_operators of a row made after its rung events.
CREATE TRIGGER calls_z_answering_copies_inserted BEFORE INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_answering_copies();
CREATE TRIGGER calls_z_answering_copies_updated BEFORE UPDATE ON calls
    FOR EACH ROW WHEN (OLD.operator IS DISTINCT FROM NEW.operator
                       OR OLD.answered_queue IS DISTINCT FROM NEW.answered_queue
                       OR OLD.rung_operators IS DISTINCT FROM NEW.rung_operators)
    EXECUTE FUNCTION calls_answering_copies();

-- The calls before: the account of the phone's latest desk.join, as said above.
CREATE FUNCTION desk_account_at(p_desk text, p_at timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT a.account_id FROM audit_log l JOIN accounts a ON a.username = l.actor
    WHERE l.object_type = 'desk' AND l.object_id = p_desk AND l.action = 'desk.join'
      AND l.at <= p_at
    ORDER BY l.at DESC, l.audit_id DESC
    LIMIT 1
$$;

UPDATE calls c SET
    answered_account = CASE WHEN c.operator IS NOT NULL
                            THEN desk_account_at(c.operator, COALESCE(c.answered_at,
                                                                      c.completed_at))
                       END,
    wrapup_seconds = (SELECT q.wrapup_seconds FROM queue_settings q
                      WHERE q.queue = c.answered_queue),
    rung_accounts = ARRAY(SELECT desk_account_at(d.desk, COALESCE(c.queue_joined_at,
                                                                  c.arrived_at))
                          FROM unnest(c.rung_operators) WITH ORDINALITY AS d (desk, n)
                          ORDER BY d.n)
WHERE c.operator IS NOT NULL OR c.answered_queue IS NOT NULL OR c.rung_operators <> '{}';

DROP FUNCTION desk_account_at(text, timestamptz);

-- call_outcomes (0041) froze the calls columns of its day; made again to show the copies.
DROP VIEW call_outcomes;
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

-- The reports read a period's calls from this index alone (0015): the copies join it.
DROP INDEX calls_report_idx;
CREATE INDEX calls_report_idx ON calls (shift_day, shift_name)
    INCLUDE (call_id, queue, queue_joined_at, answered_at, completed_at, abandoned_at, vanished,
             ended_at, operator, wait_seconds, talk_seconds, current_label, rung_operators, line,
             ivr_category, answered_account, rung_accounts, wrapup_seconds);

-- Rollups (0016) hold figures per answering phone and per phone rung; the reports now group
-- them per account: every slot is rolled up again, on its next report or by the refresher.
DELETE FROM report_rollup_slots;
