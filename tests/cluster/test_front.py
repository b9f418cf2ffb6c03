"""Two Asterisk nodes behind the Kamailio front (issue 15): the carrier's calls (from an
address of its own, not the front's) are spread over both and taken for the carrier's by the
front's mark (nobody else's are), every call reaches an operator whose phone registered at
the front, the one
database holds each call once and complete whichever node took it, and a node killed with
``kill -9`` (its Asterisk and its line server) stops getting calls within seconds; a
front restarted with calls talking lets them go on and loads the phones' registrations back
(calls after it reach an operator at once); the calls it
had taken and not yet recorded still get a record, from the front's own record of dispatching
them (telephony/cluster/reconcile.py), ended "hilang bersama node node1".

One cluster for the module (telephony/lab/cluster.py): two lab nodes with their own
systemname and line server, the front, six operators logged in on both nodes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from telephony.calls.ids import node_of
from telephony.db.embedded import EmbeddedPostgres
from telephony.kamailio import CARRIER_MARK_HEADER, CARRIER_MARK_VALUE
from telephony.lab import sipp
from telephony.lab.chroot import LabError, operator_names
from telephony.lab.cluster import PHONE_HOST, STRANGER_HOST, Cluster, register, register_phones
from telephony.lab.line import LineServer
from telephony.settings import Settings
from tests.support.cluster import (
    account,
    bearer,
    caller_prefix,
    console_url,
    ended_calls,
    operator_desk,
    two_nodes,
)
from tests.support.cluster import front_callers as callers
from tests.support.db import fetch, owner_dsn
from tests.support.polling import eventually
from tests.support.web import PASSWORD

pytestmark = pytest.mark.cluster

BASE = Settings(
    lab_instance="front-test",
    lab_operators=8,
    queue_max_wait=60,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
    # Each line checks its open calls against its Asterisk every 5 s: node2's must leave
    # node1's lost calls alone while node1 is down (they are not node2's to end).
    vanish_check_seconds=5,
    # node2's line makes records of the calls node1 took and never recorded, 2 s after the
    # front recorded dispatching them.
    front_reconcile_grace_seconds=2,
    front_reconcile_seconds=1,
)
OPERATORS = operator_names(6)
RTP_BASE = 10000  # 10000..13998: no other module's fixed ports nor RTP (tests run two at a time)
FAILOVER_TARGET_SECONDS = 5.0


@pytest.fixture(scope="module")
async def cluster(pg_cluster: EmbeddedPostgres, cluster_dsn: str) -> AsyncIterator[Cluster]:
    async with two_nodes(pg_cluster, cluster_dsn, BASE, rtp_base=RTP_BASE,
                         operators=OPERATORS) as running:
        yield running


async def test_calls_are_spread_over_both_nodes_and_each_reaches_an_operator(
        cluster: Cluster, cluster_dsn: str) -> None:
    prefix = caller_prefix()
    async with callers(cluster, prefix, calls=8, rate=4) as run:
        result = await run.wait()
    assert result.ok, result
    # Counted once the front's rows are reconciled: a node that took a call late, after the
    # front gave it to the other (a starved machine), has had its record moved out by then.
    await eventually("the front's rows reconciled", lambda: _reconciled(cluster_dsn, prefix, 8),
                     30)
    rows = await ended_calls(cluster_dsn, prefix, 8)
    assert len(rows) == 8, [(r["call_id"], r["caller_number"], r["channel"], r["arrived_at"],
                             r["ended_at"], r["operator"], r["hangup_cause"]) for r in rows]
    assert len({row["caller_number"] for row in rows}) == 8
    assert {node_of(str(row["call_id"])) for row in rows} == {"node1", "node2"}
    for row in rows:
        assert row["operator"] in {f"PJSIP/{user}" for user in OPERATORS}, row
        assert row["queue"] is not None and row["talk_seconds"] is not None, row
        assert row["hangup_cause"] is not None and row["shift_name"] is not None, row


async def _refused(call: sipp.Sipp) -> str:
    """Run ``call`` (one INVITE, ``trace_messages``) to its end, sure it failed; what it
    sent and received."""
    async with call as run:
        result = await run.wait()
        messages = run.messages
    assert result.failed == 1 and result.successful == 0, result
    return messages


async def test_the_carriers_calls_are_known_by_the_fronts_mark_and_nobody_elses(
        cluster: Cluster, cluster_dsn: str) -> None:
    front, node = cluster.front, cluster.nodes[0].settings
    assert front.carrier_address not in (front.kamailio_host, node.sip_host, STRANGER_HOST)
    forged, good = caller_prefix(), caller_prefix()
    mark = {CARRIER_MARK_HEADER: CARRIER_MARK_VALUE}

    def attempt(host: str, port: int, number: str, source: str, *, marked: bool) -> sipp.Sipp:
        return sipp.caller(host, port, caller_id=forged + number, host=source,
                           headers=mark if marked else None, talk_seconds=1,
                           trace_messages=True)

    # Through the front with a forged mark: it relays the carrier's INVITEs alone, and would
    # strip the mark from anything else.
    through = await _refused(attempt(front.kamailio_host, front.kamailio_port, "1", STRANGER_HOST,
                                     marked=True))
    assert "SIP/2.0 403" in through, through
    # Straight at a node with a forged mark: the carrier endpoint is taken from the front and
    # the carrier alone (its ACL), so the request is unidentified, challenged.
    straight = await _refused(attempt(node.sip_host, node.sip_port, "2", STRANGER_HOST,
                                      marked=True))
    assert "SIP/2.0 401" in straight, straight
    # Straight at a node from the carrier's own address, without the front's mark: behind a
    # front, a node no longer knows the carrier by its address.
    unmarked = await _refused(attempt(node.sip_host, node.sip_port, "3",
                                      front.carrier_address, marked=False))
    assert "SIP/2.0 401" in unmarked, unmarked
    # The carrier's calls through the front (marked there) reach the IVR (3, information) and
    # an operator on either node. (Two: one each, round robin, so that the next test's calls
    # go to the nodes as they would without this one.)
    async with callers(cluster, good, calls=2, rate=2) as run:
        assert (await run.wait()).ok
    rows = await ended_calls(cluster_dsn, good, 2)
    assert {node_of(str(row["call_id"])) for row in rows} == {"node1", "node2"}, rows
    assert all(row["queue"] is not None and row["operator"] is not None for row in rows), rows
    # None of the others became a call (the good one, placed after them, is recorded).
    assert await fetch(cluster_dsn, "SELECT call_id FROM calls WHERE caller_number LIKE $1 "
                                    "|| '%'", forged) == []
    # The front's own probes (unmarked, from its address) were answered all along, not
    # challenged: it never had every node marked down (it would send calls on regardless).
    assert cluster.kamailio is not None
    assert "every Asterisk node is marked down" not in cluster.kamailio.log_text()


async def test_only_a_phone_with_its_secret_registers_at_the_front(
        cluster: Cluster, pg_cluster: EmbeddedPostgres, cluster_dsn: str) -> None:
    port = sipp.free_udp_port(PHONE_HOST)
    with pytest.raises(LabError, match="op1008 could not register"):  # no secret stored
        await asyncio.to_thread(register, cluster.front, ["op1008"], host=PHONE_HOST, port=port)
    # Once the desk has one (as an admin's assignment stores it), the same phone registers.
    await register_phones(cluster.front, owner_dsn(pg_cluster, cluster_dsn), ["op1008"],
                          phone_port=port)


async def test_a_renewed_secret_ends_the_phones_registration_at_the_front(
        cluster: Cluster, pg_cluster: EmbeddedPostgres, cluster_dsn: str) -> None:
    """A phone lost or stolen: the admin renews its secret through a node's line, and the
    registration the phone made at the front (where a cluster's phones register) ends at
    once, not up to 10 min later; the old secret registers no more."""
    port = sipp.free_udp_port(PHONE_HOST)
    await operator_desk(cluster, "wulan", PASSWORD, "PJSIP/op1007", {"general": 3})
    await register_phones(cluster.front, owner_dsn(pg_cluster, cluster_dsn), ["op1007"],
                          phone_port=port)
    registered = "SELECT contact FROM front_location WHERE username = 'op1007'"
    owner = owner_dsn(pg_cluster, cluster_dsn)  # the front's table is not the line's to read
    assert await fetch(owner, registered)
    await account(cluster, "admin-front", PASSWORD, "admin")
    node1 = cluster.node("node1").settings
    async with aiohttp.ClientSession() as http:
        headers = await bearer(http, node1, "admin-front", PASSWORD)
        response = await http.post(
            f"{console_url(node1)}/api/admin/operators/wulan/phone-secret", headers=headers)
        assert response.status == 200, await response.text()
        body = await response.json()
    assert "front SIP" not in str(body), body  # no note: the front ended it

    async def gone() -> bool | None:
        return True if not await fetch(owner, registered) else None

    await eventually("op1007's registration at the front ended", gone, within=5)
    with pytest.raises(LabError, match="op1007 could not register"):  # the old secret
        await asyncio.to_thread(register, cluster.front, ["op1007"], host=PHONE_HOST, port=port)


async def _calls_on_both(dsn: str, prefix: str) -> bool | None:
    """True once calls of ``prefix`` talk to operators on both nodes (else None: not yet)."""
    rows = await fetch(dsn, "SELECT call_id FROM calls WHERE caller_number LIKE $1 || '%' "
                            "AND operator IS NOT NULL", prefix)
    return True if {node_of(row["call_id"]) for row in rows} == {"node1", "node2"} else None


async def _dispatched(dsn: str, prefix: str, count: int) -> list[asyncpg.Record] | None:
    """The front's records of the calls of ``prefix``, once there are ``count``."""
    rows = await fetch(dsn, "SELECT callid, node FROM front_calls WHERE caller LIKE $1 || '%'",
                       prefix)
    return rows if len(rows) >= count else None


async def _records(dsn: str, prefixes: list[str]) -> list[asyncpg.Record]:
    """Each call the front dispatched for ``prefixes``, with its records (joined on the
    carrier's Call-ID): how many, and the first one's id, end, reason and operator."""
    return await fetch(dsn, """
        SELECT f.callid, f.node, count(c.call_id) AS records, min(c.call_id) AS call_id,
               bool_and(c.ended_at IS NOT NULL) AS ended, min(c.cut_reason) AS cut_reason,
               min(c.hangup_cause_text) AS cause_text, min(c.operator) AS operator
        FROM front_calls f LEFT JOIN calls c ON c.sip_call_id = f.callid
        WHERE f.caller LIKE ANY($1::text[]) GROUP BY f.callid, f.node
        """, [f"{prefix}%" for prefix in prefixes])


async def _one_record_each(dsn: str, prefixes: list[str]) -> list[asyncpg.Record] | None:
    """:func:`_records`, once every call has exactly one record; else None."""
    rows = await _records(dsn, prefixes)
    return rows if all(row["records"] == 1 for row in rows) else None


async def _reconciled(dsn: str, prefix: str, count: int) -> list[asyncpg.Record] | None:
    """The front's rows of the calls of ``prefix`` once ``count`` are reconciled (each then
    has its records settled: a lost call's made, a withdrawn offer's moved out)."""
    rows = await fetch(dsn, "SELECT callid, node FROM front_calls WHERE caller LIKE $1 || '%' "
                            "AND reconciled_at IS NOT NULL", prefix)
    return rows if len(rows) >= count else None


async def test_a_restarted_front_keeps_its_calls_and_its_operators_reachable(
        cluster: Cluster, cluster_dsn: str) -> None:
    """The front restarted (an upgrade, a crash its supervisor recovers) with calls talking
    (before the kill below, which leaves node1 without its line server):
    those go on without it (no Record-Route) and are recorded once each, and the calls after
    it still reach an operator, whose phone registered before the restart and has not
    registered since (a phone registers again only near its expiry, minutes away)."""
    assert cluster.kamailio is not None
    talking, after = caller_prefix(), caller_prefix()
    async with callers(cluster, talking, calls=4, rate=4, talk_seconds=10) as during:
        await eventually("calls up on both nodes",
                         lambda: _calls_on_both(cluster_dsn, talking), 15)
        await cluster.kamailio.stop()
        await cluster.kamailio.start()
        async with callers(cluster, after, calls=2, rate=2) as run:
            assert (await run.wait()).ok
        rows = await ended_calls(cluster_dsn, after, 2)
        assert all(row["operator"] is not None for row in rows), [dict(r) for r in rows]
        assert (await during.wait()).ok
    rows = await ended_calls(cluster_dsn, talking, 4)
    assert len(rows) == 4 and all(row["operator"] is not None for row in rows)
    await eventually("one record for each call through the restart",
                     lambda: _one_record_each(cluster_dsn, [talking, after]), 30)

async def test_a_killed_node_gets_no_new_call_within_seconds(
        cluster: Cluster, cluster_dsn: str) -> None:
    victim, survivor = cluster.node("node1"), cluster.node("node2")
    node1 = f"sip:{victim.settings.sip_host}:{victim.settings.sip_port}"
    # Calls in progress on both nodes when node1 dies.
    up, doomed, new = caller_prefix(), caller_prefix(), caller_prefix()
    async with callers(cluster, up, calls=4, rate=4, talk_seconds=20) as before:
        await eventually("calls up on both nodes", lambda: _calls_on_both(cluster_dsn, up), 15)
        # Calls node1 takes in its last moments, whose AMI events die with its line server:
        # the line stops reading (SIGSTOP, as a dying machine stops), the front sends node1
        # its share of four more calls, and node1 dies with them unrecorded.
        victim.line.signal(signal.SIGSTOP)
        async with callers(cluster, doomed, calls=4, rate=8, talk_seconds=5) as last:
            dispatched = await eventually("the front dispatched the last four calls",
                                          lambda: _dispatched(cluster_dsn, doomed, 4), 15)
            assert node1 in {row["node"] for row in dispatched}, dispatched
            killed_at = datetime.now(UTC)
            started = time.monotonic()
            await victim.kill()
            # New calls right after the kill: the first ones meet node1 still in the rotation.
            async with callers(cluster, new, calls=4, rate=4) as after:
                result = await after.wait()
            assert result.ok, result
            rows = await ended_calls(cluster_dsn, new, 4)
            first_answer = min(row["arrived_at"] for row in rows)
            last_answer = max(row["arrived_at"] for row in rows)
            print(f"\nkill -> first new call answered on {survivor.name}: "
                  f"{(first_answer - killed_at).total_seconds():.2f} s; every call placed in the "
                  f"first second answered within {(last_answer - killed_at).total_seconds():.2f} s "
                  f"(measured {time.monotonic() - started:.1f} s after the kill)")
            assert all(node_of(str(row["call_id"])) == survivor.name for row in rows)
            # Each reached an operator there, those whose last call died with node1 included: to
            # node2 they were "In use" (node1's last published state) until node2's line saw
            # node1's qualify fail and made node2's Asterisk forget node1's states.
            assert all(row["operator"] is not None for row in rows), rows
            assert (last_answer - killed_at).total_seconds() <= FAILOVER_TARGET_SECONDS
            await last.stop()
        await before.stop()
    # The calls node1 had are lost; the database keeps them open (node2's line leaves another
    # node's calls alone) until node1 comes back and its line finds them gone from its
    # Asterisk: it ends them (vanished; an answered one keeps its operator and talk so far).
    query = ("SELECT c.call_id, c.ended_at, o.disposition, (SELECT count(*) FROM call_events e "
             "WHERE e.call_id = c.call_id AND e.kind = 'call_vanished') AS vanished "
             "FROM calls c JOIN call_outcomes o USING (call_id) "
             "WHERE c.caller_number LIKE $1 || '%' AND starts_with(c.call_id, 'node1-')")
    assert time.monotonic() - started > BASE.vanish_check_seconds  # node2 has checked
    lost = await fetch(cluster_dsn, query, up)
    assert lost and all(row["ended_at"] is None for row in lost)
    await asyncio.to_thread(victim.lab.start, fresh=False)
    async with LineServer(victim.settings):
        async def ended() -> list[asyncpg.Record] | None:
            rows = await fetch(cluster_dsn, query, up)
            return rows if all(row["ended_at"] is not None for row in rows) else None

        rows = await eventually("node1's lost calls ended", ended, 30)
        # Back in the front's rotation once it answers its probe again.
        again = caller_prefix()
        async with callers(cluster, again, calls=4, rate=2) as run:
            assert (await run.wait()).ok
        assert "node1" in {node_of(str(row["call_id"])) for row in
                           await ended_calls(cluster_dsn, again, 4)}
    print(f"node1's {len(rows)} lost calls ended as "
          f"{sorted(str(row['disposition']) for row in rows)}")
    assert all(row["vanished"] == 1 for row in rows)
    # Every call the front dispatched has one record, tied by the carrier's Call-ID: node1's
    # last calls too, lost with it (made by node2's line from the front's record, or node1's
    # own from its queue_log once back, which then takes the reason).
    prefixes = [up, doomed, new, again]
    try:
        records = await eventually("one record for each dispatched call",
                                   lambda: _one_record_each(cluster_dsn, prefixes), 30)
    except AssertionError:
        rows = await _records(cluster_dsn, prefixes)
        raise AssertionError(f"not one record each: {[dict(r) for r in rows]}") from None
    assert len(records) == 4 + 4 + 4 + 4, records
    unrecorded = [row for row in records if row["node"] == node1 and row["callid"] in
                  {r["callid"] for r in dispatched}]
    print(f"node1's last calls, never recorded by it: {len(unrecorded)}, ended as "
          f"{sorted(str(row['cause_text']) for row in unrecorded)}")
    assert unrecorded and all(
        row["cut_reason"] == "node_lost" and row["call_id"].startswith("node1-") and row["ended"]
        and row["cause_text"] == "hilang bersama node node1" for row in unrecorded)
    assert not [row for row in records
                if row["cut_reason"] == "node_lost" and row not in unrecorded]

