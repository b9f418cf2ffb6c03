"""The web application (the JSON API and the console) and the server that runs it beside the
rest of the line."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from telephony.web.api import api_routes
from telephony.web.console.pages import console_routes
from telephony.web.console.render import console_middleware
from telephony.web.context import CONTEXT, ApiContext
from telephony.web.errors import error_middleware
from telephony.web.routing import Route, RouteTable
from telephony.web.security import security_middleware

log = logging.getLogger("telephony.web")

# Requests in flight (an audio stream) get this long to finish when the line stops.
SHUTDOWN_SECONDS = 3.0


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # Caller data and recordings must not linger in shared or browser caches.
    headers.setdefault("Cache-Control", "no-store")


def build_app(context: ApiContext, routes: Iterable[Route] = ()) -> web.Application:
    """The application: the JSON API, the console's pages and ``routes``, every one behind
    the security middleware and its access policy. The console's refusals are pages (its
    middleware sits inside the JSON one, so it sees them first)."""
    app = web.Application(
        middlewares=[error_middleware, console_middleware, security_middleware])
    app[CONTEXT] = context
    RouteTable([*api_routes(), *console_routes(), *routes]).install(app)
    app.on_response_prepare.append(_security_headers)
    return app


class WebServer:
    """Serves an application on ``host:port`` (port 0: any free port)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` if the address cannot be bound."""
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("HTTP API and console listening on %s", self.url)

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
