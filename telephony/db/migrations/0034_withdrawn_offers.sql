-- Offers the cluster's front withdrew. The front gives a node kamailio_node_timeout_ms to
-- answer a new call (kamailio-conf/kamailio.cfg) and then gives the call to the next node.
-- The first node may still take the INVITE moments later (it was overloaded, or stopped for
-- a moment) and start a channel; the front cancels it as soon as the node replies, or, if
-- the node answers, the carrier hangs that answer up. Either way the first node's line
-- records a second record of the same carrier call, ended within milliseconds, never
-- queued. Left in calls, it would count as an extra call in the reports and as a silent
-- call in the caller's history (the screening would lower the caller's next call). The
-- front reconciliation moves such a record here, whole, and deletes it from calls
-- (telephony/cluster/front_store.py, withdraw_offers).
CREATE TABLE withdrawn_offers (
    call_id       text PRIMARY KEY,            -- the withdrawn record's own id
    sip_call_id   text NOT NULL,               -- the carrier's Call-ID, shared by both
    kept_call_id  text NOT NULL,               -- the record on the node the front chose
    record        jsonb NOT NULL,              -- the calls row as it was
    withdrawn_at  timestamptz NOT NULL DEFAULT now()
);
