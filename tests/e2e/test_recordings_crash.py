"""A recording cut short by an Asterisk crash is stored, not quarantined; a call recorded while
Asterisk's recording disk is full still reaches an operator, and its recording is said missing
for that reason.

The lab's Asterisk is SIGKILLed while MixMonitor records a call in which the caller talks
(waiting in the queue: nobody staffs it, as the restart empties Asterisk's queues). The
WAV it leaves behind holds the audio written so far behind a header whose RIFF and data sizes
are still 0 (Asterisk fills them in when it closes the file). Once Asterisk is back and the
line's resync has ended the call, the recordings worker must repair the header sizes from the
file's length and store the recording with the duration the file really holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.menu import load_menu
from recordings.domain import (
    NOT_CREATED,
    NOT_WRITTEN,
    NOT_WRITTEN_TEXT,
    Kind,
    State,
    source_name,
)
from recordings.http import recording_json
from telephony.app import Line
from telephony.calls.store import CallRecord
from telephony.desks.operators import OperatorDesk
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ALL_SKILLS, ended_call, prompted_lab, unique_caller
from tests.support.audio import stored_recordings
from tests.support.disk import fill_up, read_only, tiny_tmpfs
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

WAV_HEADER = 44  # what Asterisk's format_wav writes: RIFF, fmt (16 bytes), data
BYTES_PER_SECOND = 16_000  # 8 kHz 16-bit mono (signed linear)


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return Settings(
        **own_lab("reccrash-test"),
        http_port=0,
        lab_operators=2,
        queue_wrapup_seconds=0,
        agi_session_timeout=60,
        ami_reconnect_seconds=0.5,
        db_retry_seconds=0.5,
        recordings_poll_seconds=0.5,
        recordings_settle_seconds=1.0,
        recordings_missing_after_seconds=1.0,
    )


@pytest.fixture(scope="module")
async def lab(settings: Settings) -> AsyncIterator[Lab]:
    """The lab with Asterisk's monitor directory on a file system of its own (a tmpfs, mounted
    before Asterisk starts so that its mount namespace shares it), which a test can fill up."""
    with tiny_tmpfs(Lab(settings).monitor_dir, size_kb=16 * 1024):
        async with prompted_lab(settings) as lab:
            yield lab


async def growing_recording(monitor: Path, before: set[Path], seconds: float) -> Path:
    """The call's new WAV once it holds at least ``seconds`` of audio."""
    async def probe() -> Path | None:
        for path in set(monitor.glob("*.wav")) - before:
            if path.stat().st_size >= WAV_HEADER + seconds * BYTES_PER_SECOND:
                return path
        return None
    return await eventually("the call's recording to grow", probe, within=40.0)


def asterisk_pid(lab: Lab) -> int:
    return int(lab.pid_file.read_text(encoding="ascii").strip())


async def test_a_recording_cut_by_an_asterisk_crash_is_repaired_and_stored(
    line: Line, lab: Lab, settings: Settings
) -> None:
    caller_id = unique_caller("0817")
    before = set(lab.monitor_dir.glob("*.wav"))
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="11", talk_seconds=7, audio=True) as caller:
        wav = await growing_recording(lab.monitor_dir, before, 3.0)
        os.kill(asterisk_pid(lab), signal.SIGKILL)
        killed = time.monotonic()
        await caller.stop()  # the call died with Asterisk; the caller has nobody to talk to
    # What a crash leaves: every frame written so far, and the header as it was opened.
    left = wav.read_bytes()
    riff_size, data_size = struct.unpack_from("<I", left, 4)[0], struct.unpack_from(
        "<I", left, 40)[0]
    assert (left[:4], left[36:40], riff_size, data_size) == (b"RIFF", b"data", 0, 0)
    held_seconds = (len(left) - WAV_HEADER) // 2 / 8000

    await asyncio.to_thread(lab.start)  # Asterisk comes back; the line resyncs
    record = await ended_call(line, caller_id, within=60.0)
    rows = await stored_recordings(line, record.call_id, within=60.0)
    recovered = time.monotonic() - killed

    row = rows[Kind.MIXED]
    assert (row.state, row.reason, row.quarantine_path) == (State.DONE, None, None)
    assert row.duration_seconds is not None and row.duration_seconds >= 3.0
    assert row.duration_seconds == pytest.approx(held_seconds, abs=0.05)
    assert row.loudness_dbfs is not None and row.silence_share is not None
    assert row.silence_share < 1  # the caller's speech is there
    assert row.storage_path is not None and (settings.recordings_dir / row.storage_path).is_file()
    assert not settings.recordings_quarantine_dir.exists() or not any(
        settings.recordings_quarantine_dir.iterdir())
    assert not wav.exists()  # stored: Asterisk's copy removed as for any recording
    print(f"\n{held_seconds:.2f} s of audio recovered from the crashed recording, stored "
          f"{recovered:.1f} s after the SIGKILL (Asterisk restart included)")



async def test_a_call_is_answered_while_asterisks_recording_disk_is_full_and_said_unrecorded(
    line: Line, lab: Lab, settings: Settings
) -> None:
    """The monitor directory's disk full: MixMonitor cannot write a byte (its file stays empty),
    yet the caller reaches the operator and the call is recorded as usual; the recording is
    missing for that reason (not a broken file in quarantine), the console says so and the
    metric behind the alert counts it. Once there is room again, the next call is recorded."""
    desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
    queues = await desk.log_in("PJSIP/op1001", ALL_SKILLS)
    try:
        filler = fill_up(lab.monitor_dir)
        try:
            full = await answered_call(line, settings)
        finally:
            filler.unlink()
        rows = await stored_recordings(line, full.call_id)
        row = rows[Kind.MIXED]
        assert (row.state, row.reason, row.quarantine_path) == (
            State.MISSING, NOT_WRITTEN, None)
        assert recording_json(row)["unavailable_because"] == NOT_WRITTEN_TEXT
        assert line.metrics.registry.get_sample_value(
            "siaga112_recordings_not_written_total") == 1
        assert not (lab.monitor_dir / source_name(full.call_id)).exists()
        assert not settings.recordings_quarantine_dir.exists() or not any(
            settings.recordings_quarantine_dir.iterdir())

        again = await answered_call(line, settings)
        stored = (await stored_recordings(line, again.call_id))[Kind.MIXED]
        assert (stored.state, stored.reason) == (State.DONE, None)
        assert stored.duration_seconds is not None and stored.duration_seconds >= 2.0
    finally:
        await desk.log_out("PJSIP/op1001", queues)


async def test_a_call_is_answered_while_asterisks_recording_disk_is_read_only_and_said_so(
    line: Line, lab: Lab, settings: Settings
) -> None:
    """The monitor directory's disk read-only (as the kernel remounts one after errors):
    MixMonitor cannot even create its file; the caller reaches the operator all the same and
    the recording is missing for that reason, not as a file that went astray."""
    desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
    queues = await desk.log_in("PJSIP/op1001", ALL_SKILLS)
    before = line.metrics.registry.get_sample_value("siaga112_recordings_not_written_total")
    try:
        with read_only(lab.monitor_dir):
            call = await answered_call(line, settings)
            row = (await stored_recordings(line, call.call_id))[Kind.MIXED]
    finally:
        await desk.log_out("PJSIP/op1001", queues)
    assert (row.state, row.reason, row.quarantine_path) == (State.MISSING, NOT_CREATED, None)
    assert recording_json(row)["unavailable_because"] == NOT_WRITTEN_TEXT
    assert line.metrics.registry.get_sample_value(
        "siaga112_recordings_not_written_total") == (before or 0) + 1


async def answered_call(line: Line, settings: Settings) -> CallRecord:
    """An emergency call the operator answers and the caller talks in; its ended record."""
    caller_id = unique_caller("0817")
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="11", talk_seconds=3, audio=True) as caller:
        result = await caller.wait()
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.operator) == ("answered", "PJSIP/op1001")
    return record
