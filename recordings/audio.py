"""Measuring and transcoding one recording with pydub (ffmpeg underneath).

The worker runs this module as a child process (``python -m recordings.audio SOURCE TARGET
FORMAT SECONDS``) rather than in its own event loop: decoding a long call and scanning it for
silence is CPU work that must not stall the FastAGI server and AMI listener of a live line, a
corrupt file that crashes a decoder takes only the child with it, and a cancelled or stuck job
is ended by killing the child. The child prints one JSON object with the measurements and exits
0; it exits :data:`EXIT_BAD_AUDIO` when the source cannot be decoded (that will not get better
on a retry) and 1 on anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pydub import AudioSegment
from pydub.silence import detect_silence

from recordings.domain import loudness, silence_share
from telephony.core.errors import SiagaError

EXIT_BAD_AUDIO = 3

# Quieter than this is silence: well below speech on a G.711 line (about -30 to -10 dBFS),
# above its idle noise. A pause shorter than half a second is part of speaking.
SILENCE_THRESHOLD_DBFS = -45.0
MIN_SILENCE_MS = 500
# One G.711 frame: finer steps only cost time on an hour-long call.
SILENCE_STEP_MS = 20

# Narrowband speech: 16 kb/s Opus (voip mode) or 24 kb/s MP3 keep it intelligible at a fraction
# of the 128 kb/s WAV. bitexact output lets a reprocessed file come out byte for byte the same.
_ENCODINGS: dict[str, tuple[str, str, str, list[str]]] = {
    "opus": ("ogg", "libopus", "16k", ["-application", "voip", "-fflags", "+bitexact"]),
    "mp3": ("mp3", "libmp3lame", "24k", ["-fflags", "+bitexact"]),
}


class BadAudio(SiagaError, ValueError):
    """The source is not audio we can decode, or holds none."""


@dataclass(frozen=True)
class Measurements:
    """What processing learnt about a recording and the file it produced."""

    duration_seconds: float
    silence_share: float
    loudness_dbfs: float | None
    size_bytes: int
    sha256: str


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(source: Path) -> AudioSegment:
    # pydub leaves files it opens by name unclosed; an open handle we close ourselves avoids it.
    try:
        with source.open("rb") as handle:
            audio = AudioSegment.from_file(handle, format="wav")
    except OSError:
        raise
    except Exception as exc:  # pydub raises bare exceptions from its wav reader and ffmpeg alike
        # ffmpeg's complaint is the last line of a long banner.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[-1][:200] if lines else type(exc).__name__
        raise BadAudio(f"cannot decode {source.name}: {detail}") from exc
    if len(audio) == 0:
        raise BadAudio(f"{source.name} holds no audio")
    return audio


def process(source: Path, target: Path, fmt: str) -> Measurements:
    """Measure ``source`` and write it to ``target`` in ``fmt``, flushed to disk."""
    container, codec, bitrate, parameters = _ENCODINGS[fmt]
    audio = _decode(source)
    silent = detect_silence(audio, min_silence_len=MIN_SILENCE_MS,
                            silence_thresh=SILENCE_THRESHOLD_DBFS, seek_step=SILENCE_STEP_MS)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        audio.export(handle, format=container, codec=codec, bitrate=bitrate,
                     parameters=parameters)
        handle.flush()
        os.fsync(handle.fileno())
    return Measurements(
        duration_seconds=len(audio) / 1000,
        silence_share=silence_share(silent, len(audio)),
        loudness_dbfs=loudness(audio.dBFS),
        size_bytes=target.stat().st_size,
        sha256=sha256_of(target),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Child-process entry point: ``SOURCE TARGET FORMAT SECONDS``."""
    source, target, fmt, seconds = argv if argv is not None else sys.argv[1:]
    # The parent kills us when it gives up; if the parent itself died, this ends us anyway, so
    # an orphan cannot keep writing after another worker has taken the job over.
    signal.alarm(max(1, int(float(seconds))))
    try:
        measured = process(Path(source), Path(target), fmt)
    except BadAudio as exc:
        print(json.dumps({"error": str(exc)}))
        return EXIT_BAD_AUDIO
    except Exception as exc:  # reported to the parent, which retries
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(asdict(measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
