"""The web application (the JSON API and the console) and the server that runs it beside the
rest of the line."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from aiohttp import web
from aiohttp.http import HttpProcessingError

from recordings import http as recordings_http
from recordings import schemas as recordings_schemas
from telephony.accounts import console as accounts_console
from telephony.accounts import http as accounts_http
from telephony.accounts import schemas as accounts_schemas
from telephony.admin import schemas as admin_schemas
from telephony.callbacks import schemas as callbacks_schemas
from telephony.calls import http as calls_http
from telephony.calls import schemas as calls_schemas
from telephony.core.open_files import REPEAT_SECONDS, guard_accepts
from telephony.desks import console as desks_console
from telephony.desks import http as desks_http
from telephony.desks import schemas as desks_schemas
from telephony.incidents import console as incidents_console
from telephony.incidents import http as incidents_http
from telephony.incidents import schemas as incidents_schemas
from telephony.reports import schemas as reports_schemas
from telephony.screening import http as screening_http
from telephony.screening import schemas as screening_schemas
from telephony.supervision import schemas as supervision_schemas
from telephony.transfers import schemas as transfers_schemas
from telephony.wallboard import schemas as wallboard_schemas
from telephony.web.console import pages
from telephony.web.console.render import console_refusal, is_console
from telephony.web.context import CONTEXT, ApiContext
from telephony.web.errors import ApiError, error_middleware, error_response
from telephony.web.forwarded import forwarded_middleware
from telephony.web.nodes import NODE_FORWARDER, NodeForwarder, node_middleware
from telephony.web.request import json_response
from telephony.web.routing import EVERYONE, ROUTE_TABLE, Reply, Route, RouteTable
from telephony.web.schemas import SHELL_SCHEMAS, Schema, registry
from telephony.web.security import security_middleware

log = logging.getLogger("telephony.web")

# Requests in flight (an audio stream) get this long to finish when the line stops.
SHUTDOWN_SECONDS = 3.0
# The longest request line and header line the server reads. The HTTPS front refuses (in
# our JSON) a line past its own 8 KB buffers; whatever it passes on must not trip the
# server's English plain-text 400 instead (aiohttp's default, 8190 bytes, is just below what
# nginx passes, and nginx appends to X-Forwarded-For).
MAX_LINE_BYTES = 8192 + 1024
# The server's own log of requests it cannot read (below).
PROTOCOL_LOG = logging.getLogger("telephony.web.protocol")


class UnreadableRequests(logging.Filter):
    """aiohttp answers a request it cannot parse as HTTP (a request line or header past its
    limits, a malformed chunk, Content-Length with Transfer-Encoding ...) itself, before any
    route or middleware, and logs it as an error with a traceback. That is the client's fault,
    not ours: one warning line, naming the client and the reason (newlines folded: the reason
    quotes the client's bytes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, web.RequestPayloadError):
            # A body it cannot decode, met again as aiohttp drains it after our 400.
            error = error.__cause__
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            reason = " ".join(str(error.message).split())[:160]
            # "Error handling request from %s" names the client; a drained body does not.
            client = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
            record.msg = "refused a request that is not readable HTTP from %s: %d %s"
            record.args = (client, error.code, reason)
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


PROTOCOL_LOG.addFilter(UnreadableRequests())


async def openapi(request: web.Request) -> web.StreamResponse:
    """This API's OpenAPI 3.1 description, made from the route table."""
    return json_response(request.app[ROUTE_TABLE].openapi(
        title="siaga112 API", version=metadata.version("siaga112")))


def api_routes() -> list[Route]:
    """Every route of the JSON API over the context's services, with who may call it (the
    wallboard's, the reports' and the admin's come with their services, in ``routes``)."""
    return [
        *accounts_http.routes(),
        Route("GET", "/api/openapi.json", openapi, EVERYONE, "Deskripsi OpenAPI ini",
              "sesi", Reply(200, None, {"application/json": {"type": "object"}})),
        *incidents_http.routes(),
        *calls_http.routes(),
        *screening_http.routes(),
        *recordings_http.routes(),
        *desks_http.routes(),
    ]


def api_schemas() -> Mapping[str, Schema]:
    """Every feature's schemas in one registry, the wallboard's, the reports', the admin's and
    the call-backs' too, whether or not their routes are installed: the API's description and
    its checks are then the same in every application. Raises ``ValueError`` on a name
    declared twice."""
    return registry(
        SHELL_SCHEMAS,
        accounts_schemas.SCHEMAS,
        incidents_schemas.SCHEMAS,
        calls_schemas.SCHEMAS,
        screening_schemas.SCHEMAS,
        recordings_schemas.SCHEMAS,
        desks_schemas.SCHEMAS,
        reports_schemas.SCHEMAS,
        wallboard_schemas.SCHEMAS,
        supervision_schemas.SCHEMAS,
        admin_schemas.SCHEMAS,
        transfers_schemas.SCHEMAS,
        callbacks_schemas.SCHEMAS,
    )


def console_routes() -> list[Route]:
    """Every page and form of the console over the context's services: the shell's, then
    the features'."""
    return [
        *pages.routes(),
        *desks_console.routes(),
        *incidents_console.routes(),
        *accounts_console.routes(),
    ]


def _answer(request: web.Request, error: ApiError) -> web.StreamResponse:
    """The console's refusals are pages; the API's are JSON."""
    if is_console(request.path):
        return console_refusal(request, error)
    return error_response(error)


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # Caller data and recordings must not linger in shared or browser caches.
    headers.setdefault("Cache-Control", "no-store")
    # aiohttp's default names Python's and its own version: which advisories apply.
    headers["Server"] = "siaga112"


def build_app(context: ApiContext, routes: Iterable[Route] = (), *,
              nodes: NodeForwarder | None = None) -> web.Application:
    """The application: the JSON API, the console's pages and ``routes``, every one behind
    the security middleware and its access policy, in one route table with every feature's
    schemas (a route naming a schema none declares is refused here, before serving).
    Refusals are answered by one middleware: pages on the console, JSON elsewhere. On a
    cluster node, ``nodes`` hands a request acting on another node's call to that node's
    line, once it has passed the security checks here."""
    # The client's address is settled first, so refusals and their log lines name it too.
    app = web.Application(middlewares=[forwarded_middleware, error_middleware(_answer),
                                       security_middleware, node_middleware])
    app[CONTEXT] = context
    if nodes is not None:
        app[NODE_FORWARDER] = nodes
    RouteTable([*api_routes(), *console_routes(), *routes], api_schemas()).install(app)
    app.on_response_prepare.append(_security_headers)
    return app


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is accepted, its descriptor freed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def open_descriptors() -> int | None:
    """How many files this process has open (Linux), or None if it cannot be told: even the
    listing needs a descriptor."""
    try:
        return sum(1 for _ in Path("/proc/self/fd").iterdir())
    except OSError:
        return None


class _CappedSite(web.BaseSite):
    """aiohttp's TCP site, refusing connections while the process has half of the files it
    may open (``RLIMIT_NOFILE``) open.

    Why: the console and the API share the process's file descriptors with what records the
    calls: the pools' connections to PostgreSQL, the spool's files, the recordings worker's
    pipes, AMI's reconnection. A flood of connections (a client opening sockets and never
    closing them, hundreds of tabs) took them all: PostgreSQL could not be reached nor the
    spool written for as long as the flood lasted. Past the mark a connection is closed as
    soon as it is accepted, so the other half stays the line's. The process's own count, not
    the server's: asyncio accepts a burst of connections before the first of them is
    registered, and the line's own files come first anyway.
    """

    __slots__ = ("_host", "_port", "_said_at", "_unsaid")

    def __init__(self, runner: web.BaseRunner, host: str, port: int) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._said_at: float | None = None  # when refusals were last logged
        self._unsaid = 0  # refusals since

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None  # set up before any site starts
        limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        opened = open_descriptors()
        if opened is not None and opened < limit // 2:
            return server()
        # A flood comes back as fast as it is refused: one line a minute, with the count.
        self._unsaid += 1
        now = time.monotonic()
        if self._said_at is None or now - self._said_at >= REPEAT_SECONDS:
            log.error("HTTP connections refused: %s of the %d files this process may open "
                      "are open, and the other half is kept for recording calls; a flood of "
                      "connections (%d open), or clients that do not close them; %d refused "
                      "since the last such line", opened if opened is not None else "all",
                      limit, len(server.connections), self._unsaid)
            self._said_at = now
            self._unsaid = 0
        return _Refused()

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, self._host, self._port, backlog=self._backlog)


class WebServer:
    """Serves an application on ``host:port`` (port 0: any free port), refusing connections
    while half of the process's files are open (:class:`_CappedSite`)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` if the address cannot be bound."""
        # A request aiohttp cannot parse never reaches the application: aiohttp answers it
        # with its own English text/plain 400 from RequestHandler.handle_error, which no
        # public hook can change (no middleware runs, nor on_response_prepare: the request
        # has no route; the handler class is fixed in aiohttp's Server). Its log line is
        # ours (``logger``, a documented parameter), and the limits sit above the front's.
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_SECONDS, logger=PROTOCOL_LOG,
                               max_line_size=MAX_LINE_BYTES, max_field_size=MAX_LINE_BYTES)
        await runner.setup()
        guard_accepts()  # a flood of connections: one log line, not 140 tracebacks a second
        try:
            await _CappedSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("HTTP API and console listening on %s", self.url)

    @property
    def app(self) -> web.Application:
        """The application served (its route table, for tests that sweep every route)."""
        return self._app

    @property
    def port(self) -> int | None:
        """The bound port, while serving."""
        if self._runner is None or not self._runner.addresses:
            return None
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str | None:
        """``http://host:port`` while serving."""
        port = self.port
        return f"http://{self._host}:{port}" if port is not None else None

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
