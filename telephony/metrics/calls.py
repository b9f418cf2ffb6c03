"""Calls offered, answered and abandoned per queue and line, and fail-open IVR sessions:
counted from the call facts the AMI listener establishes (the event stream is the truth for
these; the database holds the same facts, but counting them there would cost a scan).

A call's facts may come twice (a resync after a reconnection restores what the listener
already saw); each is counted once per call while the call lives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from telephony.ami.tracker import QueueSnapshot
from telephony.calls.facts import (
    AsteriskReturned,
    CallCut,
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    OperatorAnswered,
    QueueAbandoned,
    QueueJoined,
    ivr_variables,
)
from telephony.calls.outages import CutReason, OutageKind

# The IVR_OUTCOME the dialplan sets when the IVR could not choose (extensions.conf).
FAIL_OPEN: Final = "failopen"
UNKNOWN_LINE: Final = "unknown"  # a call whose start the listener did not see
MAX_CALLS: Final = 10_000  # live calls remembered; only lost hang-ups could reach it


class CallCounter:
    """Counts calls from the listener's facts (``AmiListener.observe``)."""

    def __init__(self, registry: CollectorRegistry, lines: Callable[[], Iterable[str]]) -> None:
        self._started = Counter("siaga112_calls", "Calls that reached the line",
                                ["line"], registry=registry)
        self._offered = Counter("siaga112_calls_offered",
                                "Calls offered to a queue (each queue a call joined)",
                                ["line", "queue"], registry=registry)
        self._answered = Counter("siaga112_calls_answered",
                                 "Calls an operator answered, by the queue they came through",
                                 ["line", "queue"], registry=registry)
        self._abandoned = Counter("siaga112_calls_abandoned",
                                  "Callers who hung up while waiting in a queue",
                                  ["line", "queue"], registry=registry)
        self._failopen = Counter("siaga112_ivr_failopen",
                                 "Calls the dialplan sent past the IVR (IVR_OUTCOME=failopen)",
                                 ["line"], registry=registry)
        self._cut = Counter("siaga112_calls_cut",
                            "Calls Asterisk's restart or crash cut (telephony/calls/outages.py)",
                            ["reason"], registry=registry)
        self._outages = Counter("siaga112_asterisk_outages",
                                "Times Asterisk went away and came back (restart, stop, crash)",
                                ["kind"], registry=registry)
        # Every line's series exists from the start, so the first fail-open is an increase;
        # so do every cut reason's and outage kind's (docker/prometheus/alerts.yml).
        for line in lines():
            self._started.labels(line)
            self._failopen.labels(line)
        # A fail-open of a call whose start this process did not see is counted under
        # UNKNOWN_LINE: from zero too, or the alert's increase() would miss the first.
        self._failopen.labels(UNKNOWN_LINE)
        for reason in CutReason:
            self._cut.labels(reason.value)
        for kind in OutageKind:
            self._outages.labels(kind.value)
        self._lines: dict[str, str] = {}
        self._counted: dict[str, set[tuple[str, str]]] = {}

    def recorded(self, facts: Sequence[CallFact]) -> None:
        """Count ``facts`` (the listener's observer)."""
        for fact in facts:
            self._count(fact)

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """Nothing to do: the resync's facts came through :meth:`recorded`."""

    def _count(self, fact: CallFact) -> None:
        match fact:
            case CallStarted():
                if self._once(fact.call_id, "started", ""):
                    self._remember(fact.call_id, fact.line)
                    self._started.labels(fact.line).inc()
            case IvrVariableSet() | IvrVariablesSet() if (
                    ("outcome", FAIL_OPEN) in ivr_variables(fact)):
                if self._once(fact.call_id, "failopen", ""):
                    self._failopen.labels(self._line(fact.call_id)).inc()
            case QueueJoined():
                if self._once(fact.call_id, "offered", fact.queue):
                    self._offered.labels(self._line(fact.call_id), fact.queue).inc()
            case OperatorAnswered():
                if self._once(fact.call_id, "answered", fact.queue):
                    self._answered.labels(self._line(fact.call_id), fact.queue).inc()
            case QueueAbandoned():
                if self._once(fact.call_id, "abandoned", fact.queue):
                    self._abandoned.labels(self._line(fact.call_id), fact.queue).inc()
            case CallEnded() | CallVanished():
                self._lines.pop(fact.call_id, None)
                self._counted.pop(fact.call_id, None)
            case CallCut():  # the listener's outage watch gives each cut once
                self._cut.labels(fact.reason).inc()
            case AsteriskReturned():
                self._outages.labels(fact.outage).inc()

    def _once(self, call_id: str, what: str, queue: str) -> bool:
        if call_id not in self._counted and len(self._counted) >= MAX_CALLS:
            del self._counted[next(iter(self._counted))]
        counted = self._counted.setdefault(call_id, set())
        if (what, queue) in counted:
            return False
        counted.add((what, queue))
        return True

    def _remember(self, call_id: str, line: str) -> None:
        if call_id not in self._lines and len(self._lines) >= MAX_CALLS:
            del self._lines[next(iter(self._lines))]
        self._lines[call_id] = line

    def _line(self, call_id: str) -> str:
        return self._lines.get(call_id, UNKNOWN_LINE)
