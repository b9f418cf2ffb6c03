"""The line <-> call path process frames (telephony/callpath_wire.py) and the supervisor's
pure rules (telephony/callpath.py)."""

from __future__ import annotations

import os
import pickle
import struct

import pytest

from telephony.callpath import exit_reason, restart_delay
from telephony.callpath_wire import (
    CHILD_MESSAGES,
    MAX_FRAME,
    Answer,
    FigureBatch,
    Figures,
    FrameDecoder,
    Listening,
    LogLine,
    Start,
    SurveyCall,
    WireError,
    encode,
)
from telephony.settings import Settings


class Evil:
    """Stands for anything that is not a message: a child must not make the line build it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    messages = [Listening(4573), SurveyCall(1, 7, 2, finish=True, rating=5),
                Figures((("ivr", "completed", 3.5),), (("GOSUB", 1.2),), (0.001,)),
                LogLine("telephony.agi", 30, "one line", None, 1.0)]
    stream = b"".join(encode(message) for message in messages)
    decoder = FrameDecoder(CHILD_MESSAGES)
    got: list[object] = []
    for i in range(0, len(stream), 3):
        got += decoder.feed(stream[i:i + 3])
    assert got == messages


def test_the_line_sends_its_settings_as_they_are() -> None:
    settings = Settings(agi_port=41234, shutdown_drain_seconds=3.0)
    (start,) = FrameDecoder().feed(encode(Start(settings, 20, ("tests.support.x",))))
    assert start == Start(settings, 20, ("tests.support.x",))


def test_a_child_frame_holding_anything_else_is_refused() -> None:
    payload = pickle.dumps(Evil())
    with pytest.raises(WireError, match="not a message"):
        FrameDecoder(CHILD_MESSAGES).feed(struct.pack(">I", len(payload)) + payload)


def test_a_child_frame_holding_a_message_the_line_does_not_take_is_refused() -> None:
    # Answer is the line's to the child, never the child's to the line.
    with pytest.raises(WireError):
        FrameDecoder(CHILD_MESSAGES).feed(encode(Answer(1, True)))
    with pytest.raises(WireError, match="not a message"):
        FrameDecoder(CHILD_MESSAGES).feed(encode(7))


def test_a_frame_over_the_bound_is_refused_before_it_is_read() -> None:
    with pytest.raises(WireError, match="over the bound"):
        FrameDecoder(CHILD_MESSAGES).feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(WireError, match="over the frame bound"):
        encode(LogLine("x", 20, "y" * (MAX_FRAME + 1)))


def test_a_garbled_frame_is_refused() -> None:
    with pytest.raises(WireError, match="unreadable"):
        FrameDecoder(CHILD_MESSAGES).feed(struct.pack(">I", 3) + b"\x80\x05.")


def test_the_figure_batch_hands_over_what_it_gathered_once() -> None:
    batch = FigureBatch()
    batch.session_ended("ivr", "completed", 4.0)
    batch.command_answered("GOSUB", 2.5)
    batch.stalls.append(0.002)
    batch.dropped = 3
    assert batch.take() == Figures((("ivr", "completed", 4.0),), (("GOSUB", 2.5),), (0.002,),
                                   (), 3)
    assert batch.take() == Figures()


def test_a_failing_child_is_started_again_at_once_then_later_and_later() -> None:
    delays = [restart_delay(failures) for failures in range(1, 9)]
    assert delays[0] == 0.0
    assert delays == sorted(delays)
    assert delays[-1] == 10.0


def test_how_a_child_ended_reads_in_the_log() -> None:
    assert exit_reason(-9) == "was killed by SIGKILL"
    assert exit_reason(1) == "exited with status 1"
    assert exit_reason(None) == "ended"
