"""Whether the cluster's SIP front (Kamailio, ``kamailio_host:kamailio_port``) answers: a SIP
OPTIONS to the front itself (no user part), which kamailio.cfg answers 200 before anything
else. The front down is every new call of the site refused before it reaches a node, and
every phone registered there unreachable; nothing else the line sees says so (a node's
Asterisk keeps running). Read before each scrape (``siaga112_sip_front_up``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Final

# Any final reply is the front answering (a 4xx too: its SIP stack runs); provisional ones
# (1xx) are not final.
REPLY_TIMEOUT: Final = 1.0


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def options_call_id(source: tuple[str, int], tag: str) -> str:
    """The Call-ID of :func:`options_request`'s request."""
    return f"{tag}@{_bracketed(source[0])}"


def options_request(*, target: tuple[str, int], source: tuple[str, int], tag: str) -> bytes:
    """An OPTIONS to the front at ``target`` from ``source`` (Call-ID from ``tag``): what
    Kamailio's sanity checks accept, answered by the front itself."""
    host, port = target
    src_host, src_port = source
    uri_host = _bracketed(host)
    via_host = _bracketed(src_host)
    lines = [
        f"OPTIONS sip:{uri_host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {via_host}:{src_port};branch=z9hG4bK{tag[:20]};rport",
        "Max-Forwards: 70",
        f"From: <sip:siaga112-line@{via_host}>;tag={tag[20:]}",
        f"To: <sip:{uri_host}:{port}>",
        f"Call-ID: {options_call_id(source, tag)}",
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
        "Content-Length: 0",
        "", "",
    ]
    return "\r\n".join(lines).encode("ascii")


def is_final_reply(data: bytes, call_id: str) -> bool:
    """``data`` is a final SIP reply to the request whose Call-ID is ``call_id``."""
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"SIP/2.0 ") or lines[0].startswith(b"SIP/2.0 1"):
        return False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i"):
            return value.strip().decode("ascii", "replace") == call_id
    return False


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, answered: asyncio.Future[None]) -> None:
        self._answered = answered
        self.call_id = ""

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self._answered.done() and is_final_reply(data, self.call_id):
            self._answered.set_result(None)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: nobody there
        if not self._answered.done():
            self._answered.set_exception(exc)


async def front_answers(host: str, port: int, *, reply_timeout: float = REPLY_TIMEOUT) -> bool:
    """Whether the front at ``host:port`` answers an OPTIONS within ``reply_timeout`` seconds."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[None] = loop.create_future()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Reply(answered), remote_addr=(host.strip("[]"), port))
    try:
        source = transport.get_extra_info("sockname")[:2]
        tag = uuid.uuid4().hex
        request = options_request(target=(host.strip("[]"), port), source=source, tag=tag)
        protocol.call_id = options_call_id(source, tag)
        transport.sendto(request)
        try:
            async with asyncio.timeout(reply_timeout):
                await answered
        except (TimeoutError, OSError):
            return False
        return True
    finally:
        transport.close()
