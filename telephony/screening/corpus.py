"""A seeded generator of labelled synthetic call histories, for measuring the screening score.

Published figures the corpus is built from
==========================================

- Jakarta 2024: 144,863 of 637,292 calls were pranks, 22.7 %.
- Semarang 2025: 38.6 % of 22,021 calls were prank or ghost (silent) calls.
- Purworejo: of 2,802 calls, 1,147 prank (40.9 %), 1,170 ghost (41.8 %), 30 genuine (1.1 %);
  the other 455 (16.2 %) are not itemised.
- Gresik: mostly silent calls; many numbers called more than 10 times; mostly children.

How the parameters follow from them
===================================

Class shares of calls (:class:`CorpusProfile`). The default profile is Semarang's: the most
recent figure, from a mid-sized centre, and between Jakarta (prank alone) and Purworejo (a small
regency where nuisance calls swamp everything). Semarang gives only prank + ghost together, so
it is split as Purworejo splits it: 1,147 : 1,170, i.e. 49.5 % prank. That yields 19.1 % prank
and 19.5 % silent calls; the 19.1 % prank share sits just under Jakarta's 22.7 %, a consistency
check. No centre itemises accidental (pocket dials that speak) or test calls; 5 % and 1 % are
assumptions, kept small. Genuine calls (emergencies and real requests) are the remaining
55.4 %. The ``purworejo`` profile is the stress case: 40.9 % prank, 41.8 % silent, and its
unitemised 16.2 % split as 8 % accidental, 2 % test and 6.2 % genuine non-emergency requests on
top of the 1.1 % genuine emergencies (7.3 % genuine).

Repeat callers (Gresik). Nuisance calls concentrate on few numbers: :data:`REPEAT_SHARE` = 75 %
of prank and silent calls come from numbers that call repeatedly, each making 2 + a geometric
number of calls (mean 12, :data:`REPEAT_MEAN_CALLS`), so about 40 % of those numbers pass 10
calls, "many numbers calling more than 10 times". They call in bursts (2-6 calls for a child
prankster, 3-10 for a silent number, minutes apart) because that is how a child with a phone,
or a phone in a pocket, produces ten calls. Repeat pranksters are children (Gresik): 85 % of
their calls are pranks, 15 % giggling silence. Silent repeat numbers are 100 % silent. 5 % of
nuisance calls come from SIM-less handsets (old phones given to children as toys), half prank,
half silent. The remaining 25 % are one-off pranks and one-off pocket dials.

Issue 14 added the cases the first score missed (assumptions, no published figure): a third of
the one-off nuisance numbers call again (:data:`SECOND_CALL_SHARE`: 2-3 calls, within the hour
or within the day: a child who got an answer tries again); half of the accidental calls come
from phones that pocket-dial in bursts (:data:`POCKET_BURST_SHARE`: 2-4 calls minutes apart, in
1-3 sessions over the month, labelled accidental); the family phone's parent calls hours
(40 %) or days after the child's pranks, and rings back once about the same fire half the time;
a SIM-less caller's id arrives as ``IMEI`` + digits as well as bare or as a URN; and 40 % of the
pranks an operator answers talk for 10-25 s before the child hangs up.

Time of day (assumption, no published figure): genuine emergencies follow daytime activity with
a night trough; children's pranks peak after school, 13-20 WIB; silent calls follow phone use.

The call's behaviour per class (IVR keys, hang-ups, talk time, recording silence) and operator
labelling are assumptions too, stated where they are drawn; the field reports
(/work/shared/context: Pekalongan names prank calls as a problem) give no figure for them.
The keys are timed against the real 112 menu (:data:`GREETING_SECONDS`, :data:`OPTION_SECONDS`):
a caller who listens presses after hearing their option (an emergency at 4.5 s at the
earliest); a key during the greeting (before 2.4 s) was not a choice from the menu.

- Genuine: 2% hang up in the menu; :data:`GENUINE_NO_KEY_SHARE` = 10% press nothing (and
  every elderly caller), so about 13% of genuine calls on 112 reach the default route without
  a key; the others press after their option with a reaction time of median 1.5 s, except
  3% who press during the greeting on a first call and 40% on a follow-up (they know the menu);
  7% press a wrong key, a fifth of those twice. A fire report (the callback and family cases)
  behaves the same way.
- Prank (a child): 15% hang up in the menu; 25% press nothing and wait for a human to prank;
  60% press, half of them during the greeting (mashing keys, or a menu they know from earlier
  pranks), half after an option; 45% of those pressing hit wrong keys (1-3).
- Silent (nobody on the line: a pocket, a phone put down): 35% hang up or drop in the menu,
  50% press nothing, 15% press random keys at random moments (a pocket; valid or not).
- Accidental (a pocket dial whose owner notices): 35% hang up in the menu, 45% press nothing
  (the owner notices when the operator speaks), 20% random pocket keys.
- Test calls press after the information option.

Silent callers are silent on the recording; pranksters talk briefly; genuine callers talk for
minutes. Operators label 85 % of answered
calls (60 % of answered silent calls); :data:`LABEL_ERROR_RATE` = 5 % of labels are wrong, and
half of the wrong ones are corrected 2-72 hours later.

Hard cases a naive rule gets wrong, each a share of genuine calls (:data:`HARD_CASE_SHARES`),
enough for dozens of each in the default corpus: a caller who calls back four times within
twenty minutes about one fire; a chronic patient calling 119 every week; an elderly caller who
presses nothing; a genuine call from a SIM-less phone; a family phone a child used for 3-6
pranks, followed 6-10 days later by a parent's real emergency. Wrong labels come from the label
noise above. A few callers hide their number or present a malformed one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from telephony.calls.ids import CallerId, luhn_valid, parse_caller_id
from telephony.screening.features import (
    TARGET,
    CallFeatures,
    CallShape,
    IvrBehaviour,
    Label,
    LabelEvent,
)

DEFAULT_SEED = 112
# The weights are fitted on these seeds (``telephony.screening.calibrate``); the held-out seed is
# never fitted on, and the shipped configuration is judged on it.
FIT_SEEDS = (112, 113, 114)
HELD_OUT_SEED = 1414
DEFAULT_CALLERS = 5000
# A Monday at midnight, Jakarta time: the corpus window starts here.
START = datetime(2025, 3, 3, tzinfo=ZoneInfo("Asia/Jakarta"))

REPEAT_SHARE = 0.75
REPEAT_MEAN_CALLS = 12.0  # 2 + geometric with mean 10
SIMLESS_NUISANCE_SHARE = 0.05
PRANKSTER_PRANK_SHARE = 0.85
SIMLESS_NUISANCE_PRANK_SHARE = 0.5
SECOND_CALL_SHARE = 1 / 3
SECOND_CALL_MEAN_CALLS = 2.5
POCKET_BURST_SHARE = 0.5
POCKET_MEAN_CALLS = 6.0  # 1-3 sessions of 2-4 calls
FAMILY_MEAN_CALLS = 1.5  # the parent's report, and half the time one call back
LABEL_ERROR_RATE = 0.05
LABEL_CORRECTION_RATE = 0.5

# The 112 menu as callers hear it (ivr/menu.json, prompts as generated by espeak-ng): the
# greeting "Layanan darurat satu satu dua." takes 2.4 s, then menu-utama names its 5 options
# in 10.4 s (about 2.1 s each: "Darurat, tekan satu" ends 4.5 s after the answer), then waits
# 5 s for a key; with no key at all it routes to the emergency default about 18 s in.
GREETING_SECONDS = 2.4
OPTION_SECONDS = 2.1
NO_KEY_SECONDS = GREETING_SECONDS + 10.4 + 5.0
# The option a caller waits for, by route category (its place in menu-utama).
OPTION_INDEX: Mapping[str, int] = MappingProxyType(
    {"emergency": 0, "complaint": 1, "information": 2})
# Genuine callers (other than the elderly persona, who never press) who press nothing at all:
# panic, a smartphone that hides the keypad during a call, or expecting a human on an emergency
# number. No published figure; chosen on the high side so that "no key" cannot stand for
# "nuisance" on its own (with the elderly, about 13% of genuine calls on 112 press nothing).
GENUINE_NO_KEY_SHARE = 0.10
# A genuine caller's first key before any option was announced: someone who knows "satu for
# darurat" from a poster (first call), or from calling the line before (a follow-up).
GENUINE_INSTANT_SHARE = 0.03
GENUINE_KNOWN_MENU_INSTANT_SHARE = 0.4


class Persona(StrEnum):
    """Who is behind a number, and so how it calls."""

    GENUINE = "genuine"  # one incident; sometimes a follow-up or a second incident
    CALLBACK = "callback"  # calls back four times in twenty minutes about one fire
    CHRONIC = "chronic"  # chronic patient calling 119 every week
    ELDERLY = "elderly"  # genuine, presses nothing
    SIMLESS_GENUINE = "simless_genuine"  # genuine call from a phone without SIM
    FAMILY = "family"  # a child's pranks last week, a parent's emergency now
    ACCIDENTAL = "accidental"  # a pocket dial that speaks: "maaf, kepencet"
    TESTER = "tester"  # "is 112 working?"
    PRANK_ONCE = "prank_once"
    SILENT_ONCE = "silent_once"  # a pocket dial, sometimes twice in a row
    SECOND_CALL = "second_call"  # a prank or silent number calling 2-3 times in an hour or a day
    POCKET = "pocket"  # a phone that pocket-dials in bursts, labelled accidental
    PRANKSTER = "prankster"  # a child calling again and again
    GHOST = "ghost"  # a number making silent call after silent call
    SIMLESS_NUISANCE = "simless_nuisance"  # a SIM-less handset used as a toy


HARD_CASES = frozenset({Persona.CALLBACK, Persona.CHRONIC, Persona.ELDERLY,
                        Persona.SIMLESS_GENUINE, Persona.FAMILY})
HARD_CASE_SHARES: Mapping[Persona, float] = MappingProxyType({
    Persona.CALLBACK: 0.05,
    Persona.CHRONIC: 0.05,
    Persona.ELDERLY: 0.05,
    Persona.SIMLESS_GENUINE: 0.01,
    Persona.FAMILY: 0.01,
})

# Relative call volume by local hour (WIB), hour 0 first.
GENUINE_HOURS = (2, 1.5, 1, 1, 1, 1.5, 3, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 4, 3, 2.5)
CHILD_HOURS = (0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 6, 6, 5, 4, 2,
               1, 0.5)
PHONE_HOURS = (1, 0.5, 0.3, 0.3, 0.3, 1, 3, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 3, 2)

# What operators confuse a call of each class with, when they get it wrong.
_CONFUSIONS: Mapping[Label, tuple[Label, ...]] = MappingProxyType({
    Label.GENUINE: (Label.PRANK, Label.PRANK, Label.TEST, Label.ACCIDENTAL),
    Label.PRANK: (Label.GENUINE, Label.SILENT),
    Label.SILENT: (Label.ACCIDENTAL, Label.PRANK),
    Label.ACCIDENTAL: (Label.SILENT, Label.PRANK),
    Label.TEST: (Label.PRANK, Label.GENUINE),
})

_MOBILE_PREFIXES = ("11", "12", "13", "21", "22", "23", "52", "53", "14", "15", "16", "55", "56",
                    "57", "58", "17", "18", "19", "59", "77", "78", "31", "32", "33", "38", "81",
                    "82", "83", "85", "87", "88", "89", "95", "96", "97", "98", "99")
_WITHHELD_RAW = ("", "anonymous", "Restricted", "unknown")
_MALFORMED_RAW = ("0", "12345", "08123", "62abc", "+", "9999999999999999999")


@dataclass(frozen=True)
class CorpusProfile:
    """Shares of calls by true class; genuine is the rest."""

    name: str
    source: str
    prank_share: float
    silent_share: float
    accidental_share: float
    test_share: float
    days: int = 28

    def __post_init__(self) -> None:
        shares = (self.prank_share, self.silent_share, self.accidental_share, self.test_share)
        if min(shares) < 0 or sum(shares) >= 1:
            raise ValueError("class shares must be >= 0 and leave room for genuine calls")
        if self.days < 14:
            raise ValueError("the family case needs at least 14 days")

    @property
    def genuine_share(self) -> float:
        """Share of genuine calls: whatever the other classes leave."""
        return 1 - self.prank_share - self.silent_share - self.accidental_share - self.test_share

    def target(self, label: Label) -> float:
        """The target share of calls of class ``label``."""
        return {
            Label.GENUINE: self.genuine_share,
            Label.PRANK: self.prank_share,
            Label.SILENT: self.silent_share,
            Label.ACCIDENTAL: self.accidental_share,
            Label.TEST: self.test_share,
        }[label]


_PURWOREJO_PRANK_OF_NUISANCE = 1147 / (1147 + 1170)

SEMARANG = CorpusProfile(
    name="semarang",
    source="Semarang 2025: 38.6% prank or ghost, split as Purworejo's 1,147 : 1,170",
    prank_share=0.386 * _PURWOREJO_PRANK_OF_NUISANCE,
    silent_share=0.386 * (1 - _PURWOREJO_PRANK_OF_NUISANCE),
    accidental_share=0.05,
    test_share=0.01,
)
PURWOREJO = CorpusProfile(
    name="purworejo",
    source="Purworejo: 1,147 prank + 1,170 ghost vs 30 genuine of 2,802 calls",
    prank_share=1147 / 2802,
    silent_share=1170 / 2802,
    accidental_share=0.08,
    test_share=0.02,
)
PROFILES: Mapping[str, CorpusProfile] = MappingProxyType({p.name: p for p in (SEMARANG,
                                                                               PURWOREJO)})


@dataclass(frozen=True, slots=True)
class CorpusCall:
    """One synthetic call: who made it, what it truly was, and what the line observed."""

    call_id: str
    caller: CallerId
    persona: Persona
    truth: Label
    at: datetime
    line: str
    category: str  # the IVR's route category: emergency, complaint, information
    features: CallFeatures
    labels: tuple[LabelEvent, ...] = ()  # operator labels and corrections, in time order

    @property
    def nuisance(self) -> bool:
        """The call was truly a prank, a silent call or a pocket dial: what screening targets."""
        return self.truth in TARGET

    @property
    def ended_at(self) -> datetime:
        """When the call ended."""
        return self.at + timedelta(seconds=self.features.shape.duration_seconds)


CallerCalls = tuple[CorpusCall, ...]
# A call before it is placed on the caller's timeline: arrival, class, line, features, category.
Planned = tuple[datetime, Label, str, CallFeatures, str]


@dataclass(frozen=True)
class Corpus:
    """A generated corpus: its seed, profile, callers per persona, and calls by arrival."""

    seed: int
    profile: CorpusProfile
    callers: Mapping[Persona, int]
    calls: tuple[CorpusCall, ...] = field(repr=False)


def class_shares(calls: Sequence[CorpusCall]) -> dict[Label, float]:
    """The realised share of calls per true class."""
    counts = dict.fromkeys(Label, 0)
    for call in calls:
        counts[call.truth] += 1
    total = max(1, len(calls))
    return {label: n / total for label, n in counts.items()}


def plan_callers(profile: CorpusProfile, callers: int) -> dict[Persona, int]:
    """How many callers of each persona make the profile's class shares come out, in expectation.

    Works in calls per unit of total calls, then divides by each persona's mean calls.
    """
    g, p, s = profile.genuine_share, profile.prank_share, profile.silent_share
    chronic_calls = profile.days // 7
    per_call: dict[Persona, float] = {}  # callers per unit of total calls
    genuine_mean = {Persona.CALLBACK: 5.0, Persona.CHRONIC: float(chronic_calls),
                    Persona.ELDERLY: 1.3, Persona.SIMLESS_GENUINE: 1.0,
                    Persona.FAMILY: FAMILY_MEAN_CALLS}
    for persona, share in HARD_CASE_SHARES.items():
        per_call[persona] = share * g / genuine_mean[persona]
    per_call[Persona.GENUINE] = (1 - sum(HARD_CASE_SHARES.values())) * g / 1.25
    per_call[Persona.ACCIDENTAL] = profile.accidental_share * (1 - POCKET_BURST_SHARE)
    per_call[Persona.POCKET] = profile.accidental_share * POCKET_BURST_SHARE / POCKET_MEAN_CALLS
    per_call[Persona.TESTER] = profile.test_share
    family_pranks = 4.5 * per_call[Persona.FAMILY]
    simless = SIMLESS_NUISANCE_SHARE * (p + s)
    per_call[Persona.SIMLESS_NUISANCE] = simless / REPEAT_MEAN_CALLS
    prank_left = p - family_pranks - simless * SIMLESS_NUISANCE_PRANK_SHARE
    silent_left = s - simless * (1 - SIMLESS_NUISANCE_PRANK_SHARE)
    prank_ratio = prank_left / (prank_left + silent_left)
    repeat = REPEAT_SHARE * (p + s) - simless
    once = prank_left + silent_left - repeat
    per_call[Persona.SECOND_CALL] = once * SECOND_CALL_SHARE / SECOND_CALL_MEAN_CALLS
    once *= 1 - SECOND_CALL_SHARE
    per_call[Persona.PRANK_ONCE] = once * prank_ratio
    per_call[Persona.SILENT_ONCE] = once * (1 - prank_ratio) / 1.3
    prankster_calls = repeat * prank_ratio / PRANKSTER_PRANK_SHARE
    per_call[Persona.PRANKSTER] = prankster_calls / REPEAT_MEAN_CALLS
    per_call[Persona.GHOST] = (repeat - prankster_calls) / REPEAT_MEAN_CALLS
    if min(per_call.values()) < 0:
        raise ValueError(f"profile {profile.name} cannot be met by this persona mix")
    scale = callers / sum(per_call.values())
    exact = {persona: per_call[persona] * scale for persona in Persona}
    counts = {persona: math.floor(v) for persona, v in exact.items()}
    # Largest remainders make the counts sum to ``callers`` exactly.
    by_remainder = sorted(Persona, key=lambda q: counts[q] - exact[q])
    for persona in by_remainder[: callers - sum(counts.values())]:
        counts[persona] += 1
    # Every hard case is present even in a tiny corpus; the most numerous persona makes room.
    # (Persona order, not set order: a set's order changes with the process' hash seed.)
    for persona in Persona:
        if persona in HARD_CASES and counts[persona] == 0:
            donor = max((p for p in Persona if p not in HARD_CASES), key=counts.__getitem__)
            if counts[donor] == 0:
                raise ValueError("too few callers for every hard case")
            counts[donor] -= 1
            counts[persona] = 1
    return counts


class _Generator:
    """The drawing of one corpus; every random choice goes through ``self.rng``."""

    def __init__(self, seed: int, profile: CorpusProfile) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not secrets
        self.profile = profile
        self.seed = seed
        self.serial = 0
        self.numbers: set[str] = set()

    # -- identities -----------------------------------------------------------------------

    def number(self) -> CallerId:
        rng = self.rng
        while True:
            digits = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            if digits not in self.numbers:
                self.numbers.add(digits)
                break
        style = rng.random()
        if style < 0.6:
            raw = "08" + digits
        elif style < 0.9:
            raw = "+628" + digits
        else:
            raw = "628" + digits
        return parse_caller_id(raw)

    def imei(self) -> CallerId:
        rng = self.rng
        body = "35" + "".join(str(rng.randrange(10)) for _ in range(12))
        check = next(d for d in "0123456789" if luhn_valid(body + d))
        # Carriers pass the IMEI bare, as the URN of RFC 7254, or as "IMEI" + the digits.
        style = rng.random()
        if style < 0.3:
            raw = f"urn:gsma:imei:{body[:8]}-{body[8:]}-{check}"
        elif style < 0.6:
            raw = "IMEI" + body + check
        else:
            raw = body + check
        return parse_caller_id(raw)

    def identity(self, withheld: float, malformed: float) -> CallerId:
        roll = self.rng.random()
        if roll < withheld:
            return parse_caller_id(self.rng.choice(_WITHHELD_RAW))
        if roll < withheld + malformed:
            return parse_caller_id(self.rng.choice(_MALFORMED_RAW))
        return self.number()

    # -- time -----------------------------------------------------------------------------

    def instant(self, hours: Sequence[float], first_day: float = 0.0,
                last_day: float | None = None) -> datetime:
        rng = self.rng
        end = self.profile.days if last_day is None else last_day
        day = math.floor(rng.uniform(first_day, end))
        hour = rng.choices(range(24), weights=hours)[0]
        return START + timedelta(days=day, hours=hour, seconds=rng.uniform(0, 3600))

    def repeat_count(self) -> int:
        # 2 + geometric (failures before success) with mean 10: p = 1/11.
        u = self.rng.random()
        return 2 + min(200, int(math.log(1 - u) / math.log(10 / 11)))

    def sessions(self, calls: int, burst: tuple[int, int], hours: Sequence[float],
                 gap_minutes: float) -> list[datetime]:
        """Arrival times of ``calls`` calls in bursts, minutes apart within a burst."""
        times: list[datetime] = []
        while len(times) < calls:
            size = min(calls - len(times), self.rng.randint(*burst))
            at = self.instant(hours)
            for _ in range(size):
                times.append(at)
                at += timedelta(minutes=max(0.7, self.rng.expovariate(1 / gap_minutes)))
        return sorted(times)

    # -- behaviour ------------------------------------------------------------------------

    def lognormal(self, median: float, sigma: float, low: float, high: float) -> float:
        return min(high, max(low, median * math.exp(self.rng.gauss(0, sigma))))

    def informed_key(self, category: str) -> float:
        """When a caller who listens presses: after the option of ``category`` is announced."""
        heard = GREETING_SECONDS + OPTION_SECONDS * (OPTION_INDEX[category] + 1)
        return heard + self.lognormal(1.5, 0.6, 0.3, 12.0)

    def instant_key(self) -> float:
        """A key during the greeting, before any option was announced."""
        return self.rng.uniform(0.3, GREETING_SECONDS)

    def genuine_menu(self, category: str, knows_menu: bool
                     ) -> tuple[IvrBehaviour, float, str] | None:
        """A genuine caller in the 112 menu: the behaviour, the seconds it took and the
        category; ``None`` for the 2% who hang up in the menu (misdialled or interrupted)."""
        rng = self.rng
        if rng.random() < 0.02:
            return None
        if rng.random() < GENUINE_NO_KEY_SHARE:  # panic, a hidden keypad, waiting for a human
            return IvrBehaviour(menu_offered=True, no_input=True), NO_KEY_SECONDS, "emergency"
        instant = GENUINE_KNOWN_MENU_INSTANT_SHARE if knows_menu else GENUINE_INSTANT_SHARE
        first = self.instant_key() if rng.random() < instant else self.informed_key(category)
        invalid = 0
        if rng.random() < 0.07:
            invalid = 2 if rng.random() < 0.2 else 1
        ivr = IvrBehaviour(menu_offered=True, invalid_keys=invalid, first_key_seconds=first)
        return ivr, first + 3.0 + 4.0 * invalid, category

    def genuine(self, line: str, *, presses: bool = True, knows_menu: bool = False,
                talk_median: float = 100.0) -> tuple[CallFeatures, str]:
        """A genuine caller: mostly presses after hearing the option, talks for minutes,
        rarely gives up."""
        rng = self.rng
        category = "emergency"
        if line != "112":
            ivr, ivr_seconds = IvrBehaviour(menu_offered=False), 4.0
        elif not presses:
            ivr, ivr_seconds = IvrBehaviour(menu_offered=True, no_input=True), NO_KEY_SECONDS
        else:
            wanted = rng.choices(("emergency", "complaint", "information"), (65, 20, 15))[0]
            menu = self.genuine_menu(wanted, knows_menu)
            if menu is None:
                # Misdialled or interrupted; will call again. Looks silent to the line.
                ivr = IvrBehaviour(menu_offered=True, hung_up_in_ivr=True)
                return self.shaped(ivr, 5.0, None), category
            ivr, ivr_seconds, category = menu
        if rng.random() < 0.05:  # gave up waiting in the queue
            return self.shaped(ivr, ivr_seconds + rng.uniform(20, 90), None), category
        if rng.random() < 0.01:  # the line dropped just after the answer
            talk = rng.uniform(1, 5)
            return self.shaped(ivr, ivr_seconds, (talk, True, rng.uniform(0.3, 0.7))), category
        talk = self.lognormal(talk_median, 0.6, 15.0, 1800.0)
        silence = rng.uniform(0.15, 0.5)
        return self.shaped(ivr, ivr_seconds, (talk, rng.random() < 0.5, silence)), category

    def prank(self, line: str) -> tuple[CallFeatures, str]:
        """A child's prank: keys pressed fast and often wrong, a short giggling talk."""
        rng = self.rng
        category = "emergency"
        if line != "112":
            ivr, ivr_seconds = IvrBehaviour(menu_offered=False), 4.0
            if rng.random() < 0.15:
                ivr = IvrBehaviour(menu_offered=False, hung_up_in_ivr=True)
                return self.shaped(ivr, rng.uniform(1, 4), None), category
        else:
            roll = rng.random()
            if roll < 0.15:
                first = self.instant_key() if rng.random() < 0.5 else None
                ivr = IvrBehaviour(menu_offered=True, hung_up_in_ivr=True, first_key_seconds=first)
                return self.shaped(ivr, rng.uniform(2, 10), None), category
            if roll < 0.40:  # waits for a human to prank
                ivr, ivr_seconds = IvrBehaviour(menu_offered=True, no_input=True), NO_KEY_SECONDS
            else:
                category = rng.choices(("emergency", "complaint", "information"), (80, 10, 10))[0]
                # Half mash keys or know the menu from earlier pranks; half listen.
                first = (self.instant_key() if rng.random() < 0.5
                         else self.informed_key(category))
                invalid = rng.choices((0, 1, 2, 3), (55, 25, 12, 8))[0]
                ivr = IvrBehaviour(menu_offered=True, invalid_keys=invalid,
                                   first_key_seconds=first)
                ivr_seconds = first + 3.0 + 4.0 * invalid
        if rng.random() < 0.08:
            return self.shaped(ivr, ivr_seconds + rng.uniform(5, 40), None), category
        roll = rng.random()
        if roll < 0.25:
            talk = rng.uniform(1, 5)
            return self.shaped(ivr, ivr_seconds, (talk, True, rng.uniform(0.3, 0.9))), category
        if roll < 0.55:  # a short prank: a made-up story for 10-25 s, then the child hangs up
            talk = rng.uniform(10, 25)
            return self.shaped(ivr, ivr_seconds, (talk, True, rng.uniform(0.3, 0.7))), category
        talk = self.lognormal(25.0, 0.7, 6.0, 300.0)
        ended = rng.random() < 0.8
        return self.shaped(ivr, ivr_seconds, (talk, ended, rng.uniform(0.3, 0.75))), category

    def silent(self, line: str) -> tuple[CallFeatures, str]:
        """A silent call: nothing pressed (or a pocket's random keys), nobody speaking."""
        rng = self.rng
        roll = rng.random()
        category = "emergency"
        if line != "112":
            if roll < 0.25:
                ivr = IvrBehaviour(menu_offered=False, hung_up_in_ivr=True)
                return self.shaped(ivr, rng.uniform(1, 5), None), "emergency"
            ivr, ivr_seconds = IvrBehaviour(menu_offered=False), 4.0
        elif roll < 0.35:
            ivr = IvrBehaviour(menu_offered=True, hung_up_in_ivr=True)
            return self.shaped(ivr, rng.uniform(1, 12), None), "emergency"
        elif roll < 0.50:
            ivr, ivr_seconds, category = self.pocket_keys()
        else:
            ivr, ivr_seconds = IvrBehaviour(menu_offered=True, no_input=True), NO_KEY_SECONDS
        if rng.random() < 0.12:
            return self.shaped(ivr, ivr_seconds + rng.uniform(5, 60), None), category
        if rng.random() < 0.35:
            talk = rng.uniform(1, 5)
            return self.shaped(ivr, ivr_seconds, (talk, True, rng.uniform(0.88, 1.0))), category
        talk = rng.uniform(8, 45)
        return self.shaped(ivr, ivr_seconds, (talk, False, rng.uniform(0.88, 1.0))), category

    def pocket_keys(self) -> tuple[IvrBehaviour, float, str]:
        """Keys pressed by a pocket or a hand on a phone nobody is using: at any moment, valid
        or not; a valid one picks its route (1, 8 and 9 lead to an emergency queue)."""
        rng = self.rng
        first = rng.uniform(1.0, NO_KEY_SECONDS)
        invalid = rng.choices((0, 1, 2), (40, 35, 25))[0]
        category = "emergency"
        if invalid < 2:  # the menu takes two wrong keys before it routes to its default
            category = rng.choices(("emergency", "complaint", "information"), (3, 1, 1))[0]
        ivr = IvrBehaviour(menu_offered=True, invalid_keys=invalid, first_key_seconds=first)
        return ivr, first + 3.0 + 4.0 * invalid, category

    def accidental(self, line: str) -> tuple[CallFeatures, str]:
        """A pocket dial whose owner notices and apologises."""
        rng = self.rng
        roll = rng.random()
        category = "emergency"
        if line != "112":
            ivr, ivr_seconds = IvrBehaviour(menu_offered=False), 4.0
        elif roll < 0.35:
            ivr = IvrBehaviour(menu_offered=True, hung_up_in_ivr=True)
            return self.shaped(ivr, rng.uniform(2, 10), None), category
        elif roll < 0.80:  # still in the pocket; the owner notices when the operator speaks
            ivr, ivr_seconds = IvrBehaviour(menu_offered=True, no_input=True), NO_KEY_SECONDS
        else:
            ivr, ivr_seconds, category = self.pocket_keys()
        talk = rng.uniform(4, 20)
        return self.shaped(ivr, ivr_seconds, (talk, rng.random() < 0.7,
                                              rng.uniform(0.4, 0.8))), category

    def test(self, line: str) -> tuple[CallFeatures, str]:
        """Someone checking that the number works: quick key, short polite talk."""
        rng = self.rng
        if line != "112":
            ivr, ivr_seconds = IvrBehaviour(menu_offered=False), 4.0
        else:
            first = self.informed_key("information")
            ivr, ivr_seconds = IvrBehaviour(menu_offered=True, first_key_seconds=first), first + 3
        talk = rng.uniform(5, 25)
        return self.shaped(ivr, ivr_seconds, (talk, True, rng.uniform(0.3, 0.6))), "information"

    def shaped(self, ivr: IvrBehaviour, before_answer: float,
               answered: tuple[float, bool, float] | None) -> CallFeatures:
        """Put the IVR behaviour and the answered part (talk, caller ended, silence) together."""
        if answered is None:
            return CallFeatures(ivr, CallShape(duration_seconds=before_answer))
        talk, caller_ended, silence = answered
        wait = self.rng.expovariate(1 / 15)
        shape = CallShape(duration_seconds=before_answer + wait + talk, talk_seconds=talk,
                          caller_ended=caller_ended, silence_share=silence)
        return CallFeatures(ivr, shape)

    def behave(self, truth: Label, line: str) -> tuple[CallFeatures, str]:
        match truth:
            case Label.GENUINE:
                return self.genuine(line)
            case Label.PRANK:
                return self.prank(line)
            case Label.SILENT:
                return self.silent(line)
            case Label.ACCIDENTAL:
                return self.accidental(line)
            case Label.TEST:
                return self.test(line)

    # -- labels ---------------------------------------------------------------------------

    def labels(self, call_id: str, truth: Label, features: CallFeatures,
               ended_at: datetime) -> tuple[LabelEvent, ...]:
        """Operator labels: only answered calls, sometimes wrong, half of the wrong corrected."""
        rng = self.rng
        if not features.shape.answered:
            return ()
        if rng.random() >= (0.6 if truth is Label.SILENT else 0.85):
            return ()
        at = ended_at + timedelta(seconds=rng.uniform(10, 180))
        label = truth
        if rng.random() < LABEL_ERROR_RATE:
            label = rng.choice(_CONFUSIONS[truth])
        events = [LabelEvent(call_id, label, at)]
        if label is not truth and rng.random() < LABEL_CORRECTION_RATE:
            events.append(LabelEvent(call_id, truth, at + timedelta(hours=rng.uniform(2, 72))))
        return tuple(events)

    # -- callers --------------------------------------------------------------------------

    def calls(self, persona: Persona, caller: CallerId, plan: Sequence[Planned]) -> CallerCalls:
        """Turn planned (arrival, class, line, features, category) into calls that never overlap:
        a caller's next call starts after the previous one ended.
        """
        out: list[CorpusCall] = []
        for planned_at, truth, line, features, category in sorted(plan, key=lambda p: p[0]):
            at = planned_at
            if out and at < out[-1].ended_at + timedelta(seconds=10):
                at = out[-1].ended_at + timedelta(seconds=self.rng.uniform(10, 60))
            self.serial += 1
            call_id = f"s{self.seed}-{self.serial:07d}"
            end = at + timedelta(seconds=features.shape.duration_seconds)
            out.append(CorpusCall(call_id, caller, persona, truth, at, line, category, features,
                                  self.labels(call_id, truth, features, end)))
        return tuple(out)

    def caller(self, persona: Persona) -> CallerCalls:
        """Draw one caller of ``persona`` and all of its calls."""
        plan: list[Planned] = []
        planners: Mapping[Persona, Callable[[list[Planned]], CallerId]] = {
            Persona.GENUINE: self.plan_genuine,
            Persona.CALLBACK: self.plan_callback,
            Persona.CHRONIC: self.plan_chronic,
            Persona.ELDERLY: self.plan_elderly,
            Persona.SIMLESS_GENUINE: self.plan_simless_genuine,
            Persona.FAMILY: self.plan_family,
            Persona.ACCIDENTAL: self.plan_accidental,
            Persona.TESTER: self.plan_tester,
            Persona.PRANK_ONCE: self.plan_prank_once,
            Persona.SILENT_ONCE: self.plan_silent_once,
            Persona.SECOND_CALL: self.plan_second_call,
            Persona.POCKET: self.plan_pocket,
            Persona.PRANKSTER: self.plan_prankster,
            Persona.SIMLESS_NUISANCE: self.plan_simless_nuisance,
            Persona.GHOST: self.plan_ghost,
        }
        caller = planners[persona](plan)
        return self.calls(persona, caller, plan)

    def planned(self, at: datetime, truth: Label, line: str,
                made: tuple[CallFeatures, str] | None = None) -> Planned:
        """A call of class ``truth`` at ``at``, behaving as its class does unless ``made``."""
        features, category = made if made is not None else self.behave(truth, line)
        return at, truth, line, features, category

    def nuisance_line(self) -> str:
        # 119 has its own nuisance callers; assumed a minority of them.
        return "119" if self.rng.random() < 0.15 else "112"

    def plan_genuine(self, plan: list[Planned]) -> CallerId:
        rng = self.rng
        caller = self.identity(withheld=0.02, malformed=0.01)
        line = "119" if rng.random() < 0.15 else "112"
        first = self.instant(GENUINE_HOURS)
        plan.append(self.planned(first, Label.GENUINE, line))
        for _ in range(rng.choices((0, 1, 2), (80, 15, 5))[0]):
            if rng.random() < 0.5:  # a follow-up about the same incident
                later = first + timedelta(minutes=rng.uniform(5, 90))
            else:  # another incident on another day
                later = self.instant(GENUINE_HOURS)
            plan.append(self.planned(later, Label.GENUINE, line,
                                     self.genuine(line, knows_menu=True)))
        return caller

    def plan_callback(self, plan: list[Planned]) -> CallerId:
        first = self.instant(GENUINE_HOURS, last_day=self.profile.days - 1)
        plan.append(self.planned(first, Label.GENUINE, "112", self.fire_report(120.0)))
        # The first report takes a minute or two; then four calls within 20 minutes.
        for minute in sorted(self.rng.uniform(4, 20) for _ in range(4)):
            plan.append(self.planned(first + timedelta(minutes=minute), Label.GENUINE, "112",
                                     self.fire_report(40.0, knows_menu=True)))
        return self.number()

    def plan_chronic(self, plan: list[Planned]) -> CallerId:
        first = self.instant(GENUINE_HOURS, last_day=7)
        for week in range(self.profile.days // 7):
            at = first + timedelta(days=7 * week, hours=self.rng.uniform(-12, 12))
            plan.append(self.planned(max(at, START), Label.GENUINE, "119",
                                     self.genuine("119", talk_median=200.0)))
        return self.number()

    def plan_elderly(self, plan: list[Planned]) -> CallerId:
        for _ in range(self.rng.choices((1, 2), (70, 30))[0]):
            features, category = self.genuine("112", presses=False, talk_median=240.0)
            plan.append(self.planned(self.instant(GENUINE_HOURS), Label.GENUINE, "112",
                                     (self.slower(features), category)))
        return self.number()

    def plan_simless_genuine(self, plan: list[Planned]) -> CallerId:
        plan.append(self.planned(self.instant(GENUINE_HOURS), Label.GENUINE, "112"))
        return self.imei()

    def plan_family(self, plan: list[Planned]) -> CallerId:
        at = self.instant(CHILD_HOURS, last_day=self.profile.days - 11)
        for _ in range(self.rng.randint(3, 6)):
            plan.append(self.planned(at, Label.PRANK, "112"))
            at += timedelta(minutes=self.rng.uniform(2, 90))
        if self.rng.random() < 0.4:
            parent = at + timedelta(hours=self.rng.uniform(2, 48))
        else:
            parent = at + timedelta(days=self.rng.uniform(6, 10))
        plan.append(self.planned(parent, Label.GENUINE, "112", self.fire_report(150.0)))
        if self.rng.random() < 0.5:  # rings back about the same fire
            again = parent + timedelta(minutes=self.rng.uniform(5, 20))
            plan.append(self.planned(again, Label.GENUINE, "112",
                                     self.fire_report(40.0, knows_menu=True)))
        return self.number()

    def plan_accidental(self, plan: list[Planned]) -> CallerId:
        plan.append(self.planned(self.instant(PHONE_HOURS), Label.ACCIDENTAL, "112"))
        return self.identity(withheld=0.02, malformed=0.01)

    def plan_tester(self, plan: list[Planned]) -> CallerId:
        plan.append(self.planned(self.instant(GENUINE_HOURS), Label.TEST, "112"))
        return self.identity(withheld=0.02, malformed=0.01)

    def plan_prank_once(self, plan: list[Planned]) -> CallerId:
        plan.append(self.planned(self.instant(CHILD_HOURS), Label.PRANK, self.nuisance_line()))
        # Children hide their number more often than anyone else (*#31#).
        return self.identity(withheld=0.10, malformed=0.02)

    def plan_silent_once(self, plan: list[Planned]) -> CallerId:
        first = self.instant(PHONE_HOURS)
        line = self.nuisance_line()
        plan.append(self.planned(first, Label.SILENT, line))
        if self.rng.random() < 0.3:  # the pocket dials again
            again = first + timedelta(minutes=self.rng.uniform(1, 5))
            plan.append(self.planned(again, Label.SILENT, line))
        return self.identity(withheld=0.02, malformed=0.01)

    def plan_second_call(self, plan: list[Planned]) -> CallerId:
        rng = self.rng
        truth = Label.PRANK if rng.random() < 0.5 else Label.SILENT
        line = self.nuisance_line()
        at = self.instant(CHILD_HOURS if truth is Label.PRANK else PHONE_HOURS)
        plan.append(self.planned(at, truth, line))
        for _ in range(rng.choices((1, 2), (50, 50))[0]):
            if rng.random() < 0.6:  # within the hour
                at += timedelta(minutes=rng.uniform(2, 55))
            else:  # later the same day
                at += timedelta(hours=rng.uniform(1, 20))
            plan.append(self.planned(at, truth, line))
        return self.identity(withheld=0.05, malformed=0.01)

    def plan_pocket(self, plan: list[Planned]) -> CallerId:
        for at in self.sessions(self.rng.randint(2, 10), (2, 4), PHONE_HOURS, 2.0):
            plan.append(self.planned(at, Label.ACCIDENTAL, "112"))
        return self.number()

    def plan_repeat_nuisance(self, plan: list[Planned], prank_share: float) -> None:
        for at in self.sessions(self.repeat_count(), (2, 6), CHILD_HOURS, 4.0):
            truth = Label.PRANK if self.rng.random() < prank_share else Label.SILENT
            plan.append(self.planned(at, truth, self.nuisance_line()))

    def plan_prankster(self, plan: list[Planned]) -> CallerId:
        self.plan_repeat_nuisance(plan, PRANKSTER_PRANK_SHARE)
        return self.number()

    def plan_simless_nuisance(self, plan: list[Planned]) -> CallerId:
        self.plan_repeat_nuisance(plan, SIMLESS_NUISANCE_PRANK_SHARE)
        return self.imei()

    def plan_ghost(self, plan: list[Planned]) -> CallerId:
        line = self.nuisance_line()
        for at in self.sessions(self.repeat_count(), (3, 10), PHONE_HOURS, 3.0):
            plan.append(self.planned(at, Label.SILENT, line))
        return self.number()

    def fire_report(self, talk_median: float, *, knows_menu: bool = False
                    ) -> tuple[CallFeatures, str]:
        """A genuine fire report: 1 (emergency) then 2 (fire), or no key in a panic."""
        rng = self.rng
        menu = self.genuine_menu("emergency", knows_menu)
        if menu is None:  # nobody reporting a fire gives up in the menu: they listen and press
            first = self.informed_key("emergency")
            menu = IvrBehaviour(menu_offered=True, first_key_seconds=first), first + 3.0, ""
        ivr, ivr_seconds, _ = menu
        talk = self.lognormal(talk_median, 0.4, 15.0, 900.0)
        return self.shaped(ivr, ivr_seconds, (talk, rng.random() < 0.5,
                                              rng.uniform(0.15, 0.45))), "emergency"

    def slower(self, features: CallFeatures) -> CallFeatures:
        """An elderly caller's recording: long pauses between slow sentences."""
        shape = features.shape
        if shape.silence_share is None:
            return features
        slow = CallShape(shape.duration_seconds, shape.talk_seconds, shape.caller_ended,
                         self.rng.uniform(0.45, 0.75))
        return CallFeatures(features.ivr, slow)


def generate_corpus(seed: int = DEFAULT_SEED, callers: int = DEFAULT_CALLERS,
                    profile: CorpusProfile = SEMARANG) -> Corpus:
    """Generate ``callers`` synthetic callers and their calls; the same seed, the same corpus."""
    if callers < len(HARD_CASES) + 1:
        raise ValueError(f"need at least {len(HARD_CASES) + 1} callers")
    plan = plan_callers(profile, callers)
    generator = _Generator(seed, profile)
    calls = [call for persona in Persona for _ in range(plan[persona])
             for call in generator.caller(persona)]
    calls.sort(key=lambda c: (c.at, c.call_id))
    return Corpus(seed, profile, MappingProxyType(plan), tuple(calls))
