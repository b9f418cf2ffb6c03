-- Reports aggregate in the database (telephony/reports/store.py): a period's figures are one
-- grouped query over the calls of its shift days, never one row per call brought to Python.
--
-- Two things a report needs of a call live outside its row: the operators rung for it
-- (call_events of kind operator_rung) and its current label (the latest call_labels entry).
-- Probing both per call costs a month of calls two index probes each, so each call row keeps
-- a copy, maintained here in SQL by triggers (the call store's write path stays as it is):
--   rung_operators: the distinct operators rung, sorted; recomputed from call_events when an
--                   operator_rung event is recorded, and when the call row is created after
--                   its events (a call first seen through a later fact).
--   current_label:  the label of the call's latest call_labels entry (labelled_at, then
--                   label_id), recomputed when a label is added.
-- Both are recomputed from the source rows, never incremented, so a replayed event changes
-- nothing and the copy is exact whatever the order the rows arrive in.

ALTER TABLE calls
    ADD COLUMN rung_operators text[] NOT NULL DEFAULT '{}',
    ADD COLUMN current_label  text;

-- The rung events of one call, from the index alone: every calls insert (the store's
-- INSERT ... ON CONFLICT DO NOTHING included) looks here, and finds nothing almost always.
CREATE INDEX call_events_rung_idx ON call_events (call_id) INCLUDE (body)
    WHERE kind = 'operator_rung';

-- call_outcomes (0001) froze the calls columns of its day; made again to show the copies.
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

CREATE FUNCTION calls_rung_operators(target text) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT COALESCE(array_agg(DISTINCT e.body ->> 'operator' ORDER BY e.body ->> 'operator')
                        FILTER (WHERE e.body ->> 'operator' IS NOT NULL), '{}')
    FROM call_events e
    WHERE e.call_id = target AND e.kind = 'operator_rung'
$$;

CREATE FUNCTION calls_current_label(target text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT l.label FROM call_labels l
    WHERE l.call_id = target
    ORDER BY l.labelled_at DESC, l.label_id DESC
    LIMIT 1
$$;

CREATE FUNCTION call_events_rung_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE calls SET rung_operators = calls_rung_operators(NEW.call_id)
    WHERE call_id = NEW.call_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER call_events_rung_copy AFTER INSERT ON call_events
    FOR EACH ROW WHEN (NEW.kind = 'operator_rung' AND NEW.call_id IS NOT NULL)
    EXECUTE FUNCTION call_events_rung_copy();

CREATE FUNCTION calls_report_copies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A label needs its call row (foreign key), so only rung events can come first.
    NEW.rung_operators := calls_rung_operators(NEW.call_id);
    RETURN NEW;
END
$$;

CREATE TRIGGER calls_report_copies BEFORE INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_report_copies();

CREATE FUNCTION call_labels_current_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE calls SET current_label = calls_current_label(NEW.call_id)
    WHERE call_id = NEW.call_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER call_labels_current_copy AFTER INSERT ON call_labels
    FOR EACH ROW EXECUTE FUNCTION call_labels_current_copy();

UPDATE calls SET rung_operators = calls_rung_operators(call_id)
WHERE call_id IN (SELECT call_id FROM call_events WHERE kind = 'operator_rung');
UPDATE calls SET current_label = calls_current_label(call_id)
WHERE call_id IN (SELECT call_id FROM call_labels);

-- A period's calls from the index alone (an index-only scan once vacuumed): every column the
-- figures need, in shift-day order.
CREATE INDEX calls_report_idx ON calls (shift_day, shift_name)
    INCLUDE (call_id, queue, queue_joined_at, answered_at, completed_at, abandoned_at, vanished,
             ended_at, operator, wait_seconds, talk_seconds, current_label, rung_operators, line,
             ivr_category);

-- The operators' pause changes of a period, for the wrap-ups, in one range scan.
CREATE INDEX operator_state_changes_at_idx ON operator_state_changes (at)
    INCLUDE (operator, paused, pause_reason);
