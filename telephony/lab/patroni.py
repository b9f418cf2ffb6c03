"""A replicated PostgreSQL on loopback, for the cluster tests and the failover bench: one
etcd and two (or more) Patroni-managed PostgreSQL nodes in a temporary directory, each on
ports of its own, configured by the site's renderer (telephony/db/patroni.py).

Debian's binaries: ``etcd`` (etcd-server), ``patroni`` and PostgreSQL's own, installed by
scripts/setup. PostgreSQL refuses to run as root, so as root Patroni (and the PostgreSQL it
starts) runs as Debian's ``postgres`` user, as the embedded cluster does.

``kill_postgres``, ``kill_node`` and ``freeze_node`` are the faults: SIGKILL to a node's
postmaster (Patroni, still alive, fails over at once: ``primary_start_timeout`` 0), or to its
Patroni and its postmaster together (the machine is gone: the replica takes over once the
leader key expires, ``patroni_ttl``), or SIGSTOP to all of them (the machine hangs: the same
failover, but its open connections go silent instead of closing).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from telephony.core.errors import SiagaError
from telephony.db.embedded import DATABASE_NAME, SUPERUSER, free_loopback_port
from telephony.db.patroni import (
    SUPERUSER_PASSWORD,
    PatroniNode,
    cluster_dsn,
    render_patroni_config,
)
from telephony.secrets import DATABASE_LINE_PASSWORD, read_or_create
from telephony.settings import Settings

log = logging.getLogger("telephony.lab.patroni")

# The nodes' addresses, one each (not the lab's Asterisk nodes', 127.0.0.11 and .12).
MEMBER_HOSTS: tuple[str, ...] = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


class PatroniLabError(SiagaError, RuntimeError):
    """The replicated lab database could not be started or did not settle."""


@dataclass
class _Member:
    node: PatroniNode
    process: subprocess.Popen[bytes] | None = None


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that run a child as the postgres user when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(path, owner.pw_uid, owner.pw_gid)


def free_port_on(hosts: tuple[str, ...], *, other_than: int = 0, tries: int = 50) -> int:
    """A TCP port that nothing listens on right now at any of ``hosts`` (one port for every
    node: see the module)."""
    for _ in range(tries):
        port = free_loopback_port()
        if port == other_than:
            continue
        with contextlib.ExitStack() as probes:
            try:
                for host in hosts:
                    probe = probes.enter_context(
                        socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    probe.bind((host, port))
            except OSError:
                continue
            return port
    raise PatroniLabError(f"no TCP port free on all of {', '.join(hosts)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PatroniLab:
    """etcd plus ``nodes`` Patroni nodes under ``root``; see the module."""

    def __init__(self, root: Path, settings: Settings, *, nodes: int = 2) -> None:
        self.root = root
        self.etcd_port = free_loopback_port()
        self._etcd_peer_port = free_loopback_port()
        self.settings = replace(
            settings, secrets_dir=root / "secrets",
            patroni_etcd_hosts=(f"127.0.0.1:{self.etcd_port}",))
        self._etcd: subprocess.Popen[bytes] | None = None
        self._frozen: set[int] = set()
        if not 0 < nodes <= len(MEMBER_HOSTS):
            raise PatroniLabError(f"1 to {len(MEMBER_HOSTS)} nodes, not {nodes}")
        hosts = MEMBER_HOSTS[:nodes]
        pg_port = free_port_on(hosts)
        rest_port = free_port_on(hosts, other_than=pg_port)
        self.members = [
            _Member(PatroniNode(f"pg{i + 1}", host, pg_port, rest_port,
                                root / f"pg{i + 1}" / "data"))
            for i, host in enumerate(hosts)]

    # -- the nodes ---------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[PatroniNode, ...]:
        return tuple(member.node for member in self.members)

    def member(self, name: str) -> _Member:
        for member in self.members:
            if member.node.name == name:
                return member
        raise PatroniLabError(f"no node {name!r}")

    def owner_dsn(self) -> str:
        """The schema's owner (the cluster's superuser), on whichever node is primary."""
        password = read_or_create(self.settings.live_secrets_dir, SUPERUSER_PASSWORD)
        return cluster_dsn(self.nodes, SUPERUSER, password)

    def line_dsn(self) -> str:
        """The line's role (created and granted by the line's own prepare step)."""
        password = read_or_create(self.settings.live_secrets_dir, DATABASE_LINE_PASSWORD)
        return cluster_dsn(self.nodes, self.settings.database_line_user, password)

    def line_settings(self, settings: Settings) -> Settings:
        """``settings`` pointed at this cluster, as a site's would be."""
        return replace(settings, database_dsn=self.line_dsn(),
                       database_owner_dsn=self.owner_dsn())

    # -- start and stop ----------------------------------------------------------------

    def start(self, within: float = 120.0) -> None:
        """Start etcd and every node; return once a primary runs with a synchronous
        replica and the line's database exists."""
        self.root.chmod(0o755)  # the postgres user must get in
        self._start_etcd()
        for member in self.members:
            self._start_node(member)
        deadline = time.monotonic() + within
        self.wait_settled(deadline - time.monotonic())
        self._create_database()

    def _start_etcd(self) -> None:
        data = self.root / "etcd"
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self._etcd_peer_port}"
        with (self.root / "etcd.log").open("ab") as out:
            self._etcd = subprocess.Popen(
                ["etcd", "--name", "lab", "--data-dir", str(data),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"lab={peer}", "--initial-cluster-state", "new"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{client}/health", timeout=1) as answer:  # noqa: S310
                if json.loads(answer.read()).get("health") == "true":
                    return
            if self._etcd.poll() is not None:
                break
            time.sleep(0.1)
        raise PatroniLabError(f"etcd did not start; see {self.root / 'etcd.log'}")

    def _start_node(self, member: _Member) -> None:
        node = member.node
        node_dir = node.data_dir.parent
        node_dir.mkdir(parents=True, exist_ok=True)
        node_dir.chmod(0o700)
        _give_to_postgres(node_dir)
        config = node_dir / "patroni.yml"
        config.write_text(render_patroni_config(self.settings, node), encoding="utf-8")
        config.chmod(0o600)
        _give_to_postgres(config)
        with (self.root / f"{node.name}.log").open("ab") as out:
            member.process = subprocess.Popen(
                ["patroni", str(config)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=node_dir, start_new_session=True, **_as_postgres())

    def _create_database(self) -> None:
        primary = self.primary()
        if primary is None:
            raise PatroniLabError("no primary to create the database on")
        node = self.member(primary).node
        password = read_or_create(self.settings.live_secrets_dir, SUPERUSER_PASSWORD)
        bindir = json.loads(render_patroni_config(self.settings, node))["postgresql"]["bin_dir"]
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [str(Path(bindir) / "createdb"), "-h", node.host, "-p", str(node.pg_port),
             "-U", SUPERUSER, DATABASE_NAME],
            check=True, capture_output=True, timeout=60, env=env)
        # A synchronous commit is flushed on the replica, not yet replayed: until it is, a
        # connection to the replica fails with "database does not exist", which asyncpg
        # raises at once instead of trying the next host.
        deadline = time.monotonic() + 30
        for other in self.nodes:
            while subprocess.run(
                    [str(Path(bindir) / "psql"), "-h", other.host, "-p", str(other.pg_port),
                     "-U", SUPERUSER, "-d", DATABASE_NAME, "-Atc", "SELECT 1"],
                    capture_output=True, timeout=30, env=env, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise PatroniLabError(f"database {DATABASE_NAME} not on {other.name}")
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node (Patroni stops its PostgreSQL) and etcd; kill what is left."""
        for frozen in self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGCONT)
        for member in self.members:
            if member.process is not None and member.process.poll() is None:
                member.process.terminate()
        for member in self.members:
            if member.process is not None:
                try:
                    member.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    member.process.kill()
                    member.process.wait()
            if (pid := self.postmaster_pid(member.node.name)) is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)  # an orphan of a killed Patroni
        if self._etcd is not None:
            self._etcd.terminate()
            try:
                self._etcd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._etcd.kill()
                self._etcd.wait()

    # -- state and faults ----------------------------------------------------------------

    def cluster(self) -> list[dict[str, Any]]:
        """The members as Patroni's REST API of any live node lists them (empty: none
        answers)."""
        for member in self.members:
            node = member.node
            if member.process is None or member.process.poll() is not None:
                continue
            url = f"http://{node.host}:{node.rest_port}/cluster"
            with contextlib.suppress(OSError, ValueError), \
                    urllib.request.urlopen(url, timeout=2) as answer:
                members: list[dict[str, Any]] = json.loads(answer.read())["members"]
                return members
        return []

    def primary(self) -> str | None:
        """The running leader's name, if any."""
        for found in self.cluster():
            if found.get("role") == "leader" and found.get("state") == "running":
                return str(found["name"])
        return None

    def sync_standby(self) -> str | None:
        """The synchronous replica's name, if any."""
        for found in self.cluster():
            if found.get("role") == "sync_standby" and found.get("state") in (
                    "running", "streaming"):
                return str(found["name"])
        return None

    def wait_settled(self, within: float = 90.0) -> tuple[str, str]:
        """Wait until a primary runs with a synchronous replica: (primary, replica)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            primary, standby = self.primary(), self.sync_standby()
            if primary is not None and standby is not None:
                return primary, standby
            for member in self.members:
                if member.process is not None and member.process.poll() is not None \
                        and member.process.returncode not in (-signal.SIGKILL,):
                    raise PatroniLabError(
                        f"patroni {member.node.name} exited "
                        f"({member.process.returncode}); see {self.root}")
            time.sleep(0.2)
        raise PatroniLabError(f"no primary with a synchronous replica within {within:.0f} s "
                              f"(members: {self.cluster()}); see {self.root}")

    def postmaster_pid(self, name: str) -> int | None:
        """The node's postmaster, from its ``postmaster.pid``."""
        path = self.member(name).node.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(path.read_text(encoding="ascii").splitlines()[0])
        return None

    def kill_postgres(self, name: str) -> None:
        """SIGKILL the node's postmaster (its Patroni lives on)."""
        pid = self.postmaster_pid(name)
        if pid is None:
            raise PatroniLabError(f"{name}: no postmaster running")
        os.kill(pid, signal.SIGKILL)

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's Patroni, then its postmaster: the machine is gone."""
        member = self.member(name)
        pid = self.postmaster_pid(name)
        if member.process is not None:
            member.process.kill()
            member.process.wait()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def freeze_node(self, name: str) -> None:
        """SIGSTOP the node's Patroni, its postmaster and every backend: a machine that
        hangs (or is cut off) without closing a connection; its kernel still completes TCP
        handshakes, nothing answers after them. :meth:`stop` thaws it."""
        member = self.member(name)
        roots = [pid for pid in (member.process.pid if member.process else None,
                                 self.postmaster_pid(name)) if pid is not None]
        for pid in _descendants(roots):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self._frozen.add(pid)


def _descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: fields follow the last ")".
            fields = stat.read_text(encoding="utf-8", errors="replace").rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


@contextlib.contextmanager
def patroni_cluster(settings: Settings, *, prefix: str = "siaga112-patroni-",
                    nodes: int = 2) -> Iterator[PatroniLab]:
    """A started :class:`PatroniLab` in a new temporary directory, gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    lab = PatroniLab(root, settings, nodes=nodes)
    try:
        lab.start()
        yield lab
    finally:
        with contextlib.suppress(Exception):  # a failed stop must not hide the real error
            lab.stop()
        if os.environ.get("SIAGA112_KEEP_PATRONI_LAB"):
            log.info("kept the Patroni lab in %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
