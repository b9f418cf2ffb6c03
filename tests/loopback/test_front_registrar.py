"""Ending a phone's registration at the cluster's front over a real UDP socket on loopback
(telephony/kamailio/registrar.py): the digest challenge answered, replies to other requests
and provisional ones skipped, and what the line is told when the front refuses or is
silent."""

from __future__ import annotations

import socket
import threading

import pytest

from telephony.kamailio.registrar import FrontRegistrar, FrontRegistrationError, header


def _front(replies: list[list[bytes]]) -> tuple[socket.socket, threading.Thread]:
    """A front on loopback answering each request with the next of ``replies`` (its
    Call-ID copied in each); nothing once they run out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)

    def serve() -> None:
        for reply in replies:
            try:
                data, addr = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                return
            call_id = header(data.decode(), "Call-ID")
            for message in reply:
                sock.sendto(message.replace(b"CALLID", call_id.encode()), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


@pytest.mark.parametrize(("replies", "said"), [
    ([], "no answer in 0.3 s"),
    ([[b'SIP/2.0 401 Unauthorized\r\nCall-ID: CALLID\r\nWWW-Authenticate: Digest '
       b'realm="siaga112", nonce="n"\r\n\r\n'],
      [b"SIP/2.0 100 Trying\r\nCall-ID: CALLID\r\n\r\n",
       b"SIP/2.0 403 Forbidden\r\nCall-ID: other\r\n\r\n",  # not this request's
       b"SIP/2.0 403 Forbidden\r\nCall-ID: CALLID\r\n\r\n"]], "SIP/2.0 403 Forbidden"),
])
def test_a_front_that_does_not_end_it_is_said_so(replies: list[list[bytes]], said: str
                                                  ) -> None:
    sock, thread = _front(replies)
    try:
        front = FrontRegistrar("127.0.0.1", sock.getsockname()[1], "127.0.0.1", timeout=0.3)
        with pytest.raises(FrontRegistrationError, match=said):
            front.unregister_all("op1007", "0" * 32)
    finally:
        thread.join(5)
        sock.close()


def test_a_front_that_ends_it_says_nothing_back() -> None:
    sock, thread = _front([
        [b'SIP/2.0 401 Unauthorized\r\nCall-ID: CALLID\r\nWWW-Authenticate: Digest '
         b'realm="siaga112", nonce="n"\r\n\r\n'],
        [b"SIP/2.0 200 OK\r\nCall-ID: CALLID\r\n\r\n"]])
    try:
        FrontRegistrar("127.0.0.1", sock.getsockname()[1], "127.0.0.1",
                       timeout=2).unregister_all("op1007", "0" * 32)
    finally:
        thread.join(5)
        sock.close()
