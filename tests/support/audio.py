"""What a recording holds, measured: the share of its energy in one tone (a Goertzel filter per
20 ms block), and its stored files by kind once the recordings worker is done with them."""

from __future__ import annotations

import math
from pathlib import Path

from pydub import AudioSegment

from recordings.domain import Kind, State
from recordings.store import Recording, RecordingRepository
from telephony.app import Line
from tests.support.polling import eventually

RATE = 8000  # what the line's calls carry (G.711)
BLOCK = 160  # 20 ms at 8 kHz: a bin of 50 Hz


def stored_audio(path: Path) -> AudioSegment:
    """A stored recording (Ogg Opus), decoded to 8 kHz mono 16-bit."""
    with path.open("rb") as handle:
        segment = AudioSegment.from_file(handle)
    return segment.set_channels(1).set_frame_rate(RATE).set_sample_width(2)


def tone_share(segment: AudioSegment, frequency: float) -> float:
    """How much of ``segment``'s energy is a tone of ``frequency`` Hz (0..1; a pure tone
    gives about 1, speech or silence about 0)."""
    samples = segment.get_array_of_samples()
    coefficient = 2 * math.cos(2 * math.pi * frequency / RATE)
    tone = total = 0.0
    for start in range(0, len(samples) - BLOCK + 1, BLOCK):
        previous = before = 0.0
        energy = 0.0
        for value in samples[start:start + BLOCK]:
            previous, before = value + coefficient * previous - before, previous
            energy += value * value
        power = previous * previous + before * before - coefficient * previous * before
        tone += power / (BLOCK / 2)
        total += energy
    return tone / total if total else 0.0


async def stored_recordings(line: Line, call_id: str, within: float = 30.0
                            ) -> dict[Kind, Recording]:
    """The call's recordings by kind, once the worker has finished with every one."""
    repository = RecordingRepository()

    async def probe() -> dict[Kind, Recording] | None:
        rows = await line.database.run(
            lambda c: repository.recordings_of_calls(c, [call_id]))
        if rows and all(r.state not in (State.PENDING, State.PROCESSING) for r in rows):
            return {row.kind: row for row in rows}
        return None

    return await eventually(f"the recordings of {call_id}", probe, within)
