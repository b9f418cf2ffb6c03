-- One queue_log cursor per node of a cluster (telephony/asterisk/queue_log.py cursor_source): the
-- nodes share this database and each reads its own Asterisk's queue_log, so a single row had
-- each node take the other's cursor for a rotated file that was gone. A site of one node keeps
-- its row 'queue_log'; a cluster's node names its own, 'queue_log@<systemname>' (systemname:
-- 1-32 of a-z, 0-9 and _, as the settings check it).
ALTER TABLE asterisk_log_cursors DROP CONSTRAINT asterisk_log_cursors_source_check;
ALTER TABLE asterisk_log_cursors ADD CONSTRAINT asterisk_log_cursors_source_check
    CHECK (source ~ '^[a-z_]{1,32}(@[a-z0-9_]{1,32})?$');
