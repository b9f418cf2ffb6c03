"""SQL of the supervisor's reports and wallboard: every read they make, in one place.

The figures are computed by the database: one grouped query over the calls of a period's
shift days (``calls_report_idx``, which holds every column they need, so a month of a busy
line is an index range scan, never a row per call sent to Python). The definitions are
``telephony.reports.model``'s, word for word; its Python reference implementation is the
oracle the SQL is tested against on random histories. Figures come back as exact integers
(counts, sums and the nearest-rank p90 in microseconds) and become seconds here.

A call's rung operators and current label are copies kept on its row by the triggers of
migration 0015, so no per-call probe of ``call_events`` or ``call_labels`` is needed.

The shift report reads per-shift rollups (migration 0016):
a closed shift's figures per first queue (kind 'fine', a call once) and per (first queue,
answering operator) (kind 'answer', each operator's part of a call several answered,
migration 0051), stored once by
:meth:`ReportRepository.refresh_rollups` with the same SQL, and deleted by triggers when a
late fact touches the shift; a shift without a valid rollup (the current one, or one just
touched) is computed from its calls in the same statement. A month is then about a hundred
shifts' rollup rows, not 300,000 calls and their pause changes. The refresher takes no lock
that a write waits for: it claims a slot before its snapshot and keeps its rollup only while
the claim survives (migration 0030; the argument is in ``refresh_rollups``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Final

import asyncpg

from telephony.calls.facts import OperatorStateChanged, QueueJoined
from telephony.calls.shifts import ShiftSlot
from telephony.db.rows import from_row
from telephony.desks.operators import PauseReason
from telephony.desks.phones import RtpTimeouts
from telephony.reports.model import (
    NOT_INCIDENTS,
    SERVICE_LEVEL_SECONDS,
    UNRECORDED_OPERATOR,
    WRAPUP_PAUSE_GRACE,
    CallInfo,
    CategoryCount,
    ChangedCalls,
    DayFigures,
    Figures,
    LiveAnswer,
    LiveCall,
    LivePicture,
    PeriodFigures,
    PhoneTimeouts,
    Ratio,
    Talking,
    VillageCount,
)
from telephony.screening.features import NUISANCE

# A wrap-up pause's end is looked for this long past its call's end (after that, the
# queue's automatic wrap-up counts): per call, so a shift's wrap-ups, and its rollup, are
# the same in every report.
WRAPUP_LOOKAHEAD: Final = timedelta(hours=2)
# Calls open longer than this at start-up are lost hang-ups, not live calls.
_LIVE_HORIZON = timedelta(hours=12)
_MICROS: Final = 1_000_000

log = logging.getLogger("telephony.reports")

# One call of the period as the figures see it ($1..$3: first day, last day, shift or NULL).
# ``operator`` is who answered (model.CallRow.operator): the account working at the phone
# then (migration 0044), :func:`account_key`; the phone itself (``desk``) where that is not
# known. ``wrapup_us``: the answering queue's wrap-up an admin had set then, or NULL.
# wait_us: the definition of CallRow.wait_seconds, in whole microseconds (exact: date_part's
# float8 is rounded back to the microseconds the timestamps hold, far below 2**53; it is a
# quarter cheaper than extract's numeric over a month of calls).
_PERIOD_CALLS: Final = """
    SELECT c.call_id, c.shift_day, c.shift_name, c.queue, c.operator AS desk,
           COALESCE('#' || c.answered_account, c.operator) AS operator, c.line,
           c.ivr_category, c.rung_operators, c.rung_accounts, c.current_label AS label,
           c.talk_seconds, c.completed_at, c.queue_joined_at AS joined_at, c.disposition,
           c.wrapup_seconds * 1000000::bigint AS wrapup_us,
           c.answers_shared AND c.disposition = 'answered' AS shared,
           CASE WHEN c.disposition <> 'answered' THEN NULL
                WHEN c.queue_joined_at IS NOT NULL AND c.answered_at IS NOT NULL
                THEN greatest(0, round(date_part('epoch', c.answered_at - c.queue_joined_at)
                                       * 1000000)::bigint)
                ELSE c.wait_seconds * 1000000::bigint
           END AS wait_us
    FROM call_outcomes c
    WHERE c.shift_day BETWEEN $1 AND $2 AND ($3::text IS NULL OR c.shift_name = $3)
"""

# The columns of a ``period`` row that are the call's whatever operator's part is read.
_CALL_COLUMNS: Final = ("call_id", "shift_day", "shift_name", "queue", "line", "ivr_category",
                        "label", "joined_at", "disposition", "wait_us")

# ``answers``: each answering operator's part of the period's calls (model.CallRow.answers,
# Answer): for an answered call more than one operator answered (``period.shared``: its
# call_answers rows, migration 0051), one row per operator with their talk, end and wrap-up;
# for any other call its own row (its one operator, or none). A handful of calls have
# several: only theirs are looked up, each by call_answers' primary key.
_SHARED: Final = f"""
    shared AS MATERIALIZED (
        SELECT {", ".join(f"p.{c}" for c in _CALL_COLUMNS)}, a.operator AS desk,
               COALESCE('#' || a.answered_account, a.operator) AS operator,
               CASE WHEN a.talk_seconds IS NULL AND a.talk_before = 0 THEN NULL
                    ELSE a.talk_before + COALESCE(a.talk_seconds, 0) END AS talk_seconds,
               a.completed_at, a.wrapup_seconds * 1000000::bigint AS wrapup_us
        FROM period p
        -- OFFSET 0: a probe per shared call, never a join that reads all of call_answers.
        CROSS JOIN LATERAL (SELECT * FROM call_answers a WHERE a.call_id = p.call_id
                            OFFSET 0) a
        WHERE p.shared
    )
"""  # noqa: S608 - built from this module's constants only
_ANSWERS: Final = f"""
    {_SHARED},
    answers AS (
        SELECT {", ".join(f"p.{c}" for c in _CALL_COLUMNS)}, p.desk, p.operator,
               p.talk_seconds, p.completed_at, p.wrapup_us, false AS shared
        FROM period p WHERE NOT p.shared
        UNION ALL
        SELECT {", ".join(_CALL_COLUMNS)}, desk, operator, talk_seconds, completed_at,
               wrapup_us, true
        FROM shared
    )
"""  # noqa: S608 - built from this module's constants only

# Each done call's wrap-up in microseconds (model.wrapup_seconds), from the operators' pause
# changes read as the reference reads them: grouped by (operator, instant) over the
# operators of the slots' done calls, from their first call's end to a while past their last
# (a pause's end counts up to WRAPUP_LOOKAHEAD past its own call's end, per call).
# Two window passes instead of a probe per call: per change, the next change that is not a
# wrap-up pause (its end); per call end, the first wrap-up pause at or after it (changes sort
# before call ends at the same instant: ``completed_at <= at`` counts).
# Pauses are the phone's (``desk``), one wrap-up per operator's part of a call (``answers``):
# its automatic wrap-up is the queue that operator answered in's (``wrapup_us``), else the
# settings file's.
# $4: grace interval, $5: lookahead interval, $6: automatic wrap-up in microseconds (the
# settings file's), $7: the wrap-up pause reason.
_WRAPUPS: Final = """
    done AS (
        SELECT call_id, desk AS operator, completed_at, shift_day, shift_name, queue,
               COALESCE(wrapup_us, $6::bigint) AS automatic_us
        FROM answers
        WHERE completed_at IS NOT NULL AND desk IS NOT NULL
    ),
    bounds AS (
        SELECT min(completed_at) AS lo, max(completed_at) + $4 + $5 AS hi FROM done
    ),
    changes AS (
        SELECT s.operator, s.at,
               bool_and(s.paused)
                   AND COALESCE(max(s.pause_reason) FILTER (WHERE s.paused), '') = $7 AS wrap
        FROM operator_state_changes s, bounds b
        WHERE s.at >= b.lo AND s.at < b.hi AND s.operator IN (SELECT operator FROM done)
        GROUP BY s.operator, s.at
    ),
    pauses AS (
        SELECT operator, at, wrap,
               min(at) FILTER (WHERE NOT wrap) OVER (
                   PARTITION BY operator ORDER BY at DESC
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS end_at
        FROM changes
    ),
    timeline AS (
        SELECT operator, at, 0 AS k, NULL::text AS call_id,
               CASE WHEN wrap THEN ARRAY[at, end_at] END AS pause,
               NULL::date AS shift_day, NULL::text AS shift_name, NULL::text AS queue,
               NULL::bigint AS automatic_us
        FROM pauses
        UNION ALL
        SELECT operator, completed_at, 1, call_id, NULL, shift_day, shift_name, queue,
               automatic_us
        FROM done
    ),
    next_pause AS (
        SELECT call_id, at AS completed_at, k, operator, shift_day, shift_name, queue,
               automatic_us, min(pause) OVER (PARTITION BY operator ORDER BY at DESC, k
                                ROWS UNBOUNDED PRECEDING) AS pause
        FROM timeline
    ),
    wrapups AS (
        SELECT call_id, operator, shift_day, shift_name, queue,
               CASE WHEN pause[1] < completed_at + $4 AND pause[2] < completed_at + $4 + $5
                    THEN greatest(automatic_us, round(date_part('epoch', pause[2] - completed_at)
                                                      * 1000000)::bigint)
                    ELSE automatic_us
               END AS wrap_us
        FROM next_pause WHERE k = 1
    )
"""


def _figure_columns(now: str, nuisance: str) -> dict[str, str]:
    """The additive aggregates of one group of ``period`` rows (see model.figures), by
    column name: counts and sums, which add up from finer groups to coarser ones. The
    wrap-ups' two are apart (:func:`_slot_rows`)."""
    offered = "queue IS NOT NULL"
    answered = f"{offered} AND disposition = 'answered'"
    columns = {
        "calls": "count(*)",
        "offered": f"count(*) FILTER (WHERE {offered})",
        "answered": f"count(*) FILTER (WHERE {answered})",
        "abandoned": f"count(*) FILTER (WHERE {offered} AND disposition = 'abandoned')",
    }
    for t in SERVICE_LEVEL_SECONDS:
        columns[f"sl{t}_hits"] = (
            f"count(*) FILTER (WHERE {answered} AND wait_us <= {t * _MICROS})")
        columns[f"sl{t}_counted"] = (
            f"count(*) FILTER (WHERE {offered} AND CASE WHEN disposition = 'answered' "
            f"THEN wait_us IS NOT NULL ELSE disposition <> 'in_progress' OR ("
            f"joined_at IS NOT NULL AND {now} - joined_at > interval '{t} seconds') END)")
    columns |= {
        "wait_n": f"count(wait_us) FILTER (WHERE {answered})",
        "wait_sum": f"sum(wait_us) FILTER (WHERE {answered})",
        "talk_n": f"count(talk_seconds) FILTER (WHERE {answered})",
        "talk_sum": f"sum(talk_seconds) FILTER (WHERE {answered})",
        "labelled": "count(label)",
        "nuisance": f"count(*) FILTER (WHERE label = ANY({nuisance}))",
    }
    return columns


# Groupings by name: the columns of each (the empty tuple is the total).
_SETS: Final[Mapping[str, tuple[str, ...]]] = {
    "total": (), "shift": ("shift_day", "shift_name"), "queue": ("queue",),
    "operator": ("operator",), "line": ("line",), "category": ("ivr_category",),
    "label": ("label",), "shift_name": ("shift_name",),
}


# Per operator, the counts over every call offered to them (rung, or answered by them).
_OFFERED_TO: Final = """
    offered_to AS (
        SELECT o.operator, count(*) AS calls,
               count(*) FILTER (WHERE p.queue IS NOT NULL) AS offered,
               count(*) FILTER (WHERE p.queue IS NOT NULL AND p.disposition = 'abandoned')
                   AS abandoned
        FROM period p
        -- Every phone rung, as the account working at it then (0044), and who answered
        -- (each operator, when several did: 0051); each once.
        CROSS JOIN LATERAL (
            SELECT COALESCE('#' || r.account, r.desk)
            FROM unnest(p.rung_operators, p.rung_accounts) AS r (desk, account)
            UNION
            SELECT p.operator WHERE NULLIF(p.operator, '') IS NOT NULL AND NOT p.shared
            UNION
            SELECT s.operator FROM shared s WHERE p.shared AND s.call_id = p.call_id
        ) AS o (operator)
        GROUP BY o.operator
    ),
"""


def _grouping_label(groups: tuple[str, ...], keys: list[str]) -> str:
    """The name of the grouping set a GROUPING SETS row belongs to."""
    # A set's row is the one where its own columns are grouped and every other key is not.
    cases = " ".join(
        f"WHEN {' AND '.join(f'GROUPING({k}) = {0 if k in _SETS[name] else 1}' for k in keys)}"
        f" THEN '{name}'" for name in groups if _SETS[name])
    return f"CASE {cases} ELSE 'total' END" if cases else "'total'"


def _call_level() -> str:
    """``call_level``: one row per call of ``calls_wrapped`` (answers with their wrap-ups:
    ``wrap_k`` how many, ``wrap_us`` their sum), a call's talk and wrap-ups those of all its
    operators' parts added up (model.CallRow.talk), its operator NULL: the figures of a
    total, a shift or a queue count a call once."""
    columns = ", ".join(_CALL_COLUMNS)
    return f"""
        call_level AS (
            SELECT {columns}, NULL::text AS operator, talk_seconds::bigint AS talk_seconds,
                   wrap_k::bigint AS wrap_k, wrap_us::numeric AS wrap_us
            FROM calls_wrapped WHERE NOT shared
            UNION ALL
            SELECT {columns}, NULL, sum(talk_seconds), sum(wrap_k), sum(wrap_us)
            FROM calls_wrapped WHERE shared GROUP BY {columns}
        )
    """  # noqa: S608 - built from this module's constants only


def _figures_query(groups: tuple[str, ...]) -> str:
    """The figures (no wrap-ups) of a period's calls under each of ``groups`` (names of
    :data:`_SETS`), one row per group with its name in ``grouped_by`` and its key columns,
    straight from the calls (the daily summary's: its groupings are not in the rollups).
    Parameters: $1..$3 the period, $4 now, $5 the nuisance labels."""
    keys = sorted({column for name in groups for column in _SETS[name]})
    label = _grouping_label(groups, keys)
    sets = ", ".join(f"({', '.join(_SETS[name])})" for name in groups)
    by_call = _figure_columns("$4", "$5") | {"wrap_n": "0::bigint", "wrap_sum": "NULL::numeric"}
    calls = ", ".join(_CALL_COLUMNS)
    # Two levels: the counts and sums once per finest group, then added up per set; the p90
    # is no sum, so it is taken per set over the waits alone.
    return f"""
        WITH period AS MATERIALIZED ({_PERIOD_CALLS}),
        {_SHARED},
        call_level AS (
            SELECT {calls}, talk_seconds::bigint AS talk_seconds FROM period WHERE NOT shared
            UNION ALL
            SELECT {calls}, sum(talk_seconds) FROM shared GROUP BY {calls}
        ),
        fine AS (
            SELECT {", ".join(keys)}, {", ".join(f"{e} AS {c}" for c, e in by_call.items())}
            FROM call_level GROUP BY {", ".join(keys)}
        ),
        rolled AS (
            SELECT {label} AS grouped_by, {", ".join(keys)},
                   {", ".join(f"COALESCE(sum({c}), 0)::bigint AS {c}" for c in by_call)}
            FROM fine GROUP BY GROUPING SETS ({sets})
        ),
        tiles AS (
            SELECT {label} AS grouped_by, {", ".join(keys)},
                   percentile_disc(0.9) WITHIN GROUP (ORDER BY wait_us) AS wait_p90
            FROM period
            WHERE queue IS NOT NULL AND disposition = 'answered' AND wait_us IS NOT NULL
            GROUP BY GROUPING SETS ({sets})
        )
        SELECT r.*, t.wait_p90
        FROM rolled r LEFT JOIN tiles t ON t.grouped_by = r.grouped_by
            AND {" AND ".join(f"t.{k} IS NOT DISTINCT FROM r.{k}" for k in keys)}
    """  # noqa: S608 - built from this module's constants only


# -- per-shift rollups (migration 0016) ------------------------------------------------------
#
# A slot's figures by (first queue, answering operator) -- additive counts and sums, plus the
# exact waits of its answered offered calls for the p90 -- and per operator offered a call its
# three counts: what report_rollups stores for a closed slot, and what the reports compute
# from the calls of the slots that have no valid rollup (the current one, or one a late fact
# changed). $1, $2: the slots (days and names, side by side); $3..$6 those of the wrap-ups
# ($3 grace, $4 lookahead, $5 automatic wrap-up in microseconds, $6 the reason); $7 now,
# $8 the nuisance labels.

_ROLLUP_KEYS: Final = ("shift_day", "shift_name", "queue", "operator")
_KEY_TYPES: Final = {"shift_day": "date", "shift_name": "text", "queue": "text",
                     "operator": "text"}


def _slot_rows(source: str, *, wrapups: bool) -> str:
    """The rollup rows (kind, keys, figure columns, waits) of the calls of ``source``, a
    relation of (shift_day, shift_name) slots; defines the CTEs ``period``..``computed``."""
    columns = _figure_columns("$7", "$8")
    if wrapups:
        columns |= {"wrap_n": "COALESCE(sum(wrap_k) FILTER (WHERE queue IS NOT NULL), 0)",
                    "wrap_sum": "sum(wrap_us) FILTER (WHERE queue IS NOT NULL)"}
    else:
        columns |= {"wrap_n": "0::bigint", "wrap_sum": "NULL::numeric"}
    offered = [k if k != "queue" else "NULL" for k in _ROLLUP_KEYS] + [
        c if c in ("calls", "offered", "abandoned")
        else "NULL::numeric" if c.endswith("_sum") else "0::bigint" for c in columns]
    period_calls = _PERIOD_CALLS.replace(
        "WHERE c.shift_day BETWEEN $1 AND $2 AND ($3::text IS NULL OR c.shift_name = $3)",
        f"JOIN {source} s ON s.shift_day = c.shift_day AND s.shift_name = c.shift_name")
    # _WRAPUPS numbers its parameters after the period's three: one fewer here.
    wrapup_ctes = re.sub(r"\$([4-7])", lambda m: f"${int(m[1]) - 1}", _WRAPUPS)
    joined = ("SELECT a.*, (w.wrap_us IS NOT NULL)::int AS wrap_k, w.wrap_us FROM answers a"
              " LEFT JOIN wrapups w ON w.call_id = a.call_id AND w.operator = a.desk"
              if wrapups else "SELECT a.*, 0 AS wrap_k, NULL::bigint AS wrap_us FROM answers a")
    waits = ("COALESCE(array_agg(wait_us) FILTER (WHERE queue IS NOT NULL AND disposition ="
             " 'answered' AND wait_us IS NOT NULL), '{}') AS waits")
    per_slot_offered = _OFFERED_TO.replace("SELECT o.operator,", (
        "SELECT p.shift_day, p.shift_name, o.operator,")).replace(
        "GROUP BY o.operator", "GROUP BY p.shift_day, p.shift_name, o.operator")
    return f"""
        period AS MATERIALIZED ({period_calls}),
        {_ANSWERS},
        {wrapup_ctes + "," if wrapups else ""}
        {per_slot_offered}
        calls_wrapped AS MATERIALIZED ({joined}),
        {_call_level()},
        -- 'fine': per call (a total, a shift, a queue); 'answer': per answering operator's
        -- part (the operators' figures).
        computed AS (
            SELECT 'fine' AS kind, {", ".join(_ROLLUP_KEYS)},
                   {", ".join(f"{e} AS {c}" for c, e in columns.items())},
                   {waits}
            FROM call_level GROUP BY {", ".join(_ROLLUP_KEYS)}
            UNION ALL
            SELECT 'answer' AS kind, {", ".join(_ROLLUP_KEYS)},
                   {", ".join(f"{e} AS {c}" for c, e in columns.items())},
                   {waits}
            FROM calls_wrapped WHERE operator IS NOT NULL GROUP BY {", ".join(_ROLLUP_KEYS)}
            UNION ALL
            SELECT 'offered_to', {", ".join(offered)}, '{{}}'::bigint[] FROM offered_to
        )
    """  # noqa: S608 - built from this module's constants only


def _rolled_query(groups: tuple[str, ...], *, wrapups: bool) -> str:
    """The figures of some slots under each of ``groups`` (names of :data:`_SETS`), one row
    per group (``grouped_by`` and its key columns), then with ``wrapups`` one row
    ``offered_to`` per operator offered a call. A slot's rows come from its rollup when it
    has a valid one (computed with the automatic wrap-up $5, or any when $5 is NULL), else
    from its calls. Parameters as :func:`_slot_rows`."""
    keys = sorted({column for name in groups for column in _SETS[name]})
    # The operators' figures from the rows per operator's part ('answer'), the others' from
    # the rows per call ('fine'): each set over its own kind of row.
    kinds = {name: "answer" if name == "operator" else "fine" for name in groups}
    sums = [*_figure_columns("$7", "$8"), "wrap_n", "wrap_sum"]

    def over(kind: str, select: str, source: str) -> str:
        mine = tuple(name for name in groups if kinds[name] == kind)
        if not mine:
            return ""
        own = sorted({column for name in mine for column in _SETS[name]})
        sets = ", ".join(f"({', '.join(_SETS[name])})" for name in mine)
        columns = ", ".join(k if k in own else f"NULL::{_KEY_TYPES[k]} AS {k}" for k in keys)
        return f"""
            SELECT {_grouping_label(mine, own)} AS grouped_by, {columns}, {select}
            FROM {source} AND kind = '{kind}' GROUP BY GROUPING SETS ({sets})
        """  # noqa: S608 - built from this module's constants only

    def both(select: str, source: str) -> str:
        return " UNION ALL ".join(part for part in (over(kind, select, source)
                                                    for kind in ("fine", "answer")) if part)

    stored = ["kind", *_ROLLUP_KEYS, *sums, "waits"]
    offered_part = f"""
        UNION ALL
        SELECT 'offered_to', {", ".join(k if k == "operator" else "NULL" for k in keys)},
               {", ".join(f"sum({c})::bigint" if c in ("calls", "offered", "abandoned")
                          else "0" for c in sums)}, NULL
        FROM fine WHERE kind = 'offered_to' GROUP BY operator
    """ if wrapups else ""  # noqa: S608 - built from this module's constants only
    return f"""
        WITH slots AS (SELECT * FROM unnest($1::date[], $2::text[]) AS s (shift_day, shift_name)),
        -- Every parameter typed, those of the wrap-ups too when there are none to compute.
        typed AS (SELECT $3::interval, $4::interval, $6::text),
        valid AS MATERIALIZED (
            SELECT r.shift_day, r.shift_name FROM report_rollup_slots r
            JOIN slots s ON s.shift_day = r.shift_day AND s.shift_name = r.shift_name
            WHERE ($5::bigint IS NULL OR r.automatic_us = $5)
              AND r.claim IS NULL  -- a claim is being computed: no rollup yet (0030)
        ),
        missing AS MATERIALIZED (
            SELECT shift_day, shift_name FROM slots EXCEPT SELECT shift_day, shift_name FROM valid
        ),
        {_slot_rows("missing", wrapups=wrapups)},
        fine AS (
            SELECT {", ".join(stored)} FROM computed
            UNION ALL
            SELECT {", ".join(f"r.{c}" for c in stored)}
            FROM report_rollups r
            JOIN valid v ON v.shift_day = r.shift_day AND v.shift_name = r.shift_name
        ),
        rolled AS ({both(", ".join(f"COALESCE(sum({c}), 0)::bigint AS {c}" for c in sums),
                         "fine WHERE true")}),
        tiles AS ({both("percentile_disc(0.9) WITHIN GROUP (ORDER BY w.wait_us) AS wait_p90",
                        "fine CROSS JOIN LATERAL unnest(fine.waits) AS w (wait_us) WHERE true")})
        SELECT r.*, t.wait_p90
        FROM rolled r LEFT JOIN tiles t ON t.grouped_by = r.grouped_by
            AND {" AND ".join(f"t.{k} IS NOT DISTINCT FROM r.{k}" for k in keys)}
        {offered_part}
    """  # noqa: S608 - built from this module's constants only


SHIFT_REPORT: Final = _rolled_query(("total", "shift", "queue", "operator"), wrapups=True)
_DAILY: Final = _figures_query(("total", "line", "category", "label"))

# A closed slot, for the refresher: how many of its calls still wait in a queue with a fate
# at some service level threshold not yet known at $5 (now), whose figures would change
# with the clock alone (model.service_level: a caller waiting longer than every threshold
# is a miss at each, for good, and a call whose join was not seen is never counted while it
# waits); and the window of pause changes its wrap-ups read.
_SLOT_STATE: Final = f"""
    SELECT count(*) FILTER (
               WHERE disposition = 'in_progress' AND queue IS NOT NULL
                 AND queue_joined_at IS NOT NULL
                 AND $5 - queue_joined_at <= interval '{max(SERVICE_LEVEL_SECONDS)} seconds'
           ) AS in_progress,
           -- The parts of calls several operators answered end where their operators' did
           -- (0051): the window holds them too (LEAST and GREATEST pass over a NULL). It may
           -- hold more than the wrap-ups read (an unanswered call's parts): never less.
           LEAST(min(c.completed_at) FILTER (WHERE c.operator IS NOT NULL),
                 min((SELECT min(a.completed_at) FROM call_answers a
                      WHERE a.call_id = c.call_id)) FILTER (WHERE c.answers_shared))
               AS wrap_lo,
           GREATEST(max(c.completed_at) FILTER (WHERE c.operator IS NOT NULL),
                    max((SELECT max(a.completed_at) FROM call_answers a
                         WHERE a.call_id = c.call_id)) FILTER (WHERE c.answers_shared))
               + $3 + $4 AS wrap_hi
    FROM call_outcomes c
    WHERE c.shift_day = $1 AND c.shift_name = $2
"""  # noqa: S608 - built from this module's constants only

_STORE_ROLLUP: Final = f"""
    WITH slots AS (SELECT $1::date AS shift_day, $2::text AS shift_name),
    {_slot_rows("slots", wrapups=True)}
    INSERT INTO report_rollups ({", ".join(["kind", *_ROLLUP_KEYS, *_figure_columns("$7", "$8"),
                                           "wrap_n", "wrap_sum", "waits"])})
    SELECT * FROM computed
"""  # noqa: S608 - built from this module's constants only

# -- the refresher's claims (migration 0030; the protocol: ReportRepository.refresh_rollups) --

# Before a claim: a rollup of another automatic wrap-up gives way, and so does a claim its
# refresher abandoned (died, or lost its connection) this long ago; a valid rollup and a live
# claim do not, and the claim's INSERT then returns no row.
_ABANDONED_CLAIM: Final = timedelta(minutes=10)
_UNCLAIM_STALE: Final = """
    DELETE FROM report_rollup_slots
    WHERE shift_day = $1 AND shift_name = $2
      AND (automatic_us <> $3 OR (claim IS NOT NULL AND computed_at < now() - $4::interval))
"""
# The claim, with the wrap-up window ($4, $5) the slot's calls gave just before it, which the
# pause changes' trigger (0016) matches.
_CLAIM: Final = """
    INSERT INTO report_rollup_slots (shift_day, shift_name, automatic_us, wrap_lo, wrap_hi, claim)
    VALUES ($1, $2, $3, $4, $5, gen_random_uuid())
    ON CONFLICT DO NOTHING
    RETURNING claim
"""
# The first statement of the refresher's REPEATABLE READ transaction, so read in its
# snapshot: ``settled``, whether every transaction in progress just after the claim's commit
# ($6, pg_current_snapshot() read then) had ended before this snapshot; ``held``, whether the
# claim ($7) is still there and the slot's calls still give its wrap-up window, with no call
# whose service level the clock could still change. $1..$5 as _SLOT_STATE.
_CLAIM_HELD: Final = f"""
    WITH state AS ({_SLOT_STATE})
    SELECT COALESCE((SELECT bool_and(pg_visible_in_snapshot(x, pg_current_snapshot()))
                     FROM pg_snapshot_xip($6::pg_snapshot) AS x), true) AS settled,
           EXISTS (SELECT FROM report_rollup_slots r, state s
                   WHERE r.shift_day = $1 AND r.shift_name = $2 AND r.claim = $7
                     AND s.in_progress = 0
                     AND r.wrap_lo IS NOT DISTINCT FROM s.wrap_lo
                     AND r.wrap_hi IS NOT DISTINCT FROM s.wrap_hi) AS held
"""  # noqa: S608 - built from this module's constants only
_VALIDATE: Final = """
    UPDATE report_rollup_slots SET claim = NULL, computed_at = now()
    WHERE shift_day = $1 AND shift_name = $2 AND claim = $3
"""
_UNCLAIM: Final = """
    DELETE FROM report_rollup_slots WHERE shift_day = $1 AND shift_name = $2 AND claim = $3
"""
# How long the refresher waits for the transactions in progress at its claim to end (the
# recorder's batches take milliseconds) before it leaves the slot to a later refresh; and
# its first and longest pause between two looks.
_SETTLE_WITHIN: Final = 5.0
_SETTLE_PAUSES: Final = (0.002, 0.1)


# A call as the wallboard's live counters keep it (model.LiveCall).
_LIVE_CALL_COLUMNS: Final = """
    c.call_id, c.arrived_at, c.shift_day, c.shift_name, c.queue, c.queue_joined_at AS joined_at,
    c.answered_at, c.completed_at, c.abandoned_at, c.ended_at, c.vanished,
    c.wait_seconds AS hold_seconds, c.talk_seconds, c.current_label AS label, c.operator,
    c.wrapup_seconds,
    -- Looked up only for a row a leave may have ended (migration 0047 says 'agent').
    CASE WHEN c.ended_by = 'agent' AND c.completed_at IS NOT NULL
         THEN operator_left_at(c.call_id, c.answered_at, c.completed_at) END AS left_at,
    -- A talk its dead phone ended (migration 0055): the phone's timeout only where it counts.
    c.hangup_cause, c.ended_by,
    CASE WHEN c.ended_by = 'agent' THEN call_rtp_timeout(c.call_id, c.operator) END
        AS rtp_timeout
"""

# A caller waiting in a queue as the wallboard shows one (model.LivePicture's waiting, with
# what the board shows of the call); _WAITING: which visits (calls c, queue_visits v).
_WAITING_COLUMNS: Final = """
    v.call_id, v.queue, v.joined_at, v.join_position, c.line, c.ivr_category AS category
"""
_WAITING: Final = """
    v.left_at IS NULL AND c.ended_at IS NULL AND c.answered_at IS NULL
"""
# The latest answer of the call {call} by the phone {operator}, from the answer facts
# (call_events_call_idx): call_answers and the calls row keep the first. An operator who
# answered the call again talks since then.
_LAST_ANSWER: Final = """
    (SELECT max(e.at) FROM call_events e
     WHERE e.call_id = {call} AND e.kind = 'operator_answered'
       AND e.body ->> 'operator' = {operator})
"""


async def _with_answers(connection: asyncpg.Connection, rows: Sequence[asyncpg.Record]
                        ) -> list[LiveCall]:
    """``rows`` (of :data:`_LIVE_CALL_COLUMNS`) as live calls with their answering phones'
    parts (``call_answers``), each with its leaves of the call's three-way calls (0052)."""
    answered = [row["call_id"] for row in rows
                if row["answered_at"] is not None or row["completed_at"] is not None]
    parts: dict[str, list[LiveAnswer]] = defaultdict(list)
    if answered:
        for part in await connection.fetch(
                """
                SELECT a.call_id, a.operator, a.answered_at, a.completed_at, a.talk_seconds,
                       a.talk_before, a.wrapup_seconds,
                       ARRAY(SELECT s.at FROM transfer_steps s JOIN call_legs l USING (leg_id)
                             WHERE l.call_id = a.call_id AND l.operator = a.operator
                               AND s.step = 'leave' ORDER BY s.at) AS leaves,
                       CASE WHEN a.talk_before > 0 THEN {last} END AS answered_last,
                       a.ended_by,
                       CASE WHEN a.ended_by = 'agent' THEN operator_rtp_timeout(a.operator)
                       END AS rtp_timeout
                FROM call_answers a WHERE a.call_id = ANY($1::text[])
                """.format(last=_LAST_ANSWER.format(call="a.call_id",  # noqa: S608 - constants
                                                    operator="a.operator")),
                answered):
            parts[part["call_id"]].append(from_row(LiveAnswer, part,
                                                   leaves=tuple(part["leaves"])))
    return [from_row(LiveCall, row, answers=tuple(parts.get(row["call_id"], ())))
            for row in rows]


def _waiting(rows: Sequence[asyncpg.Record]
             ) -> tuple[list[QueueJoined], dict[str, CallInfo]]:
    """Rows of :data:`_WAITING_COLUMNS` as the board takes them."""
    waiting = [QueueJoined(row["call_id"], row["queue"], row["join_position"],
                           row["joined_at"]) for row in rows]
    return waiting, {row["call_id"]: from_row(CallInfo, row) for row in rows}


def account_key(account_id: int) -> str:
    """The reports' key of an operator known by their account: ``#`` and its id (a phone's
    interface, the key where the account is not known, never starts so)."""
    return f"#{account_id}"


def _seconds(micros: int | None, count: int | None = None) -> float | None:
    """Microseconds (a sum over ``count`` values, or one value) as seconds; None if none."""
    if micros is None or count == 0:
        return None
    seconds = micros / _MICROS
    return seconds / count if count is not None else seconds


def figures_of(row: asyncpg.Record | Mapping[str, Any], *, wrapups: bool) -> Figures:
    """The :class:`Figures` of one aggregated row (see :func:`_figure_columns`)."""
    return Figures(
        calls=row["calls"], offered=row["offered"], answered=row["answered"],
        abandoned=row["abandoned"],
        service_levels={t: Ratio(row[f"sl{t}_hits"], row[f"sl{t}_counted"])
                        for t in SERVICE_LEVEL_SECONDS},
        mean_wait=_seconds(row["wait_sum"], row["wait_n"]),
        p90_wait=_seconds(row["wait_p90"]),
        mean_talk=row["talk_sum"] / row["talk_n"] if row["talk_n"] else None,
        mean_wrapup=_seconds(row["wrap_sum"], row["wrap_n"]) if wrapups else None,
        labelled=row["labelled"], nuisance=row["nuisance"],
    )


EMPTY: Final = Figures(
    calls=0, offered=0, answered=0, abandoned=0,
    service_levels={t: Ratio(0, 0) for t in SERVICE_LEVEL_SECONDS}, mean_wait=None,
    p90_wait=None, mean_talk=None, mean_wrapup=None, labelled=0, nuisance=0)


_NUISANCE: Final = sorted(label.value for label in NUISANCE)
_NOT_INCIDENTS: Final = sorted(status.value for status in NOT_INCIDENTS)


async def _aggregate(connection: asyncpg.Connection, query: str, *args: Any
                     ) -> list[asyncpg.Record]:
    """Run one of the aggregates: without JIT (compiling it costs more than the query at
    these sizes: 0.9 s measured on a month) and with room to sort a month in memory."""
    async with connection.transaction():
        await connection.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
        return list(await connection.fetch(query, *args))


def report_args(slots: Sequence[ShiftSlot], now: datetime, automatic_wrapup: float
                ) -> tuple[Any, ...]:
    """The parameters of :data:`SHIFT_REPORT` (public for bench/reports.py's EXPLAIN)."""
    return (*_slot_args(slots), WRAPUP_PAUSE_GRACE, WRAPUP_LOOKAHEAD,
            round(automatic_wrapup * _MICROS), PauseReason.WRAPUP.value, now, _NUISANCE)


def _slot_args(slots: Sequence[ShiftSlot]) -> tuple[list[date], list[str]]:
    """Slots as the two arrays the rollup queries take."""
    return [slot.day for slot in slots], [slot.name for slot in slots]


def period_figures_of(rows: Sequence[asyncpg.Record | Mapping[str, Any]]) -> PeriodFigures:
    """The :class:`PeriodFigures` of :data:`SHIFT_REPORT`'s rows."""
    total = EMPTY
    shifts: dict[ShiftSlot, Figures] = {}
    queues: dict[str, Figures] = {}
    answering: dict[str, Figures] = {}
    offered_to = []
    for row in rows:
        figures = figures_of(row, wrapups=True)
        match row["grouped_by"]:
            case "total":
                total = figures
            case "shift" if row["shift_day"] is not None and row["shift_name"] is not None:
                shifts[ShiftSlot(row["shift_day"], row["shift_name"])] = figures
            case "queue" if row["queue"] is not None:
                queues[row["queue"]] = figures
            case "operator" if row["operator"] is not None:
                answering[row["operator"]] = figures
            case "offered_to":
                offered_to.append(row)
    operators = {}
    for row in offered_to:
        # Offered, calls and abandoned count every call offered to the operator; the
        # rest, the calls they answered (model.operator_figures).
        theirs = answering.get(row["operator"], EMPTY)
        operators[row["operator"]] = Figures(
            calls=row["calls"], offered=row["offered"], answered=theirs.answered,
            abandoned=row["abandoned"], service_levels=theirs.service_levels,
            mean_wait=theirs.mean_wait, p90_wait=theirs.p90_wait,
            mean_talk=theirs.mean_talk,
            mean_wrapup=theirs.mean_wrapup,
            labelled=theirs.labelled, nuisance=theirs.nuisance)
    return PeriodFigures(total, shifts, queues, operators)


async def _roll_up(connection: asyncpg.Connection, slot: ShiftSlot, now: datetime,
                   automatic: int) -> bool:
    """Claim ``slot``, compute and store its rollup (automatic wrap-up ``automatic``
    microseconds) and make it valid, unless a write took the claim: whether it was stored.
    The protocol and why it is race-free: :meth:`ReportRepository.refresh_rollups`."""
    state = await connection.fetchrow(_SLOT_STATE, slot.day, slot.name, WRAPUP_PAUSE_GRACE,
                                      WRAPUP_LOOKAHEAD, now)
    if state is None or state["in_progress"]:
        return False
    async with connection.transaction():  # step 1: the claim, committed before step 2
        await connection.execute(_UNCLAIM_STALE, slot.day, slot.name, automatic,
                                 _ABANDONED_CLAIM)
        claim = await connection.fetchval(_CLAIM, slot.day, slot.name, automatic,
                                          state["wrap_lo"], state["wrap_hi"])
    if claim is None:
        return False  # rolled up meanwhile, or another refresher's claim
    # Step 2: every transaction that may have run its trigger before the claim existed is
    # in progress now or already committed.
    in_flight = await connection.fetchval("SELECT pg_current_snapshot()")
    stored = await _store_claimed(connection, slot, claim, in_flight=in_flight, now=now,
                                  automatic=automatic)
    if not stored:  # a no-op when a write deleted the claim; else let the next refresh try
        await connection.execute(_UNCLAIM, slot.day, slot.name, claim)
    return stored


async def _store_claimed(connection: asyncpg.Connection, slot: ShiftSlot, claim: Any, *,
                         in_flight: Any, now: datetime, automatic: int) -> bool:
    """Steps 2 and 3 of the protocol: a snapshot that sees every transaction of
    ``in_flight`` ended (retried until then, within _SETTLE_WITHIN), and in it the rollup,
    stored and validated only while ``claim`` holds; whether it was."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SETTLE_WITHIN
    pause, longest = _SETTLE_PAUSES
    while True:
        transaction = connection.transaction(isolation="repeatable_read")
        await transaction.start()
        outcome = "lost"
        try:
            await connection.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
            # The transaction's first snapshot-taking statement: its snapshot is this one's.
            check = await connection.fetchrow(
                _CLAIM_HELD, slot.day, slot.name, WRAPUP_PAUSE_GRACE, WRAPUP_LOOKAHEAD, now,
                in_flight, claim)
            assert check is not None
            if not check["settled"]:
                outcome = "unsettled"
            elif check["held"]:
                await connection.execute(
                    _STORE_ROLLUP, slot.day, slot.name, WRAPUP_PAUSE_GRACE, WRAPUP_LOOKAHEAD,
                    automatic, PauseReason.WRAPUP.value, now, _NUISANCE)
                if await connection.execute(_VALIDATE, slot.day, slot.name, claim) == "UPDATE 1":
                    outcome = "stored"
        except asyncpg.exceptions.TransactionRollbackError:
            # A write deleted the claim after this snapshot (the foreign key check of the
            # rollup rows or the claim's update finds the row gone): the write wins.
            outcome = "lost"
        finally:
            if outcome == "stored":
                await transaction.commit()
            else:
                await transaction.rollback()
        if outcome != "unsettled":
            return outcome == "stored"
        if loop.time() >= deadline:
            log.warning("rollup of %s %s left for later: transactions in progress at its"
                        " claim did not end within %.0f s", slot.day, slot.name,
                        _SETTLE_WITHIN)
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)


class ReportRepository:
    """Reads for reports and the wallboard. Holds no connection: callers pass one in."""

    async def period_figures(self, connection: asyncpg.Connection, slots: Sequence[ShiftSlot],
                             now: datetime, automatic_wrapup: float) -> PeriodFigures:
        """The figures of the calls of ``slots`` in total, per shift, per queue and per
        operator, with wrap-ups (``automatic_wrapup``: the queues' own, in seconds): closed
        slots from their rollups, the others from their calls."""
        rows = await _aggregate(connection, SHIFT_REPORT,
                                *report_args(slots, now, automatic_wrapup))
        # On a worker thread, not on the loop: a row per operator answering and per operator
        # offered a call, so with a surge's thousand operators 15-30 ms of Python per report
        # (bench/surge.py --report-during), while the loop serves the wallboard, the console
        # and the AMI listener's facts. A pure function of the rows.
        return await asyncio.to_thread(period_figures_of, rows)

    async def called_slots(self, connection: asyncpg.Connection, first: date, last: date
                           ) -> list[tuple[ShiftSlot, datetime | None]]:
        """The slots of the shift days ``first``..``last`` that hold calls, each with the
        arrival of one of its calls (see ``model.with_stray_slots``): calls keep the shift
        they arrived in, so after an admin renamed, dropped or moved a shift the days before
        still hold the old names and times. A skip scan of ``calls_report_idx``: one probe
        per slot, not a read of the period's calls. Any call's arrival, not the first's: a
        slot's calls all arrived while it ran, so any one places it among the others, and
        the first would read every call of the slot (``arrived_at`` is not in the index)."""
        rows = await connection.fetch(
            """
            WITH RECURSIVE found AS (
                (SELECT shift_day, shift_name, arrived_at FROM calls
                 WHERE shift_day BETWEEN $1 AND $2 AND shift_name IS NOT NULL
                 ORDER BY shift_day, shift_name LIMIT 1)
                UNION ALL
                SELECT later.shift_day, later.shift_name, later.arrived_at FROM found f
                CROSS JOIN LATERAL (
                    SELECT c.shift_day, c.shift_name, c.arrived_at FROM calls c
                    WHERE (c.shift_day, c.shift_name) > (f.shift_day, f.shift_name)
                      AND c.shift_day <= $2 AND c.shift_name IS NOT NULL
                    ORDER BY c.shift_day, c.shift_name LIMIT 1) later
            )
            SELECT shift_day, shift_name, arrived_at FROM found
            """,
            first, last)
        return [(ShiftSlot(row["shift_day"], row["shift_name"]), row["arrived_at"])
                for row in rows]

    async def day_figures(self, connection: asyncpg.Connection, day: date, now: datetime
                          ) -> DayFigures:
        """The figures of the calls of the operational day ``day`` (no wrap-ups) and their
        counts by line, category and label."""
        rows = await _aggregate(connection, _DAILY, day, day, None, now, _NUISANCE)
        total = EMPTY
        lines: dict[str, int] = {}
        categories: dict[str | None, int] = {}
        labels: dict[str | None, int] = {}
        for row in rows:
            match row["grouped_by"]:
                case "total":
                    total = figures_of(row, wrapups=False)
                case "line":
                    lines[row["line"] or ""] = lines.get(row["line"] or "", 0) + row["calls"]
                case "category":
                    categories[row["ivr_category"]] = row["calls"]
                case "label":
                    labels[row["label"]] = row["calls"]
        return DayFigures(total, lines, categories, labels)

    async def refresh_rollups(self, connection: asyncpg.Connection, slots: Sequence[ShiftSlot],
                              now: datetime, automatic_wrapup: float, *,
                              limit: int | None = None) -> int:
        """Roll up those of ``slots`` (closed ones: the caller's choice) that have no valid
        rollup and whose figures no longer depend on the clock from ``now`` on (the reports'
        ``now`` only moves forward); how many were rolled up. With ``limit``, at most that
        many slots are tried, in the order given.

        Writes never wait for a refresh: no table lock (0016 had one, held through the
        whole computation, and every write to calls waited behind it). Instead, per slot
        (:func:`_roll_up`, migration 0030):

        1. it claims the slot: a row of report_rollup_slots, not yet valid, with the wrap-up
           window the slot's calls give, committed on its own;
        2. it reads which transactions are in progress right after that commit, and takes
           its REPEATABLE READ snapshot only once all of them have ended;
        3. in that snapshot, it computes and stores the rollup and makes the claim valid,
           only if the claim is still there with the same window; a claim deleted after
           the snapshot makes the store a serialization failure, and nothing is kept.

        Why no write can be missed: the invalidating triggers of calls and
        operator_state_changes (0016, 0026) delete, by slot or by wrap-up window, the rows
        they see when they run. A write whose trigger ran after the claim's commit saw the
        claim (a READ COMMITTED statement sees every commit before it starts; the line's
        writers are READ COMMITTED) and deleted it, so step 3 keeps nothing. A write whose
        trigger ran before had already written its rows, so had a transaction id, and was by
        the claim's commit either committed or in progress: step 2 makes the snapshot see
        it. The window's equality in step 3 matters for the pause changes: the claim must
        hold the very window the rollup reads, or a pause change outside the claimed window
        would not delete the claim. Two refreshers do not take a live claim from each other.

        A writer waits only where a refresher holds a slot row's lock: its claim's own
        commit, and the tail of step 3 (the rollup rows' foreign key check, the claim's
        update, the commit), milliseconds, and only for a write that touches that slot."""
        automatic = round(automatic_wrapup * _MICROS)
        done = 0
        for slot in await self.unrolled_slots(connection, slots, automatic_wrapup,
                                              limit=limit):
            if await _roll_up(connection, slot, now, automatic):
                done += 1
        return done

    async def unrolled_slots(self, connection: asyncpg.Connection, slots: Sequence[ShiftSlot],
                             automatic_wrapup: float, *,
                             limit: int | None = None) -> list[ShiftSlot]:
        """Those of ``slots`` without a valid rollup (none, or only a claim), in the order
        given; with ``limit``, the first that many."""
        days, names = _slot_args(slots)
        rows = await connection.fetch(
            """
            SELECT s.shift_day, s.shift_name
            FROM unnest($1::date[], $2::text[]) WITH ORDINALITY AS s (shift_day, shift_name, n)
            LEFT JOIN report_rollup_slots r
                   ON r.shift_day = s.shift_day AND r.shift_name = s.shift_name
                  AND r.automatic_us = $3 AND r.claim IS NULL
            WHERE r.shift_day IS NULL
            ORDER BY s.n
            LIMIT $4
            """,
            days, names, round(automatic_wrapup * _MICROS), limit)
        return [ShiftSlot(row["shift_day"], row["shift_name"]) for row in rows]

    async def operator_names(self, connection: asyncpg.Connection) -> dict[str, str]:
        """Operator interface -> display name, for those that have one: the name of the
        account working at that desk now, else the operator's own. The live wallboard's;
        a report names who worked there then (:meth:`operators_named`)."""
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

    async def queue_wrapups(self, connection: asyncpg.Connection) -> dict[str, int]:
        """Queue -> the wrap-up seconds an admin set for it (``queue_settings``); a queue not
        in it takes the settings file's. The live wallboard's, for calls completing now."""
        rows = await connection.fetch("SELECT queue, wrapup_seconds FROM queue_settings")
        return {row["queue"]: row["wrapup_seconds"] for row in rows}

    async def operators_named(self, connection: asyncpg.Connection, keys: Collection[str]
                              ) -> dict[str, tuple[str, str]]:
        """Per operator key of a report (``_PERIOD_CALLS``' ``operator``), what to show: for
        an account, its user name and display name; for a phone whose operator was not
        recorded, its interface and a note that says so (not whoever works there now)."""
        ids = [int(key[1:]) for key in keys if key.startswith("#") and key[1:].isdigit()]
        rows = await connection.fetch(
            """
            SELECT account_id, username,
                   COALESCE(NULLIF(display_name, ''), username) AS name
            FROM accounts WHERE account_id = ANY($1::bigint[])
            """, ids)
        accounts = {account_key(row["account_id"]): (row["username"], row["name"])
                    for row in rows}
        return {key: accounts.get(key) or (key, UNRECORDED_OPERATOR) for key in keys}

    async def report_types(self, connection: asyncpg.Connection, day: date
                           ) -> list[CategoryCount]:
        """Incidents of the day's calls by report type, with how many of the calls each has
        (not those marked a prank or cancelled: model.NOT_INCIDENTS)."""
        rows = await connection.fetch(
            """
            SELECT i.report_type AS code, count(DISTINCT i.incident_id) AS incidents,
                   count(*) AS calls
            FROM calls c
            JOIN incident_calls ic USING (call_id)
            JOIN incidents i USING (incident_id)
            WHERE c.shift_day = $1 AND i.status <> ALL($2::text[])
            GROUP BY i.report_type
            ORDER BY calls DESC, i.report_type
            """,
            day, _NOT_INCIDENTS,
        )
        return [from_row(CategoryCount, row) for row in rows]

    async def villages(self, connection: asyncpg.Connection, day: date) -> list[VillageCount]:
        """The day's calls by the village of their incident (or its sub-district only, or no
        place yet); not those of incidents marked a prank or cancelled."""
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
            WHERE c.shift_day = $1 AND i.status <> ALL($2::text[])
            GROUP BY v.code, v.name, s.name
            ORDER BY calls DESC, s.name NULLS LAST, v.name NULLS LAST
            """,
            day, _NOT_INCIDENTS,
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

    async def rtp_timeouts(self, connection: asyncpg.Connection) -> PhoneTimeouts:
        """The phones' talking rtp_timeouts (migration 0055's ``operator_rtp_timeout``)."""
        site = await connection.fetchrow(
            "SELECT browser_rtp_timeout AS browser, desk_rtp_timeout AS desk,"
            " desk_rtp_timeout_hold AS desk_hold FROM phone_site")
        browsers = await connection.fetch(
            "SELECT operator FROM phone_secrets WHERE kind = 'browser'")
        return PhoneTimeouts(frozenset(row["operator"] for row in browsers),
                             None if site is None else from_row(RtpTimeouts, site))

    async def live_calls(self, connection: asyncpg.Connection, day: date) -> list[LiveCall]:
        """The calls the wallboard's live counters start from: those of the operational day
        ``day`` (its shifts' rows, by ``calls_report_idx``), and the open calls not yet placed
        in a shift (first seen through a later fact: a CallStarted may still place them)."""
        rows = await connection.fetch(
            f"""
            SELECT {_LIVE_CALL_COLUMNS} FROM calls c WHERE c.shift_day = $1
            UNION ALL
            SELECT {_LIVE_CALL_COLUMNS} FROM calls c
            WHERE c.ended_at IS NULL AND c.shift_day IS NULL
            """,  # noqa: S608 - built from this module's constants only
            day,
        )
        return await _with_answers(connection, rows)

    async def changed_calls(self, connection: asyncpg.Connection, node: str,
                            since: datetime | None) -> ChangedCalls:
        """The calls of every cluster node but ``node`` (call ids ``<node>-...``) whose row was
        updated after ``since`` (every projection of the call store sets ``updated_at``; by
        ``calls_updated_at_idx``), and the database's clock first: a row updated after it is
        read again by the next call given it, less a margin for transactions that commit late.
        With them, the callers among those calls still waiting in a queue (an open visit, the
        call neither answered nor ended: the call store writes the visit and the row in one
        transaction). With ``since`` None, only the clock and every other node's caller
        waiting now (the counters are about to be seeded; by ``calls_open_idx``)."""
        at = await connection.fetchval("SELECT now()")
        if since is None:
            waiting = await connection.fetch(
                f"""
                SELECT {_WAITING_COLUMNS} FROM calls c JOIN queue_visits v USING (call_id)
                WHERE {_WAITING} AND NOT starts_with(c.call_id, $1 || '-')
                  AND c.arrived_at > $2
                """,  # noqa: S608 - built from this module's constants only
                node, at - _LIVE_HORIZON)
            return ChangedCalls(at, [], *_waiting(waiting), whole=True)
        rows = await connection.fetch(
            f"""
            SELECT {_LIVE_CALL_COLUMNS} FROM calls c
            WHERE c.updated_at > $2 AND NOT starts_with(c.call_id, $1 || '-')
            """,  # noqa: S608 - built from this module's constants only
            node, since,
        )
        waiting = await connection.fetch(
            f"""
            SELECT {_WAITING_COLUMNS} FROM calls c JOIN queue_visits v USING (call_id)
            WHERE {_WAITING} AND c.updated_at > $2 AND NOT starts_with(c.call_id, $1 || '-')
            """,  # noqa: S608 - built from this module's constants only
            node, since)
        return ChangedCalls(at, await _with_answers(connection, rows), *_waiting(waiting))

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
        # The row names its first operator, with the last completion: of a call more than
        # one answered (call_answers, 0051), each phone whose part is still open. An
        # operator who answered the call again (a blind transfer nobody took brought the
        # caller back through the queues) talks since that answer: their part is open again
        # though the row keeps the first talk's completion, and both keep the first answer.
        talking = await connection.fetch(
            """
            SELECT c.operator, c.call_id, COALESCE({last_of_row}, c.answered_at) AS at
            FROM calls c
            WHERE c.ended_at IS NULL AND c.answered_at IS NOT NULL
              AND c.operator IS NOT NULL AND c.arrived_at > $1 AND NOT c.answers_shared
              AND (c.completed_at IS NULL
                   OR EXISTS (SELECT 1 FROM call_answers a
                              WHERE a.call_id = c.call_id AND a.operator = c.operator
                                AND a.completed_at IS NULL AND a.talk_before > 0))
            UNION ALL
            SELECT a.operator, a.call_id, COALESCE({last_of_part}, a.answered_at)
            FROM calls c JOIN call_answers a USING (call_id)
            WHERE c.ended_at IS NULL AND c.answers_shared AND a.completed_at IS NULL
              AND c.arrived_at > $1
            """.format(  # noqa: S608 - built from this module's constants only
                last_of_row=_LAST_ANSWER.format(call="c.call_id", operator="c.operator"),
                last_of_part=_LAST_ANSWER.format(call="a.call_id", operator="a.operator")),
            now - _LIVE_HORIZON,
        )
        left = await connection.fetch(
            """
            SELECT operator, call_id, completed_at AS at FROM calls c
            WHERE ended_at IS NULL AND ended_by = 'agent' AND completed_at IS NOT NULL
              AND operator IS NOT NULL AND arrived_at > $1
              AND operator_left_at(call_id, answered_at, completed_at) IS NOT NULL
            """,
            now - _LIVE_HORIZON,
        )
        return LivePicture(
            calls={row["call_id"]: from_row(CallInfo, row) for row in calls},
            waiting=[from_row(QueueJoined, row) for row in visits],
            members=[from_row(OperatorStateChanged, row) for row in members],
            talking=[from_row(Talking, row) for row in talking],
            left=[from_row(Talking, row) for row in left],
        )
