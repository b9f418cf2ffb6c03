-- Asterisk going away (telephony/calls/outages.py): the outages, and the calls they cut.

-- One row per time Asterisk went away and came back: a restart or stop announced by AMI's
-- Shutdown (began_at is that event), or a crash (the AMI session lost without one; began_at
-- is the last moment the session was alive). lost_at: the session's loss; booted_at: the new
-- Asterisk's start (FullyBooted's Uptime); back_at: its greeting of the line. A Shutdown with
-- no return yet has only began_at. SQL for it lives in telephony/calls/outage_store.py.
CREATE TABLE asterisk_outages (
    outage_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('restart', 'stop', 'crash')),
    began_at    timestamptz NOT NULL UNIQUE,
    lost_at     timestamptz,
    booted_at   timestamptz,
    back_at     timestamptz,
    calls_cut   integer NOT NULL DEFAULT 0 CHECK (calls_cut >= 0),
    CHECK (back_at IS NULL OR back_at >= began_at)
);

-- A call the line ended, not the caller: Asterisk's restart/stop or its crash. Its ended_at is
-- its hang-up, or for a crash the last moment it was seen alive.
ALTER TABLE calls ADD COLUMN cut_reason text
    CHECK (cut_reason IN ('asterisk_restart', 'asterisk_crash'));

CREATE INDEX calls_cut_idx ON calls (arrived_at) WHERE cut_reason IS NOT NULL;
