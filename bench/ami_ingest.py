"""AMI ingest speed: panoramisk's parser against ours, and ours with the call tracker.

One byte stream is built from the recorded transcripts of ``tests/fixtures`` (the real
Asterisk 22 lab's bytes: ``ami_call_answered``, ``ami_call_abandoned``, ``ami_resync``),
repeated until it holds ``--frames`` frames; each repetition's ``Uniqueid``/``Linkedid``
values are renumbered so that every repetition is new calls to the tracker, as a busy line's
stream would be. The stream is fed in ``--chunk``-byte pieces (a socket read under a backlog)
to each contender in turn, ``--rounds`` times, interleaved so that a neighbour's load on a
shared machine falls on all of them alike. Everything runs on one core (pinned when the OS
allows).

Contenders, each from bytes to what its consumer gets:

- ``panoramisk``: panoramisk 1.4's ``AMIProtocol.data_received`` (decode, split on the blank
  line, ``Message.from_line``), messages collected where ``handle_message`` would get them;
- ``decoder``: :class:`~telephony.ami.framing.AmiFrameDecoder` alone, bytes to ``AmiFrame``;
- ``protocol``: our :class:`~telephony.ami.framing.AmiProtocol.data_received`, bytes to
  panoramisk messages, as the listener runs it (decoder plus the conversion);
- ``protocol+tracker``: the same, every event then given to
  :meth:`~telephony.ami.tracker.CallTracker.handle`, as the listener's consumer does.

Frames counted are events and responses alike (responses are 3% of the stream).

Run: ``python bench/ami_ingest.py [--frames 200000] [--rounds 5] [--chunk 65536]``
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from telephony.ami.framing import AmiFrame, AmiFrameDecoder, AmiProtocol
from telephony.ami.tracker import CallTracker

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
RECORDED = ("ami_call_answered.txt", "ami_call_abandoned.txt", "ami_resync.txt")
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# A Uniqueid/Linkedid ("1795427806.0") ends its line; a Timestamp has six decimals.
_CHANNEL_ID = re.compile(rb"(?<=: )([0-9]{10})\.([0-9]{1,3})(?=\r\n)")


def build_stream(frames: int) -> tuple[bytes, int]:
    """The byte stream and the number of frames in it."""
    cycle: list[bytes] = []
    for name in RECORDED:
        data = (FIXTURES / name).read_bytes()
        cycle.append(data.removeprefix(data[: data.index(b"\n") + 1]))  # its banner line
    one = b"".join(cycle)
    per_cycle = len(AmiFrameDecoder().feed(BANNER + one))
    parts = [BANNER]
    for repetition in range(-(-frames // per_cycle)):

        def renumbered(match: re.Match[bytes], shift: int = 1000 * repetition) -> bytes:
            return b"%s.%d" % (match[1], int(match[2]) + shift)

        parts.append(_CHANNEL_ID.sub(renumbered, one))
    return b"".join(parts), per_cycle * (len(parts) - 1)


def chunks(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


# Each consumer counts what it gets and lets it go, as the listener does: holding 200,000
# messages would time the garbage collector walking them instead of the parsers.


class _PanoramiskCounter(AMIProtocol):  # type: ignore[misc]  # panoramisk ships no hints
    def handle_message(self, message: Message) -> None:
        self.handled += 1


class _OursCounter(AmiProtocol):
    def handle_message(self, message: Message) -> None:
        self.handled += 1


class _OursTracked(AmiProtocol):
    def handle_message(self, message: Message) -> None:
        if "event" in message:
            self.facts += len(self.tracker.handle(message))
        self.handled += 1


def _started(protocol: Any) -> Any:
    protocol.connection_made(mock.Mock())
    protocol.handled = 0
    return protocol


def run_panoramisk(pieces: list[bytes]) -> int:
    protocol = _started(_PanoramiskCounter())
    for piece in pieces:
        protocol.data_received(piece)
    return int(protocol.handled)


def run_decoder(pieces: list[bytes]) -> int:
    decoder = AmiFrameDecoder()
    count = 0
    for piece in pieces:
        items = decoder.feed(piece)
        count += len(items)
        if not all(type(item) is AmiFrame for item in items):
            raise SystemExit(f"the decoder rejected a recorded frame: {items!r}"[:300])
    return count


def run_protocol(pieces: list[bytes]) -> int:
    protocol = _started(_OursCounter())
    for piece in pieces:
        protocol.data_received(piece)
    return int(protocol.handled)


def run_tracked(pieces: list[bytes]) -> int:
    protocol = _started(_OursTracked())
    protocol.tracker = CallTracker()
    protocol.facts = 0
    for piece in pieces:
        protocol.data_received(piece)
    if not protocol.facts:
        raise SystemExit("the tracker found no facts in the recorded calls")
    return int(protocol.handled)


CONTENDERS: dict[str, Callable[[list[bytes]], int]] = {
    "panoramisk": run_panoramisk,
    "decoder": run_decoder,
    "protocol": run_protocol,
    "protocol+tracker": run_tracked,
}


def pin_one_core() -> str:
    """Run on one core, the first this process may use; says which."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=65536, help="bytes per data_received")
    parser.add_argument("--only", nargs="*", choices=sorted(CONTENDERS), help="a subset")
    args = parser.parse_args()
    pinned = pin_one_core()
    stream, frames = build_stream(args.frames)
    pieces = chunks(stream, args.chunk)
    names = args.only or list(CONTENDERS)
    rates: dict[str, list[float]] = {name: [] for name in names}
    print(
        f"{frames:,} frames, {len(stream) / 1e6:.1f} MB in {args.chunk}-byte pieces, "
        f"{args.rounds} rounds, {pinned}, Python {sys.version.split()[0]}"
    )
    for _ in range(args.rounds):
        for name in names:
            gc.collect()
            started = time.perf_counter()
            count = CONTENDERS[name](pieces)
            elapsed = time.perf_counter() - started
            if count != frames:
                raise SystemExit(f"{name} gave {count} frames, expected {frames}")
            rates[name].append(frames / elapsed)
    print(f"{'contender':<18}{'min':>10}{'median':>10}{'max':>10}  frames/s")
    for name in names:
        values = rates[name]
        print(
            f"{name:<18}{min(values):>10,.0f}{statistics.median(values):>10,.0f}"
            f"{max(values):>10,.0f}"
        )
    if "panoramisk" in rates:
        base = rates["panoramisk"]
        for name in names:
            if name == "panoramisk":
                continue
            # Per round: both ran seconds apart, under the same neighbours.
            ratios = [ours / theirs for ours, theirs in zip(rates[name], base, strict=True)]
            print(
                f"{name} / panoramisk: min {min(ratios):.2f}x, "
                f"median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x"
            )


if __name__ == "__main__":
    main()
