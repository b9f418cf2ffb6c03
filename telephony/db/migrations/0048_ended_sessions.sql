-- Why an admin's change ended a session: another role, the account disabled, a new password.
-- Its owner's next request with that session says so (the console's login form shows it),
-- instead of only the login form again: a supervisor made an operator while listening in
-- heard the line go dead and saw no reason. Only the token's digest, as in sessions; a row
-- lives as long as its session would have, then goes with the expired sessions.
CREATE TABLE ended_sessions (
    token_sha256    text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 300),
    expires_at      timestamptz NOT NULL
);

CREATE INDEX ended_sessions_expires_idx ON ended_sessions (expires_at);
