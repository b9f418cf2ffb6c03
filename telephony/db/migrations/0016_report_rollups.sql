-- Per-shift rollups of the reports (telephony/reports/store.py): a closed shift's figures are
-- computed once by the same grouped query the reports use, stored as additive counts and sums
-- per (first queue, answering operator), with the exact waits (microseconds) for the p90, and
-- read back by a month's report instead of its calls and pause changes.
--
-- A rollup is valid only while its slot's sources are unchanged: any write to a call of the
-- slot (a late fact, a relabel, a rung event: 0015 copies those onto the call row) and any
-- pause change inside the slot's wrap-up window deletes the slot's rollup here, by
-- statement-level triggers (one statement per batch, not one per row). A slot without a valid
-- rollup is computed live by the report, from its calls, and rolled up again by the
-- refresher. The refresher locks report_rollup_slots (SHARE ROW EXCLUSIVE) while it computes
-- and stores (the invalidating DELETEs wait for it), so a rollup never outlives a write it did
-- not see.

CREATE TABLE report_rollup_slots (
    shift_day    date        NOT NULL,
    shift_name   text        NOT NULL,
    automatic_us bigint      NOT NULL,  -- the queues' automatic wrap-up it was computed with
    wrap_lo      timestamptz,           -- the pause changes its wrap-ups read: [lo, hi)
    wrap_hi      timestamptz,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shift_day, shift_name)
);

-- The pause changes' trigger looks for windows still open at the changes' instant: recent
-- ones only, not years of shifts.
CREATE INDEX report_rollup_slots_wrap_idx ON report_rollup_slots (wrap_hi);

-- kind 'fine': the figures of the slot's calls by (queue, operator), NULLs included;
-- kind 'offered_to': per operator offered a call, calls / offered / abandoned only.
CREATE TABLE report_rollups (
    shift_day   date   NOT NULL,
    shift_name  text   NOT NULL,
    kind        text   NOT NULL CHECK (kind IN ('fine', 'offered_to')),
    queue       text,
    operator    text,
    calls       bigint NOT NULL,
    offered     bigint NOT NULL,
    answered    bigint NOT NULL,
    abandoned   bigint NOT NULL,
    sl10_hits   bigint NOT NULL,
    sl10_counted bigint NOT NULL,
    sl20_hits   bigint NOT NULL,
    sl20_counted bigint NOT NULL,
    wait_n      bigint NOT NULL,
    wait_sum    numeric,
    talk_n      bigint NOT NULL,
    talk_sum    numeric,
    labelled    bigint NOT NULL,
    nuisance    bigint NOT NULL,
    wrap_n      bigint NOT NULL,
    wrap_sum    numeric,
    waits       bigint[] NOT NULL DEFAULT '{}',  -- the answered offered calls' waits, exact
    FOREIGN KEY (shift_day, shift_name) REFERENCES report_rollup_slots ON DELETE CASCADE
);
CREATE INDEX report_rollups_slot_idx ON report_rollups (shift_day, shift_name);

CREATE FUNCTION report_rollups_calls_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        DELETE FROM report_rollup_slots r USING (SELECT DISTINCT shift_day, shift_name FROM new) n
        WHERE r.shift_day = n.shift_day AND r.shift_name = n.shift_name;
    ELSE  -- an update may move a call between slots: both lose their rollup
        DELETE FROM report_rollup_slots r USING (
            SELECT shift_day, shift_name FROM new UNION SELECT shift_day, shift_name FROM old) n
        WHERE r.shift_day = n.shift_day AND r.shift_name = n.shift_name;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER report_rollups_calls_inserted AFTER INSERT ON calls
    REFERENCING NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_calls_changed();
CREATE TRIGGER report_rollups_calls_updated AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS old NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_calls_changed();
CREATE TRIGGER report_rollups_calls_deleted AFTER DELETE ON calls
    REFERENCING OLD TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_calls_changed();

-- A pause change can change the wrap-up of calls that ended before it: every slot whose
-- wrap-up window holds it loses its rollup.
CREATE FUNCTION report_rollups_pauses_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM report_rollup_slots r USING (
            SELECT min(at) AS lo, max(at) AS hi FROM (SELECT at FROM new UNION ALL
                                                      SELECT at FROM old) a) n
        WHERE r.wrap_lo <= n.hi AND r.wrap_hi > n.lo;
    ELSE
        DELETE FROM report_rollup_slots r USING (SELECT min(at) AS lo, max(at) AS hi FROM new) n
        WHERE r.wrap_lo <= n.hi AND r.wrap_hi > n.lo;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER report_rollups_pauses_inserted AFTER INSERT ON operator_state_changes
    REFERENCING NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_pauses_changed();
CREATE TRIGGER report_rollups_pauses_updated AFTER UPDATE ON operator_state_changes
    REFERENCING OLD TABLE AS old NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_pauses_changed();
CREATE TRIGGER report_rollups_pauses_deleted AFTER DELETE ON operator_state_changes
    REFERENCING OLD TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_pauses_changed();
