"""Prank screening end to end: real Asterisk 22, our IVR scoring a caller from the history the
line itself recorded, the dialplan's screening prompt, sipp callers and a sipp operator.

A number that just made a burst of silent calls is scored high before its next call, hears the
screening prompt, and reaches an operator whether it presses 5 5, speaks, or stays silent; a
first-time caller goes straight through; with the database unreachable, scoring fails and the
call is routed as usual. Verdicts are read from the database, as a supervisor would.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from telephony.app import Line, running_line
from telephony.calls.store import CallRecord
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ALL_SKILLS, ended_call, started_line, unique_caller
from tests.support.net import free_port, own_lab

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("screening-test"),
    http_port=0,  # the API on any free port
    lab_operators=5,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    screening_upkeep_seconds=0.5,
)
OPERATOR = "PJSIP/op1001"
# The packaged screening prompt waits 10 s; the shortest allowed wait keeps these calls short.
SCREENING_WAIT_MS = 3000
SILENT_BURST = 6


@pytest.fixture(scope="module")
def base_settings(state_dir: Path) -> Settings:
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    document["screening"]["wait_ms"] = SCREENING_WAIT_MS
    menu_file = state_dir / "menu.json"
    menu_file.write_text(json.dumps(document), "utf-8")
    return replace(BASE, menu_file=menu_file)


@pytest.fixture(scope="module")
def phone_options() -> dict[str, float]:
    return {"talk_seconds": 1.0}


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {OPERATOR: ALL_SKILLS}


@dataclass(frozen=True)
class Screened:
    """What the line recorded about one call's screening."""

    record: CallRecord
    prank_score: float | None
    prank_reasons: str | None
    queue_priority: int | None
    screening: str | None


async def screened_call(line: Line, caller_id: str, since: datetime) -> Screened:
    """The caller's one call that arrived after ``since``, once it has ended."""
    record = await ended_call(line, caller_id, since=since, within=60.0)

    async def columns(connection: asyncpg.Connection) -> asyncpg.Record | None:
        return await connection.fetchrow(
            "SELECT prank_score, prank_reasons, queue_priority, screening "
            "FROM calls WHERE call_id = $1", record.call_id)

    row = await line.database.run(columns)
    assert row is not None
    return Screened(record, row["prank_score"], row["prank_reasons"], row["queue_priority"],
                    row["screening"])


async def call(settings: Settings, caller_id: str, *, dtmf: str = "", talk_seconds: float,
               audio: bool = False, number: str = "112", bye_cause: int | None = None) -> None:
    async with sipp.caller(settings.sip_host, settings.sip_port, number, caller_id=caller_id,
                           dtmf=dtmf, dtmf_delay=1.0, talk_seconds=talk_seconds,
                           audio=audio, bye_cause=bye_cause) as caller:
        result = await caller.wait()
    assert result.ok, result.errors


async def silent_burst(line: Line, settings: Settings) -> tuple[str, datetime]:
    """A fresh number makes SILENT_BURST silent calls (hang up in the IVR without a key) and
    is then scored high; returns the number and the instant after the burst."""
    caller_id = unique_caller("0857")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           talk_seconds=2.0, calls=SILENT_BURST, rate=3.0) as burst:
        result = await burst.wait()
    assert result.ok and result.successful == SILENT_BURST, result
    config = line.screening.config()
    deadline = time.monotonic() + 30
    while True:
        score = await line.screening.pre_queue("112", caller_id, datetime.now(UTC))
        if score.value >= config.screening_threshold:
            return caller_id, datetime.now(UTC)
        assert time.monotonic() < deadline, f"burst not scored high: {score}"
        await asyncio.sleep(0.3)


async def test_first_time_caller_goes_straight_through(line: Line, settings: Settings) -> None:
    caller_id, since = unique_caller("0857"), datetime.now(UTC)
    await call(settings, caller_id, dtmf="2", talk_seconds=4.0)
    screened = await screened_call(line, caller_id, since)
    assert (screened.record.queue, screened.record.operator) == (
        "non-emergency", OPERATOR)
    assert screened.prank_score is not None and screened.prank_score < 0.5
    assert screened.prank_reasons and "Belum ada panggilan" in screened.prank_reasons
    assert (screened.queue_priority, screened.screening) == (10, None)


async def test_silent_burst_then_pressing_55_reaches_an_operator(
    line: Line, settings: Settings
) -> None:
    caller_id, since = await silent_burst(line, settings)
    # Complaint ("2"), then 5 5 while the screening prompt plays.
    await call(settings, caller_id, dtmf="2,,,55", talk_seconds=3.0)
    screened = await screened_call(line, caller_id, since)
    assert screened.prank_score is not None and screened.prank_score >= 0.7
    assert screened.prank_reasons and "diam" in screened.prank_reasons
    assert (screened.screening, screened.record.operator) == ("pressed", OPERATOR)
    assert screened.queue_priority == 0  # a complaint may be lowered all the way


async def test_silent_caller_after_a_burst_still_reaches_an_operator(
    line: Line, settings: Settings
) -> None:
    caller_id, since = await silent_burst(line, settings)
    # Presses nothing at all: the IVR routes to emergency, the screening prompt times out.
    await call(settings, caller_id, talk_seconds=60.0)
    screened = await screened_call(line, caller_id, since)
    assert (screened.record.ivr_outcome, screened.record.queue) == (
        "no_input", "emergency-general")
    assert (screened.screening, screened.record.operator) == ("timeout", OPERATOR)
    assert screened.queue_priority == 5  # emergency keeps the configured floor


async def test_caller_who_speaks_passes_the_screening(line: Line, settings: Settings) -> None:
    caller_id, since = await silent_burst(line, settings)
    await call(settings, caller_id, dtmf="2", talk_seconds=12.0, audio=True)
    screened = await screened_call(line, caller_id, since)
    assert (screened.screening, screened.record.operator) == ("spoke", OPERATOR)


async def rings_119_unlowered(line: Line, settings: Settings, caller_id: str, *,
                              talk_seconds: float) -> None:
    """``caller_id`` rings 119 now and joins the medical queue at the normal priority, held
    as no silent caller, and its operator answers."""
    since = datetime.now(UTC)
    await call(settings, caller_id, number="119", talk_seconds=talk_seconds)
    screened = await screened_call(line, caller_id, since)
    assert (screened.record.queue, screened.record.operator) == ("medical", OPERATOR)
    assert screened.queue_priority == 10, screened.prank_reasons
    assert "diam" not in (screened.prank_reasons or "")


async def test_a_caller_who_gave_up_in_the_queue_is_not_lowered_when_ringing_back(
    line: Line, settings: Settings
) -> None:
    """A 119 caller (no key to press) waits in a queue nobody answers (the only operator
    paused: the medical queue sends them on to all-operators at once), gives up and rings
    straight back: the call they gave up is no silent call, and the new one joins at
    the normal priority. Counted silent, it was lowered to the floor as a nuisance number's
    ("100% dari 1 panggilan sebelumnya diam atau iseng")."""
    caller_id = unique_caller("0857")
    await line.listener.send_action(
        {"Action": "QueuePause", "Interface": OPERATOR, "Paused": "true"})
    try:
        # The greeting (6 s), then about 6 s in the queue.
        await call(settings, caller_id, number="119", talk_seconds=12.0)
    finally:
        await line.listener.send_action(
            {"Action": "QueuePause", "Interface": OPERATOR, "Paused": "false"})
    gave_up = await ended_call(line, caller_id)
    assert (gave_up.queue, gave_up.disposition) == ("all-operators", "abandoned")
    await rings_119_unlowered(line, settings, caller_id, talk_seconds=10.0)


async def test_a_caller_the_network_dropped_in_the_menu_is_not_lowered_when_ringing_back(
    line: Line, settings: Settings
) -> None:
    """The carrier's network loses a 112 caller during the greeting, before any key (its BYE
    says Q.850 38, network out of order), and they ring 119 straight back: the dropped call
    is no silent call of theirs, and the new one joins at the normal priority. Counted
    silent, it was lowered to the floor as a nuisance number's ("100% dari 1 panggilan
    sebelumnya diam atau iseng"), while the call-back worklist listed the dropped call."""
    caller_id = unique_caller("0857")
    await call(settings, caller_id, talk_seconds=2.0, bye_cause=38)
    dropped = await ended_call(line, caller_id)
    assert (dropped.hangup_cause, dropped.disposition) == (38, "ended_in_ivr")
    await rings_119_unlowered(line, settings, caller_id, talk_seconds=9.0)


async def test_database_unreachable_routes_normally_and_loses_nothing(
    lab: Lab, phones: sipp.Sipp, settings: Settings
) -> None:
    """Scoring cannot read history: the call queues unscored, is answered, and its facts are
    spooled and written once the database is back."""
    nowhere = f"postgresql://127.0.0.1:{free_port()}/nowhere"
    down = replace(settings, database_dsn=nowhere, database_owner_dsn=nowhere)
    caller_id, since = unique_caller("0857"), datetime.now(UTC)
    async with started_line(lab, down, {OPERATOR: ALL_SKILLS}) as line:
        await call(settings, caller_id, dtmf="3", talk_seconds=4.0)
        deadline = time.monotonic() + 10
        while line.listener.live_calls:  # its hang-up reached the spool before we stop
            assert time.monotonic() < deadline, line.listener.live_calls
            await asyncio.sleep(0.1)
    async with running_line(settings) as line:
        screened = await screened_call(line, caller_id, since)
    assert (screened.record.queue, screened.record.operator) == ("information", OPERATOR)
    assert (screened.prank_score, screened.queue_priority, screened.screening) == (
        None, None, None)
