-- A notification not yet delivered when its incident leaves the open states (cancelled, a
-- prank, resolved, closed) is withdrawn, not sent: a gateway that came back hours later
-- sent the fire brigade out to a report the supervisor had long marked a prank. The row
-- stays, with why, and apart from 'failed' (the failures engineers are alerted to).
ALTER TABLE notification_outbox
    DROP CONSTRAINT notification_outbox_state_check,
    ADD CONSTRAINT notification_outbox_state_check
        CHECK (state IN ('pending', 'sent', 'failed', 'withdrawn'));
