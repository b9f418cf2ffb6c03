"""The HTTP JSON API on a loopback socket over a real PostgreSQL: sessions and roles, CSRF,
login throttling, the incident workflow, bad input that must change nothing, recordings
streamed with Range and audited, uploads streamed within their limit."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from telephony.accounts.model import ThrottlePolicy
from telephony.calls.store import CallRepository
from telephony.db.connection import ANSWER_CHECK_SECONDS, Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.settings import Settings
from telephony.web.context import ApiContext
from telephony.web.routing import CSRF_HEADER, ROUTE_TABLE, SESSION_COOKIE
from telephony.web.server import api_routes, build_app
from tests.support.calls import CALENDAR, call_facts
from tests.support.db import fetch, frozen, incident_state
from tests.support.polling import eventually
from tests.support.web import BIDI_CONTROLS, PASSWORD, conforms, make_context, spoofed

MAX_UPLOAD = 4096
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
FIRE_CALL, SECOND_CALL, OTHER_CALL = "1700000000.1", "1700000100.2", "1700000200.3"


@dataclass
class Api:
    """A running API with its database, services and a client."""

    client: TestClient[web.Request, web.Application]
    context: ApiContext
    settings: Settings
    dsn: str

    async def login(self, username: str, password: str = PASSWORD) -> str:
        """Log in through the API; returns the bearer token (the cookie is kept too)."""
        response = await self.client.post("/api/session",
                                          json={"username": username, "password": password})
        assert response.status == 201, await response.text()
        return str((await response.json())["token"])

    async def account(self, username: str, role: str) -> dict[str, str]:
        """Create an account and log in; returns bearer headers."""
        await self.context.accounts.create(username, role, PASSWORD, actor="test")
        return {"Authorization": f"Bearer {await self.login(username)}"}

    async def audit(self, action: str) -> list[asyncpg.Record]:
        return await fetch(self.dsn, "SELECT * FROM audit_log WHERE action = $1 "
                                     "ORDER BY audit_id", action)


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def api_factory(database_dsn: str, settings: Settings) -> AsyncIterator[ApiFactory]:
    """Starts the API (once per test) with the given throttle policy and extra routes."""
    configured = replace(settings, database_dsn=database_dsn, attachment_max_bytes=MAX_UPLOAD)
    database = Database(configured)
    connection = await asyncpg.connect(database_dsn)
    try:
        for call_id, caller in ((FIRE_CALL, "081111111111"), (SECOND_CALL, "082222222222"),
                                (OTHER_CALL, "083333333333")):
            await CallRepository(CALENDAR).apply(connection, call_facts(call_id, caller))
    finally:
        await connection.close()
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(throttle: ThrottlePolicy | None = None,
                    prepare: Callable[[web.Application], None] | None = None) -> Api:
        context = make_context(configured, database, throttle=throttle)
        app = build_app(context)
        if prepare is not None:
            prepare(app)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client, context, configured, database_dsn)

    yield start
    for client in clients:
        await client.close()
    await database.close()


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    return await api_factory()


def concrete(path: str) -> str:
    """A route's path with its parameters filled in."""
    return re.sub(r"\{(\w+)\}", lambda m: FIRE_CALL if m[1] == "call_id" else "1", path)


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await response.json()
    conforms(body, "Error")
    return dict(body["error"])


async def fire_incident(api: Api) -> tuple[dict[str, str], str]:
    """An operator's headers, and the path of the incident they opened for the fire call."""
    op = await api.account("op1", "operator")
    created = await (await api.client.post("/api/incidents", json={"call_id": FIRE_CALL},
                                           headers=op)).json()
    return op, f"/api/incidents/{created['incident_id']}"


# -- sessions, roles, CSRF -------------------------------------------------------------------


async def test_every_route_but_login_is_refused_without_a_session(api: Api) -> None:
    """Every API route; the console's pages are checked in test_console."""
    table = api.client.app[ROUTE_TABLE]
    public = {(r.method, r.path) for r in table.routes
              if r.access.public and r.path.startswith("/api/")}
    assert public == {("POST", "/api/session")}
    registered = list(api.client.app.router.routes())
    assert len(registered) == len(table.routes)
    for route in registered:
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert path is not None
        if (route.method, path) in public or not path.startswith("/api/"):
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-session"}, {"Authorization": "x"}):
            response = await api.client.request(route.method, concrete(path), headers=headers)
            assert response.status == 401, (route.method, path, headers)
            if route.method != "HEAD":  # a HEAD's answer has no body
                assert (await error_of(response))["code"] == "unauthenticated"


async def test_every_get_route_answers_head_as_its_get_without_a_body(api: Api) -> None:
    """A HEAD on any GET route (an uptime checker, a proxy, curl -I) answers with the GET's
    status and headers and no body, behind the same access policy; not 405."""
    table = api.client.app[ROUTE_TABLE]
    gets = [r for r in table.routes if r.method == "GET"]
    assert {r.path for r in table.routes if r.method == "HEAD"} == {r.path for r in gets}
    headers = {role: await api.account(f"head-{role}", role)
               for role in ("operator", "supervisor", "admin")}
    for route in gets:
        path = concrete(route.path)
        who = {} if route.access.public else headers[min(route.access.roles).value]
        get = await api.client.get(path, headers=who, allow_redirects=False)
        await get.read()
        head = await api.client.head(path, headers=who, allow_redirects=False)
        assert (path, head.status) == (path, get.status)
        assert await head.read() == b""
        assert head.headers.get("Content-Type") == get.headers.get("Content-Type"), path
        assert head.headers.get("Location") == get.headers.get("Location"), path
        # Nor does any answer name the server's software and version.
        assert head.headers["Server"] == get.headers["Server"] == "siaga112"
    # Behind the same access policy: no live session, a 401 without a body.
    response = await api.client.head("/api/incidents", headers={"Authorization": "Bearer x"})
    assert response.status == 401 and await response.read() == b""
    assert (await api.client.head("/api/audit", headers=headers["operator"])).status == 403
    # HEAD is not a change: it needs no CSRF token with the cookie, and DELETE is still 405.
    response = await api.client.delete("/api/incidents", headers=headers["operator"])
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


async def test_a_handler_added_outside_the_route_table_is_unreachable(
    api_factory: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[bool] = []

    async def rogue(_: web.Request) -> web.Response:
        called.append(True)
        return web.json_response({"secret": True})

    api = await api_factory(prepare=lambda app: app.router.add_get("/api/rogue", rogue))
    admin = await api.account("admin1", "admin")
    with caplog.at_level(logging.ERROR, logger="telephony.web"):
        response = await api.client.get("/api/rogue", headers=admin)
    assert response.status == 403 and not called
    assert "no access policy" in caplog.text


async def test_roles_are_checked_on_every_route(api: Api) -> None:
    admin = await api.account("admin1", "admin")
    operator = await api.account("op1", "operator")
    supervisor = await api.account("sup1", "supervisor")
    # Admins run the system but see no caller data.
    for path in ("/api/incidents", "/api/calls", f"/api/calls/{FIRE_CALL}",
                 "/api/recordings/1", "/api/recordings/1/audio", "/api/incidents/1"):
        response = await api.client.get(path, headers=admin)
        assert response.status == 403, path
        assert (await error_of(response))["code"] == "forbidden"
    response = await api.client.post("/api/incidents", headers=admin,
                                      json={"call_id": FIRE_CALL})
    assert response.status == 403
    assert await fetch(api.dsn, "SELECT * FROM incidents") == []
    # The audit log is for oversight, not for operators.
    assert (await api.client.get("/api/audit", headers=operator)).status == 403
    for headers in (admin, supervisor):
        assert (await api.client.get("/api/audit", headers=headers)).status == 200
    for headers in (admin, operator, supervisor):
        assert (await api.client.get("/api/agencies", headers=headers)).status == 200
    assert (await api.client.get("/api/incidents", headers=operator)).status == 200


async def test_login_sets_a_strict_http_only_cookie_and_logout_ends_the_session(
    api: Api
) -> None:
    await api.context.accounts.create("op1", "operator", PASSWORD, display_name="Sari",
                                      actor="test")
    response = await api.client.post("/api/session",
                                     json={"username": "OP1", "password": PASSWORD})
    assert response.status == 201
    body = await response.json()
    conforms(body, "Session")
    assert body["account"] == {"username": "op1", "display_name": "Sari", "role": "operator",
                               "role_label": "Operator", "active": True}
    cookies = response.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Secure" not in session_cookie  # http_cookie_secure is off in the lab
    # Only a digest of the token is stored.
    stored = await fetch(api.dsn, "SELECT token_sha256 FROM sessions")
    assert [r["token_sha256"] for r in stored] == [
        hashlib.sha256(body["token"].encode()).hexdigest()]
    bearer = {"Authorization": f"Bearer {body['token']}"}
    me = await (await api.client.get("/api/session", headers=bearer)).json()
    assert me["account"]["username"] == "op1" and me["token"] is None
    # The cookie alone authenticates reads.
    assert (await api.client.get("/api/session")).status == 200
    response = await api.client.delete("/api/session", headers=bearer)
    assert response.status == 204
    assert (await api.client.get("/api/session", headers=bearer)).status == 401
    assert [r["action"] for r in await fetch(api.dsn, "SELECT action FROM audit_log "
                                             "ORDER BY audit_id")] == [
        "account.create", "login", "logout"]


async def test_cookie_changes_need_the_csrf_token_bearer_changes_do_not(api: Api) -> None:
    await api.context.accounts.create("op1", "operator", PASSWORD, actor="test")
    token = await api.login("op1")  # the client keeps the session cookie
    csrf = (await (await api.client.get("/api/session")).json())["csrf_token"]
    before = await incident_state(api.dsn)
    for headers in ({}, {CSRF_HEADER: "wrong"}):
        response = await api.client.post("/api/incidents", json={"call_id": FIRE_CALL},
                                          headers=headers)
        assert response.status == 403
        assert (await error_of(response))["code"] == "csrf"
    assert (await api.client.delete("/api/session")).status == 403  # logout is a change too
    assert await incident_state(api.dsn) == before
    response = await api.client.post("/api/incidents", json={"call_id": FIRE_CALL},
                                      headers={CSRF_HEADER: csrf})
    assert response.status == 201
    api.client.session.cookie_jar.clear()
    response = await api.client.post("/api/incidents", json={"call_id": SECOND_CALL},
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status == 201


async def test_wrong_passwords_are_refused_then_throttled(
    api_factory: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    policy = ThrottlePolicy(max_failures=3, max_failures_per_address=100,
                            first_delay=timedelta(minutes=5))
    api = await api_factory(throttle=policy)
    await api.context.accounts.create("op1", "operator", PASSWORD, actor="test")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            response = await api.client.post("/api/session",
                                             json={"username": "op1", "password": "salah"})
            assert response.status == 401
            assert (await error_of(response))["code"] == "login_refused"
        # Now even the right password is not looked at.
        response = await api.client.post("/api/session",
                                         json={"username": "op1", "password": PASSWORD})
        assert response.status == 429
        assert 290 <= int(response.headers["Retry-After"]) <= 300
        assert (await error_of(response))["code"] == "login_throttled"
    # One line per refused login, and no second one.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 4 and all("login refused for 'op1'" in w for w in warnings)
    assert len(await fetch(api.dsn, "SELECT * FROM login_failures")) == 3
    assert await fetch(api.dsn, "SELECT * FROM sessions") == []


async def test_unknown_names_and_many_names_from_one_address_are_throttled(
    api_factory: ApiFactory
) -> None:
    policy = ThrottlePolicy(max_failures=50, max_failures_per_address=4,
                            first_delay=timedelta(minutes=1))
    api = await api_factory(throttle=policy)
    await api.context.accounts.create("op1", "operator", PASSWORD, actor="test")
    for n in range(4):
        response = await api.client.post("/api/session",
                                         json={"username": f"guess{n}", "password": "x" * 12})
        assert response.status == 401
    response = await api.client.post("/api/session",
                                     json={"username": "op1", "password": PASSWORD})
    assert response.status == 429


async def test_a_disabled_account_loses_its_sessions(api: Api) -> None:
    operator = await api.account("op1", "operator")
    await api.context.accounts.disable("op1", actor="test")
    assert (await api.client.get("/api/session", headers=operator)).status == 401
    response = await api.client.post("/api/session",
                                     json={"username": "op1", "password": PASSWORD})
    assert response.status == 401


async def test_a_hung_database_gets_a_clear_503_within_seconds(
        api: Api, pg_cluster: EmbeddedPostgres) -> None:
    """PostgreSQL hung (its processes stopped: the kernel takes connections, nothing
    answers): an operator's request waited the driver's command timeout, 30 s, for its 503;
    the console's pages sat loading meanwhile."""
    op = await api.account("op1", "operator")
    assert (await api.client.get(f"/api/calls/{FIRE_CALL}", headers=op)).status == 200
    loop = asyncio.get_running_loop()
    with frozen(pg_cluster):
        started = loop.time()
        response = await api.client.get(f"/api/calls/{FIRE_CALL}", headers=op)
        took = loop.time() - started
        error = await error_of(response)
    assert response.status == 503, error
    assert error["message"] == "Basis data sedang tidak tersedia. Coba lagi sebentar lagi."
    assert took < ANSWER_CHECK_SECONDS + api.settings.db_connect_timeout + 1.0, took

    async def answered() -> bool | None:
        response = await api.client.get(f"/api/calls/{FIRE_CALL}", headers=op)
        return True if response.status == 200 else None

    await eventually("the call shown again", answered, 10)


# -- incidents -------------------------------------------------------------------------------


async def test_incident_workflow_through_the_api(api: Api) -> None:
    op = await api.account("op1", "operator")
    client = api.client
    response = await client.post("/api/incidents", json={"call_id": FIRE_CALL}, headers=op)
    assert response.status == 201
    created = await response.json()
    number = created["incident_id"]
    assert (created["status"], created["report_type"], created["report_type_label"],
            created["caller_number"]) == ("new", "fire", "Kebakaran", "081111111111")
    assert created["sla"]["target_seconds"] == 300
    path = f"/api/incidents/{number}"
    response = await client.patch(path, headers=op, json={
        "village_code": "35.29.01.1016", "location_text": "Jl. Trunojoyo 12",
        "priority": "kritis", "expected_version": created["version"]})
    assert response.status == 200, await response.text()
    edited = await response.json()
    assert (edited["village_name"], edited["sub_district_name"], edited["priority"]) == (
        "Pajagalan", "Kota Sumenep", 1)
    response = await client.post(f"{path}/status", headers=op, json={"status": "verified"})
    assert (await response.json())["status"] == "verified"
    response = await client.post(f"{path}/dispatches", headers=op,
                                 json={"agency": "damkar", "note": "dua unit"})
    assert response.status == 201
    dispatch = await response.json()
    conforms(dispatch, "Dispatch")
    response = await client.post(f"/api/dispatches/{dispatch['dispatch_id']}/state",
                                 headers=op, json={"state": "on_scene"})
    assert (await response.json())["state_label"] == "Di lokasi"
    response = await client.post(f"{path}/escalation", headers=op,
                                 json={"level": "sub_district", "reason": "api meluas"})
    assert (await response.json())["escalation_label"] == "Kecamatan"
    response = await client.post(f"{path}/calls", headers=op, json={"call_id": SECOND_CALL})
    assert response.status == 200
    detail = await (await client.get(path, headers=op)).json()
    conforms(detail, "IncidentDetail")
    assert detail["incident"]["status"] == "on_scene"
    assert [c["call_id"] for c in detail["calls"]] == [FIRE_CALL, SECOND_CALL]
    assert [d["agency_code"] for d in detail["dispatches"]] == ["damkar"]
    assert [e["kind"] for e in detail["timeline"]] == [
        "created", "details", "status", "dispatch", "status", "dispatch", "status",
        "escalated", "call_linked"]
    assert {e["actor"] for e in detail["timeline"][1:]} == {"op1"}
    listed = await (await client.get("/api/incidents", headers=op)).json()
    conforms(listed, "IncidentPage")
    assert [i["incident_id"] for i in listed["incidents"]] == [number]
    # Rated once resolved.
    response = await client.post(f"{path}/rating", headers=op, json={"rating": 4})
    assert response.status == 409
    await client.post(f"{path}/status", headers=op, json={"status": "resolved"})
    response = await client.post(f"{path}/rating", headers=op, json={"rating": 4})
    assert (await response.json())["rating"] == 4
    call = await (await client.get(f"/api/calls/{SECOND_CALL}", headers=op)).json()
    conforms(call, "CallDetail")
    assert call["incident_id"] == number and call["call"]["caller_number"] == "082222222222"


async def test_open_incidents_are_paged_by_offset_and_the_page_names_the_next(
    api: Api
) -> None:
    """A client follows next_offset until null and gets every open incident once, in the
    list's order; the list had no offset, so the 201st open incident was out of reach."""
    op = await api.account("op1", "operator")
    for call_id in (FIRE_CALL, SECOND_CALL, OTHER_CALL):
        response = await api.client.post("/api/incidents", json={"call_id": call_id},
                                          headers=op)
        assert response.status == 201
    whole = await (await api.client.get("/api/incidents", headers=op)).json()
    conforms(whole, "IncidentPage")
    assert len(whole["incidents"]) == 3 and whole["next_offset"] is None
    followed: list[int] = []
    offsets: list[int | None] = []
    offset: int | None = 0
    while offset is not None:
        page = await (await api.client.get(f"/api/incidents?limit=2&offset={offset}",
                                           headers=op)).json()
        conforms(page, "IncidentPage")
        followed += [i["incident_id"] for i in page["incidents"]]
        offset = page["next_offset"]
        offsets.append(offset)
    assert followed == [i["incident_id"] for i in whole["incidents"]]
    assert offsets == [2, None]
    # Past the end: an empty last page, not an error.
    page = await (await api.client.get("/api/incidents?offset=50", headers=op)).json()
    assert page == {"incidents": [], "next_offset": None}
    # Bad values are refused with the parameter named, and its bounds.
    for query, field, bounds in (("offset=-1", "offset", "0-100000"),
                                 ("offset=x", "offset", "0-100000"),
                                 ("offset=100001", "offset", "0-100000"),
                                 ("offset=" + "9" * 5000, "offset", "0-100000"),
                                 ("offset=1.5", "offset", "0-100000"),
                                 ("limit=0", "limit", "1-500"),
                                 ("limit=" + "9" * 5000, "limit", "1-500"),
                                 ("page=2", "page", ""),
                                 # Sent twice: the first silently counted.
                                 ("limit=1&limit=500", "limit", "lebih dari sekali"),
                                 ("offset=0&offset=2", "offset", "lebih dari sekali")):
        response = await api.client.get(f"/api/incidents?{query}", headers=op)
        assert response.status == 422, query
        error = await error_of(response)
        assert error["field"] == field and bounds in error["message"], (query, error)
    # The OpenAPI document says so.
    document = await (await api.client.get("/api/openapi.json", headers=op)).json()
    parameters = {p["name"]: p["schema"]
                  for p in document["paths"]["/api/incidents"]["get"]["parameters"]}
    assert parameters["offset"] == {"type": "integer", "minimum": 0, "maximum": 100_000}
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 500}


async def test_the_audit_log_is_paged_by_a_cursor_that_new_entries_do_not_shift(
    api: Api
) -> None:
    """/api/audit gave the newest 500 entries and nothing older: an auditor could not reach
    last month's. Each page names next_before; new entries meanwhile do not shift it."""
    supervisor = await api.account("sup1", "supervisor")
    for _ in range(4):
        await api.login("sup1")
    whole = await (await api.client.get("/api/audit", headers=supervisor)).json()
    conforms(whole, "AuditList")
    ids = [e["audit_id"] for e in whole["entries"]]
    assert len(ids) >= 5 and whole["next_before"] is None  # the account, its logins
    followed: list[int] = []
    query = "limit=2"
    while True:
        page = await (await api.client.get(f"/api/audit?{query}", headers=supervisor)).json()
        conforms(page, "AuditList")
        followed += [e["audit_id"] for e in page["entries"]]
        if page["next_before"] is None:
            break
        await api.login("sup1")  # a newer entry: the next page is still the older ones
        query = f"limit=2&before={page['next_before']}"
    assert followed == ids
    for bad in ("before=0", "before=-1", "before=x", "before=" + "9" * 19,
                "before=1&before=2"):
        response = await api.client.get(f"/api/audit?{bad}", headers=supervisor)
        assert response.status == 422, bad
        assert (await error_of(response))["field"] == "before"


async def test_unknown_incidents_are_404_and_change_nothing(api: Api) -> None:
    op = await api.account("op1", "operator")
    client = api.client
    await client.post("/api/incidents", json={"call_id": FIRE_CALL}, headers=op)
    before = await incident_state(api.dsn)
    requests = [
        ("GET", "/api/incidents/999", None),
        ("GET", "/api/incidents/abc", None),
        ("GET", "/api/incidents/0", None),
        ("GET", "/api/incidents/99999999999999999999999", None),
        ("PATCH", "/api/incidents/999", {"description": "x"}),
        ("POST", "/api/incidents/999/status", {"status": "verified"}),
        ("POST", "/api/incidents/999/escalation", {"level": "regency", "reason": "x"}),
        ("POST", "/api/incidents/999/calls", {"call_id": OTHER_CALL}),
        ("POST", "/api/incidents/999/rating", {"rating": 3}),
        ("POST", "/api/incidents/999/dispatches", {"agency": "damkar"}),
        ("POST", "/api/dispatches/999/state", {"state": "done"}),
        ("POST", "/api/incidents", {"call_id": "1800000000.9"}),
        ("POST", "/api/incidents/1/calls", {"call_id": "1800000000.9"}),
        ("GET", "/api/calls/1800000000.9", None),
        ("GET", "/api/calls/..%2F..%2Fetc", None),
        ("GET", "/api/recordings/999", None),
        ("GET", "/api/incidents/999/attachments", None),
        ("GET", "/api/incidents/1/attachments/999", None),
        ("GET", "/api/nothing-here", None),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=op)
        assert response.status == 404, (method, path, await response.text())
        assert (await error_of(response))["code"] == "not_found"
    assert await incident_state(api.dsn) == before


async def test_invalid_changes_are_refused_with_a_reason_and_change_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    op, path = await fire_incident(api)
    client = api.client
    before = await incident_state(api.dsn)
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", f"{path}/status", {"status": "resolved"}, 409, "invalid_transition"),
        ("POST", f"{path}/status", {"status": "burning"}, 422, "invalid"),
        ("POST", f"{path}/status", {"status": 3}, 422, "invalid"),
        ("POST", f"{path}/status", {}, 422, "invalid"),
        ("POST", f"{path}/status", {"status": "verified", "extra": 1}, 422, "invalid"),
        ("POST", f"{path}/status", ["verified"], 422, "invalid"),
        ("POST", f"{path}/status", {"status": "verified", "expected_version": 99}, 409,
         "stale"),
        ("POST", f"{path}/dispatches", {"agency": "damkar"}, 409, "invalid_transition"),
        ("POST", f"{path}/escalation", {"level": "village", "reason": "x"}, 409,
         "invalid_transition"),
        ("PATCH", path, {"village_code": "35.29.99.9999"}, 422, "invalid"),
        ("PATCH", path, {"latitude": 50, "longitude": 110}, 422, "invalid"),
        ("PATCH", path, {"password": "x"}, 422, "invalid"),
        # Past 4300 digits Python's int() itself refuses the text: it was a 500.
        ("PATCH", path, {"priority": "9" * 5000}, 422, "invalid"),
        ("POST", "/api/incidents", {"call_id": FIRE_CALL}, 409, "call_already_linked"),
        ("POST", "/api/incidents", {"call_id": 1700000000.1}, 422, "invalid"),
    ]
    with caplog.at_level(logging.WARNING, logger="telephony.web"):
        for method, url, body, status, code in cases:
            response = await client.request(method, url, json=body, headers=op)
            assert response.status == status, (url, body, await response.text())
            error = await error_of(response)
            assert error["code"] == code, (url, body, error)
            assert error["message"]
    refused = [r for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(refused) == len(cases)
    # Not JSON, or not declared as JSON.
    response = await client.post(f"{path}/status", data=b"{not json", headers={
        **op, "Content-Type": "application/json"})
    assert (response.status, (await error_of(response))["code"]) == (400, "bad_json")
    # A key named twice: the decoder would keep the last one silently (an admin's menu with
    # two "1" options ran one of them).
    response = await client.post(f"{path}/status", data=b'{"status": "cancelled", '
                                 b'"status": "verified"}', headers={
        **op, "Content-Type": "application/json"})
    error = await error_of(response)
    assert (response.status, error["code"]) == (422, "invalid")
    assert "'status' muncul dua kali" in error["message"]
    response = await client.post(f"{path}/status", data=b"status=verified", headers={
        **op, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 415
    assert await incident_state(api.dsn) == before


async def test_a_body_in_another_charset_or_compressed_is_read_or_refused_never_a_500(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A JSON body is UTF-8 whatever charset its Content-Type names (an unknown one was a
    LookupError, a 500), and a body whose Content-Encoding is corrupt is a 400 (it was a
    500 with a traceback); a well-compressed one is read."""
    op, path = await fire_incident(api)
    before = await incident_state(api.dsn)
    status = b'{"status": "verified", "expected_version": 99}'
    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        ({"Content-Type": "application/json; charset=x-bogus"}, status, 409, "stale"),
        ({"Content-Type": "application/json; charset=latin-1"}, status, 409, "stale"),
        ({"Content-Type": "application/json; charset=utf-16"}, status, 409, "stale"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"},
         gzip.compress(status), 409, "stale"),
        ({"Content-Type": "application/json; charset=latin-1"},
         '{"status": "verifié"}'.encode("latin-1"), 400, "bad_json"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, status, 400,
         "bad_body"),
        ({"Content-Type": "application/json", "Content-Encoding": "deflate"},
         b"\x78\x9c" + status, 400, "bad_body"),
    ]
    with caplog.at_level(logging.WARNING, logger="telephony.web"):
        for headers, body, code_status, code in cases:
            response = await api.client.post(f"{path}/status", data=body, headers={
                **op, **headers, "Connection": "close"})
            assert response.status == code_status, (headers, await response.text())
            assert (await error_of(response))["code"] == code, headers
    # (aiohttp's own log of the corrupt body, drained after the answer, is the line's
    # server's to fold into one line: test_hostile_input.)
    assert [r for r in caplog.records if r.name.startswith("telephony")
            and (r.levelno >= logging.ERROR or r.exc_info)] == []
    assert await incident_state(api.dsn) == before


async def test_a_bidi_control_is_refused_in_a_location_and_kept_in_free_text(api: Api) -> None:
    """The location is one line shown beside others: an override would show it reversed.
    The description and notes are what the operator took down; they keep what was typed."""
    op, path = await fire_incident(api)
    client = api.client
    before = await incident_state(api.dsn)
    for control in BIDI_CONTROLS:
        response = await client.patch(path, headers=op, json={
            "location_text": spoofed("Jl. Trunojoyo 12", control)})
        assert response.status == 422, (control, await response.text())
        error = await error_of(response)
        assert error["field"] == "location_text" and "pengatur arah teks" in error["message"]
    assert await incident_state(api.dsn) == before
    typed = "Penelepon menulis \u2067\u0645\u0633\u062c\u062f\u2069, \u202edekat pasar\n"
    response = await client.patch(path, headers=op, json={"description": typed + "baris 2"})
    assert response.status == 200, await response.text()
    response = await client.post(f"{path}/status", headers=op,
                                 json={"status": "verified", "note": typed})
    assert response.status == 200, await response.text()
    detail = await (await client.get(path, headers=op)).json()
    assert detail["incident"]["description"] == typed + "baris 2"
    assert detail["timeline"][-1]["detail"]["note"] == typed.strip()


async def test_calls_are_listed_with_filters(api: Api) -> None:
    op = await api.account("op1", "operator")
    listed = await (await api.client.get("/api/calls", headers=op)).json()
    conforms(listed, "CallList")
    assert {c["call_id"] for c in listed["calls"]} == {FIRE_CALL, SECOND_CALL, OTHER_CALL}
    response = await api.client.get("/api/calls", headers=op,
                                    params={"caller_number": "082222222222", "line": "112",
                                            "disposition": "answered", "limit": "5"})
    assert [c["call_id"] for c in (await response.json())["calls"]] == [SECOND_CALL]
    # The same caller, however the number is written (trial 2026-12-06: "+62..." found
    # nothing of a caller the carrier presented as "08...").
    for written in ("+6282222222222", "006282222222222", "0822-2222-2222"):
        response = await api.client.get("/api/calls", headers=op,
                                        params={"caller_number": written})
        assert [c["call_id"] for c in (await response.json())["calls"]] == [SECOND_CALL], written
    since = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    response = await api.client.get("/api/calls", headers=op, params={"since": since})
    assert (await response.json())["calls"] == []
    for params in ({"line": "113"}, {"limit": "0"}, {"since": "kemarin"},
                   {"since": "2025-01-01T00:00:00"}, {"colour": "red"}):
        response = await api.client.get("/api/calls", headers=op, params=params)
        assert response.status == 422, params
    # A "+" not escaped in the address arrives as a space: the reason says how to send it.
    response = await api.client.get(URL("/api/calls?since=2025-01-01T00:00:00+07:00",
                                        encoded=True), headers=op)
    error = await error_of(response)
    assert response.status == 422 and "%2B" in error["message"]
    # A window that ends before it starts matches nothing: refused, not an empty list.
    response = await api.client.get("/api/calls", headers=op, params={
        "since": "2025-02-01T00:00:00+07:00", "until": "2025-01-01T00:00:00+07:00"})
    assert (response.status, (await error_of(response))["field"]) == (422, "until")
    # A parameter sent twice is refused, not read as its first value.
    response = await api.client.get("/api/calls?line=112&line=119", headers=op)
    assert (response.status, (await error_of(response))["field"]) == (422, "line")


async def test_looking_up_calls_is_audited(api: Api) -> None:
    op = await api.account("op1", "operator")
    await api.client.get("/api/calls", headers=op, params={"caller_number": "082222222222"})
    assert (await api.client.get(f"/api/calls/{SECOND_CALL}", headers=op)).status == 200
    (search,) = await api.audit("call.search")
    assert (search["actor"], search["object_id"]) == ("op1", "082222222222")
    (view,) = await api.audit("call.view")
    assert (view["actor"], view["object_id"]) == ("op1", SECOND_CALL)
    # A refused query is not a lookup.
    await api.client.get("/api/calls", headers=op, params={"line": "113"})
    assert len(await api.audit("call.search")) == 1


async def test_admins_see_no_caller_numbers_in_the_audit_log(api: Api) -> None:
    op = await api.account("op1", "operator")
    number = "082222222222"
    await api.client.get("/api/calls", headers=op, params={"caller_number": number})
    supervisor = await api.account("sup1", "supervisor")
    admin = await api.account("admin1", "admin")
    searches = {"object_type": "call", "actor": "op1"}
    # A supervisor reviews calls, so sees who looked up which number ...
    seen = await (await api.client.get("/api/audit", headers=supervisor,
                                       params=searches)).json()
    (entry,) = [e for e in seen["entries"] if e["action"] == "call.search"]
    assert entry["object_id"] == number and entry["detail"]["query"]["caller_number"] == number
    # ... an admin sees that a number was looked up, and by whom, but not which.
    response = await api.client.get("/api/audit", headers=admin, params=searches)
    listed = await response.json()
    conforms(listed, "AuditList")
    (entry,) = [e for e in listed["entries"] if e["action"] == "call.search"]
    assert (entry["actor"], entry["object_id"]) == ("op1", "[disembunyikan]")
    assert entry["detail"]["query"] == {"caller_number": "[disembunyikan]"}
    assert number not in await response.text()
    # Nor can an admin find out by asking for the number as the object.
    found = await (await api.client.get("/api/audit", headers=admin, params={
        "object_type": "call", "object_id": number})).json()
    assert found["entries"] == []
    # The stored entry keeps the number (for those who may see it).
    (stored,) = await api.audit("call.search")
    assert stored["object_id"] == number


async def test_calls_are_labelled(api: Api) -> None:
    op = await api.account("op1", "operator")
    path = f"/api/calls/{FIRE_CALL}/labels"
    response = await api.client.post(path, headers=op, json={"label": "prank", "note": "tertawa"})
    assert response.status == 201
    await api.client.post(path, headers=op, json={"label": "genuine"})
    listed = await (await api.client.get(path, headers=op)).json()
    conforms(listed, "CallLabelList")
    labels = listed["labels"]
    assert [(x["label"], x["label_text"], x["labelled_by"]) for x in labels] == [
        ("prank", "Iseng", "op1"), ("genuine", "Asli", "op1")]
    response = await api.client.post(path, headers=op, json={"label": "rude"})
    assert response.status == 422
    response = await api.client.post("/api/calls/1800000000.9/labels", headers=op,
                                     json={"label": "test"})
    assert response.status == 404


async def test_reference_data(api: Api) -> None:
    op = await api.account("op1", "operator")
    listed = await (await api.client.get("/api/agencies", headers=op)).json()
    conforms(listed, "AgencyList")
    agencies = listed["agencies"]
    assert {"code": "damkar", "name": "Pemadam Kebakaran (Damkar)", "active": True} in agencies
    response = await api.client.get("/api/places", headers=op,
                                    params={"sub_district_code": "35.29.02"})
    body = await response.json()
    conforms(body, "PlaceList")
    places = body["places"]
    assert {p["sub_district_name"] for p in places} == {"Kalianget"} and len(places) == 4


# -- recordings ------------------------------------------------------------------------------


async def add_recording(api: Api, call_id: str, storage_path: str, *, state: str = "done",
                        size_bytes: int = 10) -> int:
    rows = await fetch(api.dsn, """
        INSERT INTO recordings (call_id, state, started_at, format, storage_path, size_bytes,
                                sha256, duration_seconds)
        VALUES ($1, $2, now(), 'opus', $3, $4, repeat('0', 64), 1.0)
        RETURNING recording_id""", call_id, state, storage_path, size_bytes)
    return int(rows[0]["recording_id"])


async def test_recordings_stream_with_range_and_every_playback_is_audited(api: Api) -> None:
    supervisor = await api.account("sup1", "supervisor")
    audio = os.urandom(5000)
    stored = api.settings.recordings_dir / "2025/01/31" / f"{FIRE_CALL}.opus"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(audio)
    number = await add_recording(api, FIRE_CALL, f"2025/01/31/{FIRE_CALL}.opus",
                                 size_bytes=len(audio))
    meta = await (await api.client.get(f"/api/recordings/{number}", headers=supervisor)).json()
    conforms(meta, "Recording")
    assert meta["audio_url"] == f"/api/recordings/{number}/audio"
    assert "storage_path" not in meta
    url = meta["audio_url"]
    response = await api.client.get(url, headers=supervisor)
    assert response.status == 200 and await response.read() == audio
    assert response.headers["Content-Type"] == "audio/ogg; codecs=opus"
    assert response.headers["Accept-Ranges"] == "bytes"
    response = await api.client.get(url, headers={**supervisor, "Range": "bytes=100-199"})
    assert response.status == 206 and await response.read() == audio[100:200]
    assert response.headers["Content-Range"] == "bytes 100-199/5000"
    response = await api.client.get(url, headers={**supervisor, "Range": "bytes=-10"})
    assert response.status == 206 and await response.read() == audio[-10:]
    # A range past the end, the last zero bytes, one that is no range: nothing is sent, the
    # refusal says why in our words, and no play is recorded.
    for refused in ("bytes=9000-", "bytes=5000-", "bytes=-0", "bytes=100-50", "bytes=0-1,5-6",
                    "bytes=abc"):
        response = await api.client.get(url, headers={**supervisor, "Range": refused})
        assert response.status == 416, refused
        assert response.headers["Content-Range"] == "bytes */5000"
        assert (await error_of(response))["code"] == "range_not_satisfiable"
    # A stale If-Range: the whole file, not the range (RFC 9110 13.1.5).
    response = await api.client.get(url, headers={
        **supervisor, "Range": "bytes=4000-", "If-Range": "Wed, 01 Jan 2020 00:00:00 GMT"})
    assert response.status == 200 and await response.read() == audio
    # HEAD: the GET's headers, no audio; audited as an access, and told apart from a play.
    response = await api.client.head(url, headers=supervisor)
    assert response.status == 200 and await response.read() == b""
    assert response.headers["Content-Length"] == "5000"
    plays = await api.audit("recording.play")
    assert [(r["actor"], r["object_id"]) for r in plays] == [("sup1", str(number))] * 5
    assert [json.loads(r["detail"])["range"] for r in plays] == [
        None, "bytes=100-199", "bytes=-10", "bytes=4000-", None]
    assert [json.loads(r["detail"]).get("method") for r in plays] == [None] * 4 + ["HEAD"]
    assert {r["remote_address"] for r in plays} == {"127.0.0.1"}
    listed = await (await api.client.get("/api/audit", headers=supervisor, params={
        "object_type": "recording", "object_id": str(number)})).json()
    conforms(listed, "AuditList")
    assert [e["detail"]["range"] for e in listed["entries"]] == [
        None, "bytes=4000-", "bytes=-10", "bytes=100-199", None]
    # And the call shows its recording.
    call = await (await api.client.get(f"/api/calls/{FIRE_CALL}", headers=supervisor)).json()
    assert [r["recording_id"] for r in call["recordings"]] == [number]


async def test_recording_paths_outside_the_storage_root_are_never_served(
    api: Api, tmp_path: Path
) -> None:
    operator = await api.account("op1", "operator")
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    root = api.settings.recordings_dir
    (root / "2025").mkdir(parents=True)
    (root / "2025" / "link.opus").symlink_to(secret)
    unsafe = ["../../secret.txt", str(secret), "2025/../../secret.txt", "2025/link.opus",
              "2025/missing.opus", "", "2025\\..\\x"]
    for call_id, path in zip(
            [f"17000003{n:02d}.{n}" for n in range(len(unsafe))], unsafe, strict=True):
        connection = await asyncpg.connect(api.dsn)
        try:
            await CallRepository(CALENDAR).apply(connection, call_facts(call_id, "0812"))
        finally:
            await connection.close()
        number = await add_recording(api, call_id, path)
        response = await api.client.get(f"/api/recordings/{number}/audio", headers=operator)
        assert response.status == 404, path
        body = await response.read()
        assert b"hunter2" not in body
        assert (await response.json())["error"]["code"] == "recording_unavailable"
    pending = await add_recording(api, FIRE_CALL, "x.opus", state="pending")
    response = await api.client.get(f"/api/recordings/{pending}/audio", headers=operator)
    assert response.status == 404
    assert "menunggu" in (await error_of(response))["message"]
    assert await api.audit("recording.play") == []


async def test_a_stored_recording_cut_short_or_emptied_is_refused_not_played_as_whole(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that no longer holds what the worker stored (emptied, cut short by a failed
    restore or a disk fault) would play as a shorter call, or as nothing, with no word of why:
    it is refused in words, logged for the admin, and no play is recorded."""
    operator = await api.account("op1", "operator")
    stored = api.settings.recordings_dir / "2025/01/31" / f"{FIRE_CALL}.opus"
    stored.parent.mkdir(parents=True)
    number = await add_recording(api, FIRE_CALL, f"2025/01/31/{FIRE_CALL}.opus",
                                 size_bytes=5000)
    url = f"/api/recordings/{number}/audio"
    for damaged in (b"", os.urandom(2000)):
        stored.write_bytes(damaged)
        for method in ("GET", "HEAD"):
            with caplog.at_level(logging.ERROR, logger="recordings.library"):
                response = await api.client.request(method, url, headers=operator)
            assert response.status == 404, (len(damaged), method)
        response = await api.client.get(url, headers={**operator, "Range": "bytes=0-"})
        error = await error_of(response)
        assert error["code"] == "recording_unavailable"
        assert error["message"] == (
            f"Berkas rekaman #{number} rusak (ukurannya {len(damaged)} byte, seharusnya 5000 "
            "byte); minta admin memulihkannya dari cadangan.")
    assert any(str(stored.name) in r.getMessage() for r in caplog.records)
    assert await api.audit("recording.play") == []
    stored.write_bytes(os.urandom(5000))
    assert (await api.client.get(url, headers=operator)).status == 200


# -- attachments -----------------------------------------------------------------------------


def stored_files(api: Api) -> list[Path]:
    root = api.settings.attachments_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def new_incident(api: Api, headers: dict[str, str]) -> int:
    response = await api.client.post("/api/incidents", json={"call_id": FIRE_CALL},
                                     headers=headers)
    return int((await response.json())["incident_id"])


async def test_uploads_are_stored_under_our_own_names_sniffed_and_downloads_audited(
    api: Api
) -> None:
    op = await api.account("op1", "operator")
    number = await new_incident(api, op)
    form = aiohttp.FormData(quote_fields=False)  # names as a browser sends them
    # The client claims text; the bytes say PNG.
    form.add_field("file", PNG, filename="foto lokasi.png", content_type="text/plain")
    response = await api.client.post(f"/api/incidents/{number}/attachments", data=form,
                                     headers=op)
    assert response.status == 201, await response.text()
    attachment = await response.json()
    assert (attachment["filename"], attachment["content_type"], attachment["size_bytes"],
            attachment["sha256"]) == ("foto lokasi.png", "image/png", len(PNG),
                                      hashlib.sha256(PNG).hexdigest())
    [stored] = stored_files(api)
    assert stored.read_bytes() == PNG
    assert re.fullmatch(rf"{number}-[0-9a-f]{{32}}\.png", stored.name)
    # A raw body, named in the query string.
    response = await api.client.post(f"/api/incidents/{number}/attachments",
                                     params={"filename": "laporan.txt"},
                                     data=b"Api padam pukul 10.15", headers=op)
    assert response.status == 201
    assert (await response.json())["content_type"] == "text/plain"
    response = await api.client.get(attachment["download_url"], headers=op)
    assert response.status == 200 and await response.read() == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename*=UTF-8''foto%20lokasi.png")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response = await api.client.get(attachment["download_url"],
                                    headers={**op, "Range": "bytes=-0"})
    assert response.status == 416
    downloads = await api.audit("attachment.download")
    assert [(r["actor"], r["object_id"]) for r in downloads] == [
        ("op1", str(attachment["attachment_id"]))]
    assert len(await api.audit("attachment.upload")) == 2
    listed = await (await api.client.get(f"/api/incidents/{number}/attachments",
                                         headers=op)).json()
    conforms(listed, "AttachmentList")
    assert [a["filename"] for a in listed["attachments"]] == ["foto lokasi.png", "laporan.txt"]


async def test_bad_uploads_keep_nothing(api: Api) -> None:
    op = await api.account("op1", "operator")
    number = await new_incident(api, op)
    url = f"/api/incidents/{number}/attachments"
    before = await incident_state(api.dsn)

    async def refused(response: aiohttp.ClientResponse, status: int) -> None:
        assert response.status == status, await response.text()
        await error_of(response)

    # ... and names that read otherwise than they are: a bidi override ("gpj.exe" shown as
    # "exe.jpg"), an isolate, a zero-width joiner, a line separator.
    for name in ("../../etc/passwd", "a/b.png", ".htaccess", "C:\\foto.png", "x\x00.png",
                 "", " spasi.png", "x" * 201, "foto\u202egpj.exe", "a\u2066b.png",
                 "fo\u200dto.png", "a\u2028b.png"):
        await refused(await api.client.post(url, params={"filename": name}, data=PNG,
                                            headers=op), 422)
        if "\x00" not in name:  # a header cannot carry it; the client refuses to send it
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("file", PNG, filename=name)
            await refused(await api.client.post(url, data=form, headers=op), 422)
    await refused(await api.client.post(url, data=PNG, headers={
        **op, "Content-Disposition": 'attachment; filename="../secret.png"'}), 422)
    # A Content-Disposition aiohttp cannot read (no disposition type; a filename* in an
    # unknown charset): aiohttp only warned and dropped it (a 500 where warnings are errors).
    for disposition in (';;;="\\', "attachment; filename*=x-bogus''a%FF.png"):
        await refused(await api.client.post(url, data=PNG, headers={
            **op, "Content-Disposition": disposition}), 422)
    # Multipart that is not: no boundary, a boundary the body lacks, an empty body (each a
    # ValueError of aiohttp's, which was a 500).
    for content_type, body in (("multipart/form-data", PNG),
                               ("multipart/form-data; boundary=zz", b"--yy\r\n\r\n" + PNG),
                               ("multipart/form-data; boundary=zz", b"")):
        await refused(await api.client.post(url, data=body, headers={
            **op, "Content-Type": content_type}), 400)
    # No name at all, an empty file, no file part.
    await refused(await api.client.post(url, data=PNG, headers=op), 422)
    await refused(await api.client.post(url, params={"filename": "kosong.txt"}, data=b"",
                                        headers=op), 422)
    form = aiohttp.FormData()
    form.add_field("note", "tanpa berkas")
    await refused(await api.client.post(url, data=form, headers=op), 422)
    # Too large: declared, and streamed without a declared length.
    big = os.urandom(MAX_UPLOAD + 1)
    await refused(await api.client.post(url, params={"filename": "besar.bin"}, data=big,
                                        headers=op), 413)

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(MAX_UPLOAD // 1000 + 2):
            yield os.urandom(1000)

    await refused(await api.client.post(url, params={"filename": "besar.bin"}, data=stream(),
                                        headers=op), 413)
    form = aiohttp.FormData()
    form.add_field("file", big, filename="besar.bin")
    await refused(await api.client.post(url, data=form, headers=op), 413)
    # An unknown incident.
    await refused(await api.client.post("/api/incidents/999/attachments",
                                        params={"filename": "a.png"}, data=PNG, headers=op),
                  404)
    assert stored_files(api) == []
    assert await incident_state(api.dsn) == before
    assert await api.audit("attachment.upload") == []


async def test_an_attachment_outside_the_storage_root_is_not_served(
        api: Api, database_owner_dsn: str) -> None:
    op = await api.account("op1", "operator")
    number = await new_incident(api, op)
    response = await api.client.post(f"/api/incidents/{number}/attachments",
                                     params={"filename": "a.png"}, data=PNG, headers=op)
    attachment = await response.json()
    connection = await asyncpg.connect(database_owner_dsn)  # tampering: not the line
    try:
        # As if the row had been tampered with: a path that climbs out of the root.
        await connection.execute(
            "UPDATE incident_attachments SET stored_path = 'x/../../../etc/passwd'")
    finally:
        await connection.close()
    response = await api.client.get(attachment["download_url"], headers=op)
    assert response.status == 404
    assert (await error_of(response))["code"] == "attachment_unavailable"
    assert await api.audit("attachment.download") == []


# -- OpenAPI ---------------------------------------------------------------------------------


async def test_openapi_documents_exactly_the_routed_api(api: Api) -> None:
    op = await api.account("op1", "operator")
    document = await (await api.client.get("/api/openapi.json", headers=op)).json()
    assert document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, operations in document["paths"].items()
                  for method in operations}
    routed = set()
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path is not None and path.startswith("/api/"):  # the console is not the API
            routed.add((route.method, path))
    assert documented == routed
    declared = {(r.method, r.path) for r in api_routes()}
    # Each GET documented with its HEAD (a WebSocket's aside), the same operation but a body.
    assert documented == declared | {("HEAD", path) for method, path in declared
                                     if method == "GET"}
    head = document["paths"]["/api/incidents"]["head"]
    assert head["operationId"] == "list_incidents_head"
    assert all("content" not in answer for answer in head["responses"].values())
    # Every reference resolves.
    text = json.dumps(document)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in document["components"]["schemas"], name
    # Every body can be unreadable (400) or too large (413), as every route answers them.
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"]), (method, path)
    operation = document["paths"]["/api/recordings/{recording_id}/audio"]["get"]
    assert operation["x-roles"] == ["operator", "supervisor"]
    assert {"401", "403", "404"} <= set(operation["responses"])
    assert document["paths"]["/api/session"]["post"]["security"] == []

