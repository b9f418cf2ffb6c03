"""The pure rules of recordings: names, layout, states, silence share, retention."""

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

import pytest

from recordings.domain import (
    CALL_KINDS,
    INITIAL_STATES,
    NOT_CREATED,
    NOT_WRITTEN,
    NOT_WRITTEN_TEXT,
    TRANSITIONS,
    Kind,
    Pairing,
    RecordingNameError,
    RetentionPolicy,
    Source,
    State,
    can_transition,
    holder_is_gone,
    is_settled,
    is_temp_of,
    loudness,
    mixmonitor_options,
    pair_files,
    pair_leg,
    parse_source,
    processing_bound,
    silence_share,
    source_name,
    sources_of,
    state_after_error,
    storage_relpath,
    temp_name,
    unavailable_because,
)
from telephony.calls.ids import valid_call_id
from telephony.core.storage import StoredFileError, checked_relpath

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("call_id", ["1795430334.0", "1.2", "0000000001.123456"])
def test_asterisk_unique_ids_are_valid(call_id: str) -> None:
    assert valid_call_id(call_id)
    assert source_name(call_id) == f"{call_id}.wav"
    assert parse_source(f"{call_id}.wav") == Source(call_id, Kind.MIXED)
    assert source_name(call_id, Kind.CALLER) == f"{call_id}-caller.wav"
    assert parse_source(f"{call_id}-caller.wav") == Source(call_id, Kind.CALLER)
    assert source_name(call_id, Kind.LINE) == f"{call_id}-line.wav"
    assert parse_source(f"{call_id}-line.wav") == Source(call_id, Kind.LINE)
    # An operator's call-back of the caller: the dialplan's MixMonitor in siaga112-callback.
    assert source_name(call_id, Kind.CALLBACK, 17) == f"{call_id}-callback17.wav"
    assert parse_source(f"{call_id}-callback17.wav") == Source(call_id, Kind.CALLBACK, 17)


@pytest.mark.parametrize(("kind", "leg_id"), [
    (Kind.CALLBACK, None), (Kind.MIXED, 3), (Kind.CALLER, 3), (Kind.CALLBACK, 0),
    (Kind.CALLBACK, -1), (Kind.CALLBACK, 10**18)])
def test_a_call_back_recording_and_only_one_names_its_leg(kind: Kind, leg_id: int | None
                                                          ) -> None:
    with pytest.raises(RecordingNameError):
        source_name("1.2", kind, leg_id)


@pytest.mark.parametrize(
    "call_id",
    ["", "1", "1.", ".1", "a.b", "1.2.3", " 1.2", "1.2\n", "../1.2", "1.2/../../etc",
     "/etc/passwd", "1.2;rm", "\uff11.\uff12", "Sys-1795430334.0", "a-b-1.2", "1.2\x00"],
)
def test_anything_else_is_refused_before_it_names_a_file(call_id: str) -> None:
    assert not valid_call_id(call_id)
    for kind in Kind:
        with pytest.raises(RecordingNameError):
            source_name(call_id, kind)
    with pytest.raises(RecordingNameError):
        storage_relpath(call_id, datetime(2026, 1, 1, tzinfo=UTC), "Asia/Jakarta", "opus")
    with pytest.raises(RecordingNameError):
        temp_name(call_id, TOKEN)


@pytest.mark.parametrize("name", ["1.2.mp3", "1.2", "x.wav", ".1.2.wav", "../1.2.wav", "1.2.WAV",
                                  "1.2-mixed.wav", "1.2-other.wav", "1.2-caller.mp3",
                                  "1.2-.wav", "1.2-caller-line.wav", "x-caller.wav",
                                  "1.2-callback.wav", "1.2-callback0.wav", "1.2-callback-1.wav",
                                  "1.2-callback1x.wav", "1.2-callback1.mp3",
                                  "1.2-callback1234567890123456789.wav"])
def test_other_files_in_the_monitor_directory_are_not_ours(name: str) -> None:
    assert parse_source(name) is None


def test_the_dialplan_names_the_legs_as_the_worker_looks_for_them() -> None:
    assert mixmonitor_options(separate_legs=False) == ""
    options = mixmonitor_options(separate_legs=True)
    # r(): the audio the line receives (the caller); t(): what it transmits (IVR, operator).
    assert options == "r(${UNIQUEID}-caller.wav)t(${UNIQUEID}-line.wav)"
    assert options.replace("${UNIQUEID}", "1.2") == (
        f"r({source_name('1.2', Kind.CALLER)})t({source_name('1.2', Kind.LINE)})")


def test_layout_is_dated_by_the_local_arrival_day() -> None:
    # 18:30 UTC on the 23rd is 01:30 on the 24th in Jakarta.
    started = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    assert storage_relpath("1795430334.0", started, "Asia/Jakarta", "opus") == PurePosixPath(
        "2026/11/24/1795430334.0.opus")
    assert storage_relpath("1795430334.0", started, "UTC", "mp3") == PurePosixPath(
        "2026/11/23/1795430334.0.mp3")
    with pytest.raises(ValueError, match="format"):
        storage_relpath("1.2", started, "UTC", "wav")


def test_legs_are_stored_next_to_the_mixed_recording() -> None:
    started = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    assert [storage_relpath("1.2", started, "Asia/Jakarta", "opus", kind)
            for kind in CALL_KINDS] == [
        PurePosixPath("2026/11/24/1.2.opus"), PurePosixPath("2026/11/24/1.2-caller.opus"),
        PurePosixPath("2026/11/24/1.2-line.opus")]
    # A call-back is filed with the call it called back, dated by that call's arrival.
    assert storage_relpath("1.2", started, "Asia/Jakarta", "opus", Kind.CALLBACK, leg_id=9) == (
        PurePosixPath("2026/11/24/1.2-callback9.opus"))
    callback = temp_name("1.2", TOKEN, Kind.CALLBACK, 9)
    assert is_temp_of(callback, "1.2", Kind.CALLBACK, 9)
    assert not is_temp_of(callback, "1.2", Kind.CALLBACK, 90)
    assert not is_temp_of(callback, "1.2")


@pytest.mark.parametrize("kind", [Kind.CALLBACK, Kind.CONSULT])
def test_a_leg_is_paired_once_its_file_settles_or_is_long_missing(kind: Kind) -> None:
    def pair(mtime: float | None, now: float, ago: float) -> Pairing | None:
        return pair_leg(mtime, now=now, ended_seconds_ago=ago, settle_seconds=3.0,
                        missing_after_seconds=120.0, kind=kind)

    assert pair(100.0, 101.0, 1.0) is None
    assert pair(100.0, 104.0, 4.0) == Pairing(kind, State.PENDING)
    assert pair(None, 104.0, 4.0) is None
    missing = pair(None, 300.0, 200.0)
    assert missing is not None and (missing.kind, missing.state) == (kind, State.MISSING)
    assert missing.reason == f"the leg ended without its {kind.value} recording file"


def test_a_consult_with_an_agency_is_named_after_the_call_and_its_leg() -> None:
    """The operator's talk with an agency (attended transfer, conference): the dialplan
    writes <call>-consult<leg>.wav, a recording of the call, one per leg."""
    assert source_name("1795430334.7", Kind.CONSULT, 12345) == "1795430334.7-consult12345.wav"
    assert parse_source("1795430334.7-consult12345.wav") == Source(
        "1795430334.7", Kind.CONSULT, 12345)
    assert parse_source("pbx1-1795430334.7-consult3.wav") == Source(
        "pbx1-1795430334.7", Kind.CONSULT, 3)
    assert parse_source("1795430334.7-consult.wav") is None
    with pytest.raises(RecordingNameError):
        source_name("1795430334.7", Kind.CONSULT)


def test_temporary_names_belong_to_one_call_and_one_claim() -> None:
    name = temp_name("1.2", TOKEN)
    assert name == f".1.2.{TOKEN}.tmp"
    assert is_temp_of(name, "1.2")
    assert not is_temp_of(name, "1.23")
    assert not is_temp_of(temp_name("1.23", TOKEN), "1.2")
    assert not is_temp_of("1.2.opus", "1.2")
    with pytest.raises(RecordingNameError):
        temp_name("1.2", "../../x")


def test_temporary_names_of_a_leg_are_not_its_mixed_recordings() -> None:
    """A call's jobs run side by side: one cleaning up its leftovers must spare the others'."""
    leg = temp_name("1.2", TOKEN, Kind.CALLER)
    assert leg == f".1.2-caller.{TOKEN}.tmp"
    assert is_temp_of(leg, "1.2", Kind.CALLER)
    assert not is_temp_of(leg, "1.2", Kind.MIXED)
    assert not is_temp_of(leg, "1.2", Kind.LINE)
    assert not is_temp_of(temp_name("1.2", TOKEN), "1.2", Kind.CALLER)


def test_stored_paths_are_checked_before_anything_is_deleted() -> None:
    assert checked_relpath("2026/11/24/1.2.opus") == PurePosixPath("2026/11/24/1.2.opus")
    for stored in ("", "/etc/passwd", "../x", "2026/../../x", "2026\\..\\x", "a/\x00"):
        with pytest.raises(StoredFileError):
            checked_relpath(stored)


def test_transitions() -> None:
    assert can_transition(State.PENDING, State.PROCESSING)
    assert can_transition(State.PROCESSING, State.PROCESSING)  # a lease taken over
    assert can_transition(State.PROCESSING, State.PENDING)  # a retry
    assert can_transition(State.DONE, State.EXPIRED)
    assert not can_transition(State.PENDING, State.DONE)  # only by processing
    assert not can_transition(State.FAILED, State.PENDING)  # quarantined stays quarantined
    assert not can_transition(State.EXPIRED, State.DONE)
    for final in (State.FAILED, State.MISSING, State.EXPIRED):
        assert TRANSITIONS[final] == frozenset()


def test_update_guards_come_from_the_table() -> None:
    assert sources_of(State.DONE) == (State.PROCESSING,)
    assert sources_of(State.FAILED) == (State.PROCESSING,)
    assert sources_of(State.EXPIRED) == (State.DONE,)
    assert set(sources_of(State.PROCESSING)) == {State.PENDING, State.PROCESSING}


def test_every_state_is_reachable_from_a_row_as_created() -> None:
    reached = set(INITIAL_STATES)
    frontier = list(reached)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)


def test_errors_retry_until_attempts_run_out_unless_permanent() -> None:
    assert state_after_error(1, 3, permanent=False) is State.PENDING
    assert state_after_error(2, 3, permanent=False) is State.PENDING
    assert state_after_error(3, 3, permanent=False) is State.FAILED
    assert state_after_error(1, 3, permanent=True) is State.FAILED


@pytest.mark.parametrize(
    ("segments", "duration", "share"),
    [
        ([], 8000, 0.0),
        ([[3000, 5000]], 8000, 0.25),
        ([[0, 8000]], 8000, 1.0),
        ([[5000, 6000], [1000, 2000]], 4000, 0.25),  # any order; the second sticks out
        ([[1000, 3000], [2000, 4000]], 8000, 0.375),  # overlap counts once
        ([[1000, 3000], [1500, 2500]], 4000, 0.5),  # nested
        ([[-500, 500], [7500, 9000]], 8000, 0.125),  # clipped to the recording
        ([[2000, 2000]], 8000, 0.0),
    ],
)
def test_silence_share(segments: list[list[int]], duration: int, share: float) -> None:
    assert silence_share(segments, duration) == pytest.approx(share)


def test_silence_share_needs_audio() -> None:
    with pytest.raises(ValueError, match="without audio"):
        silence_share([], 0)


def test_loudness_of_digital_silence_is_none() -> None:
    assert loudness(float("-inf")) is None
    assert loudness(-23.5) == -23.5


def test_settled_once_unchanged_for_the_settle_time() -> None:
    assert not is_settled(mtime=100.0, now=101.0, settle_seconds=3)
    assert is_settled(mtime=100.0, now=103.0, settle_seconds=3)


NOW_S = 1_000_000.0


def pairing(mtimes: dict[Kind, float], *, ended_ago: float = 5.0,
            separate_legs: bool = True) -> list[Pairing] | None:
    return pair_files(mtimes, now=NOW_S, ended_seconds_ago=ended_ago, settle_seconds=3,
                      missing_after_seconds=120, separate_legs=separate_legs)


def test_a_call_with_all_its_files_gets_a_pending_row_for_each() -> None:
    done = NOW_S - 10
    assert pairing({kind: done for kind in Kind}) == [
        Pairing(Kind.MIXED, State.PENDING), Pairing(Kind.CALLER, State.PENDING),
        Pairing(Kind.LINE, State.PENDING)]
    assert pairing({Kind.MIXED: done}, separate_legs=False) == [
        Pairing(Kind.MIXED, State.PENDING)]


def test_any_file_still_being_written_holds_the_call_back() -> None:
    assert pairing({Kind.MIXED: NOW_S - 10, Kind.LINE: NOW_S - 1}) is None
    assert pairing({Kind.MIXED: NOW_S - 1}, separate_legs=False) is None


def test_a_missing_leg_is_reported_at_once_and_does_not_hold_the_mix_up() -> None:
    assert pairing({Kind.MIXED: NOW_S - 10, Kind.LINE: NOW_S - 10}) == [
        Pairing(Kind.MIXED, State.PENDING),
        Pairing(Kind.CALLER, State.MISSING, "the call ended without its caller leg's file"),
        Pairing(Kind.LINE, State.PENDING)]


def test_legs_are_only_missed_when_they_are_recorded_but_always_taken() -> None:
    # Just switched off: legs of calls recorded before are still recordings of the call.
    assert pairing({Kind.MIXED: NOW_S - 10, Kind.CALLER: NOW_S - 10},
                   separate_legs=False) == [
        Pairing(Kind.MIXED, State.PENDING), Pairing(Kind.CALLER, State.PENDING)]


def test_without_the_mixed_file_the_call_waits_then_is_missing() -> None:
    leg_only = {Kind.CALLER: NOW_S - 10}
    assert pairing(leg_only) is None
    assert pairing({}, ended_ago=119) is None
    assert pairing(leg_only, ended_ago=120) == [
        Pairing(Kind.MIXED, State.MISSING, "the call ended without a recording file"),
        Pairing(Kind.CALLER, State.PENDING),
        Pairing(Kind.LINE, State.MISSING, "the call ended without its line leg's file")]
    assert pairing({}, ended_ago=120, separate_legs=False) == [
        Pairing(Kind.MIXED, State.MISSING, "the call ended without a recording file")]


def test_an_empty_file_is_a_recording_asterisk_could_not_write_and_is_said_so() -> None:
    """MixMonitor writes the WAV header at the answer: an empty file means every write was
    refused (its disk full or read-only), not a broken recording to quarantine."""
    done = NOW_S - 10
    assert pair_files({Kind.MIXED: done, Kind.CALLER: done, Kind.LINE: done}, now=NOW_S,
                      ended_seconds_ago=5, settle_seconds=3, missing_after_seconds=120,
                      separate_legs=True, empty=frozenset({Kind.MIXED, Kind.LINE})) == [
        Pairing(Kind.MIXED, State.MISSING, NOT_WRITTEN), Pairing(Kind.CALLER, State.PENDING),
        Pairing(Kind.LINE, State.MISSING, NOT_WRITTEN)]
    assert pair_leg(done, now=NOW_S, ended_seconds_ago=5, settle_seconds=3,
                    missing_after_seconds=120, empty=True) == Pairing(
        Kind.CALLBACK, State.MISSING, NOT_WRITTEN)
    # Still being written: it may yet get its header.
    assert pair_leg(NOW_S - 1, now=NOW_S, ended_seconds_ago=1, settle_seconds=3,
                    missing_after_seconds=120, empty=True) is None
    assert unavailable_because(State.MISSING, NOT_WRITTEN) == NOT_WRITTEN_TEXT
    assert unavailable_because(State.MISSING, NOT_CREATED) == NOT_WRITTEN_TEXT
    assert unavailable_because(State.MISSING, "the call ended without a recording file") is None
    assert unavailable_because(State.DONE, None) is None


def test_a_file_missing_while_the_disk_takes_none_was_never_created() -> None:
    """A read-only (or full) monitor directory: MixMonitor could not create the files."""
    assert pair_files({}, now=NOW_S, ended_seconds_ago=200, settle_seconds=3,
                      missing_after_seconds=120, separate_legs=True, disk_refuses=True) == [
        Pairing(Kind.MIXED, State.MISSING, NOT_CREATED),
        Pairing(Kind.CALLER, State.MISSING, NOT_CREATED),
        Pairing(Kind.LINE, State.MISSING, NOT_CREATED)]
    # It still waits its time: the call may yet be written once the disk is back.
    assert pair_files({}, now=NOW_S, ended_seconds_ago=5, settle_seconds=3,
                      missing_after_seconds=120, separate_legs=False, disk_refuses=True) is None
    assert pair_leg(None, now=NOW_S, ended_seconds_ago=200, settle_seconds=3,
                    missing_after_seconds=120, disk_refuses=True) == Pairing(
        Kind.CALLBACK, State.MISSING, NOT_CREATED)


POLICY = RetentionPolicy(emergency_days=3650, complaint_days=730, information_days=30,
                         default_days=3650)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_retention_by_category_with_a_default() -> None:
    assert POLICY.days_for("emergency") == 3650
    assert POLICY.days_for("complaint") == 730
    assert POLICY.days_for("information") == 30
    assert POLICY.days_for(None) == POLICY.days_for("something-new") == 3650


def test_expiry_boundary_and_legal_hold() -> None:
    started = NOW - timedelta(days=30)
    assert POLICY.is_expired("information", started, legal_hold=False, now=NOW)
    assert not POLICY.is_expired("information", started + timedelta(seconds=1),
                                 legal_hold=False, now=NOW)
    assert not POLICY.is_expired("information", started - timedelta(days=999),
                                 legal_hold=True, now=NOW)
    assert not POLICY.is_expired("emergency", started, legal_hold=False, now=NOW)
    assert POLICY.expires_at("complaint", started) == started + timedelta(days=730)


def test_an_incident_keeps_its_calls_while_open_and_counts_from_its_end() -> None:
    started = NOW - timedelta(days=999)
    assert not POLICY.is_expired("information", started, legal_hold=False, now=NOW,
                                 incident_open=True)
    ended = NOW - timedelta(days=30)
    assert POLICY.is_expired("information", started, legal_hold=False, now=NOW,
                             incident_ended_at=ended)
    assert not POLICY.is_expired("information", started, legal_hold=False, now=NOW,
                                 incident_ended_at=ended + timedelta(seconds=1))
    # An incident that ended before the call (a call linked to a closed case) changes nothing.
    assert POLICY.is_expired("information", NOW - timedelta(days=31), legal_hold=False,
                             now=NOW, incident_ended_at=NOW - timedelta(days=400))


def test_earliest_cutoff_is_the_shortest_retention() -> None:
    assert POLICY.earliest_cutoff(NOW) == NOW - timedelta(days=30)


def test_cutoffs_by_category_and_for_the_others() -> None:
    assert POLICY.cutoffs(NOW) == ({
        "emergency": NOW - timedelta(days=3650), "complaint": NOW - timedelta(days=730),
        "information": NOW - timedelta(days=30)}, NOW - timedelta(days=3650))


def test_retention_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetentionPolicy(emergency_days=0, complaint_days=1, information_days=1, default_days=1)


@pytest.mark.parametrize(
    ("claimed", "running", "gone"),
    [
        (1234, 1234, False),  # the holder is still running
        (1234, None, True),  # no process has its pid any more
        (1234, 9999, True),  # a newer process reuses its pid
        (None, None, False),  # start time unknown at the claim: only the lease can tell
        (None, 1234, False),
    ],
)
def test_a_holder_is_gone_when_its_pid_is_free_or_reused(
    claimed: int | None, running: int | None, gone: bool
) -> None:
    assert holder_is_gone(claimed, running) is gone


def test_a_file_may_take_the_bound_plus_its_own_length() -> None:
    # An hour as MixMonitor writes it (8 kHz, 16-bit, mono, after its 44-byte header).
    assert processing_bound(300.0, 44 + 3600 * 16_000) == pytest.approx(3900.0, abs=0.01)
    assert processing_bound(300.0, 0) == 300.0
