"""Where call facts go when the store fails, in the real lab (issue 13, items 3 and 4).

- A spool that cannot be written (a real full file system: a tiny tmpfs) while PostgreSQL is
  down: the call's facts are held in memory, ``/readyz`` says ``spool`` is down, and once the
  disk and the database take them again the call is recorded whole.
- Calls whose hang-up was missed while both PostgreSQL and the line were down: the line starts
  again with the database still down, so its resync cannot know which calls the store has
  open; when the database comes back, a resync closes them, with the end Asterisk's queue_log
  gives (backfilled) or else as vanished.
- A caller who hangs up while both the line's AMI session (cut through a relay) and
  PostgreSQL are away: the resync at the session's return closes the call as vanished (it
  cannot read the queue_log then); once the database is back, the queue_log gives it its own
  end.

Each test runs the line on a cluster of its own (stopped and started here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from telephony.app import running_line
from telephony.db.embedded import EmbeddedPostgres, temporary_cluster
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import unique_caller
from tests.support.db import cluster_processes, frozen
from tests.support.disk import fill_up, tiny_tmpfs
from tests.support.net import own_lab, spare_port
from tests.support.polling import eventually
from tests.support.relay import Relay

pytestmark = pytest.mark.e2e

CALLS = 3
# From the database's return: the watch retries every db_retry_seconds while the store is
# away, then asks Asterisk once; the rest is the spool draining and one write.
BOUND_SECONDS = 10.0


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return Settings(
        **own_lab("vanish-test"),
        http_port=0,
        lab_operators=4,
        queue_max_wait=300,  # nobody answers: the callers wait in the queue until cut
        agi_session_timeout=60,
        ami_reconnect_seconds=0.5,
        db_retry_seconds=0.5,
        db_connect_timeout=1.0,
    )


@pytest.fixture
async def own_cluster() -> AsyncIterator[EmbeddedPostgres]:
    with temporary_cluster("siaga112-vanish-e2e-") as (_root, cluster):
        yield cluster


def on_own_cluster(settings: Settings, cluster: EmbeddedPostgres, tmp_path: Path) -> Settings:
    """The line on ``cluster``, as on a site: it migrates as the owner, writes as its role."""
    return replace(settings, database_dsn=cluster.line_dsn(settings.database_line_user),
                   database_owner_dsn=cluster.dsn(), state_dir=tmp_path / "state")


async def calls_of(cluster: EmbeddedPostgres, caller_id: str) -> list[asyncpg.Record] | None:
    """The caller's call rows, or None while the database is away."""
    try:
        connection = await asyncpg.connect(cluster.dsn(), timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return await connection.fetch(
            "SELECT call_id, ended_at, vanished, hangup_cause FROM calls WHERE caller_number = $1",
            caller_id)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()


async def test_calls_ended_while_the_database_and_the_line_were_down_are_closed(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    line_settings = on_own_cluster(settings, own_cluster, tmp_path)
    caller_id = unique_caller("0816")

    async def open_calls() -> list[asyncpg.Record] | None:
        rows = await calls_of(own_cluster, caller_id)
        if rows is None or len(rows) < CALLS or any(r["ended_at"] for r in rows):
            return None
        return rows

    # Callers that would wait for minutes (press 3: information; nobody is logged in).
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf="3", talk_seconds=240, calls=CALLS, rate=5) as callers:
        async with running_line(line_settings) as line:
            async with asyncio.timeout(10):
                await line.listener.wait_ready()
            opened = await eventually("the calls open in the store", open_calls, 30)
        # The line is gone; then the database; then the calls end in Asterisk.
        own_cluster.stop()
        await lab.acli("channel request hangup all")
        await lab.wait_cli("core show channels count",
                           lambda out: out.startswith("0 active channels"))
        await callers.stop()
    async with running_line(line_settings) as line:
        async with asyncio.timeout(10):
            await line.listener.wait_ready()  # resynced with no open call known
        own_cluster.start()
        back = time.monotonic()

        async def closed() -> list[asyncpg.Record] | None:
            rows = await calls_of(own_cluster, caller_id)
            if rows is None or not all(r["ended_at"] for r in rows):
                return None
            return rows

        rows = await eventually("the calls closed", closed, BOUND_SECONDS + 20)
        took = time.monotonic() - back
    assert sorted(r["call_id"] for r in rows) == sorted(r["call_id"] for r in opened)
    # Closed with the end Asterisk's queue_log gives (its hang-up cause, backfilled), or as
    # vanished where the log has none: never left open.
    assert all(r["vanished"] or r["hangup_cause"] is not None for r in rows)
    assert took < BOUND_SECONDS, f"closed {took:.1f} s after the database came back"


async def ready_parts(url: str | None) -> dict[str, str]:
    assert url is not None, "the line's web server did not start"
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        body = await response.json()
    parts: dict[str, str] = body["parts"]
    return parts


async def test_a_call_made_while_neither_the_database_nor_the_spool_takes_facts_is_kept(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    line_settings = on_own_cluster(settings, own_cluster, tmp_path)
    caller_id = unique_caller("0817")
    with tiny_tmpfs(line_settings.spool_dir) as spool:
        async with running_line(line_settings) as line:
            async with asyncio.timeout(10):
                await line.listener.wait_ready()
            assert (await ready_parts(line.web.url))["spool"] == "ok"
            filler = fill_up(spool)  # nothing is spooled while the database is up
            own_cluster.stop()
            # Nobody answers: the caller waits (in all-operators), then hangs up.
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=caller_id, dtmf="3", talk_seconds=4) as caller:
                await caller.wait()

            async def failing() -> bool | None:
                return True if line.recorder.failing and not line.listener.facts_waiting \
                    else None

            await eventually("the facts held in memory", failing, 10)
            assert (await ready_parts(line.web.url))["spool"] == "down"
            held = line.recorder.held
            assert held > 0
            assert line.metrics.registry.get_sample_value("siaga112_spool_failing") == 1
            filler.unlink()  # the disk takes them again, in order

            async def on_disk() -> bool | None:
                return True if not line.recorder.failing else None

            await eventually("the held facts on disk", on_disk, 10)
            assert (await ready_parts(line.web.url))["spool"] == "ok"
            assert line.recorder.pending() == held
            own_cluster.start()

            async def recorded() -> list[asyncpg.Record] | None:
                rows = await calls_of(own_cluster, caller_id)
                return rows if rows and rows[0]["ended_at"] and line.recorder.pending() == 0 \
                    else None

            rows = await eventually("the call recorded", recorded, 20)
            assert line.recorder.dropped == 0
    assert len(rows) == 1 and not rows[0]["vanished"]
    connection = await asyncpg.connect(own_cluster.dsn())
    try:
        row = await connection.fetchrow(
            "SELECT ivr_outcome, ivr_queue, queue, abandoned_at, hangup_cause, arrived_at "
            "FROM calls WHERE call_id = $1", rows[0]["call_id"])
        events = await connection.fetchval(
            "SELECT count(*) FROM call_events WHERE call_id = $1", rows[0]["call_id"])
    finally:
        await connection.close()
    assert row is not None
    # Nobody is logged in: the caller waited in all-operators, not in information.
    assert (row["ivr_outcome"], row["ivr_queue"], row["queue"]) == (
        "chosen", "information", "all-operators")
    assert row["abandoned_at"] is not None and row["arrived_at"] is not None
    assert events >= 5  # started, the IVR's variables, the queue join and abandon, the end


async def set_read_only(cluster: EmbeddedPostgres, read_only: bool) -> None:
    """Make the whole server refuse writes (as an admin's maintenance switch, or a primary
    demoted behind a single-host DSN does), or take them again; every session follows at the
    reload."""
    connection = await asyncpg.connect(cluster.dsn())
    try:
        await connection.execute(
            f"ALTER SYSTEM SET default_transaction_read_only = {'on' if read_only else 'off'}")
        await connection.fetchval("SELECT pg_reload_conf()")
    finally:
        await connection.close()


async def test_a_call_made_while_the_database_refuses_writes_is_recorded_once_it_takes_them(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    line_settings = on_own_cluster(settings, own_cluster, tmp_path)
    caller_id = unique_caller("0818")
    async with running_line(line_settings) as line:
        async with asyncio.timeout(10):
            await line.listener.wait_ready()
        await set_read_only(own_cluster, True)
        try:
            # Nobody answers: the caller waits (in all-operators), then hangs up.
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=caller_id, dtmf="3", talk_seconds=4) as caller:
                result = await caller.wait()
            assert result.ok, result

            async def spooled() -> bool | None:
                return True if line.recorder.pending() and not line.listener.facts_waiting \
                    else None

            # A database that refuses writes is away, not a refusal of what the facts say.
            await eventually("the call's facts spooled", spooled, 10)
        finally:
            await set_read_only(own_cluster, False)

        async def recorded() -> list[asyncpg.Record] | None:
            rows = await calls_of(own_cluster, caller_id)
            return rows if rows and rows[0]["ended_at"] and line.recorder.pending() == 0 \
                else None

        rows = await eventually("the call recorded", recorded, BOUND_SECONDS)
        rejected = line_settings.spool_dir / "rejected.jsonl"
        assert not rejected.exists(), rejected.read_text()
    assert len(rows) == 1 and not rows[0]["vanished"]
    connection = await asyncpg.connect(own_cluster.dsn())
    try:
        row = await connection.fetchrow(
            "SELECT ivr_outcome, ivr_queue, queue, abandoned_at, hangup_cause FROM calls "
            "WHERE call_id = $1", rows[0]["call_id"])
    finally:
        await connection.close()
    assert row is not None
    # Nobody is logged in: the caller waited in all-operators, not in information.
    assert (row["ivr_outcome"], row["ivr_queue"], row["queue"]) == (
        "chosen", "information", "all-operators")
    assert row["abandoned_at"] is not None and row["hangup_cause"] is not None


async def some_calls_of(cluster: EmbeddedPostgres, caller_id: str
                        ) -> list[asyncpg.Record] | None:
    """The caller's call rows once there is one (a probe for ``eventually``)."""
    return await calls_of(cluster, caller_id) or None


async def kill_postgres(cluster: EmbeddedPostgres) -> None:
    """SIGKILL the cluster's postmaster and every backend at once, as the server's machine
    or the OOM killer would end them: no shutdown checkpoint, a crash recovery at the next
    start. Returns once the postmaster is reaped (until then ``pg_ctl`` counts it running)."""
    pid, *children = cluster_processes(cluster)
    for victim in (pid, *children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)

    async def gone() -> bool | None:
        return None if Path(f"/proc/{pid}").exists() else True

    await eventually("the killed postmaster reaped", gone, 10)


async def test_calls_live_across_a_postgres_kill_and_restart_are_recorded_whole_once(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    line_settings = on_own_cluster(settings, own_cluster, tmp_path)
    caller_id = unique_caller("0819")

    async with running_line(line_settings) as line:
        async with asyncio.timeout(10):
            await line.listener.wait_ready()
        # Callers wait (nobody is logged in) across the crash, then hang up.
        async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                               dtmf="3", talk_seconds=12, calls=CALLS, rate=5) as callers:
            # Killed as the first call is stored: the others' starts and menus come while
            # the server is gone, and are spooled.
            await eventually("the first call in the store",
                             lambda: some_calls_of(own_cluster, caller_id), 10)
            await kill_postgres(own_cluster)

            async def noticed() -> bool | None:
                return True if line.recorder.pending() else None

            await eventually("facts spooled", noticed, 10)
            await asyncio.to_thread(own_cluster.start)  # crash recovery, while calls go on
            result = await callers.wait()
        assert result.successful == CALLS, result

        async def recorded() -> list[asyncpg.Record] | None:
            rows = await calls_of(own_cluster, caller_id)
            return rows if rows and len(rows) == CALLS and all(r["ended_at"] for r in rows) \
                and line.recorder.pending() == 0 else None

        rows = await eventually("the calls recorded", recorded, BOUND_SECONDS + 10)
        rejected = line_settings.spool_dir / "rejected.jsonl"
        assert not rejected.exists(), rejected.read_text()
    connection = await asyncpg.connect(own_cluster.dsn())
    try:
        calls = await connection.fetch(
            "SELECT call_id, ivr_outcome, ivr_queue, queue, abandoned_at, hangup_cause, vanished "
            "FROM calls WHERE caller_number = $1", caller_id)
        twice = await connection.fetch(
            "SELECT call_id, kind, count(*) FROM call_events WHERE call_id = ANY($1::text[]) "
            "AND kind IN ('call_started', 'call_ended', 'queue_joined', 'queue_abandoned') "
            "GROUP BY call_id, kind HAVING count(*) > 1", [r["call_id"] for r in rows])
    finally:
        await connection.close()
    for call in calls:
        assert (call["ivr_outcome"], call["ivr_queue"], call["queue"]) == (
            "chosen", "information", "all-operators"), dict(call)
        assert call["abandoned_at"] is not None and call["hangup_cause"] is not None, dict(call)
        assert not call["vanished"], dict(call)
    assert not twice, [dict(r) for r in twice]


async def test_calls_made_while_postgres_hangs_reach_the_queue_and_are_recorded_once(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    # PostgreSQL hung (every process stopped: connections accepted, nothing answered) as
    # callers come in: the IVR's screening read fails open within its budget, the recorder
    # gives up on the hung server and spools, /readyz says so, and once the server goes on
    # every call is recorded whole, once. With a site's connect timeout: the pools' waits
    # on a hung server are bound by it.
    line_settings = replace(on_own_cluster(settings, own_cluster, tmp_path),
                            db_connect_timeout=Settings().db_connect_timeout)
    caller_id = unique_caller("0814")
    async with running_line(line_settings) as line:
        async with asyncio.timeout(10):
            await line.listener.wait_ready()
        # A first caller, gone in the menu: the call path's pool holds a live connection then,
        # as between any two calls on a site.
        async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                               caller_id=unique_caller("0814"), talk_seconds=1) as first:
            await first.wait()
        with frozen(own_cluster):
            # Nobody answers: the callers wait (in all-operators), then hang up.
            async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                                   caller_id=caller_id, dtmf="3", talk_seconds=3, calls=CALLS,
                                   rate=5) as callers:
                result = await callers.wait()
            assert result.successful == CALLS, result

            async def spooled() -> bool | None:
                return True if line.recorder.pending() and not line.listener.facts_waiting \
                    and not line.recorder.writing else None

            await eventually("the calls' facts spooled", spooled, 10)
            assert (await ready_parts(line.web.url))["database"] == "down"

        async def recorded() -> list[asyncpg.Record] | None:
            rows = await calls_of(own_cluster, caller_id)
            return rows if rows and len(rows) == CALLS and all(r["ended_at"] for r in rows) \
                and line.recorder.pending() == 0 else None

        rows = await eventually("the calls recorded", recorded, BOUND_SECONDS)
        assert not (line_settings.spool_dir / "rejected.jsonl").exists()
    connection = await asyncpg.connect(own_cluster.dsn())
    try:
        calls = await connection.fetch(
            "SELECT call_id, ivr_outcome, queue, arrived_at, queue_joined_at, abandoned_at, "
            "vanished FROM calls WHERE caller_number = $1", caller_id)
        twice = await connection.fetch(
            "SELECT call_id, kind, count(*) FROM call_events WHERE call_id = ANY($1::text[]) "
            "AND kind IN ('call_started', 'call_ended', 'queue_joined', 'queue_abandoned') "
            "GROUP BY call_id, kind HAVING count(*) > 1", [r["call_id"] for r in rows])
    finally:
        await connection.close()
    for call in calls:
        # Through the menu, not failed open; queued as if unscored.
        assert (call["ivr_outcome"], call["queue"]) == ("chosen", "all-operators"), dict(call)
        assert call["abandoned_at"] is not None and not call["vanished"], dict(call)
        # The menu takes 1.5 s in the lab; the screening's cancelled read on the hung server
        # held a caller 3 s more.
        menu = (call["queue_joined_at"] - call["arrived_at"]).total_seconds()
        assert menu < 2.5, dict(call)
    assert not twice, [dict(r) for r in twice]


async def test_a_call_that_ends_while_the_ami_session_and_the_database_are_away_keeps_its_end(
    lab: Lab, settings: Settings, own_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    # The line followed the call live; then its AMI session was cut while the database was
    # away, and the caller hung up meanwhile. The resync at the session's return could not
    # read the queue_log (the store away) and closed the call as vanished; the backfill
    # once the database was back took it for ended, and the call kept no cause and a
    # made-up end for good.
    line_settings = on_own_cluster(settings, own_cluster, tmp_path)
    caller_id = unique_caller("0815")

    relay = Relay(("127.0.0.1", settings.ami_port), port=spare_port("vanish-test"),
                  source="127.0.0.1")
    async with relay, running_line(replace(line_settings, ami_port=relay.port)) as line:
        async with asyncio.timeout(10):
            await line.listener.wait_ready()
        # Nobody answers: the caller waits (in all-operators), then hangs up.
        async with sipp.caller(settings.sip_host, settings.sip_port, "112",
                               caller_id=caller_id, dtmf="3", talk_seconds=8) as caller:
            await eventually("the call in the store",
                             lambda: some_calls_of(own_cluster, caller_id), 10)
            await asyncio.to_thread(own_cluster.stop)
            await relay.cut()
            assert (await caller.wait()).ok
        await relay.restore()
        async with asyncio.timeout(20):
            await line.listener.wait_ready()
        await asyncio.to_thread(own_cluster.start)

        async def ended() -> list[asyncpg.Record] | None:
            rows = await calls_of(own_cluster, caller_id)
            return rows if rows and rows[0]["ended_at"] and not rows[0]["vanished"] else None

        rows = await eventually("the call's own end recorded", ended, BOUND_SECONDS + 10)
    assert len(rows) == 1
    connection = await asyncpg.connect(own_cluster.dsn())
    try:
        row = await connection.fetchrow(
            "SELECT vanished, hangup_cause, abandoned_at, ended_at, queue FROM calls "
            "WHERE call_id = $1", rows[0]["call_id"])
    finally:
        await connection.close()
    assert row is not None
    assert (row["vanished"], row["hangup_cause"], row["queue"]) == (
        False, 16, "all-operators"), dict(row)
    assert row["abandoned_at"] is not None and row["abandoned_at"] <= row["ended_at"], dict(row)
