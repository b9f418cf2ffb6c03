"""Evaluation: metrics on hand-made corpora with known answers, the blocking rules, the CLI,
and the issue's bar: on the generated corpus the score catches more prank and silent calls than
today's blocking rules while blocking no genuine caller.
"""

import itertools
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from telephony.calls.ids import parse_caller_id
from telephony.screening.corpus import (
    DEFAULT_CALLERS,
    FIT_SEEDS,
    HELD_OUT_SEED,
    CorpusCall,
    Persona,
    generate_corpus,
)
from telephony.screening.evaluate import (
    FIRST_CALL_SLICES,
    Evaluation,
    blocked_24h_after_label,
    blocked_after_three_pranks,
    delay_summary,
    evaluate,
    main,
    render,
    replay,
    roc_auc,
    rule_outcome,
    threshold_metrics,
)
from telephony.screening.features import (
    FIRST_TIME,
    CallFeatures,
    CallShape,
    IvrBehaviour,
    Label,
    LabelEvent,
)
from telephony.screening.score import Effect, ScoreConfig
from tests.support.screening import HAND_SET

JKT = ZoneInfo("Asia/Jakarta")
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=JKT)  # 09:00, an hour of weight 0
SHIPPED = ScoreConfig()
CONFIG = HAND_SET  # the mechanism; the shipped weights are tested on the held-out seed

TALKED = CallFeatures(IvrBehaviour(menu_offered=True, first_key_seconds=2.0),
                      CallShape(100.0, talk_seconds=80.0, caller_ended=False, silence_share=0.3))
SILENT = CallFeatures(IvrBehaviour(menu_offered=True, no_input=True), CallShape(20.0))


def call(call_id: str, hours: float, truth: Label, *, number: str = "081200000001",
         labels: tuple[tuple[Label, float], ...] = (), features: CallFeatures = TALKED,
         persona: Persona = Persona.GENUINE) -> CorpusCall:
    """A hand-made call ``hours`` after T0; labels as (label, hours after T0)."""
    events = tuple(LabelEvent(call_id, label, T0 + timedelta(hours=h)) for label, h in labels)
    return CorpusCall(call_id, parse_caller_id(number), persona, truth,
                      T0 + timedelta(hours=hours), "112", "emergency", features, events)


# -- ROC AUC and thresholds -------------------------------------------------------------------


def test_auc_known_answers() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert roc_auc([0.5] * 4, [False, True, False, True]) == 0.5
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: three of four pairs ordered.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # A tie between a positive and a negative counts half: (0.5 + 1 + 2) / 4.
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == 0.875


def test_auc_matches_pair_counting_with_many_ties() -> None:
    rng = random.Random(4)
    scores = [rng.choice((0.1, 0.2, 0.3, 0.4, 0.5)) for _ in range(200)]
    positive = [rng.random() < 0.3 for _ in range(200)]
    pairs = [(p, n) for p, n in itertools.product(
        [s for s, y in zip(scores, positive, strict=True) if y],
        [s for s, y in zip(scores, positive, strict=True) if not y])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, positive) == pytest.approx(expected)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="one label per score"):
        roc_auc([0.1], [True, False])


def test_threshold_metrics() -> None:
    scores = [0.9, 0.8, 0.6, 0.4, 0.2, 0.1]
    truth = [True, False, True, True, False, False]
    m = threshold_metrics(scores, truth, 0.5)
    assert (m.true_positives, m.false_positives, m.false_negatives, m.true_negatives) == (
        2, 1, 1, 2)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    # At the threshold counts as flagged.
    assert threshold_metrics([0.5], [True], 0.5).true_positives == 1
    nothing = threshold_metrics(scores, truth, 0.95)
    assert nothing.precision is None
    assert nothing.recall == 0.0
    assert threshold_metrics([0.3], [False], 0.5).recall is None
    with pytest.raises(ValueError, match="one label per score"):
        threshold_metrics([0.1], [], 0.5)


# -- replay -----------------------------------------------------------------------------------


def test_replay_sees_only_what_was_known_when_the_call_rang() -> None:
    calls = [
        call("a", 0.0, Label.PRANK, labels=((Label.PRANK, 1.0),)),
        call("b", 0.5, Label.PRANK),  # the label of "a" is not entered yet
        call("c", 2.0, Label.PRANK),
        call("w", 2.0, Label.PRANK, number="anonymous"),
    ]
    scored = {s.call.call_id: s for s in replay(reversed(calls), CONFIG)}
    assert scored["a"].features.history is FIRST_TIME
    assert scored["b"].features.history.calls == 1
    assert scored["b"].features.history.prank_calls == 0
    assert scored["c"].features.history.prank_calls == 1
    assert scored["c"].features.history.calls == 2
    assert scored["w"].features.history is FIRST_TIME
    assert scored["a"].features.hour == 9
    # The verdict is taken once the keys are in: the menu as the caller used it.
    assert scored["a"].features.menu == scored["a"].call.features.ivr


def test_genuine_call_after_silent_burst_is_screened_and_counted_as_delayed() -> None:
    calls = [call(f"s{i}", i * 0.1, Label.SILENT, features=SILENT, persona=Persona.GHOST)
             for i in range(4)]
    calls.append(call("g", 0.5, Label.GENUINE))
    scored = replay(calls, CONFIG)
    last = scored[-1]
    assert last.decision.effect is Effect.SCREENING_PROMPT
    assert last.decision.priority == CONFIG.priority_floor  # an emergency keeps the floor
    assert last.pre.reasons[0].text == "4 panggilan dalam 1 jam terakhir, 4 di antaranya diam"
    # Screening prompt (6 s, the caller presses) plus the priority drop to the floor (15 s).
    assert last.delay_seconds == pytest.approx(21.0)
    summary = delay_summary(scored)
    assert (summary.genuine_calls, summary.lowered, summary.screened) == (1, 0, 1)
    assert summary.share == 1.0
    assert summary.mean_extra_seconds == pytest.approx(21.0)
    assert summary.max_extra_seconds == pytest.approx(21.0)
    # The silent calls themselves: the third, pressing nothing again, is lowered, the fourth
    # screened; the first, with no history, only carries its own silence in the menu.
    effects = [s.decision.effect for s in scored[:4]]
    assert effects == [Effect.NONE, Effect.NONE, Effect.LOWER_PRIORITY, Effect.SCREENING_PROMPT]
    assert [r.code for r in scored[0].pre.reasons] == ["no_input", "first_time"]
    assert delay_summary(scored[:4]).genuine_calls == 0
    assert delay_summary([]).share == 0.0


# -- blocking rules ----------------------------------------------------------------------------


def test_24h_rule_blocks_for_a_day_after_a_non_genuine_label() -> None:
    calls = [
        call("a1", 0.0, Label.PRANK, labels=((Label.PRANK, 0.1),)),
        call("a2", 5.0, Label.PRANK, labels=((Label.PRANK, 5.1),)),  # blocked
        # 26 h: a day after the first label. a2 never reached an operator, so its label does not
        # exist and does not extend the block.
        call("a3", 26.0, Label.GENUINE),
        call("b1", 0.0, Label.GENUINE, number="081200000002",
             labels=((Label.PRANK, 0.1), (Label.GENUINE, 1.0))),  # corrected
        call("b2", 2.0, Label.GENUINE, number="081200000002"),
        call("w1", 0.0, Label.PRANK, number="anonymous", labels=((Label.PRANK, 0.1),)),
        call("w2", 1.0, Label.PRANK, number="anonymous"),  # cannot be blocked: no number
    ]
    assert blocked_24h_after_label(calls) == {"a2"}


def test_three_pranks_rule_blocks_for_good_and_catches_the_parent() -> None:
    calls = [call(f"p{i}", i, Label.PRANK, labels=((Label.PRANK, i + 0.1),),
                  persona=Persona.FAMILY) for i in range(3)]
    calls += [
        call("p3", 5.0, Label.PRANK, persona=Persona.FAMILY),
        call("parent", 24 * 8, Label.GENUINE, persona=Persona.FAMILY),
        call("other", 5.0, Label.GENUINE, number="081200000009"),
    ]
    blocked = blocked_after_three_pranks(calls)
    assert blocked == {"p3", "parent"}
    outcome = rule_outcome("block after 3 pranks", calls, blocked, blocked)
    assert (outcome.nuisance_calls, outcome.nuisance_caught) == (4, 1)
    assert (outcome.genuine_calls_blocked, outcome.genuine_callers_blocked) == (1, 1)
    assert outcome.caught_share == 0.25
    # The 24 h rule: every later prank falls within a day of the first label; the parent,
    # a week on, gets through.
    assert blocked_24h_after_label(calls) == {"p1", "p2", "p3"}


def test_rule_outcome_for_the_score_blocks_nobody() -> None:
    calls = [call("x", 0.0, Label.SILENT), call("y", 1.0, Label.GENUINE)]
    outcome = rule_outcome("score", calls, {"x", "y"}, ())
    assert (outcome.nuisance_caught, outcome.genuine_calls_blocked) == (1, 0)
    assert rule_outcome("none", [], (), ()).caught_share == 0.0


# -- the generated corpus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    """The shipped configuration on the held-out seed, which the fit never saw."""
    assert HELD_OUT_SEED not in FIT_SEEDS
    return evaluate(generate_corpus(HELD_OUT_SEED, DEFAULT_CALLERS), SHIPPED)


def test_shipped_weights_meet_the_targets_on_the_held_out_seed(evaluation: Evaluation) -> None:
    pre, post, day_rule, three_rule = evaluation.comparison
    # Before the queue: precision >= 0.97. Recall: the issue asks 0.75, not met (README): the
    # history reaches only the nuisance calls whose number called before (73% on this corpus),
    # and the keys in the menu tell a first-time nuisance call from a genuine one too weakly
    # to add more than a point or two at this precision. The score reaches 95% of the history's
    # ceiling, and 0.70 of all nuisance calls.
    assert pre.precision is not None and pre.precision >= 0.97
    assert pre.caught_share >= max(0.70, 0.95 * evaluation.ceiling)
    assert evaluation.ceiling < 0.75
    # After the call: recall >= 0.90 at precision >= 0.97.
    assert post.precision is not None and post.precision >= 0.97
    assert post.caught_share >= 0.90
    # No genuine caller is blocked (nothing blocks), and at most 1% hear the screening prompt.
    assert pre.genuine_calls_blocked == pre.genuine_callers_blocked == 0
    assert pre.genuine_callers_screened <= 0.01 * pre.genuine_callers
    # The score catches more than either blocking rule, which do block genuine callers.
    assert pre.nuisance_caught > day_rule.nuisance_caught > three_rule.nuisance_caught
    assert day_rule.genuine_callers_blocked > 0
    assert three_rule.genuine_callers_blocked > 0
    # Calibrated: the Brier score beats always answering the base rate.
    base = pre.nuisance_calls / len(evaluation.scored)
    assert evaluation.pre_calibration.brier < base * (1 - base)
    assert evaluation.post_calibration.brier < 0.05
    assert evaluation.post_auc > evaluation.pre_auc > 0.85


def test_no_decision_blocks_and_emergencies_keep_the_floor(evaluation: Evaluation) -> None:
    for item in evaluation.scored:
        assert item.decision.effect in set(Effect)
        if item.call.category == "emergency" or item.call.line == "119":
            assert item.decision.priority >= SHIPPED.priority_floor
    # The hard cases that are not family phones are rarely delayed, and screened only after an
    # operator labelled one of the caller's earlier calls wrongly (label noise). A first call
    # from a SIM-less phone has no history, so its caller id, hour and keys decide alone: a
    # wrong key in the afternoon lowers it (1 in 10 here, never below the floor).
    hard = (Persona.CALLBACK, Persona.CHRONIC, Persona.ELDERLY, Persona.SIMLESS_GENUINE)
    for persona in hard:
        summary = evaluation.hard_cases[persona]
        share = 0.10 if persona is Persona.SIMLESS_GENUINE else 0.05
        assert summary.delayed <= share * summary.genuine_calls, persona
    mislabelled: dict[str, datetime] = {}  # caller: when an earlier call was first mislabelled
    for item in evaluation.scored:
        call, key = item.call, item.call.caller.key
        if (call.persona in hard and item.decision.effect is Effect.SCREENING_PROMPT):
            assert key in mislabelled and mislabelled[key] < call.at, call.call_id
        wrong = [e.at for e in call.labels if e.label is not call.truth]
        if key is not None and wrong:
            mislabelled.setdefault(key, min(wrong))


def test_every_reason_shown_is_a_bahasa_indonesia_sentence(evaluation: Evaluation) -> None:
    english = ("call", "the ", "silent", "prank", "score")
    for item in evaluation.scored:
        for reason in item.pre.reasons + item.post.reasons:
            assert (reason.text and reason.text[0].isupper()) or reason.text[0].isdigit()
            assert not any(word in reason.text.lower() for word in english), reason.text


# -- command line -------------------------------------------------------------------------------


def test_cli_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "3", "--callers", "400"]) == 0
    out = capsys.readouterr().out
    assert "Corpus: profile semarang, seed 3, 400 callers" in out
    assert "ROC AUC" in out
    assert "block 24 h after a non-genuine label" in out
    assert "Brier" in out
    assert "block after 3 pranks" in out
    assert "Genuine calls delayed" in out
    assert "us per call" in out


def test_cli_with_a_config_file_and_another_profile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "screening.json"
    path.write_text(json.dumps({"lower_priority_threshold": 0.4}), encoding="utf-8")
    assert main(["--callers", "300", "--profile", "purworejo", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "profile purworejo" in out
    assert ">= 0.4   (lower priority)" in out


def test_cli_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "screening.json"
    path.write_text('{"weights": {"recent_genuine": 2}}', encoding="utf-8")
    assert main(["--callers", "300", "--config", str(path)]) == 2
    assert "membela penelepon" in capsys.readouterr().err
    assert main(["--callers", "3"]) == 2


def test_first_calls_split_by_what_the_menu_saw(evaluation: Evaluation) -> None:
    slices = {name: (n, g) for name, n, g in evaluation.first}
    assert list(slices) == list(FIRST_CALL_SLICES)
    nuisance_first = sum(n for n, _ in slices.values())
    # Every nuisance call without history is in one slice: the complement of the ceiling
    # (withheld and malformed ids count as first calls every time).
    assert nuisance_first == round((1 - evaluation.ceiling) * evaluation.comparison[0]
                                   .nuisance_calls)
    # No slice a verdict could act on is anywhere near the precision the issue asks.
    for name, (nuisance, genuine) in slices.items():
        if name != "hung up in the menu (never queued)":
            assert nuisance / (nuisance + genuine) < 0.9, name
    assert "Nuisance calls without history" in render(evaluation)
