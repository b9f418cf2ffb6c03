"""The AMI frame decoder: any split of the stream, bounds, bad bytes, and panoramisk glue."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from unittest import mock

import pytest
from panoramisk.message import Message

from telephony.ami import framing
from telephony.ami.framing import AmiFrame, AmiFrameDecoder, AmiProtocol, RejectedFrame

FIXTURES = Path(__file__).parent.parent / "fixtures"

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
LOGIN_OK = b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n"
STATUS = (
    b"Event: Status\r\nPrivilege: Call\r\nChannel: PJSIP/carrier-00000003\r\n"
    b"Uniqueid: 1732347000.3\r\nVariable: IVR_LINE=112\r\nVariable: IVR_CHOICE=2\r\n"
    b"Variable: IVR_OUTCOME=\r\nActionID: a2\r\n\r\n"
)
HANGUP = (
    b"Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1732345678.123456\r\n"
    b"Uniqueid: 1732345678.0\r\nCause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
)
STREAM = BANNER + LOGIN_OK + STATUS + HANGUP


def frames_of(items: list[AmiFrame | RejectedFrame]) -> list[AmiFrame]:
    assert all(isinstance(item, AmiFrame) for item in items), items
    return [item for item in items if isinstance(item, AmiFrame)]


def decode_all(data: bytes, **bounds: int) -> list[AmiFrame | RejectedFrame]:
    return AmiFrameDecoder(**bounds).feed(data)


def test_whole_stream() -> None:
    decoder = AmiFrameDecoder()
    frames = frames_of(decoder.feed(STREAM))
    assert decoder.version == "9.0.0"
    assert [f.get("Response") or f.get("Event") for f in frames] == ["Success", "Status", "Hangup"]
    assert frames[2].get("cause-TXT") == "Normal Clearing"


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte_boundary(cut: int) -> None:
    decoder = AmiFrameDecoder()
    items = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
    assert items == decode_all(STREAM)
    assert decoder.version == "9.0.0"


def test_one_byte_at_a_time() -> None:
    decoder = AmiFrameDecoder()
    items = [item for i in range(len(STREAM)) for item in decoder.feed(STREAM[i : i + 1])]
    assert items == decode_all(STREAM)


def test_repeated_keys_keep_their_order() -> None:
    (frame,) = frames_of(decode_all(STATUS))
    assert frame.getall("Variable") == ["IVR_LINE=112", "IVR_CHOICE=2", "IVR_OUTCOME="]
    assert frame.get("variable") == "IVR_LINE=112"
    assert frame.getall("Absent") == []
    message = frame.to_message()
    # panoramisk's convention for a repeated header: a list.
    assert message["Variable"] == ["IVR_LINE=112", "IVR_CHOICE=2", "IVR_OUTCOME="]
    assert message.getdict("variable")["ivr_choice"] == "2"
    assert message.event == "Status"
    assert message.actionid == "a2"


def test_banner_only_at_the_start() -> None:
    decoder = AmiFrameDecoder()
    items = decoder.feed(HANGUP + BANNER + b"\r\n")
    assert decoder.version is None
    assert isinstance(items[1], RejectedFrame)
    assert "not 'Key: value'" in items[1].reason


def test_lone_newline_frames() -> None:
    lf = STREAM.replace(b"\r\n", b"\n")
    assert decode_all(lf) == decode_all(STREAM)
    mixed = LOGIN_OK.replace(b"\r\n\r\n", b"\n\n") + HANGUP.replace(b"\r\n\r\n", b"\r\n\n")
    assert len(frames_of(decode_all(mixed))) == 2


def test_blank_lines_between_frames_are_ignored() -> None:
    assert len(frames_of(decode_all(b"\r\n\n" + HANGUP + b"\r\n\r\n" + HANGUP))) == 2


def test_value_keeps_colons_and_key_without_space() -> None:
    (frame,) = frames_of(decode_all(b"Event: X\r\nData: a: b:c\r\nAccountCode:\r\nK:v\r\n\r\n"))
    assert frame.fields == (("Event", "X"), ("Data", "a: b:c"), ("AccountCode", ""), ("K", "v"))


def test_oversized_frame_is_skipped_then_next_frame_decodes() -> None:
    huge = b"Event: Flood\r\nData: " + b"x" * 5000 + b"\r\n\r\n"
    items = decode_all(huge + HANGUP, max_frame_bytes=1024)
    assert isinstance(items[0], RejectedFrame)
    assert "exceeds 1024 bytes" in items[0].reason
    assert frames_of(items[1:])[0].get("Event") == "Hangup"


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096])
def test_oversized_frame_never_buffered_whatever_the_chunks(chunk: int) -> None:
    decoder = AmiFrameDecoder(max_frame_bytes=1024)
    data = b"Event: Flood\r\nData: " + b"y" * 20000 + b"\r\n" + b"z" * 3000 + b"\r\n\r\n" + HANGUP
    items = []
    for i in range(0, len(data), chunk):
        items += decoder.feed(data[i : i + chunk])
        assert len(decoder._buffer) <= 1024 + chunk
    assert [type(item) for item in items] == [RejectedFrame, AmiFrame]


def test_skip_survives_a_crlf_split_across_feeds() -> None:
    decoder = AmiFrameDecoder(max_frame_bytes=256)
    items = decoder.feed(b"Event: Flood\r\nData: " + b"x" * 300 + b"\r")
    items += decoder.feed(b"\n\r")
    items += decoder.feed(b"\n" + HANGUP)
    assert [type(item) for item in items] == [RejectedFrame, AmiFrame]


def test_too_many_lines() -> None:
    many = b"Event: Flood\r\n" + b"K: v\r\n" * 50 + b"\r\n"
    items = decode_all(many + HANGUP, max_frame_lines=20)
    assert isinstance(items[0], RejectedFrame)
    assert "exceeds 20 lines" in items[0].reason
    assert isinstance(items[1], AmiFrame)


def test_invalid_utf8_is_escaped_and_the_frame_kept() -> None:
    """A carrier's Latin-1 caller name must not make the call invisible, and what it sent stays
    readable (escaped as the IVR and the queue_log reader escape it, not U+FFFD)."""
    bad = b"Event: Newchannel\r\nCallerIDName: caf\xe9\r\n\r\n"
    first, second = frames_of(decode_all(bad + HANGUP))
    assert first.get("CallerIDName") == "caf\\xe9"
    assert "invalid UTF-8 at byte 17 of line 2 escaped" in first.repaired
    assert second.get("Uniqueid") == "1732345678.0" and not second.repaired


def test_valid_utf8_is_kept() -> None:
    (frame,) = frames_of(
        decode_all("Event: X\r\nCallerIDName: Ibu Siti Nurhaliza ☎\r\n\r\n".encode())
    )
    assert frame.get("CallerIDName") == "Ibu Siti Nurhaliza ☎"


def test_frame_without_event_or_response_is_rejected() -> None:
    items = decode_all(b"Foo: bar\r\n\r\n" + HANGUP)
    assert isinstance(items[0], RejectedFrame)
    assert "neither Event nor Response" in items[0].reason
    assert isinstance(items[1], AmiFrame)


def test_command_output_lines() -> None:
    data = (
        b"Response: Success\r\nActionID: c1\r\nMessage: Command output follows\r\n"
        b"Output: Name/username   Host\r\nOutput: op1001/op1001   127.0.0.1\r\n\r\n"
    )
    (frame,) = frames_of(decode_all(data))
    message = frame.to_message()
    assert message.content == "Name/username   Host\nop1001/op1001   127.0.0.1"
    assert message.success


def test_legacy_response_follows() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c2\r\n"
        b"Name/username   Host\r\nop1001   127.0.0.1:5060 (dynamic)\r\n--END COMMAND--\r\n\r\n"
    )
    (frame,) = frames_of(decode_all(data))
    assert frame.getall("Output") == ["Name/username   Host", "op1001   127.0.0.1:5060 (dynamic)"]
    assert frame.to_message().content.endswith("(dynamic)")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("ami_*.txt")), ids=lambda p: p.name)
def test_every_fixture_decodes_cleanly(path: Path) -> None:
    data = path.read_bytes()
    items = decode_all(data)
    assert items, "empty transcript"
    assert not [item for item in items if isinstance(item, RejectedFrame)]
    crlf = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert decode_all(crlf) == items


class _Recorder(AmiProtocol):
    def __init__(self) -> None:
        self.handled: list[Message] = []

    def handle_message(self, message: Message) -> None:
        self.handled.append(message)


def test_protocol_hands_messages_to_panoramisk_and_logs_each_rejection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol = _Recorder()
    protocol.connection_made(mock.Mock())
    caplog.set_level(logging.WARNING, logger="telephony.ami")
    protocol.data_received(BANNER + LOGIN_OK[:20])
    protocol.data_received(LOGIN_OK[20:] + b"\xff\xfe\r\n\r\n" + b"garbage\r\n\r\n" + STATUS)
    assert protocol.version == "9.0.0"
    assert [m.response or m.event for m in protocol.handled] == ["Success", "Status"]
    rejected = [r for r in caplog.records if r.name == "telephony.ami"]
    assert len(rejected) == 2
    assert all(r.getMessage().startswith("rejected AMI frame: ") for r in rejected)


# -- the fast path agrees with the exact, line-by-line one ---------------------------------


class _ExactDecoder(AmiFrameDecoder):
    _fast = False  # every line through the line-by-line path the fast one must agree with


def _frames_of(blank_line: bytes) -> list[bytes]:
    """The frames of the transcripts whose lines end so (recorded: CRLF; synthetic: LF)."""
    return [
        part + blank_line
        for path in sorted(FIXTURES.glob("ami_*.txt"))
        for part in path.read_bytes().split(blank_line)
        if part.startswith((b"Event", b"Response")) and (b"\r" in part) == (blank_line[0] == 13)
    ]


_RECORDED = _frames_of(b"\r\n\r\n")
# What a hostile, broken or merely unusual stream may hold, beside Asterisk's own frames.
_ODD = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\r\n",
    b"\n\r\n",
    BANNER,
    b"Event: X\nK: v\n\n",
    b"Event: X\r\nK: v\n\r\n",
    b"Event: X\r\nK: v\r\n\n",
    b"Response: Follows\r\nPrivilege: Command\r\nline one\r\nline: two\r\n--END COMMAND--\r\n\r\n",
    b"Response: Follows\r\nOutput: a\r\n\r\n",
    b"Event: Newchannel\r\nCallerIDName: caf\xe9\r\n\r\n",
    b"Event: X\r\nK: \xff\xfe\r\nL: \xc3\r\n\r\n",
    "Événement: x\r\nEvent: é ☎\r\n\r\n".encode(),
    b" Event : X\r\n\r\n",
    b"Event :X\r\n\r\n",
    b"Event:X\r\nAccountCode:\r\n\r\n",
    b"Event: X\r\n: v\r\n\r\n",
    b"Event: X\r\nno colon here\r\n\r\n",
    b"garbage\r\n\r\n",
    b"Foo: bar\r\n\r\n",
    b"Event: \r\nResponse: Success\r\n\r\n",
    b"Event: \r\nFoo: bar\r\n\r\n",
    b"event: lower\r\nEVENT: Upper\r\nOutput: 1\r\noutput: 2\r\n\r\n",
    b"Event: a\rb\r\n\r\n",
    b"Event: X\r\r\n\r\n",
    b"Event: X\x00\r\nK\x01: v\r\n\r\n",
    b"Event: Flood\r\nData: " + b"x" * 300 + b"\r\n\r\n",
    b"Event: Flood\r\nData: " + b"y" * 300 + b"\r\n",
    b"Event: Lines\r\n" + b"K: v\r\n" * 12 + b"\r\n",
    b"Event: Just\r\n" + b"K: v\r\n" * 8 + b"\r\n",
    b"Event: X\r\nData: " + b"z" * 228 + b"\r\n\r\n",  # 256 bytes of lines: at the bound
    b"Event: X\r\nData: " + b"z" * 229 + b"\r\n\r\n",  # one over
]
_SYNTHETIC = _frames_of(b"\n\n")
_BYTES = b"\r\n: aE\xff\xc3"


def _random_stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 24)):
        roll = rng.random()
        if roll < 0.5:
            parts.append(rng.choice(_RECORDED))
        elif roll < 0.6:
            parts.append(rng.choice(_SYNTHETIC))
        elif roll < 0.9:
            parts.append(rng.choice(_ODD))
        else:
            parts.append(bytes(rng.choice(_BYTES) for _ in range(rng.randint(1, 12))))
    return b"".join(parts)


def _cut(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6))))
    if rng.random() < 0.05:
        cuts = list(range(1, len(data)))  # one byte at a time
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("bounds", [{}, {"max_frame_bytes": 256, "max_frame_lines": 10}])
def test_fast_path_gives_what_the_line_by_line_path_gives(
    bounds: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small line cache, so that it is also emptied and refilled along the way.
    monkeypatch.setattr(framing, "_MAX_PAIRS", 16)
    rng = random.Random(112)
    for _ in range(1500):
        data = _random_stream(rng)
        fast, exact = AmiFrameDecoder(**bounds), _ExactDecoder(**bounds)
        for piece in [*_cut(data, rng), b"\r\n\r\n"]:
            assert fast.feed(piece) == exact.feed(piece), data
            assert fast._buffer == exact._buffer
        assert fast.version == exact.version


def test_fast_path_decodes_the_recorded_transcripts_itself() -> None:
    """The recorded frames take the fast path (not the fallback) and come out the same."""
    for frame in _RECORDED:
        lines = frame.removesuffix(b"\r\n\r\n").decode().split("\r\n")
        fast = framing._decode_simple_frame(lines)
        assert fast is not None, frame
        assert [fast] == _ExactDecoder().feed(frame)


def _message_as_panoramisk_builds_it(frame: AmiFrame) -> Message:
    headers: dict[str, str | list[str]] = {}
    names: dict[str, str] = {}
    for key, value in frame.fields:
        name = names.setdefault(key.lower(), key)
        old = headers.get(name)
        headers[name] = value if old is None else [*([old] if isinstance(old, str) else old), value]
    return Message(headers, "\n".join(frame.getall("Output")))


def test_message_is_what_panoramisk_would_build() -> None:
    rng = random.Random(119)
    keys = ["Event", "event", "Response", "Output", "output", "Content", "Variable", "ActionID"]
    for _ in range(3000):
        fields = tuple(
            (rng.choice(keys), rng.choice(["", "a", "IVR_LINE=112", "b c"]))
            for _ in range(rng.randint(1, 6))
        )
        message = AmiFrame(fields).to_message()
        expected = _message_as_panoramisk_builds_it(AmiFrame(fields))
        assert isinstance(message, Message)
        assert list(message._store.items()) == list(expected._store.items())
        assert list(message.items()) == list(expected.items())
        assert list(message) == list(expected)
        assert (message.content, message.manager) == (expected.content, None)
        assert message == expected
