"""Measure the screening score on a synthetic corpus, beside today's blocking rules.

``python -m telephony.screening.evaluate [--seed N] [--callers N] [--profile NAME]
[--config FILE]`` generates a corpus (:mod:`telephony.screening.corpus`), replays it call by
call as the line would have seen it (each call scored from the history and labels known when it
rang, and the keys it pressed in the menu before the verdict), and prints:

- precision, recall, ROC AUC and Brier score of the pre-queue and post-call scores, with prank,
  silent and accidental calls as the positive class, at the configured thresholds, the
  reliability curve of each, and the history's ceiling (the share of nuisance calls whose
  number called before: the others have only their caller id, hour and keys before they are
  answered), with those first calls split by what the menu saw of them
  (:func:`first_calls`) beside the genuine first calls that did the same;
- the share of genuine calls that the pre-queue decision would have delayed (lower priority or
  screening prompt) and the expected extra seconds, overall and for each hard case;
- on the same corpus, a table of precision, recall and genuine callers delayed, screened and
  blocked for the score before the queue, after the call, and the rules centres use today
  (block a number for 24 h after a call labelled anything but genuine; block it after 3
  pranks). The score catches by delaying and never blocks.

A blocked call never reaches an operator, so it gets no label: the rules are replayed with the
labels only of the calls they let through.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from telephony.screening.calibrate import (
    ReliabilityBin,
    brier_score,
    reliability_curve,
)
from telephony.screening.corpus import (
    DEFAULT_CALLERS,
    DEFAULT_SEED,
    HARD_CASES,
    PROFILES,
    SEMARANG,
    Corpus,
    CorpusCall,
    Persona,
    class_shares,
    generate_corpus,
)
from telephony.screening.features import (
    FIRST_TIME,
    Label,
    LabelEvent,
    PastCall,
    PreQueueFeatures,
    local_hour,
    resolve_labels,
    summarise_history,
)
from telephony.screening.score import (
    Decision,
    Effect,
    Score,
    ScoreConfig,
    ScoreConfigError,
    decide,
    expected_delay_seconds,
    load_score_config,
    post_call_score,
    pre_queue_score,
)


@dataclass(frozen=True, slots=True)
class ScoredCall:
    """One corpus call as the line would have scored and treated it."""

    call: CorpusCall
    features: PreQueueFeatures
    pre: Score
    post: Score
    decision: Decision  # taken from the pre-queue score, before the call joined a queue
    delay_seconds: float  # expected extra seconds the decision cost the caller


def replay(calls: Iterable[CorpusCall], config: ScoreConfig) -> list[ScoredCall]:
    """Score every call in arrival order from the history and labels known when it rang."""
    past: dict[str, list[PastCall]] = {}
    labels: dict[str, list[LabelEvent]] = {}
    scored: list[ScoredCall] = []
    for call in sorted(calls, key=lambda c: (c.at, c.call_id)):
        key = call.caller.key
        history = FIRST_TIME
        if key is not None and key in past:
            history = summarise_history(past[key], labels[key], call.at)
        # The verdict is asked once the IVR has collected the keys: the menu is known.
        features = PreQueueFeatures(call.line, call.caller, local_hour(call.at), history,
                                    menu=call.features.ivr)
        pre = pre_queue_score(features, config)
        decision = decide(pre, call.line, call.category, config)
        # A caller who said and pressed nothing in the IVR waits out the screening timeout.
        presses = not (call.features.ivr.no_input or call.features.looks_silent)
        delay = expected_delay_seconds(decision, config, caller_presses=presses)
        post = post_call_score(features, call.features, config)
        scored.append(ScoredCall(call, features, pre, post, decision, delay))
        if key is not None:
            # The line's own post-call score is in the history once the call has ended.
            past.setdefault(key, []).append(
                PastCall(call.call_id, call.at, call.features.looks_silent,
                         post.value >= config.post_call_threshold))
            labels.setdefault(key, []).extend(call.labels)
    return scored


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve by the rank statistic (Mann-Whitney U).

    The probability that a random positive scores above a random negative, ties counting half;
    tied scores share their average rank.
    """
    if len(scores) != len(positive):
        raise ValueError("one label per score")
    n_pos = sum(positive)
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        raise ValueError("ROC AUC needs at least one positive and one negative")
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average_rank = (i + j) / 2 + 1  # ranks are 1-based
        rank_sum += average_rank * sum(positive[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@dataclass(frozen=True, slots=True)
class ThresholdMetrics:
    """Confusion counts of ``score >= threshold`` against the truth."""

    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def precision(self) -> float | None:
        """Share of flagged calls that were positive; ``None`` when nothing was flagged."""
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        """Share of positive calls that were flagged; ``None`` without positives."""
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else None


def threshold_metrics(scores: Sequence[float], positive: Sequence[bool],
                      threshold: float) -> ThresholdMetrics:
    """Precision and recall counts of flagging every score at or above ``threshold``."""
    if len(scores) != len(positive):
        raise ValueError("one label per score")
    tp = fp = fn = tn = 0
    for score, is_positive in zip(scores, positive, strict=True):
        flagged = score >= threshold
        if flagged and is_positive:
            tp += 1
        elif flagged:
            fp += 1
        elif is_positive:
            fn += 1
        else:
            tn += 1
    return ThresholdMetrics(threshold, tp, fp, fn, tn)


@dataclass(frozen=True, slots=True)
class DelaySummary:
    """How the decisions treated genuine calls."""

    genuine_calls: int
    lowered: int  # lower priority only
    screened: int  # screening prompt (and lower priority)
    total_extra_seconds: float
    max_extra_seconds: float

    @property
    def delayed(self) -> int:
        """Genuine calls given any effect."""
        return self.lowered + self.screened

    @property
    def share(self) -> float:
        """Share of genuine calls delayed."""
        return self.delayed / self.genuine_calls if self.genuine_calls else 0.0

    @property
    def mean_extra_seconds(self) -> float:
        """Mean expected extra seconds over the delayed genuine calls."""
        return self.total_extra_seconds / self.delayed if self.delayed else 0.0


def delay_summary(scored: Iterable[ScoredCall]) -> DelaySummary:
    """Summarise the effects on the genuine calls among ``scored``."""
    genuine = lowered = screened = 0
    total = longest = 0.0
    for item in scored:
        if item.call.truth is not Label.GENUINE:
            continue
        genuine += 1
        if item.decision.effect is Effect.LOWER_PRIORITY:
            lowered += 1
        elif item.decision.effect is Effect.SCREENING_PROMPT:
            screened += 1
        total += item.delay_seconds
        longest = max(longest, item.delay_seconds)
    return DelaySummary(genuine, lowered, screened, total, longest)


BlockTest = Callable[[Mapping[str, LabelEvent], datetime], bool]


def _blocked(calls: Iterable[CorpusCall], is_blocked: BlockTest) -> frozenset[str]:
    """Replay a number-blocking rule; ``is_blocked`` sees the current labels of the number's
    earlier calls that got through. Calls without an identity cannot be blocked.
    """
    labels: dict[str, list[LabelEvent]] = {}
    blocked: set[str] = set()
    for call in sorted(calls, key=lambda c: (c.at, c.call_id)):
        key = call.caller.key
        if key is None:
            continue
        if is_blocked(resolve_labels(labels.get(key, ()), call.at), call.at):
            blocked.add(call.call_id)
        else:
            labels.setdefault(key, []).extend(call.labels)
    return frozenset(blocked)


def blocked_24h_after_label(calls: Iterable[CorpusCall]) -> frozenset[str]:
    """Calls rejected by "block a number for 24 hours after a call is labelled anything but
    genuine" (prank, silent, accidental or test), the rule Purworejo uses."""
    day = timedelta(hours=24)

    def is_blocked(current: Mapping[str, LabelEvent], now: datetime) -> bool:
        return any(e.label is not Label.GENUINE and now - e.at < day for e in current.values())

    return _blocked(calls, is_blocked)


def blocked_after_three_pranks(calls: Iterable[CorpusCall]) -> frozenset[str]:
    """Calls rejected by "block a number once three of its calls are labelled prank"."""

    def is_blocked(current: Mapping[str, LabelEvent], now: datetime) -> bool:
        del now  # the block is for good
        return sum(e.label is Label.PRANK for e in current.values()) >= 3

    return _blocked(calls, is_blocked)


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What a rule (or the score) did to the nuisance and genuine calls of a corpus.

    "Caught" is blocked for a rule, any effect for the pre-queue score, and a post-call score at
    or above the threshold for the post-call score. Callers are distinct identities (a call
    without one counts as a caller of its own).
    """

    name: str
    nuisance_calls: int
    nuisance_caught: int  # prank, silent or accidental calls caught
    other_caught: int  # genuine and test calls caught
    genuine_calls_blocked: int
    genuine_callers: int
    genuine_callers_blocked: int
    genuine_callers_delayed: int = 0  # a genuine call of theirs lowered or screened
    genuine_callers_screened: int = 0  # a genuine call of theirs heard the screening prompt

    @property
    def caught_share(self) -> float:
        """Share of nuisance calls caught: the recall."""
        return self.nuisance_caught / self.nuisance_calls if self.nuisance_calls else 0.0

    @property
    def precision(self) -> float | None:
        """Share of caught calls that were nuisance calls; ``None`` when nothing was caught."""
        caught = self.nuisance_caught + self.other_caught
        return self.nuisance_caught / caught if caught else None


def _caller(call: CorpusCall) -> str:
    return call.caller.key or f"call:{call.call_id}"


def rule_outcome(name: str, calls: Iterable[CorpusCall], caught: Collection[str],
                 blocked: Collection[str], *, delayed: Collection[str] = (),
                 screened: Collection[str] = ()) -> RuleOutcome:
    """Count the nuisance and other calls in ``caught``, and the genuine calls and callers in
    ``blocked``, ``delayed`` and ``screened``."""
    nuisance = caught_count = other = genuine_blocked = 0
    genuine: set[str] = set()
    blocked_callers: set[str] = set()
    delayed_callers: set[str] = set()
    screened_callers: set[str] = set()
    for call in calls:
        if call.nuisance:
            nuisance += 1
            caught_count += call.call_id in caught
            continue
        other += call.call_id in caught
        if call.truth is not Label.GENUINE:
            continue
        caller = _caller(call)
        genuine.add(caller)
        if call.call_id in blocked:
            genuine_blocked += 1
            blocked_callers.add(caller)
        if call.call_id in delayed:
            delayed_callers.add(caller)
        if call.call_id in screened:
            screened_callers.add(caller)
    return RuleOutcome(name, nuisance, caught_count, other, genuine_blocked, len(genuine),
                       len(blocked_callers), len(delayed_callers), len(screened_callers))


@dataclass(frozen=True, slots=True)
class Calibration:
    """How well a score's values match the observed nuisance share."""

    brier: float
    curve: tuple[ReliabilityBin, ...]


def calibration(scores: Sequence[float], positive: Sequence[bool]) -> Calibration:
    """Brier score and reliability curve (10 bins) of ``scores``."""
    return Calibration(brier_score(scores, positive), tuple(reliability_curve(scores, positive)))


@dataclass(frozen=True)
class Evaluation:
    """Every figure the evaluation reports, for one corpus and one configuration."""

    corpus: Corpus
    config: ScoreConfig
    scored: tuple[ScoredCall, ...]
    pre_auc: float
    post_auc: float
    pre_metrics: tuple[ThresholdMetrics, ThresholdMetrics]  # lower priority, screening
    post_metrics: tuple[ThresholdMetrics, ThresholdMetrics]
    delays: DelaySummary
    hard_cases: Mapping[Persona, DelaySummary]
    # The pre-queue score, the post-call score, then the blocking rules.
    comparison: tuple[RuleOutcome, ...]
    pre_calibration: Calibration
    post_calibration: Calibration
    ceiling: float  # share of nuisance calls with an earlier call of the same identity
    # Calls without history by what the menu saw: (slice, nuisance calls, genuine calls).
    first: tuple[tuple[str, int, int], ...] = ()


def evaluate(corpus: Corpus, config: ScoreConfig) -> Evaluation:
    """Replay ``corpus`` under ``config`` and compute every reported figure."""
    scored = tuple(replay(corpus.calls, config))
    positive = [s.call.nuisance for s in scored]
    pre = [s.pre.value for s in scored]
    post = [s.post.value for s in scored]
    thresholds = (config.lower_priority_threshold, config.screening_threshold)
    pre_metrics = tuple(threshold_metrics(pre, positive, t) for t in thresholds)
    post_metrics = tuple(threshold_metrics(post, positive, t)
                         for t in (config.post_call_threshold, config.screening_threshold))
    caught = {s.call.call_id for s in scored if s.decision.effect is not Effect.NONE}
    screened = {s.call.call_id for s in scored if s.decision.effect is Effect.SCREENING_PROMPT}
    post_caught = {s.call.call_id for s in scored if s.post.value >= config.post_call_threshold}
    day_rule = blocked_24h_after_label(corpus.calls)
    three_rule = blocked_after_three_pranks(corpus.calls)
    comparison = (
        rule_outcome("score before the queue", corpus.calls, caught, (), delayed=caught,
                     screened=screened),
        rule_outcome("score after the call", corpus.calls, post_caught, ()),
        rule_outcome("block 24 h after a non-genuine label", corpus.calls, day_rule, day_rule),
        rule_outcome("block after 3 pranks", corpus.calls, three_rule, three_rule),
    )
    seen: set[str] = set()
    reachable = 0
    for s in scored:
        key = s.call.caller.key
        if s.call.nuisance and key is not None and key in seen:
            reachable += 1
        if key is not None:
            seen.add(key)
    hard = {p: delay_summary(s for s in scored if s.call.persona is p)
            for p in Persona if p in HARD_CASES}
    return Evaluation(
        corpus=corpus,
        config=config,
        scored=scored,
        pre_auc=roc_auc(pre, positive),
        post_auc=roc_auc(post, positive),
        pre_metrics=(pre_metrics[0], pre_metrics[1]),
        post_metrics=(post_metrics[0], post_metrics[1]),
        delays=delay_summary(scored),
        hard_cases=hard,
        comparison=comparison,
        pre_calibration=calibration(pre, positive),
        post_calibration=calibration(post, positive),
        ceiling=reachable / max(1, sum(positive)),
        first=first_calls(scored, config),
    )


FIRST_CALL_SLICES = (
    "pressed nothing", "hung up in the menu (never queued)", "119 (no menu)",
    "key during the greeting", "wrong keys", "chose after listening", "key after the options",
)


def _first_call_slice(call: CorpusCall, config: ScoreConfig) -> str:
    ivr = call.features.ivr
    first = ivr.first_key_seconds
    if not ivr.menu_offered:
        return FIRST_CALL_SLICES[2]
    if ivr.hung_up_in_ivr:
        return FIRST_CALL_SLICES[1]
    if first is None:
        return FIRST_CALL_SLICES[0]
    if first <= config.instant_key_seconds:
        return FIRST_CALL_SLICES[3]
    if ivr.invalid_keys:
        return FIRST_CALL_SLICES[4]
    if first <= config.prompt_key_seconds:
        return FIRST_CALL_SLICES[5]
    return FIRST_CALL_SLICES[6]


def first_calls(scored: Iterable[ScoredCall], config: ScoreConfig
                ) -> tuple[tuple[str, int, int], ...]:
    """Calls without history (first calls, withheld and malformed ids) split by what the menu
    saw of them: (slice, nuisance calls, genuine calls). Only the caller id, the hour and these
    keys can tell a first nuisance call before it is answered; a slice's nuisance share is the
    best precision that catching the whole slice could have."""
    counts = {name: [0, 0] for name in FIRST_CALL_SLICES}
    for item in scored:
        if not item.features.history.first_time:
            continue
        call = item.call
        if call.nuisance or call.truth is Label.GENUINE:
            counts[_first_call_slice(call, config)][0 if call.nuisance else 1] += 1
    return tuple((name, n, g) for name, (n, g) in counts.items())


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _examples(scored: Sequence[ScoredCall]) -> list[tuple[str, ScoredCall]]:
    """A few calls worth showing with their reasons: the worst nuisance number, and hard cases."""
    picks: list[tuple[str, ScoredCall]] = []
    ghosts = [s for s in scored if s.call.persona is Persona.GHOST]
    if ghosts:
        picks.append(("silent number, its highest score", max(ghosts, key=lambda s: s.pre.value)))
    wanted: tuple[tuple[Persona, str, Callable[[ScoredCall], float]], ...] = (
        (Persona.FAMILY, "family phone, the parent's emergency",
         lambda s: s.features.history.prank_calls),
        (Persona.CALLBACK, "fire caller, last callback",
         lambda s: s.features.history.calls_last_hour),
        (Persona.CHRONIC, "chronic patient, last weekly call", lambda s: s.features.history.calls),
    )
    for persona, title, key in wanted:
        calls = [s for s in scored if s.call.persona is persona and s.call.truth is Label.GENUINE]
        if calls:
            picks.append((title, max(calls, key=key)))
    return picks


def render(ev: Evaluation, timings: tuple[float, float] | None = None) -> str:
    """The evaluation as a plain-text report."""
    corpus, config = ev.corpus, ev.config
    shares = class_shares(corpus.calls)
    lines = [
        f"Corpus: profile {corpus.profile.name}, seed {corpus.seed}, "
        f"{sum(corpus.callers.values())} callers, {len(corpus.calls)} calls over "
        f"{corpus.profile.days} days",
        f"  source: {corpus.profile.source}",
        "  calls by true class: " + ", ".join(
            f"{label} {100 * shares[label]:.1f}% (target {100 * corpus.profile.target(label):.1f}%)"
            for label in Label),
        "",
        "Score quality (positive = prank, silent or accidental)  precision   recall"
        "    ROC AUC   Brier",
    ]
    for name, auc, metrics, cal in (
            ("pre-queue (history + keys)", ev.pre_auc, ev.pre_metrics, ev.pre_calibration),
            ("post-call (history + call)", ev.post_auc, ev.post_metrics, ev.post_calibration)):
        for index, m in enumerate(metrics):
            effect = "screening" if index else "lower priority" if metrics is ev.pre_metrics \
                else "likely nuisance"
            auc_text = f"{auc:.3f}" if index == 0 else ""
            brier_text = f"{cal.brier:.4f}" if index == 0 else ""
            lines.append(f"  {name:<27} >= {m.threshold:<5g} ({effect:<14})"
                         f" {_pct(m.precision):>17} {_pct(m.recall):>8} {auc_text:>10}"
                         f" {brier_text:>7}")
    lines.append(f"  history's ceiling (nuisance calls with an earlier call from the same "
                 f"identity): {_pct(ev.ceiling)}")
    first_nuisance = sum(n for _, n, _ in ev.first)
    lines += ["", f"Nuisance calls without history ({first_nuisance}) and genuine ones, by what "
                  "the menu saw:"]
    for name, nuisance, genuine in ev.first:
        share = nuisance / (nuisance + genuine) if nuisance + genuine else None
        lines.append(f"  {name:<36} nuisance {nuisance:>5}  genuine {genuine:>5}  "
                     f"nuisance share {_pct(share):>6}")
    lines += ["", "Reliability (score bin: calls, mean score, observed nuisance share):"]
    for name, cal in (("pre-queue", ev.pre_calibration), ("post-call", ev.post_calibration)):
        lines.append(f"  {name}: " + "; ".join(
            f"[{b.low:.1f},{b.high:.1f}) {b.calls} {b.mean_predicted:.2f}/{b.observed:.2f}"
            for b in cal.curve))
    d = ev.delays
    lines += [
        "",
        f"Genuine calls delayed by the pre-queue decision: {d.delayed} of {d.genuine_calls} "
        f"({_pct(d.share)}): {d.lowered} lower priority, {d.screened} screening prompt; "
        f"expected extra wait {d.mean_extra_seconds:.1f} s on average, {d.max_extra_seconds:.1f} s"
        " at most",
        "",
        f"  {'hard case':<18} {'genuine calls':>13} {'delayed':>8} {'mean extra s':>13}",
    ]
    for persona, summary in ev.hard_cases.items():
        lines.append(f"  {persona.value:<18} {summary.genuine_calls:>13} {summary.delayed:>8}"
                     f" {summary.mean_extra_seconds:>13.1f}")
    lines += ["", f"Against today's blocking rules (same corpus; score threshold "
                  f"{config.lower_priority_threshold:g}):", *comparison_table(ev)]
    lines += ["", "Examples (pre-queue score and the reasons the operator sees):"]
    for title, item in _examples(ev.scored):
        lines.append(f"  {title}: {item.pre.value:.2f} -> {item.decision.effect.value}, "
                     f"priority {item.decision.priority}")
        lines += [f"      {r.text} ({r.contribution:+.2f})" for r in item.pre.reasons]
    if timings is not None:
        lines += ["", f"Scoring speed (pure Python, one core): pre-queue {timings[0]:.1f} us, "
                      f"post-call {timings[1]:.1f} us per call"]
    return "\n".join(lines)


def comparison_table(ev: Evaluation) -> list[str]:
    """The score and the blocking rules side by side, as the README's Markdown table."""
    genuine = ev.comparison[0].genuine_callers
    lines = [
        f"| on seed {ev.corpus.seed} ({len(ev.corpus.calls)} calls, {genuine} genuine callers) "
        "| precision | recall | genuine callers delayed | screened | blocked |",
        "|---|---|---|---|---|---|",
    ]
    for index, rule in enumerate(ev.comparison):
        # Only the pre-queue decision delays or screens; the post-call score acts on nothing
        # (the call is over) and the rules only block.
        delayed, screened = "-", "-"
        if index == 0:
            delayed = (f"{rule.genuine_callers_delayed} "
                       f"({_pct(rule.genuine_callers_delayed / genuine)})")
            screened = (f"{rule.genuine_callers_screened} "
                        f"({_pct(rule.genuine_callers_screened / genuine)})")
        lines.append(
            f"| {rule.name} | {_pct(rule.precision)} | {_pct(rule.caught_share)} "
            f"({rule.nuisance_caught}/{rule.nuisance_calls}) | {delayed} | {screened} "
            f"| {rule.genuine_callers_blocked} |")
    return lines


def time_scoring(scored: Sequence[ScoredCall], config: ScoreConfig) -> tuple[float, float]:
    """Mean microseconds per pre-queue and per post-call score over the corpus' features."""
    features = [s.features for s in scored]
    calls = [(s.features, s.call.features) for s in scored]
    start = time.perf_counter()
    for f in features:
        pre_queue_score(f, config)
    middle = time.perf_counter()
    for f, c in calls:
        post_call_score(f, c, config)
    end = time.perf_counter()
    n = max(1, len(scored))
    return (middle - start) / n * 1e6, (end - middle) / n * 1e6


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m telephony.screening.evaluate``."""
    parser = argparse.ArgumentParser(
        prog="python -m telephony.screening.evaluate",
        description="Evaluate the prank-call screening score on a synthetic corpus.")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--callers", type=int, default=DEFAULT_CALLERS)
    parser.add_argument("--profile", choices=sorted(PROFILES), default=SEMARANG.name)
    parser.add_argument("--config", type=Path, help="a screening configuration (JSON)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, replay, and print the report."""
    args = build_parser().parse_args(argv)
    try:
        config = load_score_config(args.config) if args.config else ScoreConfig()
        corpus = generate_corpus(args.seed, args.callers, PROFILES[args.profile])
    except (ScoreConfigError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    evaluation = evaluate(corpus, config)
    print(render(evaluation, time_scoring(evaluation.scored, config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
