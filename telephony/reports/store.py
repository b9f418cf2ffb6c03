"""SQL of the supervisor's reports and wallboard: every read they make, in one place.

Reports read one row per call of the period (``call_outcomes`` with the call's current label,
found by the ``call_labels_latest_idx`` index) and do the maths in Python
(``telephony.reports.model``), so the percentiles, service levels and wrap-ups have one
definition that the unit tests pin down. A period is a range of shift days, read through
``calls_shift_idx``; a month of a busy line is tens of thousands of small rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import date, datetime, timedelta

import asyncpg

from telephony.calls.facts import OperatorStateChanged, QueueJoined
from telephony.db.rows import from_row
from telephony.reports.model import (
    WRAPUP_PAUSE_GRACE,
    CallInfo,
    CallRow,
    CategoryCount,
    LivePicture,
    Period,
    StateChange,
    VillageCount,
)

# A wrap-up pause is read this long past the period's last call.
_WRAPUP_LOOKAHEAD = timedelta(hours=2)
# Calls open longer than this at start-up are lost hang-ups, not live calls.
_LIVE_HORIZON = timedelta(hours=12)

class ReportRepository:
    """Reads for reports and the wallboard. Holds no connection: callers pass one in."""

    async def call_rows(self, connection: asyncpg.Connection, period: Period) -> list[CallRow]:
        """Every call that arrived in ``period``'s shifts, with the operators rung for it."""
        rows = await connection.fetch(
            """
            SELECT c.call_id, c.line, c.shift_day, c.shift_name, c.ivr_category AS category,
                   c.queue, c.queue_joined_at AS joined_at, c.answered_at, c.operator,
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
        return [from_row(CallRow, row, rung=frozenset(row["rung"] or ())) for row in rows]

    async def state_changes(
        self, connection: asyncpg.Connection, operators: Collection[str], since: datetime,
        until: datetime,
    ) -> dict[str, list[StateChange]]:
        """The pause changes of ``operators`` from ``since`` to a while past ``until``,
        oldest first, enough to measure the wrap-up of calls that ended in between."""
        rows = await connection.fetch(
            """
            SELECT operator, at, bool_and(paused) AS paused,
                   max(pause_reason) FILTER (WHERE paused) AS reason
            FROM operator_state_changes
            WHERE operator = ANY($1::text[]) AND at >= $2 AND at < $3
            GROUP BY operator, at
            ORDER BY operator, at
            """,
            list(operators), since, until + WRAPUP_PAUSE_GRACE + _WRAPUP_LOOKAHEAD,
        )
        changes: dict[str, list[StateChange]] = defaultdict(list)
        for row in rows:
            changes[row["operator"]].append(
                from_row(StateChange, row, reason=row["reason"] or ""))
        return dict(changes)

    async def operator_names(self, connection: asyncpg.Connection) -> dict[str, str]:
        """Operator interface -> display name, for those that have one: the name of the
        account working at that desk, else the operator's own."""
        rows = await connection.fetch(
            """
            SELECT o.operator,
                   COALESCE(NULLIF(a.display_name, ''), NULLIF(a.username, ''),
                            o.display_name) AS name
            FROM operators o
            LEFT JOIN account_operators ao USING (operator)
            LEFT JOIN accounts a USING (account_id)
            """
        )
        return {row["operator"]: row["name"] for row in rows if row["name"]}

    async def report_types(self, connection: asyncpg.Connection, day: date
                           ) -> list[CategoryCount]:
        """Incidents of the day's calls by report type, with how many of the calls each has."""
        rows = await connection.fetch(
            """
            SELECT i.report_type AS code, count(DISTINCT i.incident_id) AS incidents,
                   count(*) AS calls
            FROM calls c
            JOIN incident_calls ic USING (call_id)
            JOIN incidents i USING (incident_id)
            WHERE c.shift_day = $1
            GROUP BY i.report_type
            ORDER BY calls DESC, i.report_type
            """,
            day,
        )
        return [from_row(CategoryCount, row) for row in rows]

    async def villages(self, connection: asyncpg.Connection, day: date) -> list[VillageCount]:
        """The day's calls by the village of their incident (or its sub-district only, or no
        place yet)."""
        rows = await connection.fetch(
            """
            SELECT v.code AS village_code, v.name AS village_name,
                   s.name AS sub_district_name,
                   count(*) AS calls, count(DISTINCT i.incident_id) AS incidents
            FROM calls c
            JOIN incident_calls ic USING (call_id)
            JOIN incidents i USING (incident_id)
            LEFT JOIN villages v ON v.code = i.village_code
            LEFT JOIN sub_districts s
                   ON s.code = COALESCE(v.sub_district_code, i.sub_district_code)
            WHERE c.shift_day = $1
            GROUP BY v.code, v.name, s.name
            ORDER BY calls DESC, s.name NULLS LAST, v.name NULLS LAST
            """,
            day,
        )
        return [from_row(VillageCount, row) for row in rows]

    async def ratings(self, connection: asyncpg.Connection, since: datetime, until: datetime
                      ) -> dict[int, int]:
        """Ratings given in [since, until): rating -> how many."""
        rows = await connection.fetch(
            """
            SELECT rating, count(*) AS n FROM incidents
            WHERE rating IS NOT NULL AND rated_at >= $1 AND rated_at < $2
            GROUP BY rating
            """,
            since, until,
        )
        return {row["rating"]: row["n"] for row in rows}

    async def live_picture(self, connection: asyncpg.Connection, now: datetime) -> LivePicture:
        """What the database believes is live: calls, callers waiting, logged-in members."""
        calls = await connection.fetch(
            """
            SELECT call_id, line, ivr_category AS category FROM calls
            WHERE ended_at IS NULL AND arrived_at > $1
            """,
            now - _LIVE_HORIZON,
        )
        visits = await connection.fetch(
            """
            -- Positions at join are stale by now; the order of joining is not.
            SELECT v.call_id, v.queue, v.joined_at AS at,
                   row_number() OVER (PARTITION BY v.queue ORDER BY v.joined_at, v.call_id)
                       AS position
            FROM queue_visits v JOIN calls c USING (call_id)
            WHERE v.left_at IS NULL AND c.ended_at IS NULL AND c.answered_at IS NULL
              AND c.arrived_at > $1
            """,
            now - _LIVE_HORIZON,
        )
        members = await connection.fetch(
            """
            SELECT operator, queue, state, paused, pause_reason, since AS at
            FROM queue_members WHERE state <> 'logged_out'
            """
        )
        return LivePicture(
            calls={row["call_id"]: from_row(CallInfo, row) for row in calls},
            waiting=[from_row(QueueJoined, row) for row in visits],
            members=[from_row(OperatorStateChanged, row) for row in members],
        )
