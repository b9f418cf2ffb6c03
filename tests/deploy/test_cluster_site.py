"""The cluster topology from docker/docker-compose.cluster.yml (issue 15), built from this
checkout and brought up on loopback ports of its own: carrier calls through the Kamailio
front reach the IVR on both Asterisk nodes, and their lines record them in the one database;
with one node's Asterisk container killed, new calls are answered by the other; with the
Patroni primary's container stopped, the replica is promoted and the line records a call all
the same, a phone registers anew at the front with its digest (read from the PostgreSQL node
left), node 2's Asterisk still reads the phone from the database, and the front records a
call on the new primary; nginx answers from the lines throughout.

The tests run in order on one cluster (module scope), each building on the one before: the
node killed in the second stays dead in the third. No operator logs in (tests/cluster has
operators on both nodes; here the containers are what is shown): each caller chooses fire
(1, 2) in the IVR and hangs up while it waits in the fire queue. The one phone registers at
the front only to show that its digest can be read.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest

from telephony.calls.ids import node_of
from telephony.lab import sipp
from telephony.lab.chroot import operator_names
from telephony.lab.cluster import PHONE_HOST, register, register_phones
from telephony.lab.kamailio import sip_options_answered
from telephony.settings import Settings, load_settings
from tests.support import docker
from tests.support.cluster import caller_prefix, ended_calls
from tests.support.db import fetch
from tests.support.polling import eventually

pytestmark = pytest.mark.deploy

SKILL: Final = "fire"  # the IVR's 1, 2
SECRETS: Final = "/var/lib/siaga112/secrets"
ASTERISK_CONF: Final = "/srv/siaga112/site/etc/asterisk.conf"
PHONE: Final = operator_names(1)[0]


def callers(ports: dict[str, int], prefix: str, calls: int) -> sipp.Sipp:
    """``calls`` carrier calls at once to 112 through the front, numbered after ``prefix``:
    each chooses fire and stays 2 s in the queue."""
    return sipp.caller("127.0.0.1", ports["front"], "112", caller_id=prefix, numbered=True,
                       calls=calls, rate=calls, dtmf="12", talk_seconds=2.0)


async def place(ports: dict[str, int], prefix: str, calls: int) -> None:
    async with callers(ports, prefix, calls) as run:
        result = await run.wait()
    assert result.ok, result.errors


def patroni_members(ports: dict[str, int], hosts: tuple[str, ...]) -> list[dict[str, Any]]:
    """The members as any node's Patroni REST API lists them (empty: none answers)."""
    for host in hosts:
        try:
            with urllib.request.urlopen(f"http://{host}:{ports['rest']}/cluster",
                                        timeout=2) as answer:
                members: list[dict[str, Any]] = json.loads(answer.read())["members"]
                return members
        except (OSError, ValueError, KeyError):
            continue
    return []


def running_primary(ports: dict[str, int], hosts: tuple[str, ...]) -> str | None:
    """The Patroni member (pg1 or pg2, also its compose service) running as the primary."""
    return next((str(member["name"]) for member in patroni_members(ports, hosts)
                 if member.get("role") == "leader" and member.get("state") == "running"),
                None)


async def reachable_through_nginx(ports: dict[str, int]) -> bool | None:
    """A line answers /healthz behind nginx (HTTPS, its self-signed certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(total=5)) as http, \
                http.get(f"https://127.0.0.1:{ports['https']}/healthz") as response:
            return True if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


@pytest.fixture(scope="module")
async def cluster(cluster_site: docker.Site, cluster_ports: dict[str, int],
                  cluster_lines: dict[int, str]) -> docker.Site:
    """The cluster once both lines are ready (database, AMI and FastAGI: /readyz), the front
    answers SIP and nginx reaches a line."""
    started = time.monotonic()

    async def lines_ready() -> bool | None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            for node in (1, 2):
                try:
                    url = f"{cluster_lines[node]}/readyz"
                    async with http.get(url) as response:
                        if response.status != 200:
                            return None
                except (aiohttp.ClientError, TimeoutError):
                    return None
        return True

    def front_answers() -> bool | None:
        return True if sip_options_answered("127.0.0.1", cluster_ports["front"]) else None

    try:
        await eventually("both lines ready", lines_ready, within=120, interval=0.5)
        await eventually("the front answering SIP OPTIONS",
                         lambda: asyncio.to_thread(front_answers), within=30)
        await eventually("a line through nginx", lambda: reachable_through_nginx(cluster_ports),
                         within=30)
    except AssertionError:
        print(cluster_site.logs(tail=40))
        raise
    cluster_site.timings["ready"] = time.monotonic() - started
    return cluster_site


@pytest.fixture(scope="module")
def database(cluster: docker.Site, cluster_ports: dict[str, int],
             cluster_pg_hosts: tuple[str, ...]) -> str:
    """The one database, as its owner, through every node (the one taking writes)."""
    password = cluster.compose("exec", "-T", "line2", "cat",
                               f"{SECRETS}/database_password").stdout.strip()
    assert password
    hosts = ",".join(f"{host}:{cluster_ports['pg']}" for host in cluster_pg_hosts)
    return (f"postgresql://siaga112:{quote(password, safe='')}@{hosts}/siaga112"
            "?target_session_attrs=read-write")


async def test_every_service_becomes_healthy(cluster: docker.Site) -> None:
    """Each long-running service has a health check (etcd's and Patroni's /health,
    Asterisk's CLI, each line's probe, the front's answer to a SIP OPTIONS, nginx's HTTPS)
    and each reaches "healthy"."""
    for service in ("etcd", "pg1", "pg2", "asterisk1", "asterisk2", "line1", "line2",
                    "kamailio", "nginx"):
        await docker.health_of(cluster, service, "healthy", within=120)


async def test_calls_through_the_front_reach_the_ivr_on_both_nodes(
        cluster: docker.Site, cluster_ports: dict[str, int], database: str) -> None:
    prefix = caller_prefix()
    started = time.monotonic()
    await place(cluster_ports, prefix, calls=4)
    calls = await ended_calls(database, prefix, 4, within=60)
    cluster.timings["spread"] = time.monotonic() - started
    assert {row["ivr_skill"] for row in calls} == {SKILL}, [dict(row) for row in calls]
    # Round robin: both nodes took calls, each recorded by its own line (its call ids).
    assert {node_of(row["call_id"]) for row in calls} == {"node1", "node2"}, \
        [row["call_id"] for row in calls]
    # The front recorded each call it relayed, on the primary (whichever node that is).
    relayed = await front_calls(database, prefix)
    assert sorted(row["callid"] for row in relayed) == sorted(
        row["sip_call_id"] for row in calls), [dict(row) for row in relayed]
    # Each line's peer watch has looked at its peer's contact every 5 s meanwhile, in
    # silence: no phone registers at a node here (the front takes them).
    for node in (1, 2):
        logged = cluster.logs(f"line{node}", tail=300)
        assert "could not read the peer nodes' contacts" not in logged, logged[-3000:]


async def test_a_killed_node_leaves_the_new_calls_to_the_other(
        cluster: docker.Site, cluster_ports: dict[str, int], database: str) -> None:
    cluster.compose("kill", "asterisk1")  # SIGKILL: the machine's Asterisk is gone
    prefix = caller_prefix()
    started = time.monotonic()
    await place(cluster_ports, prefix, calls=2)
    calls = await ended_calls(database, prefix, 2, within=60)
    cluster.timings["node_killed"] = time.monotonic() - started
    assert {(node_of(row["call_id"]), row["ivr_skill"]) for row in calls} == {
        ("node2", SKILL)}, [dict(row) for row in calls]
    # Still dead (docker does not restart a killed container): node2 took them on its own.
    running = cluster.compose("ps", "--services", "--filter", "status=running").stdout.split()
    assert "asterisk1" not in running and "asterisk2" in running, running
    assert await reachable_through_nginx(cluster_ports)


def front(ports: dict[str, int]) -> Settings:
    """The front as a phone sees it: its address and port, the realm of the digests."""
    return replace(load_settings(environ={}), kamailio_host="127.0.0.1",
                   kamailio_port=ports["front"])


async def front_calls(dsn: str, caller_prefix: str) -> list[asyncpg.Record]:
    """The front's records (acc) of the calls of callers whose number starts with
    ``caller_prefix``."""
    return await fetch(dsn, "SELECT * FROM front_calls WHERE caller LIKE $1 || '%'",
                       caller_prefix)


def asterisk_rx(site: docker.Site, service: str, command: str) -> str:
    """One Asterisk CLI command in a node's Asterisk container."""
    return site.compose("exec", "-T", service, "asterisk", "-C", ASTERISK_CONF, "-rx",
                        command, timeout=30).stdout


async def test_the_replica_takes_over_when_the_primary_stops(
        cluster: docker.Site, cluster_ports: dict[str, int],
        cluster_pg_hosts: tuple[str, ...], database: str) -> None:
    """The call runs while the primary's container stops (SIGTERM: Patroni gives up the
    leader key) and the replica is promoted: its facts wait in line2's spool meanwhile.
    Then the phones' database reads and the front's records follow: a phone registers anew
    at the front, node 2's Asterisk reads it (realtime), and a new call through the front
    is recorded by the front on the new primary."""
    hosts = cluster_pg_hosts
    primary = await asyncio.to_thread(running_primary, cluster_ports, hosts)
    assert primary in ("pg1", "pg2"), await asyncio.to_thread(
        patroni_members, cluster_ports, hosts)
    replica = "pg2" if primary == "pg1" else "pg1"
    phone_port = sipp.free_udp_port(PHONE_HOST)
    # The phone's digest in the database (as an admin's desk assignment makes it), and
    # registered once: the front can read it before the failover.
    await register_phones(front(cluster_ports), database, [PHONE], phone_port=phone_port)
    prefix = caller_prefix()
    started = time.monotonic()

    async def promoted() -> bool | None:
        found = await asyncio.to_thread(running_primary, cluster_ports, hosts)
        return True if found == replica else None

    call = asyncio.create_task(place(cluster_ports, prefix, calls=1))
    try:
        await asyncio.to_thread(cluster.compose, "stop", "--timeout", "20", primary)
        await eventually(f"{replica} promoted", promoted, within=40, interval=0.5)
        cluster.timings["promoted"] = time.monotonic() - started
    finally:
        await call
    calls = await ended_calls(database, prefix, 1, within=60)
    cluster.timings["recorded_after_failover"] = time.monotonic() - started
    assert (node_of(calls[0]["call_id"]), calls[0]["ivr_skill"]) == ("node2", SKILL), \
        dict(calls[0])

    # The old primary is gone: the front reads the digest from the node left (the host
    # list of its db_url), as Asterisk does the phone (res_pgsql.conf's).
    await asyncio.to_thread(register, front(cluster_ports), [PHONE], host=PHONE_HOST,
                            port=phone_port)
    cluster.timings["registered_after_failover"] = time.monotonic() - started


    async def phone_read() -> bool | None:
        # The auth object, not the endpoint: sorcery.conf caches endpoints, never auths,
        # so this reads the database now.
        shown = await asyncio.to_thread(asterisk_rx, cluster, "asterisk2",
                                        f"pjsip show auth {PHONE}")
        return True if re.search(rf"Auth:\s+{PHONE}/{PHONE}\b", shown) else None

    await eventually("node 2's Asterisk reading the phone", phone_read, within=10)
    cluster.timings["asterisk_read_after_failover"] = time.monotonic() - started
    # A call through the front now: the front's record is written on the new primary.
    after = caller_prefix()
    await place(cluster_ports, after, calls=1)
    rows = await eventually("the front's record of the call after the failover",
                            lambda: front_calls_of(database, after), within=30)
    cluster.timings["front_recorded_after_failover"] = time.monotonic() - started
    assert [(row["sip_code"], row["line"]) for row in rows] == [("200", "112")], \
        [dict(row) for row in rows]
    # Informative: the call placed while the primary stopped (its final reply may have
    # come while no node took writes, and the front keeps no spool).
    during = await front_calls(database, prefix)
    print(f"stopped {primary}; the front's records of the call during the stop: "
          f"{len(during)}")


async def front_calls_of(dsn: str, caller_prefix: str) -> list[asyncpg.Record] | None:
    """:func:`front_calls`, or None while there are none."""
    return await front_calls(dsn, caller_prefix) or None


async def test_a_backup_restores_as_the_readme_says(
        cluster: docker.Site, cluster_ports: dict[str, int], database: str) -> None:
    """The README's cluster steps, on the cluster the tests before left (node 1's Asterisk
    and the old primary down): a backup in a one-off admin container lands in the host's
    SITE_BACKUPS; the restore is refused while line2 still runs (naming its node), then
    done with line1 and line2 stopped; both lines start again on the restored database,
    every call recorded before the backup is there, and a new call through the front is
    recorded by node 2's line and by the front."""
    before = {row["call_id"] for row in await fetch(database, "SELECT call_id FROM calls")}
    cluster.admin("backup", "/backups/cluster-1")
    backup = Path(cluster.variables["SITE_BACKUPS"]) / "cluster-1"
    assert (backup / "manifest.json").is_file(), list(backup.parent.iterdir())

    started = time.monotonic()
    cluster.compose("stop", "line1", timeout=180)
    try:
        # One node's line forgotten: the refusal names that node (both lines connect from
        # this host's one address).
        refused = cluster.admin("restore", "--force", "/backups/cluster-1", check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "masih tersambung" in said, said
        assert "siaga112 (node2) dari" in said and "node1" not in said, said
        cluster.compose("stop", "line2", timeout=180)
        restored = cluster.admin("restore", "--force", "/backups/cluster-1")
    finally:
        cluster.compose("start", "line1", "line2", timeout=180)
    cluster.timings["restored"] = time.monotonic() - started
    assert "dipulihkan" in restored.stdout, restored.stdout + restored.stderr
    after = {row["call_id"] for row in await fetch(database, "SELECT call_id FROM calls")}
    assert after == before, (before, after)
    for node in (1, 2):
        await docker.health_of(cluster, f"line{node}", "healthy", within=120)

    prefix = caller_prefix()
    await place(cluster_ports, prefix, calls=1)
    calls = await ended_calls(database, prefix, 1, within=60)
    assert node_of(calls[0]["call_id"]) == "node2", dict(calls[0])
    await eventually("the front's record of the call after the restore",
                     lambda: front_calls_of(database, prefix), within=30)
    cluster.timings["recorded_after_restore"] = time.monotonic() - started
