"""The loop behind every background service of the line: one pass, a pause, again, forever.

A database outage is logged once when it begins and retried at the same pace (the work waits in
the database or the call spool; nothing is lost). Any other failure is a bug in one pass: it is
logged with its traceback and the next pass runs anyway, so one bad row cannot stop every later
incident, score or survey.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telephony.db.connection import DatabaseUnavailable


async def run_passes(
    what: str,
    one_pass: Callable[[], Awaitable[object]],
    pause: Callable[[], Awaitable[None]],
    log: logging.Logger,
) -> None:
    """Run ``one_pass`` then ``pause``, forever; ``what`` names the service in the log."""
    unavailable = False
    while True:
        try:
            await one_pass()
        except DatabaseUnavailable as exc:
            if not unavailable:
                log.error("%s paused, database unavailable: %s", what, exc)
            unavailable = True
        except Exception:
            log.exception("%s pass failed", what)
        else:
            unavailable = False
        await pause()
