"""The project's import rules as data: which layer each module is in, and the imports that
break a rule. Read by ``tests/unit/test_architecture.py`` (the guard) and
``scripts/import_graph.py`` (the figures). Imports are read with :mod:`ast`; nothing is run.

Layers, lowest first. A module may import its own layer and those below, never one above:

0. protocol -- sans-IO codecs and what every part shares (errors, labels, settings)
1. domain -- the pure rules of each feature: values, state machines, parsing, ports
2. adapters -- whatever touches the world: SQL stores, services, HTTP, AMI/AGI I/O, workers
3. root -- the composition root that wires the adapters into a running line
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

PROTOCOL: Final = 0
DOMAIN: Final = 1
ADAPTERS: Final = 2
ROOT: Final = 3
LAYER_NAMES: Final = ("protocol", "domain", "adapters", "root")

# The top-level packages whose modules are layered (bench/, scripts/ and tests/ are not).
LAYERED_PACKAGES: Final = ("telephony", "ivr", "recordings")

# (pattern, layer). A module named outright takes its entry; otherwise the first pattern that
# matches its dotted name decides. ``*`` is part of one name, ``**`` any number of names
# (none included). New feature modules fall under the patterns (``**.model``, ``**.store``,
# ``**.http`` ...); a module no entry places fails the guard until it is given a layer.
LAYER_TABLE: Final[tuple[tuple[str, int], ...]] = (
    # --- root: builds the line from everything below; nothing imports it.
    ("telephony.app", ROOT),
    ("telephony.callpath", ROOT),  # starts, watches and stops the FastAGI IVR's process
    ("telephony.callpath_child", ROOT),  # that process: builds the IVR and serves it
    ("telephony.cli", ROOT),
    ("telephony.__main__", ROOT),
    ("telephony.lab.demo", ROOT),  # runs the whole line against the lab
    ("telephony.lab.failover", ROOT),  # runs the whole line through a database failover
    # --- protocol: sans-IO codecs, and the words every layer shares.
    ("telephony.agi.protocol", PROTOCOL),
    ("telephony.ami.framing", PROTOCOL),
    ("telephony.settings", PROTOCOL),  # plain values; imports no feature
    ("telephony.callpath_wire", PROTOCOL),  # the line <-> IVR process messages and frames
    # core's background loop knows the database's outage error, so it sits with the adapters.
    ("telephony.core.loops", ADAPTERS),
    ("telephony.core.threads", ADAPTERS),  # event loops on threads of their own
    ("telephony.core.**", PROTOCOL),
    # --- domain: pure rules, no I/O; ports (Protocols) that adapters implement.
    ("ivr.channel", DOMAIN),  # the IVR's channel port
    ("ivr.flow", DOMAIN),
    ("ivr.menu", DOMAIN),
    ("ivr.keys", DOMAIN),  # the key-collection routine's arguments and answers
    ("ivr.survey", DOMAIN),
    ("ivr.hold", DOMAIN),  # the hold prompt
    ("telephony.agi.access", DOMAIN),  # who may hold a FastAGI session; refusal counts
    ("telephony.ami.actions", DOMAIN),  # the AMI action port services use
    ("telephony.ami.tracker", DOMAIN),  # the AMI event state machine (sans-IO)
    ("telephony.ami.channels", DOMAIN),  # live channels over the AMI port (no I/O of its own)
    ("telephony.ami.originate", DOMAIN),  # what an Originate reports back
    ("telephony.calls.facts", DOMAIN),
    ("telephony.calls.backfill", DOMAIN),  # calls rebuilt from Asterisk's queue_log (rules)
    ("telephony.asterisk.queue_log", DOMAIN),  # the queue_log's lines and cursor (pure)
    ("telephony.asterisk.causes", DOMAIN),  # hang-up cause texts, as Asterisk words them
    ("telephony.calls.legs", DOMAIN),  # legs the line places: kinds, outcomes
    ("telephony.calls.ids", DOMAIN),
    ("telephony.calls.shifts", DOMAIN),
    ("telephony.calls.backlog", DOMAIN),  # the bounded queue in front of the recorder
    ("telephony.calls.holding", DOMAIN),  # facts no spool directory took, held in memory
    ("telephony.calls.outages", DOMAIN),  # which calls Asterisk's restart or crash cut
    ("telephony.desks.operators", DOMAIN),  # desk rules over the AMI action port
    ("telephony.desks.phones", DOMAIN),  # phone secrets and their digests
    ("telephony.desks.presence", DOMAIN),  # when a desk's phone counts as gone
    ("telephony.desks.watch", ADAPTERS),  # observes the listener, acts through the service
    ("telephony.supervision.rights", ADAPTERS),  # LISTEN, hang up over AMI, audit
    ("telephony.cluster.peers", DOMAIN),  # a node's peers: liveness, forgetting a dead one
    ("telephony.cluster.watch", ADAPTERS),  # acts on the peers' ContactStatus (AMI, SIP)
    ("telephony.cluster.front", DOMAIN),  # calls the front dispatched and no node recorded
    ("telephony.cluster.front_store", ADAPTERS),  # their SQL
    ("telephony.cluster.reconcile", ADAPTERS),  # every node's line makes records of them
    ("telephony.cluster.members", DOMAIN),  # operators' queues alike on every node: rules
    ("telephony.cluster.members_store", ADAPTERS),  # their SQL (and NOTIFY)
    ("telephony.cluster.member_sync", ADAPTERS),  # LISTEN, and reconcile this node's Asterisk
    ("telephony.cluster.listening", ADAPTERS),  # the LISTEN loop every follower shares
    ("telephony.cluster.admin_sync", ADAPTERS),  # an admin's queues, menus, settings on every node
    ("telephony.cluster.publish", ADAPTERS),  # the line's device-state PUBLISHes (SIP, UDP)
    ("telephony.cluster.front_probe", ADAPTERS),  # asks the SIP front for OPTIONS (UDP)
    ("telephony.cluster.wrapup", DOMAIN),  # an operator's wrap-up on every node: rules
    ("telephony.cluster.wrapup_store", ADAPTERS),  # its NOTIFY, the queue's stored wrap-up
    ("telephony.cluster.wrapup_sync", ADAPTERS),  # AgentComplete, LISTEN, PUBLISH the holds
    ("telephony.cluster.forward", ADAPTERS),  # hands a request to the call's node's line (HTTP)
    ("telephony.cluster", DOMAIN),
    ("telephony.admin.versions", DOMAIN),
    ("telephony.admin.queues", DOMAIN),
    ("telephony.admin.forms", DOMAIN),
    ("telephony.admin.site", DOMAIN),
    ("telephony.screening", DOMAIN),  # the package re-exports features and score
    ("telephony.screening.features", DOMAIN),
    ("telephony.screening.score", DOMAIN),
    ("telephony.screening.corpus", DOMAIN),
    ("telephony.screening.evaluate", DOMAIN),
    ("telephony.screening.calibrate", DOMAIN),
    ("telephony.reports.csvexport", DOMAIN),
    ("telephony.wallboard.state", DOMAIN),
    ("telephony.wallboard.counters", DOMAIN),
    ("recordings.domain", DOMAIN),
    ("recordings.wavheader", DOMAIN),  # repairs an unfinished WAV header, bytes to bytes
    # the incident feature's pure modules, one per topic beside its model
    ("telephony.incidents.edits", DOMAIN),
    ("telephony.incidents.dispatches", DOMAIN),
    ("telephony.incidents.directory", DOMAIN),
    ("telephony.incidents.outbox", DOMAIN),
    ("telephony.incidents.attachment_meta", DOMAIN),
    ("telephony.incidents.config", DOMAIN),  # tunables read from the settings' plain values
    ("**.model", DOMAIN),
    ("**.errors", DOMAIN),
    # --- adapters: SQL, HTTP, sockets, files, subprocesses, clocks.
    ("telephony.web.errors", ADAPTERS),  # maps every error to HTTP (not a feature's errors)
    ("telephony.web.**", ADAPTERS),
    ("telephony.db.**", ADAPTERS),
    ("telephony.lab.**", ADAPTERS),
    ("telephony.secrets", ADAPTERS),  # generated secret files
    ("telephony.asterisk.**", ADAPTERS),
    ("telephony.kamailio.**", ADAPTERS),  # renders the SIP front's configuration
    ("telephony.agi.server", ADAPTERS),
    ("telephony.agi.channel", ADAPTERS),  # implements the IVR's channel over FastAGI
    ("telephony.ami.listener", ADAPTERS),
    ("telephony.ami.threaded", ADAPTERS),  # the listener on its own thread, for the main loop
    ("telephony.ami.vanish", ADAPTERS),  # re-checks open calls against Asterisk's channels
    ("telephony.ami.responses", ADAPTERS),  # a service's OriginateResponses, applied in order
    ("telephony.ami.testing", ADAPTERS),  # a fake Asterisk on a socket, for tests
    ("ivr.prompts", ADAPTERS),
    ("ivr.source", ADAPTERS),
    ("recordings.**", ADAPTERS),  # audio, files, library, retention, store, worker, commands
    ("**.store", ADAPTERS),
    ("**.*_store", ADAPTERS),
    ("**.service", ADAPTERS),
    ("**.*_service", ADAPTERS),
    ("**.http", ADAPTERS),
    ("**.schemas", ADAPTERS),  # a feature's JSON bodies, built with the web shell's builders
    ("**.console", ADAPTERS),
    ("**.commands", ADAPTERS),
    ("**.route", ADAPTERS),
    ("telephony.calls.archive", ADAPTERS),
    ("telephony.calls.recorder", ADAPTERS),
    ("telephony.calls.outage_store", ADAPTERS),  # SQL of outages and cut calls
    ("telephony.calls.history", ADAPTERS),  # the backfill's reading and writing
    ("telephony.calls.spool", ADAPTERS),
    ("telephony.accounts.passwords", ADAPTERS),  # hashes in a thread
    ("telephony.backup.pruning", ADAPTERS),  # removes the old backups beside a new one
    ("telephony.admin.asterisk", ADAPTERS),
    ("telephony.admin.configs", ADAPTERS),
    ("telephony.admin.files", ADAPTERS),
    ("telephony.admin.sync", ADAPTERS),
    ("telephony.incidents.attachments", ADAPTERS),
    ("telephony.incidents.notifiers", ADAPTERS),
    ("telephony.incidents.ledger", ADAPTERS),  # the incident services' shared transaction steps
    ("telephony.incidents.services", ADAPTERS),  # builds the feature's services together
    ("telephony.screening.ivr", ADAPTERS),
    ("telephony.reports.gate", ADAPTERS),  # reports wait on the event loop for the records
    ("telephony.metrics.**", ADAPTERS),  # collectors over the services, the monitoring routes
)

# Places a caller adds for modules of another tree (scripts/import_graph.py --old-layout).
EXTRA_LAYERS: dict[str, int] = {}

# What a domain module may not import: each means I/O (a database, HTTP, AMI, a socket, a
# child process).
IO_MODULES: Final = ("asyncpg", "aiohttp", "panoramisk", "socket", "subprocess",
                     "asyncio.subprocess")

# Only these may import the development lab (telephony.lab): the lab itself, the command line
# that offers its commands, benchmarks, development scripts and tests.
LAB: Final = "telephony.lab"
LAB_USERS: Final = ("telephony/lab/", "telephony/cli.py", "bench/", "scripts/", "tests/")

# telephony/db/ holds the connection, the embedded cluster and migrations; it imports these.
# telephony.secrets: the generated database password beside the settings it completes.
DB_MAY_IMPORT: Final = ("telephony.db", "telephony.core", "telephony.settings", "telephony.secrets")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module where it names one of ours."""

    source: str  # the importing module, dotted
    path: str  # its file, relative to the root
    line: int
    target: str  # dotted; a module of ours if it resolves to one
    top_level: bool  # False inside a function or class body

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} -> {self.target}"


def module_name(relative: Path) -> str:
    """``telephony/agi/server.py`` -> ``telephony.agi.server``; a package is its folder's."""
    parts = relative.with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def python_files(root: Path, folders: Iterable[str]) -> Iterator[Path]:
    """The ``.py`` files under ``root``'s ``folders``, relative to ``root``, sorted."""
    for folder in folders:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*.py")):
                yield path.relative_to(root)


def layered_modules(root: Path) -> dict[str, Path]:
    """Every module of the layered packages: dotted name -> path relative to ``root``."""
    return {module_name(path): path for path in python_files(root, LAYERED_PACKAGES)}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(root: Path, path: Path, known: Iterable[str]) -> list[Import]:
    """Every import in ``path`` (at any depth), each target resolved against ``known``:
    ``from a.b import c`` names ``a.b.c`` when that is a module, else ``a.b``."""
    modules = set(known)
    source = module_name(path)
    tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=str(path))
    package = source if _is_package(path) else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = top_level and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(source, str(path), child.lineno, alias.name, top_level))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    target = candidate if candidate in modules else base
                    found.append(Import(source, str(path), child.lineno, target, top_level))
            visit(child, nested)

    visit(tree, True)
    # One statement naming several things of one module is one import of it.
    return list(dict.fromkeys(found))


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern.endswith(".**"):
        # "a.b.**": a.b itself and everything under it.
        return re.compile(re.escape(pattern[:-3]) + r"(?:\.[^.]+)*$")
    regex = ""
    for index, name in enumerate(pattern.split(".")):
        if name == "**":
            regex += r"(?:[^.]+\.)*"
            continue
        regex += re.escape(name).replace(r"\*", "[^.]*")
        if index < len(pattern.split(".")) - 1:
            regex += r"\."
    return re.compile(regex + "$")


def layer_of(name: str, path: Path | None = None, root: Path | None = None) -> int | None:
    """The layer of module ``name`` by :data:`LAYER_TABLE`, or ``None`` if no rule places it.

    A package whose ``__init__.py`` imports nothing (a docstring at most) is placed in the
    lowest layer without a rule: importing it brings nothing in.
    """
    exact = {**dict(LAYER_TABLE), **EXTRA_LAYERS}
    if name in exact:  # a module named outright wins over every pattern
        return exact[name]
    for pattern, layer in LAYER_TABLE:
        if _compiled(pattern).match(name):
            return layer
    if path is not None and root is not None and _is_package(path):
        tree = ast.parse((root / path).read_text(encoding="utf-8"))
        if not any(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.walk(tree)):
            return PROTOCOL
    return None


def _in_package(target: str, packages: Iterable[str]) -> bool:
    return any(target == package or target.startswith(package + ".") for package in packages)


@dataclass(frozen=True)
class Graph:
    """The layered modules of one tree and every import between them."""

    root: Path
    modules: dict[str, Path]
    edges: list[Import]  # imports whose target is one of ``modules``

    @classmethod
    def of(cls, root: Path) -> Graph:
        """Read the tree at ``root``."""
        modules = layered_modules(root)
        edges = [found for path in modules.values()
                 for found in imports_of(root, path, modules) if found.target in modules]
        return cls(root, modules, edges)

    def layer(self, name: str) -> int | None:
        """The layer of one of this tree's modules."""
        return layer_of(name, self.modules[name], self.root)

    def unplaced(self) -> list[str]:
        """Modules no rule of the layer table places."""
        return sorted(name for name in self.modules if self.layer(name) is None)

    def upward(self) -> list[Import]:
        """Imports of a module in a higher layer than the importer's."""
        result = []
        for edge in self.edges:
            source, target = self.layer(edge.source), self.layer(edge.target)
            if source is not None and target is not None and target > source:
                result.append(edge)
        return result

    def domain_io(self) -> list[Import]:
        """Imports of an I/O library by a domain module."""
        return [found for name, path in self.modules.items() if self.layer(name) == DOMAIN
                for found in imports_of(self.root, path, self.modules)
                if _in_package(found.target, IO_MODULES)]

    def db_features(self) -> list[Import]:
        """Imports by ``telephony.db`` of anything of ours outside what it may import."""
        return [edge for edge in self.edges if _in_package(edge.source, ("telephony.db",))
                and not _in_package(edge.target, DB_MAY_IMPORT)]


def lab_imports(root: Path) -> list[Import]:
    """Imports of the lab from files outside :data:`LAB_USERS`."""
    folders = sorted({*LAYERED_PACKAGES, "bench", "scripts", "tests"})
    return [found for path in python_files(root, folders)
            if not any(str(path).startswith(user) for user in LAB_USERS)
            for found in imports_of(root, path, ())
            if _in_package(found.target, (LAB,))
            or (found.target == "telephony" and _imports_name(root, found, "lab"))]


def _imports_name(root: Path, found: Import, name: str) -> bool:
    """True when the ``from telephony import ...`` at ``found`` names ``name``."""
    tree = ast.parse((root / found.path).read_text(encoding="utf-8"))
    return any(isinstance(node, ast.ImportFrom) and node.lineno == found.line
               and any(alias.name == name for alias in node.names) for node in ast.walk(tree))


def imports_of_test_modules(root: Path) -> list[Import]:
    """Imports of a test module (``test_*.py``) by another module under ``tests/``."""
    paths = list(python_files(root, ("tests",)))
    test_modules = {module_name(path) for path in paths if path.name.startswith("test_")}
    return [found for path in paths for found in imports_of(root, path, test_modules)
            if found.target in test_modules]


def folder(name: str, modules: dict[str, Path]) -> str:
    """The folder (package) a module lives in: the package itself for an ``__init__``."""
    return name if _is_package(modules[name]) else name.rpartition(".")[0] or name
