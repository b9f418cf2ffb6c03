"""The line container's health check (the compose files' ``healthcheck``, through
``siaga112-entrypoint healthcheck``): ``python3 -m telephony.metrics.probe`` exits 0 when the
line is healthy, 1 with one line saying why when it is not.

Healthy means the line does its own part of a call: its HTTP server answers ``/readyz``
within the bound, and of the parts it reports, those that are the line's own are up (FastAGI
listens, the call facts have somewhere durable to go). The database and Asterisk's AMI are
other containers' (each with a health check of its own): a line whose database is away still
takes calls and spools their facts, and one whose Asterisk is away has no calls to take, so
neither makes the line unhealthy; anything that acted on "unhealthy" (a restart, a
``depends_on``) would otherwise take a working line's calls away, and ``docker-compose ps``
would point at the wrong container.

Only the standard library: it runs every few seconds next to the line, so it must start
fast and never import the line itself.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Final

from telephony.core.addresses import ANY_ADDRESS

# The /readyz parts that are another container's, and which one.
ELSEWHERE: Final = {"database": "postgres", "ami": "asterisk"}
TIMEOUT: Final = 3.0


def readyz_url(environ: Mapping[str, str]) -> str:
    """Where the line's /readyz answers in its container: the HTTP address the compose file
    sets (SIAGA112_HTTP_HOST, SIAGA112_HTTP_PORT), loopback when it listens on every
    address."""
    host = environ.get("SIAGA112_HTTP_HOST", "127.0.0.1").strip()
    if host in ANY_ADDRESS:  # never bound here: asked on loopback instead
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = environ.get("SIAGA112_HTTP_PORT", "8112").strip() or "8112"
    return f"http://{host}:{port}/readyz"


def verdict(status: int, body: bytes) -> str | None:
    """Why a /readyz answer makes the line unhealthy, or None when it is healthy."""
    try:
        reply = json.loads(body)
        parts = reply["parts"]
        down = sorted(name for name, state in parts.items() if state != "ok")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"/readyz answered {status} with no parts"
    own = [name for name in down if name not in ELSEWHERE]
    if own:
        return f"the line's own parts are down: {', '.join(own)}"
    return None


def probe(url: str, timeout: float = TIMEOUT) -> str | None:
    """Ask /readyz once; why the line is unhealthy, or None."""
    try:
        # An http: URL made by readyz_url, never a file: or other scheme.
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return verdict(response.status, response.read())
    except urllib.error.HTTPError as exc:  # 503: some part is down, maybe not the line's own
        with exc:
            return verdict(exc.code, exc.read())
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"{url} did not answer: {exc}"


def main() -> int:
    url = readyz_url(os.environ)
    reason = probe(url)
    if reason is not None:
        print(f"unhealthy: {reason}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
