"""Where the running IVR gets its menu: a file that an admin may edit while calls go on.

Each call asks for the menu; the file is re-read when it changed, so a published edit takes
effect on the next call without a restart, and calls in progress keep the menu they started
with. An edit that does not validate is refused with one log line and the last good menu stays.

The line's menu is also timed as a published one is (telephony/admin/configs.py): a menu that
can keep a caller past the IVR session's guard is cut off there mid-prompt by the dialplan's
fail-open. A hand-edited ``menu_file`` used to be taken untimed. Its prompts are timed by the
audio on this node (``prompts_dir``, where ``siaga112 prompts`` makes a hand-edited menu's,
and a published version's own directory); one not made yet counts as none, so the waits and
attempts alone are still timed. An edit too long is refused like a broken one, the last good
menu kept. At the line's start there is none: the line runs it and logs why (the guard sends
its callers on to the queue, fail open); refusing to start would leave calls unrecorded.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Callable
from pathlib import Path

from ivr.flow import SESSION_OVERHEAD_SECONDS, menu_too_long
from ivr.menu import IvrMenu, MenuError, load_menu
from telephony.core.watched import WatchedFile
from telephony.settings import Settings

log = logging.getLogger("ivr.menu")


def menu_source(path: Path | None, *, missing_is_default: bool = False,
                last_good: IvrMenu | None = None,
                check: Callable[[IvrMenu], None] | None = None) -> WatchedFile[IvrMenu]:
    """The menu at ``path`` (``None``: the packaged default); the first load must succeed,
    unless ``last_good`` (the running line's menu) is given to start from (``WatchedFile``).

    With ``missing_is_default`` the packaged default also stands in while ``path`` does not
    exist (the state directory's file, until an admin's first publish writes it). ``check``
    refuses a loaded menu by raising :class:`MenuError`.
    """

    def load(current: Path | None) -> IvrMenu:
        if current is not None and missing_is_default and not current.exists():
            menu = load_menu(None)
        else:
            menu = load_menu(current)
        if check is not None:
            check(menu)
        return menu

    return WatchedFile(path, load, MenuError, what="menu", logger=log,
                       describe=lambda menu: f"version {menu.version}", last_good=last_good)


def menu_seconds(settings: Settings) -> float:
    """The longest a menu may keep a caller (s): the IVR session's guard
    (``agi_session_timeout``), past which the dialplan fails open mid-prompt, less what the
    session spends besides the menu."""
    return (settings.agi_session_timeout - settings.screening_timeout_ms / 1000
            - SESSION_OVERHEAD_SECONDS)


def admin_work_dir(settings: Settings) -> Path:
    """The admin's working directory: each menu version's prompt audio and recordings."""
    return settings.state_dir / "admin"


def version_audio_dir(work_dir: Path, version_id: int) -> Path:
    """Where the prompt audio of a menu version an admin made is generated."""
    return work_dir / "prompts" / f"v{version_id}"


def prompt_seconds(settings: Settings, menu: IvrMenu) -> dict[str, float]:
    """The length (s) of each of ``menu``'s prompts whose audio this node has."""
    found = {}
    directories = (settings.prompts_dir,
                   version_audio_dir(admin_work_dir(settings), menu.version))
    for name in menu.prompts:
        for directory in directories:
            try:
                with wave.open(str(directory / f"{name}.wav"), "rb") as audio:
                    found[name] = audio.getnframes() / audio.getframerate()
                break
            except (OSError, EOFError, wave.Error, ZeroDivisionError):
                continue  # not made here (yet), or not audio this node made
    return found


def line_menu_source(settings: Settings, last_good: IvrMenu | None = None
                     ) -> WatchedFile[IvrMenu]:
    """The menu the line runs: ``menu_file`` if set, else the state directory's copy an admin
    published (the packaged default until then); ``last_good``: the running line's, for the
    IVR's process it starts. Timed against the IVR session's guard (the module's
    description)."""
    started = last_good is not None

    def timed(menu: IvrMenu) -> None:
        reason = menu_too_long(menu, prompt_seconds(settings, menu), menu_seconds(settings))
        if reason is None:
            return
        if started:
            raise MenuError(reason)
        log.error("menu version %d runs as it is, its callers sent on to the queue at the IVR "
                  "session's guard: %s", menu.version, reason)

    source = menu_source(settings.live_menu_file, missing_is_default=settings.menu_file is None,
                         last_good=last_good, check=timed)
    started = True
    return source
