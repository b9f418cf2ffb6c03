"""A line's call history, generated inside PostgreSQL, for benchmarks that need a big one.

``grow_history(connection, calls, ...)`` adds calls further and further into the past at a
fixed daily rate (default 9,000 a day: 10 M calls are about three years), so the last month
looks the same whatever the history's size and a report's cost can be compared across sizes.
Everything is INSERT ... SELECT generate_series, in batches, with triggers off (the copies
migration 0015's triggers keep on ``calls`` are written directly, consistent with the rows).

Per call: a line, an IVR category; 82% reach a queue (a tenth overflow to ``all-operators``,
a visit each), of which about 75% are answered by one of 40 operators after ringing one or
two (wait 0-60 s, talk 30-300 s), 15% abandoned, the rest vanish or end in the queue; the
others end in the IVR. 30% are labelled (a tenth relabelled later), 15% of those prank or
silent. Half of the answered calls are followed by a wrap-up pause in two queues, ended 40 s
later. Each answer has its ``call_answers`` row (migration 0051); one answered call in fifty
was answered by two operators (a blind transfer nobody took, the caller queued again), the
first talking a third of the talk, the second the rest after 10 s. ``call_events`` are not
generated: the reports no longer read them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time

import asyncpg

from telephony.calls.shifts import ShiftCalendar
from telephony.db.embedded import EmbeddedPostgres
from telephony.db.migrate import migrate
from telephony.screening.service import SCORING_MAX_AGE

OPERATORS = 40
_BATCH = 250_000


def _shift_sql(calendar: ShiftCalendar, local: str) -> tuple[str, str]:
    """SQL for the shift day and name of the local timestamp expression ``local``."""
    starts = sorted((d.start, d.name) for d in calendar.definitions)
    first: time = starts[0][0]
    day = f"CASE WHEN {local}::time < '{first}' THEN {local}::date - 1 ELSE {local}::date END"
    cases = " ".join(f"WHEN {local}::time >= '{start}' THEN '{name}'"
                     for start, name in reversed(starts))
    return day, f"CASE {cases} ELSE '{starts[-1][1]}' END"


async def grow_history(connection: asyncpg.Connection, calendar: ShiftCalendar,
                       timezone: str, *, have: int, calls: int, now: datetime,
                       per_day: int = 9_000) -> None:
    """Add calls number ``have`` .. ``calls - 1`` (call 0 is the newest, at ``now``)."""
    await connection.execute("SET session_replication_role = replica")
    await connection.execute(
        "INSERT INTO operators (operator, display_name) "
        "SELECT 'PJSIP/op' || (1000 + n), 'Operator ' || n FROM generate_series(1, $1) n "
        "ON CONFLICT DO NOTHING", OPERATORS)
    spacing = 86_400 / per_day
    for first in range(have, calls, _BATCH):
        last = min(calls, first + _BATCH) - 1
        await _batch(connection, calendar, timezone, first, last, now, spacing)
    await connection.execute("RESET session_replication_role")


_COLUMNS = """call_id, line, caller_number, arrived_at, shift_day, shift_name,
    ivr_category, queue, queue_joined_at, answered_queue, answered_at, operator, wait_seconds,
    talk_seconds, completed_at, ended_by, abandoned_at, abandon_queue, ended_at, vanished,
    rung_operators, current_label, answers_shared"""


async def _batch(connection: asyncpg.Connection, calendar: ShiftCalendar, timezone: str,
                 first: int, last: int, now: datetime, spacing: float) -> None:
    day, name = _shift_sql(calendar, f"(arrived AT TIME ZONE '{timezone}')")
    await connection.execute("DROP TABLE IF EXISTS batch")
    await connection.execute(
        f"""
        CREATE TEMP TABLE batch AS
        -- Asterisk-like unique ids (epoch.sequence): the recordings worker and the API
        -- refuse anything else, and would log every generated call.
        SELECT (extract(epoch FROM arrived)::bigint)::text || '.' || n AS call_id,
               CASE WHEN n % 5 = 0 THEN '119' ELSE '112' END AS line,
               '0812' || lpad((n % 9999991)::text, 8, '0') AS caller_number,
               arrived AS arrived_at, {day} AS shift_day, {name} AS shift_name,
               (ARRAY['emergency', 'complaint', 'information'])[1 + n % 3] AS ivr_category,
               CASE WHEN fate < 0.82 THEN q END AS queue,
               CASE WHEN fate < 0.82 THEN arrived + interval '5 seconds' END AS queue_joined_at,
               CASE WHEN fate < 0.62 THEN q END AS answered_queue,
               CASE WHEN fate < 0.62 THEN arrived + interval '5 seconds' + wait END AS answered_at,
               CASE WHEN fate < 0.62 THEN op END AS operator,
               CASE WHEN fate < 0.62 THEN extract(epoch FROM wait)::int END AS wait_seconds,
               CASE WHEN fate < 0.62 THEN talk END AS talk_seconds,
               CASE WHEN fate < 0.62
                    THEN arrived + interval '5 seconds' + wait + talk * interval '1 second'
               END AS completed_at,
               CASE WHEN fate < 0.62 THEN 'caller' END AS ended_by,
               CASE WHEN fate >= 0.62 AND fate < 0.74
                    THEN arrived + interval '5 seconds' + wait END AS abandoned_at,
               CASE WHEN fate >= 0.62 AND fate < 0.74 THEN q END AS abandon_queue,
               arrived + interval '5 seconds' + wait + talk * interval '1 second' AS ended_at,
               fate >= 0.74 AND fate < 0.76 AS vanished,
               CASE WHEN fate < 0.62 THEN ARRAY[op] || CASE WHEN n % 3 = 0 THEN
                        ARRAY['PJSIP/op' || (1000 + 1 + (n + 7) % {OPERATORS})] ELSE '{{}}' END
                    WHEN fate < 0.82 THEN ARRAY[op] ELSE '{{}}' END AS rung_operators,
               CASE WHEN labelled < 0.3 THEN CASE WHEN labelled < 0.03 THEN 'prank'
                                                WHEN labelled < 0.045 THEN 'silent'
                                                ELSE 'genuine' END END AS current_label,
               fate < 0.62 AND n % 50 = 2 AS answers_shared,
               'PJSIP/op' || (1000 + 1 + (n + 11) % {OPERATORS}) AS second_operator
        FROM (
            SELECT n, $3::timestamptz - (n * $4 + random() * $4) * interval '1 second'
                       AS arrived,
                   random() AS fate, random() AS labelled,
                   random() * interval '60 seconds' AS wait,
                   30 + (random() * 270)::int AS talk,
                   'PJSIP/op' || (1000 + 1 + n % {OPERATORS}) AS op,
                   (ARRAY['medical', 'fire', 'security', 'disaster'])[1 + n % 4] AS q
            FROM generate_series($1::bigint, $2::bigint) AS n
        ) AS made
        """,
        first, last, now, spacing)
    await connection.execute(f"INSERT INTO calls ({_COLUMNS}) "
                             f"SELECT {_COLUMNS} FROM batch")
    await connection.execute(
        """
        INSERT INTO call_answers (call_id, operator, queue, answered_at, completed_at,
                                  talk_seconds)
        SELECT call_id, operator, answered_queue, answered_at,
               CASE WHEN answers_shared THEN answered_at + talk_seconds / 3 * interval '1 s'
                    ELSE completed_at END,
               CASE WHEN answers_shared THEN talk_seconds / 3 ELSE talk_seconds END
        FROM batch WHERE operator IS NOT NULL
        UNION ALL
        SELECT call_id, second_operator, answered_queue,
               answered_at + (talk_seconds / 3 + 10) * interval '1 s', completed_at,
               talk_seconds - talk_seconds / 3 - 10
        FROM batch WHERE answers_shared
        """)
    await connection.execute(
        """
        INSERT INTO queue_visits (call_id, queue, joined_at, join_position, left_at,
                                  left_position)
        SELECT call_id, queue, queue_joined_at, 1,
               COALESCE(answered_at, abandoned_at, ended_at), 1
        FROM batch WHERE queue IS NOT NULL
        UNION ALL
        SELECT call_id, 'all-operators', queue_joined_at + interval '30 seconds', 1,
               COALESCE(answered_at, abandoned_at, ended_at), 1
        FROM batch WHERE queue IS NOT NULL AND hashtext(call_id) % 10 = 0
          AND COALESCE(answered_at, abandoned_at, ended_at)
              > queue_joined_at + interval '30 seconds'
        """)
    await connection.execute(
        """
        INSERT INTO call_labels (call_id, label, labelled_by, labelled_at)
        SELECT call_id, 'genuine', 'sari', ended_at + interval '30 seconds'
        FROM batch WHERE current_label IS NOT NULL AND hashtext(call_id) % 10 = 1
        UNION ALL
        SELECT call_id, current_label, 'sari', ended_at + interval '60 seconds'
        FROM batch WHERE current_label IS NOT NULL
        """)
    day_at, name_at = _shift_sql(calendar, f"(at AT TIME ZONE '{timezone}')")
    await connection.execute(
        f"""
        INSERT INTO operator_state_changes (operator, queue, at, state, paused, pause_reason,
                                            shift_day, shift_name)
        SELECT operator, queue, at, state, paused, reason, {day_at}, {name_at}
        FROM (
            SELECT c.operator, q.queue, s.at, s.state, s.paused, s.reason
            FROM batch c
            CROSS JOIN (VALUES ('medical'), ('all-operators')) AS q (queue)
            CROSS JOIN LATERAL (VALUES
                (c.completed_at + interval '2 seconds', 'paused', true, 'wrapup'),
                (c.completed_at + interval '42 seconds', 'idle', false, '')
            ) AS s (at, state, paused, reason)
            WHERE c.completed_at IS NOT NULL AND hashtext(c.call_id) % 2 = 0
        ) AS changes
        ON CONFLICT DO NOTHING
        """)


async def fresh_database(cluster: EmbeddedPostgres) -> str:
    """A new database in ``cluster``, migrated; its DSN."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = cluster.dsn().rsplit("/", 1)[0] + "/" + name
    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    return dsn


async def as_a_running_site(connection: asyncpg.Connection) -> None:
    """Give the generated history what a running site's has, then VACUUM ANALYZE it.

    The recent calls get their recordings' rows: without them the recordings worker would
    spend a surge reporting the generated calls' files as missing. The calls of the screening
    upkeep's window (SCORING_MAX_AGE) get their post-call scores: without them the upkeep
    would spend a surge scoring them, 200 at a time."""
    await connection.execute("""
        INSERT INTO recordings (call_id, state, started_at, reason)
        SELECT call_id, 'expired', COALESCE(arrived_at, ended_at), 'generated history'
        FROM calls WHERE ended_at > now() - interval '30 days'
        ON CONFLICT DO NOTHING""")
    await connection.execute("""
        INSERT INTO call_screening (call_id, caller_key, arrived_at, looked_silent,
                                    post_score, post_reasons)
        SELECT call_id, caller_key, arrived_at, false, 0, '[]'
        FROM calls WHERE ended_at >= now() - make_interval(secs => $1)
        ON CONFLICT DO NOTHING""", SCORING_MAX_AGE.total_seconds())
    await connection.execute("VACUUM ANALYZE")
