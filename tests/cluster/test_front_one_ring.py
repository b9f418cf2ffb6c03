"""One ringing call per operator at the front (issue 15: "no operator rings twice at once").

Two nodes' queues learn of each other's operators only by their device state (PUBLISH, a
moment late), so both may ring the same operator at once; every such INVITE passes the front
(kamailio.cfg, route[RING_ONCE]), which lets one ring: another node's INVITE for an operator
whose phone is ringing, or was answered less than the hold (1 to 2 s) ago, gets 486 Busy
Here.

No Asterisk here: the two "nodes" are SIP clients on the addresses and ports of the front's
``cluster_nodes`` (tests/support/sip_node.py), the operator's phone is a sipp UAS registered
at the front that rings 2 s, then answers. Without the front's check both INVITEs ring the
phone, and the test fails at its first assertion.

The same stand-ins try what else reaches the front about a phone: a phone gone without
unregistering (a node's qualify of it must go unanswered), a phone with a wrong secret and a
stranger's flood (each refusal logged once, the phone not locked out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import replace

import pytest

from telephony.app import prepare_database, schema_preparation
from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.lab import sipp
from telephony.lab.chroot import LabError, operator_names
from telephony.lab.cluster import (
    CARRIER_HOST,
    FRONT_HOST,
    PHONE_HOST,
    STRANGER_HOST,
    node_host,
    register,
    register_phones,
)
from telephony.lab.kamailio import Front
from telephony.settings import ClusterNode, Settings
from tests.support.db import owner_dsn
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.sip_node import Invite, Reply, SipNode

pytestmark = pytest.mark.cluster

USER = operator_names(1)[0]
RING_SECONDS = 2.0  # the phone rings this long, then answers
HOLD = 1.0  # kamailio.cfg's RING_HOLD: the least time a just-answered phone is refused
QUALIFY_TIMEOUT = 3.0  # Asterisk's qualify_timeout (the ps_aors views leave its default)


def front_settings(line: Settings) -> Settings:
    """A front with two nodes, each on its own address, reading the phones' digests from
    ``line``'s database."""
    hosts = [node_host(0), node_host(1)]
    return replace(line, kamailio_host=FRONT_HOST, carrier_address=CARRIER_HOST,
                   kamailio_port=sipp.free_udp_port(FRONT_HOST), kamailio_ws_port=free_port(),
                   cluster_nodes=tuple(
                       ClusterNode(f"node{i + 1}", host, sipp.free_udp_port(host), free_port())
                       for i, host in enumerate(hosts)))


@pytest.fixture
def nodes(settings: Settings) -> Iterator[tuple[Settings, SipNode, SipNode]]:
    """The front's settings and its two nodes' SIP sockets."""
    front = front_settings(settings)
    with ExitStack() as stack:
        one, two = (stack.enter_context(SipNode(node.host, node.sip_port,
                                                (front.kamailio_host, front.kamailio_port)))
                    for node in front.cluster_nodes)
        yield front, one, two


async def ring(node: SipNode, user: str = USER) -> tuple[Invite, Reply]:
    """A node's INVITE to ``user`` and its first reply after 100 Trying (180 if it rings)."""
    invite = node.invite(user)
    return invite, await asyncio.to_thread(node.reply, invite.call_id)


async def refused(node: SipNode, invite: Invite, reply: Reply) -> None:
    """``reply`` is the front's 486, which the node ACKs."""
    assert reply.status == 486, reply.text
    node.ack(invite, reply)


async def cancelled(node: SipNode, invite: Invite) -> None:
    """The node CANCELs a ringing call: 200 to the CANCEL, 487 to the INVITE, ACKed."""
    assert (await asyncio.to_thread(node.cancel, invite)).status == 200
    final = await asyncio.to_thread(node.reply, invite.call_id, final=True)
    assert final.status == 487, final.text
    node.ack(invite, final)


@asynccontextmanager
async def front_with_phone(pg_cluster: EmbeddedPostgres, cluster_dsn: str,
                           front: Settings) -> AsyncIterator[tuple[Front, int]]:
    """The front running on ``cluster_dsn`` with :data:`USER`'s phone registered at it from
    ``PHONE_HOST``; the front and the phone's port (nobody answers there yet)."""
    owner = owner_dsn(pg_cluster, cluster_dsn)
    line = replace(front, database_dsn=cluster_dsn, database_owner_dsn=owner)
    database = Database(line, prepare=schema_preparation(line))
    try:  # the phones' reading role, as the first line's start makes it
        await prepare_database(database, line)
    finally:
        await database.close()
    phone_port = sipp.free_udp_port(PHONE_HOST)
    async with Front(line) as kamailio:
        # Registered from the port the phone then answers on (as running_cluster does).
        await register_phones(line, owner, [USER], phone_port=phone_port)
        yield kamailio, phone_port


async def test_an_operator_rings_for_one_call_at_a_time(
        pg_cluster: EmbeddedPostgres, cluster_dsn: str,
        nodes: tuple[Settings, SipNode, SipNode]) -> None:
    front, node1, node2 = nodes
    async with front_with_phone(pg_cluster, cluster_dsn, front) as (kamailio, phone_port), \
            sipp.operator(phone_port, host=PHONE_HOST, ring_seconds=RING_SECONDS):
        await one_ring(kamailio, node1, node2)


async def test_a_phone_gone_without_unregistering_is_unreachable_to_the_nodes(
        pg_cluster: EmbeddedPostgres, cluster_dsn: str,
        nodes: tuple[Settings, SipNode, SipNode]) -> None:
    """A desk phone unplugged (or its network cut) stays registered at the front until its
    registration expires (up to 600 s). A node's qualify of it must go unanswered, so that
    the node marks it unreachable within its qualify timeout (3 s) and its queues stop
    offering it calls, as a node the phone registered with would. The front used to answer
    the qualify itself with 408 after its node timeout (1 s), which Asterisk takes for the
    phone's reply: "Reachable", rung for every caller in its queues until the expiry."""
    front, node1, _ = nodes
    async with front_with_phone(pg_cluster, cluster_dsn, front) as (kamailio, _):
        try:
            reply: Reply | None = await asyncio.to_thread(node1.options, USER,
                                                          within=QUALIFY_TIMEOUT + 1)
        except AssertionError:  # no reply within the node's wait: unreachable
            reply = None
        assert reply is None, f"the front answered a gone phone's qualify: {reply.text}"
        # A call offered to it meanwhile (before the node's next qualify) is refused within
        # the node timeout, not left ringing: the queue goes on to another operator.
        started = time.monotonic()
        invite = node1.invite(USER)
        final = await asyncio.to_thread(node1.reply, invite.call_id, final=True)
        assert final.status == 408, final.text
        assert time.monotonic() - started < QUALIFY_TIMEOUT, kamailio.log_text()[-2000:]
        node1.ack(invite, final)


async def one_ring(kamailio: Front, node1: SipNode, node2: SipNode) -> None:
    """The steps, with the phone registered and answering."""
    # Both nodes pick the operator at once: one rings, the other is told Busy Here.
    (first, one), (second, two) = await asyncio.gather(ring(node1), ring(node2))
    assert sorted((one.status, two.status)) == [180, 486], (one.text, two.text,
                                                            kamailio.log_text()[-2000:])
    ringing, invite, other, refusal = ((node1, first, node2, two) if one.status == 180
                                       else (node2, second, node1, one))
    await refused(other, second if other is node2 else first, refusal)
    # The ringing node's retransmission of its INVITE is the same call: still ringing.
    ringing.retransmit(invite)
    again = await asyncio.to_thread(ringing.reply, invite.call_id)
    assert again.status == 180, again.text
    # A qualify of the ringing phone is not a call: answered by the phone.
    assert (await asyncio.to_thread(other.options, USER)).status == 200
    # The same node's second call for the operator is refused too.
    third, reply = await ring(ringing)
    await refused(ringing, third, reply)

    # The ringing call is cancelled (another operator took the caller): the operator is
    # free at once.
    await cancelled(ringing, invite)
    fourth, reply = await ring(other)
    assert reply.status == 180, reply.text

    # Answered: a second ring within the hold is refused, one after it rings.
    answer = await asyncio.to_thread(other.reply, fourth.call_id, final=True,
                                     within=RING_SECONDS + 5)
    assert answer.status == 200, answer.text
    answered = time.monotonic()
    other.ack(fourth, answer)
    fifth, reply = await ring(ringing)
    await refused(ringing, fifth, reply)
    assert time.monotonic() - answered < HOLD

    async def rings_again() -> tuple[Invite, Reply] | None:
        invite, reply = await ring(ringing)
        if reply.status == 486:
            await refused(ringing, invite, reply)
            return None
        return invite, reply

    sixth, reply = await eventually("a ring after the hold", rings_again, within=6,
                                    interval=0.25)
    assert reply.status == 180, reply.text
    assert time.monotonic() - answered >= HOLD
    await cancelled(ringing, sixth)
    assert (await asyncio.to_thread(other.bye, fourth, answer)).status == 200


async def test_refusals_are_logged_once_and_lock_nobody_out(
        pg_cluster: EmbeddedPostgres, cluster_dsn: str,
        nodes: tuple[Settings, SipNode, SipNode]) -> None:
    """A desk phone typed in with a wrong secret retries every few seconds, and a scanner on
    the network sends INVITEs by the thousand: the front's log says so once each (it said
    nothing of the phone, and a line for each of the scanner's requests), and the phone,
    its secret corrected, registers at once (the desks often share one NAT address)."""
    async with front_with_phone(pg_cluster, cluster_dsn, nodes[0]) as (kamailio, _):
        line = kamailio.settings
        port = sipp.free_udp_port(PHONE_HOST)
        for _attempt in range(5):
            with pytest.raises(LabError, match=r"could not register at the front: SIP/2\.0 401"):
                await asyncio.to_thread(register, line, [USER], host=PHONE_HOST, port=port,
                                        secret="not-the-secret")
        with SipNode(STRANGER_HOST, sipp.free_udp_port(STRANGER_HOST),
                     kamailio.address) as stranger:
            for _attempt in range(20):
                invite = stranger.invite(USER)
                final = await asyncio.to_thread(stranger.reply, invite.call_id, final=True)
                assert final.status == 403, final.text
                stranger.ack(invite, final)
        await asyncio.to_thread(register, line, [USER], host=PHONE_HOST, port=port)
        log = kamailio.log_text()
    wrong = f"refused REGISTER of {USER} from {PHONE_HOST}: wrong secret"
    scanner = f"refused INVITE from {STRANGER_HOST} (neither the carrier nor a node)"
    assert log.count(wrong) == 1 and log.count(scanner) == 1, log[-3000:]
