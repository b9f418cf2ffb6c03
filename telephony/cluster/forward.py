"""A console request that acts on a call another node carries is answered by that node's line
(telephony/web/nodes.py decides which requests; this module sends them).

The front spreads the console's requests over the lines, and an operator's channel is in one
node's Asterisk only: a transfer or a listen-in asked of the other line found no channel and
was refused ("Telepon Anda tidak sedang tersambung dengan penelepon ini"), about half the
time. The request is sent on, as it came (its method, path, body, session and CSRF token), to
the line of the node carrying the call, listed with its HTTP port in ``cluster_nodes``; that
line checks it again as any request and its answer is the answer. The client's address goes
along in ``X-Forwarded-For``, which the other line believes of the nodes' listed addresses
(:meth:`telephony.web.context.WebConfig.from_settings`); so the request leaves from this
node's listed address, not from whichever one the kernel picks (a second address on the
interface, 127.0.0.1 on one host): from any other, the other line took the hop for the
client, and its audit log named this node instead of the browser.

A node whose line cannot be reached is said so (503, try again): the request is not carried
out here, where Asterisk has no channel of the call. One that took the request and gave no
answer in time may have carried it out (a transfer dialled, a supervisor's phone rung): that
is said too (503 without Retry-After), and the operator looks before asking again. The wait
for the answer is longer than the routes' own bounds (their AMI actions), never shorter: a
forward given up while the other line still worked told of a failure that was a success.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import hdrs, web

from telephony.core.errors import SiagaError, Unavailable
from telephony.settings import Settings
from telephony.web.forwarded import FORWARDED_FOR, FORWARDED_PROTO
from telephony.web.nodes import FORWARDED_BY

log = logging.getLogger("telephony.cluster")

# What a forwarded request takes along: who is asking (a session's cookie or bearer token,
# the CSRF token) and what the body is; nothing that describes the hop to this line.
_REQUEST_HEADERS: Final = (hdrs.AUTHORIZATION, hdrs.COOKIE, "X-CSRF-Token", hdrs.CONTENT_TYPE,
                           hdrs.ACCEPT, hdrs.ACCEPT_LANGUAGE, hdrs.USER_AGENT)
_ANSWER_HEADERS: Final = (hdrs.CONTENT_TYPE, hdrs.RETRY_AFTER, hdrs.WWW_AUTHENTICATE)
# Beyond the routes' own waits on Asterisk: each AMI action waits up to 10 s for a login and
# 10 s for its answer (AmiListener's action_timeout); a transfer sends up to three
# (CoreShowChannels, Setvar, Atxfer), a step up to three, and a listen-in two after waiting
# its turn behind another supervisor's two. Well within the HTTPS front's 5 minutes.
TIMEOUT_SECONDS: Final = 120.0
CONNECT_SECONDS: Final = 3.0
MAX_ANSWER_BYTES: Final = 1024 * 1024  # the routes forwarded answer a few kilobytes of JSON


class NodeUnreachable(Unavailable):
    """The line of the node carrying the call could not be reached: nothing was carried
    out, and the request may be tried again."""

    code = "node_unreachable"
    logged = True  # with the node's address and why, by the forwarder

    def __init__(self, node: str) -> None:
        super().__init__(f"Permintaan ini dijalankan oleh server {node}, tempat panggilan ini "
                         "berjalan, tetapi layanan di server itu tidak menjawab. Coba lagi "
                         "sebentar lagi.")


class NodeNoAnswer(SiagaError):
    """The line of the node carrying the call took the request but its answer did not come:
    it may have been carried out, so no Retry-After invites the client to send it again."""

    status = 503
    code = "node_no_answer"
    logged = True  # with the node's address and why, by the forwarder

    def __init__(self, node: str) -> None:
        super().__init__(f"Permintaan ini sudah dikirim ke server {node}, tempat panggilan ini "
                         "berjalan, tetapi jawabannya tidak datang; mungkin sudah dijalankan. "
                         "Periksa keadaan panggilan sebelum mengulanginya.")


class LineForwarder:
    """Sends requests on to the other nodes' lines (telephony/web/nodes.py's
    ``NodeForwarder``)."""

    def __init__(self, me: str, lines: Mapping[str, str], *, source: str | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self._me = me
        self._lines = dict(lines)  # node -> http://address:port of its line
        self._source = source  # the address requests leave from (this node's listed one)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=CONNECT_SECONDS)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LineForwarder | None:
        """The forwarder of a cluster node (``cluster_nodes`` and ``asterisk_systemname``
        set); ``None`` on a single node. A peer listed without its HTTP port gets nothing
        forwarded: its calls' transfers and listen-ins asked here are refused here."""
        me = settings.cluster_self
        if me is None:
            return None
        lines = {node.name: node.http_url for node in settings.cluster_peers
                 if node.http_url is not None}
        if missing := [node.name for node in settings.cluster_peers if node.http_port is None]:
            log.warning("cluster_nodes lists no HTTP port for %s: transfers and listening in "
                        "on their calls work only through their own lines", ", ".join(missing))
        return cls(me.name, lines, source=me.host.strip("[]"))

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the running event loop. No
        # cookie jar: each request carries its own client's session, never another's.
        if self._session is None or self._session.closed:
            # A connection of its own per forward (force_close): one kept alive could have
            # been closed by the other line's restart as the next request went out, and that
            # request, never taken, was told of as "took it but did not answer". The routes
            # forwarded are a few clicks a minute.
            connector = aiohttp.TCPConnector(
                local_addr=None if self._source is None else (self._source, 0),
                force_close=True)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def forward(self, request: web.Request, node: str) -> web.StreamResponse | None:
        """``node``'s line's answer to ``request``; ``None`` for this node or one whose line
        is not listed. Raises :class:`NodeUnreachable` if that line cannot be reached,
        :class:`NodeNoAnswer` if it took the request and gave no (whole) answer in time."""
        base = self._lines.get(node)
        if node == self._me or base is None:
            return None
        headers = {name: request.headers[name] for name in _REQUEST_HEADERS
                   if name in request.headers}
        headers[FORWARDED_FOR] = request.remote or ""
        headers[FORWARDED_PROTO] = request.scheme
        headers[FORWARDED_BY] = self._me
        body = await request.read()
        try:
            async with self._client().request(
                    request.method, base + request.rel_url.raw_path_qs, data=body,
                    headers=headers, allow_redirects=False) as reply:
                # To its end: one read(n) gives only what has arrived so far, and an answer
                # longer than a segment or two was relayed cut short.
                content = bytearray()
                async for piece in reply.content.iter_any():
                    content += piece
                    if len(content) > MAX_ANSWER_BYTES:
                        raise ValueError(f"an answer over {MAX_ANSWER_BYTES} bytes")
                answer = web.Response(status=reply.status, body=bytes(content), headers={
                    name: reply.headers[name] for name in _ANSWER_HEADERS
                    if name in reply.headers})
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Not connected: the request never left.
            log.error("%s %s for %s: the line of %s (%s) cannot be reached: %s",
                      request.method, request.rel_url.path, request.remote, node, base,
                      str(exc) or type(exc).__name__)
            raise NodeUnreachable(node) from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.error("%s %s for %s: the line of %s (%s) took it but did not answer: %s",
                      request.method, request.rel_url.path, request.remote, node, base,
                      str(exc) or type(exc).__name__)
            raise NodeNoAnswer(node) from exc
        log.info("%s %s for %s: carried out by %s's line (%d)", request.method,
                 request.rel_url.path, request.remote, node, answer.status)
        return answer

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
