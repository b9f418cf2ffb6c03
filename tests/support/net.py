"""Ports for servers a test starts.

A lab test module's Asterisk and line listen on fixed ports, each module's its own from one
table (``own_lab``), so that modules running side by side (``pytest -n``) never share one. The
table lies below the kernel's ephemeral range (Linux's default 32768-60999): a port there can
be taken at any moment by a client connection anywhere on the machine, and a lab that finds
its port taken refuses to start (CI, 2026-12-06: the outage module's AMI port, 48138, was
held by one). ``free_port`` is for a server the test binds at once.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Final, TypedDict


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose connection attempts hang, as a host that is switched off
    answers nothing (no refusal): a listener with a full accept queue, so the kernel drops
    further SYNs and a client waits for its own timeout or the kernel's SYN retries."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def behind_silent_node(dsn: str, port: int) -> str:
    """``dsn`` (one host, no query) behind a first node at the :func:`silent_port` ``port``,
    asking for the writable one: a cluster's DSN whose first node's machine is off."""
    auth, _, rest = dsn.partition("@")
    return f"{auth}@127.0.0.1:{port},{rest}?target_session_attrs=read-write"


class OwnLab(TypedDict):
    """The Settings fields no two lab instances may share: ``Settings(**own_lab(name), ...)``."""

    lab_instance: str
    sip_port: int
    ami_port: int
    agi_port: int
    lab_operator_sip_port: int
    carrier_sip_port: int
    asterisk_http_port: int
    asterisk_https_port: int
    rtp_port_start: int
    rtp_port_end: int


# Every lab instance a test module starts, in the order of their port blocks. Append a new
# one at the end: a block's place is its ports. (One more fits below the ephemeral range.)
LAB_INSTANCES: Final = (
    "line-test", "api-test", "screening-test", "survey-test", "recordings-test", "legs-test",
    "reccrash-test", "dialplan-test", "phones-test", "admin-test", "keys-test",
    "outage-test", "backfill-test", "transfers-test", "supervision-test", "callbacks-test",
    "vanish-test", "console-test", "wallboard-test", "softphone-test", "admin-browser",
    "callbacks-browser", "demo-test", "demo-stop",
)
# Above the lab's default RTP range (10000-20000) and the cluster modules' (10000-19998).
FIRST_PORT: Final = 20_000
BLOCK: Final = 500
# The signalling ports' offsets in a block (their last digits echo Asterisk's defaults); RTP
# takes the rest, 400 ports: 200 channels at once, five times the busiest module's.
OFFSETS: Final = {"ami_port": 38, "sip_port": 60, "lab_operator_sip_port": 70, "agi_port": 73,
                  "carrier_sip_port": 80, "asterisk_http_port": 88, "asterisk_https_port": 89}
RTP_OFFSET: Final = 100
SPARE_OFFSET: Final = 90  # one more TCP port a module may use for a server of its own


def own_lab(instance: str) -> OwnLab:
    """``instance``'s name and ports, from its block in ``LAB_INSTANCES``."""
    base = FIRST_PORT + BLOCK * LAB_INSTANCES.index(instance)
    return OwnLab(
        lab_instance=instance,
        sip_port=base + OFFSETS["sip_port"],
        ami_port=base + OFFSETS["ami_port"],
        agi_port=base + OFFSETS["agi_port"],
        lab_operator_sip_port=base + OFFSETS["lab_operator_sip_port"],
        carrier_sip_port=base + OFFSETS["carrier_sip_port"],
        asterisk_http_port=base + OFFSETS["asterisk_http_port"],
        asterisk_https_port=base + OFFSETS["asterisk_https_port"],
        rtp_port_start=base + RTP_OFFSET,
        rtp_port_end=base + BLOCK - 1,
    )


def own_lab_values(instance: str) -> dict[str, str]:
    """:func:`own_lab` as a user sets it (``SIAGA112_*`` variables, ``--set name=value``)."""
    return {name: str(value) for name, value in own_lab(instance).items()}


def spare_port(instance: str) -> int:
    """A TCP port of ``instance``'s block that the lab itself does not use (a test's relay)."""
    return FIRST_PORT + BLOCK * LAB_INSTANCES.index(instance) + SPARE_OFFSET
