"""The guard on the shape of the code: layers point down, the lab stays a development tool,
``telephony/db/`` knows no feature, and tests do not use each other as libraries.

The rules and the layer of every module are in ``tests/architecture.py``; imports are read with
``ast``, nothing is imported or run. A failure lists every offending import as
``path:line: importer -> imported``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.architecture import (
    DOMAIN,
    LAYER_NAMES,
    Graph,
    Import,
    imports_of_test_modules,
    lab_imports,
    layer_of,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph.of(ROOT)


def listed(offences: Iterable[object]) -> str:
    return "\n  " + "\n  ".join(str(offence) for offence in offences)


def test_every_module_has_a_layer(graph: Graph) -> None:
    unplaced = graph.unplaced()
    assert not unplaced, (
        "modules the layer table in tests/architecture.py does not place (add a rule):"
        + listed(unplaced))


def test_no_layer_imports_a_higher_one(graph: Graph) -> None:
    def shown(edge: Import) -> str:
        source, target = graph.layer(edge.source), graph.layer(edge.target)
        assert source is not None and target is not None
        return f"{edge}  ({LAYER_NAMES[source]} -> {LAYER_NAMES[target]})"

    upward = [shown(edge) for edge in graph.upward()]
    assert not upward, "imports that point up a layer:" + listed(upward)


def test_domain_modules_do_no_io(graph: Graph) -> None:
    found = graph.domain_io()
    assert not found, "domain modules importing an I/O library:" + listed(found)


def test_db_imports_no_feature(graph: Graph) -> None:
    found = graph.db_features()
    assert not found, "telephony/db/ importing a feature:" + listed(found)


def test_only_development_tools_import_the_lab() -> None:
    found = lab_imports(ROOT)
    assert not found, (
        "telephony.lab imported outside telephony/lab/, cli.py, bench/, scripts/ and tests/:"
        + listed(found))


def test_no_test_module_imports_another() -> None:
    found = imports_of_test_modules(ROOT)
    assert not found, (
        "test modules imported by other tests (move shared helpers to conftest.py or a "
        "support module):" + listed(found))


# --- the guard's own reading of names and imports --------------------------------------------


@pytest.mark.parametrize(("name", "layer"), [
    ("telephony.core.errors", "protocol"),
    ("telephony.incidents.model", "domain"),
    ("telephony.newfeature.model", "domain"),
    ("telephony.newfeature.errors", "domain"),
    ("telephony.web.errors", "adapters"),
    ("telephony.newfeature.store", "adapters"),
    ("telephony.newfeature.http", "adapters"),
    ("telephony.newfeature.console", "adapters"),
    ("telephony.admin.queue_service", "adapters"),
    ("telephony.web.request", "adapters"),
    ("telephony.asterisk.site", "adapters"),
    ("telephony.app", "root"),
])
def test_layer_table_patterns(name: str, layer: str) -> None:
    found = layer_of(name)
    assert found is not None and LAYER_NAMES[found] == layer


def test_an_unknown_module_has_no_layer() -> None:
    assert layer_of("telephony.somewhere") is None
    assert layer_of("telephony.modelling") is None


def test_imports_are_read_at_any_depth_and_resolved_to_modules(tmp_path: Path) -> None:
    package = tmp_path / "telephony"
    (package / "lab").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "lab" / "__init__.py").write_text("")
    (package / "lab" / "chroot.py").write_text("")
    (package / "calls").mkdir()
    (package / "calls" / "__init__.py").write_text("")
    (package / "calls" / "facts.py").write_text(
        "from telephony.lab import chroot\n"
        "def later() -> None:\n"
        "    from telephony import lab\n")
    graph = Graph.of(tmp_path)
    assert [(edge.target, edge.top_level) for edge in graph.edges
            if edge.source == "telephony.calls.facts"] == [
        ("telephony.lab.chroot", True), ("telephony.lab", False)]
    assert graph.layer("telephony.calls.facts") == DOMAIN
    assert [str(edge) for edge in graph.upward()] == [
        "telephony/calls/facts.py:1: telephony.calls.facts -> telephony.lab.chroot",
        "telephony/calls/facts.py:3: telephony.calls.facts -> telephony.lab",
    ]
    assert len(lab_imports(tmp_path)) == 2
