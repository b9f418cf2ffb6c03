"""Asterisk's logs rotated daily and pruned after the retention (telephony/asterisk/
log_rotation.py): the schedule, which files go, and a rotation on real files."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from telephony.asterisk.log_rotation import LogRotation, seconds_until, stale
from telephony.settings import SettingsError, load_settings
from tests.support.ami import RecordingAmi

JAKARTA = ZoneInfo("Asia/Jakarta")
DAY = 86400.0


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute, second, tzinfo=JAKARTA)


def test_the_rotation_is_at_the_hour_in_the_site_time_once_a_day() -> None:
    assert seconds_until(at(1, 30), 3) == 1.5 * 3600
    assert seconds_until(at(3, 0, 0), 3) == DAY  # just rotated: tomorrow
    assert seconds_until(at(23, 0), 3) == 4 * 3600  # across midnight
    # A sleep that ended a little early must not rotate twice in one second (the second
    # timestamped name would overwrite the first rotated file).
    assert seconds_until(at(2, 59, 59), 3) == DAY + 1


def test_only_rotated_copies_of_live_logs_past_the_retention_are_stale() -> None:
    now = 1_800_000_000.0
    old, recent = now - 31 * DAY, now - 29 * DAY
    files = [("queue_log", old), ("messages.log", old),  # live: never
             ("queue_log.1797000000", old), ("messages.log.1797000000", old),
             ("queue_log.1799000000", recent), ("queue_log.0", old),  # older strategies
             ("notes.txt.1", old), ("site-backup.tar", old)]  # not Asterisk's logs
    assert stale(files, {"queue_log", "messages.log"}, keep_days=30, now=now) == [
        "messages.log.1797000000", "queue_log.0", "queue_log.1797000000"]


async def test_a_rotation_asks_asterisk_and_prunes_the_old_files(tmp_path: Path) -> None:
    ami = RecordingAmi()
    now = time.time()
    for name, age in (("queue_log", 0), ("queue_log.1", 40), ("queue_log.2", 20),
                      ("messages.log", 0), ("messages.log.3", 31), ("other.5", 90)):
        path = tmp_path / name
        path.write_text("x\n")
        os.utime(path, (now - age * DAY, now - age * DAY))
    rotation = LogRotation(ami, tmp_path, keep_days=30, hour=3, zone=JAKARTA)
    removed = await rotation.rotate()
    assert ami.named("LoggerRotate") == [{"Action": "LoggerRotate"}]
    assert sorted(p.name for p in removed) == ["messages.log.3", "queue_log.1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "messages.log", "other.5", "queue_log", "queue_log.2"]
    # Asterisk away: one warning, the prune still runs, nothing raised.
    ami.down = True
    os.utime(tmp_path / "queue_log.2", (now - 35 * DAY, now - 35 * DAY))
    assert [p.name for p in await rotation.rotate()] == ["queue_log.2"]


def test_the_settings_keep_a_conservative_retention() -> None:
    settings = load_settings(environ={})
    assert (settings.asterisk_log_rotate_hour, settings.asterisk_log_keep_days) == (3, 30)
    for name, bad in (("asterisk_log_keep_days", "1"), ("asterisk_log_rotate_hour", "24")):
        with pytest.raises(SettingsError, match=name):
            load_settings(environ={}, overrides={name: bad})
    assert load_settings(environ={}, overrides={
        "asterisk_log_rotate_hour": "-1"}).asterisk_log_rotate_hour == -1
