"""Reliability under faults: issue 13's items 1-8, each a scenario on a private lab.

A private Asterisk lab, a private PostgreSQL cluster and the line as sites run it
(``python -m telephony serve``, a process of its own that the bench kills, restarts and stops)
take a few sipp calls while one fault is injected:

  0. control: no fault (what the method counts on a healthy line);
  1. ``serve`` down (SIGKILL) while calls begin and end, then restarted;
  2. ``serve`` restarted while calls wait in a queue or talk to an operator (the resync must
     rebuild arrival, queue, position and wait), then restarted again (must change nothing);
  3. the spool cannot be written (a full tmpfs over it) while the database is down;
  4. the database down across a ``serve`` restart while the calls end;
  5. Asterisk cut under answered calls: (a) ``core restart now``, (b) SIGKILL and a new start;
  6. the recording worker (``serve``) SIGKILLed while it processes a recording;
  7. Asterisk SIGKILLed while it records (its WAV headers never finalised);
  8. ``serve`` stalled (SIGSTOP) while callers come in: how long until an operator rings.

For each, printed as a Markdown table (or ``--json``):

* placed: calls sipp placed; reached operator: calls the operator phones (one sipp UAS, its
  own per scenario) were rung with, as the phones count them, not the database;
* complete / incomplete / lost: the database's record of each placed call (by its caller
  number, unique per scenario): complete as bench/surge.py's ``is_incomplete`` has it (line,
  IVR outcome, queue, position, operator, wait, talk, end, hang-up cause, shift; a call
  Asterisk cut has no hang-up cause, and its cut reason stands for it); incomplete:
  ended but lacking some of these; lost: no row at all, or a row that never ended (its end was
  lost). In scenarios 6 and 7 a call whose recording is not stored also counts as lost;
* duplicated: rows beyond one per placed call, plus calls with the same fact recorded twice
  (the same kind and content, apart from its time, in ``call_events``);
* recovery: seconds from the end of the fault (or the fault itself: the "from → to" column)
  until nothing was lost any more: the database held an ended row of every placed call (for 2,
  every live call rebuilt whole; for 6 and 7, every recording stored); for 8, the longest a
  caller waited for an operator to ring. "> N s": not within ``--recovery-limit``;
* check: what the scenario's fix adds, read from the database when it is there (a backfilled
  or cut mark on calls); "n/a (not built)" where the column does not exist yet.

The target is zero lost and zero duplicated in every row. Exit status 0 only then.

Run (root: the lab, the tmpfs mount): ``python bench/faults.py [--calls 10] [--only 5]
[--json]``. Ports (62xxx, above the kernel's ephemeral range; RTP 20000-20998), lab instance
("faults") and database are the bench's own, so it runs beside the e2e tests and the other
benches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from rig import (
    BenchPorts,
    bench_settings,
    lacking,
    running_lab,
    start_lab,
)

from ivr.menu import load_menu
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.desks.operators import OperatorDesk
from telephony.lab.chroot import Lab, LabError, operator_names
from telephony.lab.line import LINE_PARTS, LineServer
from telephony.lab.sipp import Sipp, caller, operator
from telephony.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FAULT_PORTS = BenchPorts("faults", 62060, 62038, 62573, 62070, 20000, 20998, http=62080)
SKILLS = {"general": 5}  # every operator takes information (key 3) and the fail-open queue
KEYS = "3"  # information: one key, the quickest IVR path to a queue
KEY_DELAY = 2.0
RATE = 2.0  # calls per second
IVR_GUARD = 20  # agi_session_timeout: the item 8 was measured with it set to 20 s
POLL = 0.5
FILL_GRACE = 5.0  # seconds an ended but incomplete row may take to fill in (uncounted)
READY_WITHIN = 60.0
# A killed worker's transcoder is told by the kernel (or notices as it starts) and ends its
# process group, ffmpeg included, in well under a second; still running after this, it is
# orphaned. A check at the instant of the kill would only measure the scheduler.
ORPHAN_WITHIN = 2.0
SPOOL_TMPFS_BYTES = 64 * 1024


# ----------------------------------------------------------------------------- results


@dataclass
class Row:
    """One scenario's line of the table."""

    number: str
    scenario: str
    measured: str  # what the recovery time runs from and to
    placed: int = 0
    reached: int = 0
    complete: int = 0
    incomplete: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery: float | None = None  # seconds; None: not within the limit
    limit: float | None = None  # the bound it was waited for (None: nothing to wait for)
    check: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The issue's target: nothing lost, nothing duplicated."""
        return self.lost == 0 and self.duplicated == 0 and self.placed > 0

    def recovery_text(self) -> str:
        if self.recovery is not None:
            return f"{self.recovery:.1f} s"
        return f"> {self.limit:g} s" if self.limit is not None else "-"


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, then each row's notes."""
    lines = [
        "| # | scenario | placed | reached operator | complete | incomplete | lost "
        "| duplicated | recovery | recovery from → to | check |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.number} | {r.scenario} | {r.placed} | {r.reached} | {r.complete} "
            f"| {r.incomplete} | {r.lost} | {r.duplicated} | {r.recovery_text()} "
            f"| {r.measured} | {r.check or '-'} |")
    notes = [f"* {r.number}: {note}" for r in rows for note in r.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


# ----------------------------------------------------------------------------- the line


class Serve:
    """``siaga112 serve`` in a process of its own, as a site runs it (the lab's
    :class:`~telephony.lab.line.LineServer`): killed, stalled and restarted by the scenarios.
    Signals go to the server's own process only (a recording job's transcoder leads a group of
    its own, which scenario 6 watches). Its output is appended to ``log``."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.line = LineServer(settings, ready_timeout=READY_WITHIN, log_file=log)
        self.log = log

    @property
    def pid(self) -> int | None:
        """The running process's pid."""
        return self.line.pid

    async def start(self, *, database: bool = True) -> None:
        """Start it unless it runs, and wait until it is ready (:meth:`wait_ready`)."""
        await self.line.start(parts=self._need(database))

    async def wait_ready(self, *, database: bool = True) -> float:
        """Until AMI and FastAGI are up (and the database, if ``database``: a line restarted
        with the database down still takes calls); returns the seconds waited."""
        try:
            return await self.line.wait_ready(self._need(database))
        except LabError as exc:
            raise RuntimeError(f"serve not ready: {exc}") from exc

    @staticmethod
    def _need(database: bool) -> frozenset[str]:
        return LINE_PARTS if database else LINE_PARTS - {"database"}

    async def ami_back(self, since: float, within: float = READY_WITHIN) -> float | None:
        """Seconds from ``since`` until the line's AMI login, gone after an Asterisk fault
        (``/readyz``: its listener noticed), is back; None if it was not within ``within``."""
        gone = False
        while time.monotonic() - since < within:
            up = "ami" in await asyncio.to_thread(self.line.parts_up)
            if gone and up:
                return time.monotonic() - since
            gone = gone or not up
            await asyncio.sleep(0.1)
        return None

    async def parts_down(self) -> list[str]:
        """What ``/readyz`` says is down now (its alarm), or ["unreachable"]."""
        up = await asyncio.to_thread(self.line.parts_up)
        return sorted(LINE_PARTS - up) if up else ["unreachable"]

    def signal(self, signum: int) -> None:
        """Send ``signum`` (SIGSTOP, SIGCONT) to the running process."""
        if self.pid is not None:
            self.line.signal(signum, group=False)

    async def kill(self) -> None:
        """A crash: SIGKILL, nothing runs on the way out."""
        if self.pid is None:
            return
        self.line.signal(signal.SIGKILL, group=False)
        await self.line.wait()

    async def stop(self) -> None:
        """SIGTERM (the line drains), SIGKILL after 20 s."""
        await self.line.stop()

    def children(self) -> list[int]:
        """Pids of the running process's children (the recording worker's transcoder)."""
        pid = self.pid
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
                    if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                        found.append(int(entry.name))
        return found

    def tail(self, lines: int = 30) -> str:
        return self.line.tail(lines)


@dataclass
class Bench:
    """The lab, the database and the line every scenario runs on."""

    settings: Settings
    lab: Lab
    cluster: EmbeddedPostgres
    serve: Serve
    tag: str  # tells this run's caller numbers apart from an earlier run's
    calls: int
    limit: float
    database_up: bool = True

    def numbers(self, scenario: str, count: int = 1) -> list[str]:
        """Caller numbers of one scenario (digits only: the carrier's From)."""
        code = scenario.replace("a", "1").replace("b", "2")
        return [f"0899{self.tag}{code}{i}" for i in range(count)]

    # ------------------------------------------------------------ database

    async def query(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """One query on its own connection (the database may be down: raises OSError or
        asyncpg's errors)."""
        connection = await asyncpg.connect(self.settings.database_dsn, timeout=3)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def rows(self, numbers: Sequence[str]) -> list[asyncpg.Record] | None:
        """The calls of these caller numbers, or None while the database cannot say."""
        try:
            return await self.query(
                "SELECT o.*, to_jsonb(c) ->> 'cut_reason' AS cut_mark "
                "FROM call_outcomes o JOIN calls c USING (call_id) "
                "WHERE o.caller_number = ANY($1)", list(numbers))
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None

    async def call_columns(self) -> set[str]:
        """The columns of ``calls`` (a fix may add some)."""
        rows = await self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'calls'")
        return {str(r["column_name"]) for r in rows}

    async def duplicated_facts(self, call_ids: Sequence[str]) -> tuple[int, list[str]]:
        """Calls with the same fact (kind and content but its time) recorded twice, and the
        kinds so recorded."""
        rows = await self.query("""
            SELECT call_id, kind FROM call_events WHERE call_id = ANY($1)
            GROUP BY call_id, kind, body - 'at' HAVING count(*) > 1""", list(call_ids))
        return (len({r["call_id"] for r in rows}), sorted({str(r["kind"]) for r in rows}))

    async def stop_database(self) -> None:
        await asyncio.to_thread(self.cluster.stop)
        self.database_up = False

    async def start_database(self) -> None:
        await asyncio.to_thread(self.cluster.start)
        self.database_up = True

    # ------------------------------------------------------------ lab

    async def staff(self) -> None:
        """Every operator joins the queues of :data:`SKILLS` (one already in a queue stays)
        and none is paused."""
        desk = OperatorDesk(LabQueueCli(self.lab), load_menu(self.settings.menu_file))
        names = operator_names(self.settings.lab_operators)
        for name in names:
            await desk.log_in(f"PJSIP/{name}", SKILLS)
        await self.pause(names, paused=False)

    async def pause(self, names: Sequence[str], *, paused: bool = True) -> None:
        """Pause (or unpause) these operators in every queue."""
        verb = "pause" if paused else "unpause"
        for name in names:
            with contextlib.suppress(LabError):
                await self.lab.acli(f"queue {verb} member PJSIP/{name}")

    def asterisk_pid(self) -> int | None:
        try:
            return int(self.lab.pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    async def restart_lab(self) -> None:
        """A new Asterisk (after a crash): fresh astdb, so the operators join again."""
        await start_lab(self.lab)
        await self.staff()

    async def ready(self) -> None:
        """Undo whatever a failed scenario left: database up, Asterisk up and staffed,
        the line up."""
        if not self.database_up:
            await self.start_database()
        if not self.lab.is_running():
            await self.restart_lab()
        self.serve.signal(signal.SIGCONT)
        await self.serve.start()
        await self.pause(operator_names(self.settings.lab_operators), paused=False)

    # ------------------------------------------------------------ calls

    def callers(self, number: str, calls: int, talk: float, *, audio: bool = False) -> Sipp:
        """``calls`` callers from ``number`` pressing :data:`KEYS`, staying ``talk`` s."""
        s = self.settings
        return caller(s.sip_host, s.sip_port, "112", caller_id=number, dtmf=KEYS,
                      dtmf_delay=KEY_DELAY, talk_seconds=talk, calls=calls, rate=RATE,
                      audio=audio)

    def phones(self, *, trace: bool = False) -> Sipp:
        """The operator phones for one scenario: they count the calls that reach them."""
        return operator(self.settings.lab_operator_sip_port, trace_messages=trace,
                        timeout=900)

    async def settle(
        self, numbers: Sequence[str], placed: int,
        done: Callable[[list[asyncpg.Record]], bool] | None = None, since: float | None = None,
    ) -> tuple[list[asyncpg.Record], float | None]:
        """Poll until ``done(rows)`` or the recovery limit; returns the rows and the seconds
        it took from ``since`` (a monotonic time: when the fault ended; default now), None
        if not within the limit.

        By default until every placed call has a row that ended (nothing lost); rows still
        incomplete then get :data:`FILL_GRACE` more seconds, not counted, for what follows a
        hang-up (the conversation's end, its length) to arrive.
        """
        started = time.monotonic() if since is None else since
        rows: list[asyncpg.Record] = []
        while True:
            fresh = await self.rows(numbers)
            if fresh is not None:
                rows = fresh
                if (done or all_ended(placed))(rows):
                    took = time.monotonic() - started
                    return (rows if done else await self._filled(numbers, rows)), took
            if time.monotonic() - started >= self.limit:
                return rows, None
            await asyncio.sleep(POLL)

    async def _filled(self, numbers: Sequence[str], rows: list[asyncpg.Record]
                      ) -> list[asyncpg.Record]:
        deadline = time.monotonic() + FILL_GRACE
        while any(gaps_of(r) for r in rows) and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
            rows = await self.rows(numbers) or rows
        return rows

    async def count(self, row: Row, rows: list[asyncpg.Record], placed: int,
                    reached: int) -> None:
        """Fill ``row``'s counts from the database's rows of the placed calls."""
        row.placed, row.reached = placed, reached
        open_rows = [r for r in rows if r["ended_at"] is None]
        row.lost = max(0, placed - len(rows)) + len(open_rows)
        ended = [r for r in rows if r["ended_at"] is not None]
        row.incomplete = sum(1 for r in ended if gaps_of(r))
        row.complete = len(ended) - row.incomplete
        row.duplicated = max(0, len(rows) - placed)
        if rows:
            twice, kinds = await self.duplicated_facts([str(r["call_id"]) for r in rows])
            row.duplicated += twice
            if kinds:
                row.notes.append("facts recorded twice: " + ", ".join(kinds))
        if placed > len(rows):
            row.notes.append(f"{placed - len(rows)} calls have no row")
        if open_rows:
            row.notes.append(f"{len(open_rows)} rows never ended (still in progress)")
        gaps = sorted({c for r in ended for c in gaps_of(r)})
        if gaps:
            row.notes.append("incomplete rows lack: " + ", ".join(gaps))

    async def wait_answered(self, numbers: Sequence[str], count: int,
                            within: float = 30.0) -> bool:
        """Until ``count`` calls of ``numbers`` are answered in the database."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            rows = await self.rows(numbers)
            if rows is not None and sum(r["answered_at"] is not None for r in rows) >= count:
                return True
            await asyncio.sleep(POLL)
        return False


class LabQueueCli:
    """The operator desk's QueueAdd as the lab's CLI command: the bench logs operators in
    without a second AMI login beside the line's (whose facts it would record)."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    async def send_action(self, action: Mapping[str, str]) -> Any:
        if action.get("Action") != "QueueAdd":
            raise NotImplementedError(action.get("Action"))
        with contextlib.suppress(LabError):  # already a member: stays one
            return await self._lab.acli(
                f"queue add member {action['Interface']} to {action['Queue']} "
                f"penalty {action['Penalty']}")
        return None


def placed_of(result_stats: dict[str, str]) -> int:
    return int(result_stats.get("OutgoingCall(C)", "0") or 0)


def reached_of(phones_stats: dict[str, str]) -> int:
    return int(phones_stats.get("IncomingCall(C)", "0") or 0)


def gaps_of(row: asyncpg.Record) -> list[str]:
    """What a call's record lacks (bench/rig.py's ``lacking``), but for the one thing a fault
    makes unknowable: a call Asterisk's crash or restart cut was sent no hang-up cause, and
    its cut reason (``cut_mark``, where that fix is built) stands for it."""
    gaps = lacking(row)
    if row["cut_mark"] is not None:
        gaps = [column for column in gaps if column != "hangup_cause"]
    return gaps


async def marked(bench: Bench, rows: list[asyncpg.Record], prefix: str, what: str) -> str:
    """``what: k/n`` for the calls a fix marks in a column named ``prefix...`` (true or set),
    or "n/a (not built)" when there is no such column."""
    columns = sorted(c for c in await bench.call_columns() if c.startswith(prefix))
    if not columns:
        return f"{what}: n/a (not built)"
    name = columns[0]
    # From calls itself: call_outcomes (the rows) froze its columns when it was made. The
    # name comes from the catalogue, not from input.
    values = await bench.query(
        f'SELECT "{name}" AS mark FROM calls WHERE call_id = ANY($1)',
        [str(r["call_id"]) for r in rows])
    count = sum(1 for v in values if v["mark"] not in (None, False, ""))
    return f"{what}: {count}/{len(rows)}" + ("" if name == what else f" ({name})")


# ----------------------------------------------------------------------------- scenarios


async def control(bench: Bench) -> Row:
    """No fault: the method's own zero."""
    row = Row("0", "control: no fault", "last hang-up → recorded", limit=bench.limit)
    numbers = bench.numbers("0")
    async with bench.phones() as phones:
        async with bench.callers(numbers[0], bench.calls, talk=4) as callers:
            result = await callers.wait()
        rows, row.recovery = await bench.settle(numbers, placed_of(result.stats))
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    return row


async def serve_down(bench: Bench) -> Row:
    """Item 1: calls begin and end while serve is down (a crash), then it starts again."""
    row = Row("1", "serve down while calls begin and end", "restart → recorded",
              limit=bench.limit)
    numbers = bench.numbers("1")
    started = time.time()
    async with bench.phones() as phones:
        await bench.serve.kill()
        async with bench.callers(numbers[0], bench.calls, talk=4) as callers:
            result = await callers.wait()  # fail-open: they reach operators all the same
        restarted = time.monotonic()
        await bench.serve.start()
        rows, row.recovery = await bench.settle(numbers, placed_of(result.stats),
                                                since=restarted)
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    row.check = await marked(bench, rows, "backfill", "backfilled")
    orphans = await orphan_recordings(bench, started)
    row.notes.append(f"recordings of this scenario in Asterisk's monitor directory with no "
                     f"call row: {orphans}")
    return row


async def orphan_recordings(bench: Bench, since: float) -> int:
    """WAVs written since ``since`` whose call has no row."""
    names = [p.name.split(".wav")[0].removesuffix("-caller").removesuffix("-line")
             for p in bench.lab.monitor_dir.glob("*.wav") if p.stat().st_mtime >= since]
    if not names:
        return 0
    known = await bench.query("SELECT call_id FROM calls WHERE call_id = ANY($1)", names)
    return len(set(names) - {str(r["call_id"]) for r in known})


_ROW_FIELDS_IGNORED = ("updated_at",)


def _snapshot(rows: list[asyncpg.Record]) -> dict[str, dict[str, object]]:
    return {str(r["call_id"]): {k: v for k, v in r.items() if k not in _ROW_FIELDS_IGNORED}
            for r in rows}


async def _event_count(bench: Bench, rows: list[asyncpg.Record]) -> int:
    found = await bench.query("SELECT count(*) AS n FROM call_events WHERE call_id = ANY($1)",
                              [str(r["call_id"]) for r in rows])
    return int(found[0]["n"])


def _arrival_wrong(row: asyncpg.Record) -> bool:
    """Arrival not in the second the call id (Asterisk's Uniqueid) was made, or after the
    answer."""
    arrived, answered = row["arrived_at"], row["answered_at"]
    if arrived is None:
        return True
    if answered is not None and arrived > answered:
        return True
    epoch = float(str(row["call_id"]).split(".")[0])
    return not -0.5 <= arrived.timestamp() - epoch < 1.5


async def serve_restarted(bench: Bench) -> Row:
    """Item 2: calls that came while serve was down are in a queue or talking when it
    starts again: its resync must rebuild them whole; a second restart changes nothing."""
    row = Row("2", "serve restarted, calls in queue and talking", "restart → live calls whole",
              limit=bench.limit)
    numbers = bench.numbers("2")
    calls = bench.calls
    waiting = operator_names(bench.settings.lab_operators)[calls // 2:]
    rebuilt = ("arrived_at", "queue", "queue_position", "queue_joined_at")
    async with bench.phones() as phones:
        await bench.serve.kill()
        await bench.pause(waiting)  # half the callers wait in the queue
        # Long enough to be live through both restarts, however long the first resync
        # takes to be whole (up to the recovery limit), and then to be answered.
        talk = bench.limit + 20.0
        async with bench.callers(numbers[0], calls, talk=talk) as callers:
            await asyncio.sleep(calls / RATE + KEY_DELAY + 3)  # all in a queue or talking
            restarted = time.monotonic()
            await bench.serve.start()

            def whole(rows: list[asyncpg.Record]) -> bool:
                return len(rows) >= calls and all(
                    all(r[c] is not None for c in rebuilt) and not _arrival_wrong(r)
                    and (r["answered_at"] is None or r["wait_seconds"] is not None)
                    for r in rows)

            first, row.recovery = await bench.settle(numbers, calls, whole, since=restarted)
            wrong = sum(_arrival_wrong(r) for r in first)
            unpositioned = sum(r["queue_position"] is None for r in first)
            before, events = _snapshot(first), await _event_count(bench, first)
            await bench.serve.kill()
            await bench.serve.start()
            await asyncio.sleep(3)  # its resync
            again = await bench.rows(numbers) or []
            changed = sum(1 for call_id, values in _snapshot(again).items()
                          if before.get(call_id) != values)
            added = await _event_count(bench, again) - events
            await bench.pause(waiting, paused=False)
            result = await callers.wait()
        rows, _ = await bench.settle(numbers, placed_of(result.stats))
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    row.check = f"2nd restart: {changed} rows changed, {added} facts added"
    row.notes.append(f"after the first restart: {len(first)} rows, arrival wrong (not the "
                     f"Uniqueid's second, or after the answer) in {wrong}, no queue position "
                     f"in {unpositioned}; a second restart changed {changed} rows and added "
                     f"{added} facts")
    return row


class SpoolFull:
    """A full tmpfs mounted over the line's spool directory (ENOSPC on every write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.mounted = False

    def __enter__(self) -> SpoolFull:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPOOL_TMPFS_BYTES},mode=0700",
                        "siaga112-faults-spool", str(self.directory)], check=True)
        self.mounted = True
        fd = os.open(self.directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full, as meant
            pass
        finally:
            os.close(fd)
        return self

    def release(self) -> None:
        """Writable again: the tmpfs goes, the spool directory under it is back."""
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.directory)], check=True)
            self.mounted = False

    def __exit__(self, *_exc: object) -> None:
        self.release()


async def spool_unwritable(bench: Bench) -> Row:
    """Item 3: the database is down and the spool cannot be written (ENOSPC)."""
    row = Row("3", "spool unwritable (ENOSPC) while the database is down",
              "spool + database back → recorded", limit=bench.limit)
    numbers = bench.numbers("3")
    async with bench.phones() as phones:
        with SpoolFull(bench.settings.spool_dir) as spool:
            await bench.stop_database()
            async with bench.callers(numbers[0], bench.calls, talk=4) as callers:
                await asyncio.sleep(bench.calls / RATE)
                alarm = await bench.serve.parts_down()
                result = await callers.wait()
            back = time.monotonic()
            spool.release()
            await bench.start_database()
        rows, row.recovery = await bench.settle(numbers, placed_of(result.stats), since=back)
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    row.check = "readiness during the fault: down " + (", ".join(alarm) or "nothing")
    return row


async def database_down_restart(bench: Bench) -> Row:
    """Item 4: the database is down while serve restarts and the calls end meanwhile."""
    row = Row("4", "database down across a serve restart while calls end",
              "database back → recorded", limit=bench.limit)
    numbers = bench.numbers("4")
    async with bench.phones() as phones:
        async with bench.callers(numbers[0], bench.calls, talk=10) as callers:
            if not await bench.wait_answered(numbers, bench.calls):
                row.notes.append("not every call was answered before the fault")
            await bench.stop_database()
            await bench.serve.kill()
            result = await callers.wait()  # the hang-ups happen while serve is down
        await bench.serve.start(database=False)
        await asyncio.sleep(3)  # its resync, against a database that cannot answer
        back = time.monotonic()
        await bench.start_database()
        rows, row.recovery = await bench.settle(numbers, placed_of(result.stats), since=back)
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    return row


async def asterisk_restart(bench: Bench) -> Row:
    """Item 5a: ``core restart now`` with answered calls."""
    row = Row("5a", "Asterisk `core restart now` with calls up", "restart command → recorded",
              limit=bench.limit)
    numbers = bench.numbers("5a")
    async with bench.phones() as phones:
        async with bench.callers(numbers[0], bench.calls, talk=30) as callers:
            if not await bench.wait_answered(numbers, bench.calls):
                row.notes.append("not every call was answered before the fault")
            started = time.monotonic()
            login = asyncio.create_task(bench.serve.ami_back(started))
            with contextlib.suppress(LabError):
                await bench.lab.acli("core restart now")
            await booted(bench.lab)
            rows, row.recovery = await bench.settle(numbers, bench.calls, since=started)
            row.notes.append(line_back(await login))
            result = await callers.stop()
        await bench.staff()
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    row.check = await marked(bench, rows, "cut", "marked cut")
    return row


async def asterisk_killed(bench: Bench) -> Row:
    """Item 5b: Asterisk SIGKILLed with answered calls, then started again."""
    row = Row("5b", "Asterisk SIGKILLed with calls up", "kill → recorded", limit=bench.limit)
    numbers = bench.numbers("5b")
    async with bench.phones() as phones:
        async with bench.callers(numbers[0], bench.calls, talk=30) as callers:
            if not await bench.wait_answered(numbers, bench.calls):
                row.notes.append("not every call was answered before the fault")
            started = time.monotonic()
            login = asyncio.create_task(bench.serve.ami_back(started))
            killed = await kill_asterisk(bench)
            result = await callers.stop()
            await bench.restart_lab()
            rows, row.recovery = await bench.settle(numbers, bench.calls, since=started)
            row.notes.append(line_back(await login))
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    row.check = await marked(bench, rows, "cut", "marked cut")
    late = [(r["ended_at"] - killed).total_seconds() for r in rows if r["ended_at"]]
    if late:
        row.notes.append(f"ended_at after the kill: {min(late):.1f} to {max(late):.1f} s "
                         "(the end a call was last seen would be about 0)")
    return row


def line_back(seconds: float | None) -> str:
    """When the line's AMI login was back (:meth:`Serve.ami_back`)."""
    if seconds is None:
        return f"the line's AMI login was not back within {READY_WITHIN:g} s"
    return f"the line's AMI login was back {seconds:.1f} s after the fault"


def all_ended(calls: int) -> Callable[[list[asyncpg.Record]], bool]:
    """A row for each of ``calls`` calls, and every one ended."""
    return lambda rows: len(rows) >= calls and all(r["ended_at"] is not None for r in rows)


async def booted(lab: Lab, within: float = 60.0) -> None:
    """Until Asterisk (restarting itself) answers on its control socket, fully booted."""
    deadline = time.monotonic() + within
    while True:
        try:
            await lab.acli("core waitfullybooted", time_limit=max(1.0, within))
        except LabError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return


async def kill_asterisk(bench: Bench) -> datetime:
    """SIGKILL this lab's Asterisk; returns when."""
    pid = bench.asterisk_pid()
    if pid is None:
        raise RuntimeError("the lab's Asterisk is not running")
    at = datetime.now(UTC)
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):  # 10 s at most
        if not bench.lab.is_running():
            break
        await asyncio.sleep(0.05)
    return at


async def recordings_of(bench: Bench, rows: list[asyncpg.Record]) -> dict[str, str]:
    """Call id -> state of its mixed recording (no entry: not paired yet)."""
    found = await bench.query(
        "SELECT call_id, state FROM recordings WHERE kind = 'mixed' AND call_id = ANY($1)",
        [str(r["call_id"]) for r in rows])
    return {str(r["call_id"]): str(r["state"]) for r in found}


async def wait_stored(bench: Bench, numbers: Sequence[str], placed: int
                      ) -> tuple[list[asyncpg.Record], dict[str, str], float | None]:
    """Until every placed call has its recording stored (or the limit)."""
    started = time.monotonic()
    rows: list[asyncpg.Record] = []
    states: dict[str, str] = {}
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            rows = await bench.rows(numbers) or rows
            states = await recordings_of(bench, rows)
            if len(rows) >= placed and sum(s == "done" for s in states.values()) >= placed:
                return rows, states, time.monotonic() - started
        if time.monotonic() - started >= bench.limit:
            return rows, states, None
        await asyncio.sleep(POLL)


def recording_check(states: dict[str, str], placed: int) -> str:
    stored = sum(s == "done" for s in states.values())
    failed = sum(s == "failed" for s in states.values())
    return f"recordings stored {stored}/{placed}, quarantined {failed}"


async def worker_killed(bench: Bench) -> Row:
    """Item 6: the recording worker (in serve) SIGKILLed while it processes a recording."""
    row = Row("6", "recording worker SIGKILLed mid-job", "kill → recordings stored",
              limit=bench.limit)
    numbers = bench.numbers("6")
    calls = min(bench.calls, 3)
    async with bench.phones() as phones:
        async with bench.callers(numbers[0], calls, talk=15, audio=True) as callers:
            result = await callers.wait()
        child = await first_child(bench.serve, within=60)
        at_kill = process_state(child) if child is not None else ""
        await bench.serve.kill()
        started = time.monotonic()
        lingered = None if child is None else await group_gone(child, ORPHAN_WITHIN)
        await bench.serve.start()
        still = child is not None and bool(group_running(child))  # its job was taken over
        rows, states, _ = await wait_stored(bench, numbers, placed_of(result.stats))
        if sum(s == "done" for s in states.values()) >= placed_of(result.stats):
            row.recovery = time.monotonic() - started
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    not_stored = placed_of(result.stats) - sum(s == "done" for s in states.values())
    row.lost += max(0, not_stored - max(0, placed_of(result.stats) - len(rows)))
    row.check = recording_check(states, placed_of(result.stats))
    if child is None:
        row.notes.append("the worker's transcoder was never seen: killed after the jobs")
    else:
        row.notes.append(
            f"the killed worker's transcoder ({at_kill} at the kill) "
            + (f"died with it, its process group gone {lingered:.2f} s after the kill"
               if lingered is not None else
               f"went on running (orphaned): its process group still ran {ORPHAN_WITHIN:g} s "
               "after the kill")
            + ("; still running when the line was back" if still else ""))
    return row


async def first_child(serve: Serve, within: float) -> int | None:
    """The first child process serve starts (the transcoder of a recording job)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        children = serve.children()
        if children:
            return children[0]
        await asyncio.sleep(0.01)
    return None


def group_running(pgid: int) -> list[int]:
    """The running (not zombie) processes of process group ``pgid``: the transcoder leads its
    own, which the ffmpeg it starts joins."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
                fields = stat[stat.rindex(")") + 2:].split()
                if fields[0] != "Z" and int(fields[2]) == pgid:
                    found.append(int(entry.name))
    return found


async def group_gone(pgid: int, within: float) -> float | None:
    """Seconds until process group ``pgid`` runs no more, or None if it still runs after
    ``within``."""
    started = time.monotonic()
    while group_running(pgid):
        if time.monotonic() - started > within:
            return None
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def process_state(pid: int) -> str:
    """What a process was doing, for the notes: its command name and, from the signals it
    catches, whether it had got as far as arming its SIGTERM handler."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "gone"
    caught = next((int(line.split()[1], 16) for line in status.splitlines()
                   if line.startswith("SigCgt:")), 0)
    armed = bool(caught & (1 << (signal.SIGTERM - 1)))
    return (f"{stat[stat.index('(') + 1:stat.rindex(')')]}, "
            + ("handling SIGTERM" if armed else "still starting"))


async def asterisk_killed_recording(bench: Bench) -> Row:
    """Item 7: Asterisk SIGKILLed while it records: WAVs whose header was never finalised."""
    row = Row("7", "Asterisk SIGKILLed mid-recording", "kill → recordings stored",
              limit=bench.limit)
    numbers = bench.numbers("7")
    calls = min(bench.calls, 3)
    async with bench.phones() as phones:
        async with bench.callers(numbers[0], calls, talk=30, audio=True) as callers:
            if not await bench.wait_answered(numbers, calls):
                row.notes.append("not every call was answered before the fault")
            await asyncio.sleep(5)  # some audio in the files
            await kill_asterisk(bench)
            started = time.monotonic()
            result = await callers.stop()
        await bench.restart_lab()
        rows, states, _ = await wait_stored(bench, numbers, placed_of(result.stats))
        if sum(s == "done" for s in states.values()) >= placed_of(result.stats):
            row.recovery = time.monotonic() - started
        reached = reached_of((await phones.stop()).stats)
    await bench.count(row, rows, placed_of(result.stats), reached)
    not_stored = placed_of(result.stats) - sum(s == "done" for s in states.values())
    row.lost += max(0, not_stored - max(0, placed_of(result.stats) - len(rows)))
    row.check = recording_check(states, placed_of(result.stats))
    return row


_MESSAGE_START = re.compile(r"^-{20,} (\S+)\s+(\S+)", re.MULTILINE)
_INVITE_FROM = re.compile(r"^From:.*?<sip:([^@>]+)@", re.MULTILINE)


def invites_seen(messages: str) -> dict[str, datetime]:
    """Caller number -> when the operator phones first received an INVITE from it (sipp's
    message log: a dashed line with the local date and time before each message)."""
    seen: dict[str, datetime] = {}
    starts = list(_MESSAGE_START.finditer(messages))
    ends = [m.start() for m in starts[1:]] + [len(messages)] if starts else []
    for here, end in zip(starts, ends, strict=True):
        block = messages[here.end(): end]
        if "INVITE sip:" not in block or "message received" not in block:
            continue
        sender = _INVITE_FROM.search(block)
        if sender is None:
            continue
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(f"{here.group(1)}T{here.group(2)}")
            seen.setdefault(sender.group(1), when)
    return seen


async def serve_stalled(bench: Bench) -> Row:
    """Item 8: serve stalled (SIGSTOP): how long until each caller reaches an operator."""
    row = Row("8", "serve stalled (SIGSTOP)", "call → an operator rings (longest)",
              limit=IVR_GUARD + 15.0)
    calls = min(bench.calls, 4)
    numbers = bench.numbers("8", calls)
    talk = IVR_GUARD + 15.0
    placed_at: dict[str, datetime] = {}
    async with bench.phones(trace=True) as phones, contextlib.AsyncExitStack() as stack:
        bench.serve.signal(signal.SIGSTOP)
        try:
            sipps = []
            for number in numbers:
                placed_at[number] = datetime.now()  # sipp logs local time
                sipps.append(await stack.enter_async_context(
                    bench.callers(number, 1, talk=talk)))
                await asyncio.sleep(1)
            deadline = time.monotonic() + IVR_GUARD + 15
            while time.monotonic() < deadline:
                if len(set(invites_seen(phones.messages)) & set(numbers)) >= calls:
                    break
                await asyncio.sleep(POLL)
        finally:
            bench.serve.signal(signal.SIGCONT)
        results = [await s.wait() for s in sipps]
        placed = sum(placed_of(r.stats) for r in results)
        rows, _ = await bench.settle(numbers, placed)
        seen = invites_seen(phones.messages)
        reached = reached_of((await phones.stop()).stats)
    waits = [(seen[n] - placed_at[n]).total_seconds() for n in numbers if n in seen]
    if len(waits) == calls:
        row.recovery = max(waits)
    if waits:
        row.notes.append("seconds until an operator rang: "
                         + ", ".join(f"{w:.1f}" for w in sorted(waits))
                         + f" (IVR guard agi_session_timeout = {IVR_GUARD} s)")
    await bench.count(row, rows, placed, reached)
    return row


Scenario = Callable[[Bench], Awaitable[Row]]
SCENARIOS: dict[str, Scenario] = {
    "0": control,
    "1": serve_down,
    "2": serve_restarted,
    "3": spool_unwritable,
    "4": database_down_restart,
    "5a": asterisk_restart,
    "5b": asterisk_killed,
    "6": worker_killed,
    "7": asterisk_killed_recording,
    "8": serve_stalled,
}


def chosen(only: Sequence[str]) -> list[str]:
    """The scenario keys ``--only`` names ("5" is 5a and 5b); all of them by default."""
    if not only:
        return list(SCENARIOS)
    keys = []
    for name in only:
        matching = [k for k in SCENARIOS if k == name or k.rstrip("ab") == name]
        if not matching:
            raise ValueError(f"no scenario {name!r}; there are {', '.join(SCENARIOS)}")
        keys += [k for k in matching if k not in keys]
    return keys


# ----------------------------------------------------------------------------- run


async def run(args: argparse.Namespace, root: Path, cluster: EmbeddedPostgres) -> list[Row]:
    """Start the lab and the line, run the chosen scenarios one after the other."""
    settings = replace(
        bench_settings(root / "state", cluster.dsn(), cluster.port, args.calls + 2,
                       FAULT_PORTS),
        agi_session_timeout=float(IVR_GUARD))
    rows = []
    progress = sys.stderr
    print(f"Starting the Asterisk lab '{settings.lab_instance}' ...", file=progress)
    async with running_lab(settings) as lab:
        serve = Serve(settings, root / "serve.log")
        bench = Bench(settings, lab, cluster, serve, f"{random.randrange(1000):03d}",
                      args.calls, args.recovery_limit)
        try:
            await bench.staff()
            await serve.start()
            for key in chosen(args.only):
                await bench.ready()
                print(f"scenario {key}: {SCENARIOS[key].__doc__}", file=progress)
                started = time.monotonic()
                try:
                    row = await SCENARIOS[key](bench)
                except Exception as exc:  # one broken scenario must not hide the others
                    traceback.print_exc(file=progress)
                    row = Row(key, f"scenario failed: {type(exc).__name__}", "-")
                    row.notes.append(f"{exc!s:.300}")
                print(f"  ... {time.monotonic() - started:.0f} s", file=progress)
                rows.append(row)
        finally:
            await serve.stop()
            if args.serve_log is not None:
                shutil.copyfile(serve.log, args.serve_log)
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10,
                        help="calls per scenario (default 10; scenarios 6-8 use at most 3-4)")
    parser.add_argument("--only", action="append", default=[], metavar="N",
                        help="run only scenario N (0-8; 5 is 5a and 5b); repeatable")
    parser.add_argument("--recovery-limit", type=float, default=30.0,
                        help="seconds to wait for the database to recover (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--serve-log", type=Path, metavar="FILE",
                        help="keep the line's log (every serve process's output) in FILE")
    args = parser.parse_args(argv)
    if args.calls < 2 or args.recovery_limit <= 0:
        parser.error("--calls must be at least 2, --recovery-limit positive")
    try:
        chosen(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    with temporary_cluster("siaga112-faults-") as (root, cluster):
        rows = asyncio.run(run(args, root, cluster))
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    else:
        print(table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
