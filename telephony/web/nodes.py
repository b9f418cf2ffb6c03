"""A request that acts on a live call runs on the cluster node carrying the call.

On a cluster the HTTPS front spreads the console's requests over every node's line, but an
operator's channel lives in one node's Asterisk only, and its AMI is the only one that can
transfer it, send it keys or spy on it. A route that acts on a call so names, in the route
table, how to find the node (:attr:`~telephony.web.routing.Route.runs_on`); this middleware,
after the security checks, hands a request whose node is another one to that node's line
(:class:`NodeForwarder`, telephony/cluster/forward.py) and answers with its answer. The other
line checks the session, the CSRF token and the role again, as for any request.

On a single node (no forwarder), for a route that names no node, and for a request another
line already forwarded, the handler runs here: a request is forwarded once at most.
"""

from __future__ import annotations

from typing import Final, Protocol

from aiohttp import web

from telephony.web.routing import ROUTE_TABLE, Handler

# Names the line that forwarded a request: such a request is never forwarded again.
FORWARDED_BY: Final = "X-Siaga112-Forwarded-By"


class NodeForwarder(Protocol):
    """Hands a request to another node's line."""

    async def forward(self, request: web.Request, node: str) -> web.StreamResponse | None:
        """The answer of ``node``'s line to ``request``; ``None`` when ``node`` is this one
        or a node with no line to forward to (the request is then handled here). Raises a
        :class:`~telephony.core.errors.SiagaError` (503) when that line does not answer."""
        ...


NODE_FORWARDER: Final = web.AppKey("node_forwarder", NodeForwarder)


@web.middleware
async def node_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a request on the node carrying the call it acts on (see the module)."""
    forwarder = request.app.get(NODE_FORWARDER)
    if forwarder is None or FORWARDED_BY in request.headers \
            or request.match_info.http_exception is not None:
        return await handler(request)
    route = request.app[ROUTE_TABLE].route_of(request.match_info.route)
    if route is None or route.runs_on is None:
        return await handler(request)
    node = await route.runs_on(request)
    if node is not None and (answer := await forwarder.forward(request, node)) is not None:
        return answer
    return await handler(request)
