-- The append-only tables refuse TRUNCATE too: 0005 (audit_log), 0003 (incident_events),
-- 0004 (call_labels) and 0009 (config history) refuse UPDATE and DELETE row by row, which
-- TRUNCATE bypasses. The line's role is not granted TRUNCATE on any table
-- (telephony/db/roles.py); this is the second lock, for a role that was granted it by hand.
-- Only the owner can drop or disable these triggers.

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER incident_events_no_truncate BEFORE TRUNCATE ON incident_events
    FOR EACH STATEMENT EXECUTE FUNCTION incident_events_append_only();

CREATE TRIGGER call_labels_no_truncate BEFORE TRUNCATE ON call_labels
    FOR EACH STATEMENT EXECUTE FUNCTION call_labels_append_only();

CREATE TRIGGER config_versions_no_truncate BEFORE TRUNCATE ON config_versions
    FOR EACH STATEMENT EXECUTE FUNCTION config_history_append_only();

CREATE TRIGGER config_publications_no_truncate BEFORE TRUNCATE ON config_publications
    FOR EACH STATEMENT EXECUTE FUNCTION config_history_append_only();
