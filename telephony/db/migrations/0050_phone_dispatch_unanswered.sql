-- A dispatch made (or marked) "by phone" whose calls to the agency all ended unanswered is
-- settled by the incident upkeep (telephony/incidents/dispatch_service.py): called off when
-- the phone was the agency's only word of it, else no longer marked by phone. The upkeep looks
-- every pass at the by-phone dispatches still under way and their transfer legs: these keep
-- that to the few rows concerned, not the whole tables, every few seconds.
CREATE INDEX transfer_legs_dispatch_idx ON transfer_legs (dispatch_id)
    WHERE dispatch_id IS NOT NULL;
CREATE INDEX dispatches_by_phone_idx ON dispatches (incident_id)
    WHERE by_phone AND state IN ('notified', 'acknowledged');
