"""Calls as the listener records them: the facts of one call, built to order, and stored."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg

from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    IvrVariableSet,
    OperatorAnswered,
    QueueAbandoned,
    QueueJoined,
)
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository
from telephony.settings import DEFAULT_SHIFTS

CALENDAR: Final = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
OPERATOR: Final = "PJSIP/op1001"  # who answers the calls built here


class _When(enum.Enum):
    A_MINUTE_AGO = "a minute ago"  # resolved when the facts are built, not at import


A_MINUTE_AGO: Final = _When.A_MINUTE_AGO


def ago(**delta: float) -> datetime:
    """That long before now (``timedelta`` keywords)."""
    return datetime.now(UTC) - timedelta(**delta)


def call_facts(
    call_id: str,
    caller: str = "081234567890",
    *,
    line: str = "112",
    at: datetime | None = None,
    key: str | None = None,
    category: str = "emergency",
    skill: str | None = "fire",
    answered_at: datetime | Literal[_When.A_MINUTE_AGO] | None = A_MINUTE_AGO,
    talk: float | None = 30.0,
) -> list[CallFact]:
    """The facts of one call from ``caller`` to ``line``, arriving ``at`` (by default 20 s
    before the answer, or before now if nobody answers).

    - ``key``: the caller pressed it 2 s in (the IVR's ``first_key_ms``, ``outcome`` and
      ``choice``);
    - ``skill``: 4 s in the IVR routes the call (``category`` and ``skill``) and a second later
      it joins that queue; ``None``: the caller hangs up in the IVR 2 s in, queued nowhere
      (and so answered by nobody);
    - ``answered_at``: when ``OPERATOR`` answers the queued call (a minute ago unless given);
      ``None``: the caller gives up in the queue 15 s in;
    - ``talk``: seconds from the answer to the caller's hang-up; ``None``: still talking.
    """
    if skill is None and answered_at is not A_MINUTE_AGO and answered_at is not None:
        raise ValueError("a call queued nowhere is answered by nobody")
    if skill is None:
        answered = None
    else:
        answered = ago(minutes=1) if answered_at is A_MINUTE_AGO else answered_at
    start = at if at is not None else (answered or datetime.now(UTC)) - timedelta(seconds=20)
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}", caller, "", line, start)]
    if key is not None:
        pressed = start + timedelta(seconds=2)
        facts += [IvrVariableSet(call_id, "first_key_ms", "1200", pressed),
                  IvrVariableSet(call_id, "outcome", "chosen", pressed),
                  IvrVariableSet(call_id, "choice", key, pressed)]
    if skill is None:
        return [*facts, CallEnded(call_id, 16, "Normal Clearing", start + timedelta(seconds=2))]
    joined = start + timedelta(seconds=5)
    facts += [IvrVariableSet(call_id, "category", category, start + timedelta(seconds=4)),
              IvrVariableSet(call_id, "skill", skill, start + timedelta(seconds=4)),
              QueueJoined(call_id, skill, 1, joined)]
    if answered is None:
        left = start + timedelta(seconds=15)
        return [*facts, QueueAbandoned(call_id, skill, 1, 1, 10, left),
                CallEnded(call_id, 16, "Normal Clearing", left)]
    held = max(0, round((answered - joined).total_seconds()))
    facts.append(OperatorAnswered(call_id, skill, OPERATOR, held, 2, answered))
    if talk is not None:
        facts.append(
            CallEnded(call_id, 16, "Normal Clearing", answered + timedelta(seconds=talk)))
    return facts


async def add_calls(dsn: str, *calls: list[CallFact]) -> None:
    """Store the calls' facts, as the listener would."""
    connection = await asyncpg.connect(dsn)
    try:
        for facts in calls:
            await CallRepository(CALENDAR).apply(connection, facts)
    finally:
        await connection.close()


async def answered(dsn: str, call_id: str, **options: Any) -> None:
    """Store a call answered a minute ago and still going (``options``: see call_facts)."""
    await add_calls(dsn, call_facts(call_id, answered_at=ago(minutes=1), talk=None, **options))
