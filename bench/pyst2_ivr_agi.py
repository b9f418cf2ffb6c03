"""The bench IVR as a classic, process-per-call AGI script using pyst2.

Asterisk would start it with the call on stdin/stdout; fastagi_bench.py does the same. Usage:
``pyst2_ivr_agi.py NAME=VALUE ...``: ask for a digit, then set IVR_CHOICE and each NAME.
"""

from __future__ import annotations

import os
import sys

from asterisk.agi import AGI


def main() -> None:
    """Run one call."""
    # pyst2 writes every line it reads and sends to stderr; keep that out of the timing.
    with open(os.devnull, "w") as quiet:  # noqa: PTH123 - a plain file object is what AGI takes
        agi = AGI(stderr=quiet)
        digit = agi.get_data("siaga112/menu", 5000, 1)
        agi.set_variable("IVR_CHOICE", digit)
        for assignment in sys.argv[1:]:
            name, _, value = assignment.partition("=")
            agi.set_variable(name, value)


if __name__ == "__main__":
    main()
