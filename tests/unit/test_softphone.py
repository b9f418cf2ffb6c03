"""The browser softphone's pure parts: its settings, the configuration Asterisk gets for it,
the console's Content-Security-Policy, and the rule that says when a browser desk's phone is
gone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from telephony.ami.tracker import LOGGED_OUT
from telephony.asterisk.config import http_tls_conf, render_template, rtp_ice_conf
from telephony.asterisk.errors import AsteriskSiteError
from telephony.calls.facts import OperatorStateChanged
from telephony.desks.operators import PHONE_LOST_REASON, pause_label
from telephony.desks.phones import BROWSER_SECRET_LENGTH, PhoneKind, digest, new_phone_secret
from telephony.desks.presence import LostPhones
from telephony.settings import Settings, SettingsError, load_settings, softphone_origin
from telephony.web.console.render import CSP, content_security_policy

AT = datetime(2025, 1, 31, 8, 0, tzinfo=UTC)
PHONE = "PJSIP/op2001"


def state(value: str, interface: str = PHONE, queue: str = "medical") -> OperatorStateChanged:
    return OperatorStateChanged(interface, queue, value, False, "", AT)


# -- settings -------------------------------------------------------------------------------


def test_the_lab_has_a_softphone_on_asterisks_own_wss_and_a_site_only_when_it_says_so() -> None:
    assert Settings(asterisk_https_port=9089).live_softphone_ws_url == "wss://127.0.0.1:9089/ws"
    assert Settings(site_kind="site").live_softphone_ws_url is None
    site = Settings(site_kind="site", softphone_ws_url="wss://siaga.example:443/sip-ws")
    assert site.live_softphone_ws_url == "wss://siaga.example:443/sip-ws"


@pytest.mark.parametrize(("url", "origin"), [
    ("wss://siaga.example/sip-ws", "wss://siaga.example"),
    ("ws://127.0.0.1:8088/ws", "ws://127.0.0.1:8088"),
    ("wss://[::1]:8089/ws", "wss://[::1]:8089"),
])
def test_a_softphone_url_gives_its_origin(url: str, origin: str) -> None:
    assert softphone_origin(url) == origin


@pytest.mark.parametrize("url", [
    "https://siaga.example/ws", "wss://", "wss://user@siaga.example/ws",
    "wss://siaga.example/ws?x=1", "wss://siaga.example/ws#f", "wss://siaga.example:99999/ws",
    "wss://siaga.example/ws'; script-src *", "wss://sia ga.example/ws",
    " wss://siaga.example/ws", "wss://siaga.example/ws\nx", "javascript:alert(1)",
])
def test_hostile_or_odd_softphone_urls_are_refused(url: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={"SIAGA112_SOFTPHONE_WS_URL": url})


@pytest.mark.parametrize(("name", "value"), [
    ("softphone_ice_networks", "127.0.0.0/8,not-a-network"),
    ("softphone_media_address", "localhost"),
    ("asterisk_https_host", "0.0.0.0; tlsenable=no"),
    ("asterisk_https_port", "70000"),
    ("asterisk_http_port", "0"),
    ("softphone_lost_grace_seconds", "0"),
    ("softphone_rtp_timeout_seconds", "0"),  # a dead browser's caller would wait for good
    ("softphone_rtp_timeout_seconds", "4"),
    ("softphone_rtp_timeout_seconds", "601"),
    ("softphone_rtp_timeout_seconds", "30s"),
    ("asterisk_tls_cert", "/etc/asterisk/keys/a.crt"),  # without its key
])
def test_bad_softphone_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={f"SIAGA112_{name.upper()}": value})


def test_softphone_settings_are_read() -> None:
    settings = load_settings(environ={
        "SIAGA112_SOFTPHONE_ICE_NETWORKS": "10.0.0.0/8, 192.0.2.7",
        "SIAGA112_SOFTPHONE_MEDIA_ADDRESS": "10.1.2.3",
        "SIAGA112_ASTERISK_TLS_CERT": "/k/a.crt", "SIAGA112_ASTERISK_TLS_KEY": "/k/a.key"})
    assert settings.softphone_ice_networks == ("10.0.0.0/8", "192.0.2.7/32")
    assert settings.softphone_media_address == "10.1.2.3"
    assert settings.asterisk_tls_cert == Path("/k/a.crt")
    assert settings.softphone_rtp_timeout_seconds == 30
    assert load_settings(environ={"SIAGA112_SOFTPHONE_RTP_TIMEOUT_SECONDS": "45"}
                         ).softphone_rtp_timeout_seconds == 45


# -- Asterisk's configuration ---------------------------------------------------------------


def test_asterisk_serves_wss_only_with_a_certificate() -> None:
    assert "tlsenable" not in http_tls_conf(Settings())
    conf = http_tls_conf(Settings(asterisk_tls_cert=Path("/k/a.crt"),
                                  asterisk_tls_key=Path("/k/a.key"),
                                  asterisk_https_host="::1", asterisk_https_port=8443))
    assert "tlsenable = yes" in conf and "tlsbindaddr = [::1]:8443" in conf
    assert "tlscertfile = /k/a.crt" in conf and "tlsprivatekey = /k/a.key" in conf


def test_a_certificate_path_cannot_add_configuration() -> None:
    with pytest.raises(AsteriskSiteError, match="control"):
        http_tls_conf(Settings(asterisk_tls_cert=Path("/k/a.crt\ntlsenable=no"),
                               asterisk_tls_key=Path("/k/a.key")))


def test_asterisk_offers_ice_candidates_only_on_the_sites_networks() -> None:
    assert "ice_permit" not in rtp_ice_conf(Settings())
    conf = rtp_ice_conf(Settings(softphone_ice_networks=("127.0.0.0/8", "10.0.0.0/8")))
    lines = conf.splitlines()
    assert lines.index("ice_deny = 0.0.0.0/0") < lines.index("ice_permit = 127.0.0.0/8")
    assert "ice_deny = ::/0" in lines and "ice_permit = 10.0.0.0/8" in lines


def test_the_http_template_takes_its_port() -> None:
    text = (Path(__file__).resolve().parents[2] / "asterisk-conf" / "http.conf").read_text()
    rendered = render_template(text, {"asterisk_http_port": 8088})
    assert "bindaddr = 127.0.0.1" in rendered and "bindport = 8088" in rendered
    assert "#include http_tls.conf" in rendered


# -- the console's CSP ----------------------------------------------------------------------


def test_the_csp_names_the_softphones_origin_and_nothing_else() -> None:
    assert content_security_policy(None) == CSP
    csp = content_security_policy("wss://siaga.example:8089")
    assert "connect-src 'self' wss://siaga.example:8089;" in csp
    assert "script-src 'self';" in csp
    assert csp.replace(" wss://siaga.example:8089", "") == CSP


# -- phones ---------------------------------------------------------------------------------


def test_a_browser_secret_is_long_and_only_its_digest_is_kept() -> None:
    made = new_phone_secret(PHONE, "siaga112", length=BROWSER_SECRET_LENGTH)
    assert len(made.secret) == BROWSER_SECRET_LENGTH and made.username == "op2001"
    assert made.md5_cred == digest("op2001", "siaga112", made.secret)
    assert made.secret not in made.md5_cred
    assert PhoneKind("browser").label and PhoneKind.labels().keys() == {"desk", "browser"}


def test_the_lines_own_pause_is_labelled() -> None:
    assert pause_label(PHONE_LOST_REASON) == "Softphone terputus"
    assert pause_label("something-else") == "something-else"


# -- when a phone is gone -------------------------------------------------------------------


def test_a_phone_unreachable_for_the_grace_period_is_due_once() -> None:
    rule = LostPhones(grace=5)
    rule.seen([state("unavailable"), state("unavailable", queue="all-operators")], now=100)
    assert rule.next_due(101) == 4
    assert rule.due(104.9) == []
    assert rule.due(105) == [PHONE]
    assert rule.due(200) == []  # handed out once
    assert rule.next_due(200) is None


def test_a_page_that_registers_again_within_the_grace_is_left_alone() -> None:
    rule = LostPhones(grace=5)
    rule.seen([state("unavailable")], now=100)
    rule.seen([state("idle")], now=101.5)  # the page reloaded
    assert rule.due(200) == []
    assert rule.next_due(200) is None


def test_a_new_outage_after_the_phone_came_back_is_due_again() -> None:
    rule = LostPhones(grace=5)
    rule.seen([state("unavailable")], now=100)
    assert rule.due(105) == [PHONE]
    rule.seen([state("unavailable", queue="all-operators")], now=106)  # the same outage
    assert rule.due(120) == []
    rule.seen([state(LOGGED_OUT)], now=121)
    rule.seen([state("unavailable")], now=130)
    assert rule.due(135) == [PHONE]


def test_a_failed_hand_out_is_due_again_while_still_unreachable() -> None:
    rule = LostPhones(grace=5)
    rule.seen([state("unavailable")], now=100)
    assert rule.due(105) == [PHONE]
    rule.retry(PHONE)
    assert rule.next_due(106) == 0
    assert rule.due(106) == [PHONE]


def test_phones_are_judged_each_on_their_own() -> None:
    rule = LostPhones(grace=5)
    rule.seen([state("unavailable", "PJSIP/op2001"), state("ringing", "PJSIP/op2002")], 100)
    rule.seen([state("unavailable", "PJSIP/op2003")], 103)
    assert rule.due(105) == ["PJSIP/op2001"]
    assert rule.next_due(105) == 3
    assert rule.due(108) == ["PJSIP/op2003"]
