"""A site from docker/, as a regency would run it: a carrier call through the published SIP
port reaches an operator's phone and shows in the HTTPS API; the line restarts mid-call and
loses nothing; /metrics counts the calls; with the line stopped calls fail open and the
fail-open alert fires; ``down`` then ``up`` keeps every call and recording; every service's
health check says healthy, a hung Asterisk or line unhealthy, and a line without its database
healthy (it still takes calls).

The tests run in order on one site (module scope) and build on each other's calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
import pytest

from telephony.lab import sipp
from tests.support import docker
from tests.support.polling import eventually

pytestmark = pytest.mark.deploy

T = TypeVar("T")
PASSWORD: Final = "kata-sandi-operator-112"
OPERATOR: Final = "petugas1"
PHONE: Final = "op1001"
SKILLS: Final = ("general", "medical", "fire", "security", "disaster")
ASTERISK_CONF: Final = "/srv/siaga112/site/etc/asterisk.conf"
# The long-running services, each with a health check (the compose file's).
CHECKED: Final = ("postgres", "asterisk", "line", "nginx", "prometheus")


def caller_number(tag: int) -> str:
    return f"0819{int(time.time()) % 10**6:06d}{tag:02d}"


class Api:
    """The site's HTTPS API through nginx (its certificate is self-signed), as the operator."""

    def __init__(self, base_url: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.base_url = base_url
        self.http = aiohttp.ClientSession(
            base_url=base_url, cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(ssl=context), timeout=aiohttp.ClientTimeout(total=20))
        self.auth: dict[str, str] = {}

    async def reachable(self) -> bool | None:
        """The line answers behind nginx (any answer of its own; nginx says 502 without it)."""
        try:
            async with self.http.get("/api/session") as response:
                return True if response.status < 500 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def login(self) -> None:
        async with self.http.post("/api/session", json={
                "username": OPERATOR, "password": PASSWORD}) as response:
            assert response.status == 201, await response.text()
            self.auth = {"Authorization": f"Bearer {(await response.json())['token']}"}

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(method, path, headers=self.auth, **kwargs) as response:
            assert response.status == 200, (path, response.status, await response.text())
            return await response.json()

    async def calls_of(self, number: str) -> list[dict[str, Any]]:
        found = await self.json("GET", "/api/calls", params={"caller_number": number})
        return list(found["calls"])

    async def ended_call(self, number: str, within: float = 90.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            try:
                calls = await self.calls_of(number)
            except (aiohttp.ClientError, TimeoutError, AssertionError):
                return None  # the line may be restarting behind nginx (502)
            ended = [c for c in calls if c["ended_at"] is not None]
            return ended[0] if ended else None
        return await eventually(f"the ended call of {number}", probe, within)

    async def stored_recording(self, call_id: str, within: float = 90.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            detail = await self.json("GET", f"/api/calls/{call_id}")
            done = [r for r in detail["recordings"]
                    if r["kind"] == "mixed" and r["state"] == "done"]
            return done[0] if done else None
        return await eventually(f"the recording of {call_id}", probe, within)

    async def audio_sha256(self, recording: dict[str, Any]) -> str:
        async with self.http.get(recording["audio_url"], headers=self.auth) as response:
            assert response.status == 200, await response.text()
            return hashlib.sha256(await response.read()).hexdigest()


def asterisk_rx(site: docker.Site, command: str) -> str:
    """One Asterisk CLI command in the site's Asterisk container."""
    return site.compose("exec", "-T", "asterisk", "asterisk", "-C", ASTERISK_CONF,
                        "-rx", command, timeout=30).stdout


def line_command(site: docker.Site, *args: str, input_text: str | None = None) -> str:
    """A siaga112 command in the line container (as an admin runs it); its output."""
    return site.compose("exec", "-T", "line", "siaga112-entrypoint", *args,
                        input_text=input_text).stdout


@pytest.fixture(scope="module")
async def phone_secret(site: docker.Site, site_ports: dict[str, int]) -> str:
    """The operator's account and desk, made with the line image's CLI once the site is up:
    the desk command generates the phone's SIP secret and prints it, this once."""
    front = Api(f"https://127.0.0.1:{site_ports['https']}")
    try:
        await eventually("the site's HTTPS API", front.reachable, within=180)
    finally:
        await front.http.close()
    asterisk_rx(site, "core waitfullybooted")
    line_command(site, "account", "create", OPERATOR, "--role", "operator",
                 input_text=PASSWORD + "\n")
    skills = [arg for skill in SKILLS for arg in ("--skill", f"{skill}=5")]
    printed = line_command(site, "account", "desk", OPERATOR, f"PJSIP/{PHONE}", *skills)
    match = re.search(r"sandi: (\S+)", printed)
    assert match, printed
    # No manual step: the desk command made Asterisk reload PJSIP over AMI (it says so
    # otherwise), so the queue rings the phone added after Asterisk started.
    assert "belum diterapkan" not in printed, printed
    return match.group(1)


@pytest.fixture(scope="module")
async def phones(site: docker.Site, site_ports: dict[str, int], phone_secret: str
                 ) -> AsyncIterator[sipp.Sipp]:
    """The operator's phone, as a real one works: it REGISTERs (digest, with the secret the
    desk command printed; Asterisk reads the phone from PostgreSQL through PJSIP realtime as
    siaga112_asterisk), then a sipp UAS on the same address and port answers its calls and
    stays until Asterisk's BYE. It registers from 127.0.0.2: 127.0.0.1 is the carrier."""
    port = site_ports["phones"]
    async with sipp.phone("127.0.0.1", site_ports["sip"], PHONE, phone_secret,
                          phone_port=port, expires=3600, trace_messages=True) as uac:
        result = await uac.wait()
        assert result.ok, f"{result}\n{uac.messages}"
    contacts = asterisk_rx(site, "pjsip show contacts")
    assert f"{PHONE}/sip:{PHONE}@127.0.0.2:{port}" in contacts, contacts
    async with sipp.operator(port, host="127.0.0.2", audio=True) as uas:
        # Asterisk qualifies the phone (OPTIONS); the first may have come before the UAS ran.
        async def available() -> bool | None:
            asterisk_rx(site, f"pjsip qualify {PHONE}")
            await asyncio.sleep(0.5)
            contacts = asterisk_rx(site, "pjsip show contacts")
            return True if re.search(rf"{PHONE}/sip:\S+ +\S+ +Avail\b", contacts) else None
        await eventually("the phone qualified", available, within=30, interval=1.0)
        yield uas


@pytest.fixture(scope="module")
async def api(site: docker.Site, site_ports: dict[str, int],
              phones: sipp.Sipp) -> AsyncIterator[Api]:
    """The operator logged in over HTTPS and in the queues of every skill through the desk
    API (AMI QueueAdd)."""
    api = Api(f"https://127.0.0.1:{site_ports['https']}")
    try:
        await api.login()

        async def joined() -> list[str] | None:
            try:
                found = await api.json("POST", "/api/desk/queues", json={"skills": list(SKILLS)})
            except AssertionError:
                return None  # the line's AMI connection may still be coming up
            return list(found["queues"]) or None
        await eventually("the operator in the queues", joined, within=60, interval=1.0)
        yield api
    finally:
        await api.http.close()


async def call(site_ports: dict[str, int], number: str, talk: float = 5.0
               ) -> sipp.SippResult:
    """A carrier call to 112 through the site's SIP port: fire (1, 2), then ``talk`` s."""
    async with sipp.caller("127.0.0.1", site_ports["sip"], "112", caller_id=number,
                           dtmf="12", talk_seconds=talk, audio=True) as caller:
        return await caller.wait()


CALLS: dict[str, str] = {}  # caller number -> call id, across the module's tests


def test_a_settings_file_missing_on_the_host_is_refused_in_one_line(
        site_images: dict[str, str], tmp_path: Path) -> None:
    """No settings file where SITE_SETTINGS points: `up` stops, naming it, and leaves no
    directory there (docker made one for a short-syntax mount, and the line and Asterisk's
    configuration then ran on the built-in settings, "Up" and wrong). A directory an older
    compose file left there: the line refuses it in one log line."""
    missing = tmp_path / "siaga112.toml"
    nowhere = docker.Site("siaga112-deploynosettings",
                          {**site_images, "SITE_SETTINGS": str(missing)})
    try:
        done = nowhere.compose("up", "-d", "asterisk-config", check=False, timeout=120)
    finally:
        nowhere.compose("down", "--volumes", "--remove-orphans", check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    assert f"bind source path does not exist: {missing}" in done.stderr, done.stderr
    assert not missing.exists()
    missing.mkdir()
    done = docker.run(["docker", "run", "--rm", "-v", f"{missing}:/etc/siaga112/siaga112.toml:ro",
                       f"siaga112/line:{site_images['SITE_TAG']}", "serve"],
                      check=False, timeout=120)
    said = done.stderr.splitlines()
    assert done.returncode == 2 and len(said) == 1, done.stdout + done.stderr
    assert "is a directory" in said[0] and "SITE_SETTINGS" in said[0], said


async def test_every_service_becomes_healthy(site: docker.Site) -> None:
    """`docker-compose ps` tells a working site from one that only runs: each long-running
    service has a health check (pg_isready, Asterisk's CLI, the line's probe, nginx's HTTPS,
    Prometheus' /-/ready) and each reaches "healthy"."""
    for service in CHECKED:
        await docker.health_of(site, service, "healthy", within=180)
    # What the engineer reads. (docker-compose wraps its table to the terminal's width, so
    # the names may be cut across lines; the states are short enough not to be.)
    listed = site.compose("ps").stdout
    assert listed.count("(healthy)") == len(CHECKED), listed


def test_every_containers_log_is_rotated(site: docker.Site) -> None:
    """docker's json-file log without max-size grows for as long as the line runs: months of
    a 24-hour line's log filled the disk that PostgreSQL and the recordings are on."""
    for service in ("asterisk-config", *CHECKED):
        found = docker.run(["docker", "inspect", "--format", "{{json .HostConfig.LogConfig}}",
                            site.container(service)]).stdout
        config = json.loads(found)
        assert config["Type"] == "json-file" and config["Config"].get("max-size"), (service,
                                                                                    config)
        assert int(config["Config"].get("max-file", "1")) > 1, (service, config)


async def test_a_carrier_call_reaches_the_operator_and_shows_in_the_https_api(
        api: Api, site_ports: dict[str, int], phones: sipp.Sipp) -> None:
    number = caller_number(1)
    result = await call(site_ports, number)
    assert result.ok, result.errors
    found = await api.ended_call(number)
    assert (found["ivr_skill"], found["queue"], found["disposition"], found["operator"]) == (
        "fire", "fire", "answered", f"PJSIP/{PHONE}"), found
    await api.stored_recording(found["call_id"])
    CALLS[number] = found["call_id"]


def psql(site: docker.Site, port: int, sql: str) -> tuple[int, str]:
    """SQL as the cluster's superuser in the postgres container (peer authentication on its
    socket); the exit status and what psql printed."""
    done = site.compose("exec", "-T", "-u", "postgres", "postgres", "psql", "-h", "/tmp",
                        "-p", str(port), "-d", "siaga112", "-v", "ON_ERROR_STOP=1", "-qAtc", sql,
                        timeout=30, check=False)
    return done.returncode, done.stdout + done.stderr


async def test_the_line_runs_as_a_role_that_cannot_rewrite_the_audit_log(
        site: docker.Site, site_ports: dict[str, int], phone_secret: str) -> None:
    """The line's sessions are siaga112_line's, which owns nothing: it may append to the
    audit log (the desk command did) but neither truncate, delete nor drop it."""
    port = site_ports["pg"]
    status, users = psql(site, port, "SELECT DISTINCT usename FROM pg_stat_activity "
                                     "WHERE datname = 'siaga112' AND usename <> 'postgres'")
    assert status == 0, users
    assert "siaga112_line" in users.split() and "siaga112" not in users.split(), users
    status, owner = psql(site, port, "SELECT pg_get_userbyid(relowner) FROM pg_class "
                                     "WHERE relname = 'audit_log'")
    assert (status, owner.strip()) == (0, "siaga112")
    status, count = psql(site, port, "SELECT count(*) FROM audit_log")
    assert status == 0 and int(count) > 0, count
    for statement in ("TRUNCATE audit_log", "DELETE FROM audit_log", "DROP TABLE audit_log"):
        status, refusal = psql(site, port, f"SET ROLE siaga112_line; {statement}")
        assert status != 0 and ("permission denied" in refusal
                                or "must be owner" in refusal), (statement, refusal)
    status, refusal = psql(site, port, "TRUNCATE audit_log")  # even a superuser: the trigger
    assert status != 0 and "append-only" in refusal, refusal
    assert psql(site, port, "SELECT count(*) FROM audit_log")[1] == count


def metric_total(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (all labels) in a Prometheus text exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


async def test_metrics_count_the_calls(site_ports: dict[str, int], api: Api) -> None:
    """The line's /metrics counts the first call (its counters start with the process, so
    this runs before the line restarts); /healthz and /readyz answer."""
    async with aiohttp.ClientSession(f"http://127.0.0.1:{site_ports['http']}") as http:
        for probe in ("/healthz", "/readyz"):
            async with http.get(probe) as response:
                assert response.status == 200, (probe, await response.text())
        async with http.get("/metrics") as response:
            assert response.status == 200, await response.text()
            text = await response.text()
    assert metric_total(text, "siaga112_calls_offered_total") >= 1, text[:3000]
    assert metric_total(text, "siaga112_calls_answered_total") >= 1, text[:3000]


async def test_restarting_the_line_mid_call_loses_nothing(
        site: docker.Site, api: Api, site_ports: dict[str, int], phones: sipp.Sipp) -> None:
    number = caller_number(2)
    caller = asyncio.create_task(call(site_ports, number, talk=25.0))

    async def answered() -> bool | None:
        calls = await api.calls_of(number)
        return True if calls and calls[0]["operator"] is not None else None
    await eventually("the call answered", answered, within=60)
    site.compose("restart", "line", timeout=120)
    result = await caller
    assert result.ok, result.errors
    found = await api.ended_call(number, within=120)
    assert (found["disposition"], found["operator"]) == ("answered", f"PJSIP/{PHONE}"), found
    assert found["talk_seconds"] >= 15, found  # the whole conversation, across the restart
    await api.stored_recording(found["call_id"])
    CALLS[number] = found["call_id"]


def fail_open_alert() -> str:
    """The expression of the shipped fail-open alert rule (docker/prometheus/alerts.yml):
    the first ``expr:`` after the rule's name (comments may come between)."""
    text = (docker.DOCKER_DIR / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    match = re.search(r"- alert: Siaga112FailOpenCalls\n(?:\s*#.*\n)*\s*expr: (.+)", text)
    assert match, "no Siaga112FailOpenCalls rule in docker/prometheus/alerts.yml"
    return match.group(1).strip()


async def test_with_the_line_stopped_calls_fail_open_and_the_alert_fires(
        site: docker.Site, api: Api, site_ports: dict[str, int], phones: sipp.Sipp) -> None:
    """With the line (Asterisk's FastAGI peer) stopped, a call fails open in the dialplan
    (IVR_OUTCOME=failopen) and still reaches the operator. It is still up when the line
    starts again, whose AMI resync reads the channel's IVR_* variables and counts it in
    siaga112_ivr_failopen_total; Prometheus (compose profile metrics) has scraped that series
    at 0 before the stop, so the shipped rule's own expression, asked of Prometheus, is true.
    """
    expression = fail_open_alert()
    prometheus = f"http://127.0.0.1:{site_ports['prometheus']}"

    async def alert_true() -> bool | None:
        async with aiohttp.ClientSession(prometheus) as http:
            try:
                async with http.get("/api/v1/query", params={"query": expression}) as reply:
                    data = await reply.json()
            except (aiohttp.ClientError, TimeoutError):
                return None
        assert data.get("status") == "success", data
        return True if data["data"]["result"] else None

    async def operator_talking() -> bool | None:
        channels = await asyncio.to_thread(asterisk_rx, site, "core show channels concise")
        return True if any(line.startswith(f"PJSIP/{PHONE}-") and "!Up!" in line
                           for line in channels.splitlines()) else None

    assert await alert_true() is None, "the fail-open alert is true before any call failed open"
    site.compose("stop", "line", timeout=120)
    number = caller_number(3)
    caller = asyncio.create_task(call(site_ports, number, talk=40.0))
    try:
        await eventually("the failed-open call answered", operator_talking, within=60)
    finally:
        await asyncio.to_thread(site.compose, "start", "line", timeout=120)
    result = await caller
    assert result.ok, result.errors  # fail open: the operator answered without the line
    await eventually(f"the fail-open alert ({expression}) true", alert_true, within=120,
                     interval=2.0)
    found = await api.ended_call(number, within=60)
    assert found["ivr_outcome"] == "failopen", found


async def test_down_then_up_keeps_every_call_and_recording(
        site: docker.Site, api: Api, site_ports: dict[str, int]) -> None:
    assert len(CALLS) >= 2, "the calls of the earlier tests"
    before = {}
    for number, call_id in CALLS.items():
        recording = await api.stored_recording(call_id)
        before[number] = (call_id, await api.audio_sha256(recording))
    site.compose("down", timeout=300)
    site.compose("up", "-d", timeout=600)
    await eventually("the site's HTTPS API again", api.reachable, within=180)
    await api.login()
    for number, (call_id, sha256) in before.items():
        found = await api.ended_call(number, within=30)
        assert found["call_id"] == call_id
        recording = await api.stored_recording(call_id, within=30)
        assert await api.audio_sha256(recording) == sha256 == recording["sha256"]



async def test_a_backup_restores_as_the_readme_says(site: docker.Site, api: Api) -> None:
    """The README's steps: a backup taken while the line runs lands in the host's backup
    directory (one in the container's own files would go with the container); the restore
    is refused while the line runs (it would go on recording into the database being
    replaced), then done with the line stopped; the line starts again on the restored
    database and every call is there, with its recording."""
    site.admin("backup", "/backups/site-1")
    backup = Path(site.variables["SITE_BACKUPS"]) / "site-1"
    manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
    assert any(entry["path"].startswith("recordings/") for entry in manifest["files"]), manifest

    refused = site.admin("restore", "--force", "/backups/site-1", check=False)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "masih tersambung" in refused.stdout + refused.stderr, refused.stdout + refused.stderr

    site.compose("stop", "line", timeout=120)
    try:
        restored = site.admin("restore", "--force", "/backups/site-1")
    finally:
        site.compose("start", "line", timeout=120)
    assert "dipulihkan" in restored.stdout, restored.stdout + restored.stderr
    await eventually("the site's HTTPS API again", api.reachable, within=180)
    await api.login()
    for number, call_id in CALLS.items():
        found = await api.ended_call(number, within=30)
        assert found["call_id"] == call_id
        recording = await api.stored_recording(call_id, within=30)
        assert await api.audio_sha256(recording) == recording["sha256"]

async def test_a_hung_asterisk_is_unhealthy_and_a_line_without_its_database_is_not(
        site: docker.Site, site_ports: dict[str, int]) -> None:
    """PostgreSQL stopped: the line still takes calls and spools their facts, so its health
    check keeps passing while its /readyz says the database is down (an "unhealthy" line
    would point at the wrong container, and anything acting on it would take the calls away).
    Asterisk hung (SIGSTOP, as a deadlock leaves it, the container still running): its CLI
    does not answer within the check's timeout and it turns unhealthy; healthy again once it
    runs on."""
    async def database_down() -> bool | None:
        async with (aiohttp.ClientSession(f"http://127.0.0.1:{site_ports['http']}") as http,
                    http.get("/readyz") as response):
            body = await response.json()
        return True if response.status == 503 and "database" in body["down"] else None

    site.compose("stop", "postgres", timeout=120)
    site.signal_main_process("asterisk", signal.SIGSTOP)
    try:
        await eventually("the line's /readyz: database down", database_down, within=60)
        seen = docker.checks_of(site, "line")
        hung = await docker.health_of(site, "asterisk", "unhealthy")
        assert all(check["ExitCode"] != 0 for check in hung["Log"][-3:]), hung
        line_checks = await docker.checks_since(site, "line", seen, count=3)
        assert all(check["ExitCode"] == 0 for check in line_checks), line_checks
        assert site.health("line")["Status"] == "healthy"
    finally:
        site.signal_main_process("asterisk", signal.SIGCONT)
        site.compose("start", "postgres", timeout=120)
    await docker.health_of(site, "asterisk", "healthy", within=60)
    await docker.health_of(site, "postgres", "healthy", within=60)


async def test_a_hung_line_is_unhealthy_and_the_front_stays_healthy(site: docker.Site) -> None:
    """The line's main process hung (SIGSTOP: its HTTP server takes connections and never
    answers) turns unhealthy, saying why; nginx's check is answered by nginx itself, so the
    front stays healthy meanwhile. Healthy again once the line runs on."""
    seen = docker.checks_of(site, "nginx")
    site.signal_main_process("line", signal.SIGSTOP)
    try:
        hung = await docker.health_of(site, "line", "unhealthy")
        assert "did not answer" in hung["Log"][-1]["Output"], hung["Log"][-1]
        front = await docker.checks_since(site, "nginx", seen, count=3)
        assert all(check["ExitCode"] == 0 for check in front), front
    finally:
        site.signal_main_process("line", signal.SIGCONT)
    await docker.health_of(site, "line", "healthy", within=60)
