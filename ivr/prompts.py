"""IVR prompt audio: spoken by espeak-ng (voice ``id``), converted with pydub for Asterisk.

Asterisk plays 8 kHz, mono, 16-bit WAV without transcoding cost on narrowband calls, so every
prompt is stored that way as ``<prompts_dir>/<name>.wav``. An admin who records a better prompt
drops ``<name>.wav`` (any rate or channel count pydub can read) into the overrides directory;
it then wins over the generated one. A prompt may end with a stretch of silence (the screening
prompt does: the dialplan listens for the caller while it plays). Generation is skipped for
prompts whose text, voice and silence have not changed (a manifest keeps their hashes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydub import AudioSegment

from ivr.hold import HOLD_PROMPTS
from ivr.menu import IvrMenu
from ivr.survey import SURVEY_PROMPTS
from telephony.core.errors import SiagaError

log = logging.getLogger("ivr.prompts")

SAMPLE_RATE = 8000
MANIFEST = "manifest.json"


class PromptError(SiagaError, RuntimeError):
    """A prompt could not be produced."""


@dataclass(frozen=True)
class PromptReport:
    """What happened to one prompt."""

    name: str
    source: str  # generated, recorded, unchanged
    seconds: float


def _load(source: Path) -> AudioSegment:
    """Read an audio file with pydub.

    pydub's ``from_file(path)`` and ``export(path)`` leave the files they open unclosed (a
    ResourceWarning per prompt); handing them file objects we close ourselves avoids that.
    """
    try:
        with source.open("rb") as handle:
            return AudioSegment.from_file(handle)
    except Exception as exc:  # pydub raises bare exceptions from ffmpeg/wave alike
        raise PromptError(f"cannot read audio {source}: {exc}") from exc


def _to_asterisk_wav(source: Path, target: Path, silence_ms: int) -> float:
    """Convert any audio file to 8 kHz mono 16-bit WAV followed by ``silence_ms`` of silence;
    returns its duration in seconds."""
    audio = _load(source)
    audio = audio.set_frame_rate(SAMPLE_RATE).set_channels(1).set_sample_width(2)
    if silence_ms:
        audio += AudioSegment.silent(silence_ms, frame_rate=SAMPLE_RATE)
    tmp = target.with_suffix(".tmp.wav")
    with tmp.open("wb") as out:  # export(path) leaks its handle too
        audio.export(out, format="wav")
    tmp.replace(target)
    return len(audio) / 1000.0


def _speak(text: str, voice: str, target: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise PromptError("espeak-ng is not installed (scripts/setup installs it)")
    try:
        subprocess.run(
            # "--": the text is never an option, even one starting with "-" ("-f<path>"
            # would read a file aloud).
            [espeak, "-v", voice, "-s", "165", "-w", str(target), "--", text],
            check=True, capture_output=True, timeout=60,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise PromptError(f"espeak-ng failed for {target.stem}: {exc}") from exc


def build_prompts(
    texts: Mapping[str, str], out_dir: Path, overrides_dir: Path, voice: str,
    trailing_silence_ms: Mapping[str, int] | None = None,
) -> list[PromptReport]:
    """Make sure ``out_dir`` holds an Asterisk-ready WAV for every prompt in ``texts``.

    ``trailing_silence_ms`` names prompts whose audio must end with that much silence.
    """
    padding = trailing_silence_ms or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        manifest = {}
    reports = []
    for name, text in sorted(texts.items()):
        target = out_dir / f"{name}.wav"
        recorded = overrides_dir / f"{name}.wav"
        silence_ms = padding.get(name, 0)
        if recorded.exists():
            key = "recorded:" + hashlib.sha256(recorded.read_bytes()).hexdigest()
            source = "recorded"
        else:
            key = "espeak:" + hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()
            source = "generated"
        if silence_ms:
            key += f"+silence:{silence_ms}"
        if manifest.get(name) == key and target.exists():
            seconds = len(_load(target)) / 1000.0
            reports.append(PromptReport(name, "unchanged", seconds))
            continue
        if source == "recorded":
            seconds = _to_asterisk_wav(recorded, target, silence_ms)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                spoken = Path(tmp) / "spoken.wav"
                _speak(text, voice, spoken)
                seconds = _to_asterisk_wav(spoken, target, silence_ms)
        manifest[name] = key
        reports.append(PromptReport(name, source, seconds))
        log.info("prompt %s: %s (%.1f s)", name, source, seconds)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
    return reports


def build_line_prompts(
    menu: IvrMenu, out_dir: Path, overrides_dir: Path, voice: str
) -> list[PromptReport]:
    """Every prompt the line plays: the menu's (with their trailing silences), the survey's,
    and what a caller on hold hears."""
    return build_prompts({**menu.prompts, **SURVEY_PROMPTS, **HOLD_PROMPTS}, out_dir,
                         overrides_dir, voice,
                         menu.trailing_silence_ms)
