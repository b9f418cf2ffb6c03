"""A value loaded from a file that an admin may edit while the line runs.

Whoever needs the value asks for it each time (per call, per scoring); the file is re-read only
when its modification time, size or inode changed, so a saved edit takes effect on the next use
without a restart. An edit that does not load (bad JSON, a refused value, the file gone) is
refused with one log line and the last good value stays: a typo must never take the line down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """The current value of ``load(path)``, reloaded when the file changes.

    ``path`` may be ``None`` (``load`` then supplies the built-in default, loaded once). The
    first load must succeed: a line started with a broken file is refused at start, when
    someone is watching. ``refused`` are the errors ``load`` raises for a bad file; anything
    else is a bug and propagates. ``describe`` names a loaded value in the log ("version 3").

    ``last_good``: the value a running line already holds (the IVR's process, started again
    while the line runs, gets the line's). A first load that is refused then starts from it,
    with one log line, as a later refused edit would keep it: a bad edit the line refused must
    not stop a process the line starts after it.
    """

    def __init__(
        self,
        path: Path | None,
        load: Callable[[Path | None], T],
        refused: type[Exception] | tuple[type[Exception], ...],
        *,
        what: str,
        logger: logging.Logger,
        describe: Callable[[T], str] = lambda _: "",
        last_good: T | None = None,
    ) -> None:
        self._path = path
        self._load = load
        self._refused = refused
        self._what = what
        self._log = logger
        self._describe = describe
        self._stamp = self._current_stamp()
        try:
            self._value = load(path)
        except refused as exc:
            if last_good is None:
                raise
            self._value = last_good
            logger.error("%s does not load, starting with the last good one%s: %s",
                         what, self._named(last_good), exc)
        # Threads may read the value as the main loop does: one reload at a time, and no
        # reader sees the new stamp with the old value.
        self._reloading = threading.Lock()

    def _current_stamp(self) -> tuple[int, int, int] | None:
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        # The inode too: a file replaced by a rename (as the admin's publish does) is new even
        # when its size and coarse modification time equal the old one's.
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _named(self, value: T) -> str:
        description = self._describe(value)
        return f" ({description})" if description else ""

    def current(self) -> T:
        """The value to use now; re-reads the file first if it changed since the last look."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return self._value
        with self._reloading:
            if stamp == self._stamp:
                return self._value
            try:
                self._value = self._load(self._path)
            except self._refused as exc:
                self._log.error("%s edit refused, keeping the last good one%s: %s",
                                self._what, self._named(self._value), exc)
            else:
                self._log.info("%s reloaded from %s%s", self._what, self._path,
                               self._named(self._value))
            self._stamp = stamp  # after the value: a reader seeing this stamp gets its value
            return self._value
