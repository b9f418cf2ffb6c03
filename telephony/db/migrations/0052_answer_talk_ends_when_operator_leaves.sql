-- Migration 0047 ends an operator's talk where they left a three-way call with an agency
-- ("Keluar", or hanging up their phone in it), in the calls row. A call more than one operator
-- answered (0051) is reported from its call_answers rows instead, one per answering phone,
-- and those kept Asterisk's completion at the call's end: the second operator who left a
-- three-way call was credited with the caller's whole talk with the agency, and their wrap-up
-- was measured from the call's end. Here each part's talk ends at its own operator's leave
-- (a leave step of a leg of that call that operator opened), as 0047 ends the row's.

-- Whenever a part's end is written: an ended talk its operator left before its end is ended
-- at the (first such) leave. The talk being ended began at the part's answer, or, answered
-- again after an earlier talk, at its completion less its talk (a second of slack for the
-- rounding of Asterisk's seconds); with no talk known yet (ended by the leave itself, see
-- below) it is the leave.
CREATE FUNCTION call_answers_talk_until_left() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_since timestamptz;
    v_left timestamptz;
BEGIN
    IF NEW.completed_at IS NULL THEN
        RETURN NEW;
    END IF;
    v_since := CASE
        WHEN NEW.talk_before = 0 THEN NEW.answered_at
        WHEN NEW.talk_seconds IS NULL THEN NEW.completed_at
        ELSE NEW.completed_at - make_interval(secs => NEW.talk_seconds + 1)
    END;
    SELECT min(s.at) INTO v_left
    FROM transfer_steps s JOIN call_legs l USING (leg_id)
    WHERE l.call_id = NEW.call_id AND l.operator = NEW.operator AND s.step = 'leave'
      AND s.at <= NEW.completed_at AND (v_since IS NULL OR s.at >= v_since);
    IF v_left IS NULL THEN
        RETURN NEW;
    END IF;
    -- 0047's rule; the answer began the talk only if nothing was talked before it.
    NEW.talk_seconds := talk_until_left(
        NEW.talk_seconds, CASE WHEN NEW.talk_before = 0 THEN NEW.answered_at END,
        NEW.completed_at, v_left);
    NEW.completed_at := v_left;
    RETURN NEW;
END
$$;

CREATE TRIGGER call_answers_talk_until_left BEFORE INSERT OR UPDATE ON call_answers
    FOR EACH ROW EXECUTE FUNCTION call_answers_talk_until_left();

-- A leave recorded while the operator's talk is open (the usual order) ends it there; one
-- recorded after a later completion (the listener ahead of the transfer service) has the
-- trigger above cap that completion. The slot's rollup is stale either way.
CREATE FUNCTION transfer_steps_answer_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE call_answers a SET completed_at = COALESCE(a.completed_at, NEW.at)
    FROM call_legs l
    WHERE l.leg_id = NEW.leg_id AND a.call_id = l.call_id AND a.operator = l.operator
      AND a.answered_at <= NEW.at AND (a.completed_at IS NULL OR a.completed_at > NEW.at);
    IF FOUND THEN
        DELETE FROM report_rollup_slots r USING call_legs l, calls c
        WHERE l.leg_id = NEW.leg_id AND c.call_id = l.call_id AND r.shift_day = c.shift_day
          AND r.shift_name = c.shift_name;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER transfer_steps_answer_left AFTER INSERT ON transfer_steps
    FOR EACH ROW WHEN (NEW.step = 'leave') EXECUTE FUNCTION transfer_steps_answer_left();

-- The parts recorded before: ended at their operator's leave too. Only the parts of an
-- operator with a leave of that call are looked at (a handful).
CREATE TEMPORARY TABLE left_parts ON COMMIT DROP AS
SELECT DISTINCT a.call_id, a.operator
FROM call_answers a
JOIN call_legs l ON l.call_id = a.call_id AND l.operator = a.operator
JOIN transfer_steps s ON s.leg_id = l.leg_id AND s.step = 'leave'
WHERE s.at >= a.answered_at;
UPDATE call_answers a SET completed_at = COALESCE(a.completed_at, (
    SELECT min(s.at) FROM call_legs l JOIN transfer_steps s USING (leg_id)
    WHERE l.call_id = a.call_id AND l.operator = a.operator AND s.step = 'leave'
      AND s.at >= a.answered_at))
FROM left_parts p
WHERE p.call_id = a.call_id AND p.operator = a.operator;
DELETE FROM report_rollup_slots r USING calls c
WHERE c.call_id IN (SELECT call_id FROM left_parts) AND c.answers_shared
  AND r.shift_day = c.shift_day AND r.shift_name = c.shift_name;
