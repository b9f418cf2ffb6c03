"""The reports' reference: the figures computed in Python (``telephony.reports.model``'s
functions over one row per call) from the source tables, as the reports did before they
aggregated in SQL. Tests compare the SQL figures with these on random histories.

It reads ``call_labels`` and ``call_events`` themselves, not the copies migration 0015 keeps
on ``calls``, so a comparison also checks the triggers that keep those copies. Who worked at
a phone is only known from the copies of migration 0044 (``answered_account``, and
``rung_accounts`` beside ``rung_operators``): those it takes as they are, and so it takes
the operators' parts of a call several answered as ``call_answers`` holds them (0051; the
trigger that keeps them from the answer facts is tested on its own in
tests/loopback/test_reports_store.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime

import asyncpg

from telephony.db.rows import from_row
from telephony.reports.model import (
    WRAPUP_PAUSE_GRACE,
    Answer,
    CallRow,
    DayFigures,
    Period,
    PeriodFigures,
    StateChange,
    WrapKey,
    day_figures,
    period_figures,
    wrapup_seconds,
)
from telephony.reports.store import WRAPUP_LOOKAHEAD, account_key


async def call_rows(connection: asyncpg.Connection, period: Period) -> list[CallRow]:
    """Every call that arrived in ``period``'s shifts, with the operators rung for it."""
    rows = await connection.fetch(
        """
        SELECT c.call_id, c.line, c.shift_day, c.shift_name, c.ivr_category AS category,
               c.queue, c.queue_joined_at AS joined_at, c.answered_at, c.operator AS desk,
               c.answered_account, c.rung_operators AS rung_copy, c.rung_accounts,
               c.wait_seconds AS hold_seconds, c.talk_seconds, c.completed_at,
               c.ended_at, c.disposition, l.label, r.rung
        FROM call_outcomes c
        LEFT JOIN LATERAL (
            SELECT label FROM call_labels
            WHERE call_id = c.call_id
            ORDER BY labelled_at DESC, label_id DESC
            LIMIT 1
        ) l ON true
        LEFT JOIN LATERAL (
            SELECT array_agg(DISTINCT e.body ->> 'operator') AS rung
            FROM call_events e
            WHERE e.call_id = c.call_id AND e.kind = 'operator_rung'
        ) r ON true
        WHERE c.shift_day BETWEEN $1 AND $2 AND ($3::text IS NULL OR c.shift_name = $3)
        ORDER BY c.arrived_at, c.call_id
        """,
        period.first, period.last, period.shift,
    )
    shared = await answers(connection, [row["call_id"] for row in rows
                                        if row["disposition"] == "answered"])
    return [from_row(CallRow, row, rung=_rung(row), operator=_operator(
        row["desk"], row["answered_account"]),
        answers=tuple(part for part, _ in shared.get(row["call_id"], ()))) for row in rows]


async def answers(connection: asyncpg.Connection, call_ids: list[str]
                  ) -> dict[str, list[tuple[Answer, int | None]]]:
    """Call id -> each operator's part and its queue's recorded wrap-up, for those of the
    calls more than one operator answered."""
    rows = await connection.fetch(
        "SELECT * FROM call_answers WHERE call_id = ANY($1::text[])"
        " ORDER BY call_id, answered_at NULLS LAST, operator", call_ids)
    parts: dict[str, list[tuple[Answer, int | None]]] = defaultdict(list)
    for row in rows:
        talk = row["talk_seconds"]
        if talk is not None or row["talk_before"]:
            talk = row["talk_before"] + (talk or 0)
        parts[row["call_id"]].append((Answer(
            _operator(row["operator"], row["answered_account"]) or row["operator"],
            row["operator"], talk, row["completed_at"]), row["wrapup_seconds"]))
    return {call_id: mine for call_id, mine in parts.items() if len(mine) > 1}


def _operator(desk: str | None, account: int | None) -> str | None:
    """Who worked at ``desk`` (model's definitions): the account, else the phone."""
    return account_key(account) if account is not None else desk


def _rung(row: asyncpg.Record) -> frozenset[str]:
    """The operators rung: each phone of the call's rung events, as the account at it."""
    accounts = dict(zip(row["rung_copy"], row["rung_accounts"], strict=False))
    return frozenset(_operator(desk, accounts.get(desk)) or desk for desk in row["rung"] or ())


async def state_changes(connection: asyncpg.Connection, operators: Collection[str],
                        since: datetime, until: datetime) -> dict[str, list[StateChange]]:
    """The pause changes of ``operators`` from ``since`` to a while past ``until``, oldest
    first (changes at one instant in several queues are one change)."""
    rows = await connection.fetch(
        """
        SELECT operator, at, bool_and(paused) AS paused,
               max(pause_reason) FILTER (WHERE paused) AS reason
        FROM operator_state_changes
        WHERE operator = ANY($1::text[]) AND at >= $2 AND at < $3
        GROUP BY operator, at
        ORDER BY operator, at
        """,
        list(operators), since, until + WRAPUP_PAUSE_GRACE + WRAPUP_LOOKAHEAD,
    )
    changes: dict[str, list[StateChange]] = defaultdict(list)
    for row in rows:
        changes[row["operator"]].append(from_row(StateChange, row, reason=row["reason"] or ""))
    return dict(changes)


async def wrapups(connection: asyncpg.Connection, rows: list[CallRow],
                  automatic: float) -> dict[WrapKey, float]:
    """(Answered call id, phone) -> that operator's wrap-up seconds after their part: the
    pauses of the phone that answered, at least the answering queue's wrap-up as recorded
    with the call (or the operator's part), else ``automatic``."""
    recorded = {(row["call_id"], row["operator"]): row["wrapup_seconds"]
                for row in await connection.fetch(
                    "SELECT call_id, operator, wrapup_seconds FROM calls"
                    " WHERE call_id = ANY($1::text[])", [r.call_id for r in rows])}
    shared = await answers(connection, [r.call_id for r in rows if r.answers])
    for call_id, parts in shared.items():
        recorded |= {(call_id, part.desk): wrap for part, wrap in parts}
    done = [(r.call_id, part.desk, part.completed_at) for r in rows
            for part in (r.answers or (Answer("", r.desk or "", None, r.completed_at),))
            if part.completed_at is not None and part.desk]
    if not done:
        return {}
    changes = await state_changes(connection, {op for _, op, _ in done},
                                  min(at for _, _, at in done), max(at for _, _, at in done))
    # A call's wrap-up pause is looked for up to the lookahead past its own end, whatever the
    # period, so a shift's wrap-ups are the same in every report (and in its rollup).
    return {(call_id, op): wrapup_seconds(
                at, [c for c in changes.get(op, [])
                     if c.at < at + WRAPUP_PAUSE_GRACE + WRAPUP_LOOKAHEAD],
                automatic if recorded.get((call_id, op)) is None
                else float(recorded[(call_id, op)]))
            for call_id, op, at in done}


async def reference_period(connection: asyncpg.Connection, period: Period, now: datetime,
                           automatic_wrapup: float) -> PeriodFigures:
    """The period's figures by the reference implementation."""
    rows = await call_rows(connection, period)
    return period_figures(rows, now, await wrapups(connection, rows, automatic_wrapup))


async def reference_day(connection: asyncpg.Connection, period: Period, now: datetime
                        ) -> DayFigures:
    """A day's (or one shift's) figures and counts by the reference implementation."""
    return day_figures(await call_rows(connection, period), now)
