"""Call recordings end to end: Asterisk's MixMonitor records the call from its answer, and the
line's recordings worker pairs the file with the call row, measures, transcodes, checksums and
stores it.

Every test runs twice: with the mixed recording only, and with separate legs on, where the
caller's and the line's leg must be stored beside the mix as well. Each variant has its own lab
instance and ports, so the module can run beside the other end-to-end modules. Verdicts are
read from the database and the storage directory, as an auditor would.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace

import pytest
from pydub import AudioSegment

from recordings.domain import CALL_KINDS, Kind, State, source_name, storage_relpath
from recordings.store import Recording, RecordingRepository
from telephony.app import Line
from telephony.calls.store import CallRecord
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ALL_SKILLS, ended_call, unique_caller
from tests.support.net import own_lab

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("recordings-test"),
    http_port=0,  # the API on any free port
    lab_operators=5,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    recordings_poll_seconds=0.5,
    recordings_settle_seconds=1.0,
)
LEGS = replace(
    BASE,
    **own_lab("legs-test"),
    recordings_separate_legs=True,
)
RECORDINGS = RecordingRepository()


@pytest.fixture(scope="module", params=[BASE, LEGS], ids=["mixed", "legs"])
def base_settings(request: pytest.FixtureRequest) -> Settings:
    variant: Settings = request.param
    return variant


@pytest.fixture(scope="module")
def line_operators() -> dict[str, dict[str, int]]:
    return {"PJSIP/op1001": ALL_SKILLS}


async def stored_recordings(
    line: Line, call_id: str, within: float = 30.0
) -> dict[Kind, Recording]:
    """The call's recordings by kind, once the worker has finished with them (bounded polling).

    A call's rows are created together, so the first finished listing is complete.
    """
    deadline = time.monotonic() + within
    while True:
        rows = await line.database.run(lambda c: RECORDINGS.recordings_of_calls(c, [call_id]))
        if rows and all(r.state not in (State.PENDING, State.PROCESSING) for r in rows):
            return {row.kind: row for row in rows}
        assert time.monotonic() < deadline, f"recordings of {call_id} not stored: {rows}"
        await asyncio.sleep(0.2)


def check_stored(
    settings: Settings, lab: Lab, record: CallRecord, rows: dict[Kind, Recording]
) -> None:
    """The mix, as long as the call, and with separate legs on each leg, as long as the mix:
    all paired with the call, transcoded, checksummed, their sources removed."""
    assert set(rows) == (set(CALL_KINDS) if settings.recordings_separate_legs else {Kind.MIXED})
    for kind, row in rows.items():
        check_file(settings, lab, record, kind, row)
    assert record.arrived_at is not None and record.ended_at is not None
    call_seconds = (record.ended_at - record.arrived_at).total_seconds()
    mixed = rows[Kind.MIXED].duration_seconds
    assert mixed is not None and abs(mixed - call_seconds) <= 1.0, (mixed, call_seconds)
    for kind, row in rows.items():
        assert row.duration_seconds is not None
        assert abs(row.duration_seconds - mixed) <= 1.0, (kind, row.duration_seconds, mixed)


def check_file(
    settings: Settings, lab: Lab, record: CallRecord, kind: Kind, row: Recording
) -> None:
    """One recording of the call: stored in the dated layout, transcoded, checksummed."""
    assert record.arrived_at is not None
    assert (row.state, row.reason, row.format) == (State.DONE, None, "opus"), kind
    assert (row.call_id, row.started_at) == (record.call_id, record.arrived_at)
    assert row.duration_seconds is not None
    assert row.storage_path == storage_relpath(
        record.call_id, record.arrived_at, settings.timezone, "opus", kind).as_posix()
    stored = settings.recordings_dir / row.storage_path
    data = stored.read_bytes()
    assert data[:4] == b"OggS" and b"OpusHead" in data[:64]
    assert row.sha256 == hashlib.sha256(data).hexdigest() and row.size_bytes == len(data)
    with stored.open("rb") as handle:
        decoded = AudioSegment.from_file(handle, format="ogg")
    assert abs(len(decoded) / 1000 - row.duration_seconds) <= 0.1
    assert row.silence_share is not None and 0 <= row.silence_share <= 1
    if kind is not Kind.LINE:
        # The caller talked: real audio, not digital silence. The line's leg may rightly be
        # silent: a failed-open call hears no prompt, and sipp's operator says nothing.
        assert row.loudness_dbfs is not None and row.silence_share < 1
    assert not (lab.monitor_dir / source_name(record.call_id, kind)).exists()


async def test_emergency_call_with_audio_is_recorded_paired_and_stored(
    line: Line, lab: Lab, settings: Settings
) -> None:
    caller_id = unique_caller("0813")
    # Emergency, then ambulance; then the caller talks (sip-tester's g711a.pcap). sipp replays
    # the pcap with the same RTP sequence numbers each time and Asterisk drops a replay, so the
    # call lasts no longer than one pcap (7.05 s) of talking.
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="11", talk_seconds=7, audio=True) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.ivr_category, record.queue, record.operator, record.disposition) == (
        "emergency", "medical", "PJSIP/op1001", "answered")
    rows = await stored_recordings(line, record.call_id)
    check_stored(settings, lab, record, rows)
    if settings.recordings_separate_legs:
        assert rows[Kind.LINE].loudness_dbfs is not None  # the IVR's prompts


async def test_calls_are_recorded_when_the_ivr_server_is_down(
    line: Line, lab: Lab, settings: Settings
) -> None:
    """Recording starts in the dialplan, before the IVR: a failed-open call is recorded too."""
    await line.callpath.stop()
    try:
        caller_id = unique_caller("0813")
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                               talk_seconds=5, audio=True) as caller:
            assert (await caller.wait()).ok
    finally:
        await line.callpath.start()
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.disposition) == ("failopen", "answered")
    rows = await stored_recordings(line, record.call_id)
    check_stored(settings, lab, record, rows)
    if settings.recordings_separate_legs:
        # Nothing was played to this caller: each direction went to its own leg.
        assert rows[Kind.LINE].loudness_dbfs is None
