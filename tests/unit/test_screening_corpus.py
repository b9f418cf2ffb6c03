"""The synthetic corpus: determinism, the published shares, repeat callers, the hard cases."""

import itertools
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

import pytest

from telephony.calls.ids import CallerIdKind
from telephony.screening.corpus import (
    CHILD_HOURS,
    DEFAULT_CALLERS,
    DEFAULT_SEED,
    GREETING_SECONDS,
    HARD_CASES,
    OPTION_SECONDS,
    PURWOREJO,
    SEMARANG,
    Corpus,
    CorpusCall,
    CorpusProfile,
    Persona,
    class_shares,
    generate_corpus,
    plan_callers,
)
from telephony.screening.features import Label, local_hour


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus(DEFAULT_SEED, DEFAULT_CALLERS)


def by_caller(corpus: Corpus, persona: Persona) -> list[list[CorpusCall]]:
    callers: dict[str, list[CorpusCall]] = defaultdict(list)
    for call in corpus.calls:
        if call.persona is persona:
            # Calls without an identity each stand alone.
            callers[call.caller.key or call.call_id].append(call)
    return list(callers.values())


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    first = generate_corpus(seed=7, callers=300)
    assert generate_corpus(seed=7, callers=300) == first
    other = generate_corpus(seed=8, callers=300)
    assert other.calls != first.calls
    assert all(c.call_id.startswith("s7-") for c in first.calls)


def test_calls_are_in_arrival_order_with_unique_ids(corpus: Corpus) -> None:
    assert [c.at for c in corpus.calls] == sorted(c.at for c in corpus.calls)
    assert len({c.call_id for c in corpus.calls}) == len(corpus.calls)


@pytest.mark.parametrize("callers", [6, 7, 50, 301, 5000])
def test_plan_has_exactly_the_callers_and_every_hard_case(callers: int) -> None:
    plan = plan_callers(SEMARANG, callers)
    assert sum(plan.values()) == callers
    assert all(plan[p] >= 1 for p in HARD_CASES)
    assert min(plan.values()) >= 0


def test_too_few_callers_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        generate_corpus(callers=5)


@pytest.mark.parametrize(("profile", "tolerance"), [(SEMARANG, 0.02), (PURWOREJO, 0.025)])
def test_class_shares_follow_the_published_figures(profile: CorpusProfile,
                                                   tolerance: float) -> None:
    shares = class_shares(generate_corpus(seed=1, callers=5000, profile=profile).calls)
    for label in Label:
        assert shares[label] == pytest.approx(profile.target(label), abs=tolerance), label


def test_profiles() -> None:
    # Semarang's 38.6% split as Purworejo splits prank and ghost calls.
    assert SEMARANG.prank_share + SEMARANG.silent_share == pytest.approx(0.386)
    assert SEMARANG.prank_share / SEMARANG.silent_share == pytest.approx(1147 / 1170)
    assert PURWOREJO.prank_share == pytest.approx(1147 / 2802)
    assert PURWOREJO.genuine_share == pytest.approx(0.073, abs=0.001)
    with pytest.raises(ValueError, match="shares"):
        CorpusProfile("x", "", 0.5, 0.5, 0.0, 0.0)
    with pytest.raises(ValueError, match="14 days"):
        CorpusProfile("x", "", 0.1, 0.1, 0.0, 0.0, days=10)


def test_many_repeat_numbers_call_more_than_ten_times(corpus: Corpus) -> None:
    repeaters = [calls for p in (Persona.GHOST, Persona.PRANKSTER, Persona.SIMLESS_NUISANCE)
                 for calls in by_caller(corpus, p)]
    over_ten = sum(len(calls) > 10 for calls in repeaters) / len(repeaters)
    assert 0.25 < over_ten < 0.55
    assert all(len(calls) >= 2 for calls in repeaters)
    # Silent numbers call in bursts: most of their calls follow another within the hour.
    ghost_gaps = [(b.at - a.at) for calls in by_caller(corpus, Persona.GHOST)
                  for a, b in itertools.pairwise(calls)]
    assert sum(g < timedelta(hours=1) for g in ghost_gaps) / len(ghost_gaps) > 0.5


def test_pranks_cluster_after_school(corpus: Corpus) -> None:
    def afternoon_share(label: Label) -> float:
        hours = [local_hour(c.at) for c in corpus.calls if c.truth is label]
        return sum(13 <= h <= 20 for h in hours) / len(hours)

    assert afternoon_share(Label.PRANK) > afternoon_share(Label.GENUINE) + 0.1
    assert max(range(24), key=CHILD_HOURS.__getitem__) in range(13, 17)


def test_callback_caller_calls_four_more_times_within_twenty_minutes(corpus: Corpus) -> None:
    callers = by_caller(corpus, Persona.CALLBACK)
    assert len(callers) >= 20
    for calls in callers:
        assert len(calls) == 5
        assert all(c.truth is Label.GENUINE and c.line == "112" for c in calls)
        assert calls[-1].at - calls[1].at <= timedelta(minutes=20)
        assert calls[-1].at - calls[0].at <= timedelta(minutes=25)


def test_chronic_patient_calls_119_every_week(corpus: Corpus) -> None:
    for calls in by_caller(corpus, Persona.CHRONIC):
        assert len(calls) == 4
        assert {c.line for c in calls} == {"119"}
        for a, b in itertools.pairwise(calls):
            assert timedelta(days=6) <= b.at - a.at <= timedelta(days=8)


def test_elderly_caller_presses_nothing_but_is_genuine(corpus: Corpus) -> None:
    calls = [c for cs in by_caller(corpus, Persona.ELDERLY) for c in cs]
    assert calls
    assert all(c.truth is Label.GENUINE and c.features.ivr.no_input for c in calls)
    assert sum(c.features.shape.answered for c in calls) / len(calls) > 0.8


def test_genuine_simless_calls(corpus: Corpus) -> None:
    calls = [c for cs in by_caller(corpus, Persona.SIMLESS_GENUINE) for c in cs]
    assert calls
    assert all(c.caller.kind is CallerIdKind.SIMLESS and c.truth is Label.GENUINE for c in calls)
    # Both presentations carriers use occur.
    assert any(c.caller.raw.startswith("urn:gsma:imei:") for c in corpus.calls)
    assert any(c.caller.raw.isdigit() and c.caller.kind is CallerIdKind.SIMLESS
               for c in corpus.calls)
    assert any(c.caller.raw.startswith("IMEI") and c.caller.kind is CallerIdKind.SIMLESS
               for c in corpus.calls)


def test_family_phone_pranks_then_a_real_emergency(corpus: Corpus) -> None:
    gaps = []
    for calls in by_caller(corpus, Persona.FAMILY):
        pranks = [c for c in calls if c.truth is Label.PRANK]
        parent = [c for c in calls if c.truth is Label.GENUINE]
        assert 3 <= len(pranks) <= 6
        assert calls[: len(pranks)] == pranks  # the child first, then the parent
        assert 1 <= len(parent) <= 2
        gap = parent[0].at - pranks[-1].at
        assert timedelta(hours=2) <= gap <= timedelta(days=10, hours=1)
        gaps.append(gap)
        if len(parent) == 2:  # rang back about the same fire
            assert parent[1].at - parent[0].at <= timedelta(minutes=40)
    # Hours later and days later both occur.
    assert min(gaps) < timedelta(days=2) < timedelta(days=6) <= max(gaps)


def test_second_calls_and_pocket_bursts(corpus: Corpus) -> None:
    seconds = [calls for calls in by_caller(corpus, Persona.SECOND_CALL)
               if calls[0].caller.key is not None]
    assert seconds and all(2 <= len(calls) <= 3 for calls in seconds)
    assert all(c.truth in (Label.PRANK, Label.SILENT) for calls in seconds for c in calls)
    pockets = by_caller(corpus, Persona.POCKET)
    assert pockets and all(2 <= len(calls) <= 10 for calls in pockets)
    assert all(c.truth is Label.ACCIDENTAL for calls in pockets for c in calls)
    # A burst: some pocket dial follows the previous one within minutes.
    assert any(b.at - a.at < timedelta(minutes=15) for calls in pockets
               for a, b in itertools.pairwise(calls))


def test_short_pranks_talk_ten_to_twenty_five_seconds(corpus: Corpus) -> None:
    talks = [c.features.shape.talk_seconds for c in corpus.calls
             if c.truth is Label.PRANK and c.features.shape.talk_seconds is not None]
    short = [t for t in talks if 10 <= t <= 25]
    assert len(short) > 0.3 * len(talks)


def test_operator_labels_are_sometimes_wrong_and_sometimes_corrected(corpus: Corpus) -> None:
    labelled = [c for c in corpus.calls if c.labels]
    wrong = [c for c in labelled if c.labels[0].label is not c.truth]
    corrected = [c for c in labelled if len(c.labels) > 1]
    assert 0.02 < len(wrong) / len(labelled) < 0.08
    assert corrected
    assert {c.call_id for c in corrected} <= {c.call_id for c in wrong}
    for call in corrected:
        assert call.labels[-1].label is call.truth
        assert call.labels[-1].at > call.labels[0].at
    # Only calls an operator answered carry a label, entered after the call ended.
    assert all(c.features.shape.answered and c.labels[0].at > c.ended_at for c in labelled)
    # A genuine caller wrongly labelled prank: the case that gets numbers wrongly blocked.
    assert any(c.truth is Label.GENUINE and c.labels[0].label is Label.PRANK for c in wrong)


def test_some_callers_hide_or_garble_their_number(corpus: Corpus) -> None:
    kinds = {c.caller.kind for c in corpus.calls}
    assert kinds == set(CallerIdKind)


def test_calls_of_one_caller_never_overlap(corpus: Corpus) -> None:
    last_end: dict[str, CorpusCall] = {}
    for call in corpus.calls:
        key = call.caller.key
        if key is None:
            continue
        previous = last_end.get(key)
        assert previous is None or call.at >= previous.ended_at
        last_end[key] = call


# -- the keys in the menu, per class ------------------------------------------------------------


def menu_calls(corpus: Corpus, *truths: Label) -> list[CorpusCall]:
    """Calls of these classes that heard the 112 menu and stayed to the route."""
    return [c for c in corpus.calls if c.truth in truths and c.line == "112"
            and not c.features.ivr.hung_up_in_ivr]


def share(calls: list[CorpusCall], test: Callable[[CorpusCall], bool]) -> float:
    return sum(test(c) for c in calls) / len(calls)


def no_key(call: CorpusCall) -> bool:
    return call.features.ivr.no_input


def in_greeting(call: CorpusCall) -> bool:
    first = call.features.ivr.first_key_seconds
    return first is not None and first < GREETING_SECONDS


def test_genuine_callers_press_nothing_too(corpus: Corpus) -> None:
    # "No key" cannot stand for "nuisance": the elderly and about a tenth of the others.
    genuine = menu_calls(corpus, Label.GENUINE)
    assert 0.10 <= share(genuine, no_key) <= 0.18
    nuisance = menu_calls(corpus, Label.PRANK, Label.SILENT, Label.ACCIDENTAL)
    assert share(nuisance, no_key) > 2 * share(genuine, no_key)


def test_keys_are_timed_against_the_menu(corpus: Corpus) -> None:
    # A genuine caller presses during the greeting (knowing the menu) or after hearing an
    # option: never between the two, nothing can be chosen there.
    first_option = GREETING_SECONDS + OPTION_SECONDS
    for call in menu_calls(corpus, Label.GENUINE, Label.TEST):
        first = call.features.ivr.first_key_seconds
        assert first is None or first < GREETING_SECONDS or first > first_option, call.call_id
    # Pranksters often press at once; genuine callers rarely do: 3% on a first call, 40% on a
    # follow-up or a callback about the same fire (they know the menu by then).
    genuine = menu_calls(corpus, Label.GENUINE)
    pranks = menu_calls(corpus, Label.PRANK)
    assert share(genuine, in_greeting) < 0.12
    assert 0.2 <= share(pranks, in_greeting) <= 0.4
    # Pocket keys come at any moment: some silent calls press, wrong keys or not.
    silent = [c for c in menu_calls(corpus, Label.SILENT) if c.features.ivr.pressed_a_key]
    assert silent and any(c.features.ivr.invalid_keys == 0 for c in silent)
    assert 0.05 <= share(menu_calls(corpus, Label.SILENT), lambda c: c in silent) <= 0.3
