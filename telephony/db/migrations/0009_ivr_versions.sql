-- What an admin edits while the line runs (issue 5): versions of the IVR menu and of the
-- screening configuration, when each was published, the prompt recordings uploaded for a
-- menu version; the queue settings applied to Asterisk; and the site settings (dispatch
-- targets, shifts) that override the settings file. SQL for the versions lives in
-- telephony/db/config_versions.py, for the queue and site settings in
-- telephony/db/admin_settings.py; the rules in telephony/admin/.

-- A version is a whole document, never changed once saved: a later edit is a new version
-- (based_on names the one it started from), so what was published can always be shown and
-- published again (a rollback).
CREATE TABLE config_versions (
    version_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('menu', 'screening')),
    document    jsonb NOT NULL,
    note        text NOT NULL DEFAULT '',
    based_on    bigint REFERENCES config_versions (version_id),
    created_by  text NOT NULL CHECK (created_by <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX config_versions_kind_idx ON config_versions (kind, version_id);

-- Every publication, append-only; a kind's live version is its latest publication.
CREATE TABLE config_publications (
    publication_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('menu', 'screening')),
    version_id      bigint NOT NULL REFERENCES config_versions (version_id),
    published_by    text NOT NULL CHECK (published_by <> ''),
    published_at    timestamptz NOT NULL DEFAULT now(),
    note            text NOT NULL DEFAULT ''
);

CREATE INDEX config_publications_kind_idx ON config_publications (kind, publication_id);
CREATE INDEX config_publications_version_idx ON config_publications (version_id);

CREATE FUNCTION config_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

CREATE TRIGGER config_versions_append_only BEFORE UPDATE OR DELETE ON config_versions
    FOR EACH ROW EXECUTE FUNCTION config_history_append_only();
CREATE TRIGGER config_publications_append_only BEFORE UPDATE OR DELETE ON config_publications
    FOR EACH ROW EXECUTE FUNCTION config_history_append_only();

-- Uploaded prompt audio, as sent (any format ffmpeg reads), stored once per content: a
-- version made from another keeps its recordings without copying them.
CREATE TABLE prompt_audio (
    sha256  text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    audio   bytea NOT NULL
);

-- The recorded prompts of a menu version: they replace the synthesised voice for that prompt.
CREATE TABLE version_prompt_recordings (
    version_id   bigint NOT NULL REFERENCES config_versions (version_id),
    prompt       text NOT NULL CHECK (prompt ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    sha256       text NOT NULL REFERENCES prompt_audio (sha256),
    filename     text NOT NULL DEFAULT '',
    uploaded_by  text NOT NULL CHECK (uploaded_by <> ''),
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version_id, prompt)
);

-- One row per queue an admin changed; a queue without a row has the defaults
-- (telephony/admin/queues.py). The ranges mirror QueueSettings' validation.
CREATE TABLE queue_settings (
    queue                       text PRIMARY KEY CHECK (queue ~ '^[a-z][a-z-]{0,39}$'),
    strategy                    text NOT NULL,
    ring_timeout_seconds        integer NOT NULL CHECK (ring_timeout_seconds > 0),
    retry_seconds               integer NOT NULL CHECK (retry_seconds >= 0),
    wrapup_seconds              integer NOT NULL CHECK (wrapup_seconds >= 0),
    announce_position           boolean NOT NULL,
    announce_holdtime           boolean NOT NULL,
    announce_frequency_seconds  integer NOT NULL CHECK (announce_frequency_seconds >= 0),
    max_wait_seconds            integer NOT NULL CHECK (max_wait_seconds > 0),
    updated_by                  text NOT NULL CHECK (updated_by <> ''),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- Settings an admin set in the console; they win over the settings file's.
CREATE TABLE site_settings (
    name        text PRIMARY KEY CHECK (name IN ('dispatch_targets', 'shifts')),
    value       jsonb NOT NULL,
    updated_by  text NOT NULL CHECK (updated_by <> ''),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
