"""Where a site's Asterisk keeps the files the line writes or reads, and installing prompts.

The line writes Asterisk's configuration directory (the queues include and the live
settings an admin changes), installs the IVR prompts into Asterisk's sounds, and reads the
call recordings MixMonitor leaves in Asterisk's monitor directory. These are host paths:
the line may see Asterisk's files under other names than Asterisk does (the lab's Asterisk
runs in a chroot).

A site sets ``asterisk_etc_dir``, ``asterisk_sounds_dir`` and ``recordings_incoming_dir``
(Asterisk's monitor directory; its name predates this module). Unset, each is the
development lab instance's (``telephony/lab/chroot.py``), so a checkout's line, demo and
tests run against the lab with no configuration.
"""

from __future__ import annotations

import re
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

from telephony.asterisk.errors import AsteriskSiteError
from telephony.settings import Settings

PROMPT_SUBDIR = "siaga112"  # prompts play as "siaga112/<name>"
# Inside the lab's rootfs, each lab instance keeps all its files under this directory.
LAB_INSTANCES_DIR = "/srv/siaga112"

_PROMPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def lab_instance_dir(settings: Settings) -> str:
    """The lab instance's directory as its Asterisk sees it (a path in the chroot)."""
    return f"{LAB_INSTANCES_DIR}/{settings.lab_instance}"


@dataclass(frozen=True)
class AsteriskSite:
    """The host paths of one Asterisk's files the line touches."""

    etc_dir: Path  # its configuration directory (astetcdir)
    sounds_dir: Path  # the line's prompts, played as "siaga112/<name>"
    monitor_dir: Path  # where MixMonitor writes call recordings (astspooldir/monitor)

    @classmethod
    def in_instance(cls, host_dir: Path) -> AsteriskSite:
        """The directories of an instance laid out by ``asterisk-conf/asterisk.conf``, whose
        every directory lives under one instance directory (``host_dir`` on this host)."""
        return cls(
            etc_dir=host_dir / "etc",
            sounds_dir=host_dir / "data" / "sounds" / PROMPT_SUBDIR,
            monitor_dir=host_dir / "spool" / "monitor",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AsteriskSite:
        """The site's directories; each one not set is the lab instance's."""
        lab = cls.in_instance(settings.lab_rootfs / lab_instance_dir(settings).lstrip("/"))
        return cls(
            etc_dir=settings.asterisk_etc_dir or lab.etc_dir,
            sounds_dir=settings.asterisk_sounds_dir or lab.sounds_dir,
            monitor_dir=settings.recordings_incoming_dir or lab.monitor_dir,
        )

    def install_prompts(self, src_dir: Path) -> list[str]:
        """Copy ``src_dir/*.wav`` into the prompt directory; return the names copied.

        Asterisk's ``format_wav`` plays only 8 kHz mono 16-bit PCM WAV; anything else fails
        at call time with a warning nobody reads, so it is refused here. Each file is
        replaced in one rename: a call playing it reads the old or the new one, never half.
        """
        self.sounds_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for wav in sorted(src_dir.glob("*.wav")):
            if not _PROMPT_NAME.fullmatch(wav.stem):
                raise AsteriskSiteError(f"{wav}: prompt names may use letters, digits, _ and -")
            try:
                with wave.open(str(wav), "rb") as reader:
                    shape = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
            except (wave.Error, EOFError) as exc:
                raise AsteriskSiteError(f"{wav}: not a WAV file: {exc}") from exc
            if shape != (8000, 1, 2):
                raise AsteriskSiteError(f"{wav}: need 8000 Hz mono 16-bit, got {shape}")
            target = self.sounds_dir / wav.name
            tmp = target.with_name(f".{wav.name}.tmp")
            shutil.copyfile(wav, tmp)
            tmp.replace(target)
            names.append(wav.stem)
        return names
