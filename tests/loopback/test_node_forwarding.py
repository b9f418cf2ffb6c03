"""A request acting on a call another cluster node carries is answered by that node's line
(telephony/web/nodes.py, telephony/cluster/forward.py): two lines' web applications on
loopback sockets over one real PostgreSQL, as two nodes share it. The route that acts on a call
here is listening in's, its node the one of the call named (``node1-...``), as the line's own
routes find it (the desk's call, a leg's, the operator's as recorded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, Final, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.menu import load_menu
from telephony.ami.actions import AmiListActions
from telephony.ami.responses import AmiEvent
from telephony.calls.ids import node_name
from telephony.cluster.forward import LineForwarder
from telephony.db.connection import Database
from telephony.desks.service import assign_desk
from telephony.settings import ClusterNode, Settings
from telephony.supervision.http import SupervisionApi
from telephony.supervision.service import SupervisionAmi, SupervisionService
from telephony.transfers.http import TransferApi
from telephony.transfers.service import TransferService
from telephony.web.context import parse_networks
from telephony.web.request import json_body, json_response
from telephony.web.routing import CSRF_COOKIE, CSRF_HEADER, EVERYONE, SESSION, Body, Reply, Route
from telephony.web.server import build_app
from tests.support.calls import OPERATOR, add_calls, answered, call_facts
from tests.support.db import execute, fetch
from tests.support.web import PASSWORD, NoAmi, make_context

Client = TestClient[web.Request, web.Application]
CLIENT: Final = "203.0.113.9"  # the console's browser, as the HTTPS front names it
PATH: Final = "/api/supervision"  # a route the test serves with its own handler


def node_routes(node: str, served: list[dict[str, Any]]) -> list[Route]:
    """The route acting on a call: it runs on the node the body names; its handler says
    which line ran it, for whom, seen from where."""

    async def act(request: web.Request) -> web.StreamResponse:
        data = await json_body(request)
        served.append({"node": node, "user": request[SESSION].account.username,
                       "remote": request.remote, "data": data})
        return json_response({"served_by": node, "call_id": data["call_id"]}, status=202)

    async def call_node(request: web.Request) -> str | None:
        return node_name((await json_body(request))["call_id"])

    return [Route("POST", PATH, act, EVERYONE, "Tindakan pada panggilan", "uji",
                  Reply(202), Body("SupervisionRequest"), runs_on=call_node)]


def on(call_id: str) -> dict[str, str]:
    """A request about the call ``call_id``."""
    return {"operator": "PJSIP/op1001", "mode": "listen", "call_id": call_id}


class Nodes:
    """node1's and node2's lines; node2 forwards to node1's address."""

    def __init__(self, one: Client, two: Client, served: list[dict[str, Any]]) -> None:
        self.one, self.two, self.served = one, two, served

    async def bearer(self) -> dict[str, str]:
        response = await self.two.post("/api/session",
                                       json={"username": "op1", "password": PASSWORD})
        assert response.status == 201, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}


@pytest.fixture
async def nodes(database: Database, settings: Settings) -> AsyncIterator[Nodes]:
    context = make_context(settings, database)
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    # Both believe the front's X-Forwarded-For (the test client and the other line connect
    # from 127.0.0.1: node1 believes node2 as a peer, node2 the front).
    context = replace(context, config=replace(context.config,
                                              trusted_proxies=parse_networks(["127.0.0.1"])))
    served: list[dict[str, Any]] = []
    one = TestClient(TestServer(build_app(context, node_routes("node1", served))))
    await one.start_server()
    forwarder = LineForwarder("node2", {"node1": str(one.make_url("")).rstrip("/"),
                                        "node3": "http://127.0.0.1:9"})
    two = TestClient(TestServer(build_app(context, node_routes("node2", served),
                                          nodes=forwarder)))
    await two.start_server()
    try:
        yield Nodes(one, two, served)
    finally:
        await two.close()
        await forwarder.close()
        await one.close()


async def test_a_request_about_another_nodes_call_is_answered_by_that_nodes_line(
        nodes: Nodes) -> None:
    headers = {**await nodes.bearer(), "X-Forwarded-For": CLIENT, "X-Other": "not sent on"}
    response = await nodes.two.post(PATH, headers=headers, json=on("node1-1795430334.7"))
    assert response.status == 202, await response.text()
    assert await response.json() == {"served_by": "node1", "call_id": "node1-1795430334.7"}
    assert response.headers["Content-Type"].startswith("application/json")
    # node1's line checked the session itself, and sees the browser, not node2.
    assert nodes.served == [{"node": "node1", "user": "op1", "remote": CLIENT,
                             "data": on("node1-1795430334.7")}]


async def test_a_console_session_is_carried_with_its_csrf_token(nodes: Nodes) -> None:
    login = await nodes.two.post("/api/session", json={"username": "op1", "password": PASSWORD})
    assert login.status == 201
    csrf = nodes.two.session.cookie_jar.filter_cookies(nodes.two.make_url(""))[CSRF_COOKIE]
    response = await nodes.two.post(PATH, headers={CSRF_HEADER: csrf.value},
                                    json=on("node1-1795430334.8"))
    assert response.status == 202, await response.text()
    assert [entry["node"] for entry in nodes.served] == ["node1"]
    # Without the token node2 refuses it itself: nothing reaches node1.
    response = await nodes.two.post(PATH, json=on("node1-1795430334.9"))
    assert response.status == 403
    assert len(nodes.served) == 1


@pytest.mark.parametrize("call_id", ["node2-1795430334.1", "node9-1795430334.1",
                                     "1795430334.1"])
async def test_this_nodes_call_or_an_unlisted_nodes_is_handled_here(nodes: Nodes, call_id: str
                                                                    ) -> None:
    response = await nodes.two.post(PATH, headers=await nodes.bearer(), json=on(call_id))
    assert response.status == 202
    assert [entry["node"] for entry in nodes.served] == ["node2"]


async def test_a_forwarded_request_is_never_forwarded_again(nodes: Nodes) -> None:
    """A request another line forwarded is handled where it lands, whatever its body names:
    two lines whose records disagree cannot hand it back and forth."""
    headers = {**await nodes.bearer(), "X-Siaga112-Forwarded-By": "node1"}
    response = await nodes.two.post(PATH, headers=headers, json=on("node1-1795430334.1"))
    assert response.status == 202
    assert [entry["node"] for entry in nodes.served] == ["node2"]


async def test_a_node_whose_line_does_not_answer_is_a_503_and_nothing_runs_here(
        nodes: Nodes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "telephony")
    response = await nodes.two.post(PATH, headers=await nodes.bearer(),
                                    json=on("node3-1795430334.1"))
    assert response.status == 503
    error = (await response.json())["error"]
    assert error["code"] == "node_unreachable"
    assert "server node3" in error["message"] and "tidak menjawab" in error["message"]
    assert response.headers["Retry-After"]
    assert nodes.served == []
    lines = [r for r in caplog.records if "node3" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR


async def test_an_unauthenticated_request_is_refused_here_not_forwarded(nodes: Nodes) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.post(nodes.two.make_url(PATH), json=on("node1-1795430334.1"))
        assert response.status == 401
    assert nodes.served == []


async def test_the_other_line_sees_the_browser_when_the_nodes_have_addresses_of_their_own(
        database: Database, settings: Settings) -> None:
    """Each line believes X-Forwarded-For of the other nodes' listed addresses only (as
    WebConfig.from_settings makes it): node2's forward must leave from node2's listed address,
    not from the one the kernel picks (127.0.0.1 here, another address of the interface on a
    real host), or node1 took the hop for the client and audited node2's address."""
    one_host, two_host = "127.0.0.11", "127.0.0.12"
    context = make_context(settings, database)
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    served: list[dict[str, Any]] = []

    def trusting(*networks: str) -> Any:
        return replace(context, config=replace(context.config,
                                               trusted_proxies=parse_networks(list(networks))))

    one = TestClient(TestServer(build_app(trusting(two_host), node_routes("node1", served)),
                                host=one_host))
    await one.start_server()
    assert one.port is not None
    cluster = replace(settings, asterisk_systemname="node2", cluster_nodes=(
        ClusterNode("node1", one_host, 5060, 4573, one.port),
        ClusterNode("node2", two_host, 5060, 4573, 8112)))
    forwarder = LineForwarder.from_settings(cluster)
    assert forwarder is not None
    # node2 believes the front (the test client, on 127.0.0.1).
    two = TestClient(TestServer(build_app(trusting("127.0.0.1"), node_routes("node2", served),
                                          nodes=forwarder), host=two_host))
    await two.start_server()
    try:
        nodes = Nodes(one, two, served)
        headers = {**await nodes.bearer(), "X-Forwarded-For": CLIENT}
        response = await two.post(PATH, headers=headers, json=on("node1-1795430334.7"))
        assert response.status == 202, await response.text()
        assert [(entry["node"], entry["remote"]) for entry in served] == [("node1", CLIENT)]
    finally:
        await two.close()
        await forwarder.close()
        await one.close()


async def test_a_request_the_other_line_took_but_did_not_answer_in_time_may_have_run(
        database: Database, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """node1's line took the request (a transfer dialled, say) and its answer is late: the
    operator is not told to try again as if nothing happened, but that it may have run."""
    context = make_context(settings, database)
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    released = asyncio.Event()
    served: list[str] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        served.append("node1")
        async with asyncio.timeout(10):  # bounded: released once node2 has answered
            await released.wait()
        return json_response({}, status=202)

    async def call_node(request: web.Request) -> str | None:
        return node_name((await json_body(request))["call_id"])

    route = Route("POST", PATH, slow, EVERYONE, "Tindakan pada panggilan", "uji",
                  Reply(202), Body("SupervisionRequest"), runs_on=call_node)
    one = TestClient(TestServer(build_app(context, [route])))
    await one.start_server()
    forwarder = LineForwarder("node2", {"node1": str(one.make_url("")).rstrip("/")},
                              timeout=0.5)
    two = TestClient(TestServer(build_app(context, node_routes("node2", []), nodes=forwarder)))
    await two.start_server()
    try:
        nodes = Nodes(one, two, [])
        response = await two.post(PATH, headers=await nodes.bearer(),
                                  json=on("node1-1795430334.2"))
        assert response.status == 503
        error = (await response.json())["error"]
        assert error["code"] == "node_no_answer"
        assert "server node1" in error["message"]
        assert "mungkin sudah dijalankan" in error["message"]
        assert "Retry-After" not in response.headers
        assert served == ["node1"]
        assert any("took it but did not answer" in r.getMessage() for r in caplog.records)
    finally:
        released.set()
        await two.close()
        await forwarder.close()
        await one.close()


class CallOnNodeOne:
    """The transfer service as the resolvers see it: the operator's call and every leg are
    node1's; nothing is carried out here (a forward or a refusal comes first)."""

    async def desk_call(self, account: object) -> str:
        return "node1-1795430334.5"

    async def leg_call(self, account: object, leg_id: int) -> str:
        return "node1-1795430334.5"


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/api/desk/transfers", '{"mode": "blind"}', 422),
    ("/api/desk/transfers", '{"number_id": 1, "mode": "lempar"}', 422),
    ("/api/desk/transfers", "{bukan json", 400),
    ("/api/desk/transfers/7/steps", '{"step": "lompat"}', 422),
    ("/api/desk/transfers/7/steps", "[]", 422),
])
async def test_a_transfer_request_refused_for_its_body_is_refused_here(
        database: Database, settings: Settings, path: str, body: str, status: int) -> None:
    """A body the handler refuses is refused where it lands, with its own 4xx: it was sent
    on to the call's node, and with that node's line down the operator read 503 'tidak
    menjawab, coba lagi' for a request that could never succeed."""
    context = make_context(settings, database)
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    forwarder = LineForwarder("node2", {"node1": "http://127.0.0.1:9"})
    app = build_app(context, TransferApi(cast(TransferService, CallOnNodeOne())).routes(),
                    nodes=forwarder)
    try:
        async with TestClient(TestServer(app)) as two:
            login = await two.post("/api/session",
                                   json={"username": "op1", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {(await login.json())['token']}",
                       "Content-Type": "application/json"}
            response = await two.post(path, headers=headers, data=body)
            assert response.status == status, await response.text()
            # A sound body is sent on, to node1's line (down here).
            sound = '{"number_id": 1, "mode": "blind"}' if path.endswith("transfers") \
                else '{"step": "cancel"}'
            response = await two.post(path, headers=headers, data=sound)
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "node_unreachable"
    finally:
        await forwarder.close()


async def test_an_answer_arriving_in_pieces_is_relayed_whole(
        database: Database, settings: Settings) -> None:
    """The other line's answer is read to its end: one read gave only what had arrived, so
    an answer longer than a TCP segment or two could reach the operator cut short (broken
    JSON). A large answer arrives in many pieces even on loopback."""
    context = make_context(settings, database)
    await context.accounts.create("op1", "operator", PASSWORD, actor="test")
    answer = {"served_by": "node1", "steps": ["langkah"] * 60_000}

    async def act(request: web.Request) -> web.StreamResponse:
        return json_response(answer, status=202)

    async def call_node(request: web.Request) -> str | None:
        return node_name((await json_body(request))["call_id"])

    route = Route("POST", PATH, act, EVERYONE, "Tindakan pada panggilan", "uji",
                  Reply(202), Body("SupervisionRequest"), runs_on=call_node)
    one = TestClient(TestServer(build_app(context, [route])))
    await one.start_server()
    forwarder = LineForwarder("node2", {"node1": str(one.make_url("")).rstrip("/")})
    two = TestClient(TestServer(build_app(context, node_routes("node2", []), nodes=forwarder)))
    await two.start_server()
    try:
        nodes = Nodes(one, two, [])
        response = await two.post(PATH, headers=await nodes.bearer(),
                                  json=on("node1-1795430334.3"))
        assert response.status == 202
        assert await response.json() == answer
    finally:
        await two.close()
        await forwarder.close()
        await one.close()


class DeskLine:
    """node2's line with the real transfer routes over the test database; node1's line, where
    the calls here are, is down (a request sent on is a 503)."""

    def __init__(self, service: TransferService, two: Client) -> None:
        self.service, self.two = service, two

    async def bearer(self, name: str) -> dict[str, str]:
        login = await self.two.post("/api/session", json={"username": name, "password": PASSWORD})
        assert login.status == 201, await login.text()
        return {"Authorization": f"Bearer {(await login.json())['token']}"}


@pytest.fixture
async def desk_line(database: Database, settings: Settings) -> AsyncIterator[DeskLine]:
    """op1 at PJSIP/op1002 and op2 at OPERATOR, the calls' operator."""
    context = make_context(settings, database)
    for name, interface in (("op1", "PJSIP/op1002"), ("op2", OPERATOR)):
        await context.accounts.create(name, "operator", PASSWORD, actor="test")
        await assign_desk(database, load_menu(settings.menu_file), name, interface,
                          {"general": 5})
    service = TransferService(database, cast(AmiListActions, NoAmi()), context.desks,
                              incidents=context.incidents, dispatches=context.dispatches,
                              audit=context.accounts, ring_seconds=20)
    forwarder = LineForwarder("node2", {"node1": "http://127.0.0.1:9"})
    app = build_app(context, TransferApi(service).routes(), nodes=forwarder)
    try:
        async with TestClient(TestServer(app)) as two:
            yield DeskLine(service, two)
    finally:
        await forwarder.close()


async def test_a_step_on_another_operators_leg_is_refused_here(
        desk_line: DeskLine, database_dsn: str) -> None:
    """Only the operator who took a leg takes its steps: another's is refused where it lands
    (404, as node1 would), not sent on; with node1's line down it read 503 'coba lagi', and
    which leg ids exist (and on which node) showed through the difference."""
    number = await desk_line.service.save_number("damkar", "Pos Damkar", "0275321113")
    await answered(database_dsn, "node1-1795430334.5")
    [leg] = await fetch(database_dsn, """
        INSERT INTO call_legs (kind, call_id, operator, actor, number)
        VALUES ('attended_transfer', 'node1-1795430334.5', $1, 'op2', '0275321113')
        RETURNING leg_id""", OPERATOR)
    await execute(database_dsn, "INSERT INTO transfer_legs (leg_id, number_id, "
                  "operator_channel) VALUES ($1, $2, 'PJSIP/op1001-00000001')",
                  leg["leg_id"], number.number_id)
    path = f"/api/desk/transfers/{leg['leg_id']}/steps"
    for name, status in (("op1", 404), ("op2", 503)):
        response = await desk_line.two.post(path, headers=await desk_line.bearer(name),
                                            json={"step": "cancel"})
        assert response.status == status, await response.text()


async def test_a_transfer_of_a_call_that_has_ended_is_refused_here(
        desk_line: DeskLine, database_dsn: str) -> None:
    """The caller hung up and the operator clicks Alihkan on the page still showing the call:
    refused where it lands (409 'tidak sedang bicara', as node1 would), not sent on to the
    ended call's node (a 503 'coba lagi' while its line is down)."""
    number = await desk_line.service.save_number("damkar", "Pos Damkar", "0275321113")
    await add_calls(database_dsn, call_facts("node1-1795430334.6", talk=30))
    headers = await desk_line.bearer("op2")
    body = {"number_id": number.number_id, "mode": "blind"}
    response = await desk_line.two.post("/api/desk/transfers", headers=headers, json=body)
    assert response.status == 409, await response.text()
    assert "tidak sedang bicara" in (await response.json())["error"]["message"]
    # Talking on node1's call, it is sent on (node1's line, down here).
    await answered(database_dsn, "node1-1795430334.7")
    response = await desk_line.two.post("/api/desk/transfers", headers=headers, json=body)
    assert response.status == 503


class QuietAmi(NoAmi):
    """No Asterisk here, and no events to hear."""

    def subscribe(self, event: str, handler: Callable[[AmiEvent], None]) -> None:
        """Nothing arrives."""


@pytest.mark.parametrize(("supervisor", "operator", "status"), [
    ("baru", OPERATOR, 409),  # no phone of their own to ring: no_supervisor_phone
    ("kepala", "PJSIP/op9999", 404),  # no operator works there: unknown_operator
    ("kepala", OPERATOR, 503),  # sound: sent on to node1's line, down here
])
async def test_a_listen_in_the_handler_refuses_is_refused_here(
        database: Database, database_dsn: str, settings: Settings, supervisor: str,
        operator: str, status: int) -> None:
    """A listen-in the handler refuses before asking Asterisk (no phone, no such operator) is
    refused where it lands, with its own 4xx: it was sent on to the node of the operator's
    call, and with that node's line down the supervisor read 503 'coba lagi'."""
    context = make_context(settings, database)
    menu = load_menu(settings.menu_file)
    for name, role in (("kepala", "supervisor"), ("baru", "supervisor"), ("op2", "operator")):
        await context.accounts.create(name, role, PASSWORD, actor="test")
    await assign_desk(database, menu, "op2", OPERATOR, {"general": 5})
    await assign_desk(database, menu, "kepala", "PJSIP/sup3001", {})
    await answered(database_dsn, "node1-1795430334.8")
    service = SupervisionService(database, cast(SupervisionAmi, QuietAmi()), context.accounts)
    forwarder = LineForwarder("node2", {"node1": "http://127.0.0.1:9"})
    app = build_app(context, SupervisionApi(service).routes(), nodes=forwarder)
    try:
        async with TestClient(TestServer(app)) as two:
            login = await two.post("/api/session",
                                   json={"username": supervisor, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
            response = await two.post(PATH, headers=headers,
                                      json={"operator": operator, "mode": "listen"})
            assert response.status == status, await response.text()
    finally:
        await forwarder.close()
