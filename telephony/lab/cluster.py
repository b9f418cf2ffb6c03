"""A two-node (or more) lab cluster on loopback: Asterisk nodes behind the Kamailio front.

Each node is a lab instance (:class:`telephony.lab.chroot.Lab`) on a loopback address of its
own (:func:`node_host`) with its own ``asterisk_systemname``, SIP, AMI, FastAGI, HTTP and RTP
ports and state directory, and its own line server: ``python -m telephony serve`` as a
separate process (:class:`telephony.lab.line.LineServer`), so a test can ``kill -9`` it with
its Asterisk, as a machine dying would. Every node's line writes into the one database of the
settings; the nodes share their operators' device state and each other's FastAGI servers
(``cluster_nodes``, as a site's). The front (:class:`telephony.lab.kamailio.Front`)
spreads the carrier's calls over the nodes (the carrier on an address of its own,
:data:`CARRIER_HOST`, as a real site's is: the nodes know its calls by the front's mark, not
by their source address, which is the front's); the operator phones (one sipp UAS) register at
the front with their digest secrets (:func:`register_phones`), and every node's operator
endpoints ring them through it.

:func:`cluster_settings` derives the front's and the nodes' settings from one base;
:func:`log_in` puts operators in a node's queues with its Asterisk CLI, as the desk's
QueueAdd does (telephony/desks/operators.py plans the queues).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace

import asyncpg

from ivr.menu import load_menu
from ivr.prompts import build_line_prompts
from telephony.desks.operators import OperatorDesk
from telephony.desks.phones import digest
from telephony.kamailio.registrar import authorization, header, registrar_uri
from telephony.lab import sipp
from telephony.lab.chroot import Lab, LabError
from telephony.lab.kamailio import Front
from telephony.lab.line import LineServer
from telephony.settings import ClusterNode, Settings

log = logging.getLogger(__name__)

FRONT_HOST = "127.0.0.1"  # the front's address, where every call it relays comes from
PHONE_HOST = "127.0.0.2"  # the phones' address: neither the front's nor the carrier's
# The carrier's address (Settings.carrier_address): not the front's, so every call through the
# front shows that a node takes the carrier's calls by the front's mark, not by address.
CARRIER_HOST = "127.0.0.5"
# Someone else on the network (a scanner, a misconfigured device): neither the front's, the
# carrier's, a node's nor the phones' address.
STRANGER_HOST = "127.0.0.6"


def node_host(index: int) -> str:
    """Node ``index``'s own loopback address (127.0.0.11, .12, ...): not the front's, the
    carrier's nor another node's (each node knows its peers by address)."""
    return f"127.0.0.{11 + index}"


def _free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def cluster_settings(base: Settings, names: Sequence[str], *, rtp_base: int,
                     rtp_span: int = 2000) -> tuple[Settings, list[Settings]]:
    """The front's settings and each node's, on free loopback ports; node ``i`` has its own
    address (:func:`node_host`: its SIP and FastAGI listen there), takes the RTP ports
    ``rtp_base + i * rtp_span`` onwards and keeps its state in ``base.state_dir / name``.
    The carrier calls the front from :data:`CARRIER_HOST`. Each node's line serves HTTP on
    the node's address too, where the other lines forward what acts on its calls.
    Every one of them knows the front and all nodes (``cluster_nodes``): the nodes share
    their operators' device state and each other's FastAGI servers. Browser softphones
    register at the front's WebSocket (``kamailio_ws_port``); a node's media for them is on
    its own address (loopback only: ``softphone_media_address``, whose ICE candidates the lab
    maps there, and ``softphone_ice_networks``)."""
    hosts = [node_host(index) for index in range(len(names))]
    sip_ports = [sipp.free_udp_port(host) for host in hosts]
    agi_ports = [_free_tcp_port(host) for host in hosts]
    http_ports = [_free_tcp_port(host) for host in hosts]
    front = replace(base, kamailio_host=FRONT_HOST, carrier_address=CARRIER_HOST,
                    kamailio_port=sipp.free_udp_port(FRONT_HOST),
                    kamailio_ws_port=_free_tcp_port(FRONT_HOST),
                    cluster_nodes=tuple(
                        ClusterNode(name, hosts[index], sip_ports[index], agi_ports[index],
                                    http_ports[index])
                        for index, name in enumerate(names)))
    nodes = [
        replace(front, asterisk_systemname=name, lab_instance=f"{base.lab_instance}-{name}",
                state_dir=base.state_dir / name, sip_host=hosts[index],
                sip_port=sip_ports[index], agi_host=hosts[index], agi_port=agi_ports[index],
                ami_port=_free_tcp_port(), http_host=hosts[index], http_port=http_ports[index],
                asterisk_http_port=_free_tcp_port(), asterisk_https_port=_free_tcp_port(),
                rtp_port_start=rtp_base + index * rtp_span,
                rtp_port_end=rtp_base + (index + 1) * rtp_span - 2,
                softphone_media_address=hosts[index], softphone_ice_networks=("127.0.0.0/8",))
        for index, name in enumerate(names)
    ]
    return front, nodes


@dataclass
class Node:
    """One running node: its settings, its Asterisk and its line server."""

    settings: Settings
    lab: Lab
    line: LineServer

    @property
    def name(self) -> str:
        """Its systemname, the prefix of its call ids."""
        assert self.settings.asterisk_systemname is not None
        return self.settings.asterisk_systemname

    async def kill(self) -> None:
        """``kill -9`` its Asterisk and its line server at once."""
        self.line.kill()
        await asyncio.to_thread(self.lab.crash)


def phone_secret(user: str) -> str:
    """The lab's secret of an operator phone (a lab has nothing to hide)."""
    return f"lab-{user}-secret"


async def register_phones(front: Settings, owner_dsn: str, users: Sequence[str], *,
                          phone_port: int, host: str = PHONE_HOST) -> None:
    """Give each operator phone a digest secret in the database (as an admin's desk
    assignment does) and register it at the front from ``host:phone_port``, where the
    operator UAS then answers for all of them (see :func:`register`)."""
    connection = await asyncpg.connect(owner_dsn)
    try:
        await connection.executemany(
            "INSERT INTO operators (operator, display_name) VALUES ($1, $2) "
            "ON CONFLICT (operator) DO NOTHING", [(f"PJSIP/{user}", user) for user in users])
        await connection.executemany(
            "INSERT INTO phone_secrets (operator, realm, md5_cred) VALUES ($1, $2, $3) "
            "ON CONFLICT (operator) DO UPDATE SET md5_cred = EXCLUDED.md5_cred",
            [(f"PJSIP/{user}", front.sip_realm,
              digest(user, front.sip_realm, phone_secret(user))) for user in users])
    finally:
        await connection.close()
    await asyncio.to_thread(register, front, users, host=host, port=phone_port)


def register(front: Settings, users: Sequence[str], *, host: str, port: int,
             expires: int = 600, timeout: float = 2.0, secret: str | None = None) -> None:
    """REGISTER each of ``users`` at the front from ``host:port`` (the contact), answering
    its digest challenge (RFC 2617, MD5, qop auth) with the lab's secret (or ``secret``, a
    phone typed in wrong): hundreds of phones
    in a second, where a sipp phone per operator (``sipp.phone``, as tests/e2e/test_phones.py
    registers one) would take minutes. Raises :class:`LabError` unless each ends with 200."""
    target = (front.kamailio_host, front.kamailio_port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))
        sock.settimeout(timeout)
        for user in users:
            call_id = f"{uuid.uuid4().hex}@{host}"
            reply = _exchange(sock, target, _register_request(
                front, user, (host, port), call_id=call_id, cseq=1, expires=expires,
                authorization=""))
            if reply.startswith("SIP/2.0 401"):
                challenge = header(reply, "WWW-Authenticate")
                reply = _exchange(sock, target, _register_request(
                    front, user, (host, port), call_id=call_id, cseq=2, expires=expires,
                    authorization=_digest_response(front, user, challenge, secret)))
            if not reply.startswith("SIP/2.0 200"):
                raise LabError(f"{user} could not register at the front: "
                               f"{reply.splitlines()[0] if reply else 'no reply'}")


def _register_request(front: Settings, user: str, contact: tuple[str, int], *, call_id: str,
                      cseq: int, expires: int, authorization: str) -> str:
    host, port = contact
    registrar = f"sip:{front.kamailio_host}:{front.kamailio_port}"
    lines = [
        f"REGISTER {registrar} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
        f"From: <sip:{user}@{front.kamailio_host}>;tag={call_id[:8]}",
        f"To: <sip:{user}@{front.kamailio_host}>", f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER", f"Contact: <sip:{user}@{host}:{port}>",
        f"Expires: {expires}", "Max-Forwards: 70", "User-Agent: siaga112-lab-phone",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return "\r\n".join([*lines, "Content-Length: 0", "", ""])


def _exchange(sock: socket.socket, target: tuple[str, int], request: str) -> str:
    """Send ``request``; the first final reply to it (provisional ones skipped)."""
    sock.sendto(request.encode(), target)
    deadline = time.monotonic() + (sock.gettimeout() or 2.0)
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        text = data.decode(errors="replace")
        if text.startswith("SIP/2.0 ") and not text.startswith("SIP/2.0 1"):
            return text
    return ""


def _digest_response(front: Settings, user: str, challenge: str, secret: str | None) -> str:
    """The Authorization header answering ``challenge`` for ``user`` with ``secret`` (None:
    the lab's)."""
    # The front challenges in its realm, the one the secrets are stored for.
    return authorization(challenge, user, digest(user, front.sip_realm,
                                                 phone_secret(user) if secret is None else secret),
                         registrar_uri((front.kamailio_host, front.kamailio_port)))


async def log_in(lab: Lab, interfaces: Sequence[str], skills: Mapping[str, int]) -> None:
    """Put operators into the queues of their skills on one node (its CLI's
    ``queue add member``, the QueueAdd the desk sends)."""
    desk = OperatorDesk(_NoAmi(), load_menu(lab.settings.menu_file))
    for interface in interfaces:
        for queue, penalty in sorted(desk.plan(interface, skills).items()):
            await lab.acli(f"queue add member {interface} to {queue} penalty {penalty}")


class _NoAmi:
    """OperatorDesk.plan needs no AMI; the cluster logs in with the CLI instead."""

    async def send_action(self, action: Mapping[str, str]) -> object:
        raise LabError(f"no AMI here: {action.get('Action')}")


@dataclass
class Cluster:
    """A running cluster: the front's settings, the nodes, the operator phones' UAS, and the
    running front (its log)."""

    front: Settings
    nodes: list[Node]
    phones: sipp.Sipp
    kamailio: Front | None = None

    def node(self, name: str) -> Node:
        """The node named ``name``."""
        return next(node for node in self.nodes if node.name == name)


@contextlib.asynccontextmanager
async def running_cluster(front: Settings, nodes: Sequence[Settings], owner_dsn: str, *,
                          operators: Sequence[str], skills: Mapping[str, int],
                          ring_seconds: float = 0.0,
                          logged_in: Sequence[str] | None = None,
                          trace_phones: bool = False) -> AsyncIterator[Cluster]:
    """Every node's Asterisk (with the line's prompts) and line server, the front, the
    ``operators``' phones registered at the front and answered by one sipp UAS (after
    ``ring_seconds``; every SIP message it sent and received kept if ``trace_phones``:
    ``phones.messages``), and the operators (those of ``logged_in``, if given) logged in on
    every node; all stopped however it ends (a node killed meanwhile included)."""
    async with contextlib.AsyncExitStack() as stack:
        running: list[Node] = []
        for settings in nodes:
            await asyncio.to_thread(
                build_line_prompts, load_menu(settings.menu_file), settings.prompts_dir,
                settings.prompt_overrides_dir, settings.prompt_voice)
            lab = Lab(settings)
            stack.callback(lab.stop)
            await asyncio.to_thread(lab.start)
            await asyncio.to_thread(lab.site.install_prompts, settings.prompts_dir)
            # One at a time: the first migrates the database and creates the phones' role.
            line = await stack.enter_async_context(LineServer(settings))
            running.append(Node(settings, lab, line))
        kamailio = await stack.enter_async_context(Front(front))
        phone_port = sipp.free_udp_port(PHONE_HOST)
        await register_phones(front, owner_dsn, operators, phone_port=phone_port)
        phones = await stack.enter_async_context(
            sipp.operator(phone_port, host=PHONE_HOST, ring_seconds=ring_seconds,
                          trace_messages=trace_phones))
        for node in running:
            await log_in(node.lab, [f"PJSIP/{user}" for user in (
                operators if logged_in is None else logged_in)], skills)
        yield Cluster(front, running, phones, kamailio)
