"""The front's own database work through a PostgreSQL failover (issue 15): Kamailio reads the
phones' digests (auth_db, the view ``kamailio_subscribers``) and records every call it relays
(acc, the table ``front_calls``) on whichever node is the primary, its ``db_url`` listing
every Patroni node (each on an address of its own, all on one port: telephony/lab/patroni.py)
with ``target_session_attrs=read-write``. With the primary's PostgreSQL killed, a phone
registers anew at the front once the replica takes writes; once the old primary is back as
its replica (read-only, and first in the list when it is pg1), a carrier call through the
front is recorded on the new primary, not refused by the old one. Without the host list
(nodes on two ports, only the first named) the registration fails while pg1 is down; without
``target_session_attrs`` the call's record goes to pg1 as a replica, is refused and lost.

No Asterisk here: the front's node is a sipp UAS that answers every INVITE, which is all the
front needs of a node to relay a call and record it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import asyncpg
import pytest

from telephony.app import prepare_database, schema_preparation
from telephony.db.connection import Database
from telephony.lab import sipp
from telephony.lab.chroot import operator_names
from telephony.lab.cluster import (
    CARRIER_HOST,
    FRONT_HOST,
    PHONE_HOST,
    node_host,
    register,
    register_phones,
)
from telephony.lab.kamailio import Front
from telephony.lab.patroni import PatroniLab
from telephony.settings import ClusterNode, Settings
from tests.support.cluster import caller_prefix
from tests.support.net import free_port
from tests.support.polling import eventually

pytestmark = pytest.mark.cluster

log = logging.getLogger(__name__)

USER = operator_names(1)[0]


def front_settings(line: Settings) -> Settings:
    """The front of one node (the sipp UAS on :func:`node_host` 0), reading and writing the
    lab's Patroni pair as the nodes' phone role (what ``line`` says of the database)."""
    host = node_host(0)
    return replace(line, kamailio_host=FRONT_HOST, carrier_address=CARRIER_HOST,
                   kamailio_port=sipp.free_udp_port(FRONT_HOST), kamailio_ws_port=free_port(),
                   cluster_nodes=(ClusterNode("node1", host, sipp.free_udp_port(host),
                                              free_port()),))


async def call_through(front: Settings, caller: str) -> None:
    """One carrier call to 112 through the front, answered by the node, ended by the caller."""
    async with sipp.caller(front.kamailio_host, front.kamailio_port, "112", caller_id=caller,
                           talk_seconds=0.5, host=CARRIER_HOST) as run:
        result = await run.wait()
    assert result.ok, result.errors


async def connect(owner_dsn: str) -> asyncpg.Connection | None:
    """The owner's connection to the primary (the DSN's target_session_attrs), if any."""
    try:
        return await asyncpg.connect(owner_dsn, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None


async def recorded(owner_dsn: str, caller: str, within: float) -> asyncpg.Record:
    """The front's record (front_calls) of ``caller``'s call, on whichever node is primary."""

    async def row() -> asyncpg.Record | None:
        if (connection := await connect(owner_dsn)) is None:
            return None
        try:
            found: asyncpg.Record | None = await connection.fetchrow(
                "SELECT callid, sip_code, node FROM front_calls WHERE caller = $1", caller)
            return found
        finally:
            await connection.close()

    return await eventually(f"front_calls row of {caller}", row, within=within, interval=0.2)


async def takes_writes(patroni: PatroniLab, name: str, owner_dsn: str) -> bool | None:
    """``name`` is the primary by Patroni's word and its PostgreSQL out of recovery (Patroni
    says "leader" as it asks for the promotion, a moment before a write can be taken)."""
    if await asyncio.to_thread(patroni.primary) != name or \
            (connection := await connect(owner_dsn)) is None:
        return None
    try:
        return True if not await connection.fetchval("SELECT pg_is_in_recovery()") else None
    finally:
        await connection.close()


async def test_phones_register_and_calls_are_recorded_through_a_failover(
        patroni: PatroniLab) -> None:
    line = patroni.line_settings(patroni.settings)
    database = Database(line, prepare=schema_preparation(line))
    try:  # the schema and the phone role, as the first line's start makes them
        await prepare_database(database, line)
    finally:
        await database.close()
    front = front_settings(line)
    owner = patroni.owner_dsn()
    node = front.kamailio_nodes[0]
    phone_port = sipp.free_udp_port(PHONE_HOST)
    async with sipp.operator(front.cluster_nodes[0].sip_port, host=node_host(0)), \
            Front(front):
        # Before the failover: the phone registers, a call is recorded.
        await register_phones(front, owner, [USER], phone_port=phone_port)
        before = caller_prefix()
        await call_through(front, before)
        assert (await recorded(owner, before, within=10))["node"] == f"sip:{node}"

        primary = patroni.primary()
        assert primary is not None
        replica = next(n.name for n in patroni.nodes if n.name != primary)
        killed = time.monotonic()
        patroni.kill_postgres(primary)
        await eventually(f"{replica} taking writes", lambda: takes_writes(
            patroni, replica, owner), within=60, interval=0.2)
        log.info("%s took writes %.1f s after the kill", replica, time.monotonic() - killed)
        # The old primary is still down: the front finds its digest on the new one.
        await asyncio.to_thread(register, front, [USER], host=PHONE_HOST, port=phone_port)
        log.info("registered anew %.1f s after %s's PostgreSQL was killed",
                 time.monotonic() - killed, primary)

        # Patroni starts the old primary again as the new one's replica: read-only, and
        # first in the front's list of nodes when it is pg1.
        assert await asyncio.to_thread(patroni.wait_settled, 60) == (replica, primary)
        log.info("%s back as the replica %.1f s after the kill", primary,
                 time.monotonic() - killed)
        # A call relayed now is recorded on the new primary, not refused by the old one;
        # and the phone still registers.
        after = caller_prefix()
        await call_through(front, after)
        row = await recorded(owner, after, within=10)
        assert (row["sip_code"], row["node"]) == ("200", f"sip:{node}"), dict(row)
        await asyncio.to_thread(register, front, [USER], host=PHONE_HOST, port=phone_port)
        log.info("call recorded and phone registered %.1f s after the kill",
                 time.monotonic() - killed)
