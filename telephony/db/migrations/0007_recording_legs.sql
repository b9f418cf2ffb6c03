-- Separate legs (setting recordings_separate_legs): besides the mixed <call_id>.wav, MixMonitor
-- writes what the line received from the caller (<call_id>-caller.wav, its r() option) and
-- what it sent to the caller, IVR prompts and operator (<call_id>-line.wav, its t() option).
--
-- Each leg is a recordings row of its own kind beside the call's mixed one: created in the
-- same transaction when the call is paired, processed as a job of its own (a broken leg is
-- quarantined and never holds up the mix), stored next to the mix, and retained and held with
-- it (same start, same category, and the legal hold is set on all of a call's rows at once).
-- The code list mirrors recordings.domain.Kind.

ALTER TABLE recordings
    ADD CONSTRAINT recordings_kind_check CHECK (kind IN ('mixed', 'caller', 'line'));
