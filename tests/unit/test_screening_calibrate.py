"""The fit behind the shipped screening weights: the hand-written logistic regression, its sign
constraints, the calibration measures, and the command line that never fits the held-out seed.
"""

import json
import math
import random
from pathlib import Path

import pytest

from telephony.screening.calibrate import (
    HOURS,
    Example,
    brier_score,
    config_document,
    fit_config,
    fit_logistic,
    main,
    pick_threshold,
    reliability_curve,
)
from telephony.screening.corpus import HELD_OUT_SEED
from telephony.screening.score import ScoreConfig


def synthetic(n: int, weights: dict[str, float], intercept: float, seed: int = 5
              ) -> tuple[list[dict[str, float]], list[bool]]:
    """Rows drawn from a known logistic model."""
    rng = random.Random(seed)
    rows: list[dict[str, float]] = []
    truth: list[bool] = []
    for _ in range(n):
        row = {name: rng.choice((0.0, 1.0, rng.random() * 2)) for name in weights}
        z = intercept + sum(weights[k] * v for k, v in row.items())
        rows.append(row)
        truth.append(rng.random() < 1 / (1 + math.exp(-z)))
    return rows, truth


def test_fit_recovers_a_known_model() -> None:
    true = {"a": 1.5, "b": -2.0, "c": 0.0}
    rows, truth = synthetic(6000, true, -0.5)
    fit = fit_logistic(rows, truth, ["a", "b", "c"], l2=0.01, lowering=["b"])
    assert fit.intercept == pytest.approx(-0.5, abs=0.2)
    for name, weight in true.items():
        assert fit.weights[name] == pytest.approx(weight, abs=0.2), name
    assert fit.pinned == ()


def test_a_weight_the_data_want_on_the_wrong_side_is_pinned_at_zero() -> None:
    rows, truth = synthetic(3000, {"a": 1.0, "b": -1.5}, 0.0)
    # "b" lowers the odds in the data but is declared a raising weight: held at 0, not flipped.
    fit = fit_logistic(rows, truth, ["a", "b"], l2=0.01)
    assert fit.weights["b"] == 0.0
    assert fit.pinned == ("b",)
    assert fit.weights["a"] > 0


def test_a_free_weight_takes_either_sign() -> None:
    rows, truth = synthetic(3000, {"a": 1.0, "b": -1.5}, 0.0)
    fit = fit_logistic(rows, truth, ["a", "b"], l2=0.01, free=["b"])
    assert fit.weights["b"] == pytest.approx(-1.5, abs=0.25)
    assert fit.pinned == ()


def test_the_fit_learns_the_hour_weights_either_way() -> None:
    # Nuisance calls at 15:00, genuine ones at 03:00, either at 10:00.
    rng = random.Random(3)
    data = [Example({}, {}, hour, rng.random() < rate)
            for hour, rate in ((3, 0.1), (10, 0.4), (15, 0.7)) for _ in range(2000)]
    fitted = fit_config(data, ScoreConfig(), l2=1.0)
    weights = fitted.hour_weights
    assert weights[3] < weights[10] < weights[15]
    assert weights[3] < 0 < weights[15]
    logit = fitted.bias + weights[15]
    assert 1 / (1 + math.exp(-logit)) == pytest.approx(0.7, abs=0.03)
    assert len(HOURS) == 24 and weights[0] == pytest.approx(0.0, abs=1e-3)  # no calls: 0


def test_pick_threshold_wants_the_precision_on_every_corpus() -> None:
    one = [(0.9, True), (0.8, True), (0.6, False), (0.5, True)]
    two = [(0.9, True), (0.7, False), (0.55, True)]
    grid = (0.5, 0.6, 0.7, 0.8)
    assert pick_threshold([one], 0.75, grid) == 0.5  # 3 of 4
    assert pick_threshold([one], 0.8, grid) == 0.7  # 2 of 2 above 0.6
    assert pick_threshold([one, two], 0.8, grid) == 0.8  # two needs it above 0.7
    assert pick_threshold([one, two], 1.01, grid) == 0.8  # none does: the safe side


def test_offsets_shift_the_intercept_not_the_weights() -> None:
    rows, truth = synthetic(4000, {"a": 1.0}, 0.5)
    plain = fit_logistic(rows, truth, ["a"], l2=0.01)
    shifted = fit_logistic(rows, truth, ["a"], l2=0.01, offsets=[2.0] * len(rows))
    assert shifted.intercept == pytest.approx(plain.intercept - 2.0, abs=1e-6)
    assert shifted.weights["a"] == pytest.approx(plain.weights["a"], abs=1e-6)


def test_fit_needs_both_classes_and_one_truth_per_row() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        fit_logistic([{"a": 1.0}], [True], ["a"])
    with pytest.raises(ValueError, match="one truth"):
        fit_logistic([{"a": 1.0}], [True, False], ["a"])


def test_brier_and_reliability() -> None:
    assert brier_score([1.0, 0.0], [True, False]) == 0.0
    assert brier_score([0.5, 0.5], [True, False]) == 0.25
    curve = reliability_curve([0.05, 0.15, 0.15, 0.95, 1.0], [False, True, False, True, True])
    assert [(b.low, b.calls) for b in curve] == [(0.0, 1), (0.1, 2), (0.9, 2)]
    assert curve[1].mean_predicted == pytest.approx(0.15)
    assert curve[1].observed == 0.5
    assert curve[2].observed == 1.0  # a score of exactly 1 falls in the top bin
    with pytest.raises(ValueError, match="at least one"):
        brier_score([], [])


def test_the_shipped_configuration_is_plain_data_an_admin_can_version() -> None:
    document = json.loads(json.dumps(config_document(ScoreConfig())))
    assert ScoreConfig.from_mapping(document) == ScoreConfig()
    assert set(document["weights"]) >= {"short_talk", "accidental_labels", "silent_call"}


def test_cli_never_fits_the_held_out_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", f"112,{HELD_OUT_SEED}"]) == 2
    assert "held out" in capsys.readouterr().err


def test_cli_fits_and_writes_a_loadable_configuration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "screening.json"
    assert main(["--seeds", "7", "--callers", "600", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Brier" in printed and "ROC AUC" in printed and "observed" in printed
    fitted = ScoreConfig.from_json(out.read_text(encoding="utf-8"))
    assert fitted.weights.nuisance_share > 0
    assert fitted.weights.conversation <= 0
