-- queue_members.since is when the member's state began, not when it was last reported. Every
-- resync of the AMI listener (each login to Asterisk: a line restart, a reconnection) lists
-- every member again with the resync's instant, and the call store's upsert (0033) took that
-- as a new start: after a restart the wallboard, seeded from this table, showed an operator
-- on a 25-minute break as paused for 0:00. The same state reported again keeps its start;
-- operator_state_changes still keeps every report.
CREATE FUNCTION queue_members_keep_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.state, NEW.paused, NEW.pause_reason)
            IS NOT DISTINCT FROM (OLD.state, OLD.paused, OLD.pause_reason) THEN
        NEW.since := least(OLD.since, NEW.since);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER queue_members_keep_since BEFORE UPDATE ON queue_members
    FOR EACH ROW EXECUTE FUNCTION queue_members_keep_since();
