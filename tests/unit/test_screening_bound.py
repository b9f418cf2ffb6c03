"""The pure parts of bench/screening_bound.py (issue 14's bound on any pre-queue model): the
most recall a threshold keeps at a precision, and the raw values the ensemble is given."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from telephony.screening.corpus import generate_corpus
from telephony.screening.evaluate import ThresholdMetrics, replay
from telephony.screening.score import ScoreConfig

# bench/ is not a package: its scripts import each other as top-level modules, as they do
# when run as `python bench/screening_bound.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from screening_bound import KEY_TIME, best_operating, observables, reached_the_route


def test_the_lowest_threshold_that_keeps_the_precision_wins() -> None:
    # Flagging down to 0.6 is 3 of 4 positive; stopping at 0.7 would be 2 of 3.
    op = best_operating([0.9, 0.8, 0.7, 0.6], [True, True, False, True], 0.75)
    assert op == ThresholdMetrics(0.6, true_positives=3, false_positives=1, false_negatives=0,
                                  true_negatives=0)
    assert op.recall == 1.0 and op.precision == 0.75


def test_tied_scores_are_flagged_together() -> None:
    # 0.5 flags both tied calls, one of them negative: precision 1.0 stops at 0.9.
    op = best_operating([0.9, 0.5, 0.5], [True, True, False], 1.0)
    assert (op.threshold, op.true_positives, op.false_positives) == (0.9, 1, 0)


def test_nothing_flagged_when_no_threshold_keeps_the_precision() -> None:
    op = best_operating([0.9, 0.8], [False, True], 0.9)
    assert (op.true_positives, op.false_positives, op.recall, op.precision) == (0, 0, 0.0, None)


def test_calls_flagged_elsewhere_count_towards_the_precision() -> None:
    scores, truth = [0.9, 0.8, 0.7], [True, False, True]
    assert best_operating(scores, truth, 0.8).true_positives == 1
    # With 8 of 8 flagged elsewhere positive, 10 of 11 is above 0.8.
    op = best_operating(scores, truth, 0.8, caught_elsewhere=8, flagged_elsewhere=8)
    assert (op.threshold, op.true_positives) == (0.7, 2)


def test_one_label_per_score() -> None:
    with pytest.raises(ValueError, match="one label per score"):
        best_operating([0.5], [True, False], 0.9)


def test_every_call_gives_the_same_raw_values_with_the_key_time_last() -> None:
    scored = replay(generate_corpus(7, 60).calls, ScoreConfig())
    rows = [observables(s) for s in scored]
    assert {len(r) for r in rows} == {KEY_TIME + 1}
    pressed = [s for s in scored if reached_the_route(s)
               and s.features.menu is not None and s.features.menu.first_key_seconds is not None]
    assert pressed, "the corpus has callers who pressed a key"
    for s in pressed:
        menu = s.features.menu
        assert menu is not None
        assert observables(s)[KEY_TIME] == menu.first_key_seconds
    assert not any(reached_the_route(s) for s in scored if s.call.features.ivr.hung_up_in_ivr)
