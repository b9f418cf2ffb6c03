"""The line's recorder through a PostgreSQL failover: the scenario the cluster test and
bench/db_failover.py both run.

A whole line (``running_line``) is logged in to a fake Asterisk (telephony/ami/testing.py)
that streams the AMI events of ``calls`` calls, each a renumbered copy of one transcript, at
a steady rate, while the line writes their facts to a Patroni pair (telephony/lab/patroni.py)
through its multi-host DSN. Part-way through, the primary is killed (``fault``: its
PostgreSQL, or the whole node); Patroni promotes the replica, the line's pool reconnects to it,
and the spool writes what it held meanwhile.

What it reports (:class:`FailoverResult`): the time from the kill to the new primary (as
Patroni's REST API reports it), how long the spool held facts (from the first fact spooled to
the spool empty again) and its peak, and what the database holds of each call: a call whose
stored facts (``call_events``) are fewer than the first call's lost some, more were written
twice (the store's dedupe key should make that impossible), and one that never ended lost its
end.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import asyncpg

from telephony.ami.testing import SECRET, USERNAME, FakeAsterisk, Fields, fake_asterisk
from telephony.app import Line, running_line
from telephony.db.connection import connect_postgres
from telephony.lab.patroni import PatroniLab
from telephony.settings import Settings

Fault = Literal["postgres", "node", "freeze"]
FAULTS: tuple[Fault, ...] = ("postgres", "node")  # the cluster test's; the bench adds freeze
ALL_FAULTS: tuple[Fault, ...] = (*FAULTS, "freeze")
_CHANNEL_ID = re.compile(r"([0-9]{10})\.([0-9]{1,3})")
_TICK = 0.1  # seconds between two sends of the fake Asterisk


def renumbered(frames: Sequence[Fields], index: int) -> list[Fields]:
    """``frames`` as call number ``index``: every Uniqueid/Linkedid-like value moved by
    ``1000 * (index + 1)``, so each copy is a call of its own to the tracker and the store."""
    shift = 1000 * (index + 1)

    def value(text: str) -> str:
        match = _CHANNEL_ID.fullmatch(text)
        return text if match is None else f"{match[1]}.{int(match[2]) + shift}"

    return [tuple((key, value(text)) for key, text in frame) for frame in frames]


def call_id_of(frames: Sequence[Fields], index: int) -> str:
    """The call id (the first channel's Uniqueid) of copy ``index``."""
    for frame in renumbered(frames[:1], index):
        return dict(frame)["Uniqueid"]
    raise ValueError("no frames")


@dataclass
class FailoverResult:
    """What one run measured; see the module."""

    fault: Fault
    calls: int
    killed: str = ""  # the primary's node name
    promoted: str = ""  # the node Patroni made primary
    failover_seconds: float | None = None  # kill -> new primary running
    spool_held_seconds: float = 0.0  # first fact spooled -> spool empty again
    spool_peak: int = 0  # most facts the spool held at once
    spooled_before_kill: bool = False  # the spool held facts before the fault (it must not)
    stored_calls: int = 0
    ended_calls: int = 0
    facts_per_call: int = 0  # the first call's, the reference
    lost: list[str] = field(default_factory=list)  # call ids with fewer facts, or no end
    duplicated: list[str] = field(default_factory=list)  # call ids with more facts
    ami_logins: int = 0  # 1: the AMI session was never dropped
    overflowed: int = 0  # facts the listener's backlog could not hold
    dropped: int = 0  # facts neither the database nor the spool took

    @property
    def intact(self) -> bool:
        """Every call stored once, whole; the line never missed a beat."""
        return (self.stored_calls == self.calls == self.ended_calls and not self.lost
                and not self.duplicated and self.dropped == 0 and self.ami_logins == 1)


async def _wait_primary(lab: PatroniLab, other_than: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        primary = await asyncio.to_thread(lab.primary)
        if primary is not None and primary != other_than:
            return primary
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no new primary within {within:.0f} s")


async def _polled(what: str, predicate: Callable[[], Awaitable[bool]], within: float) -> None:
    """Poll ``predicate`` (the line's state spans tasks: nothing to wait on) until true."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.05)


class _Run:
    """One run's moving parts: the line, the fake Asterisk, the clocks."""

    def __init__(self, lab: PatroniLab, line: Line, result: FailoverResult) -> None:
        self.lab = lab
        self.line = line
        self.result = result
        self.killed_at: float | None = None
        self.first_spooled: float | None = None
        self.last_spooled: float | None = None
        self.done = asyncio.Event()

    async def sample(self) -> None:
        """Watch the spool until :attr:`done`."""
        while not self.done.is_set():
            pending = self.line.recorder.pending()
            now = time.monotonic()
            if pending:
                self.first_spooled = self.first_spooled or now
                self.last_spooled = now
                self.result.spool_peak = max(self.result.spool_peak, pending)
                if self.killed_at is None:
                    self.result.spooled_before_kill = True
            await asyncio.sleep(0.02)
        if self.first_spooled is not None and self.last_spooled is not None:
            self.result.spool_held_seconds = self.last_spooled - self.first_spooled

    async def kill(self, after: float, within: float) -> None:
        """Kill the primary ``after`` seconds from now; wait for the promotion."""
        await asyncio.sleep(after)
        primary = await asyncio.to_thread(self.lab.primary)
        if primary is None:
            raise RuntimeError("no primary to kill")
        self.result.killed = primary
        self.killed_at = time.monotonic()
        fault = {"postgres": self.lab.kill_postgres, "node": self.lab.kill_node,
                 "freeze": self.lab.freeze_node}[self.result.fault]
        await asyncio.to_thread(fault, primary)
        self.result.promoted = await _wait_primary(self.lab, primary, within)
        self.result.failover_seconds = time.monotonic() - self.killed_at


async def _stream(asterisk: FakeAsterisk, frames: Sequence[Fields], calls: int,
                  rate: float) -> None:
    """Send ``calls`` copies of ``frames`` at ``rate`` calls/s, a tick's worth at a time."""
    per_tick = max(1, round(rate * _TICK))
    started = time.monotonic()
    for tick, first in enumerate(range(0, calls, per_tick)):
        await asyncio.sleep(max(0.0, started + tick * _TICK - time.monotonic()))
        await asterisk.send_frames([frame for i in range(first, min(calls, first + per_tick))
                                    for frame in renumbered(frames, i)])


async def run_failover(lab: PatroniLab, settings: Settings, frames: Sequence[Fields], *,
                       fault: Fault, calls: int = 300, rate: float = 20.0,
                       kill_after: float = 3.0, within: float = 90.0) -> FailoverResult:
    """Stream ``calls`` copies of ``frames`` at ``rate`` calls/s into a line writing to
    ``lab``, kill its primary ``kill_after`` seconds in, and wait (at most ``within``
    seconds after the last call) until every call is stored."""
    result = FailoverResult(fault=fault, calls=calls)
    configured = replace(lab.line_settings(settings), ami_username=USERNAME, ami_secret=SECRET)
    call_ids = [call_id_of(frames, i) for i in range(calls)]
    async with fake_asterisk(configured.ami_port) as asterisk, \
            running_line(configured) as line:

        async def logged_in() -> bool:
            return line.listener.logged_in

        async def settled() -> bool:
            return not (line.recorder.pending() or line.recorder.writing) \
                and await _stored(lab, call_ids) == calls

        await _polled("AMI login", logged_in, 30)
        run = _Run(lab, line, result)
        sampler = asyncio.create_task(run.sample())
        killer = asyncio.create_task(run.kill(kill_after, within))
        await _stream(asterisk, frames, calls, rate)
        await killer
        with contextlib.suppress(TimeoutError):  # what is missing then is counted as lost
            await _polled("every call stored", settled, within)
        run.done.set()
        await sampler
        result.ami_logins = asterisk.logins
        result.overflowed = line.recorder.overflowed
        result.dropped = line.recorder.dropped
    await _check(lab, call_ids, result)
    return result


async def _stored(lab: PatroniLab, call_ids: list[str]) -> int:
    """Ended calls of ``call_ids`` in the database (0 while it cannot say)."""
    with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                             TimeoutError):
        connection = await connect_postgres(lab.owner_dsn(), timeout=3)
        try:
            return int(await connection.fetchval(
                "SELECT count(*) FROM calls WHERE call_id = ANY($1) AND ended_at IS NOT NULL",
                call_ids))
        finally:
            await connection.close()
    return 0


async def _check(lab: PatroniLab, call_ids: list[str], result: FailoverResult) -> None:
    connection = await connect_postgres(lab.owner_dsn(), timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT c.call_id, c.ended_at IS NOT NULL AS ended, "
            "(SELECT count(*) FROM call_events e WHERE e.call_id = c.call_id) AS facts "
            "FROM calls c WHERE c.call_id = ANY($1)", call_ids)
    finally:
        await connection.close()
    by_id = {str(row["call_id"]): row for row in rows}
    result.stored_calls = len(rows)
    result.ended_calls = sum(1 for row in rows if row["ended"])
    reference = by_id.get(call_ids[0])
    result.facts_per_call = 0 if reference is None else int(reference["facts"])
    for call_id in call_ids:
        row = by_id.get(call_id)
        if row is None or not row["ended"] or int(row["facts"]) < result.facts_per_call:
            result.lost.append(call_id)
        elif int(row["facts"]) > result.facts_per_call:
            result.duplicated.append(call_id)
