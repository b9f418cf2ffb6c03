"""The pure parts of the screening service: call features from a stored row, and the admin's
configuration file reloaded on change."""

from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telephony.asterisk.causes import NETWORK_CAUSES
from telephony.db.migrate import bundled_migrations
from telephony.screening.score import ScoreConfig, ScoreConfigError
from telephony.screening.service import (
    call_features,
    line_screening_source,
    screening_config_source,
)
from telephony.screening.store import EndedCall
from telephony.settings import load_settings

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def ended(**changes: object) -> EndedCall:
    values: dict[str, object] = {
        "call_id": "1", "caller_number": "081234567890", "line": "112", "arrived_at": T0,
        "ended_at": T0 + timedelta(seconds=60), "answered_at": None, "talk_seconds": None,
        "ended_by": None, "ivr_outcome": "chosen", "ivr_first_key_ms": 1500,
        "ivr_invalid_keys": 0, "queue": "fire", "silence_share": None,
    }
    values.update(changes)
    return EndedCall(**values)  # type: ignore[arg-type]


def test_a_key_then_an_answered_conversation() -> None:
    features = call_features(ended(answered_at=T0 + timedelta(seconds=10), talk_seconds=45,
                                   ended_by="agent", ivr_invalid_keys=2))
    assert features.ivr.first_key_seconds == 1.5 and features.ivr.invalid_keys == 2
    assert (features.shape.talk_seconds, features.shape.caller_ended) == (45.0, False)
    assert features.shape.duration_seconds == 60.0
    assert not features.looks_silent


def test_hung_up_in_the_ivr_without_a_key() -> None:
    features = call_features(ended(ivr_outcome=None, ivr_first_key_ms=None, queue=None))
    assert features.ivr.hung_up_in_ivr and not features.ivr.no_input
    assert features.looks_silent


@pytest.mark.parametrize("lost", [{"hangup_cause": 38}, {"hangup_cause": 102},
                                  {"cut_reason": "asterisk_crash"}])
def test_a_call_the_network_or_the_line_cut_is_not_the_callers_doing(
        lost: dict[str, object]) -> None:
    """Cut in the IVR before a key, or on the answer: the caller did not leave, so the call
    is neither silent nor a hang-up in the menu or on the answer (the call-back worklist
    lists such a caller; counted silent, their call back was lowered as a nuisance)."""
    in_ivr = call_features(ended(ivr_outcome=None, ivr_first_key_ms=None, queue=None, **lost))
    assert not in_ivr.ivr.hung_up_in_ivr and not in_ivr.looks_silent
    on_answer = call_features(ended(ivr_outcome="no_input", ivr_first_key_ms=None,
                                    answered_at=T0 + timedelta(seconds=20),
                                    ended_at=T0 + timedelta(seconds=23), **lost))
    assert not on_answer.shape.hung_up_on_answer and not on_answer.looks_silent
    # What the recording heard still counts: nobody spoke before the network cut it.
    assert call_features(ended(ivr_first_key_ms=None, answered_at=T0 + timedelta(seconds=5),
                               talk_seconds=50, silence_share=0.95, **lost)).looks_silent
    # An ordinary hang-up (16, 31) is the caller's.
    for cause in (16, 31):
        assert call_features(ended(ivr_outcome=None, ivr_first_key_ms=None, queue=None,
                                   hangup_cause=cause)).looks_silent


def test_the_generated_silence_column_knows_the_network_causes() -> None:
    """Migration 0041 spells NETWORK_CAUSES out in ``calls.looks_silent``; the loopback
    test of the column checks the rule, this one that the list is the same."""
    [sql] = [m.sql for m in bundled_migrations() if m.name == "lost_calls_not_silent"]
    lists = {frozenset(int(n) for n in found.split(","))
             for found in re.findall(r"hangup_cause (?:NOT )?IN \(([0-9, ]+)\)", sql)}
    assert lists == {NETWORK_CAUSES}


def test_no_input_routed_and_hung_up_on_answer() -> None:
    features = call_features(ended(ivr_outcome="no_input", ivr_first_key_ms=None,
                                   answered_at=T0 + timedelta(seconds=20),
                                   ended_at=T0 + timedelta(seconds=23)))
    assert features.ivr.no_input and not features.ivr.hung_up_in_ivr
    # No AgentComplete: the talk time is from the answer to the end, and the caller ended.
    assert features.shape.talk_seconds == 3.0 and features.shape.hung_up_on_answer
    assert features.looks_silent


def test_a_silent_recording_makes_a_long_call_silent() -> None:
    call = ended(ivr_first_key_ms=None, ivr_outcome="direct", line="119",
                 answered_at=T0 + timedelta(seconds=5), talk_seconds=50, ended_by="caller")
    assert not call_features(call).looks_silent
    silent = call_features(replace(call, silence_share=0.95))
    assert silent.looks_silent and not silent.ivr.menu_offered


def test_invalid_keys_without_a_first_key_time_are_dropped() -> None:
    """A malformed IVR_FIRST_KEY_MS is stored as NULL: the keys cannot be placed in time."""
    features = call_features(ended(ivr_first_key_ms=None, ivr_invalid_keys=3))
    assert features.ivr.invalid_keys == 0 and not features.ivr.pressed_a_key


def test_any_stored_row_gives_valid_features() -> None:
    """Clocks that disagree, talk longer than the call, missing arrival: never a ValueError
    (a row that cannot be scored would be retried forever)."""
    rng = random.Random(4)
    for _ in range(2000):
        arrived = rng.choice([None, T0])
        end = T0 + timedelta(seconds=rng.uniform(-5, 60))
        answered = rng.choice([None, T0 + timedelta(seconds=rng.uniform(-5, 70))])
        call_features(ended(
            arrived_at=arrived, ended_at=end, answered_at=answered,
            talk_seconds=rng.choice([None, 0, 4, 200]),
            ended_by=rng.choice([None, "caller", "agent", "transfer"]),
            ivr_outcome=rng.choice([None, "chosen", "no_input", "invalid", "direct",
                                    "failopen"]),
            ivr_first_key_ms=rng.choice([None, 0, 800]),
            ivr_invalid_keys=rng.choice([None, 0, 3]),
            queue=rng.choice([None, "fire"]),
            silence_share=rng.choice([None, 0.0, 0.95, 1.0]),
        ))


def _write(path: Path, document: object, tick: int) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")
    # Distinct modification times even within the filesystem's timestamp granularity.
    os.utime(path, ns=(tick * 10**9, tick * 10**9))


def test_config_defaults_without_a_file() -> None:
    assert screening_config_source(None).current() == ScoreConfig()


def test_config_reloads_on_change_and_refuses_a_bad_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "screening.json"
    _write(path, {"screening_threshold": 0.8}, 1)
    source = screening_config_source(path)
    assert source.current().screening_threshold == 0.8
    _write(path, {"screening_threshold": 0.9, "weights": {"silence": 3.0}}, 2)
    assert (source.current().screening_threshold, source.current().weights.silence) == (0.9, 3.0)
    caplog.set_level(logging.INFO, "telephony.screening")
    caplog.clear()
    # A threshold below the lower one is unsafe: refused, the last good one stays.
    _write(path, {"screening_threshold": 0.2}, 3)
    for _ in range(3):
        assert source.current().screening_threshold == 0.9
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    path.unlink()  # a deleted file is an edit that does not load either
    assert source.current().screening_threshold == 0.9
    _write(path, {"screening_threshold": 0.75}, 4)
    assert source.current().screening_threshold == 0.75


def test_a_broken_file_at_start_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "screening.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ScoreConfigError):
        screening_config_source(path)


def test_a_published_copy_an_upgrade_refuses_starts_the_line_on_the_defaults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin's published configuration whose priority an upgrade now refuses (above 998)
    does not stop the line; a site's own screening_file still does."""
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    settings.live_screening_file.parent.mkdir()
    _write(settings.live_screening_file, {"normal_priority": 1000}, 1)
    caplog.set_level(logging.ERROR, "telephony.screening")
    assert line_screening_source(settings).current() == ScoreConfig()
    assert len(caplog.records) == 1 and "does not load" in caplog.records[0].getMessage()
    with pytest.raises(ScoreConfigError):
        line_screening_source(replace(settings, screening_file=settings.live_screening_file))


def test_a_broken_file_starts_from_the_running_line_s_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The IVR's process, started again while the line runs, gets the line's configuration:
    a file the line refused an edit of starts it from that one, and the next good edit
    loads."""
    path = tmp_path / "screening.json"
    _write(path, {"weights": {"silence": "x"}}, 1)
    running = ScoreConfig(screening_threshold=0.9)
    caplog.set_level(logging.ERROR, "telephony.screening")
    source = screening_config_source(path, last_good=running)
    assert source.current() is running
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "screening configuration does not load, starting with the last good one"]
    _write(path, {"screening_threshold": 0.8}, 2)
    assert source.current().screening_threshold == 0.8
