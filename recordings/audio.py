"""Measuring and transcoding one recording with pydub (ffmpeg underneath).

The worker runs this module as a child process (``python -m recordings.audio SOURCE TARGET
FORMAT SECONDS``) rather than in its own event loop: decoding a long call and scanning it for
silence is CPU work that must not stall the FastAGI server and AMI listener of a live line, a
corrupt file that crashes a decoder takes only the child with it, and a cancelled or stuck job
is ended by killing the child. The child prints one JSON object with the measurements and exits
0; it exits :data:`EXIT_BAD_AUDIO` when the source cannot be decoded (that will not get better
on a retry), :data:`EXIT_NO_SPACE` when a disk it writes to is full, :data:`EXIT_READ_ONLY` when
it is read-only (the kernel remounts a disk with errors so, or it was mounted so: both are the
site's, not the recording's: the worker waits without counting the attempt) and 1 on anything
else.

A WAV whose header Asterisk never finalised (it crashed mid-call) is decoded from a copy whose
header sizes are recomputed from the file's length (:mod:`recordings.wavheader`), in memory:
the file in the monitor directory stays exactly as Asterisk wrote it, as evidence and for the
quarantine should the copy not decode either.

The child dies with its job. The worker makes it the leader of its own process group, which the
ffmpeg that pydub starts joins; the worker kills that group when it gives up on the job or is
cancelled, and if the worker itself is killed, the kernel sends the child SIGTERM
(``PR_SET_PDEATHSIG``), on which the child kills its group, ffmpeg included. The child can ask
for that signal only once it runs: a worker killed while the child still starts (Python and
pydub take a moment to load) is seen gone when the child asks (:func:`worker_gone`), before
any ffmpeg starts. So an orphan cannot keep writing after another worker has taken the job over.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from pydub import AudioSegment
from pydub.silence import detect_silence

from recordings.domain import loudness, silence_share
from recordings.holder import process_started
from recordings.wavheader import repaired_wav
from telephony.core.errors import SiagaError
from telephony.core.text import ascii_digits

EXIT_BAD_AUDIO = 3
EXIT_NO_SPACE = 4
EXIT_READ_ONLY = 5
# A write refused for want of room: the storage disk, or the temporary directory pydub uses.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_NICE = 19  # the lowest: a core only when nothing of the line's wants one
# The worker names itself here, so a child whose worker died before it could ask the kernel to
# be told (the parent may be a wrapper such as nice or sh) still notices.
WORKER_PID_ENV = "SIAGA112_RECORDINGS_WORKER_PID"

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
    header_repaired: bool = False  # decoded from a copy with its WAV header sizes recomputed


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(source: Path) -> tuple[AudioSegment, bool]:
    """The source's audio, and whether its header had to be repaired to read it."""
    data = source.read_bytes()
    repaired = repaired_wav(data)
    try:
        audio = AudioSegment.from_file(io.BytesIO(repaired or data), format="wav")
    except Exception as exc:  # pydub raises bare exceptions from its wav reader and ffmpeg alike
        # ffmpeg's complaint is the last line of a long banner.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[-1][:200] if lines else type(exc).__name__
        raise BadAudio(f"cannot decode {source.name}: {detail}") from exc
    if len(audio) == 0:
        raise BadAudio(f"{source.name} holds no audio")
    return audio, repaired is not None


def process(source: Path, target: Path, fmt: str) -> Measurements:
    """Measure ``source`` and write it to ``target`` in ``fmt``, flushed to disk."""
    container, codec, bitrate, parameters = _ENCODINGS[fmt]
    audio, header_repaired = _decode(source)
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
        header_repaired=header_repaired,
    )


def _end_group(signum: int, frame: FrameType | None) -> None:
    """Kill our process group (ffmpeg with us) when our time is up or our parent died."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    # Not our own group (run by hand, or under a wrapper that leads it): end only ourselves.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def die_with_parent() -> None:
    """Have the kernel send us SIGTERM when the worker that started us dies (Linux)."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent or worker_gone(os.environ.get(WORKER_PID_ENV, "")):
        # The worker died before the kernel was told: the signal will never come.
        _end_group(signal.SIGTERM, None)


def yield_the_session(autogroup: Path = AUTOGROUP) -> None:
    """Put our session, ffmpeg included, behind Asterisk and the line for the CPU.

    The worker starts us in a session of our own (our own process group, so that killing it
    kills ffmpeg too). Where the kernel shares the CPU between sessions first (autogroup, on by
    default in many kernels, for processes that no service manager put in a cgroup of their
    own), a new session competes with Asterisk's as an equal, and the worker's ``nice -n 15``
    only ranks us against ourselves. The session's own nice value is the one that ranks it
    (sched(7)); raising it needs no privilege. Without autogroup the file is absent or its
    value unused, and the nice value does the job. A refusal costs nothing but the ranking.
    """
    with contextlib.suppress(OSError):
        autogroup.write_text(f"{AUTOGROUP_NICE}\n", encoding="ascii")


def worker_gone(named: str) -> bool:
    """True if the worker that named itself (``named``, its pid) has died.

    The worker may be killed while we start (importing pydub takes a while), before we asked
    for the signal. The kernel hands a dying process's children to a new parent before the
    process becomes a zombie, so the worker is gone once it is no longer our parent, unless a
    wrapper that forks (``sh -c``) stands between us; then the worker is gone if it no longer
    runs. A zombie runs no more: one that nobody has reaped yet (its parent is slow, or is the
    shell that started the line) is dead for us, though signal 0 still reaches it.
    """
    if not ascii_digits(named):
        return False  # run by hand: nobody to outlive
    worker = int(named)
    return os.getppid() != worker and process_started(worker) is None


def main(argv: Sequence[str] | None = None) -> int:
    """Child-process entry point: ``SOURCE TARGET FORMAT SECONDS``."""
    source, target, fmt, seconds = argv if argv is not None else sys.argv[1:]
    signal.signal(signal.SIGTERM, _end_group)
    signal.signal(signal.SIGALRM, _end_group)
    die_with_parent()
    yield_the_session()
    # The parent kills us when it gives up; should that fail, this still bounds the job.
    signal.alarm(max(1, int(float(seconds))))
    try:
        measured = process(Path(source), Path(target), fmt)
    except BadAudio as exc:
        print(json.dumps({"error": str(exc)}))
        return EXIT_BAD_AUDIO
    except OSError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        if exc.errno == errno.EROFS:
            return EXIT_READ_ONLY
        return EXIT_NO_SPACE if exc.errno in _NO_SPACE else 1
    except Exception as exc:  # reported to the parent, which retries
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(asdict(measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
