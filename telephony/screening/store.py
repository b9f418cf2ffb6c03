"""SQL for prank screening: a caller's history, operator labels, and post-call scores.

Tables (migration 0004): the screening columns of ``calls`` (``caller_key``, what the IVR
published, and the generated ``looks_silent``, remade by 0037 and 0041), the append-only
``call_labels``, and ``call_screening`` with each ended call's post-call result; and
(migrations 0032, 0041) ``call_screening_due``, the calls whose post-call score is due, queued
by triggers on ``calls`` and ``recordings`` and drained by
:meth:`ScreeningRepository.due_calls`.

:meth:`ScreeningRepository.history` is the SQL twin of
:func:`telephony.screening.features.summarise_history`: one query, three index-only range scans
by caller key (the calls, their post-call results and their labels; the latter two keep copies
of the call's ``caller_key`` and ``arrived_at`` for this), merged by call id, so a number with
thousands of calls costs milliseconds. Whether an earlier call was silent is, in order: its
current operator label; else its post-call ``looked_silent`` (recording included); else
``calls.looks_silent``, the same rule on the row alone, so a burst of silent calls counts as
soon as each call has ended. A call counts in its caller's history from its end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from telephony.core.errors import Invalid, NotFound, SiagaError
from telephony.db.rows import from_row
from telephony.screening.features import CallerHistory, Label
from telephony.screening.score import Score

# An operator's note is a sentence or two; anything longer is a paste gone wrong.
MAX_NOTE_CHARS = 2000


class LabelError(SiagaError):
    """A label the rules refuse; nothing was written. ``message`` is for the operator."""

    status = 400
    code = "label_error"


class UnknownCall(NotFound, LabelError):
    """No call has this id."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"Panggilan {call_id} tidak ditemukan.")
        self.call_id = call_id


class InvalidLabel(Invalid, LabelError):
    """The label, the operator's name or the note is not acceptable."""

    def __init__(self, message: str) -> None:
        # Whatever part is at fault, the client sent it as the label.
        super().__init__(message, "label")


@dataclass(frozen=True)
class StoredLabel:
    """One label event as stored."""

    label_id: int
    call_id: str
    label: Label
    labelled_by: str
    labelled_at: datetime
    note: str


@dataclass(frozen=True)
class EndedCall:
    """An ended call as the post-call score needs it (see ``service.call_features``)."""

    call_id: str
    caller_number: str
    line: str | None
    arrived_at: datetime | None
    ended_at: datetime
    answered_at: datetime | None
    talk_seconds: int | None
    ended_by: str | None
    ivr_outcome: str | None
    ivr_first_key_ms: int | None
    ivr_invalid_keys: int | None
    queue: str | None
    silence_share: float | None  # of the call's recording, once measured
    hangup_cause: int | None = None  # Q.850, of the caller's channel
    cut_reason: str | None = None  # the line cut it (telephony.calls.outages.CutReason)


HISTORY_SQL = """
WITH per_call AS (
    -- Three index-only range scans by caller, merged by call id: no probe per call.
    SELECT call_id,
           bool_or(is_call) AS is_call,
           max(arrived_at) AS arrived_at,
           bool_or(row_silent) AS row_silent,
           bool_or(scored_silent) AS scored_silent,
           max(post_score) AS post_score,
           max(label) AS label
    FROM (
        SELECT call_id, true AS is_call, arrived_at, looks_silent AS row_silent,
               NULL::boolean AS scored_silent, NULL::real AS post_score, NULL::text AS label
        FROM calls
        WHERE caller_key = $1 AND arrived_at < $2 AND arrived_at >= $2 - make_interval(secs => $3)
          AND ended_at < $2  -- a call is history once it has ended: not the one being scored
        UNION ALL
        SELECT call_id, false, NULL, NULL, looked_silent, post_score, NULL
        FROM call_screening
        WHERE caller_key = $1 AND arrived_at < $2 AND arrived_at >= $2 - make_interval(secs => $3)
        UNION ALL
        (   -- Each call's latest label entered by now; ties: the later entry.
            SELECT DISTINCT ON (call_id) call_id, false, NULL, NULL, NULL, NULL, label
            FROM call_labels
            WHERE caller_key = $1 AND labelled_at <= $2
            ORDER BY call_id, labelled_at DESC, label_id DESC
        )
    ) parts
    GROUP BY call_id
),
classed AS (
    SELECT arrived_at, label, post_score, is_call,
           CASE WHEN label IS NULL THEN COALESCE(scored_silent, row_silent)
                ELSE label = 'silent' END AS silent
    FROM per_call
),
earlier AS (
    SELECT arrived_at, label, silent,
           -- Unlabelled, not silent, and the line's post-call score reached the threshold.
           label IS NULL AND NOT COALESCE(silent, false) AND COALESCE(post_score >= $4, false)
               AS suspected,
           -- Windows in hours, never days: a day interval follows the session's calendar.
           arrived_at >= $2 - interval '1 hour' AS hour,
           arrived_at >= $2 - interval '24 hours' AS day,
           arrived_at >= $2 - interval '168 hours' AS week
    FROM classed
    WHERE is_call  -- labels and results of calls outside the window drop out here
)
SELECT
    count(*) FILTER (WHERE hour) AS calls_last_hour,
    count(*) FILTER (WHERE hour AND silent) AS silent_last_hour,
    count(*) FILTER (WHERE hour AND label = 'prank') AS prank_last_hour,
    count(*) FILTER (WHERE day) AS calls_last_day,
    count(*) FILTER (WHERE day AND silent) AS silent_last_day,
    count(*) FILTER (WHERE day AND label = 'prank') AS prank_last_day,
    count(*) FILTER (WHERE week) AS calls_last_week,
    count(*) FILTER (WHERE week AND silent) AS silent_last_week,
    count(*) FILTER (WHERE week AND label = 'prank') AS prank_last_week,
    count(*) AS calls,
    count(*) FILTER (WHERE silent) AS silent_calls,
    count(*) FILTER (WHERE label = 'prank') AS prank_calls,
    count(*) FILTER (WHERE label = 'genuine') AS genuine_calls,
    extract(epoch FROM $2 - max(arrived_at) FILTER (WHERE label = 'genuine'))::float8
        AS seconds_since_last_genuine,
    count(*) FILTER (WHERE hour AND label = 'accidental') AS accidental_last_hour,
    count(*) FILTER (WHERE day AND label = 'accidental') AS accidental_last_day,
    count(*) FILTER (WHERE week AND label = 'accidental') AS accidental_last_week,
    count(*) FILTER (WHERE label = 'accidental') AS accidental_calls,
    extract(epoch FROM $2 - max(arrived_at) FILTER (
        WHERE silent OR suspected OR label IN ('prank', 'accidental')))::float8
        AS seconds_since_last_nuisance,
    count(*) FILTER (WHERE hour AND suspected) AS suspected_last_hour,
    count(*) FILTER (WHERE day AND suspected) AS suspected_last_day,
    count(*) FILTER (WHERE week AND suspected) AS suspected_last_week,
    count(*) FILTER (WHERE suspected) AS suspected_calls
FROM earlier
"""


@dataclass(frozen=True)
class DueCalls:
    """What a pass of the post-call upkeep read from ``call_screening_due``."""

    due_ids: list[int]  # every queue row read, to delete once the calls are scored
    calls: list[EndedCall]  # the calls to score, each once (ended within the maximum age)


# Held by the pass that drains call_screening_due until its transaction ends; another line's
# pass that finds it held does nothing that time (a constant of our own, beside the
# migrations' and the schema preparation's). Not FOR UPDATE SKIP LOCKED on the queue's rows:
# two passes could then each take a different row of the same call (its end, then its
# measurement), and the one that read the call before the measurement committed could store
# its result last, over the other's, with both rows gone. One pass at a time cannot: each
# reads everything the one before it committed. The work is a few calls a second.
DUE_LOCK = 0x5161_6761_0113

# One statement, so one snapshot: a queue row is read together with the call's values as
# the write that added it left them (or later ones); a row committed after the snapshot is not
# read, hence not deleted, and its call is scored again by the next pass. Rows of calls too old
# or gone come back with a NULL call, to be deleted unscored.
DUE_SQL = """
WITH due AS (
    SELECT due_id, call_id FROM call_screening_due ORDER BY due_id LIMIT $2
),
per_call AS (
    SELECT call_id, array_agg(due_id) AS due_ids, min(due_id) AS first_due
    FROM due GROUP BY call_id
)
SELECT d.due_ids, c.call_id, c.caller_number, c.line, c.arrived_at, c.ended_at,
       c.answered_at, c.talk_seconds, c.ended_by, c.ivr_outcome, c.ivr_first_key_ms,
       c.ivr_invalid_keys, c.queue, c.hangup_cause, c.cut_reason,
       -- One probe of recordings_call_kind_idx per call, whatever the planner guesses of the
       -- queue (as a join, it once hashed every recording). A mixed recording has no leg_id
       -- (recordings_leg_check), but only this condition lets the partial index serve.
       (SELECT r.silence_share FROM recordings r
        WHERE r.call_id = c.call_id AND r.kind = 'mixed' AND r.leg_id IS NULL) AS silence_share
FROM per_call d
LEFT JOIN calls c ON c.call_id = d.call_id AND c.ended_at >= now() - make_interval(secs => $1)
ORDER BY d.first_due
"""


class ScreeningRepository:
    """Reads and writes the screening tables. Holds no connection: callers pass one in."""

    async def history(
        self, connection: asyncpg.Connection, caller_key: str, now: datetime, lookback: timedelta,
        *, suspect_score: float,
    ) -> CallerHistory:
        """The history of ``caller_key`` at ``now``, exactly as ``summarise_history`` sums it:
        calls that arrived before ``now`` and within ``lookback``, each with its latest label
        entered by ``now``.

        Only calls that had ended by ``now`` are past calls: the IVR scores a call already in
        ``calls`` (the AMI listener records its start first), and a call still in progress is no
        evidence yet. A post-call score at the call's arrival likewise sees what had ended then.
        An unlabelled call that did not look silent is suspected when its post-call score is at
        least ``suspect_score`` (the configuration's ``post_call_threshold``).
        """
        row = await connection.fetchrow(HISTORY_SQL, caller_key, now, lookback.total_seconds(),
                                        suspect_score)
        assert row is not None  # an aggregate without GROUP BY always returns a row
        return from_row(CallerHistory, row)

    async def add_label(
        self, connection: asyncpg.Connection, call_id: str, label: str, actor: str, note: str
    ) -> StoredLabel:
        """Append an operator's label for ``call_id``; a later label corrects an earlier one.

        Raises :class:`InvalidLabel` for an unknown label, an empty actor or an overlong note,
        and :class:`UnknownCall` when no call has this id; then nothing is written.
        """
        try:
            checked = Label(label)
        except ValueError:
            known = ", ".join(member.value for member in Label)
            raise InvalidLabel(f"Label {label!r} tidak dikenal; pilih salah satu: {known}.") \
                from None
        actor = actor.strip()
        if not actor:
            raise InvalidLabel("Nama operator yang memberi label wajib diisi.")
        if len(note) > MAX_NOTE_CHARS:
            raise InvalidLabel(f"Catatan terlalu panjang (paling banyak {MAX_NOTE_CHARS} huruf).")
        # One statement: the label exists only if the call does, with no race in between.
        row = await connection.fetchrow(
            """
            INSERT INTO call_labels (call_id, caller_key, label, labelled_by, note)
            SELECT call_id, caller_key, $2, $3, $4 FROM calls WHERE call_id = $1
            RETURNING *
            """,
            call_id, checked.value, actor, note,
        )
        if row is None:
            raise UnknownCall(call_id)
        return from_row(StoredLabel, row)

    async def labels(self, connection: asyncpg.Connection, call_id: str) -> list[StoredLabel]:
        """Every label event of ``call_id``, oldest first (the last one is current).

        Raises :class:`UnknownCall` when no call has this id.
        """
        rows = await connection.fetch(
            """
            SELECT l.* FROM calls c
            LEFT JOIN call_labels l ON l.call_id = c.call_id
            WHERE c.call_id = $1
            ORDER BY l.labelled_at, l.label_id
            """,
            call_id,
        )
        if not rows:
            raise UnknownCall(call_id)
        return [from_row(StoredLabel, row) for row in rows if row["label_id"] is not None]

    async def due_calls(
        self, connection: asyncpg.Connection, *, max_age: timedelta, limit: int
    ) -> DueCalls | None:
        """The next ``limit`` rows of ``call_screening_due`` (oldest first) and the calls they
        name that ended within ``max_age``, each once, as they are now: the calls that need
        their post-call score (ended, or their recording's silence share measured, since they
        were last scored). ``None`` while another line's pass holds the queue.

        Call it in a transaction, score the calls, and :meth:`clear_due` the rows in the same
        transaction: the lock taken here (:data:`DUE_LOCK`) lasts until it ends.
        """
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", DUE_LOCK):
            return None
        rows = await connection.fetch(DUE_SQL, max_age.total_seconds(), limit)
        due_ids = [due_id for row in rows for due_id in row["due_ids"]]
        calls = [from_row(EndedCall, row) for row in rows if row["call_id"] is not None]
        return DueCalls(due_ids, calls)

    async def clear_due(self, connection: asyncpg.Connection, due_ids: list[int]) -> None:
        """Delete the queue rows ``due_ids`` (read by :meth:`due_calls`), and only those: a row
        a write added since is left for the next pass."""
        if not due_ids:
            return  # the usual pass: nothing was due, no round trip
        await connection.execute(
            "DELETE FROM call_screening_due WHERE due_id = ANY($1::bigint[])", due_ids)

    async def store_post_call(
        self, connection: asyncpg.Connection, call_id: str, *, looked_silent: bool,
        score: Score, silence_share: float | None,
    ) -> None:
        """Store (or replace) the post-call result of ``call_id``."""
        reasons = [
            {"code": r.code, "text": r.text, "contribution": round(r.contribution, 3)}
            for r in score.reasons
        ]
        await connection.execute(
            """
            INSERT INTO call_screening (call_id, caller_key, arrived_at, looked_silent,
                                        post_score, post_reasons, silence_share)
            SELECT call_id, caller_key, arrived_at, $2, $3, $4::jsonb, $5
            FROM calls WHERE call_id = $1
            ON CONFLICT (call_id) DO UPDATE SET
                caller_key = EXCLUDED.caller_key, arrived_at = EXCLUDED.arrived_at,
                looked_silent = EXCLUDED.looked_silent, post_score = EXCLUDED.post_score,
                post_reasons = EXCLUDED.post_reasons, silence_share = EXCLUDED.silence_share,
                scored_at = now()
            """,
            call_id, looked_silent, score.value, json.dumps(reasons, ensure_ascii=False),
            silence_share,
        )
