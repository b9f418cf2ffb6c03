"""Who may hold a FastAGI session (peer allowlist, URL secret), the refusal tally, and the
dialplan's first-command deadline as rendered from the settings."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.agi.access import AgiAccess, RefusalTally, allowed_networks, with_secret
from telephony.agi.server import FastAgiConfig
from telephony.asterisk.config import install_config, template_values
from telephony.settings import Settings, SettingsError, load_settings

SECRET = "k3Y-only_Asterisk-knows"


def test_allowed_peers_default_to_loopback_plus_the_configured_asterisk() -> None:
    networks = allowed_networks(Settings(ami_host="192.0.2.7"))
    access = AgiAccess.of(networks, None)
    assert access.peer_allowed("127.0.0.1") and access.peer_allowed("127.8.9.10")
    assert access.peer_allowed("::1")
    assert access.peer_allowed("::ffff:127.0.0.1")  # a dual-stack socket's IPv4 peer
    assert access.peer_allowed("192.0.2.7")
    assert not access.peer_allowed("192.0.2.8")
    assert not access.peer_allowed("10.0.0.1")
    assert not access.peer_allowed("not an address")
    assert not access.peer_allowed("")
    # A host name is not resolved: it adds nothing (list its address instead).
    assert allowed_networks(Settings(ami_host="asterisk.lan")) == tuple(
        ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128"))


def test_allowed_peers_setting_is_a_list_of_networks() -> None:
    settings = load_settings(environ={}, overrides={"agi_allowed_peers": "10.1.0.0/16,::1"})
    assert settings.agi_allowed_peers == ("10.1.0.0/16", "::1/128")
    assert AgiAccess.of(allowed_networks(settings), None).peer_allowed("10.1.2.3")
    with pytest.raises(SettingsError, match="agi_allowed_peers"):
        load_settings(environ={}, overrides={"agi_allowed_peers": "10.1.0.0/16,evil"})


def test_the_secret_must_be_named_exactly_once_in_the_url() -> None:
    access = AgiAccess(secret=SECRET)
    assert access.secret_matches(f"ivr?secret={SECRET}")
    assert access.secret_matches(f"survey?secret={SECRET}")
    for script in ("ivr", "ivr?", "ivr?secret=", f"ivr?secret={SECRET}x", f"ivr?Secret={SECRET}",
                   f"ivr?secret={SECRET[:-1]}", f"ivr?secret=x&secret={SECRET}",
                   f"ivr?secret={SECRET}&secret={SECRET}", "ivr?secret=%00", "ivr?%%%"):
        assert not access.secret_matches(script), script
    assert AgiAccess().secret_matches("ivr")  # no secret configured: nothing to check


def test_urls_carry_the_secret_only_when_there_is_one() -> None:
    assert with_secret("agi://127.0.0.1:4573/ivr", None) == "agi://127.0.0.1:4573/ivr"
    assert with_secret("agi://127.0.0.1:4573/ivr", SECRET) == (
        f"agi://127.0.0.1:4573/ivr?secret={SECRET}")


@pytest.mark.parametrize("secret", ["short", "x" * 129, "a,b" * 8, "${SHELL(id)}aaaaaaaaa",
                                    "abcdefgh abcdefgh", "abcdefghabcdefgh\n"])
def test_a_configured_secret_must_be_safe_in_the_dialplan(secret: str) -> None:
    with pytest.raises(SettingsError, match="agi_secret"):
        load_settings(environ={}, overrides={"agi_secret": secret})


def test_settings_bound_the_first_command_deadline_and_the_cap() -> None:
    assert Settings().agi_first_command_seconds < Settings().agi_session_timeout
    for overrides in ({"agi_first_command_seconds": "0"},
                      {"agi_first_command_seconds": "90", "agi_session_timeout": "90"},
                      {"agi_max_sessions": "0"}):
        with pytest.raises(SettingsError, match="agi_"):
            load_settings(environ={}, overrides=overrides)
    config = FastAgiConfig.from_settings(load_settings(
        environ={}, overrides={"agi_max_sessions": "7", "agi_secret": SECRET}))
    assert config.max_sessions == 7
    assert config.access.secret == SECRET
    assert config.access.peer_allowed("127.0.0.1") and not config.access.peer_allowed("10.0.0.1")
    assert FastAgiConfig.from_settings(Settings()).access.secret is None  # the lab has none


def test_a_site_renders_its_generated_secret_into_both_agi_urls(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"site_kind": "site",
                                                    "state_dir": str(tmp_path)})
    secret = FastAgiConfig.from_settings(settings).access.secret
    assert secret is not None
    assert secret == (tmp_path / "secrets" / "agi_secret").read_text().strip()
    values = template_values(settings, "/srv/site")
    assert values["agi_url"] == f"agi://127.0.0.1:4573/ivr?secret={secret}"
    assert values["survey_agi_url"] == f"agi://127.0.0.1:4573/survey?secret={secret}"
    install_config(settings, tmp_path / "etc", "/srv/site")
    dialplan = (tmp_path / "etc" / "extensions.conf").read_text()
    assert f"AGI(agi://127.0.0.1:4573/ivr?secret={secret},${{IVR_LINE}})" in dialplan


def test_the_dialplan_waits_briefly_for_the_first_command_then_guards_the_session(
        tmp_path: Path) -> None:
    settings = replace(Settings(agi_first_command_seconds=3, agi_session_timeout=60),
                       state_dir=tmp_path)
    install_config(settings, tmp_path / "etc", "/srv/lab")
    dialplan = (tmp_path / "etc" / "extensions.conf").read_text()
    for context in ("[siaga112-ivr]", "[siaga112-survey]"):
        section = dialplan.split(context, 1)[1]
        before_agi = section.split(",AGI(", 1)[0]
        assert "Set(TIMEOUT(absolute)=3)" in before_agi, context
        assert "ivr_guard" not in before_agi and "=60)" not in before_agi, context
    alive = dialplan.split("[siaga112-agi-alive]", 1)[1]
    assert "exten => s,1,Set(TIMEOUT(absolute)=60)\n" in alive
    # ... and marks the session as begun (a cluster's dialplan does not start it again on a
    # peer's server), then returns.
    assert " same => n,Set(AGI_ALIVE=1)\n same => n,Return()" in alive


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_refusals_are_logged_once_then_summed_up_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    tally = RefusalTally(logging.getLogger("test.agi"), 10.0, clock)
    caplog.set_level(logging.WARNING, "test.agi")
    tally.record("bad_secret", "127.0.0.1:40000", "script 'ivr' without the AGI secret")
    assert len(caplog.records) == 1
    assert "127.0.0.1:40000 refused (bad_secret)" in caplog.records[0].getMessage()
    assert tally.due == 110.0
    for i in range(5000):  # a flood within the window: counted, not logged
        clock.now = 100.0 + i / 1000
        tally.record("no_environment" if i % 2 else "session_cap", f"127.0.0.1:{41000 + i}", "")
    assert len(caplog.records) == 1
    clock.now = 110.0
    tally.flush()
    assert len(caplog.records) == 2
    summary = caplog.records[1].getMessage()
    assert "refused 5000 more connections in the last 10 s" in summary
    assert "no_environment 2500, session_cap 2500" in summary
    assert "from 127.0.0.1 (5000)" in summary
    assert tally.due == 120.0  # the flood may go on: the next window is open
    clock.now = 115.0
    tally.record("peer_not_allowed", "10.0.0.9:5000", "")
    clock.now = 121.0  # the timer is late: the next refusal ends the overdue window first
    tally.record("peer_not_allowed", "10.0.0.9:5001", "")
    assert len(caplog.records) == 3
    assert "refused 1 more connections" in caplog.records[2].getMessage()
    clock.now = 131.0
    tally.flush()
    tally.flush()  # a window that counted nothing: quiet again
    assert tally.due is None
    assert len(caplog.records) == 4
    tally.record("lost", "127.0.0.1:1", "gone")  # after a quiet spell: in full again
    assert len(caplog.records) == 5 and "(lost): gone" in caplog.records[4].getMessage()
    assert tally.total["session_cap"] == 2500 and sum(tally.total.values()) == 5004
