"""Two Asterisk nodes, each with its own line server, one database (issue 15, node to node).

* Distributed device state: an operator on a call through node A is in use on node B too
  (res_pjsip_publish_asterisk: A PUBLISHes PJSIP/op1001's state to B), so B's queue does not
  ring them while they talk, and does once they hang up.
* A node that comes back (b crashed, then started) while an operator talks on a asks a for
  its whole device state and sees the operator in use within seconds.
* A second FastAGI server: with node A's line server stalled (SIGSTOP: after the dialplan's
  first-command deadline) or killed (SIGKILL: at once), A's calls run the IVR on node B's line
  server (the dialplan's second AGI()), not the fail-open path; with both gone they still
  fail open at once.

Nodes are 127.0.0.61 (a) and 127.0.0.62 (b), each with its own SIP, AMI, FastAGI and HTTP
ports; the carrier (sipp callers) and the operator phones (one sipp UAS, the same phones for
both nodes) are on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

from telephony.db.embedded import EmbeddedPostgres
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import ClusterPeer, Settings
from tests.e2e.conftest import line_db, state_dir
from tests.e2e.harness import prompted_lab, started_line, unique_caller
from tests.support.db import owner_dsn
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.serve import kill_process, serve_process

pytestmark = pytest.mark.cluster
# The module's state directory and its one migrated database, which every node's line writes
# into: the end-to-end tier's fixtures.
__all__ = ["line_db", "state_dir"]

HOSTS = {"a": "127.0.0.61", "b": "127.0.0.62"}
RTP = {"a": 63100, "b": 63400}
OPERATOR = "PJSIP/op1001"
QUEUES = ("emergency-general", "all-operators")  # the fail-open queue and the overflow


@pytest.fixture(scope="module")
def nodes_settings(state_dir: Path, line_db: str, pg_cluster: EmbeddedPostgres
                   ) -> dict[str, Settings]:
    """Node a's and node b's settings: each the other's peer."""
    operators = sipp.free_udp_port()
    ports = {name: (sipp.free_udp_port(host), free_port()) for name, host in HOSTS.items()}
    nodes = {}
    for name, host in HOSTS.items():
        (other,) = set(HOSTS) - {name}
        nodes[name] = Settings(
            lab_instance=f"cluster-n-{name}", node_name=name,
            cluster_peers=(ClusterPeer(other, HOSTS[other], *ports[other]),),
            sip_host=host, sip_port=ports[name][0], agi_host=host, agi_port=ports[name][1],
            ami_port=free_port(), asterisk_http_port=free_port(),
            asterisk_https_port=free_port(), http_port=0,
            rtp_port_start=RTP[name], rtp_port_end=RTP[name] + 299,
            lab_operator_sip_port=operators, carrier_sip_port=sipp.free_udp_port(),
            lab_operators=3, queue_wrapup_seconds=0, ami_reconnect_seconds=0.5,
            db_retry_seconds=0.5, state_dir=state_dir / name, database_dsn=line_db,
            database_owner_dsn=owner_dsn(pg_cluster, line_db))
    return nodes


@pytest.fixture(scope="module")
async def nodes(nodes_settings: dict[str, Settings]) -> AsyncIterator[tuple[Lab, Lab]]:
    async with (prompted_lab(nodes_settings["a"]) as a,
                prompted_lab(nodes_settings["b"]) as b):
        yield a, b


@pytest.fixture(scope="module")
async def phones(nodes: tuple[Lab, Lab], nodes_settings: dict[str, Settings]
                 ) -> AsyncIterator[sipp.Sipp]:
    """The operators' phones, the same for both nodes: one sipp UAS that answers at once."""
    async with sipp.operator(nodes_settings["a"].lab_operator_sip_port) as uas:
        yield uas


async def member_state(lab: Lab, queue: str = QUEUES[0]) -> str:
    """How ``lab``'s queue sees the operator: "In use", "Not in use", ..."""
    shown = await lab.acli(f"queue show {queue}")
    line = next((row for row in shown.splitlines() if OPERATOR in row), "")
    # "PJSIP/op1001 (ringinuse disabled) (dynamic) (In use) has taken no calls yet (...)"
    before, taken, _ = line.partition(" has taken")
    return before.rsplit("(", 1)[-1].rstrip(")") if taken else ""


async def operator_channels(lab: Lab) -> int:
    """The operator's channels on ``lab``: a call ringing or answered at their phone."""
    channels = await lab.acli("core show channels concise")
    return sum(row.startswith(f"{OPERATOR}-") for row in channels.splitlines())


async def waiting_callers(lab: Lab) -> int:
    shown = await lab.acli(f"queue show {QUEUES[0]}")
    return sum(row.strip().startswith(("1.", "2.", "3.")) for row in shown.splitlines())


@contextlib.asynccontextmanager
async def operator_logged_in(*labs: Lab) -> AsyncIterator[None]:
    for lab in labs:
        for queue in QUEUES:
            await lab.acli(f"queue add member {OPERATOR} to {queue}")
    try:
        yield
    finally:
        for lab in labs:
            for queue in QUEUES:
                await lab.acli(f"queue remove member {OPERATOR} from {queue}")
            await lab.acli("channel request hangup all")


async def test_an_operator_on_a_call_on_one_node_is_busy_on_the_other(
        nodes: tuple[Lab, Lab], nodes_settings: dict[str, Settings], phones: sipp.Sipp) -> None:
    a, b = nodes
    on = {name: (s.sip_host, s.sip_port) for name, s in nodes_settings.items()}
    # No line server runs yet: calls fail open to the operator's queue at once.
    async with operator_logged_in(a, b):
        await eventually("the operator free on b",
                         lambda: _is(member_state(b), "Not in use"), within=10)
        async with sipp.caller(*on["a"], caller_id=unique_caller("0813"),
                               talk_seconds=8) as on_a:
            await eventually("the operator answering a's call",
                             lambda: _is(operator_channels(a), 1), within=10)
            in_use_on_a = time.monotonic()
            await eventually("the operator in use on b",
                             lambda: _is(member_state(b), "In use"), within=5, interval=0.02)
            published = time.monotonic() - in_use_on_a
            async with sipp.caller(*on["b"], caller_id=unique_caller("0813"),
                                   talk_seconds=25):
                await eventually("b's caller waiting", lambda: _is(waiting_callers(b), 1),
                                 within=10)
                # Until a's call ends, b's queue never rings the busy operator.
                rung_on_b = []

                async def watch_b() -> None:
                    while True:
                        rung_on_b.append(await operator_channels(b))
                        await asyncio.sleep(0.2)

                watcher = asyncio.create_task(watch_b())
                result = await on_a.wait()
                hung_up = time.monotonic()
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                assert result.ok, result.errors
                assert len(rung_on_b) >= 10 and not any(rung_on_b), rung_on_b
                # Free again: b's waiting caller reaches them.
                await eventually("b's caller answered by the operator",
                                 lambda: _is(operator_channels(b), 1), within=10)
                offered_again = time.monotonic() - hung_up
                assert await waiting_callers(b) == 0
    print(f"\ndevice state a -> b: in use after {published * 1000:.0f} ms; "
          f"b's caller reached the operator {offered_again:.2f} s after a's call ended")


async def _is(value: Awaitable[object], expected: object) -> bool | None:
    """For :func:`eventually`: True once ``value`` is ``expected``."""
    return True if await value == expected else None


def ivr_outcomes(queue_log: Path, offset: int) -> list[str]:
    """The IVR outcome of each call that entered the queues since ``offset`` (bytes into
    ``queue_log``), in order: the dialplan logs ``SIAGAIVR|<IVR_OUTCOME>`` as it queues one."""
    with queue_log.open("rb") as log:
        log.seek(offset)
        rows = log.read().decode(errors="replace").splitlines()
    return [row.split("|")[5] for row in rows if row.count("|") >= 5
            and row.split("|")[4] == "SIAGAIVR"]


async def calls_through_the_ivr(lab: Lab, settings: Settings, calls: int, *,
                                since: float | None = None, dtmf_delay: float = 1.0
                                ) -> tuple[list[str], float]:
    """``calls`` callers at ``lab`` who press 1 then 2 (emergency, fire) ``dtmf_delay`` s
    after the answer; their IVR outcomes, and the seconds from ``since``
    (``time.monotonic()``; default: the first call) to the first outcome."""
    queue_log = lab.host_dir / "log" / "queue_log"
    queue_log.touch()
    offset = queue_log.stat().st_size
    async with sipp.caller(settings.sip_host, settings.sip_port, caller_id=unique_caller("0814"),
                           numbered=True, dtmf="12", dtmf_delay=dtmf_delay, talk_seconds=3,
                           calls=calls, rate=2):
        started = time.monotonic() if since is None else since
        await eventually("a call through the IVR",
                         lambda: _listed(ivr_outcomes(queue_log, offset), 1),
                         within=15 + dtmf_delay, interval=0.05)
        first = time.monotonic() - started
        outcomes = await eventually(
            f"{calls} calls through the IVR",
            lambda: _listed(ivr_outcomes(queue_log, offset), calls), within=15)
    return outcomes, first


async def test_a_killed_line_server_hands_its_nodes_calls_to_the_peers_server(
        nodes: tuple[Lab, Lab], nodes_settings: dict[str, Settings], state_dir: Path) -> None:
    a, b = nodes
    on_a, on_b = nodes_settings["a"], nodes_settings["b"]
    async with (started_line(b, on_b),
                serve_process(on_a, state_dir / "serve-a.log") as line_a):
        own, own_first = await calls_through_the_ivr(a, on_a, 1)
        assert own == ["chosen"]  # a's IVR on a's own line server
        # Stalled (it accepts, and never sends its first command): after the dialplan's
        # first-command deadline, the IVR runs on b's line server. (Keys pressed while
        # AGI() waits are lost, as on one node: this caller presses after the deadline.)
        os.killpg(line_a.pid, signal.SIGSTOP)
        try:
            stalled, stalled_first = await calls_through_the_ivr(
                a, on_a, 1, dtmf_delay=on_a.agi_first_command_seconds + 1.5)
        finally:
            os.killpg(line_a.pid, signal.SIGCONT)
        assert stalled == ["chosen"]
        await kill_process(line_a)
        # kill -9: the IVR of every call a takes from now on runs on b's line server.
        killed = time.monotonic()
        after, peer_first = await calls_through_the_ivr(a, on_a, 3, since=killed)
        assert after == ["chosen"] * 3, after
        refused = f"Connecting to '{on_a.agi_host}:{on_a.agi_port}' failed"
        assert refused in a.messages_log.read_text(errors="replace")
    # Neither line server left: the caller still reaches the queues, at once.
    gone, gone_first = await calls_through_the_ivr(a, on_a, 1)
    assert gone == ["failopen"]
    assert gone_first < 3
    await a.acli("channel request hangup all")
    print(f"\nfirst IVR outcome: {own_first:.2f} s after the call on a's own line server; "
          f"{stalled_first:.2f} s after the call with a's stalled, on b's; "
          f"{peer_first:.2f} s after a's line server was killed, on b's; "
          f"failed open {gone_first:.2f} s after the call with both gone")


async def _listed(items: list[str], count: int) -> list[str] | None:
    return items if len(items) >= count else None


async def test_a_node_that_comes_back_learns_who_is_busy_on_the_other(
        nodes: tuple[Lab, Lab], nodes_settings: dict[str, Settings], phones: sipp.Sipp) -> None:
    a, b = nodes
    on_a = nodes_settings["a"]
    async with operator_logged_in(a, b):
        await b.acli("core show uptime")  # b is up before it crashes
        await asyncio.to_thread(b.crash)
        async with sipp.caller(on_a.sip_host, on_a.sip_port, caller_id=unique_caller("0815"),
                               talk_seconds=30):
            await eventually("the operator answering a's call",
                             lambda: _is(operator_channels(a), 1), within=10)
            # b comes back as a site's service manager starts it, and asks a for its whole
            # device state.
            restarted = time.monotonic()
            await asyncio.to_thread(b.start, fresh=False)
            for queue in QUEUES:  # astdb may not have kept a login made just before the crash
                await b.acli(f"queue add member {OPERATOR} to {queue}")
            await eventually("the operator in use on the restarted b",
                             lambda: _is(member_state(b), "In use"), within=15)
            learned = time.monotonic() - restarted
            await a.acli("channel request hangup all")
            await eventually("the operator free on b once a's call ended",
                             lambda: _is(member_state(b), "Not in use"), within=5)
    print(f"\nb restarted with the operator on a call on a: in use on b {learned:.2f} s after "
          "its start began")
