"""Which address is the client's behind an HTTPS front (telephony/web/forwarded.py), and
the settings that name the fronts and the metrics scrapers."""

from __future__ import annotations

import pytest

from telephony.settings import SettingsError, load_settings
from telephony.web.context import parse_networks
from telephony.web.forwarded import client_address, is_within

LOOPBACK = parse_networks(["127.0.0.0/8"])
CLIENT, SPOOFED = "203.0.113.9", "198.51.100.7"


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("127.0.0.1", [], "127.0.0.1"),  # the front itself asking
    ("127.0.0.1", [f"{SPOOFED}, {CLIENT}"], CLIENT),
    ("127.0.0.1", [SPOOFED, CLIENT], CLIENT),  # two header lines read as one list
    ("127.0.0.1", [f"{SPOOFED}, 127.0.0.2"], SPOOFED),  # two fronts in a row
    ("127.0.0.1", ["127.0.0.3, 127.0.0.2"], "127.0.0.3"),  # all trusted: the left-most
    ("127.0.0.1", [f"{SPOOFED}, nonsense, {CLIENT}"], CLIENT),
    ("127.0.0.1", ["nonsense, 127.0.0.2"], "127.0.0.2"),  # garbage stops at the last hop
    ("127.0.0.1", ["[2001:db8::1]"], "2001:db8::1"),
    ("::ffff:127.0.0.1", [CLIENT], CLIENT),  # an IPv4 front on a dual-stack socket
    ("192.0.2.1", [CLIENT], "192.0.2.1"),  # not a front: its header is the client's own
    (None, [CLIENT], None),
])
def test_the_right_most_untrusted_hop_is_the_client(
    peer: str | None, header: list[str], expected: str | None
) -> None:
    assert client_address(peer, header, LOOPBACK) == expected


def test_the_settings_take_lists_of_addresses_and_networks() -> None:
    settings = load_settings(environ={"SIAGA112_HTTP_TRUSTED_PROXIES": "10.0.0.5, 172.16.0.0/12",
                                      "SIAGA112_METRICS_ALLOWED_ADDRESSES": ""})
    assert settings.http_trusted_proxies == ("10.0.0.5/32", "172.16.0.0/12")
    assert settings.metrics_allowed_addresses == ()
    assert load_settings(environ={}).http_trusted_proxies == ()
    with pytest.raises(SettingsError, match="http_trusted_proxies"):
        load_settings(environ={"SIAGA112_HTTP_TRUSTED_PROXIES": "front.example"})


def test_an_address_is_within_a_network_or_not_at_all() -> None:
    assert is_within("127.0.0.9", LOOPBACK)
    assert is_within("::ffff:127.0.0.1", LOOPBACK)
    assert not is_within("10.0.0.1", LOOPBACK)
    assert not is_within("not an address", LOOPBACK)
    assert not is_within(None, LOOPBACK)
    assert not is_within("127.0.0.1", ())
