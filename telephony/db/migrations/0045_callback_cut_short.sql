-- A call-back cut short comes back on the call-back list (telephony/callbacks/model.py).
--
-- A call-back answered used to clear the caller's entry whatever happened next: a caller's
-- phone losing the network ten seconds in, the operator's phone failing, Asterisk restarting
-- under it, or a voicemail or a carrier announcement answering in the caller's place. A
-- dropped incoming call comes back on the list by its hang-up cause and Asterisk's outages;
-- a call-back now keeps what that rule needs:
--
-- hangup_cause: the Q.850 cause of the leg's end as the dialplan reports it (both channels
--   of a call-back report their end, HANGUPCAUSE of each): a network cause, if either end
--   had one (the side that lost its network), else the first reported.
-- cut_reason: Asterisk's end cut the leg, as a call's calls.cut_reason (telephony/calls/
--   outages.py, LegCut): its end came in a restart's burst, or never came (a crash); the cut
--   gives a leg with no end one.
-- unreached_by / unreached_at: an operator said the call-back did not reach the caller
--   (voicemail, an announcement, a stranger): "tidak tersambung dengan penelepon".
ALTER TABLE call_legs
    ADD COLUMN hangup_cause integer CHECK (hangup_cause BETWEEN 0 AND 127),
    ADD COLUMN cut_reason text CHECK (cut_reason IN ('asterisk_restart', 'asterisk_crash')),
    ADD COLUMN unreached_by text,
    ADD COLUMN unreached_at timestamptz,
    ADD CHECK ((unreached_by IS NULL) = (unreached_at IS NULL));

-- record_call_facts (0033) again, its legs step also writing the end's hang-up cause, and a
-- step for the legs Asterisk's end cut.
CREATE OR REPLACE FUNCTION record_call_facts(
    p_keys text[], p_call_ids text[], p_kinds text[], p_ats timestamptz[], p_bodies text[],
    p_ensures boolean[], p_operators text[], p_lines text[], p_rows jsonb
) RETURNS boolean[]  -- per fact: whether it was new
LANGUAGE plpgsql AS $$
DECLARE
    v_fresh boolean[];
    v_there boolean[] := '{}';  -- per vanished fact: whether its call's row existed at its turn
    v_lines jsonb;              -- call -> the first line proposed by a new fact of the batch
    r record;
BEGIN
    WITH inserted AS (
        INSERT INTO call_events (dedupe_key, call_id, kind, at, body)
        SELECT k, c, kd, a, b::jsonb
        FROM unnest(p_keys, p_call_ids, p_kinds, p_ats, p_bodies)
             WITH ORDINALITY AS e(k, c, kd, a, b, n)
        ORDER BY n
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING dedupe_key
    )
    SELECT COALESCE(array_agg(i.dedupe_key IS NOT NULL ORDER BY e.n), '{}') INTO v_fresh
    FROM unnest(p_keys) WITH ORDINALITY AS e(k, n)
    LEFT JOIN inserted AS i ON i.dedupe_key = e.k;
    IF NOT (true = ANY (v_fresh)) THEN
        RETURN v_fresh;
    END IF;

    -- A vanished call is ended only if its row was there at its turn: before the rows are
    -- made below, that is a row already stored or a new fact earlier in the batch making it.
    IF p_rows ? 'ends' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'ends') AS x(n int, call_id text,
                                                                       vanished boolean)
                 WHERE x.vanished AND v_fresh[x.n] LOOP
            v_there[r.n] := EXISTS (SELECT 1 FROM calls WHERE call_id = r.call_id)
                OR EXISTS (SELECT 1 FROM unnest(p_call_ids, p_ensures) WITH ORDINALITY AS u(c, e, o)
                           WHERE u.o < r.n AND u.e AND u.c = r.call_id AND v_fresh[u.o]);
        END LOOP;
    END IF;

    INSERT INTO calls (call_id)
    SELECT c FROM unnest(p_call_ids, p_ensures) WITH ORDINALITY AS u(c, e, o)
    WHERE u.e AND v_fresh[u.o] GROUP BY c ORDER BY min(o)
    ON CONFLICT (call_id) DO NOTHING;
    INSERT INTO operators (operator)
    SELECT op FROM unnest(p_operators) WITH ORDINALITY AS u(op, o)
    WHERE op IS NOT NULL AND v_fresh[u.o] GROUP BY op ORDER BY min(o)
    ON CONFLICT DO NOTHING;
    SELECT jsonb_object_agg(c, l) INTO v_lines FROM (
        SELECT DISTINCT ON (c) c, l
        FROM unnest(p_call_ids, p_lines) WITH ORDINALITY AS u(c, l, o)
        WHERE l <> '' AND v_fresh[u.o] ORDER BY c, o
    ) AS first_lines;

    IF p_rows ? 'started' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'started') AS x(
                     n int, call_id text, linked_id text, channel text, caller_number text,
                     caller_name text, at timestamptz, shift_day date, shift_name text,
                     caller_key text, sip_call_id text)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            INSERT INTO calls (call_id, linked_id, channel, caller_number, caller_name, line,
                               arrived_at, shift_day, shift_name, caller_key, sip_call_id)
            VALUES (r.call_id, r.linked_id, r.channel, r.caller_number, r.caller_name,
                    v_lines ->> r.call_id, r.at, r.shift_day, r.shift_name, r.caller_key,
                    NULLIF(r.sip_call_id, ''))
            ON CONFLICT (call_id) DO UPDATE SET
                linked_id = COALESCE(calls.linked_id, EXCLUDED.linked_id),
                sip_call_id = COALESCE(calls.sip_call_id, EXCLUDED.sip_call_id),
                channel = COALESCE(calls.channel, EXCLUDED.channel),
                -- The key follows whichever number is kept.
                caller_key = CASE WHEN NULLIF(calls.caller_number, '') IS NULL
                                  THEN EXCLUDED.caller_key ELSE calls.caller_key END,
                caller_number = COALESCE(NULLIF(calls.caller_number, ''), EXCLUDED.caller_number),
                caller_name = COALESCE(NULLIF(calls.caller_name, ''), EXCLUDED.caller_name),
                line = COALESCE(calls.line, EXCLUDED.line),
                -- The earliest sighting is the arrival; the shift follows the arrival.
                shift_day = CASE WHEN calls.arrived_at IS NULL
                                   OR EXCLUDED.arrived_at < calls.arrived_at
                                 THEN EXCLUDED.shift_day ELSE calls.shift_day END,
                shift_name = CASE WHEN calls.arrived_at IS NULL
                                    OR EXCLUDED.arrived_at < calls.arrived_at
                                  THEN EXCLUDED.shift_name ELSE calls.shift_name END,
                arrived_at = LEAST(calls.arrived_at, EXCLUDED.arrived_at),
                updated_at = now();
        END LOOP;
    END IF;

    -- A record of its own for a call its node lost (telephony/cluster/front.py): ended where
    -- it arrived, vanished, cut with the node. One per Call-ID (the partial unique index of
    -- 0026), and none if a node recorded the call meanwhile.
    IF p_rows ? 'lost' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'lost') AS x(
                     n int, call_id text, caller_number text, caller_key text, line text,
                     at timestamptz, shift_day date, shift_name text, sip_call_id text,
                     cause_text text)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            INSERT INTO calls (call_id, caller_number, caller_key, line, arrived_at, shift_day,
                               shift_name, ended_at, vanished, cut_reason, sip_call_id,
                               hangup_cause_text)
            SELECT r.call_id, r.caller_number, r.caller_key, NULLIF(r.line, ''), r.at, r.shift_day,
                   r.shift_name, r.at, true, 'node_lost', r.sip_call_id, r.cause_text
            WHERE NOT EXISTS (SELECT 1 FROM calls WHERE sip_call_id = r.sip_call_id)
            ON CONFLICT DO NOTHING;
        END LOOP;
    END IF;

    -- v: the IVR columns this fact sets (a key present, its value possibly null).
    IF p_rows ? 'ivr' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'ivr') AS x(
                     n int, call_id text, sets_line boolean, v jsonb)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET
                line = COALESCE(line, CASE WHEN r.sets_line THEN v_lines ->> r.call_id END),
                ivr_choice = CASE WHEN r.v ? 'ivr_choice' THEN r.v ->> 'ivr_choice'
                                  ELSE ivr_choice END,
                ivr_outcome = CASE WHEN r.v ? 'ivr_outcome' THEN r.v ->> 'ivr_outcome'
                                   ELSE ivr_outcome END,
                ivr_category = CASE WHEN r.v ? 'ivr_category' THEN r.v ->> 'ivr_category'
                                    ELSE ivr_category END,
                ivr_skill = CASE WHEN r.v ? 'ivr_skill' THEN r.v ->> 'ivr_skill' ELSE ivr_skill END,
                ivr_queue = CASE WHEN r.v ? 'ivr_queue' THEN r.v ->> 'ivr_queue' ELSE ivr_queue END,
                ivr_first_key_ms = CASE WHEN r.v ? 'ivr_first_key_ms'
                                        THEN (r.v ->> 'ivr_first_key_ms')::integer
                                        ELSE ivr_first_key_ms END,
                ivr_invalid_keys = CASE WHEN r.v ? 'ivr_invalid_keys'
                                        THEN (r.v ->> 'ivr_invalid_keys')::integer
                                        ELSE ivr_invalid_keys END,
                -- Through float8, as the client's double became a real before.
                prank_score = CASE WHEN r.v ? 'prank_score'
                                   THEN (r.v ->> 'prank_score')::float8::real ELSE prank_score END,
                prank_reasons = CASE WHEN r.v ? 'prank_reasons' THEN r.v ->> 'prank_reasons'
                                     ELSE prank_reasons END,
                queue_priority = CASE WHEN r.v ? 'queue_priority'
                                      THEN (r.v ->> 'queue_priority')::integer
                                      ELSE queue_priority END,
                screening = CASE WHEN r.v ? 'screening' THEN r.v ->> 'screening' ELSE screening END,
                updated_at = now()
            WHERE call_id = r.call_id;
        END LOOP;
    END IF;

    IF p_rows ? 'joined' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'joined') AS x(
                     n int, call_id text, queue text, at timestamptz, position integer)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET
                queue = COALESCE(queue, r.queue),
                queue_position = CASE WHEN queue IS NULL THEN r.position ELSE queue_position END,
                queue_joined_at = CASE WHEN queue IS NULL THEN r.at ELSE queue_joined_at END,
                updated_at = now()
            WHERE call_id = r.call_id;
        END LOOP;
    END IF;
    -- A resync re-reports a caller still waiting, with a join time estimated from its wait;
    -- an open visit to the same queue is that same visit. Leaving closes the open visit.
    IF p_rows ? 'visits' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'visits') AS x(
                     n int, call_id text, queue text, at timestamptz, position integer,
                     joining boolean)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            IF r.joining THEN
                INSERT INTO queue_visits (call_id, queue, joined_at, join_position)
                SELECT r.call_id, r.queue, r.at, r.position
                WHERE NOT EXISTS (SELECT 1 FROM queue_visits
                                  WHERE call_id = r.call_id AND queue = r.queue AND left_at IS NULL)
                ON CONFLICT DO NOTHING;
            ELSE
                UPDATE queue_visits SET left_at = r.at, left_position = r.position
                WHERE call_id = r.call_id AND queue = r.queue AND left_at IS NULL;
            END IF;
        END LOOP;
    END IF;
    IF p_rows ? 'left' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'left') AS x(
                     n int, call_id text, at timestamptz)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET queue_left_at = GREATEST(queue_left_at, r.at), updated_at = now()
            WHERE call_id = r.call_id;
        END LOOP;
    END IF;
    IF p_rows ? 'abandoned' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'abandoned') AS x(
                     n int, call_id text, at timestamptz, queue text, original_position integer,
                     final_position integer, wait_seconds integer)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET
                abandoned_at = r.at, abandon_queue = r.queue,
                abandon_original_position = r.original_position,
                abandon_final_position = r.final_position,
                abandon_wait_seconds = r.wait_seconds, updated_at = now()
            WHERE call_id = r.call_id;
        END LOOP;
    END IF;

    -- completion: AgentComplete stands alone. If the listener missed AgentConnect (it was
    -- restarting), the answer instant is the completion minus the talk time.
    IF p_rows ? 'answers' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'answers') AS x(
                     n int, call_id text, queue text, operator text, wait_seconds integer,
                     ring_seconds integer, at timestamptz, ended_by text, talk_seconds integer,
                     completion boolean)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET
                answered_queue = COALESCE(answered_queue, r.queue),
                operator = COALESCE(operator, r.operator),
                wait_seconds = COALESCE(wait_seconds, r.wait_seconds),
                ring_seconds = CASE WHEN r.completion THEN ring_seconds
                                    ELSE COALESCE(ring_seconds, r.ring_seconds) END,
                answered_at = CASE WHEN r.completion
                    THEN COALESCE(answered_at, r.at - make_interval(secs => r.talk_seconds))
                    ELSE LEAST(answered_at, r.at) END,
                talk_seconds = CASE WHEN r.completion THEN r.talk_seconds ELSE talk_seconds END,
                ended_by = CASE WHEN r.completion THEN r.ended_by ELSE ended_by END,
                completed_at = CASE WHEN r.completion THEN r.at ELSE completed_at END,
                updated_at = now()
            WHERE call_id = r.call_id;
        END LOOP;
    END IF;

    -- vanished: only while no end is known, and only if the row existed at its turn.
    IF p_rows ? 'ends' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'ends') AS x(
                     n int, call_id text, at timestamptz, cause integer, cause_text text,
                     vanished boolean)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET
                ended_at = r.at,
                hangup_cause = CASE WHEN r.vanished THEN hangup_cause ELSE r.cause END,
                hangup_cause_text = CASE WHEN r.vanished THEN hangup_cause_text
                                         ELSE r.cause_text END,
                vanished = r.vanished, updated_at = now()
            WHERE call_id = r.call_id
              AND (NOT r.vanished OR (ended_at IS NULL AND COALESCE(v_there[r.n], false)));
        END LOOP;
    END IF;

    -- Each change is kept; of the members' states the latest wins, and of two at the same
    -- instant the later fact. (Two tables that neither statement reads from the other: one
    -- loop over the facts gives what the two statements over all of them gave.)
    IF p_rows ? 'states' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'states') AS x(
                     n int, operator text, queue text, at timestamptz, state text,
                     paused boolean, pause_reason text, shift_day date, shift_name text)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            INSERT INTO operator_state_changes
                (operator, queue, at, state, paused, pause_reason, shift_day, shift_name)
            VALUES (r.operator, r.queue, r.at, r.state, r.paused, r.pause_reason, r.shift_day,
                    r.shift_name)
            ON CONFLICT DO NOTHING;
            INSERT INTO queue_members (operator, queue, state, paused, pause_reason, since)
            VALUES (r.operator, r.queue, r.state, r.paused, r.pause_reason, r.at)
            ON CONFLICT (operator, queue) DO UPDATE SET
                state = EXCLUDED.state, paused = EXCLUDED.paused,
                pause_reason = EXCLUDED.pause_reason, since = EXCLUDED.since
            WHERE queue_members.since <= EXCLUDED.since;
        END LOOP;
    END IF;

    -- What the dialplan reported of a leg; the first report of each state wins (a replay, or
    -- the same state reported by a second channel of the leg, changes nothing).
    IF p_rows ? 'legs' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'legs') AS x(
                     n int, leg_id bigint, channel_id text, state text, at timestamptz,
                     unanswered text, status text, cause int, lost boolean)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE call_legs SET
                channel_id = COALESCE(channel_id, r.channel_id),
                rang_at = CASE WHEN r.state = 'dialling' THEN LEAST(rang_at, r.at) ELSE rang_at END,
                answered_at = CASE WHEN r.state = 'answered' THEN LEAST(answered_at, r.at)
                                   ELSE answered_at END,
                ended_at = CASE WHEN r.state = 'ended' THEN COALESCE(ended_at, r.at)
                                ELSE ended_at END,
                outcome = CASE
                    WHEN r.state = 'answered' AND outcome IS NOT NULL THEN 'answered'
                    WHEN r.state <> 'ended' OR outcome IS NOT NULL THEN outcome
                    WHEN answered_at IS NOT NULL THEN 'answered'
                    ELSE r.unanswered END,
                status = CASE WHEN r.state = 'ended' AND status = '' THEN r.status ELSE status END,
                -- A network cause (r.lost: telephony.asterisk.causes.NETWORK_CAUSES) of either
                -- end stands; else the first end's cause.
                hangup_cause = CASE
                    WHEN r.state <> 'ended' OR r.cause IS NULL THEN hangup_cause
                    WHEN hangup_cause IS NULL OR COALESCE(r.lost, false) THEN r.cause
                    ELSE hangup_cause END
            WHERE leg_id = r.leg_id;
        END LOOP;
    END IF;

    -- Asterisk's outages, then the calls they cut (after the ends the cuts amend). Replays
    -- change nothing: an outage is keyed by when it began, a call keeps its first cut.
    IF p_rows ? 'shutdowns' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'shutdowns') AS x(
                     n int, kind text, at timestamptz)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            INSERT INTO asterisk_outages (kind, began_at) VALUES (r.kind, r.at)
            ON CONFLICT (began_at) DO NOTHING;
        END LOOP;
    END IF;
    IF p_rows ? 'returns' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'returns') AS x(
                     n int, outage text, began_at timestamptz, lost_at timestamptz,
                     booted_at timestamptz, at timestamptz, calls_cut integer)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            INSERT INTO asterisk_outages (kind, began_at, lost_at, booted_at, back_at, calls_cut)
            VALUES (r.outage, r.began_at, r.lost_at, r.booted_at, r.at, r.calls_cut)
            ON CONFLICT (began_at) DO UPDATE SET
                lost_at = COALESCE(asterisk_outages.lost_at, EXCLUDED.lost_at),
                booted_at = COALESCE(asterisk_outages.booted_at, EXCLUDED.booted_at),
                back_at = COALESCE(asterisk_outages.back_at, EXCLUDED.back_at),
                calls_cut = GREATEST(asterisk_outages.calls_cut, EXCLUDED.calls_cut);
        END LOOP;
    END IF;
    -- A vanished call's end is when the resync noticed; the cut knows when it was last alive.
    -- An answered call Asterisk cut had no AgentComplete to say how long it talked: it
    -- talked until it was cut (its end as moved here; SET reads the old ended_at, hence the
    -- repeat).
    IF p_rows ? 'cuts' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'cuts') AS x(
                     n int, call_id text, reason text, at timestamptz)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE calls SET
                cut_reason = COALESCE(cut_reason, r.reason),
                ended_at = CASE WHEN vanished THEN LEAST(ended_at, r.at) ELSE ended_at END,
                talk_seconds = COALESCE(talk_seconds, CASE WHEN answered_at IS NOT NULL
                    THEN GREATEST(0, round(extract(epoch FROM
                        CASE WHEN vanished THEN LEAST(ended_at, r.at) ELSE ended_at END
                        - answered_at)))::int
                    END),
                updated_at = now()
            WHERE call_id = r.call_id;
        END LOOP;
    END IF;

    -- Legs Asterisk's end cut (after their own reports): the first cut stands; one whose end
    -- went unreported ends then, answered if it was.
    IF p_rows ? 'leg_cuts' THEN
        FOR r IN SELECT * FROM jsonb_to_recordset(p_rows -> 'leg_cuts') AS x(
                     n int, leg_id bigint, reason text, at timestamptz)
                 WHERE v_fresh[x.n] ORDER BY x.n LOOP
            UPDATE call_legs SET
                cut_reason = COALESCE(cut_reason, r.reason),
                ended_at = COALESCE(ended_at, r.at),
                outcome = COALESCE(outcome, CASE WHEN answered_at IS NOT NULL THEN 'answered'
                                                 ELSE 'failed' END)
            WHERE leg_id = r.leg_id;
        END LOOP;
    END IF;

    -- Only ever set: a call rebuilt from Asterisk's log stays marked as such.
    IF p_rows ? 'backfilled' THEN
        UPDATE calls SET backfilled = true, updated_at = now()
        WHERE call_id IN (SELECT x.call_id FROM jsonb_to_recordset(p_rows -> 'backfilled')
                                                AS x(n int, call_id text)
                          WHERE v_fresh[x.n])
          AND NOT backfilled;
    END IF;
    RETURN v_fresh;
END
$$;
