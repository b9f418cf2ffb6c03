"""Who is really asking, when the line is served behind an HTTPS front (nginx).

Behind a front every connection comes from the front, and the client is named in the
``X-Forwarded-For`` header the front appends to. Anyone can send that header, so it is read
only when the connection comes from a configured front (``http_trusted_proxies``), and then
from the right: each entry is the address the hop to its right saw; the first one (from the
right) that is not itself a trusted front is the client. Entries left of it were written by
the client and are ignored, so a spoofed header costs nothing. With no trusted front (the
default) the header is never read.

The middleware replaces the request's ``remote`` (and ``scheme`` from ``X-Forwarded-Proto``)
before any handler or other middleware sees it, so the login throttle per address, the audit
log (``telephony.web.request.remote_of``) and error logs all see the client, not the front.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Final

from aiohttp import web

from telephony.web.context import CONTEXT, Network
from telephony.web.routing import Handler

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR: Final = "X-Forwarded-For"
FORWARDED_PROTO: Final = "X-Forwarded-Proto"


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_within(text: str | None, networks: Sequence[Network]) -> bool:
    """Whether the address ``text`` is in one of ``networks`` (never, if it is no address)."""
    address = _address(text) if text else None
    return address is not None and any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: Sequence[str],
                   trusted: Sequence[Network]) -> str | None:
    """The client's address: ``peer``, unless ``peer`` is a trusted front, then the right-most
    ``X-Forwarded-For`` entry that is not (all ``forwarded_for`` header values, in order).

    An entry that is not an address stops the walk at the hop that wrote it, which is
    trusted: it is the best we know, and nothing left of it can be believed.
    """
    if not is_within(peer, trusted):
        return peer
    current = peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return current
        current = str(address)
        if not any(address in network for network in trusted):
            return current
    return current


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replace the request's remote address and scheme with what a trusted front says."""
    trusted = request.app[CONTEXT].config.trusted_proxies
    if not trusted or not is_within(request.remote, trusted):
        return await handler(request)
    remote = client_address(request.remote, request.headers.getall(FORWARDED_FOR, []), trusted)
    assert remote is not None  # the peer is a trusted front, so it has an address
    proto = request.headers.get(FORWARDED_PROTO, "").strip().lower()
    scheme = proto if proto in ("http", "https") else request.scheme
    return await handler(request.clone(remote=remote, scheme=scheme))
