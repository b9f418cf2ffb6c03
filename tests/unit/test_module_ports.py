"""The guard on the suite's two workers (scripts/test: pytest-xdist, whole modules per worker):
no module's fixed port lies among another module's ports or RTP range, so any two modules can
run at once. Read from the modules' source with ``ast``, nothing is imported or run.

A module's ports are the integer keyword arguments (``sip_port=26060``, as ``Settings`` takes
them) and string dict entries (``"sip_port": "49060"``, as the demo modules pass them to the
demo's environment) named below; a cluster module's RTP is ``RTP_BASE`` and ``RTP_SPAN``, two
nodes of ``RTP_SPAN`` ports each (telephony/lab/cluster.py).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("tests/e2e", "tests/browser", "tests/cluster")
UDP = {"sip_port", "lab_operator_sip_port", "carrier_sip_port"}  # SIP; RTP is UDP too
FIXED = UDP | {"ami_port", "agi_port"}  # AMI and FastAGI are TCP
CLUSTER_NODES = 2
DEFAULT_RTP_SPAN = 2000  # cluster_settings' default


def _int(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
        try:
            return int(node.value)
        except ValueError:
            return None
    return None


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
            if (cluster := _cluster_rtp(tree)) is not None:
                rtp[name].append(cluster)
    return fixed, udp, rtp


def test_modules_with_fixed_ports_are_found() -> None:
    fixed, _, rtp = module_ports()
    assert 47060 in fixed["tests/e2e/test_type_ahead.py"]
    assert 56060 in fixed["tests/e2e/test_demo_stop.py"]  # a dict of environment values
    assert range(10000, 14000) in rtp["tests/cluster/test_front.py"]
    assert len(fixed) >= 20


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
