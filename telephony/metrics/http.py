"""``GET /metrics`` for Prometheus, ``GET /healthz`` (the process answers) and
``GET /readyz`` (the database, AMI and FastAGI are up; 503 naming what is down).

Prometheus scrapes without a session, so the three are public in the route table; /metrics is
then answered only to clients at ``metrics_allowed_addresses`` (loopback by default; the
address as ``telephony.web.forwarded`` settled it, so a spoofed header behind the front does
not help). None of them carries caller data.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from telephony.metrics.health import Readiness
from telephony.metrics.registry import LineMetrics
from telephony.web.context import Network
from telephony.web.errors import ApiError
from telephony.web.forwarded import is_within
from telephony.web.request import json_response
from telephony.web.routing import PUBLIC, Reply, Route

TAG = "pemantauan"
_TEXT = {"text/plain": {"type": "string"}}
_STATUS = {"application/json": {"type": "object"}}


class MonitoringApi:
    """The monitoring routes over the line's metrics and readiness."""

    def __init__(self, metrics: LineMetrics, readiness: Readiness,
                 allowed: Sequence[Network]) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._allowed = tuple(allowed)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """The line's metrics in Prometheus' text format (or OpenMetrics, if asked)."""
        if not is_within(request.remote, self._allowed):
            raise ApiError(403, "forbidden", "Metrik hanya untuk alamat pemantau yang diizinkan "
                                             "(metrics_allowed_addresses).")
        body, content_type = await self._metrics.render(request.headers.get("Accept", ""))
        response = web.Response(body=body)
        # Set whole: aiohttp's content_type setter would drop the version parameter.
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(self, _: web.Request) -> web.StreamResponse:
        """The process is alive and answers."""
        return json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.StreamResponse:
        """Whether the line can take calls with everything it has: 200, or 503 naming the
        parts that are down."""
        parts = await self._readiness.check()
        down = sorted(name for name, up in parts.items() if not up)
        return json_response({
            "status": "down" if down else "ok",
            "parts": {name: "ok" if up else "down" for name, up in sorted(parts.items())},
            "down": down,
        }, status=503 if down else 200)

    def routes(self) -> list[Route]:
        """The three routes, public in the table (see the module's note on /metrics); the
        table answers HEAD on each as on its GET, which uptime checkers and load balancers
        probe with."""
        return [
            Route("GET", "/metrics", self.metrics, PUBLIC, "Metrik Prometheus", TAG,
                  Reply(200, None, _TEXT), errors=(403,)),
            Route("GET", "/healthz", self.healthz, PUBLIC, "Proses hidup", TAG,
                  Reply(200, None, _STATUS)),
            Route("GET", "/readyz", self.readyz, PUBLIC, "Siap menerima panggilan", TAG,
                  Reply(200, None, _STATUS), errors=(503,)),
        ]
