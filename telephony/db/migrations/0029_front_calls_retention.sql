-- Every node's line deletes the front's reconciled rows past front_calls_retention_days, in
-- batches, oldest first (telephony/cluster/front_store.py purge, run by the reconcile passes
-- every front_reconcile_seconds): this index makes each pass's look an index probe, not a
-- scan of a month of calls. (Setting reconciled_at already updates an index, 0026's partial
-- front_calls_open_idx, so the rows' updates were not HOT before either.)
CREATE INDEX front_calls_reconciled_idx ON front_calls (recorded_at)
    WHERE reconciled_at IS NOT NULL;
