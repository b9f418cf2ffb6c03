"""Where the running IVR gets its menu: a file that an admin may edit while calls go on.

Each call asks for the menu; the file is re-read when it changed, so a published edit takes
effect on the next call without a restart, and calls in progress keep the menu they started
with. An edit that does not validate is refused with one log line and the last good menu stays.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ivr.menu import IvrMenu, MenuError, load_menu
from telephony.core.watched import WatchedFile
from telephony.settings import Settings

log = logging.getLogger("ivr.menu")


def menu_source(path: Path | None, *, missing_is_default: bool = False,
                last_good: IvrMenu | None = None) -> WatchedFile[IvrMenu]:
    """The menu at ``path`` (``None``: the packaged default); the first load must succeed,
    unless ``last_good`` (the running line's menu) is given to start from (``WatchedFile``).

    With ``missing_is_default`` the packaged default also stands in while ``path`` does not
    exist (the state directory's file, until an admin's first publish writes it).
    """

    def load(current: Path | None) -> IvrMenu:
        if current is not None and missing_is_default and not current.exists():
            return load_menu(None)
        return load_menu(current)

    return WatchedFile(path, load, MenuError, what="menu", logger=log,
                       describe=lambda menu: f"version {menu.version}", last_good=last_good)


def line_menu_source(settings: Settings, last_good: IvrMenu | None = None
                     ) -> WatchedFile[IvrMenu]:
    """The menu the line runs: ``menu_file`` if set, else the state directory's copy an admin
    published (the packaged default until then); ``last_good``: the running line's, for the
    IVR's process it starts."""
    return menu_source(settings.live_menu_file, missing_is_default=settings.menu_file is None,
                       last_good=last_good)
