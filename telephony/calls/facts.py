"""What we learn about a call, one fact at a time.

The AMI tracker turns Asterisk events into these facts; the call store writes them to
PostgreSQL (or spools them when it cannot). Every fact names the caller's channel by its
Asterisk ``Uniqueid`` (``call_id``) and carries the instant Asterisk stamped on the event, so
writing the same fact twice changes nothing: a replayed or duplicated event is harmless.

Facts are plain frozen dataclasses that round-trip through JSON for the on-disk spool.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from telephony.core.errors import SiagaError


@dataclass(frozen=True)
class CallStarted:
    """A caller's channel entered the line (AMI ``Newchannel``, or found again on resync)."""

    kind: ClassVar[str] = "call_started"
    call_id: str
    linked_id: str
    channel: str
    caller_number: str
    caller_name: str
    line: str  # the number dialled: "112" or "119"
    at: datetime
    # The SIP Call-ID of the carrier's INVITE (the dialplan's IVR_SIP_CALL_ID, set first of
    # all): what ties the call to the cluster front's record of dispatching it
    # (telephony/cluster/front.py). "" when unknown (a single node, an older dialplan).
    sip_call_id: str = ""


@dataclass(frozen=True)
class IvrVariableSet:
    """The IVR or the dialplan set one of the ``IVR_*`` channel variables (AMI ``VarSet``)."""

    kind: ClassVar[str] = "ivr_variable"
    call_id: str
    name: str  # without the IVR_ prefix, lower case: choice, outcome, category, skill, queue
    value: str
    at: datetime


Variables = tuple[tuple[str, str], ...]
"""(name, value) pairs, in the order they were set; names as in :class:`IvrVariableSet`."""


@dataclass(frozen=True)
class IvrVariablesSet:
    """The IVR or the dialplan set some ``IVR_*`` channel variables: one fact for all of them.

    The tracker holds a call's ``IVR_*`` values and emits them together when ``IVR_QUEUE``
    (which the IVR sets last) arrives, when the call joins a queue, and when it ends or
    vanishes; a resync gives one for everything ``Status`` reports. A name appears at most
    once, with the last value set. :class:`IvrVariableSet` (one variable) is what earlier
    versions recorded and spooled; both are still read and written alike.
    """

    kind: ClassVar[str] = "ivr_variables"
    call_id: str
    variables: Variables
    at: datetime


@dataclass(frozen=True)
class QueueJoined:
    """The caller entered a queue at a position (AMI ``QueueCallerJoin``)."""

    kind: ClassVar[str] = "queue_joined"
    call_id: str
    queue: str
    position: int
    at: datetime


@dataclass(frozen=True)
class QueueLeft:
    """The caller left a queue, answered or not (AMI ``QueueCallerLeave``)."""

    kind: ClassVar[str] = "queue_left"
    call_id: str
    queue: str
    position: int
    at: datetime


@dataclass(frozen=True)
class OperatorRung:
    """Asterisk rang an operator for this caller (AMI ``AgentCalled``)."""

    kind: ClassVar[str] = "operator_rung"
    call_id: str
    queue: str
    operator: str  # the member's interface, e.g. PJSIP/op1001
    at: datetime


@dataclass(frozen=True)
class OperatorAnswered:
    """An operator answered; ``wait_seconds`` is the caller's time in queue (``AgentConnect``)."""

    kind: ClassVar[str] = "operator_answered"
    call_id: str
    queue: str
    operator: str
    wait_seconds: int
    ring_seconds: int
    at: datetime


@dataclass(frozen=True)
class OperatorCompleted:
    """The conversation ended (AMI ``AgentComplete``); carries enough to stand alone.

    ``ended_by`` is Asterisk's ``Reason``: caller, agent or transfer.
    """

    kind: ClassVar[str] = "operator_completed"
    call_id: str
    queue: str
    operator: str
    wait_seconds: int
    talk_seconds: int
    ended_by: str
    at: datetime


def with_back_talks(
    completed: OperatorCompleted,
    talks: Iterable[tuple[datetime, datetime | None]],
    ended: datetime,
) -> OperatorCompleted:
    """A transfer's completion given again as a talk back with the caller ends at ``ended``
    (a blind transfer nobody answered brought the caller back to the operator, UserEvent
    ``SiagaBack``): its talk the queue's up to the transfer plus every ended talk back (each
    as whole seconds, answered -> ended). The AMI tracker and the backfill (from the
    queue_log's ``SIAGABACK``) both give it so."""
    extra = sum(max(0, round((end - start).total_seconds()))
                for start, end in talks if end is not None)
    return dataclasses.replace(completed, talk_seconds=completed.talk_seconds + extra,
                               at=max(completed.at, ended))


@dataclass(frozen=True)
class QueueAbandoned:
    """The caller hung up while waiting (AMI ``QueueCallerAbandon``)."""

    kind: ClassVar[str] = "queue_abandoned"
    call_id: str
    queue: str
    original_position: int
    final_position: int
    wait_seconds: int
    at: datetime


@dataclass(frozen=True)
class CallEnded:
    """The caller's channel hung up (AMI ``Hangup``), with the Q.850 cause."""

    kind: ClassVar[str] = "call_ended"
    call_id: str
    cause: int
    cause_text: str
    at: datetime


@dataclass(frozen=True)
class CallVanished:
    """On resync the caller's channel no longer exists, and its hang-up was never seen."""

    kind: ClassVar[str] = "call_vanished"
    call_id: str
    at: datetime


@dataclass(frozen=True)
class CallLost:
    """A call the cluster's SIP front dispatched to a node that left no record of it: the node
    died with it (``kill -9``, a machine lost) before its line stored the call's start. Made by
    a line from the front's own record (telephony/cluster/front.py); ``at`` is when the front
    dispatched it, ``reply`` the front's final SIP reply to the carrier ("200 OK")."""

    kind: ClassVar[str] = "call_lost"
    call_id: str
    sip_call_id: str
    node: str
    caller_number: str
    line: str
    reply: str
    at: datetime


@dataclass(frozen=True)
class CallBackfilled:
    """The line did not see this call (or its end) happen: it was rebuilt from what Asterisk
    logged (``telephony/calls/backfill.py``). ``at`` is the call's arrival, so that reading the
    log again gives the same fact."""

    kind: ClassVar[str] = "call_backfilled"
    call_id: str
    at: datetime


@dataclass(frozen=True)
class OperatorStateChanged:
    """A queue member's device state or pause changed (``QueueMemberStatus``/``...Pause``)."""

    kind: ClassVar[str] = "operator_state"
    operator: str
    queue: str
    state: str  # idle, ringing, talking, unavailable, paused, ... (see ami tracker)
    paused: bool
    pause_reason: str
    at: datetime


@dataclass(frozen=True)
class LegProgressed:
    """A leg the line placed (a transfer, a call-back) moved on: the dialplan's ``UserEvent
    SiagaLeg`` (``telephony/calls/legs.py``). ``status`` is Dial()'s, on ``ended`` only."""

    kind: ClassVar[str] = "leg_progressed"
    leg_id: int
    state: str  # dialling, answered, ended (telephony.calls.legs.LegState)
    status: str
    channel_id: str  # the Uniqueid of the channel that reported it
    at: datetime
    # On ``ended``: the reporting channel's HANGUPCAUSE; 0 (Asterisk's "not defined") if none.
    cause: int = 0


@dataclass(frozen=True)
class CallTransferred:
    """Asterisk completed an attended transfer of the call's caller into the transfer
    target's bridge (AMI ``AttendedTransfer``, ``Result: Success``, ``DestType: Bridge``):
    the transferer's complete key (features.conf atxfercomplete, the line's "Serahkan") or the
    transferer hanging up during the consult. ``target`` is the channel the caller was
    joined to (the agency's, or the Atxfer's Local channel)."""

    kind: ClassVar[str] = "call_transferred"
    call_id: str
    target: str
    at: datetime


@dataclass(frozen=True)
class CallCut:
    """Asterisk's end cut the call: a restart or stop (``reason`` ``asterisk_restart``) or a
    crash (``asterisk_crash``); see :mod:`telephony.ami.outages`. ``at`` is when the call was
    last seen alive: its hang-up, or for a crash the last moment the AMI session was alive."""

    kind: ClassVar[str] = "call_cut"
    call_id: str
    reason: str  # telephony.calls.outages.CutReason
    at: datetime


@dataclass(frozen=True)
class LegCut:
    """Asterisk's end cut a leg the line placed (a call-back, a transfer) that had not ended
    before it: its end came in the restart's burst of hang-ups, or never came (a crash); see
    :mod:`telephony.calls.outages`. ``at``: its end, or the last moment it was known alive."""

    kind: ClassVar[str] = "leg_cut"
    leg_id: int
    reason: str  # telephony.calls.outages.CutReason
    at: datetime


@dataclass(frozen=True)
class AsteriskShutdown:
    """Asterisk announced its end (AMI ``Shutdown``): ``restart`` for ``core restart``."""

    kind: ClassVar[str] = "asterisk_shutdown"
    restart: bool
    at: datetime


@dataclass(frozen=True)
class AsteriskBooted:
    """A new AMI session was greeted with ``FullyBooted``: Asterisk had been up for
    ``uptime_seconds`` at ``at``. It tells a restart from a reconnection; the listener's
    outage watch consumes it (an :class:`AsteriskReturned` is what is stored)."""

    kind: ClassVar[str] = "asterisk_booted"
    uptime_seconds: int
    at: datetime


@dataclass(frozen=True)
class AsteriskReturned:
    """Asterisk is back after an outage: a ``restart``, ``stop`` (a Shutdown was seen) or a
    ``crash`` (the AMI session was lost without one). ``began_at``: the Shutdown, or the last
    moment the lost session was alive; ``lost_at``: when the session was lost; ``booted_at``:
    the new Asterisk's start (``FullyBooted``'s ``Uptime``); ``at``: its greeting."""

    kind: ClassVar[str] = "asterisk_returned"
    outage: str  # telephony.calls.outages.OutageKind
    began_at: datetime
    lost_at: datetime
    booted_at: datetime
    calls_cut: int
    at: datetime


CallFact = (
    CallStarted
    | IvrVariableSet
    | IvrVariablesSet
    | QueueJoined
    | QueueLeft
    | OperatorRung
    | OperatorAnswered
    | OperatorCompleted
    | QueueAbandoned
    | CallEnded
    | CallVanished
    | CallLost
    | CallBackfilled
    | OperatorStateChanged
    | LegProgressed
    | CallTransferred
    | CallCut
    | LegCut
    | AsteriskShutdown
    | AsteriskBooted
    | AsteriskReturned
)


@dataclass(frozen=True)
class OperatorLeft:
    """The operator left the call's three-way call with an agency ("Keluar", or hanging up
    their phone in it) at ``at``; the caller talks on with the agency. Asterisk says nothing of
    it: its ``AgentComplete`` comes when the call ends, with the whole call's talk. The
    transfer service establishes it and records it as the leg's ``leave`` step (migration 0047
    ends the operator's talk there, and their wrap-up starts there), then tells the live views
    (``telephony.transfers.service.TransferService.on_left``). Not a tracked fact: never
    spooled nor written by the call store (the step is its record)."""

    kind: ClassVar[str] = "operator_left"
    call_id: str
    operator: str  # the interface of the operator who left, e.g. PJSIP/op1001
    at: datetime


LiveFact = CallFact | OperatorLeft
"""What the live views (the wallboard's board and counters) follow: the tracked facts, and
the leaves the transfer service establishes."""


FACT_TYPES: dict[str, type[CallFact]] = {
    cls.kind: cls
    for cls in (
        CallStarted,
        IvrVariableSet,
        IvrVariablesSet,
        QueueJoined,
        QueueLeft,
        OperatorRung,
        OperatorAnswered,
        OperatorCompleted,
        QueueAbandoned,
        CallEnded,
        CallVanished,
        CallLost,
        CallBackfilled,
        OperatorStateChanged,
        LegProgressed,
        CallTransferred,
        CallCut,
        LegCut,
        AsteriskShutdown,
        AsteriskBooted,
        AsteriskReturned,
    )
}


class FactDecodeError(SiagaError, ValueError):
    """A spooled line is not a fact this version understands."""


def fact_to_json(fact: CallFact) -> str:
    """Serialise a fact as one JSON line (datetimes as ISO 8601 with offset).

    A field added later with a default is left out while it holds that default: the fact
    serialises (and so hashes, ``telephony/calls/store.py``'s dedupe key) as before it had the
    field, and a line spooled by an older version reads back as the same fact."""
    body: dict[str, Any] = {"kind": fact.kind}
    for name, default in _defaults(type(fact)):
        value = getattr(fact, name)
        if default is not dataclasses.MISSING and value == default:
            continue
        body[name] = value.isoformat() if isinstance(value, datetime) else value
    return _ENCODER.encode(body)


# What json.dumps(body, ensure_ascii=False, separators=(",", ":")) builds on every call, built
# once: the recorder serialises every fact of a surge, on the AMI listener's loop.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_DEFAULTS: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def _defaults(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    """Each field of the fact class ``cls`` and its default (``dataclasses.MISSING`` if it has
    none), worked out once per class."""
    known = _DEFAULTS.get(cls)
    if known is None:
        known = tuple((f.name, f.default) for f in dataclasses.fields(cls))
        _DEFAULTS[cls] = known
    return known


_FIELD_TYPES: dict[str, type] = {
    "str": str, "int": int, "bool": bool, "datetime": datetime, "Variables": tuple,
}


def _variables(value: object) -> Variables:
    """A JSON list of [name, value] string pairs, as a tuple of pairs."""
    if not isinstance(value, list):
        raise TypeError("variables: expected a list")
    pairs = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(part, str) for part in pair)):
            raise TypeError("variables: expected [name, value] pairs of strings")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


# What an IVR variable's text must be (name lower case, without IVR_), and the value it stands
# for: the store writes it to its column, the backfill checks the queue_log's copy. Each raises
# ValueError for a malformed text; "" is unknown.
_INT4_MAX = 2**31 - 1  # PostgreSQL's integer


def _text(value: str) -> str | None:
    return value or None


def _count(value: str) -> int | None:
    """A non-negative whole number that fits an ``integer`` column; "" is unknown."""
    if not value:
        return None
    number = int(value)  # ValueError for anything but an optional sign and digits
    if not 0 <= number <= _INT4_MAX:
        raise ValueError("out of range")
    return number


def _share(value: str) -> float | None:
    """A score in [0, 1]; "" is unknown."""
    if not value:
        return None
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError("not within [0, 1]")
    return number


def _screening(value: str) -> str | None:
    """How the caller passed the screening prompt, as the dialplan sets it."""
    if value and value not in ("pressed", "spoke", "timeout"):
        raise ValueError("not pressed, spoke or timeout")
    return value or None


IVR_VALUES: Final[Mapping[str, Callable[[str], object]]] = {
    "choice": _text,
    "outcome": _text,
    "category": _text,
    "skill": _text,
    "queue": _text,
    "first_key_ms": _count,
    "invalid_keys": _count,
    "score": _share,
    "reasons": _text,
    "priority": _count,
    "screening": _screening,
}


def ivr_variables(fact: IvrVariableSet | IvrVariablesSet) -> Variables:
    """The (name, value) pairs of either IVR fact."""
    if isinstance(fact, IvrVariableSet):
        return ((fact.name, fact.value),)
    return fact.variables


def fact_from_json(line: str) -> CallFact:
    """Inverse of :func:`fact_to_json`; every field is checked against its declared type."""
    try:
        body = json.loads(line)
        cls = FACT_TYPES[body.pop("kind")]
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            expected = _FIELD_TYPES[str(f.type)]
            if f.name not in body and f.default is not dataclasses.MISSING:
                continue  # left out by fact_to_json: the default
            value = body[f.name]
            if expected is datetime:
                value = datetime.fromisoformat(value)
            elif expected is tuple:
                value = _variables(value)
            # bool is an int to Python; a spooled True must not pass for a position.
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise TypeError(f"{f.name}: expected {expected.__name__}")
            kwargs[f.name] = value
        return cls(**kwargs)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FactDecodeError(f"not a call fact: {line[:200]!r}: {exc}") from exc
