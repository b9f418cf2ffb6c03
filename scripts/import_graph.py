"""Print the import-graph figures of a source tree: module edges, folder pairs, and the ones
that point up a layer (by the layer table in ``tests/architecture.py``).

    python scripts/import_graph.py [ROOT] [--old-layout] [--list]

ROOT defaults to this checkout. ``--old-layout`` also places the modules of the layout before
the feature folders (commit 4ff047a), so an old tree can be compared with the new one;
``--list`` prints every upward edge and folder pair. Imports are read with ``ast``; nothing
in ROOT is run or imported.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Final

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from tests import architecture  # noqa: E402  (the checkout's root goes on the path first)
from tests.architecture import ADAPTERS, DOMAIN, LAYER_NAMES, PROTOCOL, ROOT, Graph  # noqa: E402

# Modules of the layout before the feature folders, by the layer their successor is in
# (telephony/db/<feature>.py were the stores; telephony/web/* stays adapters by pattern).
OLD_LAYOUT: Final[dict[str, int]] = {
    "telephony.callfacts": DOMAIN,  # -> telephony.calls.facts
    "telephony.shifts": DOMAIN,  # -> telephony.calls.shifts
    "telephony.operators": DOMAIN,  # -> telephony.desks.operators
    "telephony.callarchive": ADAPTERS,  # -> telephony.calls.archive
    "telephony.recorder": ADAPTERS,  # -> telephony.calls.recorder
    "telephony.spool": ADAPTERS,  # -> telephony.calls.spool
    "telephony.desks": ADAPTERS,  # -> telephony.desks.service
    "telephony.lab": ADAPTERS,  # -> telephony.lab.chroot
    "telephony.sipp": ADAPTERS,  # -> telephony.lab.sipp
    "telephony.demo": ROOT,  # -> telephony.lab.demo
    "telephony.storage": PROTOCOL,  # -> telephony.core.storage
    "telephony.watched": PROTOCOL,  # -> telephony.core.watched
    "telephony.upkeep": ADAPTERS,  # -> telephony.core.loops
}


def main(argv: list[str] | None = None) -> int:
    """Print the figures; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=HERE)
    parser.add_argument("--old-layout", action="store_true",
                        help="also place the modules of the layout before feature folders")
    parser.add_argument("--list", action="store_true", help="list upward edges and pairs")
    args = parser.parse_args(argv)
    if args.old_layout:
        architecture.EXTRA_LAYERS.update(OLD_LAYOUT)

    graph = Graph.of(args.root.resolve())
    edges = {(edge.source, edge.target) for edge in graph.edges if edge.source != edge.target}
    folder_of = {name: architecture.folder(name, graph.modules) for name in graph.modules}
    pairs = {(folder_of[a], folder_of[b]) for a, b in edges if folder_of[a] != folder_of[b]}

    def up(a: str, b: str) -> bool:
        source, target = graph.layer(a), graph.layer(b)
        return source is not None and target is not None and target > source

    upward = sorted((a, b) for a, b in edges if up(a, b))
    upward_pairs = sorted({(folder_of[a], folder_of[b]) for a, b in upward
                           if folder_of[a] != folder_of[b]})
    # Folders that import each other; the top-level telephony/ (app, cli, settings) is left
    # out, since everything imports settings and the app imports everything.
    mutual = sorted({tuple(sorted(pair)) for pair in pairs if pair[::-1] in pairs
                     and "telephony" not in pair})
    unplaced = graph.unplaced()
    layers = Counter(LAYER_NAMES[layer] if (layer := graph.layer(name)) is not None
                     else "unplaced" for name in graph.modules)

    print(f"tree: {args.root}")
    counts = ", ".join(f"{name} {count}" for name, count in sorted(layers.items()))
    print(f"modules: {len(graph.modules)} ({counts})")
    print(f"module import edges: {len(edges)}")
    print(f"folders: {len(set(folder_of.values()))}; folder pairs: {len(pairs)}")
    print(f"edges pointing up a layer: {len(upward)}; folder pairs among them: {len(upward_pairs)}")
    print(f"folder pairs importing each other (besides telephony/): {len(mutual)}")
    if unplaced:
        print(f"modules the layer table does not place ({len(unplaced)}; their edges are not "
              f"judged): {', '.join(unplaced)}")
    if args.list:
        for a, b in upward:
            print(f"  up: {a} ({LAYER_NAMES[graph.layer(a) or 0]}) -> "
                  f"{b} ({LAYER_NAMES[graph.layer(b) or 0]})")
        for a, b in upward_pairs:
            print(f"  up folder pair: {a} -> {b}")
        for a, b in mutual:
            print(f"  mutual: {a} <-> {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
