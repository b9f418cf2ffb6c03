-- An operator's phone that dies mid-call (a browser crashed, a laptop asleep, a desk phone
-- unplugged) is hung up by Asterisk once nothing has come from it for its endpoint's
-- rtp_timeout (migration 0049: 30 s for a browser, 60 s for a desk phone), with cause 44,
-- which the bridge hands to the caller's channel; app_queue's AgentComplete then says the
-- operator's leg ended it ('agent') and counts the talk up to that hang-up. The reports' talk
-- and handling time, the wallboard and the call_answers rows all counted those 30 or 60 s of
-- dead air as talk. Asterisk reports only the hang-up, not when the last packet came, so the
-- talk is ended where the media stopped: the completion less that phone's rtp_timeout, never
-- before the talk began (Asterisk checks every few seconds: the cut is within those of the
-- real end). A desk phone that dies while held is cut after rtp_timeout_hold (600 s); the line
-- does not record whether a call was held, so that talk is left as Asterisk counts it.
--
-- The cut is applied once, whichever of the completion and the hang-up comes first: in the
-- calls row when a raw completion is written (completed_at changed) while the cause is 44, or
-- when the cause first becomes 44 on a completed row; in a call_answers row when a raw (a
-- later) completion is written while the call's cause is 44, or by the calls row when its
-- cause first becomes 44 (only the part whose talk the operator's leg ended, 'agent'). A
-- talk a leave of a three-way call already ended (0047, 0052) is not cut again: the
-- operator's leg was not in the call when it ended.

-- The talking rtp_timeout of the phone ``p_operator`` (an interface): a browser phone's, else
-- a desk phone's (hand-listed desk phones in pjsip.conf have the same values, 0049).
CREATE FUNCTION operator_rtp_timeout(p_operator text) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM phone_secrets p
                             WHERE p.operator = p_operator AND p.kind = 'browser')
                THEN site.browser_rtp_timeout ELSE site.desk_rtp_timeout END
    FROM phone_site site
$$;

-- The rtp_timeout of the phone whose completion a call's row holds: the latest completion's
-- (a call handed on is completed by the last phone), else the row's operator.
CREATE FUNCTION call_rtp_timeout(p_call_id text, p_operator text) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT operator_rtp_timeout(COALESCE(
        (SELECT e.body ->> 'operator' FROM call_events e
         WHERE e.call_id = p_call_id AND e.kind = 'operator_completed'
         ORDER BY e.at DESC, e.event_id DESC LIMIT 1),
        p_operator))
$$;

-- The instant the media stopped of a talk of ``p_talk`` s Asterisk completed at ``p_completed``
-- (begun at the answer ``p_answered``, or later: a call's row keeps its first answer and its
-- last completion's talk) by a phone of rtp_timeout ``p_timeout``; never before the talk
-- began. The talk up to it is 0047's talk_until_left(p_talk, NULL, p_completed, stopped).
CREATE FUNCTION media_stopped_at(p_talk integer, p_answered timestamptz,
                                 p_completed timestamptz, p_timeout integer)
RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    SELECT GREATEST(p_answered, p_completed - make_interval(secs => p_talk),
                    p_completed - make_interval(secs => p_timeout))
$$;

ALTER TABLE call_answers ADD COLUMN ended_by text;  -- its completion's Reason (as calls')

-- 0051's, its completion's Reason kept with its end.
CREATE OR REPLACE FUNCTION call_answers_from_event(p_call_id text, p_kind text,
                                                   p_at timestamptz, p_body jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_operator text := p_body ->> 'operator';
    v_queue text := NULLIF(p_body ->> 'queue', '');
    v_talk integer := (p_body ->> 'talk_seconds')::integer;
BEGIN
    IF p_call_id IS NULL OR COALESCE(v_operator, '') = '' THEN
        RETURN;
    END IF;
    INSERT INTO call_answers AS a (call_id, operator, answered_account, queue, wrapup_seconds,
                                   answered_at, completed_at, talk_seconds, ended_by)
    VALUES (p_call_id, v_operator,
            (SELECT account_id FROM account_operators WHERE operator = v_operator),
            v_queue, (SELECT wrapup_seconds FROM queue_settings WHERE queue = v_queue),
            CASE WHEN p_kind = 'operator_answered' THEN p_at
                 ELSE p_at - make_interval(secs => COALESCE(v_talk, 0)) END,
            CASE WHEN p_kind = 'operator_completed' THEN p_at END,
            CASE WHEN p_kind = 'operator_completed' THEN v_talk END,
            CASE WHEN p_kind = 'operator_completed' THEN p_body ->> 'ended_by' END)
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
            ELSE a.talk_seconds END,
        ended_by = CASE
            WHEN p_kind = 'operator_answered'
                THEN CASE WHEN a.completed_at < p_at THEN NULL ELSE a.ended_by END
            WHEN a.completed_at IS NULL OR a.completed_at <= p_at THEN p_body ->> 'ended_by'
            ELSE a.ended_by END;
END
$$;

-- Whether a part's ended talk was ended by its operator's leave of a three-way call (0052's
-- search: a leave of theirs within the talk, a second of slack for Asterisk's rounding).
CREATE FUNCTION call_answer_left(a call_answers) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM transfer_steps s JOIN call_legs l USING (leg_id)
        WHERE l.call_id = a.call_id AND l.operator = a.operator AND s.step = 'leave'
          AND s.at <= a.completed_at
          AND s.at >= CASE WHEN a.talk_before = 0 THEN a.answered_at
                           WHEN a.talk_seconds IS NULL THEN a.completed_at
                           ELSE a.completed_at - make_interval(secs => a.talk_seconds + 1) END)
$$;

-- Where the media of a part's ended talk stopped.
CREATE FUNCTION call_answer_media_stopped(a call_answers) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT media_stopped_at(a.talk_seconds, a.answered_at, a.completed_at,
                            operator_rtp_timeout(a.operator))
$$;

CREATE FUNCTION calls_talk_until_media_stopped() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_timeout integer;
    v_stopped timestamptz;
BEGIN
    IF NEW.completed_at IS NULL OR NEW.talk_seconds IS NULL
       OR NEW.hangup_cause IS DISTINCT FROM 44 OR NEW.ended_by IS DISTINCT FROM 'agent'
       OR NOT (NEW.completed_at IS DISTINCT FROM OLD.completed_at
               OR OLD.hangup_cause IS DISTINCT FROM 44)
       OR operator_left_at(NEW.call_id, NEW.answered_at, NEW.completed_at) IS NOT NULL THEN
        RETURN NEW;
    END IF;
    IF OLD.hangup_cause IS DISTINCT FROM 44 THEN
        -- The cause came after the completion: the phones' parts are cut now (a completion
        -- written after it is cut by call_answers' own trigger).
        UPDATE call_answers a SET
            talk_seconds = talk_until_left(a.talk_seconds, NULL, a.completed_at,
                                           call_answer_media_stopped(a)),
            completed_at = call_answer_media_stopped(a)
        WHERE a.call_id = NEW.call_id AND a.ended_by = 'agent' AND a.completed_at IS NOT NULL
          AND a.talk_seconds IS NOT NULL AND call_answer_media_stopped(a) IS NOT NULL
          AND NOT call_answer_left(a);
    END IF;
    v_timeout := call_rtp_timeout(NEW.call_id, NEW.operator);
    v_stopped := media_stopped_at(NEW.talk_seconds, NEW.answered_at, NEW.completed_at,
                                  v_timeout);
    IF v_stopped IS NULL THEN
        RETURN NEW;
    END IF;
    -- 0047's arithmetic: the talk up to where the media stopped.
    NEW.talk_seconds := talk_until_left(NEW.talk_seconds, NULL, NEW.completed_at, v_stopped);
    NEW.completed_at := v_stopped;
    RETURN NEW;
END
$$;

-- The calls recorded before, cut as the trigger below would have (before it exists: this
-- update is the cut), their operators' parts with them: a part's completion Reason from its
-- latest completion fact. The slots of the calls cut lose their rollups (the calls update
-- trigger of 0016 drops them).
UPDATE call_answers a SET ended_by = (
    SELECT e.body ->> 'ended_by' FROM call_events e
    WHERE e.call_id = a.call_id AND e.kind = 'operator_completed'
      AND e.body ->> 'operator' = a.operator
    ORDER BY e.at DESC, e.event_id DESC LIMIT 1)
WHERE a.completed_at IS NOT NULL;
UPDATE call_answers a SET
    talk_seconds = talk_until_left(a.talk_seconds, NULL, a.completed_at,
                                   call_answer_media_stopped(a)),
    completed_at = call_answer_media_stopped(a)
FROM calls c
WHERE c.call_id = a.call_id AND c.hangup_cause = 44 AND c.ended_by = 'agent'
  AND c.completed_at IS NOT NULL AND c.talk_seconds IS NOT NULL
  AND operator_left_at(c.call_id, c.answered_at, c.completed_at) IS NULL
  AND a.ended_by = 'agent' AND a.completed_at IS NOT NULL AND a.talk_seconds IS NOT NULL
  AND call_answer_media_stopped(a) IS NOT NULL AND NOT call_answer_left(a);
UPDATE calls c SET
    talk_seconds = talk_until_left(c.talk_seconds, NULL, c.completed_at, m.stopped),
    completed_at = m.stopped, updated_at = now()
FROM (SELECT d.call_id,
             media_stopped_at(d.talk_seconds, d.answered_at, d.completed_at,
                              call_rtp_timeout(d.call_id, d.operator)) AS stopped
      FROM calls d
      WHERE d.hangup_cause = 44 AND d.ended_by = 'agent' AND d.completed_at IS NOT NULL
        AND d.talk_seconds IS NOT NULL
        AND operator_left_at(d.call_id, d.answered_at, d.completed_at) IS NULL) m
WHERE c.call_id = m.call_id AND m.stopped IS NOT NULL;

-- After 0047's calls_talk_until_left (triggers fire in name order): a leave's end stands.
CREATE TRIGGER calls_talk_until_media_stopped
    BEFORE UPDATE OF completed_at, hangup_cause, ended_by ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_talk_until_media_stopped();

-- A part's raw completion (a later end than it had) written while its call's cause is 44.
CREATE FUNCTION call_answers_talk_until_media_stopped() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_stopped timestamptz;
BEGIN
    IF NEW.completed_at IS NULL OR NEW.talk_seconds IS NULL
       OR NEW.ended_by IS DISTINCT FROM 'agent'
       OR (TG_OP = 'UPDATE' AND OLD.completed_at IS NOT NULL
           AND NEW.completed_at <= OLD.completed_at)
       OR NOT EXISTS (SELECT 1 FROM calls c
                      WHERE c.call_id = NEW.call_id AND c.hangup_cause = 44)
       OR call_answer_left(NEW) THEN
        RETURN NEW;
    END IF;
    v_stopped := call_answer_media_stopped(NEW);
    IF v_stopped IS NULL THEN
        RETURN NEW;
    END IF;
    NEW.talk_seconds := talk_until_left(NEW.talk_seconds, NULL, NEW.completed_at, v_stopped);
    NEW.completed_at := v_stopped;
    RETURN NEW;
END
$$;

-- After 0052's call_answers_talk_until_left.
CREATE TRIGGER call_answers_talk_until_media_stopped BEFORE INSERT OR UPDATE ON call_answers
    FOR EACH ROW EXECUTE FUNCTION call_answers_talk_until_media_stopped();
