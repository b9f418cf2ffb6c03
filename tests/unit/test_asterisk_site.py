"""The site's Asterisk directories: the lab instance's unless a site names its own."""

import wave
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.asterisk.config import OPERATORS_CONF, install_config, install_site_config
from telephony.asterisk.errors import AsteriskSiteError
from telephony.asterisk.site import AsteriskSite
from telephony.secrets import SecretsError, ami_secret
from telephony.settings import LAB_AMI_SECRET, SettingsError, load_settings


def test_a_site_without_settings_is_the_lab_instance(tmp_path: Path) -> None:
    settings = replace(load_settings(environ={}), lab_rootfs=tmp_path, lab_instance="x1")
    site = AsteriskSite.from_settings(settings)
    assert site == AsteriskSite.in_instance(tmp_path / "srv/siaga112/x1")
    assert site.sounds_dir == tmp_path / "srv/siaga112/x1/data/sounds/siaga112"


def test_a_site_names_its_own_directories() -> None:
    settings = load_settings(environ={
        "SIAGA112_ASTERISK_ETC_DIR": "/etc/asterisk",
        "SIAGA112_ASTERISK_SOUNDS_DIR": "/usr/share/asterisk/sounds/siaga112",
        "SIAGA112_RECORDINGS_INCOMING_DIR": "/var/spool/asterisk/monitor",
        "SIAGA112_AMI_SECRET": "the-sites-own-secret",
    })
    assert AsteriskSite.from_settings(settings) == AsteriskSite(
        Path("/etc/asterisk"), Path("/usr/share/asterisk/sounds/siaga112"),
        Path("/var/spool/asterisk/monitor"))


def _wav(path: Path, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * (rate // 50))


def test_prompts_are_installed_only_as_asterisk_can_play_them(tmp_path: Path) -> None:
    site = AsteriskSite.in_instance(tmp_path / "instance")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    _wav(good / "salam.wav", 8000)
    _wav(bad / "salam.wav", 16000)
    assert site.install_prompts(good) == ["salam"]
    assert (site.sounds_dir / "salam.wav").read_bytes() == (good / "salam.wav").read_bytes()
    with pytest.raises(AsteriskSiteError, match="8000 Hz"):
        site.install_prompts(bad)


def test_the_configuration_renders_into_the_site_etc_dir(tmp_path: Path) -> None:
    settings = replace(load_settings(environ={}), state_dir=tmp_path / "state")
    etc = tmp_path / "etc"
    install_config(settings, etc, "/srv/site")
    assert "astetcdir => /srv/site/etc" in (etc / "asterisk.conf").read_text()
    assert (etc / "queues_siaga112.conf").is_file()
    assert not list(etc.glob(".*.tmp"))


def test_a_site_is_prepared_before_asterisk_starts_and_keeps_its_phones(tmp_path: Path) -> None:
    """docker/'s asterisk-config service: configuration, an operators file, the prompts."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    _wav(prompts / "salam-112.wav", 8000)
    settings = replace(load_settings(environ={}), state_dir=tmp_path / "state",
                       asterisk_etc_dir=tmp_path / "etc", asterisk_sounds_dir=tmp_path / "snd",
                       ami_secret="the-sites-own-secret")
    site = install_site_config(settings, "/srv/siaga112/site", prompts)
    assert "secret = the-sites-own-secret" in (site.etc_dir / "manager.conf").read_text()
    assert "astetcdir => /srv/siaga112/site/etc" in (site.etc_dir / "asterisk.conf").read_text()
    assert (site.sounds_dir / "salam-112.wav").exists()
    phones = site.etc_dir / OPERATORS_CONF
    assert phones.read_text().startswith(";")
    phones.write_text("[op1001](operator)\n")
    install_site_config(settings, "/srv/siaga112/site", prompts)  # the next start
    assert phones.read_text() == "[op1001](operator)\n"


def test_a_site_is_never_prepared_in_the_lab_directories(tmp_path: Path) -> None:
    settings = replace(load_settings(environ={}), lab_rootfs=tmp_path)
    with pytest.raises(AsteriskSiteError, match="asterisk_etc_dir"):
        install_site_config(settings, "/srv/siaga112/site", tmp_path)


def test_a_site_left_at_the_default_site_kind_never_gets_the_labs_ami_secret(
        tmp_path: Path) -> None:
    """site_kind defaults to "lab": a site that forgot it must not run Asterisk with the lab's
    public AMI secret, nor the line log in with it."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    settings = replace(load_settings(environ={}), state_dir=tmp_path / "state",
                       asterisk_etc_dir=tmp_path / "etc", asterisk_sounds_dir=tmp_path / "snd")
    with pytest.raises(SecretsError, match="refused outside the lab"):
        install_site_config(settings, "/srv/siaga112/site", prompts)
    assert not (tmp_path / "etc" / "manager.conf").exists()
    with pytest.raises(SecretsError, match="refused outside the lab"):
        ami_secret(settings)
    for outside in ({"SIAGA112_ASTERISK_ETC_DIR": "/etc/asterisk"},
                    {"SIAGA112_AMI_HOST": "10.0.0.5"},
                    {"SIAGA112_AMI_HOST": "10.0.0.5", "SIAGA112_AMI_SECRET": LAB_AMI_SECRET}):
        with pytest.raises(SettingsError, match="refused outside the lab"):
            load_settings(environ=outside)
    # The lab itself keeps it, and a site's own secret is taken anywhere.
    assert ami_secret(load_settings(environ={})) == LAB_AMI_SECRET
    assert ami_secret(replace(settings, ami_secret="the-sites-own-secret")) == (
        "the-sites-own-secret")
