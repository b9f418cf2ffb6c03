"""Hostile input at every route of the whole line, over HTTP, against a real PostgreSQL: no
request, with or without a login, gets a 500; each refusal is a 4xx with the usual error body.

The routes come from the running line's own route table, so a route added later is swept too.
Each is called by an account of a role it serves (or by nobody, when it is public), with
hostile path ids, query parameters and JSON bodies, and with bytes that are not UTF-8 in its
Authorization header.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from yarl import URL

from telephony.accounts.model import Role
from telephony.ami.testing import SECRET, USERNAME, fake_asterisk
from telephony.app import Line, running_line
from telephony.settings import Settings
from telephony.web.context import CONTEXT
from telephony.web.routing import ROUTE_TABLE, Route
from tests.support.ami import eventually
from tests.support.web import PASSWORD

# Path ids as they travel, percent-encoded: NUL, a lone surrogate as UTF-8 would have it
# (not valid UTF-8), a newline, digits of another script, a huge number, a dot path.
HOSTILE_IDS: Final = ("1%00", "%ED%A0%80", "1%0A", "%D9%A1%D9%A2", "9" * 40, "%FF%FE",
                      "-1", "0", "1.5", "--x", "%E2%80%AE1", "%C3%A9", "9223372036854775808")
# "9" * 5000: past 4300 digits Python's int() refuses the text with a ValueError of its own.
HOSTILE_VALUES: Final = ("a%00b", "%ED%A0%80", "9999-12-31", "9999-12-31T23:59:59%2B00:00",
                         "0001-01-01T00:00:00-23:59", "9" * 30, "9" * 5000)
HOSTILE_TEXTS: Final = ("a\x00b", "\ud800", "9999-12-31", "PJSIP/op1001\n", "--x", "-f",
                        "nama\nbaris", "\u202eanirS", "\u0661\u0662", "x" * 100_000, "9" * 5000)
# Values of the wrong type, put in every field of a body in turn.
WRONG_TYPES: Final[tuple[Any, ...]] = (None, True, -1, 10 ** 30, 1.5, -0.0, [], {}, ["x"],
                                       {"x": 1}, "")
# Bodies that are not a JSON object of the route's shape at all.
MALFORMED: Final = ("", "{not json", "null", "[]", '"x"', "1e999999", "{}", '{"x": 1}',
                    '{"a": 1, "a": 2}', "\ufeff{}", "{" + '"k": 1, ' * 50_000 + '"k": 1}')
# Console forms (url-encoded): NUL, bytes that are not UTF-8, a newline in next=.
FORM: Final = "form:"
HOSTILE_FORMS: Final = ("note=a%00b&next=%2Fconsole%2F", "note=%ED%A0%80&reason=%FF",
                        "call_id=1.1&next=%2Fconsole%2Foperator%0A", "a%00=1")
DEEP: Final = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT: Final = '{"a":' * 50_000 + "1" + "}" * 50_000


@pytest.fixture
async def line(line_settings: Settings) -> AsyncIterator[Line]:
    """The whole line, logged in to a fake Asterisk (with none, the pages that ask Asterisk
    wait out their AMI timeout on every request)."""
    # The sweep's hostile logins fail by the hundred from one address: not throttled here
    # (the throttle has tests of its own), or the roles' logins would be refused.
    settings = replace(line_settings, ami_username=USERNAME, ami_secret=SECRET,
                       login_max_failures=1_000_000, login_max_failures_per_address=1_000_000)
    async with fake_asterisk(settings.ami_port), running_line(settings) as started:
        await eventually(lambda: started.listener.logged_in)
        yield started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Tokens:
    """A bearer token per role, logged in again whenever a route logged it out."""

    def __init__(self, line: Line, http: aiohttp.ClientSession) -> None:
        self._base = str(line.web.url)
        self._http = http
        self._tokens: dict[Role, str] = {}

    async def headers(self, route: Route) -> dict[str, str]:
        if route.access.public:
            return {}
        role = min(route.access.roles)
        if role not in self._tokens:
            async with self._http.post(f"{self._base}/api/session", json={
                    "username": f"sweep-{role.value}", "password": PASSWORD}) as response:
                assert response.status == 201, await response.text()
                self._tokens[role] = (await response.json())["token"]
        return {"Authorization": f"Bearer {self._tokens[role]}"}

    def forget(self) -> None:
        self._tokens.clear()


def hostile_paths(route: Route) -> Iterator[str]:
    """The route's path with each hostile id in every parameter."""
    if not route.path_params:
        yield route.path
        return
    for value in HOSTILE_IDS:
        path = route.path
        for name in route.path_params:
            path = path.replace(f"{{{name}}}", value)
        yield path


def hostile_queries(route: Route) -> Iterator[str]:
    names = [param.name for param in route.query] + ["%ED%A0%80"]
    for name in names:
        for value in HOSTILE_VALUES:
            yield f"{name}={value}"


def hostile_value(schema: Any, text: str) -> Any:
    """A value of the schema's type (as far as a plain walk sees it) carrying ``text``."""
    kinds = schema.get("type", "string") if isinstance(schema, dict) else "string"
    kind = kinds if isinstance(kinds, str) else kinds[0]
    if kind == "object":
        return {name: hostile_value(item, text)
                for name, item in schema.get("properties", {}).items()} or {text: text}
    if kind == "array":
        return [hostile_value(schema.get("items", {}), text)]
    if kind in ("integer", "number"):
        return 10 ** 30
    if kind == "boolean":
        return True
    return text


def plausible_value(schema: Any) -> Any:
    """A value of the schema's type with nothing wrong in it but what a test puts there."""
    kinds = schema.get("type", "string") if isinstance(schema, dict) else "string"
    kind = kinds if isinstance(kinds, str) else kinds[0]
    if isinstance(schema, dict) and schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        return {name: plausible_value(item)
                for name, item in schema.get("properties", {}).items()}
    if kind == "array":
        return [plausible_value(schema.get("items", {}))]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return "1"


def hostile_bodies(route: Route, schemas: Any) -> Iterator[str]:
    yield DEEP
    yield DEEP_OBJECT
    yield from MALFORMED
    if route.body is not None and route.body.schema is not None:
        schema = schemas[route.body.schema]
        for text in HOSTILE_TEXTS:
            yield json.dumps(hostile_value(schema, text))
        # One field hostile at a time, the others plausible, so that the check of each field
        # is reached (with every field hostile, the first refusal hides the rest).
        plausible = plausible_value(schema)
        if isinstance(plausible, dict):
            for name in plausible:
                for value in (*HOSTILE_TEXTS, *WRONG_TYPES):
                    yield json.dumps({**plausible, name: value})
                yield json.dumps({k: v for k, v in plausible.items() if k != name})
            yield json.dumps({**plausible, "--extra": 1})


def ok_refusal(path: str, status: int, body: bytes, method: str = "GET") -> bool:
    """Below 500, and a refusal of the API carries the usual error body, its message in
    words (not a Python repr or a traceback); a HEAD's answer carries no body at all."""
    if status >= 500:
        return False
    if method == "HEAD":
        return body == b""
    if status < 400 or not path.startswith("/api/"):
        return True
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    message = error.get("message")
    return (isinstance(error.get("code"), str) and isinstance(message, str) and bool(message)
            and "Traceback" not in message and "Error(" not in message)


async def raw_request(line: Line, request: bytes) -> tuple[int, bytes]:
    """One request as bytes (headers that are not UTF-8), its status and body."""
    assert line.web.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", line.web.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(head.split(b" ", 2)[1]), body


async def sweep(line: Line, http: aiohttp.ClientSession, tokens: Tokens, route: Route
                ) -> list[str]:
    """Every hostile request at ``route``; what was not a proper refusal."""
    schemas = line.web.app[ROUTE_TABLE].schemas
    base = str(line.web.url)
    requests: list[tuple[str, str | None]] = [(path, None) for path in hostile_paths(route)]
    plain = next(hostile_paths(route))
    requests += [(f"{plain}?{query}", None) for query in hostile_queries(route)]
    if route.method in ("POST", "PUT", "PATCH"):
        requests += [(plain, body) for body in hostile_bodies(route, schemas)]
        requests += [(plain, FORM + form) for form in HOSTILE_FORMS]
    failures: list[str] = []
    for path, body in requests:
        headers = await tokens.headers(route)
        data = body
        if body is not None and body.startswith(FORM):
            data = body.removeprefix(FORM)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            headers["Content-Type"] = "application/json"
        async with http.request(route.method, URL(base + path, encoded=True), headers=headers,
                                data=data, allow_redirects=False) as response:
            answer = await response.read()
            if response.status == 401:
                tokens.forget()
        if not ok_refusal(path, response.status, answer, route.method):
            failures.append(f"{route.method} {path} {(body or '')[:60]!r}: "
                            f"{response.status} {answer[:120]!r}")
    # The Authorization header in bytes that are not UTF-8.
    for token in (b"Bearer \xff\xfe\xed\xa0\x80", b"\xc3"):
        status, answer = await raw_request(line, (
            f"{route.method} {plain} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Content-Length: 0\r\nAuthorization: ").encode() + token + b"\r\n\r\n")
        if not ok_refusal(plain, status, answer, route.method):
            failures.append(f"{route.method} {plain} Authorization {token!r}: {status} "
                            f"{answer[:120]!r}")
    return failures


# What a refused request may still write (its session, its audit entry, the login throttle),
# and what the line writes in the background meanwhile (the reports' roll-up, every 10 s).
UNCHANGED_EXCEPT: Final = ("sessions", "audit_log", "login_failures", "schema_migrations",
                           "report_rollup_slots")


async def database_state(line: Line) -> dict[str, list[str]]:
    """Every table's rows (as text, sorted), but those a refusal may write."""
    connection = await asyncpg.connect(line.settings.database_owner_dsn
                                       or line.settings.database_dsn)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        state = {}
        for row in tables:
            name = row["tablename"]
            if name not in UNCHANGED_EXCEPT:
                rows = await connection.fetch(f'SELECT t::text FROM "{name}" t')
                state[name] = sorted(r[0] for r in rows)
        return state
    finally:
        await connection.close()


async def wrong_methods(line: Line, http: aiohttp.ClientSession, tokens: Tokens,
                        routes: list[Route]) -> list[str]:
    """Each path with every method it does not serve: a 4xx, never a 500."""
    served: dict[str, set[str]] = {}
    for route in routes:
        served.setdefault(route.path, set()).add(route.method)
    failures = []
    for path, methods in served.items():
        route = next(r for r in routes if r.path == path)
        concrete = next(hostile_paths(route)).replace("1%00", "1")
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - methods):
            async with http.request(method, URL(str(line.web.url) + concrete, encoded=True),
                                    headers=await tokens.headers(route), data="{}",
                                    allow_redirects=False) as response:
                answer = await response.read()
            if not 400 <= response.status < 500:
                failures.append(f"{method} {concrete}: {response.status} {answer[:120]!r}")
    return failures


async def test_no_route_answers_hostile_input_with_a_500(
        line: Line, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    app = line.web.app
    for role in Role:
        await app[CONTEXT].accounts.create(f"sweep-{role.value}", role.value, PASSWORD,
                                           actor="test")
    routes = app[ROUTE_TABLE].routes
    assert len(routes) > 90
    tokens = Tokens(line, http)
    logged_out = [r for r in routes if (r.method, r.path) in (
        ("DELETE", "/api/session"), ("POST", "/console/logout"))]
    assert len(logged_out) == 2
    # Eight routes at a time (each request after the other); logging out last and alone, so
    # the others are swept with live sessions.
    gate = asyncio.Semaphore(8)
    before = await database_state(line)
    caplog.set_level(logging.WARNING)

    async def one(route: Route) -> list[str]:
        async with gate:
            return await sweep(line, http, tokens, route)

    found = await asyncio.gather(*(one(r) for r in routes if r not in logged_out))
    failures = [failure for part in found for failure in part]
    failures += await wrong_methods(line, http, tokens,
                                    [r for r in routes if r not in logged_out])
    for route in logged_out:
        failures += await sweep(line, http, tokens, route)
    # No request is logged as failed (a 500's traceback), whatever status it was answered.
    failures += [f"logged: {r.name} {r.getMessage()[:200]}" for r in caplog.records
                 if r.name.startswith(("telephony.web", "aiohttp"))
                 and (r.exc_info or r.levelno >= logging.ERROR)]
    assert failures == [], "\n".join(failures[:80]) + f"\n({len(failures)} in all)"
    after = await database_state(line)
    changed = {name: sorted(set(rows) ^ set(before.get(name, []))) for name, rows in after.items()
               if rows != before.get(name)}
    # Explained, not hostile: the line writes its first menu and screening versions (actor
    # "system") when they are first read; a few swept bodies are valid as they stand (an
    # unpublished screening draft of defaults, no dispatch targets at all).
    assert set(changed) <= {"config_versions", "config_publications", "site_settings"}, (
        sorted(changed))
    assert all(",system," in row for row in changed.get("config_publications", [])), changed


# Requests that are not readable HTTP: aiohttp refuses them itself, before any route.
UNREADABLE: Final = {
    "a header name with a space": b"GET /api/incidents HTTP/1.1\r\nHost: x\r\nX A: 1\r\n",
    "an unknown HTTP version": b"GET /api/incidents HTTP/9.1\r\nHost: x\r\n",
    "too many headers": b"GET /api/incidents HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(200)),
    "a request line past 9 KB": b"GET /api/incidents?q=" + b"x" * 9_300 + b" HTTP/1.1\r\n",
    "Content-Length with chunked": b"POST /api/session HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
}
# A body aiohttp cannot decode: the line refuses it (400, bad_body), and aiohttp, draining the
# rest after the answer, meets the same error.
CORRUPT_GZIP: Final = (b"POST /api/session HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n"
                       b"Content-Encoding: gzip\r\nContent-Length: 20\r\n"
                       b"Connection: close\r\n\r\n" + b"x" * 20)


async def test_an_unreadable_request_is_one_warning_line_and_what_the_front_passes_is_read(
        line: Line, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp answers a request it cannot parse with its own 400 and logged each as an
    ERROR with a traceback: any client could fill the log. One warning line now, naming the
    client and the reason. And a request line or header the HTTPS front lets through (its
    buffers are 8 KB, and it appends to X-Forwarded-For) is read by the line, which answers
    in its own words, where aiohttp's limit (8190 bytes) answered English plain text."""
    caplog.set_level(logging.DEBUG, logger="telephony.web")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    for why, request in UNREADABLE.items():
        status, _ = await raw_request(line, request + b"Connection: close\r\n\r\n")
        assert (why, status) == (why, 400)
    status, body = await raw_request(line, CORRUPT_GZIP)
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_body"
    logged = [r for r in caplog.records if r.name.startswith(("telephony.web", "aiohttp"))]
    assert [r for r in logged if r.exc_info or r.levelno >= logging.ERROR] == []
    refused = [r.getMessage() for r in logged if "not readable HTTP" in r.getMessage()]
    assert len(refused) >= len(UNREADABLE), refused
    # (The drained body's line cannot name the client: aiohttp's own log of it does not.)
    assert all(("from 127.0.0.1: 400 " in message or "from -: 400 " in message)
               and "\n" not in message for message in refused), refused
    # Just inside what nginx passes: the line's own refusal, in JSON (an unknown parameter;
    # no session).
    long_query = "/api/incidents?q=" + "x" * 8_150
    long_header = "X-Forwarded-For: " + "1" * 8_150 + ", 127.0.0.1"
    for passed in (f"GET {long_query} HTTP/1.1\r\nHost: x\r\n",
                   f"GET /api/incidents HTTP/1.1\r\nHost: x\r\n{long_header}\r\n"):
        status, body = await raw_request(line, (passed + "Connection: close\r\n\r\n").encode())
        assert status == 401 and ok_refusal("/api/incidents", status, body), (status, body)
