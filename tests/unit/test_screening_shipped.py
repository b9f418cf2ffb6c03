"""The shipped (fitted) screening weights on the cases issue 14 found missed: the second call,
the pocket dial, the family phone, short pranks and first-time silence."""

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from telephony.calls.ids import parse_caller_id
from telephony.screening.features import (
    CallFeatures,
    CallShape,
    IvrBehaviour,
    Label,
    LabelEvent,
    PastCall,
    PreQueueFeatures,
    summarise_history,
)
from telephony.screening.score import (
    Effect,
    ScoreConfig,
    decide,
    post_call_score,
    pre_queue_score,
)

SHIPPED = ScoreConfig()
NOW = datetime(2025, 3, 12, 10, 0, tzinfo=ZoneInfo("Asia/Jakarta"))  # hour weight 0
NUMBER = "081234567890"

TALKED = CallFeatures(IvrBehaviour(menu_offered=True, first_key_seconds=2.5),
                      CallShape(200.0, talk_seconds=180.0, caller_ended=False,
                                silence_share=0.3))
NOTHING = CallFeatures(IvrBehaviour(menu_offered=True, no_input=True),
                       CallShape(40.0, talk_seconds=20.0, caller_ended=False,
                                 silence_share=0.97))


def features(calls: Sequence[tuple[str, timedelta, bool]],
             labels: Sequence[tuple[str, Label, timedelta]] = (),
             caller: str = NUMBER) -> PreQueueFeatures:
    """The pre-queue features at NOW of a caller whose earlier calls were (id, age, silent)
    and labelled (id, label, age of the label)."""
    past = [PastCall(i, NOW - age, silent) for i, age, silent in calls]
    events = [LabelEvent(i, label, NOW - age) for i, label, age in labels]
    return PreQueueFeatures("112", parse_caller_id(caller), NOW.hour,
                            summarise_history(past, events, NOW))


def pre_value(pre: PreQueueFeatures) -> float:
    return pre_queue_score(pre, SHIPPED).value


# -- 1: the second call ----------------------------------------------------------------------


@pytest.mark.parametrize("age", [timedelta(minutes=10), timedelta(minutes=50),
                                 timedelta(hours=5), timedelta(hours=20)])
def test_one_earlier_silent_call_within_the_hour_or_the_day_lowers_the_next(
        age: timedelta) -> None:
    pre = features([("c1", age, True)])
    score = pre_queue_score(pre, SHIPPED)
    assert score.value >= SHIPPED.lower_priority_threshold
    decision = decide(score, "112", "emergency", SHIPPED)
    assert decision.effect is Effect.LOWER_PRIORITY  # lowered, not screened: one call only
    assert decision.priority == SHIPPED.priority_floor  # an emergency keeps the floor


def test_one_earlier_prank_label_within_the_day_lowers_the_next() -> None:
    pre = features([("c1", timedelta(hours=3), False)],
                   [("c1", Label.PRANK, timedelta(hours=3) - timedelta(minutes=2))])
    assert pre_value(pre) >= SHIPPED.lower_priority_threshold


def test_a_first_time_caller_is_never_lowered() -> None:
    for caller in (NUMBER, "anonymous", "12345", "IMEI352099001761481"):
        assert pre_value(features([], caller=caller)) < SHIPPED.lower_priority_threshold


# -- 2: pocket dials ---------------------------------------------------------------------------


def test_repeat_pocket_dials_build_a_score_with_their_own_reason() -> None:
    calls = [(f"p{i}", timedelta(hours=age), False)
             for i, age in enumerate((30, 29.9, 5, 4.95))]
    labels = [(f"p{i}", Label.ACCIDENTAL, timedelta(hours=age - 0.01))
              for i, age in enumerate((30, 29.9, 5, 4.95))]
    score = pre_queue_score(features(calls, labels), SHIPPED)
    assert score.value >= SHIPPED.lower_priority_threshold
    texts = " ".join(r.text for r in score.reasons)
    assert "tidak sengaja" in texts


# -- 3: prank evidence fades, a recent genuine call outweighs older pranks -------------------


def test_prank_evidence_fades_with_time() -> None:
    def family(days: float) -> float:
        age = timedelta(days=days)
        calls = [(f"k{i}", age + timedelta(minutes=20 * i), False) for i in range(4)]
        labels = [(f"k{i}", Label.PRANK, age + timedelta(minutes=20 * i - 2)) for i in range(4)]
        return pre_value(features(calls, labels))

    scores = [family(d) for d in (1, 7, 20, 60)]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] < SHIPPED.lower_priority_threshold  # two months on: forgiven
    assert scores[1] < SHIPPED.screening_threshold  # a week on: lowered at most, never screened


def test_a_recent_genuine_call_outweighs_older_pranks() -> None:
    calls: list[tuple[str, timedelta, bool]] = [
        (f"k{i}", timedelta(days=3, minutes=20 * i), False) for i in range(4)]
    labels = [(f"k{i}", Label.PRANK, timedelta(days=3, minutes=20 * i - 2)) for i in range(4)]
    pranks_only = pre_value(features(calls, labels))
    calls.append(("parent", timedelta(minutes=15), False))
    labels.append(("parent", Label.GENUINE, timedelta(minutes=10)))
    after_parent = pre_value(features(calls, labels))
    assert after_parent < SHIPPED.lower_priority_threshold < pranks_only


# -- 4: short pranks and first-time silence after the call ---------------------------------


def short_talk(seconds: float) -> CallFeatures:
    return CallFeatures(IvrBehaviour(menu_offered=True, first_key_seconds=1.5),
                        CallShape(seconds + 20, talk_seconds=seconds, caller_ended=True,
                                  silence_share=0.5))


def test_a_short_conversation_counts_after_the_call() -> None:
    first = features([])
    short = post_call_score(first, short_talk(18.0), SHIPPED)
    long = post_call_score(first, TALKED, SHIPPED)
    assert short.value > long.value
    assert "short_talk" in [r.code for r in short.reasons]
    assert any("Percakapan singkat" in r.text for r in short.reasons)
    assert long.value < SHIPPED.post_call_threshold


def test_first_time_silence_counts_after_the_call() -> None:
    score = post_call_score(features([]), NOTHING, SHIPPED)
    assert score.value >= SHIPPED.post_call_threshold


def test_a_first_time_genuine_conversation_stays_low_after_the_call() -> None:
    assert post_call_score(features([]), TALKED, SHIPPED).value < 0.1


def test_an_unlabelled_talking_prank_the_line_suspected_lowers_the_next_call() -> None:
    past = [PastCall("c1", NOW - timedelta(minutes=25), looks_silent=False, suspected=True)]
    pre = PreQueueFeatures("112", parse_caller_id(NUMBER), NOW.hour,
                           summarise_history(past, [], NOW))
    score = pre_queue_score(pre, SHIPPED)
    assert score.value >= SHIPPED.lower_priority_threshold
    assert any("diduga iseng" in r.text for r in score.reasons)
    unsuspected = PastCall("c1", NOW - timedelta(minutes=25), looks_silent=False)
    plain = PreQueueFeatures("112", parse_caller_id(NUMBER), NOW.hour,
                             summarise_history([unsuspected], [], NOW))
    assert pre_queue_score(plain, SHIPPED).value < SHIPPED.lower_priority_threshold


# -- the keys in the menu, with the shipped weights ---------------------------------------------

NO_KEY = IvrBehaviour(menu_offered=True, no_input=True)
LISTENED = IvrBehaviour(menu_offered=True, first_key_seconds=6.0)
MASHED = IvrBehaviour(menu_offered=True, invalid_keys=2, first_key_seconds=1.0)


def at_hour(pre: PreQueueFeatures, hour: int, menu: IvrBehaviour | None) -> PreQueueFeatures:
    return dataclasses.replace(pre, hour=hour, menu=menu)


def test_a_first_time_caller_who_presses_nothing_is_never_lowered_for_it() -> None:
    # About one genuine caller in eight presses nothing: silence alone is not enough, at any
    # hour; nor is a caller who listened and chose, whatever the caller id.
    for hour in range(24):
        assert pre_value(at_hour(features([]), hour, NO_KEY)) < SHIPPED.lower_priority_threshold
        for caller in (NUMBER, "anonymous", "IMEI352099001761481"):
            assert pre_value(at_hour(features([], caller=caller), hour, LISTENED)) < 0.2


def test_one_earlier_silent_call_lowers_but_never_screens_whatever_the_keys() -> None:
    for hour in range(24):
        for menu in (NO_KEY, LISTENED, MASHED):
            for age in (timedelta(minutes=5), timedelta(minutes=50)):
                pre = at_hour(features([("c1", age, True)]), hour, menu)
                assert pre_value(pre) < SHIPPED.screening_threshold, (hour, menu, age)
    # Two silent calls in the hour, and no key again: the prompt. Had the caller listened to
    # the menu and chosen, only the priority is lowered.
    two = features([("c1", timedelta(minutes=30), True), ("c2", timedelta(minutes=10), True)])
    assert pre_value(at_hour(two, 10, NO_KEY)) >= SHIPPED.screening_threshold
    listened = pre_value(at_hour(two, 10, LISTENED))
    assert SHIPPED.lower_priority_threshold <= listened < SHIPPED.screening_threshold
