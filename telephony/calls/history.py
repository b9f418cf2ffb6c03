"""The backfill's I/O: read Asterisk's queue_log from the cursor, ask the database what it
holds, write the missed calls with the new cursor in one transaction, and report recordings
that no call owns. The rules are :mod:`telephony.calls.backfill`'s.

Where the log is: ``Settings.asterisk_queue_log``, else the lab instance's
``log/queue_log`` (the docker site mounts Asterisk's log directory read-only into the line's
container, docker/docker-compose.yml).

Recordings without a call: a ``<uniqueid>.wav`` in Asterisk's monitor directory, older than
:data:`ORPHAN_AFTER`, whose call has no row. The recordings worker only pairs files with calls
it knows, so such a file would lie there for good. After each catch-up (and at each metrics
scrape) they are counted: one warning line names a few, and the gauge
``siaga112_recordings_without_call`` lets an alarm rule see them. A log line and a metric,
not an admin page: the engineers who can act on a file in Asterisk's spool read those, and a
list of unpaired caller recordings has no place in the admins' console (admins see no caller
data).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from recordings.files import incoming_sources
from telephony.asterisk.queue_log import SOURCE, Cursor, cursor_source
from telephony.asterisk.queue_log_file import is_log_file, read_since
from telephony.asterisk.site import lab_instance_dir
from telephony.calls.backfill import (
    LEG_SETTLE,
    Backfill,
    LegRecorded,
    Recorded,
    back_facts,
    backs_of,
    caller_channels,
    calls_of,
    leg_facts,
    legs_of,
    member_interfaces,
    plan_backfill,
    settled_calls,
    settled_cursor,
    unsettled_backs,
)
from telephony.calls.facts import OperatorCompleted, fact_from_json
from telephony.calls.store import CallRepository
from telephony.core.loops import run_passes
from telephony.core.threads import OneAtATime
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.settings import Settings

log = logging.getLogger("telephony.calls.history")

# A node of a cluster whose cursor has not been read for this long is not waited for by the
# rule that settles unreported legs (telephony/incidents/dispatch_service.py): a node reading
# its log saves its cursor at every advance (ADVANCE_SECONDS), and a node switched off for good
# must not hold every node's legs unsettled.
STALE_CURSOR = timedelta(seconds=3 * 300)
ADVANCE_SECONDS = 300.0  # how often the cursor moves past calls recorded live
ORPHAN_AFTER = 600.0  # seconds: a file this old whose call has no row is reported
ORPHANS_NAMED = 5  # ids named in the warning line


def queue_log_path(settings: Settings) -> Path:
    """Asterisk's queue_log as this host sees it."""
    if settings.asterisk_queue_log is not None:
        return settings.asterisk_queue_log
    return settings.lab_rootfs / lab_instance_dir(settings).lstrip("/") / "log" / "queue_log"


async def _cursor(connection: asyncpg.Connection, source: str) -> Cursor | None:
    row = await connection.fetchrow(
        'SELECT inode, "offset" FROM asterisk_log_cursors WHERE source = $1', source)
    return Cursor(row["inode"], row["offset"]) if row is not None else None


async def _save_cursor(connection: asyncpg.Connection, source: str, cursor: Cursor,
                       legs_read: datetime | None = None) -> None:
    """Save the cursor and, if given, that the log's leg reports up to ``legs_read`` are
    applied (never moved back)."""
    await connection.execute(
        """
        INSERT INTO asterisk_log_cursors (source, inode, "offset", legs_read_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (source) DO UPDATE SET inode = EXCLUDED.inode, "offset" = EXCLUDED."offset",
            updated_at = now(),
            legs_read_at = GREATEST(asterisk_log_cursors.legs_read_at, EXCLUDED.legs_read_at)
        """, source, cursor.inode, cursor.offset, legs_read)


async def legs_read_at(connection: asyncpg.Connection,
                       sources: Sequence[str] = (SOURCE,)) -> datetime | None:
    """Until when the leg reports (``SIAGALEG``) of every log in ``sources`` are applied: the
    earliest of them, leaving out a log whose cursor was not saved for :data:`STALE_CURSOR`
    (a node switched off); ``None`` if none was read (then nothing can be waited for)."""
    value: datetime | None = await connection.fetchval(
        """
        SELECT min(legs_read_at) FROM asterisk_log_cursors
        WHERE source = ANY($1::text[])
          AND (cardinality($1::text[]) = 1 OR updated_at > now() - $2::interval)
        """, list(sources), STALE_CURSOR)
    return value


async def recorded_legs(
    connection: asyncpg.Connection, leg_ids: Sequence[int]
) -> dict[int, LegRecorded]:
    """What the database holds of each of these legs (as
    :func:`~telephony.calls.backfill.leg_facts` takes it); a leg it does not hold is
    absent."""
    if not leg_ids:
        return {}
    rows = await connection.fetch(
        """
        SELECT leg_id, rang_at IS NOT NULL AS dialling, answered_at IS NOT NULL AS answered,
               ended_at IS NOT NULL AS ended, requested_at
        FROM call_legs WHERE leg_id = ANY($1::bigint[])
        """, list(leg_ids))
    return {row["leg_id"]: LegRecorded(
                frozenset(state for state in ("dialling", "answered", "ended") if row[state]),
                row["requested_at"])
            for row in rows}


async def recorded_completions(
    connection: asyncpg.Connection, call_ids: Sequence[str]
) -> dict[str, list[OperatorCompleted]]:
    """The completions the database holds of each of these calls (as
    :func:`~telephony.calls.backfill.back_facts` takes them), as they were recorded."""
    if not call_ids:
        return {}
    rows = await connection.fetch(
        """
        SELECT call_id, body::text AS body FROM call_events
        WHERE call_id = ANY($1::text[]) AND kind = $2 ORDER BY event_id
        """, list(call_ids), OperatorCompleted.kind)
    found: dict[str, list[OperatorCompleted]] = {}
    for row in rows:
        fact = fact_from_json(row["body"])
        if isinstance(fact, OperatorCompleted):
            found.setdefault(row["call_id"], []).append(fact)
    return found


async def recorded_calls(
    connection: asyncpg.Connection, call_ids: Sequence[str]
) -> dict[str, Recorded]:
    """What the database holds of these calls (see :class:`Recorded`). An offer the cluster's
    front withdrew (0034, moved out of ``calls``) is held as ended: not a call to rebuild."""
    rows = await connection.fetch(
        """
        SELECT c.call_id, c.ended_at IS NOT NULL AS ended,
               array_agg(ARRAY[e.kind, COALESCE(e.body ->> 'queue', ''),
                               COALESCE(e.body ->> 'operator', '')])
                   FILTER (WHERE e.kind IS NOT NULL) AS facts,
               c.arrived_at, c.vanished
        FROM calls c LEFT JOIN call_events e USING (call_id)
        WHERE c.call_id = ANY($1::text[])
        GROUP BY c.call_id, c.ended_at, c.arrived_at, c.vanished
        UNION ALL
        SELECT w.call_id, true, NULL, NULL, false FROM withdrawn_offers w
        WHERE w.call_id = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = w.call_id)
        """, list(call_ids))
    return {row["call_id"]: Recorded(row["ended"], frozenset(
                (kind, queue, operator) for kind, queue, operator in row["facts"] or ()),
                row["arrived_at"], row["vanished"])
            for row in rows}


async def operator_members(connection: asyncpg.Connection) -> dict[str, str]:
    """Member name -> interface: the desk joins an operator's queues under the account's
    display name, or its user name (telephony/desks/service.py)."""
    rows = await connection.fetch(
        """
        SELECT ao.operator, COALESCE(NULLIF(a.display_name, ''), a.username) AS name
        FROM account_operators ao JOIN accounts a USING (account_id)
        """)
    return member_interfaces([(row["operator"], row["name"]) for row in rows])


class CallHistory:
    """The listener's :class:`~telephony.calls.backfill.History`: Asterisk's queue_log."""

    def __init__(self, database: Database, repository: CallRepository, queue_log: Path,
                 monitor_dir: Path, *, spooled: Callable[[], int] = lambda: 0,
                 source: str = SOURCE) -> None:
        self._database = database
        self._source = source  # this log's cursor row (cursor_source)
        # Facts waiting in the spool are not in the store yet; a plan made before they are
        # written would take their calls for missed ones and add a second, made-up story of
        # each (duplicate events). So the catch-up waits until the spool is drained.
        self._spooled = spooled
        self._postponed = False
        self._repository = repository
        self._queue_log = queue_log
        self._monitor_dir = monitor_dir
        self._lock = asyncio.Lock()
        self.backfilled_total = 0  # calls backfilled since start
        self.orphans: int | None = None  # recordings without a call at the last look
        self._scan = OneAtATime(self._old_sources, "orphan-scan")
        self._reported: frozenset[str] = frozenset()  # logged once, not at every scrape

    @classmethod
    def from_settings(cls, settings: Settings, database: Database,
                      repository: CallRepository, monitor_dir: Path, *,
                      spooled: Callable[[], int] = lambda: 0) -> CallHistory:
        return cls(database, repository, queue_log_path(settings), monitor_dir,
                   spooled=spooled, source=cursor_source(settings))

    async def _read_cursor(self, connection: asyncpg.Connection) -> Cursor | None:
        """This log's cursor. A node of a cluster that has none yet takes over the single
        row of the line before cursors were per node, if it was taken on this node's file
        (the last node to save it): the calls its Asterisk logged across the upgrade are
        then still read. Any other node starts at its log's end, as a new line does."""
        cursor = await _cursor(connection, self._source)
        if cursor is not None or self._source == SOURCE:
            return cursor
        legacy = await _cursor(connection, SOURCE)
        if legacy is not None and await asyncio.to_thread(is_log_file, self._queue_log,
                                                          legacy.inode):
            return legacy
        return None

    @property
    def postponed(self) -> bool:
        return self._postponed

    async def catch_up(
        self, channels: Sequence[Mapping[str, str | list[str]]]
    ) -> Backfill | None:
        self._postponed = True  # until a catch-up gets through
        live, whole = caller_channels(channels)
        if not whole:
            log.warning("backfill skipped: the channel list is not whole (a live call could "
                        "be taken for ended); the next resync tries again")
            return None
        if spooled := self._spooled():
            log.info("backfill put off: %d facts wait in the spool for the database; the "
                     "next resync tries again", spooled)
            return None
        async with self._lock:
            try:
                plan = await self._catch_up(live)
            except DatabaseUnavailable as exc:
                log.warning("backfill skipped, the database is unavailable (%s); the next "
                            "resync reads the queue_log from the same point", exc)
                return None
        self._postponed = False
        if plan is not None:
            await self.report_orphans()
        return plan

    async def _catch_up(self, live: set[str]) -> Backfill | None:
        began = time.monotonic()
        cursor = await self._database.run(self._read_cursor)
        chunk = await asyncio.to_thread(read_since, self._queue_log, cursor)
        if chunk is None:
            return None
        call_ids = sorted({entry.call_id for _, entry in calls_of(chunk.entries)})
        leg_ids = legs_of(chunk.entries)
        back_ids = backs_of(chunk.entries)
        recorded: dict[str, Recorded] = {}
        members: dict[str, str] = {}
        legs: dict[int, LegRecorded] = {}
        completions: dict[str, list[OperatorCompleted]] = {}
        # The log's leg reports are read up to now (unless the read stopped short of its end).
        read_at = None if chunk.more else datetime.now(UTC)
        if call_ids or leg_ids or back_ids:
            async def read(
                connection: asyncpg.Connection,
            ) -> tuple[dict[str, Recorded], dict[str, str], dict[int, LegRecorded],
                       dict[str, list[OperatorCompleted]]]:
                return (await recorded_calls(connection, call_ids),
                        await operator_members(connection),
                        await recorded_legs(connection, leg_ids),
                        await recorded_completions(connection, back_ids))
            recorded, members, legs, completions = await self._database.run(read)
        now = datetime.now(UTC)
        plan = plan_backfill(chunk.entries, end=chunk.end, live=live, recorded=recorded,
                             now=now, members=members, more=chunk.more, legs=legs,
                             completions=completions)
        if chunk.more and plan.cursor == cursor:
            # Unfinished calls fill the whole read: waiting for their ends would never move
            # on, so they are written as far as they go.
            plan = plan_backfill(chunk.entries, end=chunk.end, live=live, recorded=recorded,
                                 now=now, members=members, legs=legs, completions=completions)
        next_cursor = plan.cursor or chunk.end

        async def write(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                new = await self._repository.apply(connection, plan.written)
                await _save_cursor(connection, self._source, next_cursor, read_at)
            return new

        new = await self._database.run(write)
        self.backfilled_total += len(plan.backfilled)
        if plan.backfilled or chunk.skipped or plan.refused:
            log.warning("backfill from %s: %d calls the line missed recorded (%d new facts: "
                        "%s), %d live calls completed, %d lines skipped, in %.0f ms",
                        self._queue_log, len(plan.backfilled), new,
                        " ".join(plan.backfilled[:10]),
                        len({getattr(f, "call_id", "") for f in plan.live}),
                        chunk.skipped + plan.refused, (time.monotonic() - began) * 1000)
        else:
            log.info("backfill from %s: nothing missed (%d caller lines read, %.0f ms)",
                     self._queue_log, len(chunk.entries), (time.monotonic() - began) * 1000)
        return plan

    async def advance(self) -> Cursor | None:
        """Move the cursor past the calls the database holds as ended (see
        :func:`~telephony.calls.backfill.settled_cursor`), so that a restart after weeks of
        running reads only the last minutes of the log. ``None`` before the first catch-up.

        Also apply the leg reports and the talks back older than
        :data:`~telephony.calls.backfill.LEG_SETTLE` that the database lacks: the AMI lost
        them while the line ran, or the tracker, restarted since the transfer, could not add
        the talk back (a report the listener hears reaches the database well within that
        time)."""
        async with self._lock:
            cursor = await self._database.run(self._read_cursor)
            if cursor is None:
                return None
            chunk = await asyncio.to_thread(read_since, self._queue_log, cursor)
            if chunk is None:
                return None
            now = datetime.now(UTC)
            settle = now - LEG_SETTLE
            call_ids = sorted({entry.call_id for _, entry in calls_of(chunk.entries)})
            leg_ids = legs_of(chunk.entries)
            back_ids = backs_of(chunk.entries)

            async def read(connection: asyncpg.Connection,
                           ) -> tuple[dict[str, Recorded], dict[int, LegRecorded],
                                      dict[str, list[OperatorCompleted]]]:
                return (await recorded_calls(connection, call_ids),
                        await recorded_legs(connection, leg_ids),
                        await recorded_completions(connection, back_ids))
            recorded, legs, completions = await self._database.run(read)
            ended = settled_calls(chunk.entries, recorded)
            progress, _ = leg_facts(chunk.entries, legs, before=settle, report=False)
            applied = dict(legs)
            for fact in progress:
                have = applied[fact.leg_id]
                applied[fact.leg_id] = replace(have, states=have.states | {fact.state})
            backs = back_facts(chunk.entries, completions, before=settle)
            held = {call: list(facts) for call, facts in completions.items()}
            for back in backs:
                held.setdefault(back.call_id, []).append(back)
            # Talks back still to be added once they are old enough hold the cursor.
            pending = unsettled_backs(chunk.entries, held)
            moved = settled_cursor(chunk.entries, end=chunk.end, ended=ended, now=now,
                                   legs=applied, backs=pending)

            async def save(connection: asyncpg.Connection) -> int:
                async with connection.transaction():
                    new = await self._repository.apply(connection, [*progress, *backs])
                    await _save_cursor(connection, self._source, moved,
                                       None if chunk.more else settle)
                return new
            if await self._database.run(save):
                log.warning("queue_log: %d leg reports and %d talks back the line did not "
                            "hear applied: %s", len(progress), len(backs),
                            " ".join([*(f"{fact.leg_id}:{fact.state}" for fact in progress),
                                      *(f"{fact.call_id}:back" for fact in backs)][:10]))
            return moved

    async def run_advancer(self, every: float = ADVANCE_SECONDS) -> None:
        """:meth:`advance` every ``every`` seconds, forever."""
        await run_passes("queue_log cursor", self.advance, lambda: asyncio.sleep(every), log)

    def _old_sources(self) -> list[str]:
        """The recordings in the monitor directory older than :data:`ORPHAN_AFTER`."""
        now = time.time()
        found = []
        for source in incoming_sources(self._monitor_dir):
            try:
                mtime = (self._monitor_dir / f"{source.call_id}.wav").stat().st_mtime
            except OSError:
                continue
            if now - mtime >= ORPHAN_AFTER:
                found.append(source.call_id)
        return sorted(set(found))

    async def report_orphans(self) -> None:
        """Count (and name a few of) the recordings whose call has no row."""
        # One scan at a time, on a thread of its own: a monitor directory on a mount that
        # hangs holds that one, not one of the executor's threads a scrape, which the
        # queue_log reads of the backfill share (it would stop when they were all taken).
        candidates = await self._scan()
        if not candidates:
            self.orphans = 0
            return

        async def known(connection: asyncpg.Connection) -> set[str]:
            rows = await connection.fetch(
                "SELECT call_id FROM calls WHERE call_id = ANY($1::text[])", candidates)
            return {row["call_id"] for row in rows}

        try:
            have = await self._database.run(known)
        except DatabaseUnavailable:
            self.orphans = None
            return
        orphans = [call_id for call_id in candidates if call_id not in have]
        self.orphans = len(orphans)
        if orphans and not set(orphans) <= self._reported:
            self._reported = frozenset(orphans)
            log.warning("%d recordings in %s have no call (not in the database nor in the "
                        "queue_log read): %s", len(orphans), self._monitor_dir,
                        " ".join(orphans[:ORPHANS_NAMED]))


class HistoryCollector:
    """The backfill's figures for the metrics endpoint. ``refresh`` looks for recordings
    without a call (by default :meth:`CallHistory.report_orphans`; the line runs it on the
    history's own thread, telephony/app.py)."""

    def __init__(self, history: CallHistory, *,
                 refresh: Callable[[], Awaitable[None]] | None = None) -> None:
        self._history = history
        self._refresh = history.report_orphans if refresh is None else refresh

    async def refresh(self) -> None:
        await self._refresh()

    def collect(self) -> Iterable[Metric]:
        # A count since the start: a counter, so rate() and increase() see the restarts.
        yield CounterMetricFamily("siaga112_calls_backfilled",
                                  "Calls rebuilt from Asterisk's queue_log since the line "
                                  "started", value=self._history.backfilled_total)
        if self._history.orphans is not None:
            yield GaugeMetricFamily("siaga112_recordings_without_call",
                                    "Recording files in Asterisk's monitor directory older "
                                    "than 10 minutes whose call the database does not know",
                                    value=self._history.orphans)
