-- A cluster node's wallboard follows the other nodes' calls by their rows' updated_at
-- (ReportRepository.changed_calls, about once a second): a range scan of the last seconds.
CREATE INDEX calls_updated_at_idx ON calls (updated_at);

-- Every update of a calls row sets updated_at, the copies of migration 0015 too: a label given
-- on one node reaches the other nodes' counters with its call's row.
CREATE OR REPLACE FUNCTION call_events_rung_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE calls SET rung_operators = calls_rung_operators(NEW.call_id), updated_at = now()
    WHERE call_id = NEW.call_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION call_labels_current_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE calls SET current_label = calls_current_label(NEW.call_id), updated_at = now()
    WHERE call_id = NEW.call_id;
    RETURN NULL;
END
$$;
