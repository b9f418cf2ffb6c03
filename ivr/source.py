"""Where the running IVR gets its menu: a file that an admin may edit while calls go on.

Each call asks for the menu; the file is re-read when it changed, so a published edit takes
effect on the next call without a restart, and calls in progress keep the menu they started
with. An edit that does not validate is refused with one log line and the last good menu stays.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ivr.menu import IvrMenu, MenuError, load_menu
from telephony.watched import WatchedFile

log = logging.getLogger("ivr.menu")


def menu_source(path: Path | None) -> WatchedFile[IvrMenu]:
    """The menu at ``path`` (``None``: the packaged default); the first load must succeed."""
    return WatchedFile(path, load_menu, MenuError, what="menu", logger=log,
                       describe=lambda menu: f"version {menu.version}")
