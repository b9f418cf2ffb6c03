"""Ending a phone's registration at the cluster's front (telephony/kamailio/registrar.py):
the REGISTER that removes every binding, and its digest (the exchange itself:
tests/loopback/test_front_registrar.py)."""

from __future__ import annotations

import hashlib

from telephony.kamailio.registrar import (
    FrontRegistrar,
    authorization,
    header,
    unregister_request,
)
from telephony.settings import Settings


def test_the_request_removes_every_binding_of_the_phone() -> None:
    request = unregister_request("op1007", ("127.0.0.5", 5080), ("127.0.0.11", 40000),
                                 call_id="abc@127.0.0.11", cseq=2,
                                 authorization='Digest username="op1007"').decode()
    lines = request.split("\r\n")
    assert lines[0] == "REGISTER sip:127.0.0.5:5080 SIP/2.0"
    assert "Contact: *" in lines and "Expires: 0" in lines and "CSeq: 2 REGISTER" in lines
    assert "To: <sip:op1007@127.0.0.5>" in lines
    assert header(request, "authorization") == 'Digest username="op1007"'
    assert request.endswith("Content-Length: 0\r\n\r\n")
    v6 = unregister_request("op1007", ("::1", 5080), ("::1", 40000), call_id="x", cseq=1)
    assert v6.startswith(b"REGISTER sip:[::1]:5080 SIP/2.0")


def test_the_digest_is_rfc_2617s() -> None:
    # RFC 2617, 3.5: with qop=auth.
    ha1 = hashlib.md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    answer = authorization('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                           'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                           'opaque="5ccc069c403ebaf9f0171e9517f40e41"', "Mufasa", ha1,
                           "/dir/index.html", method="GET", cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in answer
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in answer
    # Without qop (the front's challenge): MD5(HA1:nonce:HA2).
    ha1 = "h" * 32
    plain = authorization('Digest realm="siaga112", nonce="n1"', "op1", ha1,
                          "sip:127.0.0.5:5080")
    ha2 = hashlib.md5(b"REGISTER:sip:127.0.0.5:5080").hexdigest()
    expected = hashlib.md5(f"{ha1}:n1:{ha2}".encode()).hexdigest()
    assert f'response="{expected}"' in plain
    assert "qop" not in plain


def test_only_a_cluster_has_a_front_to_ask() -> None:
    assert FrontRegistrar.from_settings(Settings()) is None
