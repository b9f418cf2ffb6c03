"""The lab test modules' ports: one block each, none shared, none where the kernel hands out
client ports (a lab finding its port taken refuses to start; CI failed so on 2026-12-06)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.net import LAB_INSTANCES, OwnLab, own_lab, spare_port

TESTS = Path(__file__).resolve().parents[1]
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# A Settings port field given a number in a test module's source (``http_port=0`` means any).
PORT_LITERAL = re.compile(r"\b(\w*port\w*)=(\d+)")


def ephemeral_ports() -> range:
    low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    return range(low, high + 1)


def ports_of(lab: OwnLab) -> set[int]:
    fixed = {value for key, value in lab.items()
             if key.endswith("_port") and isinstance(value, int)}
    return fixed | set(range(lab["rtp_port_start"], lab["rtp_port_end"] + 1))


def test_no_two_labs_share_a_port() -> None:
    assert len(set(LAB_INSTANCES)) == len(LAB_INSTANCES)
    seen: dict[int, str] = {}
    for instance in LAB_INSTANCES:
        lab = own_lab(instance)
        mine = ports_of(lab) | {spare_port(instance)}
        assert len(mine) == 7 + 1 + lab["rtp_port_end"] - lab["rtp_port_start"] + 1, instance
        shared = {port: seen[port] for port in mine if port in seen}
        assert not shared, f"{instance} shares ports with {set(shared.values())}"
        seen |= dict.fromkeys(mine, instance)


def test_every_lab_port_is_outside_the_kernels_ephemeral_range() -> None:
    ephemeral = ephemeral_ports()
    for instance in LAB_INSTANCES:
        taken = sorted(port for port in ports_of(own_lab(instance)) if port in ephemeral)
        assert not taken, f"{instance}: {taken[:3]}... are ephemeral ({ephemeral})"


def test_rtp_ranges_start_even() -> None:
    # Asterisk takes RTP on an even port and RTCP on the next.
    assert all(own_lab(instance)["rtp_port_start"] % 2 == 0 for instance in LAB_INSTANCES)


def test_no_test_module_fixes_a_port_the_kernel_may_hand_out() -> None:
    ephemeral = ephemeral_ports()
    found = [
        f"{path.relative_to(TESTS)}: {match.group(0)}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.relative_to(TESTS).parts[0] != "unit"  # unit tests bind nothing
        for match in PORT_LITERAL.finditer(path.read_text())
        if int(match.group(2)) in ephemeral
    ]
    assert not found, "use tests.support.net.own_lab or free_port: " + ", ".join(found)


def test_a_lab_instance_a_module_names_has_a_block() -> None:
    named = {
        match.group(1)
        for path in TESTS.rglob("test_*.py")
        for match in re.finditer(r'own_lab\("([^"]+)"\)', path.read_text())
    }
    assert named <= set(LAB_INSTANCES)
    assert named == set(LAB_INSTANCES), f"blocks no module uses: {set(LAB_INSTANCES) - named}"
