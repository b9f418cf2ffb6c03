-- Who holds a recording job (recordings/holder.py): the claiming process's host (host name and
-- boot id), pid and start time. Meaningful while the job is 'processing'. A worker on the same
-- host that finds the holder dead takes the job over at once instead of waiting out its lease
-- (now short and renewed by the holder's heartbeat, recordings/worker.py).
ALTER TABLE recordings
    ADD COLUMN claim_host text,
    ADD COLUMN claim_pid integer,
    ADD COLUMN claim_pid_started bigint;
