"""The deployment tier's Docker side: the engine, locally built Debian base images, the
site's images tagged by a hash of their inputs, and ``docker-compose`` for one test site.

No container registry is reachable where the tests run, so the Debian base images are built
here with mmdebstrap (the lab's suite and mirror, ``telephony/lab/chroot.py``) and passed to
the Dockerfiles as their ``BASE``/``ASTERISK_BASE`` arguments. Every image is tagged with a
hash of everything it is built from; a tag that exists is not built again, so a warm run
builds nothing, and dockerd keeps the images and their layers between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from telephony.lab.chroot import DEBIAN_SUITE, debian_mirror
from tests.support.polling import eventually

ROOT: Final = Path(__file__).resolve().parents[2]
DOCKER_DIR: Final = ROOT / "docker"
COMPOSE_FILE: Final = DOCKER_DIR / "docker-compose.yml"
CLUSTER_COMPOSE_FILE: Final = DOCKER_DIR / "docker-compose.cluster.yml"
SERVICES_BUILT: Final = ("postgres", "asterisk-config", "asterisk", "line", "nginx", "prometheus")
IMAGES: Final = ("line", "asterisk", "postgres", "nginx", "prometheus")
CLUSTER_IMAGES: Final = ("line", "asterisk", "patroni", "kamailio", "nginx")
# What the images are built from (docker/'s own scripts and Dockerfiles; the rest is what
# .dockerignore lets into the build context).
_INPUTS: Final = ("pyproject.toml", "README.md", ".dockerignore", "asterisk-conf",
                  "kamailio-conf", "ivr",
                  "recordings", "telephony", "docker/Dockerfile.line",
                  "docker/Dockerfile.asterisk", "docker/Dockerfile.postgres",
                  "docker/Dockerfile.nginx", "docker/Dockerfile.prometheus",
                  "docker/line-entrypoint.sh", "docker/asterisk-entrypoint.sh",
                  "docker/postgres-entrypoint.sh", "docker/nginx/render-site",
                  "docker/nginx/entrypoint", "docker/nginx/healthcheck",
                  "docker/prometheus-entrypoint.sh", "docker/docker-compose.yml")
# And those of the cluster's compose file (docker-compose.cluster.yml), on top.
CLUSTER_INPUTS: Final = ("docker/Dockerfile.kamailio", "docker/kamailio-healthcheck.sh",
                         "docker/Dockerfile.patroni", "docker/patroni-entrypoint.sh",
                         "docker/docker-compose.cluster.yml")
ASTERISK_SUITE: Final = DEBIAN_SUITE  # the lab's: the first Debian suite with Asterisk 22
BASE_SUITE: Final = "bookworm"  # Debian 12: PostgreSQL 15, nginx, Prometheus, Python 3.11


# The suite runs two test workers (pytest-xdist, scripts/test). What must not happen twice at
# once on one machine holds this lock: starting dockerd, building an image, and a test site
# (two sites side by side would share two cores and build the same images).
LOCK_FILE: Final = Path(tempfile.gettempdir()) / "siaga112-docker.lock"


class _Turn:
    """How deep this process is in :func:`one_at_a_time`: re-entered, not locked again."""

    depth = 0


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """This process's turn at dockerd against every other test worker's (a file lock);
    re-entrant within the process, as a module holds it from choosing its site's ports to
    taking the site down and its steps take it again (flock on a second descriptor would
    wait on the first)."""
    if _Turn.depth:
        _Turn.depth += 1
        try:
            yield
        finally:
            _Turn.depth -= 1
        return
    with LOCK_FILE.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _Turn.depth = 1
        try:
            yield
        finally:
            _Turn.depth = 0


class DockerError(RuntimeError):
    """A docker or docker-compose command failed; the message carries its output."""


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600,
        check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one command (bounded), raising :class:`DockerError` with its output on failure."""
    try:
        done = subprocess.run(list(argv), env=dict(env) if env is not None else None,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              input=input_text, stdin=None if input_text else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{' '.join(argv)}: timed out after {timeout:g} s") from exc
    if check and done.returncode != 0:
        raise DockerError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                          f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def ensure_engine() -> None:
    """Install docker.io and docker-compose and start dockerd when missing (scripts/setup)."""
    with one_at_a_time():
        run([str(ROOT / "scripts" / "setup"), "--docker"], timeout=900)


def image_exists(tag: str) -> bool:
    """True when dockerd has an image with this tag."""
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def _digest(parts: Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


def base_image(suite: str) -> str:
    """A minimal Debian ``suite`` image built with mmdebstrap from the host's mirror and
    imported into dockerd, unless one built from the same inputs is there already."""
    mirror = debian_mirror()
    tag = f"siaga112/base:{suite}-{_digest([suite.encode(), mirror.encode(), b'minbase-1'])}"
    if image_exists(tag):
        return tag
    with one_at_a_time():
        if not image_exists(tag):  # not built by another worker meanwhile
            _build_base_image(suite, mirror, tag)
    return tag


def _build_base_image(suite: str, mirror: str, tag: str) -> None:
    if shutil.which("mmdebstrap") is None:
        raise DockerError("mmdebstrap is not installed (scripts/setup installs it)")
    # mmdebstrap writes a tarball to stdout; docker import makes it an image. Snapshot
    # mirrors serve Release files whose Valid-Until has passed (as in the lab).
    build = subprocess.Popen(
        ["mmdebstrap", "--variant=minbase", '--aptopt=Acquire::Check-Valid-Until "false"',
         suite, "-", mirror], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL)
    assert build.stdout is not None
    try:
        imported = subprocess.run(
            ["docker", "import",
             "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--change", 'CMD ["bash"]', "-", tag],
            stdin=build.stdout, capture_output=True, text=True, timeout=900, check=False)
    finally:
        build.stdout.close()
        _, stderr = build.communicate(timeout=60)
    if build.returncode != 0 or imported.returncode != 0:
        run(["docker", "image", "rm", "-f", tag], check=False)
        raise DockerError(f"building {tag} failed:\n{stderr.decode(errors='replace')[-3000:]}"
                          f"\n{imported.stderr[-2000:]}")


def inputs_hash(bases: Sequence[str], extra: Sequence[str] = ()) -> str:
    """A hash of every file the site's images are built from (and of ``extra``, paths in
    the checkout), and of their base images."""
    parts = [base.encode() for base in bases]
    for name in (*_INPUTS, *extra):
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            parts += [str(file.relative_to(ROOT)).encode(), file.read_bytes()]
    return _digest(parts)


@dataclass
class Site:
    """One site brought up with docker-compose under its own project name (its own
    containers and volumes), with the compose variables in ``variables``, from
    ``compose_file`` (whose images are ``images``)."""

    project: str
    variables: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    compose_file: Path = COMPOSE_FILE
    images: tuple[str, ...] = IMAGES

    def env(self) -> dict[str, str]:
        """docker-compose's environment: ours, plus the compose variables."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("SIAGA112_")}
        return {**base, **self.variables, "COMPOSE_PROJECT_NAME": self.project,
                "COMPOSE_FILE": str(self.compose_file)}

    def compose(self, *args: str, timeout: float = 300, check: bool = True,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """``docker-compose ARGS`` for this site, from docker/."""
        return run(["docker-compose", "--profile", "metrics", *args], env=self.env(),
                   timeout=timeout, check=check, input_text=input_text)

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A siaga112 command as the README's Docker sections have an engineer run it: in a
        one-off container of the admin service (the line's image, settings and volumes, and
        the host's backup directory SITE_BACKUPS as /backups)."""
        return self.compose("run", "--rm", "-T", "admin", *args, timeout=300, check=check)

    def build(self) -> None:
        """Build the images unless images with this inputs hash exist already."""
        tag = self.variables["SITE_TAG"]
        if all(image_exists(f"siaga112/{name}:{tag}") for name in self.images):
            return
        started = time.monotonic()
        self.compose("build", timeout=1800)
        self.timings["images"] = time.monotonic() - started

    @contextlib.contextmanager
    def running(self) -> Iterator[Site]:
        """Built and up (a killed run's leftovers taken down first); taken down with its
        volumes afterwards unless ``SITE_KEEP`` is set. The phases' times go to ``timings``.
        One site at a time on this machine: another test worker's waits."""
        with one_at_a_time():
            yield from self._running()

    def _running(self) -> Iterator[Site]:
        self.build()
        self.compose("down", "--volumes", "--remove-orphans", check=False)
        try:
            up = time.monotonic()
            try:
                self.compose("up", "-d", timeout=600)
            except DockerError as exc:
                raise DockerError(f"{exc}\n{self.diagnosis()}") from exc
            self.timings["up"] = time.monotonic() - up
            yield self
        finally:
            if os.environ.get("SITE_KEEP") is None:
                down = time.monotonic()
                self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10",
                             check=False, timeout=300)
                self.timings["down"] = time.monotonic() - down

    def diagnosis(self) -> str:
        """Why a site did not come up: every container's state, and the last health checks
        and log lines of each one that is not running or not healthy."""
        listed = run(["docker", "ps", "-a", "--filter",
                      f"label=com.docker.compose.project={self.project}",
                      "--format", "{{.ID}} {{.Names}} {{.Status}}"], check=False).stdout
        report = [f"containers of {self.project}:\n{listed}"]
        for line in listed.splitlines():
            cid, name, status = [*line.split(" ", 2), "", ""][:3]
            healthy = status.startswith("Up") and not any(
                word in status for word in ("unhealthy", "starting", "Restarting"))
            if healthy or status.startswith("Exited (0)"):
                continue
            health = run(["docker", "inspect", "--format",
                          "{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}\n{{end}}", cid],
                         check=False).stdout
            logs = run(["docker", "logs", "--tail", "40", cid], check=False)
            report.append(f"--- {name} ({status}); health checks:\n{health[-1500:]}"
                          f"\nlog:\n{(logs.stdout + logs.stderr)[-4000:]}")
        return "\n".join(report)

    def container(self, service: str) -> str:
        """The id of the service's container."""
        found = self.compose("ps", "-q", service).stdout.split()
        if len(found) != 1:
            raise DockerError(f"{service}: containers {found}")
        return found[0]

    def health(self, service: str) -> dict[str, Any]:
        """The service's container's health: ``Status`` (starting, healthy, unhealthy) and
        ``Log``, its last five checks (``Start``, ``ExitCode``, ``Output``)."""
        done = run(["docker", "inspect", "--format", "{{json .State.Health}}",
                    self.container(service)])
        health: dict[str, Any] | None = json.loads(done.stdout)
        if health is None:
            raise DockerError(f"{service} has no health check")
        return health

    def signal_main_process(self, service: str, signum: signal.Signals) -> None:
        """Send ``signum`` to the service's own process (tini's child, the container's PID 1
        being tini), from the host: SIGSTOP makes it hang as a deadlocked one does, with
        the container still running."""
        tini = run(["docker", "inspect", "--format", "{{.State.Pid}}",
                    self.container(service)]).stdout.strip()
        children = Path(f"/proc/{tini}/task/{tini}/children").read_text().split()
        if len(children) != 1:
            raise DockerError(f"{service}: tini's children {children}")
        os.kill(int(children[0]), signum)

    def logs(self, service: str = "", tail: int = 60) -> str:
        """The last lines of a service's (or every service's) log, for a failure message."""
        args = ["logs", "--no-color", f"--tail={tail}"] + ([service] if service else [])
        return self.compose(*args, check=False).stdout


async def health_of(site: Site, service: str, status: str,
                    within: float = 120.0) -> dict[str, Any]:
    """The service's health (:meth:`Site.health`) once its status is ``status`` (the
    compose files' checks run every 5 or 10 s)."""
    async def probe() -> dict[str, Any] | None:
        found = await asyncio.to_thread(site.health, service)
        return found if found["Status"] == status else None
    return await eventually(f"{service} {status}", probe, within, interval=1.0)


def checks_of(site: Site, service: str) -> set[str]:
    """When the service's last few health checks started (each one's mark)."""
    return {check["Start"] for check in site.health(service)["Log"]}


async def checks_since(site: Site, service: str, seen: set[str],
                       count: int = 2) -> list[dict[str, Any]]:
    """The service's first ``count`` health checks not in ``seen``."""
    async def probe() -> list[dict[str, Any]] | None:
        log = (await asyncio.to_thread(site.health, service))["Log"]
        new = [check for check in log if check["Start"] not in seen]
        return new if len(new) >= count else None
    return await eventually(f"{count} more health checks of {service}", probe, within=60,
                            interval=1.0)
