"""Where the running IVR gets its menu: a file that an admin may edit while calls go on.

Each call asks for the menu; the file is re-read when it changed, so a published edit takes
effect on the next call without a restart, and calls in progress keep the menu they started
with. An edit that does not validate is refused with one log line and the last good menu stays.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ivr.menu import IvrMenu, MenuError, load_menu

log = logging.getLogger("ivr.menu")


class MenuSource:
    """The current menu, reloaded from ``path`` when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._menu = load_menu(path)  # the first load must succeed: no menu, no line
        self._stamp = self._current_stamp()

    def _current_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self) -> IvrMenu:
        """The menu to use for a call starting now."""
        stamp = self._current_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._menu = load_menu(self._path)
                log.info("menu reloaded from %s (version %d)", self._path, self._menu.version)
            except MenuError as exc:
                log.error("menu edit refused, keeping version %d: %s", self._menu.version, exc)
        return self._menu
