-- The operator's talk with an agency in an attended transfer or a conference: the caller waits
-- on hold meanwhile, so the call's own recording does not hear it. MixMonitor on the agency's
-- channel, from its answer, writes <call_id>-consult<leg_id>.wav (extensions.conf,
-- siaga112-consult-answered), which the recordings worker pairs with the leg once it has ended
-- and files beside the call's recording, as a recording of that call of kind 'consult'
-- (recordings/domain.py), one per leg as a call-back's.
ALTER TABLE recordings
    DROP CONSTRAINT recordings_kind_check,
    ADD CONSTRAINT recordings_kind_check
        CHECK (kind IN ('mixed', 'caller', 'line', 'callback', 'consult')),
    DROP CONSTRAINT recordings_leg_check,
    ADD CONSTRAINT recordings_leg_check
        CHECK ((kind IN ('callback', 'consult')) = (leg_id IS NOT NULL));
