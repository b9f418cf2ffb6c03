from pathlib import Path

import pytest

from telephony import cli
from telephony.cli import build_parser, main


@pytest.mark.parametrize(
    "argv",
    [["migrate"], ["db", "start"], ["prompts"], ["lab", "build"], ["lab", "stop"], ["serve"],
     ["demo", "--keep-running"]],
)
def test_every_command_parses(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).command == argv[0]


def test_bad_setting_is_one_clear_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "agi_port=oops", "db", "status"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "siaga112: pengaturan tidak valid: agi_port: invalid value 'oops'"


@pytest.mark.parametrize(("setting", "message"), [
    ("survey_hours=siang", "survey_hours: expected HH:MM-HH:MM"),
    ("incident_dispatch_targets=kebakaran=300", "unknown report type 'kebakaran'"),
    # First used deep in a command (logging's set-up, serve's shift calendar): they used to
    # raise a traceback there.
    ("log_level=verbose", "log_level: one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("timezone=Mars/Phobos", "timezone: an IANA time zone"),
])
def test_a_feature_s_bad_setting_stops_every_command(
    capsys: pytest.CaptureFixture[str], setting: str, message: str
) -> None:
    # The features check their own words; the command line runs their checks before any
    # command, as it did when the settings module checked them itself.
    assert main(["--set", setting, "db", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("siaga112: pengaturan tidak valid: ") and message in err


def test_set_needs_name_equals_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "agi_port", "db", "status"]) == 2
    assert "--set expects name=value" in capsys.readouterr().err


def test_a_patroni_config_that_cannot_be_written_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "missing" / "patroni.yml"
    assert main(["patroni-config", "--name", "pg1", "--host", "127.0.0.1", "--data-dir",
                 str(tmp_path / "data"), "--bin-dir", str(tmp_path), "--output",
                 str(output)]) == 1
    err = capsys.readouterr().err
    assert err == (f"siaga112: gagal: {output} tidak dapat ditulis: "
                   "berkas atau direktori tidak ada.\n")


def test_asterisk_config_without_the_site_s_directories_says_so_before_any_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_prompts(*_: object) -> None:
        raise AssertionError("the prompts were generated before the settings were checked")

    monkeypatch.setattr(cli, "build_prompt_audio", no_prompts)
    monkeypatch.delenv("SIAGA112_ASTERISK_ETC_DIR", raising=False)
    monkeypatch.delenv("SIAGA112_ASTERISK_SOUNDS_DIR", raising=False)
    assert main(["asterisk-config", "--instance-dir", "/srv/siaga112"]) == 1
    assert capsys.readouterr().err == (
        "siaga112: gagal: asterisk_etc_dir dan asterisk_sounds_dir harus diatur untuk sebuah "
        "situs.\n")
