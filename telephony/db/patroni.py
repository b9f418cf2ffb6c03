"""A Patroni node's configuration, rendered from :class:`Settings`: the same for a site
(``python -m telephony patroni-config``) and for the lab (telephony/lab/patroni.py).

Why Patroni with etcd, not pg_auto_failover: both come as Debian packages and both promote a
replica on their own, but pg_auto_failover's monitor is one more PostgreSQL server that is
itself a single point of failure (it is not replicated; while it is down nothing fails over),
whereas Patroni keeps its leader key in etcd, a consensus store that a site runs on three
small machines (or beside the nodes) and that survives the loss of any one of them. Patroni
also has a synchronous mode that promotes only a replica known to hold every committed
transaction (below), its REST API tells who is the primary (for checks and the lab), and it
is what most PostgreSQL high-availability deployments run.

Choices the config makes, and why:

- ``synchronous_mode``: a commit returns only once the replica has the WAL, and Patroni
  promotes only that synchronous replica. The line deletes a fact from its spool once the
  commit returned, so an asynchronous replica could be promoted without the last facts the
  line believes written: lost. With two nodes it is not ``strict``: when the replica is gone
  the primary goes on alone (a 112 line must keep recording), and becomes synchronous again
  when a replica is back.
- ``primary_start_timeout: 0``: a crashed primary PostgreSQL is failed over at once rather
  than restarted in place for up to 5 minutes (the default); a lost node is failed over once
  its leader key expires (``patroni_ttl``).
- ``use_pg_rewind``: the old primary rejoins as a replica of the new one without a full copy.
- ``pg_hba``: scram-sha-256 only, from ``patroni_networks`` only.

The config is JSON, which Patroni's YAML loader reads as it is (YAML 1.2 is a superset of
JSON): no YAML writer needed, and nothing in it can be misquoted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from telephony.core.errors import SiagaError
from telephony.db.embedded import DATABASE_NAME, SUPERUSER, find_postgres_bindir
from telephony.secrets import read_or_create
from telephony.settings import Settings

# Secret files (in Settings.live_secrets_dir) of the cluster's own roles.
SUPERUSER_PASSWORD: Final = "patroni_superuser_password"  # noqa: S105 - a file name
REPLICATION_PASSWORD: Final = "patroni_replication_password"  # noqa: S105 - a file name
REPLICATION_USER: Final = "replicator"
REWIND_PASSWORD: Final = "patroni_rewind_password"  # noqa: S105 - a file name
REWIND_USER: Final = "rewinder"  # created by Patroni at bootstrap with pg_rewind's grants


class PatroniConfigError(SiagaError, ValueError):
    """A node's description cannot make a config."""


@dataclass(frozen=True)
class PatroniNode:
    """One PostgreSQL node: its member name, the address its PostgreSQL and REST API listen
    on and advertise to the others, and its data directory."""

    name: str
    host: str
    pg_port: int
    rest_port: int
    data_dir: Path

    def __post_init__(self) -> None:
        if not self.name.replace("-", "").replace("_", "").isalnum() or len(self.name) > 63:
            raise PatroniConfigError(f"node name: letters, digits, - and _, got {self.name!r}")
        for port in (self.pg_port, self.rest_port):
            if not 0 < port < 65536:
                raise PatroniConfigError(f"not a TCP port: {port}")


def dcs_settings(settings: Settings) -> dict[str, Any]:
    """The cluster-wide part Patroni keeps in etcd (written once, at bootstrap)."""
    return {
        "ttl": settings.patroni_ttl,
        "loop_wait": settings.patroni_loop_wait,
        "retry_timeout": settings.patroni_retry_timeout,
        "primary_start_timeout": 0,
        "synchronous_mode": True,
        "synchronous_mode_strict": False,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "wal_level": "replica",
                "hot_standby": "on",
                "wal_log_hints": "on",  # pg_rewind needs it (no data checksums required)
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "synchronous_commit": "on",
                "max_connections": 100,
                "password_encryption": "scram-sha-256",
            },
        },
    }


def patroni_config(settings: Settings, node: PatroniNode, *,
                   bin_dir: Path | None = None) -> dict[str, Any]:
    """The whole config of ``node``: Patroni's own, its PostgreSQL's, and the bootstrap."""
    secrets_dir = settings.live_secrets_dir
    hba = ["local all all scram-sha-256"]
    for network in settings.patroni_networks:
        hba.append(f"host replication {REPLICATION_USER} {network} scram-sha-256")
        hba.append(f"host all all {network} scram-sha-256")
    return {
        "scope": settings.patroni_scope,
        "name": node.name,
        "restapi": {"listen": f"{node.host}:{node.rest_port}",
                    "connect_address": f"{node.host}:{node.rest_port}"},
        "etcd3": {"hosts": list(settings.patroni_etcd_hosts)},
        "bootstrap": {
            "dcs": dcs_settings(settings),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"},
                       {"auth": "scram-sha-256"}],
            "pg_hba": hba,
        },
        "postgresql": {
            "listen": f"{node.host}:{node.pg_port}",
            "connect_address": f"{node.host}:{node.pg_port}",
            "data_dir": str(node.data_dir),
            "bin_dir": str(bin_dir or find_postgres_bindir()),
            "pgpass": str(node.data_dir.parent / f"{node.name}.pgpass"),
            "authentication": {
                "superuser": {"username": SUPERUSER,
                              "password": read_or_create(secrets_dir, SUPERUSER_PASSWORD)},
                "replication": {"username": REPLICATION_USER,
                                "password": read_or_create(secrets_dir, REPLICATION_PASSWORD)},
                "rewind": {"username": REWIND_USER,
                           "password": read_or_create(secrets_dir, REWIND_PASSWORD)},
            },
            # Patroni talks to its PostgreSQL over TCP at the listen address; the socket
            # directory is the node's own (not /var/run/postgresql, which a Debian cluster
            # of the same port would share).
            "parameters": {"unix_socket_directories": str(node.data_dir.parent)},
            "pg_hba": hba,
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                 "nosync": False},
    }


def render_patroni_config(settings: Settings, node: PatroniNode, *,
                          bin_dir: Path | None = None) -> str:
    """:func:`patroni_config` as the text of a ``patroni.yml``."""
    return json.dumps(patroni_config(settings, node, bin_dir=bin_dir), indent=2) + "\n"


def cluster_dsn(nodes: list[PatroniNode] | tuple[PatroniNode, ...], user: str,
                password: str, database: str = DATABASE_NAME) -> str:
    """The multi-host DSN that reaches whichever node is the primary."""
    hosts = ",".join(f"{node.host}:{node.pg_port}" for node in nodes)
    return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{hosts}/"
            f"{database}?target_session_attrs=read-write")
