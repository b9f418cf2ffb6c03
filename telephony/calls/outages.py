"""Asterisk going away: which calls its end cut, when each was last seen, and the outage.

Pure: :class:`OutageWatch` follows the facts the AMI listener hands over, in order (the
tracker's, the resync's), plus two things only the listener knows: when the AMI session was
last heard alive, and when it was lost. It passes every fact on and adds what an outage
establishes.

A restart or stop (``core restart now``, ``core stop now``). Asterisk hangs up every channel
at once (soft hang-up of all), waits for them to die, and only then sends ``Shutdown`` (in the
lab about a second after the last ``Hangup``; ``Cleanly`` since no channel is left). The cut
calls are therefore the last burst of hang-ups before the ``Shutdown``: the latest end at most
:data:`SHUTDOWN_WINDOW` before it, and the ends before that one each within
:data:`BURST_GAP` of the next. Their end is real (the ``Hangup``), and each gets a
:class:`CallCut` with reason ``asterisk_restart``. A caller who hung up by themselves within
:data:`BURST_GAP` before the burst is counted with it: nothing in the events tells the two
apart. For the same reason a graceful restart (``core restart gracefully`` or ``when
convenient``: Asterisk waits for the calls to end by themselves, then sends ``Shutdown``)
marks its last call(s) as cut: a needless call-back rather than a missed one. Calls still live
at the ``Shutdown`` (Asterisk gave up waiting for them) are cut when Asterisk is back, as
below, with the same reason.

A crash (SIGKILL, a segfault, the host going down). No ``Shutdown``, no ``Hangup``: the AMI
session is lost. Whether Asterisk died or only the session did is known at the next session's
``FullyBooted``: its ``Uptime`` gives the new Asterisk's start, and a start other than the
previous session's (by more than :data:`BOOT_TOLERANCE`) means a new process, which holds
none of the old one's channels. Every call still live then was cut (reason
``asterisk_crash``), and was last seen alive at the later of its own last fact and the end of
the lost session: the loss itself when Asterisk closed the connection (its process died then),
or the last data heard on it when the listener dropped a silent connection. The resync that
follows declares those calls vanished; their :class:`CallVanished` is given that last-seen
instant instead of the resync's own time, followed by their :class:`CallCut`. A resync that
ran before the greeting (Asterisk accepts AMI logins before it is fully booted) has already
vanished them at its own time: their cut then carries the last-seen instant, and the store
moves the vanished call's end back to it.

An Asterisk that stays away. Its calls cannot wait for its return to be known cut: a process
that is not coming back soon (a crash loop, a broken package, an engineer's ``kill``) would
leave them open on the wallboard and off the call-back worklist meanwhile. When the listener
knows Asterisk is gone, not merely unreachable (every connection refused, the lost session's
host answering that nothing listens there, for ``vanish_check_seconds``), :meth:`gone` makes
every call still live cut now, as the greeting would have: the tracker's ``CallVanished`` for
each gets the call's last-seen instant, then its :class:`CallCut`. The greeting, when Asterisk
is back, counts them in its :class:`AsteriskReturned`. Should the same Asterisk answer again
after all (only its AMI port was closed), a call that was in fact alive is ended by its own
hang-up later (a real end replaces a vanish) and keeps its cut: a needless call-back rather
than a missed one.

The legs the line placed (call-backs of dropped callers, transfers; the dialplan's ``SiagaLeg``
reports, :class:`LegProgressed`) go by the same rules: a leg whose end came in a restart's burst,
or that had not ended when a new Asterisk greeted the line, gets a :class:`LegCut` (the end
the store gives a leg that had none). A call-back cut so did not reach its caller, who is
called back again (:mod:`telephony.callbacks.model`).

The outage itself: :class:`AsteriskShutdown` (the event, at once) and, when Asterisk is back,
:class:`AsteriskReturned` (kind, began, lost, new start, greeting, calls cut). The greetings
(:class:`AsteriskBooted`) themselves go no further than the watch.

Not covered: a listener that starts after Asterisk crashed never saw the lost session, so it
cannot tell which calls Asterisk's end cut (they vanish as before).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final, TypeVar

from telephony.calls.facts import (
    AsteriskBooted,
    AsteriskReturned,
    AsteriskShutdown,
    CallCut,
    CallEnded,
    CallFact,
    CallVanished,
    LegCut,
    LegProgressed,
    OperatorCompleted,
)
from telephony.calls.legs import LegState
from telephony.core.labels import LabelledStrEnum

_K = TypeVar("_K")

# No emergency call lasts this long: a caller's call (or an operator's call-back) still open
# after it is one whose end went unrecorded (the line was down when it hung up, and nothing
# backfilled it). What holds back a call-back or a rating survey while the caller is on the
# line ignores it, and the incident page no longer reads such a call-back as going on.
OPEN_CALL_HORIZON: Final = timedelta(hours=3)

SHUTDOWN_WINDOW: Final = timedelta(seconds=5)  # the burst's last hang-up -> Shutdown
BURST_GAP: Final = timedelta(seconds=1)  # between consecutive hang-ups of one burst
BOOT_TOLERANCE: Final = timedelta(seconds=2)  # Uptime is whole seconds, read with a delay
RECENT_ENDS: Final = 4096  # ended calls remembered (for the burst, and for late facts)
MAX_LIVE: Final = 10_000  # as the tracker's bound on live calls


class CutReason(LabelledStrEnum):
    """Why the line, not the caller, ended a call (``calls.cut_reason``)."""

    ASTERISK_RESTART = "asterisk_restart", "Terputus karena Asterisk dimulai ulang"
    ASTERISK_CRASH = "asterisk_crash", "Terputus karena Asterisk mati mendadak"
    # A cluster node died with the call before its line recorded it (the front's record
    # is all there is of it: telephony/cluster/front.py).
    NODE_LOST = "node_lost", "Hilang bersama node-nya"


def lost_with_node(node: str) -> str:
    """How a call its node lost ended, as people read it (``calls.hangup_cause_text``)."""
    return f"hilang bersama node {node}"


class OutageKind(LabelledStrEnum):
    """How Asterisk went away (``asterisk_outages.kind``)."""

    RESTART = "restart", "Asterisk dimulai ulang"
    STOP = "stop", "Asterisk dihentikan"
    CRASH = "crash", "Asterisk mati mendadak"


def burst_before(ends: Iterable[tuple[_K, datetime]], shutdown_at: datetime
                 ) -> list[tuple[_K, datetime]]:
    """The calls (or legs) of ``ends`` (call, ended at) that the hang-up burst before a
    ``Shutdown`` at ``shutdown_at`` ended, latest first (see the module's rule); none if no
    end is close."""
    candidates = sorted(((call, at) for call, at in ends if at <= shutdown_at),
                        key=lambda end: end[1], reverse=True)
    burst: list[tuple[_K, datetime]] = []
    for call, at in candidates:
        reference = burst[-1][1] if burst else shutdown_at
        if reference - at > (BURST_GAP if burst else SHUTDOWN_WINDOW):
            break
        burst.append((call, at))
    return burst


def rebooted(previous: datetime | None, booted: datetime) -> bool:
    """Whether a session greeted by an Asterisk started at ``booted`` talks to another process
    than the session before, whose Asterisk started at ``previous`` (unknown: no)."""
    return previous is not None and abs(booted - previous) > BOOT_TOLERANCE


class OutageWatch:
    """Adds to the listener's facts what an Asterisk restart or crash establishes.

    :meth:`follow` takes every batch before it is handed over (in order); :meth:`lost` is
    told when the AMI session ends, with the last instant it was known alive.
    """

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}  # live call -> its latest fact's instant
        self._ended: OrderedDict[str, datetime] = OrderedDict()  # call -> its end
        self._cut: OrderedDict[str, None] = OrderedDict()  # calls already given a cut
        # Cut by Asterisk's end, waiting for the resync to vanish them: call -> last seen.
        self._pending: dict[str, datetime] = {}
        self._pending_reason = CutReason.ASTERISK_CRASH
        # Vanished between a lost session and the next greeting: call -> last seen alive.
        self._unexplained: dict[str, datetime] = {}
        self._boot: datetime | None = None  # the current Asterisk's start, once greeted
        self._lost: tuple[datetime, datetime] | None = None  # (lost at, alive until)
        self._shutdown: AsteriskShutdown | None = None  # seen since the last greeting
        self._burst = 0  # calls cut before the greeting: the shutdown's burst, or gone()
        # The legs the line placed (call-backs, transfers), by the dialplan's reports: the
        # same rules cut them (their channels are Asterisk's as the calls' are).
        self._legs: dict[int, datetime] = {}  # not ended -> its latest report's instant
        self._leg_ends: OrderedDict[int, datetime] = OrderedDict()  # leg -> its end
        self._legs_cut: OrderedDict[int, None] = OrderedDict()

    @property
    def live_calls(self) -> frozenset[str]:
        """The calls the watch believes live (with a last-seen instant)."""
        return frozenset(self._seen)

    def last_seen(self, call_id: str) -> datetime | None:
        """When a live call was last seen (its latest fact), or ``None``."""
        return self._seen.get(call_id)

    def lost(self, at: datetime, alive_until: datetime) -> None:
        """The AMI session was lost at ``at``; Asterisk was last known alive at
        ``alive_until`` (``at`` when Asterisk closed it). The first loss since the last
        greeting counts: reconnection attempts in between learn nothing."""
        if self._lost is None:
            self._lost = (at, min(alive_until, at))

    def gone(self) -> None:
        """Asterisk is known gone (see the module): the ``CallVanished`` the caller hands over
        next for each call still live become that call's cut, at its last-seen instant. Only
        after a lost session or a ``Shutdown`` (else nothing is known of an end)."""
        if self._lost is None and self._shutdown is None:
            return
        alive = self._lost[1] if self._lost is not None else None
        for call_id, seen in self._seen.items():
            self._pending[call_id] = seen if alive is None else max(seen, alive)
        self._burst += len(self._seen)
        self._seen.clear()
        self._pending_reason = (CutReason.ASTERISK_CRASH if self._shutdown is None
                                else CutReason.ASTERISK_RESTART)

    def follow(self, facts: Sequence[CallFact]) -> list[CallFact]:
        """``facts``, in order, with what the outage rules add (see the module)."""
        out: list[CallFact] = []
        for fact in facts:
            out.extend(self._follow(fact))
        return out

    # -- one fact -------------------------------------------------------------------------

    def _follow(self, fact: CallFact) -> list[CallFact]:
        match fact:
            case AsteriskShutdown():
                return [fact, *self._shutdown_seen(fact)]
            case AsteriskBooted():
                # Consumed: every session begins with one; what it establishes is the outage.
                return self._greeted(fact)
            case LegProgressed():
                self._leg(fact)
                return [fact]
            case CallVanished() if fact.call_id in self._pending:
                seen = self._pending.pop(fact.call_id)
                self._end(fact.call_id, seen)
                return [CallVanished(fact.call_id, seen),
                        *self._cut_call(fact.call_id, self._pending_reason, seen)]
            case CallVanished() if self._lost is not None and fact.call_id in self._seen:
                # Vanished after a lost session, before Asterisk's greeting says whether it
                # restarted (a resync of an Asterisk still booting): decided at the greeting.
                self._unexplained[fact.call_id] = max(self._seen[fact.call_id], self._lost[1])
                self._end(fact.call_id, fact.at)
                return [fact]
            case CallEnded() | CallVanished():
                self._end(fact.call_id, fact.at)
                return [fact]
            case OperatorCompleted() if fact.call_id in self._ended:
                return [fact]  # AgentComplete may follow the caller's Hangup
        call_id = getattr(fact, "call_id", None)
        if isinstance(call_id, str) and call_id not in self._ended:
            self._saw(call_id, fact.at)
        return [fact]

    def _saw(self, call_id: str, at: datetime) -> None:
        seen = self._seen.get(call_id)
        if seen is None and len(self._seen) >= MAX_LIVE:
            # Only if ends were lost on a massive scale: the stalest entry goes.
            del self._seen[min(self._seen, key=self._seen.__getitem__)]
        if seen is None or at > seen:
            self._seen[call_id] = at

    def _end(self, call_id: str, at: datetime) -> None:
        self._seen.pop(call_id, None)
        self._pending.pop(call_id, None)
        if call_id not in self._ended:
            self._ended[call_id] = at
            if len(self._ended) > RECENT_ENDS:
                self._ended.popitem(last=False)

    def _leg(self, fact: LegProgressed) -> None:
        if fact.state == LegState.ENDED.value:
            self._legs.pop(fact.leg_id, None)
            if fact.leg_id not in self._leg_ends:
                self._leg_ends[fact.leg_id] = fact.at
                if len(self._leg_ends) > RECENT_ENDS:
                    self._leg_ends.popitem(last=False)
            return
        if fact.leg_id in self._leg_ends:
            return  # a late report of a leg that ended
        if fact.leg_id not in self._legs and len(self._legs) >= MAX_LIVE:
            del self._legs[min(self._legs, key=self._legs.__getitem__)]
        self._legs[fact.leg_id] = max(fact.at, self._legs.get(fact.leg_id, fact.at))

    def _cut_leg(self, leg_id: int, reason: CutReason, at: datetime) -> list[CallFact]:
        if leg_id in self._legs_cut:
            return []
        self._legs_cut[leg_id] = None
        if len(self._legs_cut) > RECENT_ENDS:
            self._legs_cut.popitem(last=False)
        return [LegCut(leg_id, reason.value, at)]

    def _cut_call(self, call_id: str, reason: CutReason, at: datetime) -> list[CallFact]:
        if call_id in self._cut:
            return []
        self._cut[call_id] = None
        if len(self._cut) > RECENT_ENDS:
            self._cut.popitem(last=False)
        return [CallCut(call_id, reason.value, at)]

    def _shutdown_seen(self, fact: AsteriskShutdown) -> list[CallFact]:
        self._shutdown = fact
        cuts: list[CallFact] = []
        for call_id, ended in reversed(burst_before(self._ended.items(), fact.at)):
            cuts.extend(self._cut_call(call_id, CutReason.ASTERISK_RESTART, ended))
        self._burst += len(cuts)
        for leg_id, ended in reversed(burst_before(self._leg_ends.items(), fact.at)):
            cuts.extend(self._cut_leg(leg_id, CutReason.ASTERISK_RESTART, ended))
        return cuts

    def _greeted(self, fact: AsteriskBooted) -> list[CallFact]:
        booted = fact.at - timedelta(seconds=fact.uptime_seconds)
        previous, self._boot = self._boot, booted
        shutdown, self._shutdown = self._shutdown, None
        lost, self._lost = self._lost, None
        burst, self._burst = self._burst, 0
        unexplained, self._unexplained = self._unexplained, {}
        if shutdown is None and lost is None:
            return []  # the session's own greeting again (the boot's broadcast), or the first
        if shutdown is None and not rebooted(previous, booted):
            return []  # the same Asterisk: only the session was new
        if lost is None:  # a Shutdown, then a greeting on the same session: not seen in Asterisk
            lost = (shutdown.at, shutdown.at) if shutdown is not None else (fact.at, fact.at)
        lost_at, alive = lost
        if shutdown is not None:
            reason = CutReason.ASTERISK_RESTART
            kind = OutageKind.RESTART if shutdown.restart else OutageKind.STOP
            began = shutdown.at
        else:
            reason, kind, began = CutReason.ASTERISK_CRASH, OutageKind.CRASH, alive
        # No channel outlives its Asterisk: every call last seen before the new one started
        # was cut, and was alive until the lost session ended.
        old = [call for call, seen in self._seen.items() if seen < booted]
        for call_id in old:
            self._pending[call_id] = max(self._seen.pop(call_id), alive)
        self._pending_reason = reason
        cuts: list[CallFact] = []
        for call_id, seen in unexplained.items():
            cuts.extend(self._cut_call(call_id, reason, seen))  # the store moves its end back
        # A leg has no resync to vanish it: one not ended by then is cut here, its end the
        # last moment it was known alive.
        legs: list[CallFact] = []
        for leg_id in [leg for leg, seen in self._legs.items() if seen < booted]:
            legs.extend(self._cut_leg(leg_id, reason, max(self._legs.pop(leg_id), alive)))
        return [AsteriskReturned(kind.value, began, lost_at, booted,
                                 burst + len(old) + len(cuts), fact.at), *cuts, *legs]
