-- One row per operator who answered a call, so a call two operators handle credits each with
-- their own answer, talk and wrap-up (telephony/reports/model.py, "operator").
--
-- A call row keeps one answer: the first operator (calls.operator, first set wins) with the
-- last completion's talk and end (calls.talk_seconds, completed_at). When a blind transfer
-- nobody answered sent the caller back into the queues and another operator answered, the
-- reports gave the first operator the call, the second one's talk, and a wrap-up measured on
-- the first one's phone from the second one's end; the second operator had answered nothing.
--
-- call_answers is kept from the answer facts themselves (call_events, every fact as it was
-- learnt, including those a drained spool or a rebuilt call records late), by a trigger on
-- their insert: a replayed fact is not inserted again, so it changes nothing. (Of the calls
-- before this migration, only those the reports read it for: see the backfill below.)
--   operator:         the answering phone (an interface, as calls.operator);
--   answered_account: the account working at it when it answered (as 0044's copy);
--   queue:            the queue it answered in; wrapup_seconds that queue's wrap-up an admin
--                     had set then (as 0044's copy; NULL: the settings file's);
--   answered_at:      its first answer of the call;
--   completed_at, talk_seconds: its talk's end and length as Asterisk's AgentComplete gives
--                     them; a later completion of the same talk (the tracker's amended one
--                     after the operator talked again with a caller a failed blind transfer
--                     brought back) replaces them;
--   talk_before:      its earlier talks with this caller when it answered the call again
--                     from a queue (answered, transferred, answered again): they add up.
-- No foreign key to calls: the facts are inserted before the call's row is made (0033).
-- calls.answers_shared says a call has more than one operator's row here: the reports read
-- a period's calls from calls_report_idx alone and look up call_answers for those only.
CREATE TABLE call_answers (
    call_id          text NOT NULL,
    operator         text NOT NULL,
    answered_account bigint,
    queue            text,
    wrapup_seconds   integer,
    answered_at      timestamptz,
    completed_at     timestamptz,
    talk_seconds     integer,
    talk_before      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (call_id, operator)
);

CREATE FUNCTION call_answers_from_event(p_call_id text, p_kind text, p_at timestamptz,
                                        p_body jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_operator text := p_body ->> 'operator';
    v_queue text := NULLIF(p_body ->> 'queue', '');
    v_talk integer := (p_body ->> 'talk_seconds')::integer;
BEGIN
    IF p_call_id IS NULL OR COALESCE(v_operator, '') = '' THEN
        RETURN;
    END IF;
    INSERT INTO call_answers AS a (call_id, operator, answered_account, queue, wrapup_seconds,
                                   answered_at, completed_at, talk_seconds)
    VALUES (p_call_id, v_operator,
            (SELECT account_id FROM account_operators WHERE operator = v_operator),
            v_queue, (SELECT wrapup_seconds FROM queue_settings WHERE queue = v_queue),
            CASE WHEN p_kind = 'operator_answered' THEN p_at
                 ELSE p_at - make_interval(secs => COALESCE(v_talk, 0)) END,
            CASE WHEN p_kind = 'operator_completed' THEN p_at END,
            CASE WHEN p_kind = 'operator_completed' THEN v_talk END)
    ON CONFLICT (call_id, operator) DO UPDATE SET
        queue = COALESCE(a.queue, EXCLUDED.queue),
        wrapup_seconds = CASE WHEN a.queue IS NULL THEN EXCLUDED.wrapup_seconds
                              ELSE a.wrapup_seconds END,
        answered_at = CASE WHEN p_kind = 'operator_answered'
                           THEN LEAST(a.answered_at, EXCLUDED.answered_at)
                           ELSE COALESCE(a.answered_at, EXCLUDED.answered_at) END,
        -- Answered again after its talk ended: that talk is kept, a new one begins.
        talk_before = CASE WHEN p_kind = 'operator_answered' AND a.completed_at < p_at
                           THEN a.talk_before + COALESCE(a.talk_seconds, 0)
                           ELSE a.talk_before END,
        completed_at = CASE
            WHEN p_kind = 'operator_answered'
                THEN CASE WHEN a.completed_at < p_at THEN NULL ELSE a.completed_at END
            WHEN a.completed_at IS NULL OR a.completed_at <= p_at THEN p_at
            ELSE a.completed_at END,
        talk_seconds = CASE
            WHEN p_kind = 'operator_answered'
                THEN CASE WHEN a.completed_at < p_at THEN NULL ELSE a.talk_seconds END
            WHEN a.completed_at IS NULL OR a.completed_at <= p_at THEN v_talk
            ELSE a.talk_seconds END;
END
$$;

-- An answer changes its call's slot's figures: its rollup (0016) is stale. (The call store
-- updates the call row too, whose trigger does the same; an answer recorded alone must not
-- leave a rollup behind.)
CREATE FUNCTION call_answers_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM call_answers_from_event(NEW.call_id, NEW.kind, NEW.at, NEW.body);
    IF (SELECT count(*) FROM call_answers WHERE call_id = NEW.call_id) > 1 THEN
        UPDATE calls SET answers_shared = true, updated_at = now()
        WHERE call_id = NEW.call_id AND NOT answers_shared;
    END IF;
    DELETE FROM report_rollup_slots r USING calls c
    WHERE c.call_id = NEW.call_id AND r.shift_day = c.shift_day
      AND r.shift_name = c.shift_name;
    RETURN NULL;
END
$$;

-- A call's row made after its answers were recorded (first seen through them) says so too.
CREATE FUNCTION calls_answers_shared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.answers_shared := NEW.answers_shared
        OR (SELECT count(*) FROM call_answers WHERE call_id = NEW.call_id) > 1;
    RETURN NEW;
END
$$;

ALTER TABLE calls ADD COLUMN answers_shared boolean NOT NULL DEFAULT false;
CREATE TRIGGER calls_answers_shared BEFORE INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_answers_shared();

CREATE TRIGGER call_answers_recorded AFTER INSERT ON call_events
    FOR EACH ROW WHEN (NEW.kind IN ('operator_answered', 'operator_completed'))
    EXECUTE FUNCTION call_answers_recorded();

-- The calls before: their answer facts replayed in the order they were learnt, for the calls
-- the reports read call_answers of: those more than one operator answered, and the calls
-- still open (a second operator may yet answer). A finished call one operator answered reads
-- as before from its own row, and replaying a line's whole history of answers one by one
-- would hold an upgrade for many minutes. Who worked at each phone then is derived as 0044
-- did (the account of the phone's latest desk.join at or before its answer; none logged:
-- NULL, the phone counts as an operator of its own), and where the call row kept its copies
-- (0044) for its first operator, those are taken. The queue's wrap-up is the one an admin
-- has set now (no history of it is kept), as 0044.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT e.call_id, e.kind, e.at, e.body FROM call_events e
        WHERE e.kind IN ('operator_answered', 'operator_completed')
          AND e.call_id IN (
              SELECT a.call_id FROM call_events a
              WHERE a.kind IN ('operator_answered', 'operator_completed')
              GROUP BY a.call_id HAVING count(DISTINCT a.body ->> 'operator') > 1
              UNION
              SELECT c.call_id FROM calls c WHERE c.ended_at IS NULL)
        ORDER BY e.event_id
    LOOP
        PERFORM call_answers_from_event(r.call_id, r.kind, r.at, r.body);
    END LOOP;
END
$$;
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
UPDATE call_answers a SET
    answered_account = CASE WHEN c.operator = a.operator THEN c.answered_account
                            ELSE desk_account_at(a.operator,
                                                 COALESCE(a.answered_at, a.completed_at)) END,
    wrapup_seconds = CASE WHEN c.operator = a.operator THEN c.wrapup_seconds
                          ELSE a.wrapup_seconds END
FROM calls c
WHERE c.call_id = a.call_id;
DROP FUNCTION desk_account_at(text, timestamptz);
UPDATE calls SET answers_shared = true
WHERE call_id IN (SELECT call_id FROM call_answers GROUP BY call_id HAVING count(*) > 1);

-- call_outcomes (0044) froze the calls columns of its day; made again to show the flag.
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

-- The reports read a period's calls from this index alone (0015, 0044): the flag joins it.
DROP INDEX calls_report_idx;
CREATE INDEX calls_report_idx ON calls (shift_day, shift_name)
    INCLUDE (call_id, queue, queue_joined_at, answered_at, completed_at, abandoned_at, vanished,
             ended_at, operator, wait_seconds, talk_seconds, current_label, rung_operators, line,
             ivr_category, answered_account, rung_accounts, wrapup_seconds, answers_shared);

-- Rollups get rows per answering operator (kind 'answer'); every slot is rolled up again.
ALTER TABLE report_rollups DROP CONSTRAINT report_rollups_kind_check;
ALTER TABLE report_rollups ADD CONSTRAINT report_rollups_kind_check
    CHECK (kind IN ('fine', 'offered_to', 'answer'));
DELETE FROM report_rollup_slots;
