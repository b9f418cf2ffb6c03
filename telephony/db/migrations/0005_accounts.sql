-- Accounts of the people who use the API and the console, their sessions, the login failures
-- that throttle brute force, and the append-only audit log (who played which recording,
-- downloaded which file, logged in, changed which account).
-- The role list mirrors telephony/accounts/model.py.

CREATE TABLE accounts (
    account_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username             text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,31}$'),
    display_name         text NOT NULL DEFAULT '',
    role                 text NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
    password_hash        text NOT NULL,                  -- argon2id, PHC string format
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a digest of the token is stored: a copy of this table opens no session.
CREATE TABLE sessions (
    token_sha256    text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    account_id      bigint NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    -- Sent back with every cookie-authenticated change; worthless without the session cookie.
    csrf_token      text NOT NULL,
    remote_address  text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sessions_account_idx ON sessions (account_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Failed logins within the throttling window; older rows are pruned as new ones come in.
CREATE TABLE login_failures (
    failure_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        text NOT NULL,                   -- as typed (lower-cased, cut short)
    remote_address  text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX login_failures_username_idx ON login_failures (username, at);
CREATE INDEX login_failures_address_idx ON login_failures (remote_address, at);
CREATE INDEX login_failures_at_idx ON login_failures (at);

-- Append-only: the trigger below refuses to rewrite history.
CREATE TABLE audit_log (
    audit_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,                   -- a username, or cli / system
    action          text NOT NULL,                   -- recording.play, attachment.download ...
    object_type     text NOT NULL DEFAULT '',
    object_id       text NOT NULL DEFAULT '',
    remote_address  text NOT NULL DEFAULT '',
    detail          jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id, audit_id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, audit_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
