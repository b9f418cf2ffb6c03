"""A browser softphone behind the Kamailio front (issue 15): on a cluster the console's JsSIP
registers at the front over its WebSocket, not with one node, so either node rings it.

Two lab nodes behind the front (telephony/lab/cluster.py), headless Chromium with a fake
microphone (tests/support/browser.py) on node1's console. The softphone gets the front's
WebSocket URL from the node's own settings and registers there; neither node holds its
registration, both ring it through the front (their AOR's contact), which relays over the
browser's WebSocket. A call that lands on node2 and one that lands on node1 both ring the
browser, which answers each: the media (DTLS-SRTP over ICE, on loopback) flows between the
browser and that node (the browser's selected ICE pair ends at the node's own address and
RTP port), and the caller's hang-up reaches the browser through the front (the call was
record-routed there).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from telephony.calls.ids import node_of
from telephony.db.embedded import EmbeddedPostgres
from telephony.lab.cluster import Cluster, log_in
from telephony.settings import Settings
from tests.support.browser import first_audio, media_peer, open_console, softphone_args
from tests.support.cluster import (
    ALL_SKILLS,
    browser_desk,
    caller_prefix,
    console_url,
    ended_calls,
    node_callers,
    two_nodes,
)

pytestmark = pytest.mark.cluster

BASE = Settings(lab_instance="wsfront-test", lab_operators=1, queue_wrapup_seconds=0,
                agi_session_timeout=60, ami_reconnect_seconds=0.5, db_retry_seconds=0.5)
# 18000..19998: apart from the other cluster modules' and the labs' (tests.support.net).
RTP_BASE, RTP_SPAN = 18000, 1000
INTERFACE = "PJSIP/op2001"
USERNAME, PASSWORD = "rina", "kata-sandi-operator"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
async def cluster(pg_cluster: EmbeddedPostgres, cluster_dsn: str) -> AsyncIterator[Cluster]:
    async with two_nodes(pg_cluster, cluster_dsn, BASE, rtp_base=RTP_BASE, rtp_span=RTP_SPAN,
                         operators=()) as running:
        yield running


async def test_a_browser_registered_at_the_front_answers_calls_on_either_node(
        cluster: Cluster, cluster_dsn: str, tmp_path: Path) -> None:
    one, two = cluster.node("node1"), cluster.node("node2")
    front = cluster.front
    await browser_desk(cluster, USERNAME, PASSWORD, INTERFACE, {"general": 5, "medical": 5})
    for node in cluster.nodes:  # as the admin's assignment does on its node: qualify the AOR
        await node.lab.acli("module reload res_pjsip.so")
    async with open_console(console_url(one.settings), tmp_path / "shots",
                            softphone_args()) as console:
        page = console.page
        await console.log_in(USERNAME, PASSWORD, landing="/console/operator")
        softphone = page.locator("#softphone")
        await expect(softphone).to_have_attribute("data-registration", "registered",
                                                  timeout=WAIT_MS)
        # Registered at the front, not with a node: each node's one contact for the browser is
        # the front, and is reachable there (the node's qualify, relayed over the WebSocket).
        at_front = f"op2001/sip:op2001@{front.kamailio_host}:{front.kamailio_port} "
        for node in cluster.nodes:
            aor = await node.lab.wait_cli(
                "pjsip show aor op2001",
                lambda out: any(at_front in line and "Avail" in line
                                for line in out.splitlines()), within=15)
            assert [line for line in aor.splitlines() if "op2001/sip:" in line and
                    "Contact:" in line and at_front not in line] == [], aor
            await log_in(node.lab, [INTERFACE], ALL_SKILLS)
        for node in (two, one):
            prefix = caller_prefix()
            started = time.monotonic()
            async with node_callers(node.settings, prefix, talk_seconds=6,
                                    talking=True) as call:
                await expect(softphone).to_have_attribute("data-call", "ringing",
                                                          timeout=WAIT_MS)
                rang = time.monotonic() - started
                await softphone.locator('[data-part="answer"]').click()
                audio = await first_audio(page)
                await expect(softphone).to_have_attribute("data-call", "talking",
                                                          timeout=WAIT_MS)
                # The media goes between the browser and this node, not through the front.
                peer = await media_peer(page)
                result = await call.wait()
            assert result.ok, result.errors
            # The caller hung up on the node; its BYE reached the browser through the front.
            await expect(softphone).to_have_attribute("data-call", "idle", timeout=WAIT_MS)
            print(f"\n{node.name}: rang in the browser {rang:.1f} s after the call began; "
                  f"answer click -> first RTP {audio.get('packets', -1):.0f} ms, audible "
                  f"{audio.get('level', -1):.0f} ms; media with {peer}")
            assert audio.get("packets") is not None and audio.get("level") is not None, audio
            assert peer.startswith(f"{node.settings.sip_host}:"), peer
            port = int(peer.rsplit(":", 1)[1])
            assert node.settings.rtp_port_start <= port <= node.settings.rtp_port_end, peer
            (row,) = await ended_calls(cluster_dsn, prefix, 1)
            assert node_of(str(row["call_id"])) == node.name, row["call_id"]
            assert row["operator"] == INTERFACE and row["talk_seconds"] is not None, dict(row)
        await page.screenshot(path=str(console.shots / "softphone-cluster.png"))
        assert console.problems == []
