-- Calls rebuilt from what Asterisk logged while the line was not listening (issue 13 item 1,
-- telephony/calls/backfill.py), and how far the line has read Asterisk's queue_log.

-- Set by the CallBackfilled fact: the line did not see this call (or its end) live; its record
-- comes from Asterisk's queue_log (the hang-up cause is then unknown).
ALTER TABLE calls ADD COLUMN backfilled boolean NOT NULL DEFAULT false;

CREATE INDEX calls_backfilled_idx ON calls (arrived_at) WHERE backfilled;

-- One row per log the line reads (today only 'queue_log'): the file's inode, which a rotation
-- keeps, and the byte where the next catch-up starts. Written in the transaction that records
-- the calls read, so a crash in between reads the same lines again (a no-op).
CREATE TABLE asterisk_log_cursors (
    source      text PRIMARY KEY CHECK (source ~ '^[a-z_]{1,32}$'),
    inode       bigint NOT NULL CHECK (inode >= 0),
    "offset"    bigint NOT NULL CHECK ("offset" >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
