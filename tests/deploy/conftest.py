"""The deployment tier: one site from docker/ (its images built from this checkout, on
locally built Debian base images), brought up with docker-compose on loopback with ports of
its own, for the whole module. ``SITE_KEEP=1`` leaves it up (and its volumes) afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.lab import sipp
from telephony.lab.patroni import free_port_on
from tests.support import docker
from tests.support.net import free_port

PROJECT = "siaga112-deploytest"


def _extra_ca_pem() -> str:
    """The host's own extra CA certificates (a proxy that inspects HTTPS, here): the line's
    image needs them to reach PyPI as the host does."""
    extra = Path("/usr/local/share/ca-certificates")
    return "".join(p.read_text(encoding="ascii", errors="replace")
                   for p in sorted(extra.glob("**/*.crt")))


@pytest.fixture(scope="module")
def docker_turn() -> Iterator[None]:
    """The module's turn at dockerd, held from building its images until the site is down:
    ports chosen free and then left while another worker's site ran for minutes were taken
    meanwhile, and a line that could not bind its port never became healthy (the cluster
    site's "Container ... is unhealthy", seen in whole-suite runs)."""
    docker.ensure_engine()
    with docker.one_at_a_time():
        yield


def _built(project: str, *, compose_file: Path = docker.COMPOSE_FILE,
           images: tuple[str, ...] = docker.IMAGES, extra_inputs: tuple[str, ...] = (),
           tag_prefix: str = "") -> dict[str, str]:
    """Build a site's images (and the Debian base images) and return the compose variables
    that name them. The images are built before the site's ports are chosen, so that a port
    is free for seconds, not for the minutes a fresh machine's build takes: CI's whole-suite
    run left the cluster's line unable to bind a port chosen before its build."""
    bases = [docker.base_image(docker.BASE_SUITE), docker.base_image(docker.ASTERISK_SUITE)]
    variables = {"SITE_BASE": bases[0], "SITE_ASTERISK_BASE": bases[1],
                 "SITE_TAG": tag_prefix + docker.inputs_hash(bases, extra_inputs),
                 "SITE_EXTRA_CA_PEM": _extra_ca_pem(),
                 # Health checks every 2 s, not every 10: a site is up (each service waited
                 # for is healthy) and a hung service unhealthy (three failed checks) sooner.
                 "SITE_HEALTH_INTERVAL": "2s"}
    docker.Site(project, variables, compose_file=compose_file, images=images).build()
    return variables


@pytest.fixture(scope="module")
def site_images(docker_turn: None) -> dict[str, str]:
    """The single-node site's images, built (see :func:`_built`)."""
    return _built(PROJECT)


@pytest.fixture(scope="module")
def site_ports(site_images: dict[str, str]) -> dict[str, int]:
    """Loopback ports no other test uses; RTP gets a span of 40 (20 calls)."""
    rtp = sipp.free_udp_port(span=40)
    return {
        "sip": sipp.free_udp_port(), "phones": sipp.free_udp_port(span=3),
        "carrier": sipp.free_udp_port(), "rtp_start": rtp, "rtp_end": rtp + 39,
        "ami": free_port(), "agi": free_port(), "http": free_port(), "https": free_port(),
        "redirect": free_port(),
        "pg": free_port(), "prometheus": free_port(),
    }


@pytest.fixture(scope="module")
def site(site_images: dict[str, str], site_ports: dict[str, int],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker.Site]:
    """The site, built and up; taken down with its volumes afterwards."""
    settings_file = tmp_path_factory.mktemp("deploy") / "siaga112.toml"
    p = site_ports
    settings_file.write_text(
        "# The deployment test's site: everything on loopback, on ports of its own.\n"
        f'sip_host = "127.0.0.1"\nsip_port = {p["sip"]}\n'
        f'rtp_port_start = {p["rtp_start"]}\nrtp_port_end = {p["rtp_end"]}\n'
        f'ami_port = {p["ami"]}\nagi_port = {p["agi"]}\n'
        f'carrier_address = "127.0.0.1"\ncarrier_sip_port = {p["carrier"]}\n'
        "queue_wrapup_seconds = 0\nrecordings_settle_seconds = 1.0\n"
        "recordings_poll_seconds = 1.0\n", encoding="utf-8")
    settings_file.chmod(0o644)
    site = docker.Site(PROJECT, {
        **site_images, "SITE_SETTINGS": str(settings_file),
        "SITE_HTTP_PORT": str(p["http"]), "SITE_HTTPS_LISTEN": f"127.0.0.1:{p['https']}",
        "SITE_REDIRECT_LISTEN": f"127.0.0.1:{p['redirect']}",
        "SITE_PG_PORT": str(p["pg"]), "SITE_PROMETHEUS_PORT": str(p["prometheus"]),
        "SITE_HOSTNAME": "siaga112.test",
        "SITE_BACKUPS": str(tmp_path_factory.mktemp("backups"))})
    with site.running():
        yield site
    print(f"\ndeploy tier timings (s): {site.timings}")


CLUSTER_PROJECT = "siaga112-deploycluster"
# The nodes' addresses: not the lab cluster's (127.0.0.11, .12; tests/cluster), nor the lab's
# Patroni pair's (127.0.0.21, .22, .23; telephony/lab/patroni.py), nor the carrier's and the
# front's (127.0.0.1).
CLUSTER_NODES = {1: "127.0.0.41", 2: "127.0.0.42"}
# The PostgreSQL nodes' addresses, one port for both (as on separate machines): not the lab's
# Patroni pair's (127.0.0.21, .22; telephony/lab/patroni.py), nor the nodes'.
CLUSTER_PG = {1: "127.0.0.31", 2: "127.0.0.32"}


@pytest.fixture(scope="module")
def cluster_pg_hosts() -> tuple[str, ...]:
    """The PostgreSQL nodes' addresses (pg1's, pg2's), each with ``cluster_ports["pg"]``."""
    return tuple(CLUSTER_PG.values())


@pytest.fixture(scope="module")
def cluster_images(docker_turn: None) -> dict[str, str]:
    """The cluster site's images, built (see :func:`_built`)."""
    return _built(CLUSTER_PROJECT, compose_file=docker.CLUSTER_COMPOSE_FILE,
                  images=docker.CLUSTER_IMAGES, extra_inputs=docker.CLUSTER_INPUTS,
                  tag_prefix="cluster-")


@pytest.fixture(scope="module")
def cluster_ports(cluster_images: dict[str, str]) -> dict[str, int]:
    """Loopback ports of the cluster's own (docker-compose.cluster.yml's variables): the
    front (SIP, and the WebSocket nginx proxies browser softphones to), each node's SIP and
    FastAGI on its address, AMI, HTTP, Asterisk's WebSocket, an RTP span of 40 each,
    PostgreSQL's and Patroni's REST API's (one each, free on both nodes' addresses) and
    etcd's."""
    rtp = sipp.free_udp_port(span=80)
    pg_hosts = tuple(CLUSTER_PG.values())
    pg = free_port_on(pg_hosts)
    ports = {"front": sipp.free_udp_port(), "carrier": sipp.free_udp_port(),
             "rtp1": rtp, "rtp2": rtp + 40, "https": free_port(), "redirect": free_port(),
             "pg": pg, "rest": free_port_on(pg_hosts, other_than=pg),
             "etcd": free_port(), "etcd_peer": free_port(), "front_ws": free_port()}
    for node, host in CLUSTER_NODES.items():
        ports |= {f"sip{node}": sipp.free_udp_port(host), f"agi{node}": free_port(),
                  f"ami{node}": free_port(), f"http{node}": free_port_on((host,)),
                  f"ws{node}": free_port()}
    return ports


@pytest.fixture(scope="module")
def cluster_lines(cluster_ports: dict[str, int]) -> dict[int, str]:
    """Each node's line server's HTTP API, on the node's address (``http://host:port``)."""
    return {node: f"http://{host}:{cluster_ports[f'http{node}']}"
            for node, host in CLUSTER_NODES.items()}



@pytest.fixture(scope="module")
def cluster_site(cluster_images: dict[str, str], cluster_ports: dict[str, int],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker.Site]:
    """docker-compose.cluster.yml built (on the single node's base images, its own image
    tag) and up; taken down with its volumes afterwards. Ready once both lines are."""
    settings_file = tmp_path_factory.mktemp("deploy-cluster") / "siaga112.toml"
    p = cluster_ports
    settings_file.write_text(
        "# The deployment test's cluster: what its nodes share; the compose file sets the rest.\n"
        f'carrier_address = "127.0.0.1"\ncarrier_sip_port = {p["carrier"]}\n'
        "queue_wrapup_seconds = 0\nami_reconnect_seconds = 0.5\ndb_retry_seconds = 0.5\n",
        encoding="utf-8")
    settings_file.chmod(0o644)
    variables = {
        **cluster_images, "SITE_SETTINGS": str(settings_file),
        "SITE_HTTPS_LISTEN": f"127.0.0.1:{p['https']}",
        "SITE_REDIRECT_LISTEN": f"127.0.0.1:{p['redirect']}",
        "SITE_HOSTNAME": "siaga112.test", "CLUSTER_FRONT_ADDRESS": "127.0.0.1",
        "CLUSTER_FRONT_PORT": str(p["front"]),
        "CLUSTER_FRONT_WS_PORT": str(p["front_ws"]),
        "CLUSTER_PG1_ADDRESS": CLUSTER_PG[1], "CLUSTER_PG2_ADDRESS": CLUSTER_PG[2],
        "CLUSTER_PG_PORT": str(p["pg"]), "CLUSTER_PG_REST_PORT": str(p["rest"]),
        "CLUSTER_ETCD_PORT": str(p["etcd"]), "CLUSTER_ETCD_PEER_PORT": str(p["etcd_peer"]),
        "SITE_BACKUPS": str(tmp_path_factory.mktemp("cluster-backups")),
    }
    for node, host in CLUSTER_NODES.items():
        prefix = f"CLUSTER_NODE{node}_"
        variables |= {
            f"{prefix}ADDRESS": host, f"{prefix}SIP_PORT": str(p[f"sip{node}"]),
            f"{prefix}AGI_PORT": str(p[f"agi{node}"]), f"{prefix}AMI_PORT": str(p[f"ami{node}"]),
            f"{prefix}HTTP_PORT": str(p[f"http{node}"]),
            f"{prefix}ASTERISK_HTTP_PORT": str(p[f"ws{node}"]),
            f"{prefix}RTP_START": str(p[f"rtp{node}"]),
            f"{prefix}RTP_END": str(p[f"rtp{node}"] + 39)}
    site = docker.Site(CLUSTER_PROJECT, variables, compose_file=docker.CLUSTER_COMPOSE_FILE,
                       images=docker.CLUSTER_IMAGES)
    with site.running():
        yield site
    print(f"\ndeploy cluster timings (s): {site.timings}")
