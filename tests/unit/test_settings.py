from datetime import time
from pathlib import Path

import pytest

from telephony.admin.site import parse_shifts, shifts_value
from telephony.settings import SettingsError, load_settings


def test_defaults_are_loopback_and_embedded() -> None:
    settings = load_settings(environ={})
    assert (settings.agi_host, settings.ami_host, settings.sip_host) == ("127.0.0.1",) * 3
    assert settings.database_dsn is None
    assert [s.name for s in settings.shifts] == ["pagi", "siang", "malam"]
    assert settings.agi_url == "agi://127.0.0.1:4573/ivr"


def test_layers_file_then_environment_then_cli(tmp_path: Path) -> None:
    config = tmp_path / "siaga.toml"
    config.write_text('agi_port = 4600\nami_port = 5100\nshifts = {a = "06:00", b = "18:00"}\n')
    settings = load_settings(
        config_file=config,
        environ={"SIAGA112_AMI_PORT": "5200", "SIAGA112_QUEUE_MAX_WAIT": "30"},
        overrides={"queue_max_wait": "45"},
    )
    assert (settings.agi_port, settings.ami_port, settings.queue_max_wait) == (4600, 5200, 45)
    assert [(s.name, s.start) for s in settings.shifts] == [("a", time(6)), ("b", time(18))]


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "siaga.toml"
    config.write_text('state_dir = "/srv/siaga"\n')
    settings = load_settings(environ={"SIAGA112_CONFIG": str(config)})
    assert settings.state_dir == Path("/srv/siaga")


def test_shifts_from_environment_string() -> None:
    settings = load_settings(environ={"SIAGA112_SHIFTS": "malam=22:00,pagi=06:00"})
    assert [s.name for s in settings.shifts] == ["pagi", "malam"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SIAGA112_AGI_PORTT": "1"}, "unknown setting SIAGA112_AGI_PORTT"),
        ({"SIAGA112_AGI_PORT": "http"}, "agi_port: invalid value 'http'"),
        ({"SIAGA112_AGI_PORT": "70000"}, "not a TCP/UDP port"),
        ({"SIAGA112_SHIFTS": "pagi=25:00"}, "invalid time"),
        ({"SIAGA112_SHIFTS": "a=07:00,b=07:00"}, "same time"),
        # An offset would make every call's shift attribution fail once the line ran.
        ({"SIAGA112_SHIFTS": "pagi=07:00+08:00,siang=15:00+08:00,malam=23:00+08:00"},
         "pagi: '07:00\\+08:00' has a UTC offset"),
        ({"SIAGA112_SHIFTS": "pagi=07:00,malam=23:00Z"}, "malam: '23:00Z' has a UTC offset"),
        # Not the last one silently: the morning shift would be gone.
        ({"SIAGA112_SHIFTS": "pagi=07:00,pagi=15:00,malam=23:00"}, "two shifts named the same"),
        ({"SIAGA112_SHIFTS": "=07:00,siang=15:00"}, "a shift without a name"),
        ({"SIAGA112_RTP_PORT_START": "30000"}, "rtp_port_start"),
        ({"SIAGA112_FRONT_CALLS_RETENTION_DAYS": "0"}, "front_calls_retention_days"),
        ({"SIAGA112_LOG_LEVEL": "verbose"}, "log_level: one of DEBUG"),
        ({"SIAGA112_TIMEZONE": "Asia/Jogja"}, "timezone: an IANA time zone"),
        ({"SIAGA112_TIMEZONE": "../../etc/localtime"}, "timezone: an IANA time zone"),
        # Meant as WITA (UTC+8), it is UTC-8: calls 16 hours off, in the wrong shift and day.
        ({"SIAGA112_TIMEZONE": "Etc/GMT+8"}, "Etc/GMT\\+8 is UTC-08:00 .*Asia/Makassar"),
        ({"SIAGA112_TIMEZONE": "Etc/GMT-9"}, "Etc/GMT-9 is UTC\\+09:00 .*Asia/Jayapura"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    config = tmp_path / "siaga.toml"
    config.write_text("agi_prot = 1\n")
    with pytest.raises(SettingsError, match="unknown setting 'agi_prot'"):
        load_settings(config_file=config, environ={})


def test_dsn_or_pg_environment_disable_the_embedded_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGHOST", raising=False)
    assert not load_settings(environ={"SIAGA112_DATABASE_DSN": "postgresql://x/y"}
                             ).uses_embedded_database
    monkeypatch.setenv("PGHOST", "db.example")
    assert not load_settings(environ={}).uses_embedded_database


@pytest.mark.parametrize(
    ("document", "message"),
    [
        # TOML has floats: int() used to cut 1.5 to port 1 without a word.
        ("http_port = 1.5", "http_port: invalid value 1.5"),
        # A NaN passes every '< 0' and '<= 0' check after it (the worker's lease, its poll).
        ("recordings_lease_seconds = nan", "recordings_lease_seconds: invalid value nan"),
        ("recordings_poll_seconds = inf", "recordings_poll_seconds: invalid value inf"),
        # A number where a directory belongs was taken as the relative directory '5'.
        ("state_dir = 5", "state_dir: invalid value 5"),
    ],
)
def test_a_settings_file_value_of_the_wrong_kind_is_refused(
    tmp_path: Path, document: str, message: str
) -> None:
    config = tmp_path / "siaga.toml"
    config.write_text(document + "\n")
    with pytest.raises(SettingsError, match=message):
        load_settings(config_file=config, environ={})


def test_a_settings_file_not_in_utf8_is_one_clear_refusal(tmp_path: Path) -> None:
    # An editor that saves in UTF-16 or Windows-1252 (Notepad): a traceback used to follow.
    config = tmp_path / "siaga.toml"
    config.write_bytes('# Kabupaten Sumenep\nstate_dir = "/srv/siaga"\n'.encode("utf-16"))
    with pytest.raises(SettingsError, match=f"cannot read settings file {config}: not UTF-8"):
        load_settings(config_file=config, environ={})


def test_capitalised_shift_names_are_taken_in_lower_case_as_the_roster_form_takes_them(
        caplog: pytest.LogCaptureFixture) -> None:
    """A settings file's ``Pagi`` was taken as written, and the admin's roster form (lower-case
    names only) refused the very roster it showed: the Referensi page could not save any
    change of shifts. Refusing it at load would stop a site that has run for years."""
    settings = load_settings(environ={"SIAGA112_SHIFTS": "Pagi=07:00,SIANG=15:00,malam=23:00"})
    assert [s.name for s in settings.shifts] == ["pagi", "siang", "malam"]
    assert parse_shifts(shifts_value(settings.shifts)) == settings.shifts
    [line] = [r.getMessage() for r in caplog.records if r.name == "telephony.settings"]
    assert line == "shifts: taken as Pagi -> pagi, SIANG -> siang"
    caplog.clear()
    # A name the form refuses for more than its case is named in the same one line; two names
    # differing only in case stay as written (either would be lost).
    settings = load_settings(environ={"SIAGA112_SHIFTS": "Shift Pagi=07:00,siang=15:00"})
    assert [s.name for s in settings.shifts] == ["shift pagi", "siang"]
    [line] = [r.getMessage() for r in caplog.records if r.name == "telephony.settings"]
    assert line.startswith("shifts: taken as Shift Pagi -> shift pagi; the admin's roster "
                           "form refuses 'shift pagi' (lower-case")
    caplog.clear()
    settings = load_settings(environ={"SIAGA112_SHIFTS": "Pagi=07:00,pagi=15:00"})
    assert [s.name for s in settings.shifts] == ["Pagi", "pagi"]
    caplog.clear()
    load_settings(environ={})
    assert [r for r in caplog.records if r.name == "telephony.settings"] == []
