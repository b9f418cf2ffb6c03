"""The pure rules of recordings: names, layout, states, silence share, retention."""

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

import pytest

from recordings.domain import (
    INITIAL_STATES,
    TRANSITIONS,
    RecordingNameError,
    RetentionPolicy,
    State,
    call_id_of_source,
    can_transition,
    checked_relpath,
    is_settled,
    is_temp_of,
    loudness,
    silence_share,
    source_name,
    sources_of,
    state_after_error,
    storage_relpath,
    temp_name,
    valid_call_id,
)

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("call_id", ["1795430334.0", "1.2", "0000000001.123456"])
def test_asterisk_unique_ids_are_valid(call_id: str) -> None:
    assert valid_call_id(call_id)
    assert source_name(call_id) == f"{call_id}.wav"
    assert call_id_of_source(f"{call_id}.wav") == call_id


@pytest.mark.parametrize(
    "call_id",
    ["", "1", "1.", ".1", "a.b", "1.2.3", " 1.2", "1.2\n", "../1.2", "1.2/../../etc",
     "/etc/passwd", "1.2;rm", "\uff11.\uff12", "sys-1795430334.0", "1.2\x00"],
)
def test_anything_else_is_refused_before_it_names_a_file(call_id: str) -> None:
    assert not valid_call_id(call_id)
    with pytest.raises(RecordingNameError):
        source_name(call_id)
    with pytest.raises(RecordingNameError):
        storage_relpath(call_id, datetime(2026, 1, 1, tzinfo=UTC), "Asia/Jakarta", "opus")
    with pytest.raises(RecordingNameError):
        temp_name(call_id, TOKEN)


@pytest.mark.parametrize("name", ["1.2.mp3", "1.2", "x.wav", ".1.2.wav", "../1.2.wav", "1.2.WAV"])
def test_other_files_in_the_monitor_directory_are_not_ours(name: str) -> None:
    assert call_id_of_source(name) is None


def test_layout_is_dated_by_the_local_arrival_day() -> None:
    # 18:30 UTC on the 23rd is 01:30 on the 24th in Jakarta.
    started = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    assert storage_relpath("1795430334.0", started, "Asia/Jakarta", "opus") == PurePosixPath(
        "2026/11/24/1795430334.0.opus")
    assert storage_relpath("1795430334.0", started, "UTC", "mp3") == PurePosixPath(
        "2026/11/23/1795430334.0.mp3")
    with pytest.raises(ValueError, match="format"):
        storage_relpath("1.2", started, "UTC", "wav")


def test_temporary_names_belong_to_one_call_and_one_claim() -> None:
    name = temp_name("1.2", TOKEN)
    assert name == f".1.2.{TOKEN}.tmp"
    assert is_temp_of(name, "1.2")
    assert not is_temp_of(name, "1.23")
    assert not is_temp_of(temp_name("1.23", TOKEN), "1.2")
    assert not is_temp_of("1.2.opus", "1.2")
    with pytest.raises(RecordingNameError):
        temp_name("1.2", "../../x")


def test_stored_paths_are_checked_before_anything_is_deleted() -> None:
    assert checked_relpath("2026/11/24/1.2.opus") == PurePosixPath("2026/11/24/1.2.opus")
    for stored in ("", "/etc/passwd", "../x", "2026/../../x", "2026\\..\\x", "a/\x00"):
        with pytest.raises(RecordingNameError):
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


def test_earliest_cutoff_is_the_shortest_retention() -> None:
    assert POLICY.earliest_cutoff(NOW) == NOW - timedelta(days=30)


def test_retention_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetentionPolicy(emergency_days=0, complaint_days=1, information_days=1, default_days=1)
