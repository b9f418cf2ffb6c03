-- An operator who leaves a three-way call ("Keluar", or hanging up their phone: a 'leave'
-- step of the call's transfer leg, telephony/transfers) has finished their talk then, though
-- the caller talks on with the agency. Asterisk's queue knows nothing of it: its
-- AgentComplete comes when the call ends, with the whole call's talk and who hung up last.
-- Every report, the live picture and the wrap-up read a call's talk from calls.talk_seconds
-- and completed_at, so the operator's talk is ended there at the leave: whichever of the
-- completion and the leave is recorded first, the row ends up the same (the leave's instant,
-- the talk from the answer to it, ended by the operator).

-- The instant the call's operator left it before ``until`` (and not before ``answered``).
CREATE FUNCTION operator_left_at(p_call_id text, p_answered timestamptz, p_until timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT min(s.at) FROM transfer_steps s JOIN call_legs l USING (leg_id)
    WHERE l.call_id = p_call_id AND s.step = 'leave' AND s.at <= p_until
      AND (p_answered IS NULL OR s.at >= p_answered)
$$;

-- A talk Asterisk counted as ``p_talk`` s up to ``p_completed``, ended at the leave ``p_left``
-- instead: from the answer when it began the talk (``p_answered``, NULL: not known), else the
-- talk less the time after the leave; never more than Asterisk counted. One rule for the
-- call's row and, since 0052, each operator's answer row.
CREATE FUNCTION talk_until_left(p_talk integer, p_answered timestamptz,
                                p_completed timestamptz, p_left timestamptz)
RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_answered IS NOT NULL THEN
            LEAST(p_talk, round(date_part('epoch', p_left - p_answered))::integer)
        ELSE GREATEST(0, p_talk - round(date_part('epoch', p_completed - p_left))::integer)
    END
$$;

CREATE FUNCTION calls_talk_until_left() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_left timestamptz;
BEGIN
    IF NEW.completed_at IS NULL THEN
        RETURN NEW;
    END IF;
    v_left := operator_left_at(NEW.call_id, NEW.answered_at, NEW.completed_at);
    IF v_left IS NULL THEN
        RETURN NEW;
    END IF;
    NEW.talk_seconds := talk_until_left(NEW.talk_seconds, NEW.answered_at, NEW.completed_at,
                                        v_left);
    NEW.completed_at := v_left;
    NEW.ended_by := 'agent';
    RETURN NEW;
END
$$;

CREATE TRIGGER calls_talk_until_left BEFORE UPDATE OF completed_at ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_talk_until_left();

-- A leave recorded while the call's talk is open (the usual order: the call ends later) or
-- after a later completion was recorded (the listener ahead of the transfer service) ends
-- the talk at once: the trigger above does the arithmetic.
CREATE FUNCTION transfer_steps_operator_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE calls c SET completed_at = NEW.at, updated_at = now()
    FROM call_legs l
    WHERE l.leg_id = NEW.leg_id AND c.call_id = l.call_id AND c.answered_at IS NOT NULL
      AND c.answered_at <= NEW.at AND (c.completed_at IS NULL OR c.completed_at > NEW.at);
    RETURN NULL;
END
$$;

CREATE TRIGGER transfer_steps_operator_left AFTER INSERT ON transfer_steps
    FOR EACH ROW WHEN (NEW.step = 'leave') EXECUTE FUNCTION transfer_steps_operator_left();

-- Calls recorded before: their operators' talk ends where they left too. Only the calls
-- with a leave are looked at (a handful), not every call in the history.
UPDATE calls c SET completed_at = c.completed_at
WHERE c.call_id IN (SELECT l.call_id FROM transfer_steps s JOIN call_legs l USING (leg_id)
                    WHERE s.step = 'leave')
  AND c.completed_at IS NOT NULL
  AND operator_left_at(c.call_id, c.answered_at, c.completed_at) IS NOT NULL;
