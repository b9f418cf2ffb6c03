"""Asterisk going away under live calls, in the real lab: one caller talking to an operator
(the sipp UAS), one waiting in the queue behind them, then ``core restart now`` through the
lab's CLI, or a SIGKILL of Asterisk and a start again (astdb kept, as a site's service
manager would bring it back). Both calls are stored as cut with the right reason and a
plausible end (the hang-up, or for a crash when the AMI session died, not when the resync
noticed), the outage is recorded with its times, the call-back worklist lists both callers,
and the line still takes a new call to an operator once Asterisk is back.

Its own lab instance and ports, so it can run beside the other end-to-end modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from telephony.ami.listener import PING_EVERY_SECONDS, PING_STALL_SECONDS
from telephony.app import Line
from telephony.callbacks.model import CallbackReason, Entry, find_entry
from telephony.calls.outage_store import AsteriskOutage, outages
from telephony.calls.outages import CutReason, OutageKind
from telephony.lab import sipp
from telephony.lab.chroot import Lab, LabError
from telephony.settings import Settings
from tests.e2e.harness import ALL_SKILLS, ended_call, unique_caller
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("outage-test"),
    lab_operators=2,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    http_port=0,  # any free port
)
OPERATOR = "PJSIP/op1001"  # the only one in the queues: the second caller waits


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def line_operators() -> Mapping[str, Mapping[str, int]]:
    return {OPERATOR: ALL_SKILLS}


@dataclass(frozen=True)
class CutCall:
    """A call as the outage left it."""

    call_id: str
    answered_at: datetime | None
    queue: str | None
    ended_at: datetime | None
    vanished: bool
    cut_reason: str | None


async def cut_call(line: Line, caller: str) -> CutCall:
    """The caller's call once it has ended and been marked cut."""

    async def probe() -> CutCall | None:
        row = await line.database.run(lambda c: c.fetchrow(
            "SELECT call_id, answered_at, queue, ended_at, vanished, cut_reason FROM calls "
            "WHERE caller_number = $1", caller))
        if row is None or row["ended_at"] is None or row["cut_reason"] is None:
            return None
        return CutCall(**dict(row))

    return await eventually(f"the cut call of {caller}", probe, 30)


@contextlib.asynccontextmanager
async def talking_and_waiting(line: Line, settings: Settings
                              ) -> AsyncIterator[tuple[str, str]]:
    """Two callers (information, key 3): the first talks to the operator, the second waits in
    the queue behind them; both would stay a minute. Yields their numbers."""
    talking, waiting = unique_caller("0813"), unique_caller("0813")
    async with contextlib.AsyncExitStack() as stack:
        for caller in (talking, waiting):
            await stack.enter_async_context(sipp.caller(
                settings.sip_host, settings.sip_port, "112", caller_id=caller, dtmf="3",
                talk_seconds=60))

            async def in_place(who: str = caller) -> bool | None:
                row = await line.database.run(lambda c: c.fetchrow(
                    "SELECT operator, queue_joined_at FROM calls WHERE caller_number = $1",
                    who))
                if row is None:
                    return None
                done = row["operator"] if who == talking else row["queue_joined_at"]
                return True if done is not None else None

            await eventually(f"{caller} talking or queued", in_place, 20)
        yield talking, waiting


async def back_and_ready(lab: Lab, line: Line) -> None:
    """Asterisk answers its CLI fully booted again, and the listener has resynced."""

    async def booted() -> bool | None:
        try:
            await lab.acli("core waitfullybooted", time_limit=5)
        except LabError:
            return None  # not accepting CLI connections yet
        return True

    async def ready() -> bool | None:
        try:
            async with asyncio.timeout(0.5):
                await line.listener.wait_ready()
        except TimeoutError:
            return None
        return True

    await eventually("Asterisk fully booted again", booted, 60)
    await eventually("the listener logged in and resynced", ready, 30)


async def the_outage(line: Line, since: datetime) -> AsteriskOutage:
    async def probe() -> AsteriskOutage | None:
        found = await line.database.run(lambda c: outages(c, since=since))
        return found[0] if found and found[0].back_at is not None else None

    return await eventually("the outage recorded", probe, 30)


async def assert_on_worklist(line: Line, *call_ids: str) -> None:
    """Each call is on the call-back worklist, as cut (the list is read at most 2 s stale)."""

    async def probe() -> list[Entry] | None:
        entries = await line.callbacks.worklist()
        found = [find_entry(entries, call_id) for call_id in call_ids]
        return [entry for entry in found if entry is not None] if all(found) else None

    entries = await eventually("the cut calls on the call-back worklist", probe, 10)
    for call_id, entry in zip(call_ids, entries, strict=True):
        assert dict((c.call_id, reason) for c, reason in entry.reasons)[call_id] \
            is CallbackReason.CUT


async def assert_line_works(line: Line, settings: Settings) -> None:
    """A new caller reaches the operator once Asterisk is back."""
    caller = unique_caller("0813")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller,
                           dtmf="3", talk_seconds=4) as call:
        assert (await call.wait()).ok
    record = await ended_call(line, caller)
    assert (record.disposition, record.operator) == ("answered", OPERATOR)


async def test_core_restart_now_cuts_the_calls_it_hangs_up(
    line: Line, lab: Lab, settings: Settings
) -> None:
    since = datetime.now(UTC)
    async with talking_and_waiting(line, settings) as (talking, waiting):
        restarted_at = datetime.now(UTC)
        await lab.acli("core restart now")
        one, two = await cut_call(line, talking), await cut_call(line, waiting)
        await back_and_ready(lab, line)
    for call in (one, two):
        assert call.cut_reason == CutReason.ASTERISK_RESTART
        assert call.ended_at is not None and not call.vanished  # its Hangup came
        assert restarted_at - timedelta(seconds=1) <= call.ended_at
        assert call.ended_at <= restarted_at + timedelta(seconds=3)
    assert one.answered_at is not None and two.answered_at is None
    assert two.queue == "information"
    outage = await the_outage(line, since)
    assert outage.kind is OutageKind.RESTART and outage.calls_cut == 2
    assert outage.began_at >= max(c.ended_at for c in (one, two) if c.ended_at is not None)
    assert outage.booted_at is not None and outage.back_at is not None
    assert outage.began_at <= outage.booted_at <= outage.back_at
    await assert_on_worklist(line, one.call_id, two.call_id)
    await assert_line_works(line, settings)


async def test_a_crash_cuts_the_calls_at_the_last_moment_they_were_seen(
    line: Line, lab: Lab, settings: Settings
) -> None:
    since = datetime.now(UTC)
    async with talking_and_waiting(line, settings) as (talking, waiting):
        killed_at = datetime.now(UTC)
        await asyncio.to_thread(lab.crash)
        starting_at = datetime.now(UTC)
        await asyncio.to_thread(lab.start, fresh=False)
        await back_and_ready(lab, line)
        one, two = await cut_call(line, talking), await cut_call(line, waiting)
    outage = await the_outage(line, since)
    assert outage.kind is OutageKind.CRASH and outage.calls_cut == 2
    assert outage.lost_at is not None and outage.booted_at is not None
    assert killed_at - timedelta(seconds=1) <= outage.lost_at <= killed_at + timedelta(seconds=2)
    assert outage.booted_at >= starting_at - timedelta(seconds=1)
    assert outage.back_at is not None and outage.back_at >= outage.booted_at
    for call in (one, two):
        assert call.cut_reason == CutReason.ASTERISK_CRASH and call.vanished
        assert call.ended_at is not None
        # When the session died with Asterisk, not when the resync noticed (after the boot).
        assert killed_at - timedelta(seconds=1) <= call.ended_at
        assert call.ended_at <= killed_at + timedelta(seconds=1)
        assert call.ended_at < outage.booted_at
    assert one.answered_at is not None and two.answered_at is None
    await assert_on_worklist(line, one.call_id, two.call_id)
    await assert_line_works(line, settings)


async def test_a_hung_asterisk_shows_on_the_wallboard_and_its_session_lives_on(
    line: Line, lab: Lab, settings: Settings
) -> None:
    """Asterisk hung a few seconds (SIGSTOP, as a deadlock or a stalled machine leaves it: its
    AMI session open, nothing sent). The wallboard showed its old picture as live until the
    unanswered Ping dropped the session, 10-20 s; now it says so within seconds, the session
    lives on (no resync, no outage), and calls go on once Asterisk does."""
    since = datetime.now(UTC)

    def connected() -> bool:
        return line.wallboard.snapshot().connected

    async def not_live() -> bool | None:
        return True if not connected() else None

    async def live() -> bool | None:
        return True if connected() else None

    assert connected()
    lab.send_signal(signal.SIGSTOP)
    try:
        await eventually("the wallboard not live", not_live,
                         PING_EVERY_SECONDS + PING_STALL_SECONDS + 1, interval=0.1)
        assert line.listener.logged_in
    finally:
        lab.send_signal(signal.SIGCONT)
    await eventually("the wallboard live again", live, PING_EVERY_SECONDS + 1, interval=0.1)
    assert line.listener.logged_in
    assert not await line.database.run(lambda c: outages(c, since=since))
    await assert_line_works(line, settings)
