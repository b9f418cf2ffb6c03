"""Follow every emergency call through Asterisk's AMI events and say what happened, as facts.

Pure domain logic: :class:`CallTracker` takes AMI events (any mapping of header to value, a
repeated header as a list of values, as panoramisk delivers them) and returns
:mod:`telephony.calls.facts` facts. It does no I/O and reads the time only through the clock it
is given, so the same events, state and clock always give the same facts.

Caller-leg rule. An emergency call is identified by the ``Uniqueid`` of the caller's channel
(the ``call_id``). Every other channel of the call (the operator legs Queue() dials) is
created with the caller as requestor, so Asterisk gives it the caller's ``Linkedid``: only the
channel that started the call has ``Linkedid == Uniqueid``. A ``Newchannel`` is therefore a
new call when ``Uniqueid == Linkedid`` *and* its ``Context`` is the carrier trunk's
(``from-carrier``): the second test keeps out anything an operator's phone might originate.
The line is ``Exten`` when it is 112 or 119, or 119 in a national or E.164 form (0119,
+62119, ...: :func:`line_of`); the dialplan routes every other number the carrier hands over
(0112, +62112, sos, none at all) to 112, and so does the tracker. On resync the
dialplan has usually moved the channel to another context, so a live channel with
``Linkedid == Uniqueid`` also counts when its ``IVR_LINE`` variable names a line, or when the
call is already known (to this tracker, or open in the database).

A call's :class:`CallStarted` is given out at the first ``IVR_*`` ``VarSet`` of its channel,
not at its ``Newchannel``: the dialplan's very first step sets ``IVR_SIP_CALL_ID`` (the
carrier's SIP Call-ID), which the start then carries. That ties the record to the cluster
front's record of dispatching the call (telephony/cluster/front.py) with no extra fact per
call, and the start waits one dialplan step, microseconds. Anything else the call does first
(its hang-up, a queue join, another variable, a resync) gives the start out as it is.

``VarSet`` and ``Hangup`` fire for every channel; they become facts only for known caller legs.
A caller's ``IVR_*`` variables are held and become one :class:`IvrVariablesSet` when the
call joins a queue (the IVR, its fail-open path and the screening have all set theirs by then)
or when it ends or vanishes: one fact per call instead of one per variable, and nothing set is
lost. Not at ``IVR_QUEUE``: the dialplan presets it before the IVR and sets it again on
fail-open, and the screening's ``IVR_SCREENING`` comes after it, so releasing there made two or
three facts of one call. Every column they fill keeps the last value set, as before.
Queue and agent events always describe the caller's channel (operators are never queued), so
they are not gated: ``AgentComplete`` is published on the queue's stasis topic, not the
channel's, so nothing orders it before the caller's ``Hangup`` that would forget the call.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from telephony.asterisk.causes import MAX_CAUSE
from telephony.calls.backfill import arrival_of
from telephony.calls.facts import (
    AsteriskBooted,
    AsteriskShutdown,
    CallEnded,
    CallFact,
    CallStarted,
    CallTransferred,
    CallVanished,
    IvrVariablesSet,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
    with_back_talks,
)
from telephony.calls.ids import valid_sip_call_id
from telephony.calls.legs import LEG_EVENT, LegState
from telephony.core.errors import SiagaError
from telephony.core.text import holds_invisible, invisible
from telephony.transfers.model import BACK_EVENT

AmiEvent = Mapping[str, str | list[str]]
"""One AMI message: header -> value, or -> list of values when the header repeats."""

CARRIER_CONTEXT = "from-carrier"  # asterisk-conf/extensions.conf
# The dialplan's first step for a caller, which drops control characters from a caller number
# (asterisk-conf/extensions.conf): its NewCallerid is the first readable event of a channel
# whose Newchannel such a number made unreadable.
CALLER_ID_CONTEXT = "siaga112-caller-id"
LINES = ("112", "119")
FALLBACK_LINE = "112"  # where the dialplan sends any other number
# The forms of 119 the dialplan takes as the 119 line (from-carrier): a carrier may write the
# dialled number nationally or in E.164. Any other form of any other number is 112.
_LINE_FORMS: Final = {form: "119" for form in ("0119", "+119", "62119", "+62119", "0062119")}


def line_of(exten: str) -> str:
    """The line the dialplan gives a call the carrier sent to ``exten``: 112 or 119 as they
    are, 119 in its national and E.164 forms, 112 for anything else. Options after a ";"
    (``119;phone-context=+62``) are not part of the number: Asterisk cuts them off
    (pjsip.conf's ignore_uri_user_options), so the line does too."""
    number = exten.partition(";")[0]
    return number if number in LINES else _LINE_FORMS.get(number, FALLBACK_LINE)
IVR_PREFIX = "IVR_"
SIP_CALL_ID = "sip_call_id"  # IVR_SIP_CALL_ID: carried by the call's CallStarted

# Asterisk device states (include/asterisk/devicestate.h, QueueMemberStatus ``Status``).
DEVICE_STATES = {
    0: "unknown",
    1: "idle",  # AST_DEVICE_NOT_INUSE
    2: "talking",  # AST_DEVICE_INUSE
    3: "busy",
    4: "invalid",
    5: "unavailable",
    6: "ringing",
    7: "ringing_in_use",  # AST_DEVICE_RINGINUSE: on a call and rung for another
    8: "on_hold",
}
LOGGED_OUT = "logged_out"
PAUSED = "paused"

MAX_IDENT = 256  # channel names, unique ids, queue and interface names
MAX_CALLER_ID = 80  # AST_MAX_EXTENSION; caller names are bounded the same
MAX_TEXT = 256  # variable values, cause texts, pause reasons
MAX_LIVE_CALLS = 10_000
RECENTLY_ENDED = 1024
MAX_OPEN = 4  # connected, not yet completed calls remembered per operator and queue
MAX_HELD_VARIABLES = 32  # distinct IVR_* names held per call (the dialplan uses 14)
MAX_TRANSFERRED = 1024  # calls remembered whose queue talk ended in a blind transfer
MAX_BACK_TALKS = 16  # talks with the operator after failed transfers, per call
TRANSFER_REASON = "transfer"  # AgentComplete's Reason when the operator transferred the caller

_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() accepts any script's digits
_TIMESTAMP = re.compile(r"([0-9]{1,11})(?:\.([0-9]{1,6}))?")
_DURATION = re.compile(r"([0-9]{2,6}):([0-5][0-9]):([0-5][0-9])")
_IVR_NAME = re.compile(r"[a-z0-9_]{1,32}")
_LEG_STATUS = re.compile(r"[A-Z]{0,24}")  # Dial()'s DIALSTATUS, or none


class AmiEventError(SiagaError, ValueError):
    """An AMI event or resync reply the tracker must reject; the message is one log-safe line."""


@dataclass(frozen=True)
class QueueSnapshot:
    """Every caller waiting and every queue member, as one whole ``QueueStatus`` reply says.

    Unlike the resync's facts (which restore only what the tracker did not know), this is
    the complete picture, for views that must drop what changed while the listener was away.
    """

    waiting: tuple[QueueJoined, ...]  # live callers only; ``at`` is estimated from ``Wait``
    members: tuple[OperatorStateChanged, ...]


@dataclass
class ResyncOutcome:
    """The facts a resync restores, the entries it had to reject on the way, and the queues'
    whole picture (``None`` when the ``QueueStatus`` reply was not provably whole)."""

    facts: list[CallFact] = field(default_factory=list)
    rejected: list[AmiEventError] = field(default_factory=list)
    queues: QueueSnapshot | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _clean(value: str, limit: int) -> str:
    """Keep what Asterisk sent, minus control/format characters, cut to ``limit`` characters."""
    if not holds_invisible(value):
        return value[:limit]
    return "".join(ch for ch in value if not invisible(ch))[:limit]


def caller_id_text(value: str) -> str:
    """A caller number or name as stored: what was sent, minus control and format characters,
    at most :data:`MAX_CALLER_ID` characters ("" for Asterisk's "<unknown>")."""
    cleaned = _clean(value, MAX_CALLER_ID)
    # Asterisk writes "<unknown>" for an absent caller ID (ast_manager_build_channel_state_string).
    return "" if cleaned == "<unknown>" else cleaned


class _Fields:
    """Typed, validating access to one event's headers (case-insensitive, as in Asterisk)."""

    __slots__ = ("_clock", "_values", "event")

    def __init__(self, event: AmiEvent, clock: Callable[[], datetime]) -> None:
        # Lower-cased key -> its value, or its values when the event gave a list. Two spellings
        # of one key (a plain dict can hold both; a panoramisk Message cannot) make it a key
        # repeated, with every value in order.
        values: dict[str, str | Sequence[str]] = {
            key.lower(): value for key, value in event.items()
        }
        if len(values) != len(event):
            merged: dict[str, list[str]] = {}
            for key, value in event.items():
                more = [value] if isinstance(value, str) else value
                merged.setdefault(key.lower(), []).extend(more)
            values = dict(merged)
        self._values = values
        self._clock = clock
        names = self.all("Event")
        self.event = names[0] if len(names) == 1 else ""

    def reject(self, problem: str) -> AmiEventError:
        uid = next(iter(self.all("Uniqueid")), "")
        return AmiEventError(f"{self.event[:40]!r} uniqueid={uid[:40]!r}: {problem}")

    def all(self, key: str) -> list[str]:
        value = self._values.get(key.lower())
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)

    def text(self, key: str) -> str:
        """The header's only value, or "" when absent."""
        value = self._values.get(key.lower(), "")
        if isinstance(value, str):
            return value
        values = list(value)
        if len(values) > 1:
            raise self.reject(f"{key} repeated")
        return values[0] if values else ""

    def ident(self, key: str) -> str:
        """A name Asterisk itself generated (ids, channels, queues): reject, never alter."""
        value = self.text(key)
        if not value:
            raise self.reject(f"{key} missing")
        if len(value) > MAX_IDENT:
            raise self.reject(f"{key} longer than {MAX_IDENT} characters")
        if _clean(value, MAX_IDENT) != value:
            raise self.reject(f"{key} has control characters: {value[:40]!r}")
        return value

    def caller(self) -> str:
        """The caller's Uniqueid on a queue member event.

        When both legs die at once (e.g. a forced hang-up), Asterisk publishes AgentComplete
        with no caller snapshot at all; the operator leg's DestLinkedid is then the caller's
        Uniqueid (caller legs are their own Linkedid), and the call must not lose its talk time.
        """
        return self.ident("Uniqueid" if self.text("Uniqueid") else "DestLinkedid")

    def number(self, key: str) -> int:
        value = self.text(key)
        if not _NUMBER.fullmatch(value):
            raise self.reject(f"{key} is not a number: {value[:40]!r}")
        return int(value)

    def flag(self, key: str) -> bool:
        value = self.text(key)
        if value not in ("0", "1"):
            raise self.reject(f"{key} is not 0 or 1: {value[:40]!r}")
        return value == "1"

    def at(self) -> datetime:
        """When Asterisk stamped the event (``timestampevents=yes``), else now."""
        value = self.text("Timestamp")
        if not value:
            return self._clock()
        match = _TIMESTAMP.fullmatch(value)
        if match is None:
            raise self.reject(f"Timestamp is malformed: {value[:40]!r}")
        seconds, fraction = match.groups()
        micro = int((fraction or "").ljust(6, "0"))
        return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=micro)

    def device_state(self) -> tuple[str, bool, str]:
        """(state, paused, reason) of a queue member, a pause shown only on an idle device.

        A paused operator who is still talking or ringing is first of all talking or ringing.
        """
        code = self.number("Status")
        if code not in DEVICE_STATES:
            raise self.reject(f"Status {code} is not a device state")
        paused = self.flag("Paused")
        state = DEVICE_STATES[code]
        if paused and state == "idle":
            state = PAUSED
        return state, paused, _clean(self.text("PausedReason"), MAX_TEXT)


def _ivr_variable(name: str) -> str | None:
    """``IVR_CHOICE`` -> ``choice``; None for other variables."""
    # Asterisk reports an inheritable variable under its full name, underscores included.
    bare = name.removeprefix("__") if name.startswith("__") else name.removeprefix("_")
    if not bare.startswith(IVR_PREFIX):
        return None
    return bare[len(IVR_PREFIX) :].lower()


def _resync_instant(uid: str, now: datetime) -> datetime:
    """The instant of what a resync restores about a call: its arrival (the Uniqueid's epoch),
    the same at every resync, so that restoring it again is the same fact (a no-op to the
    store); ``now`` only for an id that carries no epoch."""
    arrival = arrival_of(uid)
    return arrival if arrival is not None and arrival <= now else now


class CallTracker:
    """Turns AMI events into call facts; remembers only which channels are live callers.

    State is bounded: a call is forgotten at its ``Hangup`` (or when a resync finds it gone),
    except for a short memory of recently ended calls so that a replayed event for one of them
    still gives the same fact. ``carrier_context`` is the dialplan context of incoming calls.
    """

    def __init__(
        self,
        *,
        carrier_context: str = CARRIER_CONTEXT,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._carrier_context = carrier_context
        self._clock = clock
        # Live caller Uniqueid -> queues it is waiting in (to recognise a known join on resync).
        self._live: dict[str, set[str]] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        # Known caller Uniqueid -> IVR_* values set and not yet given out as a fact, in order;
        # and the last fact given out (a repeated join or hang-up event gives it again). Both are
        # kept for recently ended calls too, so that a replayed call gives the same facts.
        self._held: dict[str, dict[str, str]] = {}
        self._released: dict[str, IvrVariablesSet] = {}
        # Started calls whose CallStarted waits for the SIP Call-ID (see the module's doc), and
        # each start given out with what tells the event that gave it (the same event again,
        # a duplicate, gives it again); kept like the released IVR values.
        self._pending: dict[str, CallStarted] = {}
        self._given: dict[str, tuple[tuple[object, ...], CallStarted]] = {}
        # (queue, operator interface) -> calls connected there whose AgentComplete has not come
        # yet, oldest first. Under load app_queue builds AgentComplete after both legs' channels
        # are gone, with neither Uniqueid nor DestLinkedid; the operator was on exactly one call
        # in that queue (ringinuse=no), so the oldest open connect is the call that completed.
        self._talking: dict[tuple[str, str], deque[str]] = {}
        # Calls whose queue talk ended in a transfer (their AgentComplete), and the talks with
        # the operator after a blind transfer nobody answered brought the caller back
        # (UserEvent SiagaBack): operator channel's Uniqueid -> (answered, ended). Queue()
        # stops counting at the transfer, so these add to the call's talk time. Kept past the
        # caller's Hangup: the operator channel's hang-up handler reports after it.
        self._transferred: OrderedDict[
            str, tuple[OperatorCompleted, dict[str, tuple[datetime, datetime | None]]]
        ] = OrderedDict()
        self._handlers: dict[str, Callable[[_Fields], list[CallFact]]] = {
            "newchannel": self._newchannel,
            "newcallerid": self._new_caller_id,
            "varset": self._varset,
            "hangup": self._hangup,
            "queuecallerjoin": self._queue_join,
            "queuecallerleave": self._queue_leave,
            "queuecallerabandon": self._queue_abandon,
            "agentcalled": self._agent_called,
            "agentconnect": self._agent_connect,
            "agentcomplete": self._agent_complete,
            "queuememberstatus": self._member_state,
            "queuememberpause": self._member_state,
            "queuememberadded": self._member_state,
            "queuememberremoved": self._member_removed,
            "userevent": self._user_event,
            "attendedtransfer": self._attended_transfer,
            "shutdown": self._asterisk_shutdown,
            "fullybooted": self._asterisk_booted,
        }

    @property
    def live_calls(self) -> frozenset[str]:
        """The call ids (caller Uniqueids) the tracker believes are live."""
        return frozenset(self._live)

    def handle(self, event: AmiEvent) -> list[CallFact]:
        """The facts one AMI event establishes (often none).

        Raises :class:`AmiEventError` for a malformed event of a kind the tracker follows;
        the tracker's state is then unchanged.
        """
        name = event.get("Event")
        if isinstance(name, str) and name.lower() not in self._handlers:
            # Most events are of kinds the tracker does not follow; their "Event" alone says
            # so (if another spelling of it repeats the header, the event is ignored too).
            return []
        fields = _Fields(event, self._clock)
        handler = self._handlers.get(fields.event.lower())
        return [] if handler is None else handler(fields)

    # -- calls --------------------------------------------------------------------------------

    def _known(self, uid: str) -> bool:
        return uid in self._live or uid in self._ended

    def _adopt(self, uid: str) -> None:
        if uid in self._live or uid in self._ended:
            return
        if len(self._live) >= MAX_LIVE_CALLS:
            # Only reachable if hang-ups were lost on a massive scale; the oldest entry is the
            # likeliest stale one, and refusing a new emergency call is never the answer.
            oldest = next(iter(self._live))
            del self._live[oldest]
            self._pending.pop(oldest, None)
            self._given.pop(oldest, None)
            self._held.pop(oldest, None)
            self._released.pop(oldest, None)
        self._live[uid] = set()

    def _release(self, uid: str, at: datetime) -> list[CallFact]:
        """The call's held IVR values as one fact (none if nothing is held)."""
        held = self._held.pop(uid, None)
        if not held:
            last = self._released.get(uid)
            # The same event again (a duplicate): the same fact, which the store dedupes.
            return [last] if last is not None and last.at == at else []
        fact = IvrVariablesSet(uid, tuple(held.items()), at)
        self._released[uid] = fact
        return [fact]

    def _started(self, uid: str, event: tuple[object, ...], sip_call_id: str = "",
                 ) -> list[CallFact]:
        """The call's CallStarted if it still waits to be given out, or if the same
        ``event`` (its kind, instant and what else tells it apart) gave it out before: a
        duplicate. Else none."""
        fact = self._pending.pop(uid, None)
        if fact is None:
            given = self._given.get(uid)
            return [given[1]] if given is not None and given[0] == event else []
        if sip_call_id:
            fact = replace(fact, sip_call_id=sip_call_id)
        self._given[uid] = (event, fact)
        return [fact]

    def _forget(self, uid: str) -> None:
        self._live.pop(uid, None)
        self._pending.pop(uid, None)
        self._held.pop(uid, None)
        self._ended[uid] = None
        self._ended.move_to_end(uid)
        while len(self._ended) > RECENTLY_ENDED:
            old, _ = self._ended.popitem(last=False)
            self._given.pop(old, None)
            self._held.pop(old, None)
            self._released.pop(old, None)

    def _newchannel(self, f: _Fields) -> list[CallFact]:
        uid, linked = f.ident("Uniqueid"), f.ident("Linkedid")
        if uid != linked or f.text("Context") != self._carrier_context:
            return []
        self._arrived(f, uid)
        return []

    def _arrived(self, f: _Fields, uid: str) -> None:
        """A caller's channel arrived: its CallStarted waits to be given out."""
        fact = CallStarted(
            call_id=uid,
            linked_id=uid,
            channel=f.ident("Channel"),
            caller_number=caller_id_text(f.text("CallerIDNum")),
            caller_name=caller_id_text(f.text("CallerIDName")),
            line=line_of(f.text("Exten")),
            at=f.at(),
        )
        self._adopt(uid)
        self._pending[uid] = fact

    def _new_caller_id(self, f: _Fields) -> list[CallFact]:
        """The dialplan corrected a caller's id as the call arrived (a SIM-less phone's IMEI
        the carrier wrote unescaped, ``siaga112-simless-id``), before anything gave the call
        out: the call starts with the corrected id. A change after that (none of the line's
        own) is not the id the caller arrived with, and is left alone.

        A caller number with a CR or LF (which PJSIP unescapes from ``%0D%0A``) cuts every
        event of the channel in two, its Newchannel included, and the line never sees the
        call start; the dialplan's first step (:data:`CALLER_ID_CONTEXT`) drops such
        characters, and this event, the channel's first readable one, starts the call as
        Newchannel would have (its line from ``IVR_LINE``, set next)."""
        uid = f.ident("Uniqueid")
        fact = self._pending.get(uid)
        if (fact is None and f.text("Context") == CALLER_ID_CONTEXT
                and uid == f.ident("Linkedid") and not self._known(uid)):
            self._arrived(f, uid)
            return []
        if fact is not None:
            self._pending[uid] = replace(
                fact, caller_number=caller_id_text(f.text("CallerIDNum")),
                caller_name=caller_id_text(f.text("CallerIDName")))
        return []

    def _varset(self, f: _Fields) -> list[CallFact]:
        name = _ivr_variable(f.text("Variable"))
        if name is None:
            return []
        uid = f.ident("Uniqueid")
        if not self._known(uid):
            return []
        if not _IVR_NAME.fullmatch(name):
            raise f.reject(f"IVR variable name is malformed: {name[:40]!r}")
        if name == SIP_CALL_ID:
            call_id = f.text("Value")
            if call_id and not valid_sip_call_id(call_id):
                # The start stays held: the next variable (IVR_CALL_ID) gives it out.
                raise f.reject(f"IVR_SIP_CALL_ID is no SIP Call-ID: {call_id[:40]!r}")
            return self._started(uid, ("varset", name, call_id, f.at()), call_id)
        value, at = _clean(f.text("Value"), MAX_TEXT), f.at()
        started = self._started(uid, ("varset", name, value, at))
        held = self._held.setdefault(uid, {})
        if name not in held and len(held) >= MAX_HELD_VARIABLES:
            # Bounded memory against a dialplan gone wrong: give out what is held so far.
            facts = self._release(uid, at)
            self._held[uid] = {name: value}
            return [*started, *facts]
        held[name] = value
        return started

    def _hangup(self, f: _Fields) -> list[CallFact]:
        uid = f.ident("Uniqueid")
        if not self._known(uid):
            return []
        at = f.at()
        fact = CallEnded(uid, f.number("Cause"), _clean(f.text("Cause-txt"), MAX_TEXT), at)
        facts = [*self._started(uid, ("hangup", at)), *self._release(uid, at), fact]
        self._forget(uid)
        return facts

    def _user_event(self, f: _Fields) -> list[CallFact]:
        """A leg the line placed moved on (``UserEvent SiagaLeg``, siaga112-leg), or the
        operator talks again with a caller a blind transfer brought back (``SiagaBack``);
        other user events are not the line's."""
        name = f.text("UserEvent")
        if name == BACK_EVENT:
            return self._back_talk(f)
        if name != LEG_EVENT:
            return []
        leg = f.number("Leg")  # up to 9 digits: ids the line gave out
        if leg == 0:
            raise f.reject("Leg 0 is no leg")
        try:
            state = LegState(f.text("State"))
        except ValueError:
            raise f.reject(f"State is not a leg state: {f.text('State')[:40]!r}") from None
        status = f.text("Status") if state is LegState.ENDED else ""
        if not _LEG_STATUS.fullmatch(status):
            raise f.reject(f"Status is malformed: {status[:40]!r}")
        # The reporting channel's HANGUPCAUSE; none (or not a cause) records the end without
        # one rather than losing the end itself.
        cause_text = f.text("Cause") if state is LegState.ENDED else ""
        cause = int(cause_text) if _NUMBER.fullmatch(cause_text) \
            and int(cause_text) <= MAX_CAUSE else 0
        return [LegProgressed(leg, state.value, status, f.ident("Uniqueid"), f.at(), cause)]

    def _attended_transfer(self, f: _Fields) -> list[CallFact]:
        """A caller the line follows was handed over by an attended transfer: joined with
        the transfer target in one bridge. Other outcomes (failed, three-way, to an
        application) leave the caller where they were, and other channels are not calls."""
        if f.text("Result") != "Success" or f.text("DestType") != "Bridge":
            return []
        if not f.text("TransfereeLinkedid"):
            return []  # no transferee snapshot: nobody of ours was moved
        call_id = f.ident("TransfereeLinkedid")
        if not self._known(call_id):
            return []
        target = _clean(f.text("TransferTargetChannel"), MAX_IDENT)
        return [CallTransferred(call_id, target, f.at())]

    # -- Asterisk itself (telephony/calls/outages.py) ----------------------------------------

    def _asterisk_shutdown(self, f: _Fields) -> list[CallFact]:
        """Asterisk is ending (``Shutdown``), after hanging up every channel."""
        return [AsteriskShutdown(f.text("Restart").lower() == "true", f.at())]

    def _asterisk_booted(self, f: _Fields) -> list[CallFact]:
        """A session's greeting; its ``Uptime`` tells a restarted Asterisk from the same one.
        The greeting carries no Timestamp: ``at`` is when it was read."""
        if not f.text("Uptime"):
            return []  # an Asterisk older than 13 says nothing of its uptime
        return [AsteriskBooted(f.number("Uptime"), f.at())]

    # -- queue --------------------------------------------------------------------------------

    def _queue_join(self, f: _Fields) -> list[CallFact]:
        fact = QueueJoined(f.ident("Uniqueid"), f.ident("Queue"), f.number("Position"), f.at())
        if fact.call_id in self._live:
            self._live[fact.call_id].add(fact.queue)
        # The IVR and the screening are over once the caller waits: what they set is complete.
        started = self._started(fact.call_id, ("join", fact.queue, fact.at))
        return [*started, *self._release(fact.call_id, fact.at), fact]

    def _queue_leave(self, f: _Fields) -> list[CallFact]:
        fact = QueueLeft(f.ident("Uniqueid"), f.ident("Queue"), f.number("Position"), f.at())
        self._live.get(fact.call_id, set()).discard(fact.queue)
        return [fact]

    def _queue_abandon(self, f: _Fields) -> list[CallFact]:
        fact = QueueAbandoned(
            call_id=f.ident("Uniqueid"),
            queue=f.ident("Queue"),
            original_position=f.number("OriginalPosition"),
            final_position=f.number("Position"),
            wait_seconds=f.number("HoldTime"),
            at=f.at(),
        )
        self._live.get(fact.call_id, set()).discard(fact.queue)
        return [fact]

    def _agent_called(self, f: _Fields) -> list[CallFact]:
        return [OperatorRung(f.ident("Uniqueid"), f.ident("Queue"), f.ident("Interface"), f.at())]

    def _agent_connect(self, f: _Fields) -> list[CallFact]:
        fact = OperatorAnswered(
            call_id=f.caller(),
            queue=f.ident("Queue"),
            operator=f.ident("Interface"),
            wait_seconds=f.number("HoldTime"),
            ring_seconds=f.number("RingTime"),
            at=f.at(),
        )
        # maxlen: more than one open call per operator and queue means AgentCompletes were
        # lost (a reconnect); the oldest are then the stale ones, and memory stays bounded.
        talking = self._talking.setdefault((fact.queue, fact.operator), deque(maxlen=MAX_OPEN))
        if fact.call_id not in talking:
            talking.append(fact.call_id)
        return [fact]

    def _agent_complete(self, f: _Fields) -> list[CallFact]:
        queue, operator = f.ident("Queue"), f.ident("Interface")
        key = (queue, operator)
        talking = self._talking.get(key, deque())
        if f.text("Uniqueid") or f.text("DestLinkedid") or not talking:
            call_id = f.caller()
        else:
            call_id = talking[0]
        fact = OperatorCompleted(
            call_id=call_id,
            queue=queue,
            operator=operator,
            wait_seconds=f.number("HoldTime"),
            talk_seconds=f.number("TalkTime"),
            ended_by=_clean(f.text("Reason"), MAX_TEXT),
            at=f.at(),
        )
        if call_id in talking:
            talking.remove(call_id)
        if not talking:
            self._talking.pop(key, None)
        self._note_transfer(fact)
        return [fact]

    def _note_transfer(self, fact: OperatorCompleted) -> None:
        """Remember a queue talk that ended in a transfer, for the talk after it (see
        :meth:`_back_talk`); a later completion of the call (queued again, answered by
        someone) is the call's talk from then on, as the store keeps the last."""
        if fact.ended_by != TRANSFER_REASON:
            self._transferred.pop(fact.call_id, None)
            return
        known = self._transferred.get(fact.call_id)
        if known is not None and known[0] == fact:
            return  # the same event again: the talks after it stay
        self._transferred[fact.call_id] = (fact, {})
        self._transferred.move_to_end(fact.call_id)
        while len(self._transferred) > MAX_TRANSFERRED:
            self._transferred.popitem(last=False)

    def _back_talk(self, f: _Fields) -> list[CallFact]:
        """The operator answered (``State: answered``) or left (``ended``) a caller whom a
        blind transfer nobody answered brought back ([siaga112-back-answered]). At its end
        the call's completion is given again, its talk time now the queue's up to the
        transfer plus every such talk: the talk a supervisor means, not the seconds before
        the transfer (the ring of the agency, with nobody talking, is not in it). Without
        the transfer's completion (the listener restarted in between) nothing is given
        here: the dialplan logs the talk back to the queue_log too (``SIAGABACK``), and the
        backfill's advancer gives the same completion from there
        (:func:`telephony.calls.backfill.back_facts`)."""
        call_id, channel = f.ident("Call"), f.ident("Uniqueid")
        state, at = f.text("State"), f.at()
        if state not in ("answered", "ended"):
            raise f.reject(f"State is not answered or ended: {state[:40]!r}")
        known = self._transferred.get(call_id)
        if known is None:
            return []
        completed, talks = known
        if state == "answered":
            if channel not in talks and len(talks) < MAX_BACK_TALKS:
                talks[channel] = (at, None)
            return []
        talk = talks.get(channel)
        if talk is None:
            return []
        answered, ended = talk
        talks[channel] = (answered, ended or at)
        return [with_back_talks(completed, talks.values(), ended or at)]

    # -- operators ----------------------------------------------------------------------------

    def _member_state(self, f: _Fields) -> list[CallFact]:
        state, paused, reason = f.device_state()
        return [
            OperatorStateChanged(
                f.ident("Interface"), f.ident("Queue"), state, paused, reason, f.at()
            )
        ]

    def _member_removed(self, f: _Fields) -> list[CallFact]:
        return [
            OperatorStateChanged(
                f.ident("Interface"), f.ident("Queue"), LOGGED_OUT, False, "", f.at()
            )
        ]

    # -- resync -------------------------------------------------------------------------------

    def resync(
        self,
        queue_status: Sequence[AmiEvent],
        channels: Sequence[AmiEvent],
        status: Sequence[AmiEvent],
        open_call_ids: Collection[str] = frozenset(),
        *,
        spooled: Mapping[str, Collection[str]] | None = None,
        waiting: Mapping[str, Collection[str]] | None = None,
    ) -> ResyncOutcome:
        """Restore the state after a (re)connection from Asterisk's own snapshots.

        ``queue_status``, ``channels`` and ``status`` are the whole replies (response, events,
        ``...Complete`` event) to ``QueueStatus``, ``CoreShowChannels`` and ``Status`` with
        ``Variables: IVR_...``; ``open_call_ids`` are the calls the database still has open;
        ``spooled`` the calls the store's spool names (facts it has yet to write), each with
        the queues it waits in as the spool says: followed before, so neither started nor
        joined there again (a line restarted while the database was away), and not declared
        vanished on the spool's word (the queue_log may end them); ``waiting`` the queues the
        store has each of ``open_call_ids`` waiting in: not joined there again either.
        Gives ``CallStarted`` for live calls nobody knew, one ``IvrVariablesSet`` with each
        one's ``IVR_*`` variables, ``QueueJoined`` for waits not yet known (joined ``Wait`` seconds
        ago), ``OperatorStateChanged`` for every queue member, and ``CallVanished`` for known
        calls no longer alive. A call is declared vanished only from a provably whole channel
        list: one cut short, or with a rejected entry, could otherwise end a live call.
        """
        now = self._clock()
        outcome = ResyncOutcome()
        variables = self._status_variables(status, outcome)
        chans, channels_whole = self._list_reply(channels, "CoreShowChannelsComplete", outcome)
        known = set(self._live) | set(open_call_ids)
        spooled = spooled or {}
        seen = known | spooled.keys()
        callers: dict[str, set[str]] = {}
        for chan in chans:
            try:
                found = self._resync_channel(chan, variables, seen, now)
            except AmiEventError as exc:
                outcome.rejected.append(exc)
                channels_whole = False
                continue
            if found is None:
                continue
            uid, started = found
            reported = dict(variables.get(uid, []))
            sip_call_id = reported.pop(SIP_CALL_ID, "")
            sip_call_id = sip_call_id if valid_sip_call_id(sip_call_id) else ""
            if started is not None:
                outcome.facts.append(replace(started, sip_call_id=sip_call_id))
            else:
                outcome.facts.extend(self._started(uid, ("resync", now), sip_call_id))
            # Status reports every IVR_* value the channel has now: what is held is included.
            held = self._held.pop(uid, {})
            held.update(reported)
            if held:
                outcome.facts.append(IvrVariablesSet(uid, tuple(held.items()),
                                                     _resync_instant(uid, now)))
            callers[uid] = self._live.get(uid) or {*spooled.get(uid, ()),
                                                   *(waiting or {}).get(uid, ())}

        if channels_whole:
            # A call whose Hangup we saw may still look open to a store that is spooling.
            for uid in sorted(known - callers.keys() - self._ended.keys()):
                outcome.facts.extend(self._vanish(uid, now))
        else:
            outcome.rejected.append(
                AmiEventError("CoreShowChannels reply not whole: no call declared vanished")
            )
            callers.update(self._live)
        self._live = callers
        for uid in self._held.keys() - callers.keys():
            del self._held[uid]  # held memory follows the live calls
        for uid in self._pending.keys() - callers.keys():
            del self._pending[uid]
        for uid in self._given.keys() - callers.keys() - self._ended.keys():
            del self._given[uid]
        for uid in self._released.keys() - callers.keys() - self._ended.keys():
            del self._released[uid]
        self._resync_queues(queue_status, now, outcome)
        return outcome

    def asterisk_gone(self) -> list[CallFact]:
        """``CallVanished`` for every call followed: Asterisk is known to be gone (its process
        refuses every connection), and no channel outlives its Asterisk. What a resync
        against an empty channel list would give, without one."""
        now = self._clock()
        facts: list[CallFact] = []
        for uid in list(self._live):
            facts.extend(self._vanish(uid, now))
        return facts

    def _vanish(self, uid: str, now: datetime) -> list[CallFact]:
        """The call is no more: what was held back of it, then its ``CallVanished``."""
        facts = [*self._started(uid, ("resync", now)), *self._release(uid, now),
                 CallVanished(uid, now)]
        self._forget(uid)
        return facts

    def vanished(
        self, channels: Sequence[AmiEvent], open_call_ids: Collection[str]
    ) -> ResyncOutcome:
        """``CallVanished`` for the calls the store has open (``open_call_ids``, read before
        ``channels`` was asked for) that the whole ``CoreShowChannels`` reply ``channels`` no
        longer has and that the tracker does not follow: their hang-up was missed (the store
        could not say they were open at the last resync). A call the tracker follows, or saw
        end, is left to its own events; a reply not provably whole declares nothing."""
        now = self._clock()
        outcome = ResyncOutcome()
        chans, whole = self._list_reply(channels, "CoreShowChannelsComplete", outcome)
        alive: set[str] = set()
        for chan in chans:
            if chan.event.lower() != "coreshowchannel":
                continue
            try:
                alive.add(chan.ident("Uniqueid"))
            except AmiEventError as exc:
                outcome.rejected.append(exc)
                whole = False
        if not whole:
            outcome.rejected.append(
                AmiEventError("CoreShowChannels reply not whole: no call declared vanished")
            )
            return outcome
        gone = set(open_call_ids) - alive - self._live.keys() - self._ended.keys()
        for uid in sorted(gone):
            outcome.facts.append(CallVanished(uid, now))
            self._forget(uid)
        return outcome

    def _list_reply(
        self, reply: Sequence[AmiEvent], complete: str, outcome: ResyncOutcome
    ) -> tuple[list[_Fields], bool]:
        """The events of a list reply, and whether its ``complete`` event vouches for them all.

        Asterisk ends a list with ``Event: <complete>`` carrying ``ListItems: <count>``.
        """
        events = [_Fields(e, self._clock) for e in reply]
        items = [f for f in events if f.event and f.event.lower() != complete.lower()]
        ends = [f for f in events if f.event.lower() == complete.lower()]
        if len(ends) != 1:
            return items, False
        try:
            return items, ends[0].number("ListItems") == len(items)
        except AmiEventError as exc:
            outcome.rejected.append(exc)
            return items, False

    def _status_variables(
        self, status: Sequence[AmiEvent], outcome: ResyncOutcome
    ) -> dict[str, list[tuple[str, str]]]:
        """Uniqueid -> [(ivr name, value)] from ``Status`` events' ``Variable: NAME=value``."""
        found: dict[str, list[tuple[str, str]]] = {}
        entries, _ = self._list_reply(status, "StatusComplete", outcome)
        for entry in entries:
            if entry.event.lower() != "status":
                continue
            try:
                uid = entry.ident("Uniqueid")
            except AmiEventError as exc:
                outcome.rejected.append(exc)
                continue
            pairs = []
            for assignment in entry.all("Variable"):
                raw_name, _, value = assignment.partition("=")
                name = _ivr_variable(raw_name)
                # An unset variable comes back empty, or as "(null)": Asterisk formats the
                # NULL it got from pbx_retrieve_variable with "%s".
                if name is None or value in ("", "(null)") or not _IVR_NAME.fullmatch(name):
                    continue
                pairs.append((name, _clean(value, MAX_TEXT)))
            found[uid] = pairs
        return found

    def _resync_channel(
        self,
        chan: _Fields,
        variables: Mapping[str, list[tuple[str, str]]],
        known: set[str],
        now: datetime,
    ) -> tuple[str, CallStarted | None] | None:
        """(call id, CallStarted if the call is new) for a caller's channel, else None."""
        if chan.event.lower() != "coreshowchannel":
            return None
        uid, linked = chan.ident("Uniqueid"), chan.ident("Linkedid")
        if uid in known:
            return uid, None
        ivr_line = dict(variables.get(uid, [])).get("line", "")
        in_carrier_context = chan.text("Context") == self._carrier_context
        if uid != linked or uid in self._ended or not (ivr_line in LINES or in_carrier_context):
            return None
        exten = chan.text("Exten")
        line = ivr_line if ivr_line in LINES else line_of(exten)
        age = timedelta()
        duration = _DURATION.fullmatch(chan.text("Duration"))
        if duration is not None:
            hours, minutes, seconds = (int(part) for part in duration.groups())
            age = timedelta(hours=hours, minutes=minutes, seconds=seconds)
        arrival = arrival_of(uid)
        if arrival is None or arrival > now:
            arrival = now - age  # not an Asterisk Uniqueid (or a clock gone back): as before
        started = CallStarted(
            call_id=uid,
            linked_id=linked,
            channel=chan.ident("Channel"),
            caller_number=caller_id_text(chan.text("CallerIDNum")),
            caller_name=caller_id_text(chan.text("CallerIDName")),
            line=line,
            at=arrival,
        )
        return uid, started

    def _resync_queues(
        self, queue_status: Sequence[AmiEvent], now: datetime, outcome: ResyncOutcome
    ) -> None:
        events, whole = self._list_reply(queue_status, "QueueStatusComplete", outcome)
        waiting: dict[str, set[str]] = {}
        entries: list[QueueJoined] = []
        members: list[OperatorStateChanged] = []
        complete = whole  # a rejected entry leaves a hole in the picture
        for event in events:
            try:
                fact = self._resync_queue_event(event, now)
            except AmiEventError as exc:
                outcome.rejected.append(exc)
                complete = False
                continue
            if isinstance(fact, OperatorStateChanged):
                members.append(fact)
            if isinstance(fact, QueueJoined):
                if fact.call_id not in self._live:
                    continue
                entries.append(fact)
                waiting.setdefault(fact.call_id, set()).add(fact.queue)
                if fact.queue in self._live[fact.call_id]:
                    continue
            if fact is not None:
                outcome.facts.append(fact)
        for uid, queues in self._live.items():
            if whole:
                queues.clear()
            queues.update(waiting.get(uid, ()))
        if complete:
            outcome.queues = QueueSnapshot(tuple(entries), tuple(members))

    @staticmethod
    def _resync_queue_event(
        event: _Fields, now: datetime
    ) -> QueueJoined | OperatorStateChanged | None:
        kind = event.event.lower()
        if kind == "queueentry":
            return QueueJoined(
                call_id=event.ident("Uniqueid"),
                queue=event.ident("Queue"),
                position=event.number("Position"),
                at=now - timedelta(seconds=event.number("Wait")),
            )
        if kind == "queuemember":
            # QueueStatus names a member's interface "Location", unlike the member events.
            state, paused, reason = event.device_state()
            return OperatorStateChanged(
                event.ident("Location"), event.ident("Queue"), state, paused, reason, now
            )
        return None
