"""The screening score: each feature's effect, the reasons' wording, decisions, configuration."""

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from telephony.asterisk.config import CONF_DIR
from telephony.calls.ids import parse_caller_id
from telephony.screening.features import (
    FIRST_TIME,
    CallerHistory,
    CallFeatures,
    CallShape,
    IvrBehaviour,
    PreQueueFeatures,
)
from telephony.screening.score import (
    DEFAULT_HOUR_WEIGHTS,
    LOWERING_WEIGHTS,
    MAX_PRIORITY,
    Decision,
    Effect,
    Score,
    ScoreConfig,
    ScoreConfigError,
    Weights,
    decide,
    expected_delay_seconds,
    load_score_config,
    post_call_score,
    pre_queue_score,
    pre_queue_values,
)
from tests.support.screening import HAND_SET

CONFIG = HAND_SET  # the mechanism; the shipped weights are tested on the held-out seed
NUMBER = parse_caller_id("081234567890")
NEUTRAL_HOUR = 9  # hour weight 0 by default


def pre(history: CallerHistory = FIRST_TIME, caller: str = "081234567890",
        hour: int = NEUTRAL_HOUR, line: str = "112") -> PreQueueFeatures:
    return PreQueueFeatures(line, parse_caller_id(caller), hour, history)


def texts(score: Score) -> list[str]:
    return [r.text for r in score.reasons]


def codes(score: Score) -> list[str]:
    return [r.code for r in score.reasons]


def silent_burst(calls: int, silent: int) -> CallerHistory:
    return CallerHistory(calls_last_hour=calls, silent_last_hour=silent, calls_last_day=calls,
                         silent_last_day=silent, calls_last_week=calls, silent_last_week=silent,
                         calls=calls, silent_calls=silent)


# -- pre-queue ---------------------------------------------------------------------------------


def test_first_time_caller_scores_low_and_says_why() -> None:
    score = pre_queue_score(pre(), CONFIG)
    assert score.value == pytest.approx(1 / (1 + math.exp(-CONFIG.bias)))
    assert score.value < CONFIG.lower_priority_threshold
    assert texts(score) == ["Belum ada panggilan dari nomor ini dalam 90 hari terakhir"]
    assert decide(score, "112", "emergency", CONFIG).effect is Effect.NONE


def test_withheld_number_is_slightly_suspicious_and_has_no_history() -> None:
    score = pre_queue_score(pre(caller="anonymous"), CONFIG)
    first_time = pre_queue_score(pre(), CONFIG)
    assert first_time.value < score.value < CONFIG.lower_priority_threshold
    assert texts(score) == ["Nomor disembunyikan, riwayat tidak dapat diperiksa"]


def test_malformed_and_simless_caller_ids() -> None:
    malformed = pre_queue_score(pre(caller="12345"), CONFIG)
    assert texts(malformed) == ["Nomor penelepon tidak valid, riwayat tidak dapat diperiksa"]
    simless = pre_queue_score(pre(caller="352099001761481"), CONFIG)
    assert "Ponsel tanpa kartu SIM (nomor IMEI)" in texts(simless)
    # A genuine SIM-less caller with no history still goes straight through.
    assert decide(simless, "112", "emergency", CONFIG).effect is Effect.NONE


def test_silent_burst_reason_reads_as_the_issue_asks() -> None:
    history = CallerHistory(
        calls_last_hour=7, silent_last_hour=5, calls_last_day=7, silent_last_day=5,
        calls_last_week=7, silent_last_week=5, calls=7, silent_calls=5)
    score = pre_queue_score(pre(history), CONFIG)
    assert texts(score)[0] == "7 panggilan dalam 1 jam terakhir, 5 di antaranya diam"
    assert score.value >= CONFIG.screening_threshold
    assert decide(score, "112", "emergency", CONFIG).effect is Effect.SCREENING_PROMPT


def test_several_silent_calls_within_minutes_raise_the_score_step_by_step() -> None:
    values = [pre_queue_score(pre(silent_burst(n, n)), CONFIG).value for n in range(1, 7)]
    assert values == sorted(values)
    effects = [decide(Score(v, ()), "112", "emergency", CONFIG).effect for v in values]
    # One or two silent calls are forgiven; the third lowers the priority; from four, screening.
    assert effects[:2] == [Effect.NONE, Effect.NONE]
    assert effects[2] is Effect.LOWER_PRIORITY
    assert effects[3:] == [Effect.SCREENING_PROMPT] * 3


def test_window_reasons_name_prank_and_silent_calls() -> None:
    history = CallerHistory(calls_last_hour=1, calls_last_day=9, silent_last_day=4,
                            prank_last_day=3, calls_last_week=12, silent_last_week=4,
                            prank_last_week=5, calls=12, silent_calls=4, prank_calls=5)
    score = pre_queue_score(pre(history), dataclasses.replace(CONFIG, max_reasons=10))
    assert "9 panggilan dalam 24 jam terakhir, 7 di antaranya diam atau iseng" in texts(score)
    assert "12 panggilan dalam 7 hari terakhir, 9 di antaranya diam atau iseng" in texts(score)
    assert "5 panggilan sebelumnya ditandai iseng oleh operator" in texts(score)
    assert "75% dari 12 panggilan sebelumnya diam atau iseng" in texts(score)
    pranks_only = CallerHistory(calls_last_hour=2, prank_last_hour=2, calls_last_day=2,
                                prank_last_day=2, calls_last_week=2, prank_last_week=2, calls=2,
                                prank_calls=2)
    first = pre_queue_score(pre(pranks_only), CONFIG)
    assert "2 panggilan dalam 1 jam terakhir, 2 di antaranya iseng" in texts(first)


def test_prank_label_corrected_to_genuine_lowers_the_score() -> None:
    # Same call, before and after a supervisor corrected its label (see summarise_history).
    labelled_prank = CallerHistory(calls_last_week=1, prank_last_week=1, calls=1, prank_calls=1)
    corrected = CallerHistory(calls_last_week=1, calls=1, genuine_calls=1,
                              seconds_since_last_genuine=3 * 86400)
    before = pre_queue_score(pre(labelled_prank), CONFIG)
    after = pre_queue_score(pre(corrected), CONFIG)
    assert after.value < pre_queue_score(pre(), CONFIG).value < before.value
    assert "1 panggilan sebelumnya ditandai iseng oleh operator" in texts(before)
    assert "1 panggilan sebelumnya ditandai asli oleh operator" in texts(after)
    assert all("iseng" not in t for t in texts(after))


def test_recent_genuine_call_outweighs_a_burst_of_callbacks() -> None:
    # The fire caller calling back: four calls in twenty minutes, the first labelled genuine.
    history = CallerHistory(calls_last_hour=4, calls_last_day=4, calls_last_week=4, calls=4,
                            genuine_calls=1, seconds_since_last_genuine=15 * 60)
    score = pre_queue_score(pre(history), CONFIG)
    assert score.value < 0.05
    assert texts(score)[0] == "Panggilan asli terakhir 15 menit lalu"
    assert score.reasons[0].contribution < 0
    # Even before any label arrives, four calls that were not silent stay below the threshold.
    unlabelled = CallerHistory(calls_last_hour=4, calls_last_day=4, calls_last_week=4, calls=4)
    assert pre_queue_score(pre(unlabelled), CONFIG).value < CONFIG.lower_priority_threshold


def test_chronic_patient_with_many_genuine_calls_scores_low() -> None:
    history = CallerHistory(calls_last_week=1, calls=12, genuine_calls=12,
                            seconds_since_last_genuine=7 * 86400)
    score = pre_queue_score(pre(history, line="119"), CONFIG)
    assert score.value < 0.02
    assert "12 panggilan sebelumnya ditandai asli oleh operator" in texts(score)


@pytest.mark.parametrize(
    ("field", "more"),
    [
        ("calls_last_hour", {"calls_last_hour": 3, "calls_last_day": 3, "calls_last_week": 3,
                             "calls": 3}),
        ("silent_last_hour", {"calls_last_hour": 3, "silent_last_hour": 3, "calls_last_day": 3,
                              "silent_last_day": 3, "calls_last_week": 3, "silent_last_week": 3,
                              "calls": 3, "silent_calls": 3}),
        ("calls_last_day", {"calls_last_day": 3, "calls_last_week": 3, "calls": 3}),
        ("silent_last_day", {"calls_last_day": 3, "silent_last_day": 3, "calls_last_week": 3,
                             "silent_last_week": 3, "calls": 3, "silent_calls": 3}),
        ("calls_last_week", {"calls_last_week": 3, "calls": 3}),
        ("silent_last_week", {"calls_last_week": 3, "silent_last_week": 3, "calls": 3,
                              "silent_calls": 3}),
        ("prank_calls", {"calls": 3, "prank_calls": 3}),
        ("silent_calls", {"calls": 3, "silent_calls": 3}),
    ],
)
def test_every_nuisance_history_feature_raises_the_score(field: str,
                                                         more: dict[str, int]) -> None:
    base = pre_queue_score(pre(CallerHistory(calls=3)), CONFIG).value
    raised = pre_queue_score(pre(CallerHistory(**more)), CONFIG).value
    assert raised > base, field


def test_genuine_recency_decays() -> None:
    def with_genuine(seconds: float) -> float:
        history = CallerHistory(calls=1, genuine_calls=1, seconds_since_last_genuine=seconds)
        return pre_queue_score(pre(history), CONFIG).value

    assert with_genuine(60) < with_genuine(6 * 3600) < with_genuine(30 * 86400)


def test_share_term_ramps_in_over_the_first_calls() -> None:
    one = CallerHistory(calls=1, silent_calls=1)
    three = CallerHistory(calls=3, silent_calls=3)
    config = dataclasses.replace(CONFIG, weights=Weights(
        **{f.name: 0.0 for f in dataclasses.fields(Weights)} | {"nuisance_share": 3.0}),
        hour_weights=(0.0,) * 24)
    assert pre_queue_score(pre(one), config).reasons[0].contribution == pytest.approx(1.0)
    assert pre_queue_score(pre(three), config).reasons[0].contribution == pytest.approx(3.0)


def test_hour_of_day() -> None:
    afternoon = pre_queue_score(pre(hour=15), CONFIG)
    night = pre_queue_score(pre(hour=2), CONFIG)
    morning = pre_queue_score(pre(hour=NEUTRAL_HOUR), CONFIG)
    assert night.value < morning.value < afternoon.value
    assert "Pukul 15.00-16.00: jam ramai panggilan iseng" in texts(afternoon)
    assert "Pukul 02.00-03.00: jam sepi panggilan iseng" in texts(night)
    assert "Pukul 23.00-00.00: jam sepi panggilan iseng" not in texts(
        pre_queue_score(pre(hour=23), CONFIG))  # weight 0: no reason


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30 detik"), (59.4, "59 detik"), (90, "2 menit"), (3 * 3600, "3 jam"),
     (2 * 86400, "2 hari")],
)
def test_durations_in_reasons(seconds: float, text: str) -> None:
    history = CallerHistory(calls=1, genuine_calls=1, seconds_since_last_genuine=seconds)
    config = dataclasses.replace(CONFIG, reason_min_contribution=0.0)
    assert f"Panggilan asli terakhir {text} lalu" in texts(pre_queue_score(pre(history), config))


def test_reasons_are_the_largest_contributions_and_capped() -> None:
    history = CallerHistory(
        calls_last_hour=5, silent_last_hour=5, calls_last_day=9, silent_last_day=8,
        calls_last_week=20, silent_last_week=15, calls=20, silent_calls=15, prank_calls=3)
    score = pre_queue_score(pre(history, hour=15), CONFIG)
    assert len(score.reasons) == CONFIG.max_reasons
    magnitudes = [abs(r.contribution) for r in score.reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert all(m >= CONFIG.reason_min_contribution for m in magnitudes)


def test_score_stays_within_zero_and_one_at_extremes() -> None:
    huge = CallerHistory(calls_last_hour=10**6, silent_last_hour=10**6, calls_last_day=10**6,
                         silent_last_day=10**6, calls_last_week=10**6, silent_last_week=10**6,
                         calls=10**6, silent_calls=10**6)
    config = dataclasses.replace(CONFIG, bias=100.0)
    assert 0.0 < pre_queue_score(pre(huge), config).value < 1.0
    low = dataclasses.replace(CONFIG, bias=-100.0)
    assert 0.0 < pre_queue_score(pre(), low).value < 1.0


# An admin's file may hold any finite numbers; these overflow a term (a weight of 1e308 times
# log1p(calls), a speech time divided by 1e-300 s) or multiply an infinite value by a weight of 0.
OVERFLOWING = [
    {"weights": {"nuisance_hour": 1e308, "genuine_labels": -1e308}},
    {"weights": {"nuisance_hour": 1e308, "calls_hour": 1e308, "genuine_labels": -1e308}},
    {"conversation_seconds": 5e-324},
    {"conversation_seconds": 5e-324, "weights": {"conversation": 0.0}},
]


@pytest.mark.parametrize("document", OVERFLOWING)
def test_an_overflowing_configuration_gives_finite_scores_and_reasons(
        document: dict[str, object]) -> None:
    config = ScoreConfig.from_mapping(document)
    # Nuisance calls in the hour and a genuine label: terms of both signs, each overflowing.
    history = dataclasses.replace(silent_burst(3, 2), genuine_calls=1,
                                  seconds_since_last_genuine=60.0)
    for score in (pre_queue_score(pre(history), config),
                  post_call_score(pre(history), REAL_CALL, config)):
        assert 0.0 <= score.value <= 1.0
        assert all(math.isfinite(r.contribution) for r in score.reasons), score
        # What the post-call store writes: jsonb refuses Infinity and NaN.
        json.dumps([r.contribution for r in score.reasons], allow_nan=False)
        decision = decide(score, "112", "emergency", config)
        assert decision.priority >= config.priority_floor


def test_opposite_overflows_do_not_read_as_a_certain_prank() -> None:
    # Infinity minus infinity is NaN, which the clamp to the log-odds bounds read as +30. Capped,
    # the two enormous weights of opposite signs cancel out.
    config = ScoreConfig.from_mapping(OVERFLOWING[0])
    neither = ScoreConfig.from_mapping({"weights": {"nuisance_hour": 0.0, "genuine_labels": 0.0}})
    history = dataclasses.replace(silent_burst(3, 2), genuine_calls=1,
                                  seconds_since_last_genuine=60.0)
    assert math.isclose(pre_queue_score(pre(history), config).value,
                        pre_queue_score(pre(history), neither).value)


# -- post-call -----------------------------------------------------------------------------------


SILENT_CALL = CallFeatures(
    IvrBehaviour(menu_offered=True, no_input=True),
    CallShape(duration_seconds=40.0, talk_seconds=3.0, caller_ended=True, silence_share=0.98))
PRANK_CALL = CallFeatures(
    IvrBehaviour(menu_offered=True, invalid_keys=3, first_key_seconds=1.0),
    CallShape(duration_seconds=30.0, talk_seconds=12.0, caller_ended=True, silence_share=0.5))
REAL_CALL = CallFeatures(
    IvrBehaviour(menu_offered=True, first_key_seconds=6.0),
    CallShape(duration_seconds=200.0, talk_seconds=180.0, caller_ended=False, silence_share=0.3))
ELDERLY_CALL = CallFeatures(
    IvrBehaviour(menu_offered=True, no_input=True),
    CallShape(duration_seconds=320.0, talk_seconds=300.0, caller_ended=False, silence_share=0.6))
IVR_HANGUP = CallFeatures(IvrBehaviour(menu_offered=True, hung_up_in_ivr=True), CallShape(4.0))


def test_post_call_score_uses_the_calls_own_behaviour() -> None:
    base = pre()
    silent = post_call_score(base, SILENT_CALL, CONFIG)
    real = post_call_score(base, REAL_CALL, CONFIG)
    assert real.value < pre_queue_score(base, CONFIG).value < silent.value
    assert silent.value >= CONFIG.screening_threshold
    assert texts(silent) == [
        "Rekaman 98% hening",
        "Menutup telepon 3 detik setelah dijawab operator",
        "Tidak menekan tombol apa pun di menu",
        "Belum ada panggilan dari nomor ini dalam 90 hari terakhir",
    ]
    assert "Berbicara 3 menit dengan operator" in texts(real)
    assert "Memilih dari menu setelah mendengarkan pilihan (6 detik)" in texts(real)


def test_post_call_prank_shape() -> None:
    prank = post_call_score(pre(), PRANK_CALL, CONFIG)
    assert "3 kali menekan tombol yang salah di menu" in texts(prank)
    assert prank.value > pre_queue_score(pre(), CONFIG).value
    hangup = post_call_score(pre(), IVR_HANGUP, CONFIG)
    assert "Menutup telepon sebelum tersambung ke operator" in texts(hangup)


def test_elderly_caller_who_presses_nothing_but_talks_is_not_flagged() -> None:
    score = post_call_score(pre(), ELDERLY_CALL, CONFIG)
    assert score.value < CONFIG.lower_priority_threshold
    assert "Tidak menekan tombol apa pun di menu" in texts(score)
    assert "Berbicara 5 menit dengan operator" in texts(score)


def test_a_silent_line_held_open_is_not_a_conversation() -> None:
    held = CallFeatures(IvrBehaviour(menu_offered=False),
                        CallShape(70.0, talk_seconds=60.0, caller_ended=False, silence_share=1.0))
    score = post_call_score(pre(), held, CONFIG)
    assert "conversation" not in codes(score)
    assert "silence" in codes(score)


def test_post_call_without_recording_yet() -> None:
    call = CallFeatures(IvrBehaviour(menu_offered=False),
                        CallShape(100.0, talk_seconds=90.0, caller_ended=False))
    score = post_call_score(pre(line="119"), call, CONFIG)
    assert "silence" not in codes(score)
    assert "conversation" in codes(score)


# -- decisions -----------------------------------------------------------------------------------


def score_of(value: float) -> Score:
    return Score(value, ())


@pytest.mark.parametrize(
    ("value", "line", "category", "effect", "priority"),
    [
        (0.10, "112", "complaint", Effect.NONE, 10),
        (0.49, "112", "emergency", Effect.NONE, 10),
        (0.50, "112", "complaint", Effect.LOWER_PRIORITY, 0),
        (0.60, "112", "information", Effect.LOWER_PRIORITY, 0),
        (0.60, "112", "emergency", Effect.LOWER_PRIORITY, 5),  # the floor
        (0.60, "119", "emergency", Effect.LOWER_PRIORITY, 5),
        (0.60, "119", "", Effect.LOWER_PRIORITY, 5),  # 119 by its line alone
        (0.69, "112", "complaint", Effect.LOWER_PRIORITY, 0),
        (0.70, "112", "complaint", Effect.SCREENING_PROMPT, 0),
        (0.99, "112", "emergency", Effect.SCREENING_PROMPT, 5),
        (0.99, "119", "emergency", Effect.SCREENING_PROMPT, 5),
    ],
)
def test_decide(value: float, line: str, category: str, effect: Effect, priority: int) -> None:
    decision = decide(score_of(value), line, category, CONFIG)
    assert (decision.effect, decision.priority) == (effect, priority)


def test_there_is_no_blocking_effect() -> None:
    assert {e.value for e in Effect} == {"none", "lower_priority", "screening_prompt"}


def test_a_threshold_of_one_disables_screening() -> None:
    config = dataclasses.replace(CONFIG, screening_threshold=1.0)
    history = silent_burst(10**6, 10**6)
    score = pre_queue_score(pre(history), dataclasses.replace(config, bias=50.0))
    assert decide(score, "112", "complaint", config).effect is Effect.LOWER_PRIORITY


def test_expected_delay() -> None:
    none = Decision(Effect.NONE, 10, score_of(0.1))
    lowered = Decision(Effect.LOWER_PRIORITY, 0, score_of(0.6))
    floored = Decision(Effect.LOWER_PRIORITY, 5, score_of(0.6))
    screened = Decision(Effect.SCREENING_PROMPT, 5, score_of(0.9))
    assert expected_delay_seconds(none, CONFIG) == 0.0
    assert expected_delay_seconds(lowered, CONFIG) == 30.0
    assert expected_delay_seconds(floored, CONFIG) == 15.0
    assert expected_delay_seconds(screened, CONFIG) == 15.0 + 6.0
    assert expected_delay_seconds(screened, CONFIG, caller_presses=False) == 15.0 + 10.0
    flat = dataclasses.replace(CONFIG, normal_priority=0, priority_floor=0, lowered_priority=0)
    assert expected_delay_seconds(Decision(Effect.LOWER_PRIORITY, 0, score_of(0.6)), flat) == 0.0


# -- configuration -------------------------------------------------------------------------------


def test_config_from_json_overrides_only_what_it_names() -> None:
    config = ScoreConfig.from_json(json.dumps({
        "bias": -2,
        "weights": {"simless": 0.5, "recent_genuine": -4},
        "lower_priority_threshold": 0.6,
        "priority_floor": 7,
        "hour_weights": [0] * 24,
    }))
    assert config.bias == -2.0
    assert config.weights.simless == 0.5
    assert config.weights.recent_genuine == -4.0
    assert config.weights.prank_labels == Weights().prank_labels
    assert config.lower_priority_threshold == 0.6
    assert config.priority_floor == 7
    assert config.hour_weights == (0.0,) * 24
    assert ScoreConfig.from_json("{}") == ScoreConfig()


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "screening.json"
    path.write_text('{"screening_threshold": 0.9}', encoding="utf-8")
    assert load_score_config(path).screening_threshold == 0.9
    with pytest.raises(ScoreConfigError, match="tidak dapat dibaca"):
        load_score_config(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "bukan JSON"),
        ("[1, 2]", "objek JSON"),
        ('{"colour": 1}', "pengaturan tidak dikenal: 'colour'"),
        ('{"weights": {"shoe_size": 1}}', "bobot tidak dikenal: shoe_size"),
        ('{"weights": [1]}', "weights harus objek"),
        ('{"bias": "high"}', "bias harus bilangan"),
        ('{"bias": true}', "bias harus bilangan"),
        ('{"max_reasons": 2.5}', "max_reasons harus bilangan bulat"),
        ('{"normal_priority": false}', "normal_priority harus bilangan bulat"),
        ('{"hour_weights": 1}', "hour_weights harus daftar"),
        ('{"hour_weights": [0, 0]}', "24 bilangan terhingga"),
        ('{"hour_weights": [0, "x"]}', r"hour_weights\[1\] harus bilangan"),
        ('{"weights": {"recent_genuine": 1}}', "membela penelepon"),
        ('{"weights": {"silence": -1}}', "weights.silence harus >= 0"),
        ('{"weights": {"silence": NaN}}', "terhingga"),
        ('{"bias": Infinity}', "bias harus bilangan yang terhingga"),
        ('{"lower_priority_threshold": 0}', "ambang"),
        ('{"lower_priority_threshold": 0.9, "screening_threshold": 0.8}', "ambang"),
        ('{"screening_threshold": 1.5}', "ambang"),
        ('{"lowered_priority": 6}', "prioritas"),
        ('{"priority_floor": 11}', "prioritas"),
        ('{"lowered_priority": -1, "priority_floor": 0}', "prioritas"),
        ('{"normal_priority": 1000}', "normal_priority paling tinggi 998"),
        ('{"normal_priority": 5000, "priority_floor": 3000, "lowered_priority": 2000}',
         "normal_priority paling tinggi 998"),
        ('{"genuine_recency_hours": 0}', "genuine_recency_hours harus > 0"),
        ('{"share_min_calls": 0}', "share_min_calls harus > 0"),
        ('{"screening_timeout_seconds": -1}', "screening_timeout_seconds harus >= 0"),
        ('{"silence_baseline": 1}', "silence_baseline"),
    ],
)
def test_config_refuses_bad_documents(document: str, message: str) -> None:
    with pytest.raises(ScoreConfigError, match=message):
        ScoreConfig.from_json(document)


def test_every_priority_a_config_allows_is_one_the_dialplan_takes() -> None:
    """The dialplan sets IVR_PRIORITY only when its REGEX takes it, the live normal priority
    likewise, and brings a caller back from a transfer at a priority above them all: the
    highest a configuration allows must pass both and stay below that one."""
    dialplan = (CONF_DIR / "extensions.conf").read_text(encoding="utf-8")
    (screened,) = re.findall(r'REGEX\("([^"]*)" \$\{IVR_PRIORITY\}\)', dialplan)
    (live,) = re.findall(r'REGEX\("([^"]*)" \$\{VALUE\}\)', dialplan)
    (back,) = re.findall(r"QUEUE_PRIO=([0-9]+)\)", dialplan)
    highest = ScoreConfig(normal_priority=MAX_PRIORITY, priority_floor=MAX_PRIORITY,
                          lowered_priority=MAX_PRIORITY)
    for priority in (0, highest.lowered_priority, highest.normal_priority):
        assert re.fullmatch(screened, str(priority)) and re.fullmatch(live, str(priority))
    assert int(back) > MAX_PRIORITY
    with pytest.raises(ScoreConfigError):
        ScoreConfig(normal_priority=MAX_PRIORITY + 1)


def test_default_weights_have_the_documented_signs() -> None:
    weights = Weights()
    for f in dataclasses.fields(Weights):
        value = getattr(weights, f.name)
        assert (value <= 0) if f.name in LOWERING_WEIGHTS else (value >= 0), f.name
    assert len(DEFAULT_HOUR_WEIGHTS) == 24


# -- the keys in the menu, before the queue -----------------------------------------------------


MENU_CONFIG = dataclasses.replace(HAND_SET, weights=dataclasses.replace(
    HAND_SET.weights, no_input=1.0, invalid_keys=0.8, prompt_key=-2.0, instant_key=0.5))


def keyed(menu: IvrBehaviour | None) -> PreQueueFeatures:
    return dataclasses.replace(pre(), menu=menu)


def test_the_keys_in_the_menu_count_before_the_queue() -> None:
    def value(menu: IvrBehaviour | None) -> float:
        return pre_queue_score(keyed(menu), MENU_CONFIG).value

    unknown = value(None)
    listened = value(IvrBehaviour(menu_offered=True, first_key_seconds=6.0))
    nothing = value(IvrBehaviour(menu_offered=True, no_input=True))
    greeting = value(IvrBehaviour(menu_offered=True, first_key_seconds=1.0))
    mashed = value(IvrBehaviour(menu_offered=True, invalid_keys=2, first_key_seconds=1.0))
    assert listened < unknown < nothing < mashed
    assert unknown < greeting < mashed
    # 119 has no menu: nothing to read.
    assert value(IvrBehaviour(menu_offered=False)) == unknown


@pytest.mark.parametrize(("menu", "code", "text"), [
    (IvrBehaviour(menu_offered=True, no_input=True), "no_input",
     "Tidak menekan tombol apa pun di menu"),
    (IvrBehaviour(menu_offered=True, invalid_keys=2, first_key_seconds=7.0), "invalid_keys",
     "2 kali menekan tombol yang salah di menu"),
    (IvrBehaviour(menu_offered=True, first_key_seconds=1.2), "instant_key",
     "Menekan tombol 1 detik setelah tersambung, sebelum pilihan menu dibacakan"),
    (IvrBehaviour(menu_offered=True, first_key_seconds=6.4), "prompt_key",
     "Memilih dari menu setelah mendengarkan pilihan (6 detik)"),
])
def test_each_key_term_has_its_reason(menu: IvrBehaviour, code: str, text: str) -> None:
    score = pre_queue_score(keyed(menu), MENU_CONFIG)
    assert (code, text) in [(r.code, r.text) for r in score.reasons]


@pytest.mark.parametrize(("first", "invalid", "codes_expected"), [
    (2.5, 0, ["instant_key"]),  # at instant_key_seconds: during the greeting
    (2.6, 0, ["prompt_key"]),  # after it, within prompt_key_seconds: a choice
    (15.0, 0, ["prompt_key"]),
    (15.1, 0, []),  # after the options and more: neither
    (6.0, 1, ["invalid_keys"]),  # a wrong key first is not a choice from the menu
    (1.0, 1, ["invalid_keys", "instant_key"]),
])
def test_key_timing_windows(first: float, invalid: int, codes_expected: list[str]) -> None:
    config = dataclasses.replace(MENU_CONFIG, instant_key_seconds=2.5, prompt_key_seconds=15.0)
    menu = IvrBehaviour(menu_offered=True, invalid_keys=invalid, first_key_seconds=first)
    found = [name for name, _ in pre_queue_values(keyed(menu), config)]
    assert found == codes_expected


def test_a_hang_up_in_the_menu_is_not_read_before_the_queue() -> None:
    left = IvrBehaviour(menu_offered=True, hung_up_in_ivr=True, first_key_seconds=1.0)
    stayed = IvrBehaviour(menu_offered=True, first_key_seconds=1.0)
    assert pre_queue_values(keyed(left), MENU_CONFIG) == pre_queue_values(keyed(stayed),
                                                                          MENU_CONFIG)


def test_the_post_call_score_reads_the_calls_own_keys() -> None:
    # Whatever the pre-queue features hold, the call's IVR behaviour is what happened.
    wrong = keyed(IvrBehaviour(menu_offered=True, no_input=True))
    assert post_call_score(wrong, REAL_CALL, MENU_CONFIG) == post_call_score(
        pre(), REAL_CALL, MENU_CONFIG)
    assert "prompt_key" in codes(post_call_score(pre(), REAL_CALL, MENU_CONFIG))


def test_a_zero_weight_ignores_an_overflowing_value() -> None:
    # 0 x infinity is NaN, which read as "certain prank" after a long genuine call.
    zero = {"weights": {"conversation": 0.0}}
    overflowing = ScoreConfig.from_mapping({**zero, "conversation_seconds": 5e-324})
    ordinary = ScoreConfig.from_mapping(zero)
    assert math.isclose(post_call_score(pre(), REAL_CALL, overflowing).value,
                        post_call_score(pre(), REAL_CALL, ordinary).value)
