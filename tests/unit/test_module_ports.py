"""The guard on the suite's two workers (scripts/test: pytest-xdist, whole modules per worker):
no module's fixed port lies among another module's ports or RTP range, so any two modules can
run at once, and none lies where the kernel hands out client ports (a lab whose port a
connection took refuses to start: CI failed so on 2026-12-06). Read from the modules' source
with ``ast``; only the port table (tests/support/net.py) is imported.

A module's ports are its lab's block (``own_lab("line-test")``, ``own_lab_values(...)``), the
integer keyword arguments (``sip_port=26060``, as ``Settings`` takes them) and string dict
entries (``"sip_port": "49060"``) named below; a cluster module's RTP is ``RTP_BASE`` and
``RTP_SPAN``, two nodes of ``RTP_SPAN`` ports each (telephony/lab/cluster.py).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.support.net import LAB_INSTANCES, OwnLab, own_lab, spare_port

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("tests/e2e", "tests/browser", "tests/cluster")
UDP = {"sip_port", "lab_operator_sip_port", "carrier_sip_port"}  # SIP; RTP is UDP too
FIXED = UDP | {"ami_port", "agi_port"}  # AMI and FastAGI are TCP
CLUSTER_NODES = 2
DEFAULT_RTP_SPAN = 2000  # cluster_settings' default
TABLE = {"own_lab", "own_lab_values"}  # a lab's block by its instance's name
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _int(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
        try:
            return int(node.value)
        except ValueError:
            return None
    return None


def _blocks_of(tree: ast.Module) -> list[OwnLab]:
    """The blocks of the port table a module takes (``own_lab("name")``)."""
    return [own_lab(node.args[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in TABLE and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)]


def _block_ports(lab: OwnLab) -> set[int]:
    """Every port of a block but its RTP: SIP, AMI, FastAGI, Asterisk's HTTP(S)."""
    return {value for key, value in lab.items()
            if key.endswith("_port") and isinstance(value, int)}


def _settings_of(tree: ast.Module) -> list[dict[str, int]]:
    """Each ``Settings(...)``/``replace(...)`` call's or dict's port entries, one per place."""
    found: list[dict[str, int]] = []
    for node in ast.walk(tree):
        pairs: list[tuple[str, ast.expr]] = []
        if isinstance(node, ast.Call):
            pairs = [(k.arg, k.value) for k in node.keywords if k.arg is not None]
        elif isinstance(node, ast.Dict):
            pairs = [(k.value, v) for k, v in zip(node.keys, node.values, strict=True)
                     if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        values = {name: value for name, expr in pairs
                  if name in FIXED | {"rtp_port_start", "rtp_port_end"}
                  and (value := _int(expr)) is not None and value > 0}
        if values:
            found.append(values)
    return found


def _cluster_rtp(tree: ast.Module) -> range | None:
    constants: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets[0]
            names = targets.elts if isinstance(targets, ast.Tuple) else [targets]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for name, value in zip(names, values, strict=False):
                number = _int(value)
                if isinstance(name, ast.Name) and number is not None:
                    constants[name.id] = number
    if "RTP_BASE" not in constants:
        return None
    base = constants["RTP_BASE"]
    return range(base, base + CLUSTER_NODES * constants.get("RTP_SPAN", DEFAULT_RTP_SPAN))


def module_ports() -> tuple[dict[str, set[int]], dict[str, set[int]], dict[str, list[range]]]:
    """Every module's fixed ports, those of them that are UDP, and its RTP ranges."""
    fixed: dict[str, set[int]] = defaultdict(set)
    udp: dict[str, set[int]] = defaultdict(set)
    rtp: dict[str, list[range]] = defaultdict(list)
    for tier in TIERS:
        for path in sorted((ROOT / tier).glob("test_*.py")):
            name = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for values in _settings_of(tree):
                fixed[name] |= {v for k, v in values.items() if k in FIXED}
                udp[name] |= {v for k, v in values.items() if k in UDP}
                if "rtp_port_start" in values and "rtp_port_end" in values:
                    rtp[name].append(range(values["rtp_port_start"],
                                           values["rtp_port_end"] + 1))
            for lab in _blocks_of(tree):
                # Each of them as if UDP: a block's TCP ports are its own all the same.
                fixed[name] |= _block_ports(lab)
                udp[name] |= _block_ports(lab)
                rtp[name].append(range(lab["rtp_port_start"], lab["rtp_port_end"] + 1))
            if (cluster := _cluster_rtp(tree)) is not None:
                rtp[name].append(cluster)
    return fixed, udp, rtp


def test_modules_with_fixed_ports_are_found() -> None:
    fixed, _, rtp = module_ports()
    keys = own_lab("keys-test")
    assert keys["sip_port"] in fixed["tests/e2e/test_type_ahead.py"]
    assert range(keys["rtp_port_start"], keys["rtp_port_end"] + 1) in rtp[
        "tests/e2e/test_type_ahead.py"]
    demo = own_lab("demo-stop")  # the demo's environment, as strings
    assert demo["ami_port"] in fixed["tests/e2e/test_demo_stop.py"]
    assert range(10000, 14000) in rtp["tests/cluster/test_front.py"]
    assert len(fixed) >= 20


def test_the_port_table_gives_each_lab_its_own_block() -> None:
    assert len(set(LAB_INSTANCES)) == len(LAB_INSTANCES)
    seen: dict[int, str] = {}
    for instance in LAB_INSTANCES:
        lab = own_lab(instance)
        rtp = range(lab["rtp_port_start"], lab["rtp_port_end"] + 1)
        mine = _block_ports(lab) | {spare_port(instance)}
        assert len(mine) == 8 and not mine & set(rtp), instance
        assert rtp.start % 2 == 0, instance  # Asterisk: RTP on an even port, RTCP the next
        shared = {seen[port] for port in mine | set(rtp) if port in seen}
        assert not shared, f"{instance} shares ports with {shared}"
        seen |= dict.fromkeys(mine | set(rtp), instance)


def test_every_block_of_the_table_is_one_module_lab() -> None:
    used = [lab["lab_instance"] for tier in TIERS for path in (ROOT / tier).glob("test_*.py")
            for lab in _blocks_of(ast.parse(path.read_text(encoding="utf-8")))]
    assert sorted(used) == sorted(LAB_INSTANCES)


def test_no_module_port_is_one_the_kernel_hands_out_to_clients() -> None:
    low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    fixed, _, rtp = module_ports()
    found = [f"{name}: {port}" for name, ports in fixed.items() for port in sorted(ports)
             if low <= port <= high]
    found += [f"{name}: RTP {r.start}..{r.stop - 1}" for name, ranges in rtp.items()
              for r in ranges if r.start <= high and low < r.stop]
    assert found == [], f"in the ephemeral range {low}..{high}; use tests.support.net.own_lab"


def test_no_module_uses_another_modules_ports_or_rtp() -> None:
    fixed, udp, rtp = module_ports()
    clashes = []
    for name, ports in fixed.items():
        for other in sorted(set(fixed) | set(rtp)):
            if other == name:
                continue
            theirs = fixed.get(other, set())
            clashes += [f"{name}: port {p} is also {other}'s" for p in sorted(ports & theirs)]
            clashes += [f"{name}: port {p} is in {other}'s RTP {r.start}..{r.stop - 1}"
                        for p in sorted(udp[name]) for r in rtp.get(other, []) if p in r]
    names = sorted(rtp)
    for i, name in enumerate(names):
        for other in names[i + 1:]:
            clashes += [f"{name}'s RTP {a.start}..{a.stop - 1} overlaps {other}'s "
                        f"{b.start}..{b.stop - 1}"
                        for a in rtp[name] for b in rtp[other]
                        if a.start < b.stop and b.start < a.stop]
    assert clashes == []
