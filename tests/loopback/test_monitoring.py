"""/metrics, /healthz and /readyz of a whole running line (real PostgreSQL, a fake Asterisk on
the AMI port, the FastAGI server listening): a call's facts travel AMI -> listener -> recorder
-> database and are counted; readiness names the part that is down."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recordings.files import incoming_sources
from telephony.ami.testing import SECRET, USERNAME, FakeAsterisk, Fields, fake_asterisk
from telephony.app import Line, running_line
from telephony.backup.service import back_up
from telephony.calls.spool import FactSpool
from telephony.metrics.live import FrontCollector
from telephony.settings import ClusterNode, Settings
from tests.support import polling
from tests.support.ami import ABANDONED, ANSWERED, eventually
from tests.support.db import fetch, refuse_event_writes
from tests.support.net import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ALERTS = Path(__file__).resolve().parents[2] / "docker" / "prometheus" / "alerts.yml"
CLUSTER_ONLY = {"siaga112_cluster_peer_up", "siaga112_sip_front_up"}


@pytest.fixture
async def asterisk(line_settings: Settings) -> AsyncIterator[FakeAsterisk]:
    async with fake_asterisk(line_settings.ami_port) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(http: aiohttp.ClientSession, line: Line,
                 headers: dict[str, str] | None = None) -> Samples:
    async with http.get(f"{line.web.url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def fail_open(frames: Sequence[Fields]) -> list[Fields]:
    """The same call, but the dialplan sent it past the IVR."""
    return [tuple((k, "failopen" if k == "Value" and ("Variable", "IVR_OUTCOME") in frame
                   else v) for k, v in frame) for frame in frames]


async def test_a_calls_facts_are_counted_and_the_line_is_ready(
    line_settings: Settings, asterisk: FakeAsterisk, http: aiohttp.ClientSession,
    database_dsn: str
) -> None:
    settings = replace(line_settings, ami_username=USERNAME, ami_secret=SECRET)
    async with running_line(settings) as line:
        await eventually(lambda: line.listener.logged_in)
        before = await scrape(http, line)
        # Every line's fail-open series exists before the first one, so it can increase.
        assert value(before, "siaga112_ivr_failopen_total", line="112") == 0
        assert value(before, "siaga112_ami_up") == 1
        await asterisk.send_frames(ANSWERED)
        await asterisk.send_frames(fail_open(ABANDONED))
        # Through the recorder into the database, and counted.
        async with asyncio.timeout(5):
            # Polling, not an Event: the condition is in the database.
            while len(await fetch(database_dsn, "SELECT call_id FROM calls WHERE ended_at "  # noqa: ASYNC110
                                                "IS NOT NULL")) < 2:
                await asyncio.sleep(0.02)
        after = await scrape(http, line)

        async with http.get(f"{line.web.url}/readyz") as response:
            assert response.status == 200
            assert await response.json() == {
                "status": "ok", "down": [],
                "parts": {"ami": "ok", "database": "ok", "fastagi": "ok", "spool": "ok"}}
        async with http.get(f"{line.web.url}/healthz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})

    assert value(after, "siaga112_calls_total", line="112") == 1
    assert value(after, "siaga112_calls_offered_total", line="112", queue="medical") == 1
    assert value(after, "siaga112_calls_answered_total", line="112", queue="medical") == 1
    abandoned = [(labels, v) for (name, labels), v in after.items()
                 if name == "siaga112_calls_abandoned_total"]
    assert [v for _, v in abandoned] == [1]
    (abandoned_line,) = [dict(labels)["line"] for labels, _ in abandoned]
    assert value(after, "siaga112_ivr_failopen_total", line=abandoned_line) == 1
    assert value(after, "siaga112_ivr_failopen_total", line="112") == 0
    # Figures read at scrape time, one per feature.
    assert value(after, "siaga112_ami_events_waiting") == 0
    assert value(after, "siaga112_facts_waiting") == 0
    assert value(after, "siaga112_fact_lag_seconds") == 0
    assert value(after, "siaga112_facts_overflowed_total") == 0
    assert value(after, "siaga112_spool_facts") == 0
    assert value(after, "siaga112_spool_facts_rejected") == 0
    assert value(after, "siaga112_calls_backfilled_total") == 0  # a counter, named as one
    assert value(after, "siaga112_report_waits_total") == 0
    assert value(after, "siaga112_report_wait_seconds_total") == 0
    assert value(after, "siaga112_recordings_quarantined") == 0
    assert value(after, "siaga112_recordings_backlog") is not None
    assert value(after, "siaga112_notifications_pending") == 0
    assert value(after, "siaga112_ready", part="database") == 1
    assert value(after, "siaga112_operators", state="talking") is not None
    assert value(after, "siaga112_line_operators_logged_in", line="119") is not None
    free = value(after, "siaga112_disk_free_bytes", path="recordings")
    assert free is not None and free > 0
    assert value(after, "siaga112_metrics_source_up", source="recordings") == 1
    # The alert rules watch only series the line really exposes (a cluster node's only on a
    # cluster node).
    watched = set(re.findall(r"\b(siaga112_\w+)", ALERTS.read_text())) - CLUSTER_ONLY
    assert watched <= {name for name, _ in after}, watched - {name for name, _ in after}


async def test_facts_the_database_refused_are_counted_until_moved_away(
    line_settings: Settings, asterisk: FakeAsterisk, http: aiohttp.ClientSession,
    database_dsn: str, database_owner_dsn: str
) -> None:
    # One refused before this start (the file outlives the process), one refused now. They
    # used to show nowhere but the log: the call records were incomplete and no alert said so.
    settings = replace(line_settings, ami_username=USERNAME, ami_secret=SECRET)
    rejected = settings.spool_dir / "rejected.jsonl"
    rejected.parent.mkdir(parents=True, exist_ok=True)
    rejected.write_text('{"kind": "call_started", "call_id": "cut sh\n', encoding="utf-8")
    async with running_line(settings) as line:
        await eventually(lambda: line.listener.logged_in)
        assert value(await scrape(http, line), "siaga112_spool_facts_rejected") == 1
        # A constraint the fact breaks, as a schema a fact does not fit would: kept aside.
        await refuse_event_writes(database_owner_dsn, "check_violation", kind="queue_joined")
        await asterisk.send_frames(ANSWERED)
        async with asyncio.timeout(5):
            # Polling, not an Event: the condition is in the database.
            while not await fetch(database_dsn, "SELECT call_id FROM calls WHERE ended_at "  # noqa: ASYNC110
                                                "IS NOT NULL"):
                await asyncio.sleep(0.02)
        assert value(await scrape(http, line), "siaga112_spool_facts_rejected") == 2
        # The engineer dealt with them and moved the file away: the alert clears.
        rejected.rename(settings.spool_dir.parent / "rejected-handled.jsonl")
        assert value(await scrape(http, line), "siaga112_spool_facts_rejected") == 0


async def test_the_newest_backup_is_a_figure_so_a_site_without_one_is_told(
    line_settings: Settings, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Backups that stopped (a cron job gone, a full backup disk) were seen only on the day a
    # restore was needed: no figure said when the last one was written.
    async with running_line(line_settings) as line:
        never = value(await scrape(http, line), "siaga112_backup_last_success_timestamp_seconds")
        assert never == 0
        # Taken while the line runs, as a nightly job does.
        manifest = await back_up(line_settings, tmp_path / "nightly")
        figure = value(await scrape(http, line), "siaga112_backup_last_success_timestamp_seconds")
    assert figure is not None
    assert manifest.created_at.timestamp() <= figure <= time.time()


async def test_a_hung_file_system_holds_neither_the_scrape_nor_the_console(
    line_settings: Settings, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A recordings volume on an NFS server that stopped answering: statfs never returns. The
    # scrape measured it on the main loop, so the console, the wallboard and the API stood
    # still with it, scrape after scrape.
    release = threading.Event()
    measure = shutil.disk_usage

    def hung(path: str | os.PathLike[str]) -> Any:
        release.wait(8)  # bounded: without the fix the test fails on time, not by hanging
        return measure(path)

    monkeypatch.setattr(shutil, "disk_usage", hung)
    counted = FactSpool.rejected_count

    def hung_count(spool: FactSpool) -> int:  # the spool's fallback on that mount
        release.wait(8)
        return counted(spool)

    monkeypatch.setattr(FactSpool, "rejected_count", hung_count)
    loop = asyncio.get_running_loop()
    try:
        async with running_line(line_settings) as line:
            started = loop.time()
            probing = asyncio.create_task(scrape(http, line))
            await asyncio.sleep(0.3)  # the scrape is measuring by now
            async with http.get(f"{line.web.url}/healthz") as response:
                assert response.status == 200
            assert loop.time() - started < 2.0  # not held until the mount answers
            samples = await probing
            assert loop.time() - started < 5.0  # the scrape's bound, not the mount's
            assert value(samples, "siaga112_metrics_source_up", source="disk") == 0
            assert value(samples, "siaga112_disk_free_bytes", path="recordings") is None
            assert value(samples, "siaga112_metrics_source_up", source="spool") == 0
            assert value(samples, "siaga112_spool_facts_rejected") is None
            assert value(samples, "siaga112_spool_failing") == 0  # memory: still there
            assert value(samples, "siaga112_ami_up") is not None  # the rest is there
            # Another scrape waits on the same measurement: one thread held, not one a scrape.
            await scrape(http, line)
            for name in ("disk-usage", "spool-count"):
                assert sum(t.name == name for t in threading.enumerate()) == 1
            release.set()

            async def measured() -> float | None:
                return value(await scrape(http, line), "siaga112_disk_free_bytes",
                             path="recordings")

            assert await polling.eventually("the disk figures back", measured, within=5) > 0
            assert value(await scrape(http, line), "siaga112_spool_facts_rejected") == 0
    finally:
        release.set()


async def test_a_hung_monitor_directory_holds_one_thread_not_one_a_scrape(
    line_settings: Settings, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scan for recordings without a call took a thread of the AMI loop's executor at
    # every scrape and never gave it back while the directory hung: the queue_log reads of
    # the backfill, on the same executor, then waited forever.
    release = threading.Event()
    scans: list[float] = []
    listed = incoming_sources

    def hung(directory: Path) -> Any:
        scans.append(time.monotonic())
        release.wait(15)
        return listed(directory)

    monkeypatch.setattr("telephony.calls.history.incoming_sources", hung)
    try:
        async with running_line(line_settings) as line:
            for _ in range(3):
                samples = await scrape(http, line)
                assert value(samples, "siaga112_metrics_source_up", source="backfill") == 0
            assert len(scans) == 1
            release.set()

            async def answered() -> float | None:
                return value(await scrape(http, line), "siaga112_recordings_without_call")

            assert await polling.eventually("the scan's figure", answered, within=5) == 0
    finally:
        release.set()


class FakeFront(asyncio.DatagramProtocol):
    """Answers each OPTIONS as kamailio.cfg does (its Via, From, To, Call-ID and CSeq back),
    with ``status``; silent when ``status`` is None."""

    def __init__(self) -> None:
        self.status: bytes | None = b"200 OK"
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0].startswith(b"OPTIONS sip:127.0.0.1:") and head[0].endswith(b" SIP/2.0")
        assert self.transport is not None
        if self.status is None:
            return
        echoed = [line for line in head[1:] if line.split(b":")[0] in (
            b"Via", b"From", b"To", b"Call-ID", b"CSeq")]
        for status in (b"100 Trying", self.status):  # a provisional reply is not an answer
            self.transport.sendto(b"\r\n".join([b"SIP/2.0 " + status, *echoed,
                                                 b"Content-Length: 0", b"", b""]), addr)


async def test_the_sip_front_answering_or_not_is_a_figure() -> None:
    # The cluster's front (Kamailio) down refuses every new call of the site before it
    # reaches a node, yet a node's line showed nothing: its Asterisk, AMI and FastAGI were up.
    loop = asyncio.get_running_loop()
    transport, front = await loop.create_datagram_endpoint(FakeFront,
                                                           local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    collector = FrontCollector("127.0.0.1", port)

    async def up() -> float | None:
        await collector.refresh()
        return next((sample.value for family in collector.collect()
                     for sample in family.samples), None)

    try:
        assert await up() == 1
        front.status = b"404 Not Here"  # its SIP stack answers: up
        assert await up() == 1
        front.status = None  # hung: no answer within the bound
        started = loop.time()
        assert await up() == 0
        assert loop.time() - started < 2.0  # within the scrape's bound
    finally:
        transport.close()
    assert await up() == 0  # nothing listens there any more


async def test_a_cluster_node_shows_its_peers_and_its_front(
    line_settings: Settings, http: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(FakeFront, local_addr=("127.0.0.1", 0))
    settings = replace(line_settings, asterisk_systemname="node1",
                       cluster_nodes=(ClusterNode("node1", "127.0.0.11", 5061, 4574),
                                      ClusterNode("node2", "127.0.0.12", 5062, 4575)),
                       kamailio_port=transport.get_extra_info("sockname")[1])
    try:
        async with running_line(settings) as line:
            samples = await scrape(http, line)
    finally:
        transport.close()
    assert value(samples, "siaga112_sip_front_up") == 1
    assert value(samples, "siaga112_cluster_peer_up", peer="node2") == 1
    assert value(samples, "siaga112_metrics_source_up", source="sip_front") == 1


async def test_readiness_names_what_is_down_and_metrics_still_answer(
    line_settings: Settings, http: aiohttp.ClientSession
) -> None:
    # Nothing listens on the database's port, nor on AMI's.
    settings = replace(line_settings,
                       database_dsn=f"postgresql://siaga112@127.0.0.1:{free_port()}/none",
                       db_connect_timeout=0.5)
    async with running_line(settings) as line:
        async with http.get(f"{line.web.url}/readyz") as response:
            assert response.status == 503
            body = await response.json()
        assert body["down"] == ["ami", "database"]
        assert body["parts"]["fastagi"] == "ok"
        async with http.get(f"{line.web.url}/healthz") as response:
            assert response.status == 200
        samples = await scrape(http, line)
    assert value(samples, "siaga112_ready", part="database") == 0
    assert value(samples, "siaga112_ami_up") == 0
    # What needs the database is left out, and says so; the rest is there.
    assert value(samples, "siaga112_metrics_source_up", source="recordings") == 0
    assert value(samples, "siaga112_recordings_backlog") is None
    assert value(samples, "siaga112_spool_facts") == 0


async def test_metrics_answer_only_the_allowed_scrapers(
    line_settings: Settings, http: aiohttp.ClientSession
) -> None:
    settings = replace(line_settings, metrics_allowed_addresses=("192.0.2.0/24",),
                       http_trusted_proxies=("127.0.0.1/32",))
    async with running_line(settings) as line:
        async with http.get(f"{line.web.url}/metrics") as response:
            assert response.status == 403
        # Behind the (trusted) front the client is who the front says, not the front.
        samples = await scrape(http, line, {"X-Forwarded-For": "192.0.2.8"})
        assert value(samples, "siaga112_ami_up") == 0
        async with http.get(f"{line.web.url}/metrics",
                            headers={"X-Forwarded-For": "192.0.2.8, 198.51.100.1"}) as response:
            assert response.status == 403
        # Health and readiness are for anyone (load balancers, compose), with no caller data.
        async with http.get(f"{line.web.url}/healthz") as response:
            assert response.status == 200


async def test_health_and_readiness_answer_head_as_they_answer_get(
    line_settings: Settings, http: aiohttp.ClientSession
) -> None:
    # Uptime checkers and load balancers often probe with HEAD (HTTP requires a server to
    # support it); a 405 read as "down" to them. No AMI behind the line here: not ready.
    async with running_line(line_settings) as line:
        for path, status in (("/healthz", 200), ("/readyz", 503)):
            async with http.head(f"{line.web.url}{path}") as response:
                assert (path, response.status) == (path, status)
                assert await response.read() == b""
        # Anything but GET and HEAD is still refused, in Bahasa Indonesia.
        async with http.post(f"{line.web.url}/healthz") as response:
            assert response.status == 405
            assert (await response.json())["error"]["code"] == "method_not_allowed"
