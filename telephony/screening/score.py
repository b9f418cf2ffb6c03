"""The screening score, its reasons, and what it may do to a call.

The score is a logistic model: a bias plus one log-odds contribution per feature, squashed into
[0, 1]. That shape keeps each contribution readable on its own, so the reasons an operator sees
are exactly the largest contributions, worded in Bahasa Indonesia ("7 panggilan dalam 1 jam
terakhir, 5 di antaranya diam"). Counts enter as ``log1p(count)``: the tenth silent call says
less than the second.

Two scores: :func:`pre_queue_score` from what is known when the IVR has chosen the route
(history, caller id, hour, and the caller's keys in the menu on this call), and
:func:`post_call_score`, which adds the call's own shape once it has ended.

Effects (:func:`decide`) are all reversible and none blocks: above one threshold the call joins
its queue with a lower priority, above a higher one it first hears a short screening prompt,
which a caller passes by pressing, by speaking, or by waiting. Emergency and 119 calls never go
below ``priority_floor``.

Weights and thresholds are a frozen :class:`ScoreConfig`, loadable from JSON and validated; the
scoring itself is pure Python and allocation-light (a call is scored in microseconds). The
features are named (weight, value) pairs (:func:`pre_queue_values`, :func:`call_values`) that
the fit in ``telephony.screening.calibrate`` reads too, so the shipped defaults are the logistic
regression's weights on the synthetic corpus, and each reason is one or two of its terms.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from telephony.calls.ids import CallerIdKind
from telephony.core.errors import SiagaError
from telephony.core.text import os_reason
from telephony.screening.features import DEFAULT_LOOKBACK, CallFeatures, PreQueueFeatures

# Calls that are never deprioritised below the floor: the 119 line, and whatever the IVR
# routed as an emergency (which includes every caller who pressed nothing on 112).
FLOOR_LINES = frozenset({"119"})
FLOOR_CATEGORIES = frozenset({"emergency"})

# The highest queue priority a configuration may give (asterisk-conf/extensions.conf): a caller
# an agency did not answer comes back from the transfer at 999, ahead of every caller waiting,
# and the dialplan takes IVR_PRIORITY only as 1-3 digits. A normal priority of 1000 put every
# new call ahead of those callers; a lowered one of 1000 or more was ignored, the call
# queued at the normal priority, and screening lowered nothing while the admin saw it
# published.
MAX_PRIORITY = 998

# Past this log-odds the score is 1 - 1e-13: keeps exp() finite and the score below 1, so a
# threshold of 1.0 disables an effect.
_MAX_LOG_ODDS = 30.0


class ScoreConfigError(SiagaError, ValueError):
    """A screening configuration is malformed or unsafe."""


@dataclass(frozen=True, slots=True)
class Weights:
    """Log-odds contribution per unit of each feature (the unit is in the comment).

    Weights named in :data:`LOWERING_WEIGHTS` speak for a genuine caller and must be <= 0; every
    other weight speaks against and must be >= 0, so a typo in an admin's file cannot turn a
    recent genuine call into a penalty. The defaults are fitted by logistic regression on the
    synthetic corpus (``python -m telephony.screening.calibrate``), with these signs imposed.
    """

    # History: counts per window, as log1p(count); the windows do not overlap (last hour, the
    # rest of the last day, the rest of the last week). Nuisance = silent, prank or accidental.
    calls_hour: float = 0.085
    nuisance_hour: float = 2.77
    calls_day: float = 0.0
    nuisance_day: float = 0.14
    calls_week: float = 0.0
    nuisance_week: float = 0.118
    # Whole-lookback evidence fades with the age of the caller's latest nuisance call:
    # each is multiplied by exp(-age / nuisance_recency_hours).
    prank_labels: float = 0.487  # log1p(calls labelled prank)
    accidental_labels: float = 0.0  # log1p(calls labelled accidental)
    nuisance_share: float = 6.563  # share of earlier calls that were nuisance calls
    genuine_labels: float = -3.488  # log1p(calls labelled genuine)
    recent_genuine: float = -1.218  # exp(-age / genuine_recency_hours) of the last genuine call
    # Caller id.
    withheld: float = 0.764
    malformed: float = 0.0
    simless: float = 0.639
    # The caller's keys in the menu on this call: known before the queue (the IVR asks for
    # the verdict once it has collected them), so part of the pre-queue score.
    no_input: float = 0.38  # no key at all: the menu gave up and routed to its default
    invalid_keys: float = 0.777  # log1p(invalid keys)
    # A choice from the menu: the first key after instant_key_seconds and within
    # prompt_key_seconds, and no wrong key. What a caller who listened to the options does.
    prompt_key: float = -2.46
    instant_key: float = 0.173  # the first key within instant_key_seconds: before any option
    # The call itself (post-call only).
    hung_up_in_ivr: float = 1.396
    hung_up_on_answer: float = 0.348
    silence: float = 5.947  # silence share above the baseline, scaled to [0, 1]
    conversation: float = -7.244  # log1p(speech seconds / conversation_seconds)
    short_talk: float = 2.245  # answered, the caller spoke and hung up within short_talk_seconds
    silent_call: float = 0.0  # nobody was heard from (``CallFeatures.looks_silent``)


LOWERING_WEIGHTS = frozenset({"genuine_labels", "recent_genuine", "prompt_key", "conversation"})
PRE_QUEUE_WEIGHTS: tuple[str, ...] = (
    "calls_hour", "nuisance_hour", "calls_day", "nuisance_day", "calls_week", "nuisance_week",
    "prank_labels", "accidental_labels", "nuisance_share", "genuine_labels", "recent_genuine",
    "withheld", "malformed", "simless", "no_input", "invalid_keys", "prompt_key", "instant_key",
)
CALL_WEIGHTS: tuple[str, ...] = (
    "hung_up_in_ivr", "hung_up_on_answer", "silence", "conversation", "short_talk", "silent_call",
)
# The reason each weight's contribution is shown under; a reason sums its weights.
REASON_OF: Mapping[str, str] = MappingProxyType({
    "calls_hour": "hour", "nuisance_hour": "hour", "calls_day": "day", "nuisance_day": "day",
    "calls_week": "week", "nuisance_week": "week",
    **{name: name for name in PRE_QUEUE_WEIGHTS[6:] + CALL_WEIGHTS},
})

# Log-odds by local hour (WIB), hour 0 first, fitted with the other weights (calibrate): on the
# corpus children's pranks cluster after school (13-20 WIB) and nights are mostly genuine
# emergencies. Bounded by the fit's L2 penalty; the hour alone never takes a first-time caller
# over a threshold (tested).
DEFAULT_HOUR_WEIGHTS: tuple[float, ...] = (
    -0.672, -0.62, -0.759, -0.862, -1.906, -0.279, -0.044, 0.054, -0.024, -0.131, -0.258,
    -0.004, 0.37, 0.629, 0.6, 0.649, 0.731, 0.673, 0.609, 0.55, 0.539, 0.509, 0.041, -0.394,
)


@dataclass(frozen=True)
class ScoreConfig:
    """Weights, thresholds and effects of the screening score. Build with :func:`load_score_config`
    or :meth:`from_mapping` to read an admin's JSON; construction validates.
    """

    bias: float = -1.016
    weights: Weights = field(default_factory=Weights)
    hour_weights: tuple[float, ...] = DEFAULT_HOUR_WEIGHTS  # indexed by local hour 0..23
    # Added to the pre-queue log-odds with the call's own terms: the post-call score is the
    # pre-queue score updated by what the call itself showed.
    post_call_bias: float = 0.889
    genuine_recency_hours: float = 24.0
    nuisance_recency_hours: float = 168.0
    short_talk_seconds: float = 30.0
    share_min_calls: int = 3  # the share term reaches full weight at this many earlier calls
    # The greeting (2.4 s for "Layanan darurat satu satu dua."): a first key this soon came
    # before any option was announced, so it was not a choice from the menu.
    instant_key_seconds: float = 2.5
    # The greeting and the main menu's options (12.8 s) and a little more: a first key by then
    # answered the menu.
    prompt_key_seconds: float = 15.0
    conversation_seconds: float = 60.0
    silence_baseline: float = 0.5  # a normal two-party recording is about this silent
    reason_min_contribution: float = 0.25
    max_reasons: int = 4
    # Effects. A score at or above a threshold takes its effect; 1.0 disables it.
    # Chosen on the fitting corpora (never the held-out seed; ``calibrate.pick_threshold``):
    # lowering and "likely nuisance" after the call are the lowest thresholds on a 0.01 grid
    # with precision >= 0.975 on every fitting corpus. The prompt is kept for more than one
    # earlier nuisance call: one silent call within the hour scores at most about 0.994 (with
    # wrong keys, a SIM-less phone, after school) and only lowers; two score 0.998 and more.
    # Well under 1% of genuine callers ever hear it.
    lower_priority_threshold: float = 0.62
    screening_threshold: float = 0.995
    # A post-call score at or above this marks the ended call as a likely nuisance call (the
    # evaluation's "after the call"; no effect on the call, which is over).
    post_call_threshold: float = 0.76
    # Asterisk queue priorities: a higher number is answered first.
    normal_priority: int = 10
    lowered_priority: int = 0
    priority_floor: int = 5
    # Estimates for the evaluation: what screening and a lowered priority cost a caller.
    screening_prompt_seconds: float = 6.0  # prompt + pressing 5 twice
    screening_timeout_seconds: float = 10.0  # a caller who neither presses nor speaks
    lowered_priority_delay_seconds: float = 30.0  # extra queue wait at lowered_priority

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ScoreConfigError(f"{f.name} harus bilangan yang terhingga")
        for f in dataclasses.fields(self.weights):
            value = getattr(self.weights, f.name)
            if not math.isfinite(value):
                raise ScoreConfigError(f"weights.{f.name} harus bilangan yang terhingga")
            if f.name in LOWERING_WEIGHTS and value > 0:
                raise ScoreConfigError(f"weights.{f.name} membela penelepon: harus <= 0")
            if f.name not in LOWERING_WEIGHTS and value < 0:
                raise ScoreConfigError(f"weights.{f.name} harus >= 0")
        if len(self.hour_weights) != 24 or not all(math.isfinite(w) for w in self.hour_weights):
            raise ScoreConfigError("hour_weights harus 24 bilangan terhingga, mulai jam 0")
        if not 0 < self.lower_priority_threshold <= self.screening_threshold <= 1:
            raise ScoreConfigError(
                "ambang harus memenuhi 0 < lower_priority_threshold <= screening_threshold <= 1"
            )
        if not 0 < self.post_call_threshold <= 1:
            raise ScoreConfigError("post_call_threshold harus dalam (0, 1]")
        if not 0 <= self.lowered_priority <= self.priority_floor <= self.normal_priority:
            raise ScoreConfigError(
                "prioritas harus memenuhi "
                "0 <= lowered_priority <= priority_floor <= normal_priority"
            )
        if self.normal_priority > MAX_PRIORITY:
            raise ScoreConfigError(
                f"normal_priority paling tinggi {MAX_PRIORITY}: prioritas {MAX_PRIORITY + 1} "
                "untuk penelepon yang kembali dari transfer, di depan semua yang menunggu"
            )
        positive = ("genuine_recency_hours", "nuisance_recency_hours", "conversation_seconds",
                    "short_talk_seconds", "share_min_calls", "max_reasons")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ScoreConfigError(f"{name} harus > 0")
        non_negative = ("prompt_key_seconds", "instant_key_seconds", "reason_min_contribution",
                        "screening_prompt_seconds", "screening_timeout_seconds",
                        "lowered_priority_delay_seconds")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ScoreConfigError(f"{name} harus >= 0")
        if not 0 <= self.silence_baseline < 1:
            raise ScoreConfigError("silence_baseline harus dalam [0, 1)")

    @classmethod
    def from_mapping(cls, raw: Any) -> ScoreConfig:
        """Defaults overridden by ``raw`` (decoded JSON); unknown or mistyped keys are refused.

        ``weights`` may name only the weights it changes; ``hour_weights`` is all 24 hours.
        """
        if not isinstance(raw, dict):
            raise ScoreConfigError("konfigurasi penyaringan harus objek JSON")
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in known:
                raise ScoreConfigError(f"pengaturan tidak dikenal: {name!r}")
            if name == "weights":
                values[name] = _weights_from(value)
            elif name == "hour_weights":
                if not isinstance(value, list):
                    raise ScoreConfigError("hour_weights harus daftar 24 bilangan")
                values[name] = tuple(_number(f"hour_weights[{i}]", v) for i, v in enumerate(value))
            elif known[name].type == "int":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ScoreConfigError(f"{name} harus bilangan bulat")
                values[name] = value
            else:
                values[name] = _number(name, value)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ScoreConfig:
        """Parse a JSON document; see :meth:`from_mapping`."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScoreConfigError(f"bukan JSON: {exc}") from exc
        return cls.from_mapping(raw)


def _number(name: str, value: Any) -> float:
    # bool is an int to Python; "true" must not pass for a weight of 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoreConfigError(f"{name} harus bilangan")
    return float(value)


def _weights_from(raw: Any) -> Weights:
    if not isinstance(raw, dict):
        raise ScoreConfigError("weights harus objek nama: bilangan")
    names = {f.name for f in dataclasses.fields(Weights)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ScoreConfigError(f"bobot tidak dikenal: {', '.join(unknown)}")
    return Weights(**{name: _number(f"weights.{name}", v) for name, v in raw.items()})


def load_score_config(path: Path) -> ScoreConfig:
    """Read an admin's screening configuration file (JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoreConfigError(f"{path} tidak dapat dibaca: {os_reason(exc)}") from exc
    return ScoreConfig.from_json(text)


@dataclass(frozen=True, slots=True)
class Reason:
    """One contribution to the score, in words an operator understands.

    ``contribution`` is in log-odds: positive raised the score, negative lowered it.
    """

    code: str
    text: str
    contribution: float


@dataclass(frozen=True, slots=True)
class Score:
    """A score in [0, 1] (higher: more likely prank or silent) and its main reasons."""

    value: float
    reasons: tuple[Reason, ...]


def _duration(seconds: float) -> str:
    """A rounded duration in Bahasa Indonesia: "40 detik", "15 menit", "3 jam", "2 hari"."""
    if seconds < 60:
        return f"{max(1, round(seconds))} detik"
    if seconds < 3600:
        return f"{round(seconds / 60)} menit"
    if seconds < 86400:
        return f"{round(seconds / 3600)} jam"
    return f"{round(seconds / 86400)} hari"


def _calls_text(calls: int, kinds: tuple[int, int, int, int], window: str) -> str:
    """"N panggilan dalam <window> terakhir", and how many of them were nuisance calls of which
    kinds; ``kinds`` is (silent, prank, accidental, suspected)."""
    text = f"{calls} panggilan dalam {window} terakhir"
    words = [word for count, word in zip(
        kinds, ("diam", "iseng", "tidak sengaja", "diduga iseng"), strict=True) if count]
    if not words:
        return text
    if words == ["tidak sengaja"]:
        words = ["tidak sengaja (terpencet)"]
    named = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} atau {words[-1]}"
    return f"{text}, {sum(kinds)} di antaranya {named}"


def _reason_text(code: str, pre: PreQueueFeatures, call: CallFeatures | None,
                 config: ScoreConfig) -> str:
    """The operator's wording of one contribution (only built for the reasons shown)."""
    h = pre.history
    match code:
        case "hour":
            return _calls_text(h.calls_last_hour, (h.silent_last_hour, h.prank_last_hour,
                               h.accidental_last_hour, h.suspected_last_hour), "1 jam")
        case "day":
            return _calls_text(h.calls_last_day, (h.silent_last_day, h.prank_last_day,
                               h.accidental_last_day, h.suspected_last_day), "24 jam")
        case "week":
            return _calls_text(h.calls_last_week, (h.silent_last_week, h.prank_last_week,
                               h.accidental_last_week, h.suspected_last_week), "7 hari")
        case "prank_labels":
            return (f"{h.prank_calls} panggilan sebelumnya ditandai iseng oleh operator"
                    f"{_last_nuisance(h.seconds_since_last_nuisance)}")
        case "accidental_labels":
            return (f"{h.accidental_calls} panggilan sebelumnya ditandai tidak sengaja "
                    f"(terpencet) oleh operator{_last_nuisance(h.seconds_since_last_nuisance)}")
        case "nuisance_share":
            share = round(100 * h.nuisance_share)
            kinds = "diam atau iseng"
            if h.accidental_calls or h.suspected_calls:
                kinds = "diam, iseng, tidak sengaja atau diduga iseng"
            return f"{share}% dari {h.calls} panggilan sebelumnya {kinds}"
        case "genuine_labels":
            return f"{h.genuine_calls} panggilan sebelumnya ditandai asli oleh operator"
        case "recent_genuine":
            assert h.seconds_since_last_genuine is not None
            return f"Panggilan asli terakhir {_duration(h.seconds_since_last_genuine)} lalu"
        case "withheld":
            return "Nomor disembunyikan, riwayat tidak dapat diperiksa"
        case "malformed":
            return "Nomor penelepon tidak valid, riwayat tidak dapat diperiksa"
        case "simless":
            return "Ponsel tanpa kartu SIM (nomor IMEI)"
        case "hour_of_day":
            span = f"Pukul {pre.hour:02d}.00-{(pre.hour + 1) % 24:02d}.00"
            if config.hour_weights[pre.hour] > 0:
                return f"{span}: jam ramai panggilan iseng"
            return f"{span}: jam sepi panggilan iseng"
        case "first_time":
            # Within the line's lookback only (the service's, DEFAULT_LOOKBACK): the operator
            # screen lists the caller's earlier calls however old, and "no earlier call" beside
            # last spring's calls read as a wrong reason.
            return (f"Belum ada panggilan dari nomor ini dalam {DEFAULT_LOOKBACK.days} "
                    "hari terakhir")
    menu = pre.menu
    match code:
        case "no_input":
            return "Tidak menekan tombol apa pun di menu"
        case "invalid_keys":
            assert menu is not None
            return f"{menu.invalid_keys} kali menekan tombol yang salah di menu"
        case "prompt_key":
            assert menu is not None and menu.first_key_seconds is not None
            return ("Memilih dari menu setelah mendengarkan pilihan "
                    f"({_duration(menu.first_key_seconds)})")
        case "instant_key":
            assert menu is not None and menu.first_key_seconds is not None
            return (f"Menekan tombol {_duration(menu.first_key_seconds)} setelah tersambung, "
                    "sebelum pilihan menu dibacakan")
    assert call is not None, code
    shape = call.shape
    match code:
        case "hung_up_in_ivr":
            return "Menutup telepon sebelum tersambung ke operator"
        case "hung_up_on_answer":
            assert shape.talk_seconds is not None
            return f"Menutup telepon {_duration(shape.talk_seconds)} setelah dijawab operator"
        case "silence":
            assert shape.silence_share is not None
            return f"Rekaman {round(100 * shape.silence_share)}% hening"
        case "conversation":
            assert shape.talk_seconds is not None
            return f"Berbicara {_duration(shape.talk_seconds)} dengan operator"
        case "short_talk":
            assert shape.talk_seconds is not None
            return (f"Percakapan singkat: menutup telepon {_duration(shape.talk_seconds)} "
                    "setelah dijawab operator")
        case "silent_call":
            return "Tidak ada suara maupun tombol dari penelepon"
    raise AssertionError(f"no wording for reason {code!r}")


def _last_nuisance(seconds: float | None) -> str:
    return "" if seconds is None else f", gangguan terakhir {_duration(seconds)} lalu"


Values = list[tuple[str, float]]


def pre_queue_values(pre: PreQueueFeatures, config: ScoreConfig) -> Values:
    """The (weight name, feature value) pairs of the history, the caller id and the caller's
    keys in the menu (``pre.menu``, when known; a hang-up in the IVR is not read); the pre-queue
    log-odds are ``bias + hour_weights[hour] + sum(weight * value)``. The fit
    (``telephony.screening.calibrate``) reads the same values, so fit and score cannot drift."""
    values: Values = []
    h = pre.history
    log1p = math.log1p
    if h.calls:
        hour_nuisance = h.nuisance_last_hour
        day_nuisance = h.nuisance_last_day
        week_nuisance = h.nuisance_last_week
        values += [
            ("calls_hour", log1p(h.calls_last_hour)),
            ("nuisance_hour", log1p(hour_nuisance)),
            ("calls_day", log1p(h.calls_last_day - h.calls_last_hour)),
            ("nuisance_day", log1p(day_nuisance - hour_nuisance)),
            ("calls_week", log1p(h.calls_last_week - h.calls_last_day)),
            ("nuisance_week", log1p(week_nuisance - day_nuisance)),
        ]
        if h.nuisance_calls:
            age = h.seconds_since_last_nuisance or 0.0
            fade = math.exp(-age / (3600 * config.nuisance_recency_hours))
            ramp = min(1.0, h.calls / config.share_min_calls)
            values += [
                ("prank_labels", log1p(h.prank_calls) * fade),
                ("accidental_labels", log1p(h.accidental_calls) * fade),
                ("nuisance_share", h.nuisance_share * ramp * fade),
            ]
        values.append(("genuine_labels", log1p(h.genuine_calls)))
        if h.seconds_since_last_genuine is not None:
            decay = math.exp(-h.seconds_since_last_genuine / (3600 * config.genuine_recency_hours))
            values.append(("recent_genuine", decay))
    kind = pre.caller.kind
    if kind is CallerIdKind.WITHHELD:
        values.append(("withheld", 1.0))
    elif kind is CallerIdKind.MALFORMED:
        values.append(("malformed", 1.0))
    elif kind is CallerIdKind.SIMLESS:
        values.append(("simless", 1.0))
    menu = pre.menu
    if menu is not None:
        if menu.no_input:
            values.append(("no_input", 1.0))
        if menu.invalid_keys:
            values.append(("invalid_keys", math.log1p(menu.invalid_keys)))
        first = menu.first_key_seconds
        if first is not None and first <= config.instant_key_seconds:
            values.append(("instant_key", 1.0))
        elif first is not None and first <= config.prompt_key_seconds and not menu.invalid_keys:
            values.append(("prompt_key", 1.0))
    return values


def call_values(call: CallFeatures, config: ScoreConfig) -> Values:
    """The (weight name, feature value) pairs of the call's own shape; the post-call log-odds
    add ``post_call_bias + sum(weight * value)`` to the pre-queue log-odds (whose menu terms
    are the call's keys, see :func:`post_call_score`)."""
    values: Values = []
    ivr, shape = call.ivr, call.shape
    if ivr.hung_up_in_ivr:
        values.append(("hung_up_in_ivr", 1.0))
    if shape.hung_up_on_answer:
        values.append(("hung_up_on_answer", 1.0))
    elif shape.talk_seconds is not None:
        # Speech, not line time: an operator saying "halo?" to silence for a minute is not a
        # conversation.
        silence = shape.silence_share if shape.silence_share is not None else 0.0
        speech = shape.talk_seconds * (1.0 - silence)
        values.append(("conversation", math.log1p(speech / config.conversation_seconds)))
        # Short but not a hang-up on answer: a giggle, a made-up address, "maaf, kepencet".
        if shape.caller_ended and shape.talk_seconds <= config.short_talk_seconds:
            values.append(("short_talk", 1.0))
    if shape.silence_share is not None:
        excess = (shape.silence_share - config.silence_baseline) / (1 - config.silence_baseline)
        if excess > 0:
            values.append(("silence", excess))
    if call.looks_silent:
        values.append(("silent_call", 1.0))
    return values


def _terms(values: Values, config: ScoreConfig, terms: dict[str, float]) -> None:
    """Add each value's contribution to its reason's total in ``terms``."""
    weights = config.weights
    for name, value in values:
        code = REASON_OF[name]
        contribution = getattr(weights, name) * value
        # An admin's extreme but valid file (a weight of 1e308, a conversation_seconds of
        # 1e-300) can overflow a term to infinity, and opposite infinities sum to NaN: the score
        # would read NaN as "certain prank", and an infinite contribution is no JSON the
        # post-call store accepts. Each term is capped at the log-odds the score saturates at
        # anyway; a weight of 0 times an infinite value weighs nothing.
        if math.isnan(contribution):
            contribution = 0.0
        contribution = max(-_MAX_LOG_ODDS, min(_MAX_LOG_ODDS, contribution))
        terms[code] = terms.get(code, 0.0) + contribution


def _finish(log_odds: float, terms: dict[str, float], pre: PreQueueFeatures,
            call: CallFeatures | None, config: ScoreConfig) -> Score:
    for contribution in terms.values():
        log_odds += contribution
    log_odds = max(-_MAX_LOG_ODDS, min(_MAX_LOG_ODDS, log_odds))
    value = 1.0 / (1.0 + math.exp(-log_odds))
    minimum = config.reason_min_contribution
    shown = sorted((t for t in terms.items() if abs(t[1]) >= minimum and t[1] != 0.0),
                   key=lambda t: -abs(t[1]))[: config.max_reasons]
    reasons = [Reason(code, _reason_text(code, pre, call, config), c) for code, c in shown]
    # A low score needs a reason too: say there is nothing on record.
    if pre.history.first_time and pre.caller.key is not None and len(reasons) < config.max_reasons:
        reasons.append(Reason("first_time", _reason_text("first_time", pre, call, config), 0.0))
    return Score(value, tuple(reasons))


def _pre_terms(pre: PreQueueFeatures, config: ScoreConfig) -> dict[str, float]:
    terms: dict[str, float] = {}
    _terms(pre_queue_values(pre, config), config, terms)
    terms["hour_of_day"] = config.hour_weights[pre.hour]
    return terms


def pre_queue_score(pre: PreQueueFeatures, config: ScoreConfig) -> Score:
    """The score before queueing, from history, caller id, hour and the keys in the menu."""
    return _finish(config.bias, _pre_terms(pre, config), pre, None, config)


def post_call_score(pre: PreQueueFeatures, call: CallFeatures, config: ScoreConfig) -> Score:
    """The score after the call: the pre-queue features, with the menu as the call used it
    (``call.ivr``, whatever ``pre.menu`` holds), plus the call's own shape."""
    pre = dataclasses.replace(pre, menu=call.ivr)
    terms = _pre_terms(pre, config)
    _terms(call_values(call, config), config, terms)
    return _finish(config.bias + config.post_call_bias, terms, pre, call, config)


class Effect(StrEnum):
    """What the score does to a call. There is deliberately no "block"."""

    NONE = "none"
    LOWER_PRIORITY = "lower_priority"
    SCREENING_PROMPT = "screening_prompt"  # and, once passed, the lowered priority


@dataclass(frozen=True, slots=True)
class Decision:
    """The effect on one call and the queue priority it joins with."""

    effect: Effect
    priority: int
    score: Score


def decide(score: Score, line: str, category: str, config: ScoreConfig) -> Decision:
    """Choose the effect of ``score`` for a call on ``line`` routed to ``category``.

    A caller who passes the screening prompt still joins with the lowered priority: pressing
    5 twice shows a live caller, not a genuine one. Emergency and 119 calls keep at least
    ``priority_floor``.
    """
    if score.value >= config.screening_threshold:
        effect = Effect.SCREENING_PROMPT
    elif score.value >= config.lower_priority_threshold:
        effect = Effect.LOWER_PRIORITY
    else:
        return Decision(Effect.NONE, config.normal_priority, score)
    priority = config.lowered_priority
    if line in FLOOR_LINES or category in FLOOR_CATEGORIES:
        priority = max(priority, config.priority_floor)
    return Decision(effect, priority, score)


def expected_delay_seconds(decision: Decision, config: ScoreConfig, *,
                           caller_presses: bool = True) -> float:
    """Estimated extra seconds before an operator answers, caused by ``decision``.

    A lowered priority costs ``lowered_priority_delay_seconds`` at ``lowered_priority``, scaled
    linearly by how far the priority actually dropped (a call held at the floor loses less).
    The screening prompt costs its own length, or its timeout for a caller who does not press.
    """
    if decision.effect is Effect.NONE:
        return 0.0
    drop = config.normal_priority - decision.priority
    span = config.normal_priority - config.lowered_priority
    delay = config.lowered_priority_delay_seconds * drop / span if span else 0.0
    if decision.effect is Effect.SCREENING_PROMPT:
        delay += (config.screening_prompt_seconds if caller_presses
                  else config.screening_timeout_seconds)
    return delay
