"""Recording settings, the worker's configuration from them, and the recordings commands."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.commands import format_outcome, format_removal
from recordings.domain import Kind, State
from recordings.retention import Removal, policy_from_settings
from recordings.worker import Outcome, RecordingsConfig
from telephony.asterisk.config import template_values
from telephony.asterisk.site import AsteriskSite
from telephony.cli import build_parser
from telephony.settings import Settings, SettingsError, load_settings


def test_defaults_store_opus_under_the_state_directory() -> None:
    settings = load_settings(environ={})
    assert settings.recordings_format == "opus"
    assert settings.recordings_dir == settings.state_dir / "recordings"
    assert settings.recordings_quarantine_dir == settings.state_dir / "recordings-quarantine"
    policy = policy_from_settings(settings)
    assert policy.days_for("emergency") >= policy.days_for("information")


def test_the_line_applies_retention_daily_unless_turned_off() -> None:
    assert load_settings(environ={}).recordings_retention_interval_hours == 24
    off = load_settings(environ={"SIAGA112_RECORDINGS_RETENTION_INTERVAL_HOURS": "0"})
    assert off.recordings_retention_interval_hours == 0
    with pytest.raises(SettingsError, match="recordings_retention_interval_hours"):
        load_settings(environ={"SIAGA112_RECORDINGS_RETENTION_INTERVAL_HOURS": "-1"})


def test_incoming_directory_defaults_to_the_lab_instance_monitor_directory(
    tmp_path: Path,
) -> None:
    settings = replace(load_settings(environ={}), lab_rootfs=tmp_path, lab_instance="x1")
    config = RecordingsConfig.from_settings(settings)
    assert config.incoming_dir == AsteriskSite.from_settings(settings).monitor_dir == (
        tmp_path / "srv/siaga112/x1/spool/monitor")
    site = replace(settings, recordings_incoming_dir=Path("/var/spool/asterisk/monitor"))
    assert RecordingsConfig.from_settings(site).incoming_dir == Path(
        "/var/spool/asterisk/monitor")


def test_separate_legs_are_off_by_default_and_reach_the_dialplan_and_the_worker(
    tmp_path: Path,
) -> None:
    settings = replace(load_settings(environ={}), lab_rootfs=tmp_path)
    assert not settings.recordings_separate_legs
    assert not RecordingsConfig.from_settings(settings).separate_legs
    assert template_values(settings, "/srv/siaga112/lab")["recording_options"] == ""
    legs = load_settings(environ={"SIAGA112_RECORDINGS_SEPARATE_LEGS": "true"})
    legs = replace(legs, lab_rootfs=tmp_path)
    assert RecordingsConfig.from_settings(legs).separate_legs
    assert template_values(legs, "/srv/siaga112/lab")["recording_options"] == (
        "r(${UNIQUEID}-caller.wav)t(${UNIQUEID}-line.wav)")


def test_settings_from_the_environment() -> None:
    settings = load_settings(environ={
        "SIAGA112_RECORDINGS_FORMAT": "mp3",
        "SIAGA112_RECORDINGS_RETENTION_INFORMATION_DAYS": "30",
        "SIAGA112_RECORDINGS_INCOMING_DIR": "/srv/monitor",
    })
    assert settings.recordings_format == "mp3"
    assert settings.recordings_retention_information_days == 30
    assert settings.recordings_incoming_dir == Path("/srv/monitor")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SIAGA112_RECORDINGS_FORMAT": "wav"}, "opus or mp3"),
        ({"SIAGA112_RECORDINGS_RETENTION_EMERGENCY_DAYS": "0"}, "at least 1"),
        ({"SIAGA112_RECORDINGS_MAX_ATTEMPTS": "0"}, "at least 1"),
        ({"SIAGA112_RECORDINGS_HEARTBEAT_SECONDS": "11"}, "a third of the lease"),
        ({"SIAGA112_RECORDINGS_HEARTBEAT_SECONDS": "0"}, "positive"),
        ({"SIAGA112_RECORDINGS_POLL_SECONDS": "0"}, "positive"),
        ({"SIAGA112_RECORDINGS_SETTLE_SECONDS": "-1"}, "not negative"),
    ],
)
def test_bad_recording_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


@pytest.mark.parametrize(
    ("argv", "action"),
    [(["recordings", "process"], "process"),
     (["recordings", "retention", "--dry-run"], "retention"),
     (["recordings", "hold", "1795430334.0", "--release"], "hold")],
)
def test_recordings_commands_parse(argv: list[str], action: str) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.action) == ("recordings", action)


def test_report_lines_are_in_indonesian() -> None:
    assert format_outcome(Outcome("1.2", State.DONE, "2026/11/24/1.2.opus")).split() == [
        "1.2", "gabungan", "tersimpan", "2026/11/24/1.2.opus"]
    assert format_outcome(Outcome("1.2", State.MISSING, "no file", Kind.CALLER)).split()[:3] == [
        "1.2", "penelepon", "tanpa"]
    removal = Removal("1.2", None, datetime(2026, 11, 23, 18, 30, tzinfo=UTC),
                      "2026/11/24/1.2.opus", 1000, file_found=False)
    line = format_removal(removal, Settings().timezone)
    assert "tanpa kategori" in line and "2026-11-24" in line
    assert line.endswith("(berkas sudah tidak ada)")
