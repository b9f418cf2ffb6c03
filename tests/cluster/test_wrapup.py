"""An operator's wrap-up holds on every node of the cluster (issue 15; telephony/cluster/
wrapup.py), on the cluster lab (telephony/lab/cluster.py: node1 and node2 behind the front,
the carrier's callers calling a node straight as the front relays them, the operator's phone
registered at the front and logged in on both nodes):

* An admin gives the information queue a wrap-up of :data:`WRAPUP` s (through node1's API).
  The operator answers a call on node1; a second caller waits on node2 meanwhile (the
  operator is in use there through the shared device state). When node1's call ends, node2
  does not offer the operator its caller until the wrap-up has passed: node2's line heard
  node1's announcement and holds the device "In use" under the wrap-up entity id. Without
  that, node2 rang them within its queue's retry (1 s) of the end.
* A line killed during a wrap-up it holds leaves its Asterisk holding it; started again, it
  releases it at its AMI login.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from telephony.db.embedded import EmbeddedPostgres
from telephony.lab.chroot import Lab
from telephony.lab.cluster import Cluster
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.cluster import (
    account,
    bearer,
    console_url,
    equals,
    hung_up_after,
    member_state,
    node_callers,
    operator_channels,
    two_nodes,
    waiting_callers,
)
from tests.support.polling import eventually
from tests.support.web import PASSWORD

pytestmark = pytest.mark.cluster

BASE = Settings(lab_instance="wrap-test", lab_operators=1, queue_wrapup_seconds=0,
                ami_reconnect_seconds=0.5, db_retry_seconds=0.5)
OPERATOR = "PJSIP/op1001"
QUEUE = "information"  # where the callers' key 3 takes them
WRAPUP = 8  # the information queue's wrap-up (s); every other queue has none
RETRY = 1  # its queue's retry (s): how soon app_queue looks for a free operator again
# How much sooner than WRAPUP after the end node2 may ring: app_queue counts a wrap-up in
# whole seconds from the call's end (and the end is taken here when the caller's sipp
# returns, a little after it).
TOLERANCE = 1.0
# How long the operator talks with a caller. Their channel is what shows them answering, and
# it lives as long as the call: each look is an `asterisk -rx` run in the lab, which took
# seconds on a loaded machine, and a 2 s call passed between two looks (the call was answered
# and recorded, and the test timed out waiting to see it).
TALK = 8.0
RTP_BASE, RTP_SPAN = 63200, 400  # 63200..63998: apart from every other module's ports
HELD = re.compile(r"wrap-up of PJSIP/op1001 after its call on node1 in information held here "
                  r"for 8 s: (-?\d+) ms after the call ended there")


@pytest.fixture(scope="module")
async def cluster(pg_cluster: EmbeddedPostgres, cluster_dsn: str) -> AsyncIterator[Cluster]:
    async with two_nodes(pg_cluster, cluster_dsn, BASE, rtp_base=RTP_BASE, rtp_span=RTP_SPAN,
                         operators=["op1001"]) as running:
        one = running.node("node1")
        await account(running, "admin", PASSWORD, "admin")
        async with aiohttp.ClientSession() as http:
            headers = await bearer(http, one.settings, "admin", PASSWORD)
            api = f"{console_url(one.settings)}/api/admin/queues"
            response = await http.get(api, headers=headers)
            stored = next(q for q in (await response.json())["queues"] if q["queue"] == QUEUE)
            values = {name: stored[name] for name in (
                "strategy", "ring_timeout_seconds", "retry_seconds", "wrapup_seconds",
                "announce_position", "announce_holdtime", "announce_frequency_seconds",
                "max_wait_seconds")}
            response = await http.put(f"{api}/{QUEUE}", headers=headers, json={
                **values, "wrapup_seconds": WRAPUP, "retry_seconds": RETRY})
            assert response.status == 200, await response.text()
        yield running


def held_after_ms(output: str) -> list[int]:
    """Each wrap-up node2's line held, in ms from the call's end on node1 (its log)."""
    return [int(found) for found in HELD.findall(output)]


async def test_the_wrapup_after_a_call_on_one_node_holds_on_the_other(cluster: Cluster
                                                                      ) -> None:
    one, two = cluster.node("node1"), cluster.node("node2")
    seen = len(held_after_ms(two.line.output()))
    async with hung_up_after(one.lab, two.lab):
        await free_on_both(one.lab, two.lab)
        async with node_callers(one.settings, unique_caller("0819"), talk_seconds=TALK) as first:
            await eventually("the operator answering node1's call",
                             lambda: equals(operator_channels(one.lab, OPERATOR), 1), within=15)
            await eventually("the operator in use on node2",
                             lambda: equals(member_state(two.lab, OPERATOR), "In use"), within=5)
            async with node_callers(two.settings, unique_caller("0819"), talk_seconds=30):
                await eventually("node2's caller waiting",
                                 lambda: equals(waiting_callers(two.lab), 1), within=15)
                result = await first.wait()
                ended = time.monotonic()
                assert result.ok, result.errors
                # Every 50 ms until node2 offers the operator its caller: how node2's queue
                # sees them meanwhile, and when it rings them.
                states = await watch_until_rung(two.lab, within=WRAPUP + RETRY + 10)
        held = held_after_ms(two.line.output())[seen:]
    offered = states[-1][0] - ended
    assert offered >= WRAPUP - TOLERANCE, (
        f"node2 offered the operator a call {offered:.2f} s after node1's call ended, within "
        f"its {WRAPUP} s wrap-up")
    assert offered <= WRAPUP + RETRY + 2.5, offered
    # Held, not free, from a second after the end until the wrap-up is over.
    during = {state for at, state in states[:-1] if 1.0 <= at - ended <= WRAPUP - TOLERANCE}
    assert during == {"In use"}, states
    assert len(held) == 1, held
    print(f"\nwrap-up after node1's call held on node2 {held[0]} ms after the call ended "
          f"(AgentComplete's timestamp on node1 -> PUBLISH taken by node2's Asterisk); node2 "
          f"offered the operator its waiting caller {offered:.2f} s after the end "
          f"(wrap-up {WRAPUP} s, retry {RETRY} s)")


async def free_on_both(*labs: Lab) -> None:
    """Until the operator is free in every one of ``labs``' queues (a wrap-up over)."""

    async def free() -> bool | None:
        states = [await member_state(lab, OPERATOR) for lab in labs]
        return True if set(states) == {"Not in use"} else None

    await eventually("the operator free on every node", free, within=WRAPUP + 10)


async def watch_until_rung(lab: Lab, *, within: float) -> list[tuple[float, str]]:
    """(when, the operator's state in ``lab``'s queue) every 50 ms, until ``lab`` rings the
    operator (the last entry: "rung"); fails after ``within`` s."""
    states: list[tuple[float, str]] = []
    deadline = time.monotonic() + within
    while await operator_channels(lab, OPERATOR) == 0:
        assert time.monotonic() < deadline, f"the operator never rung: {states}"
        states.append((time.monotonic(), await member_state(lab, OPERATOR)))
        await asyncio.sleep(0.05)
    states.append((time.monotonic(), "rung"))
    return states


async def test_a_line_killed_during_a_wrapup_releases_it_when_it_starts_again(
        cluster: Cluster) -> None:
    one, two = cluster.node("node1"), cluster.node("node2")
    seen = len(held_after_ms(two.line.output()))
    async with hung_up_after(one.lab, two.lab):
        await free_on_both(one.lab, two.lab)
        async with node_callers(one.settings, unique_caller("0819"), talk_seconds=TALK) as first:
            await eventually("the operator answering node1's call",
                             lambda: equals(operator_channels(one.lab, OPERATOR), 1), within=15)
            assert (await first.wait()).ok
        await eventually("node2's line holding the wrap-up",
                         lambda: _listed(held_after_ms(two.line.output())[seen:]), within=5,
                         interval=0.05)
        two.line.kill()
        killed = time.monotonic()
        await two.line.wait()
        # Nobody releases it now: still in use there, past the wrap-up's seconds.
        while time.monotonic() - killed < WRAPUP + 1.5:
            assert await member_state(two.lab, OPERATOR) == "In use"
            await asyncio.sleep(0.5)
        restarted = time.monotonic()
        await two.line.start()
        await eventually("the operator free on node2 once its line logged in again",
                         lambda: equals(member_state(two.lab, OPERATOR), "Not in use"),
                         within=10, interval=0.1)
        freed = time.monotonic() - restarted
    assert "wrap-up state released here: " in two.line.output()
    print(f"\nnode2's line killed holding a wrap-up: the operator stayed in use there; "
          f"started again, it released it {freed:.2f} s after its start began")


async def _listed(items: list[int]) -> list[int] | None:
    return items or None
