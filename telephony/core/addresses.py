"""Words for network addresses that several parts of the line share."""

from __future__ import annotations

from typing import Final

# What a server listening on every address is given as its host (it is then reached at any
# of the machine's addresses, loopback too).
ANY_ADDRESS: Final = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104
