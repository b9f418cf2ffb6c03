"""Calls the line did not see, rebuilt from what Asterisk kept (its ``queue_log``).

Pure rules; :mod:`telephony.calls.history` does the reading and writing.

Why: a call that begins and ends while ``serve`` is down (a crash, an upgrade, a restart)
produces no AMI event anyone hears, but app_queue logged it, and the dialplan logs the line
the caller dialled there too (``QueueLog(...,SIAGALINE,<line>)``, extensions.conf), the IVR's
outcome as the call enters the queues (``SIAGAIVR``) and the hang-up cause from a hang-up
handler (``SIAGAEND``). On every
start and resync of the AMI session the listener hands this module the caller events logged
since its cursor, the live callers (``CoreShowChannels``) and what the database already holds
of each call; :func:`plan_backfill` answers with facts:

- a call that is no longer live and that the database does not hold (or holds open): its
  story as the facts the AMI tracker would have given (``CallStarted`` at the Uniqueid's epoch,
  ``QueueJoined``/``OperatorRung``/``OperatorAnswered``/``OperatorCompleted``/
  ``QueueAbandoned``/``QueueLeft`` at the log's epochs, ``IvrVariablesSet`` with the outcome
  the dialplan logged), its end as ``CallEnded`` with the cause the hang-up handler logged, or
  ``CallVanished`` at its last logged instant when there is none (a dialplan older than the
  handler, or Asterisk died with the call: the cause is unknown), and
  :class:`~telephony.calls.facts.CallBackfilled`. These are written at once.
- a call still live: the same story without its start and end (the resync's ``CallStarted``
  from ``CoreShowChannels`` knows its channel and caller name), handed to the listener to
  follow the resync's facts (not its IVR outcome: the resync's ``Status`` gives every IVR
  variable the channel holds). The resync's own ``QueueJoined`` (``now - Wait``, a different
  instant at every resync) is then dropped for every join the log knows (:meth:`Backfill.amend`).

Every instant is a whole second from the log or the Uniqueid, so the facts are the same at
every reading and the store's content keys make a replay a no-op. A call the database already
holds started at the sub-second Asterisk stamped on its ``Newchannel``, often later in the
same second than a log line of the call: its facts from the log, and the resync's (which the
tracker stamps at the Uniqueid's second), are put no earlier than that start
(:func:`not_before`), so the call's events stay in causal order; the stored start does not
change, so neither do the facts. Facts of a kind (and queue,
operator) the database already holds for the call are left out: a call the line followed
live until it crashed gets only what it missed, never a second copy at another instant.

Legs the line placed itself (transfers and conferences to agencies, call-backs) report their
progress as ``UserEvent SiagaLeg``, and the same routine logs it (``SIAGALEG``, under the
reporting channel's Uniqueid, as the event carries it). A leg the line was deaf to (down, or its
AMI session cut) as it was answered or ended gets that progress from the log
(:func:`leg_facts`): as the ``LegProgressed`` the tracker would have given, at the log's
second, for each state the leg's row does not hold yet (a state the line heard live is never
written twice; the store's content keys make a replay a no-op). A by-phone dispatch whose
agency answered while the line was down is so settled as answered, not cancelled by the
last-resort rule for legs nobody reported (``telephony/incidents``), which waits until the
log was read past the leg's ring time (``asterisk_log_cursors.legs_read_at``).

A blind transfer nobody answered sends the caller back to the operator who transferred, and
their talk then reaches the line as ``UserEvent SiagaBack`` (answered, ended), from which the
tracker gives the transfer's completion again with that talk added. The same routine logs it
(``SIAGABACK``, under the operator channel's Uniqueid, the caller's as its data):
:func:`back_facts` gives that completion (:func:`~telephony.calls.facts.with_back_talks`, from
the transfer's completion the database holds and the talks' logged seconds) for a call whose
talk back ended and which the database holds no completion of the operator's for since
(the line was down, deaf to the AMI, or restarted since the transfer, so its tracker no
longer knew the transfer). A talk heard live is never written again, nor is one applied
before (its completion is then held).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ivr.flow import Outcome
from telephony.asterisk.causes import MAX_CAUSE, cause_text
from telephony.asterisk.queue_log import (
    BACK_LOGGED,
    LEG_LOGGED,
    Cursor,
    QueueLogEntry,
    QueueLogLineError,
)
from telephony.calls.facts import (
    IVR_VALUES,
    CallBackfilled,
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariablesSet,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
    with_back_talks,
)
from telephony.calls.ids import valid_sip_call_id
from telephony.calls.legs import LEG_REPORT_GRACE

log = logging.getLogger("telephony.calls.backfill")

LINES = ("112", "119")
LINE_EVENT = "SIAGALINE"  # extensions.conf, [from-carrier]
IVR_EVENT = "SIAGAIVR"  # extensions.conf, [siaga112-queue]: IVR_OUTCOME as the call queues
END_EVENT = "SIAGAEND"  # extensions.conf, [siaga112-hangup-log]: HANGUPCAUSE at the hang-up
# IVR_OUTCOME's values: the IVR's, and the dialplan's own when it routes past the IVR.
IVR_OUTCOMES = frozenset({*(outcome.value for outcome in Outcome), "failopen"})
# SIAGAIVR's fields after the outcome: the IVR variables (names as the tracker gives them) that
# say what the caller chose, each with the shape it must have. Without them a call the line
# did not see live (serve down, the AMI session cut, a cluster node's line dead while another
# node's IVR served its calls) kept only its outcome, its caller's choice lost.
# Then how the caller used the keypad and what the screening made of the call, checked as the
# store parses them (:data:`IVR_VALUES`): without them such a call had no score, priority or
# first key, and counted as unscored in the reports. (The reasons' free text is not logged: a
# "|" in it would split it.)
IVR_LOGGED = ("outcome", "choice", "category", "skill", "queue",
              "first_key_ms", "invalid_keys", "score", "priority", "screening")
# The fields an older dialplan logged: the outcome alone, then the caller's choice.
_IVR_OLDER = (1, 5)
_NAME_VALUE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_IVR_SHAPES: Mapping[str, re.Pattern[str]] = {
    "choice": re.compile(r"[0-9*#]"),  # the main menu's one key
    "category": _NAME_VALUE,
    "skill": _NAME_VALUE,
    "queue": _NAME_VALUE,
}
MAX_PIN = timedelta(hours=12)  # a live call older than this no longer holds the cursor back
MAX_CALLER = 80

# <epoch>.<seq>, or <systemname>-<epoch>.<seq> when asterisk.conf sets systemname.
_UNIQUEID = re.compile(r"(?:[A-Za-z0-9_-]{1,64}-)?([0-9]{9,11})\.[0-9]{1,9}")
_ENDED_BY = {"COMPLETECALLER": "caller", "COMPLETEAGENT": "agent"}
_TRANSFERS = ("BLINDTRANSFER", "ATTENDEDTRANSFER")
TRANSFERRED = "transfer"  # OperatorCompleted.ended_by of a talk that ended in a transfer
_OWN_REPORTS = frozenset({LEG_LOGGED, BACK_LOGGED})  # call id: a reporting channel's
_FINAL = frozenset({*_ENDED_BY, *_TRANSFERS, "ABANDON", END_EVENT})
_EXITS = {"EXITWITHTIMEOUT": 0, "EXITEMPTY": 0, "EXITWITHKEY": 1}  # -> index of the position


@dataclass(frozen=True)
class LegRecorded:
    """What the database holds of a leg: the states its row records (``dialling``,
    ``answered``, ``ended``) and when it was asked for."""

    states: frozenset[str]
    requested_at: datetime


# A leg's report logged earlier than this before the leg was asked for is not about it: leg
# ids are the database's, and a log outlives a database restored or rebuilt (the lab's).
LEG_CLOCK_SLACK = timedelta(seconds=5)
# A leg report logged this long ago has reached the database by AMI if the line heard it: the
# cursor's advancer applies only older ones (the catch-up, at a resync, applies all).
LEG_SETTLE = LEG_REPORT_GRACE


def arrival_of(call_id: str) -> datetime | None:
    """When the caller's channel was created: the epoch in its Uniqueid (whole seconds, so
    never after anything Asterisk stamped later); ``None`` if it is not a Uniqueid."""
    match = _UNIQUEID.fullmatch(call_id)
    if match is None:
        return None
    return datetime.fromtimestamp(int(match.group(1)), UTC)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class Recorded:
    """What the database holds of a call: whether it ended, and which facts it has, as
    (kind, queue, operator) with "" for a field the fact has not."""

    ended: bool
    facts: frozenset[tuple[str, str, str]] = frozenset()
    started_at: datetime | None = None  # calls.arrived_at: its start, to the sub-second
    # Closed as vanished: the line lost sight of it (its end is a guess, no cause, no talk).
    vanished: bool = False

    def settled(self, end_logged: bool) -> bool:
        """Nothing the log says can add to the call: it ended by its own hang-up, or it
        vanished and the log has no hang-up of it either (Asterisk died with it). A call the
        resync closed as vanished while the log could not be read (the AMI session cut
        while the database was away) gets its logged end: a real end replaces a vanish."""
        return self.ended and not (self.vanished and end_logged)


def not_before(fact: CallFact, start: datetime | None) -> CallFact:
    """``fact``, moved to ``start`` if it is stamped earlier: a whole second from the log or
    the Uniqueid can precede the sub-second at which the call was seen to start. A start
    itself is left as it is (the store keeps the earliest)."""
    at = getattr(fact, "at", None)
    if start is None or isinstance(fact, CallStarted) or not isinstance(at, datetime) \
            or at >= start:
        return fact
    return replace(fact, at=start)


def fact_slot(fact: CallFact) -> tuple[str, str, str]:
    """The (kind, queue, operator) a fact fills for its call (see :class:`Recorded`)."""
    return (fact.kind, str(getattr(fact, "queue", "")), str(getattr(fact, "operator", "")))


@dataclass
class Story:
    """One caller's events in the log, as facts (start and end apart)."""

    call_id: str
    first_epoch: int
    last_epoch: int
    first: tuple[int, int]  # (inode, offset) of its first line: where a pinned cursor goes
    line: str = ""
    sip_call_id: str = ""  # the carrier's, logged with the line (cluster front, 0026)
    caller: str = ""
    facts: list[CallFact] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # queue -> position joined at
    over: bool = False  # a final event was logged: completed, abandoned, transferred, hung up
    end: CallEnded | None = None  # the hang-up the dialplan logged (SIAGAEND)


def _story_fact(
    story: Story, entry: QueueLogEntry, members: Mapping[str, str]
) -> list[CallFact]:
    """The facts one log entry adds to its caller's story (raises QueueLogLineError)."""
    uid, queue, at = entry.call_id, entry.queue, _at(entry.epoch)
    # app_queue logs the member's name; the line names operators by their interface.
    agent = members.get(entry.agent, entry.agent)
    event = entry.event
    if event == LINE_EVENT:
        line = entry.data[0] if entry.data else ""
        if line not in LINES:
            raise QueueLogLineError(f"{event} of {uid}: not a line: {line[:20]!r}")
        story.line = story.line or line
        # <line>|<SIP Call-ID>: whatever else is there (an older dialplan logs none, a
        # hostile Call-ID may have added fields) ties the call to nothing.
        call_id = entry.data[1] if len(entry.data) == 2 else ""
        if valid_sip_call_id(call_id):
            story.sip_call_id = story.sip_call_id or call_id
        return []
    if event == IVR_EVENT:
        return _ivr_outcome(story, entry)
    if event == END_EVENT:
        story.end = story.end or _hang_up(entry)
        return []
    if event == "ENTERQUEUE":
        position = entry.number(-1)
        # url|callerid|position: a caller id with "|" in it spans the middle fields.
        caller = "|".join(entry.data[1:-1])[:MAX_CALLER]
        story.caller = story.caller or caller
        story.positions.setdefault(queue, position)
        return [QueueJoined(uid, queue, position, at)]
    if not agent and event in ("CONNECT", "RINGNOANSWER", *_ENDED_BY, *_TRANSFERS):
        raise QueueLogLineError(f"{event} of {uid}: no member named")
    if event == "RINGNOANSWER":
        rung = at - timedelta(seconds=entry.number(0) // 1000)
        return [OperatorRung(uid, queue, agent, rung)]
    if event == "CONNECT":
        wait, ring = entry.number(0), entry.number(2)
        # queue_log does not say which position the caller left from: the one it joined at.
        left = story.positions.get(queue, 1)
        return [OperatorRung(uid, queue, agent, at - timedelta(seconds=ring)),
                QueueLeft(uid, queue, left, at),
                OperatorAnswered(uid, queue, agent, wait, ring, at)]
    if event in _ENDED_BY:
        return [OperatorCompleted(uid, queue, agent, entry.number(0), entry.number(1),
                                  _ENDED_BY[event], at)]
    if event in _TRANSFERS:
        return [OperatorCompleted(uid, queue, agent, entry.number(-3), entry.number(-2),
                                  TRANSFERRED, at)]
    if event == "ABANDON":
        return [QueueAbandoned(uid, queue, entry.number(1), entry.number(0), entry.number(2),
                               at)]
    if event in _EXITS:
        return [QueueLeft(uid, queue, entry.number(_EXITS[event]), at)]
    return []  # RINGCANCELED, SYSCOMPAT, custom events of others: nothing to record


def _ivr_outcome(story: Story, entry: QueueLogEntry) -> list[CallFact]:
    """The IVR's decision as the tracker gives it: one ``IvrVariablesSet`` as the call queues.
    Logged again when a failed transfer sends the caller back to the queues: the variables did
    not change, so only the first says anything (the tracker, too, gives nothing new then).

    ``<outcome>|<choice>|<category>|<skill>|<queue>|<first_key_ms>|<invalid_keys>|<score>|
    <priority>|<screening>`` (:data:`IVR_LOGGED`, empty where the IVR set nothing); an older
    dialplan logs the outcome alone, or the first five."""
    data = entry.data
    outcome = data[0] if len(data) in (*_IVR_OLDER, len(IVR_LOGGED)) else ""
    if outcome not in IVR_OUTCOMES:
        raise QueueLogLineError(
            f"{entry.event} of {entry.call_id}: not an IVR outcome: {'|'.join(data)[:20]!r}")
    pairs = tuple(zip(IVR_LOGGED, data, strict=False))
    for name, value in pairs[1:]:
        if value and not _ivr_value_fits(name, value):
            raise QueueLogLineError(
                f"{entry.event} of {entry.call_id}: not an IVR {name}: {value[:20]!r}")
    if any(isinstance(fact, IvrVariablesSet) for fact in story.facts):
        return []
    # An empty value is a variable the IVR left unset (no key pressed, failed open early).
    return [IvrVariablesSet(entry.call_id, tuple((name, value) for name, value in pairs if value),
                            _at(entry.epoch))]


def _ivr_value_fits(name: str, value: str) -> bool:
    shape = _IVR_SHAPES.get(name)
    if shape is not None:
        return shape.fullmatch(value) is not None
    try:
        IVR_VALUES[name](value)
    except ValueError:
        return False
    return True


def _hang_up(entry: QueueLogEntry) -> CallEnded:
    """The hang-up as the tracker gives it from ``Hangup``: the cause and Asterisk's text."""
    if len(entry.data) != 1:
        raise QueueLogLineError(f"{entry.event} of {entry.call_id}: not one cause")
    cause = entry.number(0)
    if cause > MAX_CAUSE:
        raise QueueLogLineError(f"{entry.event} of {entry.call_id}: cause {cause} out of range")
    return CallEnded(entry.call_id, cause, cause_text(cause), _at(entry.epoch))


def stories(
    entries: Sequence[tuple[int, QueueLogEntry]], members: Mapping[str, str] | None = None
) -> tuple[dict[str, Story], int]:
    """Each caller's story, in log order; and how many entries were refused (logged).
    ``members`` maps a member name to its interface (see :func:`plan_backfill`)."""
    found: dict[str, Story] = {}
    refused = 0
    for inode, entry in entries:
        story = found.get(entry.call_id)
        if story is None:
            story = found[entry.call_id] = Story(entry.call_id, entry.epoch, entry.epoch,
                                                 (inode, entry.offset))
        try:
            story.facts.extend(_story_fact(story, entry, members or {}))
            story.over = story.over or entry.event in _FINAL
        except QueueLogLineError as exc:
            refused += 1
            log.warning("queue_log: skipped: %s", exc)
            continue
        story.last_epoch = max(story.last_epoch, entry.epoch)
    return found, refused


@dataclass
class Backfill:
    """What a catch-up found: facts to write now (calls no longer live), facts of live calls
    to follow the resync's, the joins the log knows, and where the next catch-up starts."""

    written: list[CallFact] = field(default_factory=list)
    live: list[CallFact] = field(default_factory=list)
    joins: set[tuple[str, str]] = field(default_factory=set)  # (call id, queue)
    backfilled: list[str] = field(default_factory=list)  # calls the line had not seen end
    cursor: Cursor | None = None
    refused: int = 0
    starts: dict[str, datetime] = field(default_factory=dict)  # stored starts of live calls

    def amend(self, resync_facts: Sequence[CallFact]) -> list[CallFact]:
        """The resync's facts without the joins the log dates better, none stamped before the
        call's stored start, then the live calls'."""
        kept = [not_before(fact, self.starts.get(str(getattr(fact, "call_id", ""))))
                for fact in resync_facts
                if not (isinstance(fact, QueueJoined) and (fact.call_id, fact.queue) in self.joins)]
        return kept + self.live


def _reported_leg(entry: QueueLogEntry, legs: Mapping[int, LegRecorded]) -> LegRecorded | None:
    """The leg a ``SIAGALEG`` entry is about, if the database holds it and it was asked for
    by then."""
    have = legs.get(int(entry.data[0]))
    if have is None or _at(entry.epoch) < have.requested_at - LEG_CLOCK_SLACK:
        return None
    return have


def leg_facts(
    entries: Sequence[tuple[int, QueueLogEntry]],
    legs: Mapping[int, LegRecorded],
    *,
    before: datetime | None = None,
    report: bool = True,
) -> tuple[list[LegProgressed], int]:
    """The leg progress the log holds (``SIAGALEG``, logged before ``before`` if given) that
    the database does not (``legs``: each leg the database holds). A leg the database does
    not hold is no leg the line opened, and a report logged before the leg was asked for is
    about another leg of that id (a database restored or rebuilt): refused, logged once. Only
    the first report of a state counts, as in the store. And how many were refused.
    ``report``: log each refusal (the cursor's advancer, which reads the same lines every
    few minutes, does not: the catch-up does)."""
    facts: list[LegProgressed] = []
    refused = 0
    seen: set[tuple[int, str]] = set()
    for _, entry in entries:
        if entry.event != LEG_LOGGED:
            continue
        # The parser checked the data whole (queue_log.check_leg).
        leg, state, status, cause = int(entry.data[0]), entry.data[1], entry.data[2], \
            int(entry.data[3] or 0)
        at = _at(entry.epoch)
        if before is not None and at >= before:
            continue
        have = _reported_leg(entry, legs)
        if have is None:
            refused += 1
            if report:
                log.warning("queue_log: skipped: %s of %s at %s: leg %d is no leg the line "
                            "opened then", LEG_LOGGED, entry.call_id, at.isoformat(), leg)
            continue
        if state in have.states or (leg, state) in seen:
            continue
        seen.add((leg, state))
        facts.append(LegProgressed(leg, state, status, entry.call_id, at,
                                   cause if cause <= MAX_CAUSE else 0))
    return facts, refused


def calls_of(entries: Sequence[tuple[int, QueueLogEntry]]) -> list[tuple[int, QueueLogEntry]]:
    """The entries about callers: without the legs' and the talks back's reports (their call
    id is the reporting channel's, not a call's)."""
    return [(inode, entry) for inode, entry in entries if entry.event not in _OWN_REPORTS]


def backs_of(entries: Sequence[tuple[int, QueueLogEntry]]) -> list[str]:
    """The calls the log reports talks back of (``SIAGABACK``)."""
    return sorted({entry.data[0] for _, entry in entries if entry.event == BACK_LOGGED})


def _talks_back(
    entries: Sequence[tuple[int, QueueLogEntry]], before: datetime | None = None,
) -> dict[str, dict[str, list[datetime | None]]]:
    """call -> operator channel -> [answered, ended] as ``SIAGABACK`` logged them (logged
    before ``before`` if given; the first report of each wins, as in the tracker)."""
    talks: dict[str, dict[str, list[datetime | None]]] = {}
    for _, entry in entries:
        if entry.event != BACK_LOGGED:
            continue
        at = _at(entry.epoch)
        if before is not None and at >= before:
            continue
        # The parser checked the data whole (queue_log.check_back).
        call, state = entry.data
        talk = talks.setdefault(call, {}).setdefault(entry.call_id, [None, None])
        if state == "answered":
            talk[0] = talk[0] or at
        elif talk[0] is not None:  # an end of a talk not logged answered: none to add
            talk[1] = talk[1] or at
    return talks


def unsettled_backs(
    entries: Sequence[tuple[int, QueueLogEntry]],
    completions: Mapping[str, Sequence[OperatorCompleted]],
) -> set[str]:
    """The calls whose talks back the cursor may not move past yet: one still going (its
    end, when logged, needs its answer), or one whose completion :func:`back_facts` still
    gives."""
    going = {call for call, by_channel in _talks_back(entries).items()
             if any(start is not None and end is None for start, end in by_channel.values())}
    return going | {fact.call_id for fact in back_facts(entries, completions)}


def back_facts(
    entries: Sequence[tuple[int, QueueLogEntry]],
    completions: Mapping[str, Sequence[OperatorCompleted]],
    *,
    before: datetime | None = None,
) -> list[OperatorCompleted]:
    """The completions the tracker gives for the talks back the log holds (``SIAGABACK``,
    logged before ``before`` if given) and the database does not (``completions``: each
    call's completions it holds). Per call: the transfer's completion (the last the database
    holds before the first talk back, to the log's second) with every talk back that ended
    added (:func:`~telephony.calls.facts.with_back_talks`), at the last end; nothing if the
    database holds a completion of that operator from that end on (the tracker's, heard live,
    or this one applied before: the store keeps the last completion, so a replay changes
    nothing), or no transfer's completion (the queue's talk stands, as in the tracker)."""
    facts: list[OperatorCompleted] = []
    for call, by_channel in _talks_back(entries, before).items():
        answered = [(start, end) for start, end in by_channel.values() if start is not None]
        ends = [end for _, end in answered if end is not None]
        if not ends:
            continue
        # The log's second precedes the instant the AMI stamped the answer within it.
        first = min(start for start, _ in answered) + timedelta(seconds=1)
        held = completions.get(call, ())
        transfers = [fact for fact in held if fact.ended_by == TRANSFERRED and fact.at < first]
        if not transfers:
            continue
        base = max(transfers, key=lambda fact: fact.at)
        last = max(ends)
        if any(fact.operator == base.operator and fact.at >= last for fact in held):
            continue
        facts.append(with_back_talks(base, answered, last))
    return facts


def legs_of(entries: Sequence[tuple[int, QueueLogEntry]]) -> list[int]:
    """The leg ids the log reports on."""
    return sorted({int(entry.data[0]) for _, entry in entries if entry.event == LEG_LOGGED})


def plan_backfill(
    entries: Sequence[tuple[int, QueueLogEntry]],
    *,
    end: Cursor,
    live: Collection[str],
    recorded: Mapping[str, Recorded],
    now: datetime,
    members: Mapping[str, str] | None = None,
    more: bool = False,
    legs: Mapping[int, LegRecorded] | None = None,
    completions: Mapping[str, Sequence[OperatorCompleted]] | None = None,
) -> Backfill:
    """The facts Asterisk's log adds to what the database holds (see the module's docstring).

    ``members``: member name -> interface, for the operators whose desk joined the queues
    under their display name (app_queue logs that name, not the interface); a name not in it
    is kept as it was logged.

    ``end`` is where the read stopped; the next cursor stays at the first line of the oldest
    live call (younger than :data:`MAX_PIN`), whose story is not over and is read again.
    ``more``: the read stopped before the end of the log (its budget ran out), so a call with
    no final event (completed, abandoned, transferred) may have one beyond ``end``: it waits,
    like a live call, for the next read.

    ``legs``: what the database holds of the legs the log reports on (:func:`leg_facts`);
    the progress it lacks is written now, whatever the calls' state.

    ``completions``: the completions the database holds of the calls the log reports talks
    back of (:func:`back_facts`); with those this plan writes, they give the completions the
    talks back add, after them (a live call's follow its other facts).
    """
    found, refused = stories(calls_of(entries), members)
    plan = Backfill(refused=refused)
    pin: tuple[int, int] | None = None
    for uid, story in found.items():
        have = recorded.get(uid)
        missing = [fact for fact in story.facts
                   if have is None or fact_slot(fact) not in have.facts]
        plan.joins.update((uid, fact.queue) for fact in story.facts
                          if isinstance(fact, QueueJoined))
        arrival = arrival_of(uid) or _at(story.first_epoch)
        start = None if have is None else have.started_at
        if start is not None:
            arrival = max(arrival, start)  # seen live: its start to the sub-second
        missing = [not_before(fact, start) for fact in missing]
        if more and uid not in live and not story.over:
            if now - _at(story.first_epoch) < MAX_PIN and (pin is None or story.first < pin):
                pin = story.first
            continue
        if uid in live:
            if start is not None:
                plan.starts[uid] = start
            plan.live.extend(fact for fact in missing if not isinstance(fact, IvrVariablesSet))
            if have is None:
                plan.live.append(CallBackfilled(uid, arrival))
            if now - _at(story.first_epoch) < MAX_PIN and (pin is None or story.first < pin):
                pin = story.first
            continue
        if have is not None and have.settled(story.end is not None):
            continue  # the line saw it end: nothing was missed
        if have is not None and not story.over:
            # The line knew the call and the log never finished it: Asterisk went away with
            # it (a crash). Its end is the resync's to give, which vanishes the open calls
            # Asterisk no longer has, dated by when each was last seen alive and marked cut
            # (telephony/calls/outages.py); an end here, at its last logged line, would be
            # a second and earlier one.
            if missing:
                plan.written.extend([*missing, CallBackfilled(uid, arrival)])
                plan.backfilled.append(uid)
            continue
        if have is None:
            plan.written.append(CallStarted(
                call_id=uid, linked_id=uid, channel="", caller_number=_caller(story.caller),
                caller_name="", line=story.line, at=arrival, sip_call_id=story.sip_call_id))
        plan.written.extend(missing)
        plan.written.append(not_before(story.end or CallVanished(uid, _at(story.last_epoch)),
                                       start))
        plan.written.append(CallBackfilled(uid, arrival))
        plan.backfilled.append(uid)
    held: dict[str, list[OperatorCompleted]] = {
        call: list(facts) for call, facts in (completions or {}).items()}
    for fact in [*plan.written, *plan.live]:
        if isinstance(fact, OperatorCompleted):
            held.setdefault(fact.call_id, []).append(fact)
    for back in back_facts(entries, held):
        (plan.live if back.call_id in live else plan.written).append(back)
    progress, refused_legs = leg_facts(entries, legs or {})
    plan.written.extend(progress)
    plan.refused += refused_legs
    # A live call's first line may be in the rotated file: reading resumes there (by inode).
    plan.cursor = Cursor(*pin) if pin is not None else end
    return plan


def settled_calls(entries: Sequence[tuple[int, QueueLogEntry]],
                  recorded: Mapping[str, Recorded]) -> set[str]:
    """The calls of ``recorded`` that the log's ``entries`` can add nothing to (see
    :meth:`Recorded.settled`): the cursor may move past them."""
    logged = {entry.call_id for _, entry in entries if entry.event == END_EVENT}
    return {uid for uid, seen in recorded.items() if seen.settled(uid in logged)}


def settled_cursor(
    entries: Sequence[tuple[int, QueueLogEntry]],
    *,
    end: Cursor,
    ended: Collection[str],
    now: datetime,
    legs: Mapping[int, LegRecorded] | None = None,
    backs: Collection[str] = frozenset(),
) -> Cursor:
    """Where the cursor may move while the line runs: past every call the database holds as
    ended, and no further than the first line of any other call (live, its end still on its
    way to the database, or missed altogether: the next resync's catch-up needs its lines),
    unless that line is older than :data:`MAX_PIN`. Moving it keeps the next catch-up short;
    it writes nothing, so it cannot duplicate what the listener is writing.

    A leg's report is past once the database holds its state (``legs``, as
    :func:`leg_facts`), or it is refused there. A talk back's report is past unless its call
    is in ``backs`` (the calls :func:`back_facts` still has a completion for)."""
    pin: tuple[int, int] | None = None
    for inode, entry in entries:
        if now - _at(entry.epoch) >= MAX_PIN:
            continue
        if entry.event == LEG_LOGGED:
            have = _reported_leg(entry, legs or {})
            if have is None or entry.data[1] in have.states:
                continue
        elif entry.event == BACK_LOGGED:
            if entry.data[0] not in backs:
                continue
        elif entry.call_id in ended:
            continue
        pin = (inode, entry.offset)
        break  # entries are in log order: the first unsettled line is the earliest
    return Cursor(*pin) if pin is not None else end


def member_interfaces(accounts: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Member name -> interface from (interface, member name) pairs of the operator accounts;
    a name two interfaces share says nothing and is left out, as is a name that is itself
    some interface."""
    found: dict[str, str] = {}
    shared: set[str] = set()
    interfaces = {interface for interface, _ in accounts}
    for interface, name in accounts:
        if not name or name in interfaces:
            continue
        if found.setdefault(name, interface) != interface:
            shared.add(name)
    return {name: interface for name, interface in found.items() if name not in shared}


def _caller(raw: str) -> str:
    # Asterisk logs an absent caller ID as "" or "unknown"; the tracker stores "" for it.
    return "" if raw in ("unknown", "<unknown>") else raw


def caller_channels(channels: Sequence[Mapping[str, str | list[str]]]) -> tuple[set[str], bool]:
    """The caller legs' Uniqueids in a ``CoreShowChannels`` reply, and whether the reply is
    provably whole (its ``ListItems`` count matches): only a whole list may say a call is over.
    """
    live: set[str] = set()
    items = 0
    whole = False
    for raw in channels:
        event = {key.lower(): value for key, value in raw.items()}
        name = str(event.get("event", "")).lower()
        if name == "coreshowchannel":
            items += 1
            uid, linked = event.get("uniqueid"), event.get("linkedid")
            if isinstance(uid, str) and uid == linked:
                live.add(uid)
        elif name == "coreshowchannelscomplete":
            whole = str(event.get("listitems", "")) == str(items)
    return live, whole


class History(Protocol):
    """What the AMI listener asks on every start and resync (``telephony.calls.history``)."""

    async def catch_up(
        self, channels: Sequence[Mapping[str, str | list[str]]]
    ) -> Backfill | None:
        """Record the calls Asterisk logged that the line missed; ``None`` when it could not
        (the log or the database unreadable: the next resync tries again from the same point).
        """

    @property
    def postponed(self) -> bool:
        """The last catch-up was put off (the store or the channel list could not be trusted
        yet): the listener asks for another resync once the store answers."""
