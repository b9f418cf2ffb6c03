"""Where the admin's documents live on disk: the live files the line watches, and the
working directories of each version's prompt audio.

The line watches ``Settings.live_menu_file`` and ``Settings.live_screening_file``: the files
the settings name, else ``<state_dir>/ivr/menu.json`` and ``<state_dir>/ivr/screening.json``,
which do not exist (the packaged menu, the built-in screening defaults) until an admin first
publishes. Publishing replaces them in one rename, so the line never reads half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ivr.source import admin_work_dir, menu_seconds, version_audio_dir
from telephony.admin.errors import ApplyFailed
from telephony.admin.versions import ConfigKind
from telephony.settings import Settings


def replace_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (a reader sees the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class ConfigFiles:
    """The live files and the admin's working directories."""

    menu_file: Path
    screening_file: Path
    work_dir: Path
    voice: str
    # Recorded prompts an admin dropped in by hand before the console existed; the first
    # version of the menu takes them over.
    recorded_prompts_dir: Path
    # The longest a published menu may keep a caller (s): the IVR session's guard
    # (agi_session_timeout), past which the dialplan fails open mid-prompt, less what the
    # session spends besides the menu.
    menu_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ConfigFiles:
        """The files described by ``settings``."""
        return cls(
            menu_file=settings.live_menu_file,
            screening_file=settings.live_screening_file,
            work_dir=admin_work_dir(settings),
            voice=settings.prompt_voice,
            recorded_prompts_dir=settings.prompt_overrides_dir,
            menu_seconds=menu_seconds(settings),
        )

    def live_file(self, kind: ConfigKind) -> Path:
        """The file the line watches for ``kind``."""
        return self.menu_file if kind is ConfigKind.MENU else self.screening_file

    def audio_dir(self, version_id: int) -> Path:
        """Where the prompt audio of a menu version is generated (preview and publish)."""
        return version_audio_dir(self.work_dir, version_id)

    def recorded_dir(self, version_id: int) -> Path:
        """Where a menu version's uploaded recordings are put for the audio generation."""
        return self.work_dir / "recorded" / f"v{version_id}"

    def live_document(self, kind: ConfigKind) -> dict[str, Any]:
        """The document the line runs now: the live file, else the built-in default."""
        path = self.live_file(kind)
        try:
            if path.exists():
                text = path.read_text(encoding="utf-8")
            elif kind is ConfigKind.MENU:
                text = resources.files("ivr").joinpath("menu.json").read_text("utf-8")
            else:
                text = "{}"  # every screening setting at its built-in default
            document = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ApplyFailed(f"Berkas {path} yang berjalan tidak dapat dibaca: {exc}") from exc
        if not isinstance(document, dict):
            raise ApplyFailed(f"Berkas {path} yang berjalan bukan objek JSON.")
        return document
