"""What the cluster tier's modules share (tests/cluster): two lab nodes behind the Kamailio
front (telephony/lab/cluster.py: each node on an address of its own, its own systemname and
line server process, device state shared with the other node), callers at the front or at one
node, and bounded looks at a node's queues and channels."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg

from ivr.menu import load_menu
from telephony.accounts.service import AccountConfig, AccountService
from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.desks.phones import PhoneKind
from telephony.desks.service import assign_desk
from telephony.kamailio import CARRIER_MARK_HEADER, CARRIER_MARK_VALUE
from telephony.lab import sipp
from telephony.lab.chroot import Lab, LabError
from telephony.lab.cluster import Cluster, Node, cluster_settings, running_cluster
from telephony.settings import Settings
from tests.support.db import fetch, owner_dsn
from tests.support.polling import eventually
from tests.support.web import CHEAP_HASHER

# What the front adds to each INVITE it relays from the carrier (telephony/kamailio/).
FRONT_MARK = {CARRIER_MARK_HEADER: CARRIER_MARK_VALUE}
# Operators' skills: every queue (the overflow queue all-operators included).
ALL_SKILLS = {"general": 5, "medical": 5, "fire": 5, "security": 5, "disaster": 5}


def caller_prefix() -> str:
    """A caller number prefix no earlier run used: a lab node's queue_log outlives a run, and
    its line backfills the calls it finds there into the new database."""
    return "0812" + str(uuid.uuid4().int)[:5]


PORT_ATTEMPTS = 3  # a cluster whose free port was taken before it bound it starts again
PORT_TAKEN = "Address already in use"


@contextlib.asynccontextmanager
async def two_nodes(pg_cluster: EmbeddedPostgres, dsn: str, base: Settings, *,
                    rtp_base: int, operators: Sequence[str], rtp_span: int = 2000,
                    skills: Mapping[str, int] = ALL_SKILLS,
                    logged_in: Sequence[str] | None = None) -> AsyncIterator[Cluster]:
    """node1 and node2 behind the front, writing into ``dsn``, in a temp dir, with
    ``operators`` registered at the front and logged in on both nodes with the CLI (only
    those of ``logged_in``, if given) (each node's RTP ports: ``rtp_span`` of them from
    ``rtp_base``, node by node)."""
    owner = owner_dsn(pg_cluster, dsn)
    states: list[Path] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                state = Path(tempfile.mkdtemp(prefix="siaga112-cluster-"))
                states.append(state)
                settings = replace(base, state_dir=state, database_dsn=dsn,
                                   database_owner_dsn=owner)
                front, nodes = cluster_settings(settings, ("node1", "node2"),
                                                rtp_base=rtp_base, rtp_span=rtp_span)
                try:
                    running = await stack.enter_async_context(running_cluster(
                        front, nodes, owner, operators=operators, skills=skills,
                        logged_in=logged_in))
                except LabError as exc:
                    # Its free ports are chosen before its servers bind them; meanwhile the
                    # other worker's connections may take one (the kernel's ephemeral range).
                    if PORT_TAKEN not in str(exc) or attempt == PORT_ATTEMPTS:
                        raise
                    continue
                break
            yield running
    finally:
        for state in states:
            shutil.rmtree(state, ignore_errors=True)


async def browser_desk(cluster: Cluster, username: str, password: str, interface: str,
                       skills: Mapping[str, int]) -> None:
    """An operator account whose desk's phone is the browser (as ``siaga112 account desk
    USERNAME INTERFACE --phone browser`` makes it), in the cluster's one database: every node
    reads its endpoint from there (PJSIP realtime)."""
    await operator_desk(cluster, username, password, interface, skills,
                        phone=PhoneKind.BROWSER)



async def operator_desk(cluster: Cluster, username: str, password: str, interface: str,
                        skills: Mapping[str, int], *, phone: PhoneKind | None = None) -> None:
    """An operator account at ``interface`` with ``skills``, in the cluster's one database;
    ``phone``: its phone's kind (``None``: the desk phone the lab registered at the front,
    its secret left as it is)."""
    await account(cluster, username, password, "operator")
    settings = cluster.nodes[0].settings
    database = Database(settings)
    try:
        await assign_desk(database, load_menu(settings.menu_file), username, interface, skills,
                          realm=None if phone is None else settings.sip_realm, phone=phone)
    finally:
        await database.close()


async def account(cluster: Cluster, username: str, password: str, role: str) -> None:
    """An account of ``role`` (operator, supervisor, admin) in the cluster's one database."""
    database = Database(cluster.nodes[0].settings)
    try:
        accounts = AccountService(database, CHEAP_HASHER, AccountConfig())
        await accounts.create(username, role, password, display_name=username.title(),
                              actor="test")
    finally:
        await database.close()


def console_url(node: Settings) -> str:
    """Where a node's line server serves the console."""
    return f"http://{node.http_host}:{node.http_port}"


async def bearer(http: aiohttp.ClientSession, node: Settings, username: str, password: str
                 ) -> dict[str, str]:
    """``username`` logged in through ``node``'s line server's API: the bearer header."""
    response = await http.post(f"{console_url(node)}/api/session",
                               json={"username": username, "password": password})
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


def front_callers(cluster: Cluster, caller_id: str, *, calls: int, rate: float,
                  talk_seconds: float = 3.0, trace_messages: bool = False) -> sipp.Sipp:
    """The carrier's callers at the front, from the carrier's address: each presses 3
    (information) and stays."""
    host, port = cluster.front.kamailio_host, cluster.front.kamailio_port
    return sipp.caller(host, port, caller_id=caller_id, numbered=True, calls=calls, rate=rate,
                       dtmf="3", talk_seconds=talk_seconds, host=cluster.front.carrier_address,
                       trace_messages=trace_messages)


def node_callers(node: Settings, caller_id: str, *, calls: int = 1, rate: float = 1.0,
                 talk_seconds: float = 3.0, talking: bool = False, dtmf: str = "3",
                 dtmf_delay: float = 1.0) -> sipp.Sipp:
    """The carrier's callers straight at one node, as the front relays them (from the front's
    address, with its carrier mark): each presses ``dtmf`` (3, information) ``dtmf_delay`` s
    after the answer and stays, sending audio all the while if ``talking`` (G.711, sipp's
    pcap), else silent."""
    return sipp.caller(node.sip_host, node.sip_port, caller_id=caller_id, numbered=True,
                       calls=calls, rate=rate, dtmf=dtmf, dtmf_delay=dtmf_delay,
                       talk_seconds=talk_seconds, audio=talking, continuous=talking,
                       host=node.kamailio_host, headers=FRONT_MARK)


async def ended_calls(dsn: str, caller_prefix: str, count: int, within: float = 40.0,
                      ) -> list[asyncpg.Record]:
    """The ``count`` calls of callers whose number starts with ``caller_prefix``, once the
    database has them all ended."""

    async def probe() -> list[asyncpg.Record] | None:
        rows = await fetch(dsn, "SELECT * FROM calls WHERE caller_number LIKE $1 || '%'",
                           caller_prefix)
        if len(rows) < count or any(row["ended_at"] is None for row in rows):
            return None
        return rows

    return await eventually(f"{count} ended calls of {caller_prefix}*", probe, within)


async def member_state(lab: Lab, interface: str, queue: str = "all-operators") -> str:
    """How ``lab``'s queue sees an operator: "In use", "Not in use", ..."""
    shown = await lab.acli(f"queue show {queue}")
    line = next((row for row in shown.splitlines() if f"{interface} " in row), "")
    # "PJSIP/op1001 (ringinuse disabled) (dynamic) (In use) has taken no calls yet (...)"
    before, taken, _ = line.partition(" has taken")
    return before.rsplit("(", 1)[-1].rstrip(")") if taken else ""


async def member_paused(lab: Lab, interface: str, queue: str = "all-operators"
                        ) -> bool | None:
    """Whether ``lab``'s queue has the operator paused; ``None``: not a member there."""
    shown = await lab.acli(f"queue show {queue}")
    # "Sari (PJSIP/op1002) (ringinuse disabled) (dynamic) (paused:break was 3 secs ago) ...",
    # or, a member without a name of its own, "PJSIP/op1002 (ringinuse disabled) ...".
    named = re.compile(rf"(^|[\s(]){re.escape(interface)}[\s)]")
    line = next((row for row in shown.splitlines() if named.search(row)), None)
    return None if line is None else "(paused" in line


async def operator_channels(lab: Lab, interface: str) -> int:
    """The operator's channels on ``lab``: calls ringing or answered at their phone."""
    channels = await lab.acli("core show channels concise")
    return sum(row.startswith(f"{interface}-") for row in channels.splitlines())


async def waiting_callers(lab: Lab) -> int:
    """Callers waiting in any of ``lab``'s queues."""
    shown = await lab.acli("queue show")
    return sum(row.strip()[:1].isdigit() and ". " in row[:12] for row in shown.splitlines())


def peer_watch_log(node: Node) -> str:
    """What ``node``'s line logged about its peers (telephony/cluster/watch.py): for a failing
    test's message, since a timed-out wait alone says nothing of why."""
    return "\n".join(line for line in node.line.output().splitlines() if "peer node" in line)


async def equals(value: Awaitable[object], expected: object) -> bool | None:
    """For :func:`eventually`: True once ``value`` is ``expected``."""
    return True if await value == expected else None


async def shows(value: Awaitable[str], text: str) -> bool | None:
    """For :func:`eventually`: True once ``value`` holds ``text``."""
    return True if text in await value else None


@contextlib.asynccontextmanager
async def hung_up_after(*labs: Lab) -> AsyncIterator[None]:
    """Every channel left on ``labs`` hung up afterwards (the next test starts clean)."""
    try:
        yield
    finally:
        for lab in labs:
            with contextlib.suppress(Exception):
                await lab.acli("channel request hangup all")
