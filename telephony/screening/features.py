"""What the screening score looks at: plain, validated feature records and pure extractors.

Two groups of features, matching the two moments the score is computed:

- before queueing, from what is known when the route is chosen: the line, the caller id
  (:class:`CallerId`), the local hour in Asia/Jakarta (:func:`local_hour`), the caller's
  history (:class:`CallerHistory`, summarised from earlier calls and operator labels by
  :func:`summarise_history`), and how the caller used the IVR menu on this very call
  (:class:`IvrBehaviour`: no key at all, wrong keys, a key before any option was announced),
  which the IVR knows once it has collected the keys, before it asks for the verdict;
- after the call, from the call itself: the shape of the call (:class:`CallShape`), and
  whether the caller hung up in the IVR.

Everything here is pure: the database and the IVR adapter build these records, the score reads
them. The semantics of the history aggregates are defined once, here; a SQL version used for
speed must agree with :func:`summarise_history`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from telephony.calls.ids import CallerId
from telephony.core.labels import LabelledStrEnum

JAKARTA = "Asia/Jakarta"

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
# Labels and shares look back this far by default: long enough to remember last month's pranks
# from a family phone, short enough that a number passed on to a new owner is forgiven.
DEFAULT_LOOKBACK = timedelta(days=90)

# A caller who hangs up this soon after an operator answers heard a human and left: the classic
# shape of a prank or a pocket dial that was noticed. Longer than a "halo?" exchange.
QUICK_HANGUP_SECONDS = 5.0
# A recording at least this silent had nobody speaking on the caller's side.
SILENT_RECORDING_SHARE = 0.9


class Label(LabelledStrEnum):
    """What an operator says a call was; also the true class of a synthetic call. The label
    is what operators read."""

    GENUINE = "genuine", "Asli"
    PRANK = "prank", "Iseng"
    SILENT = "silent", "Diam"
    ACCIDENTAL = "accidental", "Tidak sengaja"
    TEST = "test", "Uji coba"


# Prank and silent ("ghost") calls: what the published figures count, and what reports call the
# prank share.
NUISANCE = frozenset({Label.PRANK, Label.SILENT})
# What the screening score estimates: the calls that cost an operator time for nothing. A pocket
# dial is one of them (operators label it, and it costs as much as a silent call), so it is a
# class of its own here, with its own reason text, but not part of the reports' prank share.
TARGET = NUISANCE | {Label.ACCIDENTAL}


def local_hour(instant: datetime, timezone: str = JAKARTA) -> int:
    """The wall-clock hour (0-23) of a timezone-aware ``instant`` in ``timezone``."""
    if instant.tzinfo is None:
        raise ValueError("the hour of a call needs a timezone-aware instant")
    return instant.astimezone(ZoneInfo(timezone)).hour


@dataclass(frozen=True, slots=True)
class IvrBehaviour:
    """How the caller used the IVR menu.

    ``no_input`` means the caller pressed no key at all and stayed until the menu gave up (the
    IVR outcome ``no_input``); a caller who hung up first has ``hung_up_in_ivr`` instead. On a
    line without a menu (119) only ``hung_up_in_ivr`` can be set.
    """

    menu_offered: bool
    no_input: bool = False
    invalid_keys: int = 0
    hung_up_in_ivr: bool = False
    first_key_seconds: float | None = None  # from answer to the first key, any key

    def __post_init__(self) -> None:
        if self.invalid_keys < 0:
            raise ValueError("invalid_keys cannot be negative")
        if self.first_key_seconds is not None and self.first_key_seconds < 0:
            raise ValueError("first_key_seconds cannot be negative")
        pressed = self.first_key_seconds is not None or self.invalid_keys > 0
        if not self.menu_offered and (self.no_input or pressed):
            raise ValueError("no menu was offered, so no key could be pressed or missed")
        if self.no_input and (pressed or self.hung_up_in_ivr):
            raise ValueError("no_input means no key at all and the caller stayed in the IVR")
        if self.invalid_keys and self.first_key_seconds is None:
            raise ValueError("an invalid key is a key: first_key_seconds must be set")

    @property
    def pressed_a_key(self) -> bool:
        """The caller pressed at least one key, valid or not."""
        return self.first_key_seconds is not None


@dataclass(frozen=True, slots=True)
class CallShape:
    """The call as a whole: how long, whether an operator answered, what the recording heard.

    ``talk_seconds`` is ``None`` when no operator answered. ``silence_share`` is the share of
    the recording without speech, ``None`` until a recording exists.
    """

    duration_seconds: float
    talk_seconds: float | None = None
    # The caller hung up: not the operator, nor the network or the line (a network cause, an
    # Asterisk restart or crash cut the call), which leave no sign of what the caller did.
    caller_ended: bool = True
    silence_share: float | None = None
    # The call joined a queue (the IVR routed it, or failed open): whether answered or not, it
    # waited for a human there.
    queued: bool = False

    def __post_init__(self) -> None:
        if self.duration_seconds < 0:
            raise ValueError("duration_seconds cannot be negative")
        if self.talk_seconds is not None and not 0 <= self.talk_seconds <= self.duration_seconds:
            raise ValueError("talk_seconds must lie within the call's duration")
        if self.silence_share is not None and not 0.0 <= self.silence_share <= 1.0:
            raise ValueError("silence_share must be within [0, 1]")

    @property
    def answered(self) -> bool:
        """An operator answered the call."""
        return self.talk_seconds is not None

    @property
    def hung_up_on_answer(self) -> bool:
        """The caller hung up within :data:`QUICK_HANGUP_SECONDS` of an operator answering."""
        return (
            self.talk_seconds is not None
            and self.caller_ended
            and self.talk_seconds <= QUICK_HANGUP_SECONDS
        )


@dataclass(frozen=True, slots=True)
class CallFeatures:
    """The call's own features, known once it has ended."""

    ivr: IvrBehaviour
    shape: CallShape

    @property
    def looks_silent(self) -> bool:
        """Nobody was heard from: no key pressed, and no speech reached an operator.

        This is what the line itself can tell about a call nobody labelled. A caller who
        pressed nothing and left in the IVR counts as silent. A caller who waited in a queue and
        was never answered does not: nobody was there to hear them (the line did not answer,
        which says nothing of the caller), and a 119 caller has no key to press at all. Counted
        silent, the caller who gave up in a busy queue and rang straight back, the very caller
        the call-back worklist lists, had that call lowered as a nuisance number's. Nor does
        a call the network or the line cut before anyone heard the caller (not
        ``caller_ended``): the caller did not leave, and the worklist lists them too.
        """
        if self.ivr.pressed_a_key:
            return False
        shape = self.shape
        if not shape.answered:
            return not shape.queued and shape.caller_ended
        if shape.hung_up_on_answer:
            return True
        return shape.silence_share is not None and shape.silence_share >= SILENT_RECORDING_SHARE


@dataclass(frozen=True, slots=True)
class PastCall:
    """An earlier call of the same caller, as history needs it.

    ``suspected``: the line's own post-call score of the call reached the post-call threshold.
    Without a label it is what the line knows of a prank that talked: it counts as a nuisance
    call ("diduga iseng") until an operator labels the call.
    """

    call_id: str
    at: datetime
    looks_silent: bool
    suspected: bool = False


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """An operator labelled a call; a later event for the same call corrects the earlier one."""

    call_id: str
    label: Label
    at: datetime


def resolve_labels(labels: Iterable[LabelEvent], now: datetime) -> dict[str, LabelEvent]:
    """The label each call has at ``now``: its latest event at or before ``now``.

    Events at the same instant are taken in the order given, the last one winning, as a
    correction entered in the same second as the label it corrects.
    """
    current: dict[str, LabelEvent] = {}
    for event in labels:
        if event.at > now:
            continue
        known = current.get(event.call_id)
        if known is None or event.at >= known.at:
            current[event.call_id] = event
    return current


@dataclass(frozen=True, slots=True)
class CallerHistory:
    """What the caller's earlier calls say, at one instant.

    The hour/day/week windows count calls that arrived within that time before now; the
    ``*_calls`` totals cover the whole lookback. A call counts as prank, accidental or genuine if
    its current label says so; as silent if its current label is silent, or if it has no label
    and looked silent; as suspected if it has no label, did not look silent, and the line's
    post-call score of it reached the post-call threshold. Test calls count only as calls.
    Prank, silent, accidental and suspected calls are the nuisance calls (:data:`TARGET`, and
    the line's suspicion of one); ``seconds_since_last_nuisance`` is the age of the latest
    (``summarise_history`` and the SQL always set it; unset, it reads as "just now").
    """

    calls_last_hour: int = 0
    silent_last_hour: int = 0
    prank_last_hour: int = 0
    calls_last_day: int = 0
    silent_last_day: int = 0
    prank_last_day: int = 0
    calls_last_week: int = 0
    silent_last_week: int = 0
    prank_last_week: int = 0
    calls: int = 0
    silent_calls: int = 0
    prank_calls: int = 0
    genuine_calls: int = 0
    seconds_since_last_genuine: float | None = None
    accidental_last_hour: int = 0
    accidental_last_day: int = 0
    accidental_last_week: int = 0
    accidental_calls: int = 0
    seconds_since_last_nuisance: float | None = None
    suspected_last_hour: int = 0
    suspected_last_day: int = 0
    suspected_last_week: int = 0
    suspected_calls: int = 0

    def __post_init__(self) -> None:
        windows = (
            (self.calls_last_hour, self.silent_last_hour, self.prank_last_hour,
             self.accidental_last_hour, self.suspected_last_hour),
            (self.calls_last_day, self.silent_last_day, self.prank_last_day,
             self.accidental_last_day, self.suspected_last_day),
            (self.calls_last_week, self.silent_last_week, self.prank_last_week,
             self.accidental_last_week, self.suspected_last_week),
            (self.calls, self.silent_calls, self.prank_calls, self.accidental_calls,
             self.suspected_calls),
        )
        for calls, *kinds in windows:
            if min(calls, *kinds) < 0 or sum(kinds) > calls:
                raise ValueError("silent, prank, accidental and suspected calls are counted "
                                 "among the window's calls")
        for shorter, longer in pairwise(windows):
            if any(s > w for s, w in zip(shorter, longer, strict=True)):
                raise ValueError("a shorter window cannot hold more calls than a longer one")
        if self.genuine_calls < 0 or self.genuine_calls + self.nuisance_calls > self.calls:
            raise ValueError("genuine and nuisance calls are counted among the calls")
        if (self.seconds_since_last_genuine is None) != (self.genuine_calls == 0):
            raise ValueError("seconds_since_last_genuine is set exactly when a call was genuine")
        # Unset with nuisance calls means "not known", read as "just now" (the strongest).
        if self.seconds_since_last_nuisance is not None and (
                self.nuisance_calls == 0 or self.seconds_since_last_nuisance < 0):
            raise ValueError("seconds_since_last_nuisance is the age of a nuisance call")

    @property
    def first_time(self) -> bool:
        """No earlier call within the lookback."""
        return self.calls == 0

    @property
    def nuisance_calls(self) -> int:
        """Earlier calls that were silent, labelled prank or accidental, or suspected."""
        return self.silent_calls + self.prank_calls + self.accidental_calls + self.suspected_calls

    @property
    def nuisance_last_hour(self) -> int:
        """Nuisance calls within the last hour."""
        return (self.silent_last_hour + self.prank_last_hour + self.accidental_last_hour
                + self.suspected_last_hour)

    @property
    def nuisance_last_day(self) -> int:
        """Nuisance calls within the last 24 hours."""
        return (self.silent_last_day + self.prank_last_day + self.accidental_last_day
                + self.suspected_last_day)

    @property
    def nuisance_last_week(self) -> int:
        """Nuisance calls within the last 7 days."""
        return (self.silent_last_week + self.prank_last_week + self.accidental_last_week
                + self.suspected_last_week)

    @property
    def nuisance_share(self) -> float:
        """Share of earlier calls that were nuisance calls (0 without history)."""
        return self.nuisance_calls / self.calls if self.calls else 0.0


FIRST_TIME = CallerHistory()


def summarise_history(
    calls: Iterable[PastCall],
    labels: Iterable[LabelEvent],
    now: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> CallerHistory:
    """Summarise one caller's earlier ``calls`` and their operator ``labels`` as seen at ``now``.

    Only calls that arrived before ``now`` and within ``lookback`` count, and only label events
    entered by ``now``; for each call its latest label wins, so a corrected label counts as
    corrected.
    """
    current = resolve_labels(labels, now)
    horizon = lookback.total_seconds()
    counts = [0] * 20  # (calls, silent, prank, accidental, suspected) per hour/day/week/lookback
    genuine = 0
    last_genuine: float | None = None
    last_nuisance: float | None = None
    for call in calls:
        age = (now - call.at).total_seconds()
        if age <= 0 or age > horizon:
            continue
        event = current.get(call.call_id)
        label = event.label if event is not None else None
        silent = label is Label.SILENT or (label is None and call.looks_silent)
        prank = label is Label.PRANK
        accidental = label is Label.ACCIDENTAL
        suspected = label is None and not call.looks_silent and call.suspected
        if label is Label.GENUINE:
            genuine += 1
            if last_genuine is None or age < last_genuine:
                last_genuine = age
        nuisance = silent or prank or accidental or suspected
        if nuisance and (last_nuisance is None or age < last_nuisance):
            last_nuisance = age
        for slot, window in enumerate((HOUR, DAY, WEEK, horizon)):
            if age <= window:
                base = 5 * slot
                counts[base] += 1
                counts[base + 1] += silent
                counts[base + 2] += prank
                counts[base + 3] += accidental
                counts[base + 4] += suspected
    return CallerHistory(
        calls_last_hour=counts[0], silent_last_hour=counts[1], prank_last_hour=counts[2],
        accidental_last_hour=counts[3], suspected_last_hour=counts[4],
        calls_last_day=counts[5], silent_last_day=counts[6], prank_last_day=counts[7],
        accidental_last_day=counts[8], suspected_last_day=counts[9],
        calls_last_week=counts[10], silent_last_week=counts[11], prank_last_week=counts[12],
        accidental_last_week=counts[13], suspected_last_week=counts[14],
        calls=counts[15], silent_calls=counts[16], prank_calls=counts[17],
        accidental_calls=counts[18], suspected_calls=counts[19],
        genuine_calls=genuine, seconds_since_last_genuine=last_genuine,
        seconds_since_last_nuisance=last_nuisance,
    )


@dataclass(frozen=True, slots=True)
class PreQueueFeatures:
    """Everything known about a call when it rings, before it joins a queue."""

    line: str
    caller: CallerId
    hour: int  # local hour in Asia/Jakarta, see :func:`local_hour`
    history: CallerHistory = FIRST_TIME
    # How the caller used the menu up to the route (the IVR asks for the verdict after
    # collecting the keys); ``None`` when not known. The pre-queue score reads its keys only:
    # a caller who hung up in the IVR is never queued, so that is a post-call fact.
    menu: IvrBehaviour | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.hour <= 23:
            raise ValueError("hour must be within 0..23")
        if self.caller.key is None and not self.history.first_time:
            raise ValueError("a caller without an identity cannot have a history")

