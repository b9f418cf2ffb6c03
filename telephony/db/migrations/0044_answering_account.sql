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

-- The calls before: the account of the phone's latest desk.join, as said above. The index
-- of the reports is made again below with the copies: not kept up through the backfill. A
-- desk's audit entries are mostly pauses (every wrap-up is one): the joins get an index of
-- their own while the backfill probes them, one probe per call and phone.
DROP INDEX calls_report_idx;
CREATE INDEX audit_log_desk_join_tmp_idx ON audit_log (object_id, at, audit_id)
    WHERE object_type = 'desk' AND action = 'desk.join';
CREATE FUNCTION desk_account_at(p_desk text, p_at timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT a.account_id
    FROM (SELECT l.actor FROM audit_log l
          WHERE l.object_type = 'desk' AND l.action = 'desk.join' AND l.object_id = p_desk
            AND l.at <= p_at
          ORDER BY l.at DESC, l.audit_id DESC
          LIMIT 1) j
    JOIN accounts a ON a.username = j.actor
$$;

-- Only the rows something was derived for are written (a site without desk.join entries
-- rewrites no call); a phone with no account and no entry in rung_accounts read alike.
UPDATE calls c SET answered_account = n.answered_account, wrapup_seconds = n.wrapup_seconds,
                   rung_accounts = n.rung_accounts
FROM (
    SELECT d.call_id,
           CASE WHEN d.operator IS NOT NULL
                THEN desk_account_at(d.operator, COALESCE(d.answered_at, d.completed_at))
           END AS answered_account,
           (SELECT q.wrapup_seconds FROM queue_settings q
            WHERE q.queue = d.answered_queue) AS wrapup_seconds,
           ARRAY(SELECT desk_account_at(r.desk, COALESCE(d.queue_joined_at, d.arrived_at))
                 FROM unnest(d.rung_operators) WITH ORDINALITY AS r (desk, n)
                 ORDER BY r.n) AS rung_accounts
    FROM calls d
    WHERE d.operator IS NOT NULL OR d.answered_queue IS NOT NULL OR d.rung_operators <> '{}'
) n
WHERE c.call_id = n.call_id
  AND (n.answered_account IS NOT NULL OR n.wrapup_seconds IS NOT NULL
       OR array_remove(n.rung_accounts, NULL) <> '{}');

DROP FUNCTION desk_account_at(text, timestamptz);
DROP INDEX audit_log_desk_join_tmp_idx;

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
CREATE INDEX calls_report_idx ON calls (shift_day, shift_name)
    INCLUDE (call_id, queue, queue_joined_at, answered_at, completed_at, abandoned_at, vanished,
             ended_at, operator, wait_seconds, talk_seconds, current_label, rung_operators, line,
             ivr_category, answered_account, rung_accounts, wrapup_seconds);

-- Rollups (0016) hold figures per answering phone and per phone rung; the reports now group
-- them per account: every slot is rolled up again, on its next report or by the refresher.
DELETE FROM report_rollup_slots;
