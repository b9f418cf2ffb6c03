"""The HTTPS front (docker/nginx/siaga112.conf, rendered by docker/nginx/render-site) in
front of a whole running line, on loopback ports: Debian's nginx with the self-signed
certificate made on first start, an HTTPS login whose Secure cookies and forwarded client
address (not the front's, nor a spoofed one) reach the audit log, the wallboard's WebSocket
through the upgrade, browser softphones' WebSocket to Asterisk at /sip-ws, and /metrics kept
off the front.

The client connects from 127.0.0.2 and nginx from 127.0.0.1, so the line can tell them
apart while every packet stays on the loopback. nginx is required (scripts/setup installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from telephony.accounts.service import AccountConfig, AccountService
from telephony.app import running_line
from telephony.settings import Settings
from tests.support.db import fetch
from tests.support.net import free_port
from tests.support.web import CHEAP_HASHER, PASSWORD

DOCKER = Path(__file__).resolve().parents[2] / "docker" / "nginx"
CLIENT_ADDRESS = "127.0.0.2"
SPOOFED = "198.51.100.7"
WAIT = 10.0


@dataclass(frozen=True)
class Front:
    """A running nginx front: its HTTPS and HTTP ports and the certificate it serves."""

    https_port: int
    http_port: int
    certificate: Path


def render(tmp: Path, upstream: str, max_bytes: int, asterisk_port: int) -> Front:
    """The site as the front's container renders it, and an nginx.conf around it that keeps
    every file of nginx's under ``tmp``; ``upstream`` is the line's host:port, or a cluster's
    lines, comma-separated."""
    front = Front(free_port(), free_port(), tmp / "tls" / "fullchain.pem")
    environment = {
        **os.environ,
        "SIAGA112_UPSTREAM": upstream,
        "SIAGA112_HTTPS_LISTEN": f"127.0.0.1:{front.https_port}",
        "SIAGA112_HTTP_LISTEN": f"127.0.0.1:{front.http_port}",
        "SIAGA112_TLS_DIR": str(tmp / "tls"),
        "SIAGA112_TLS_NAME": "127.0.0.1",
        "SIAGA112_ATTACHMENT_MAX_BYTES": str(max_bytes),
        "SIAGA112_ASTERISK_WS": f"127.0.0.1:{asterisk_port}",
    }
    subprocess.run([DOCKER / "render-site", DOCKER / "siaga112.conf", tmp / "site.conf"],
                   env=environment, check=True, timeout=60)
    assert front.certificate.exists()  # made on this first start
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers write temp files under tmp
    (tmp / "nginx.conf").write_text(f"""{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
""")
    return front


@pytest.fixture
def nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        pytest.fail("nginx is missing: scripts/setup installs Debian's nginx")
    return found


@pytest.fixture
def front_settings(line_settings: Settings) -> Settings:
    return replace(line_settings, http_port=free_port(), http_cookie_secure=True,
                   http_trusted_proxies=("127.0.0.1/32",), asterisk_http_port=free_port())


@pytest.fixture
def running_nginx(nginx: str, tmp_path: Path, front_settings: Settings) -> Iterator[Front]:
    """nginx with the rendered site in front of the line."""
    (tmp_path / "nginx").mkdir()
    front = render(tmp_path / "nginx", f"127.0.0.1:{front_settings.http_port}",
                   front_settings.attachment_max_bytes, front_settings.asterisk_http_port)
    with serving(nginx, tmp_path / "nginx", front):
        yield front


@contextlib.contextmanager
def serving(nginx: str, directory: Path, front: Front) -> Iterator[Front]:
    """nginx running the site rendered into ``directory``, checked with ``nginx -t`` first,
    stopped afterwards."""
    command = [nginx, "-p", str(directory), "-e", str(directory / "error.log"),
               "-c", str(directory / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stderr
    # Its errors go to error.log under tmp_path (-e and error_log).
    process = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        yield front
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=WAIT)


async def until_listening(port: int) -> None:
    """Bounded: nginx binds its ports within a moment of starting."""
    async with asyncio.timeout(WAIT):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


@pytest.fixture
async def browser(running_nginx: Front) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser at 127.0.0.2 that trusts the front's self-signed certificate."""
    await until_listening(running_nginx.https_port)
    context = ssl.create_default_context(cafile=str(running_nginx.certificate))
    connector = aiohttp.TCPConnector(ssl=context, local_addr=(CLIENT_ADDRESS, 0))
    async with aiohttp.ClientSession(
            base_url=f"https://127.0.0.1:{running_nginx.https_port}", connector=connector,
            cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_https_login_through_the_front_reaches_the_audit_log_with_the_client(
    front_settings: Settings, running_nginx: Front, browser: aiohttp.ClientSession,
    database_dsn: str
) -> None:
    async with running_line(front_settings) as line:
        accounts = AccountService(line.database, CHEAP_HASHER, AccountConfig())
        await accounts.create("sari", "supervisor", PASSWORD, actor="test")
        response = await browser.post("/api/session", headers={"X-Forwarded-For": SPOOFED},
                                      json={"username": "sari", "password": PASSWORD})
        assert response.status == 201, await response.text()
        cookies = response.headers.getall("Set-Cookie")
        assert cookies and all("Secure" in cookie for cookie in cookies), cookies

        # The wallboard's WebSocket, upgraded through the front, on the session cookie.
        async with browser.ws_connect("/api/wallboard/live") as socket:
            message = await socket.receive(timeout=WAIT)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            assert "operators" in message.json()

        async with browser.get("/metrics") as metrics:
            assert metrics.status == 404  # scraped on the site's network, not through here
        async with browser.get("/readyz") as ready:
            assert "database" in (await ready.json())["parts"]

    rows = await fetch(database_dsn, "SELECT remote_address FROM audit_log "
                                     "WHERE action = 'login'")
    assert [row["remote_address"] for row in rows] == [CLIENT_ADDRESS]


async def test_browser_softphones_reach_asterisks_websocket_at_the_sites_origin(
    front_settings: Settings, running_nginx: Front, browser: aiohttp.ClientSession
) -> None:
    """/sip-ws is Asterisk's own WebSocket (here a stand-in for its /ws on the plain loopback
    port), upgraded through the front with SIP's subprotocol, not the line's."""

    async def asterisk_ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=("sip",))
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(f"{request.path} {message.data}")
        return socket

    app = web.Application()
    app.router.add_get("/ws", asterisk_ws)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", front_settings.asterisk_http_port).start()
    try:
        async with browser.ws_connect("/sip-ws", protocols=("sip",)) as socket:
            assert socket.protocol == "sip"
            await socket.send_str("REGISTER sip:siaga112 SIP/2.0")
            message = await socket.receive(timeout=WAIT)
            assert message.data == "/ws REGISTER sip:siaga112 SIP/2.0"
    finally:
        await runner.cleanup()


async def test_the_fronts_own_refusals_are_json_in_indonesian_and_name_no_version(
    front_settings: Settings, running_nginx: Front, browser: aiohttp.ClientSession
) -> None:
    """nginx refuses a request line or a header past its buffers before the line sees it: an
    API client got nginx's English HTML page, and every answer (those pages too) named
    nginx's version. No line runs here: nginx answers all of these itself."""
    refusals = {
        "/api/incidents?q=" + "x" * 10_000: ({}, 414, "uri_too_long"),
        "/api/incidents": ({"X-Long": "y" * 10_000}, 400, "bad_request"),
        "/metrics": ({}, 404, "not_found"),
    }
    for path, (headers, status, code) in refusals.items():
        async with browser.get(path, headers=headers) as response:
            assert (path[:20], response.status) == (path[:20], status)
            assert response.content_type == "application/json"
            error = (await response.json())["error"]
            assert error["code"] == code and error["field"] is None
            assert "terlalu" in error["message"] or "tidak" in error["message"]
            assert response.headers["Server"] == "nginx"
    # A body past client_max_body_size (the line's limit and the multipart framing): nginx
    # refuses it on its Content-Length, before a byte of it is sent.
    context = ssl.create_default_context(cafile=str(running_nginx.certificate))
    reader, writer = await asyncio.open_connection("127.0.0.1", running_nginx.https_port,
                                                   ssl=context)
    try:
        writer.write(f"POST /api/incidents/1/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Length: {front_settings.attachment_max_bytes + 100_000}\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n".encode())
        await writer.drain()
        head, _, body = (await asyncio.wait_for(reader.read(4096), WAIT)).partition(
            b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert json.loads(body)["error"]["code"] == "too_large"
    # Its own pages (the line down: 502) name no version either.
    async with browser.get("/console/") as response:
        assert response.headers["Server"] == "nginx"
        assert "nginx/" not in await response.text()


async def test_plain_http_is_sent_to_https(running_nginx: Front) -> None:
    await until_listening(running_nginx.http_port)
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{running_nginx.http_port}/console/",
            allow_redirects=False) as response:
        assert response.status == 301
        assert response.headers["Location"] == "https://127.0.0.1/console/"


async def test_a_clusters_lines_behind_the_front_answer_in_turn_and_for_each_other(
        nginx: str, tmp_path: Path) -> None:
    """docker-compose.cluster.yml's front: both lines listed (SIAGA112_UPSTREAM), requests go
    to either, and all to the other while one is down."""

    def line(name: str) -> web.Application:
        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text=name)
        app = web.Application()
        app.router.add_get("/healthz", healthz)
        return app

    ports = [free_port(), free_port()]
    runners = [web.AppRunner(line(name)) for name in ("line1", "line2")]
    try:
        for runner, port in zip(runners, ports, strict=True):
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        front = render(tmp_path, ",".join(f"127.0.0.1:{port}" for port in ports), 1024,
                       free_port())
        with serving(nginx, tmp_path, front):
            await until_listening(front.https_port)
            context = ssl.create_default_context(cafile=str(front.certificate))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
                async def answers() -> set[str]:
                    found = set()
                    for _ in range(4):
                        async with http.get(f"https://127.0.0.1:{front.https_port}/healthz"
                                            ) as response:
                            assert response.status == 200, await response.text()
                            found.add(await response.text())
                    return found

                assert await answers() == {"line1", "line2"}
                await runners[0].cleanup()
                assert await answers() == {"line2"}
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("SIAGA112_UPSTREAM", "127.0.0.1:1;include /etc/shadow", "not host:port"),
    # The same values went into the site unchecked: a stray ';' or '}' in .env became
    # nginx configuration (or broke the front with a message about line 80 of a file the
    # admin never wrote).
    ("SIAGA112_ASTERISK_WS", "127.0.0.1:8088/ws; include /etc/shadow;#", "not host:port"),
    ("SIAGA112_HTTPS_LISTEN", "443 ssl; include /etc/shadow;#", "not a listen address"),
    ("SIAGA112_HTTP_LISTEN", "80;}", "not a listen address"),
])
def test_a_value_that_could_add_configuration_is_refused(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    refused = subprocess.run(
        [DOCKER / "render-site", DOCKER / "siaga112.conf", tmp_path / "hostile.conf"],
        env={**os.environ, variable: value, "SIAGA112_TLS_DIR": str(tmp_path / "tls")},
        capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2, refused.stderr
    # The upstream list is split at spaces and commas: its first bad address is named.
    assert refused.stderr.startswith(f"render-site: {variable}: {message}: "), refused.stderr
    assert not (tmp_path / "hostile.conf").exists()


def test_an_ipv6_listen_address_is_rendered(tmp_path: Path) -> None:
    # What the template's comment tells a site to write for IPv6.
    subprocess.run(
        [DOCKER / "render-site", DOCKER / "siaga112.conf", tmp_path / "site.conf"],
        env={**os.environ, "SIAGA112_HTTPS_LISTEN": "[::]:443 ipv6only=off",
             "SIAGA112_TLS_DIR": str(tmp_path / "tls")},
        capture_output=True, text=True, timeout=60, check=True)
    assert "listen [::]:443 ipv6only=off ssl http2;" in (tmp_path / "site.conf").read_text()
