"""The FastAGI wire protocol, without I/O.

Reply and environment formats come from Asterisk's res/res_agi.c (setup_env, handle_getdata,
handle_streamfile, handle_setvariable, agi_handle_command, run_agi) and apps/app_stack.c.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from telephony.agi import protocol
from telephony.agi.protocol import (
    MAX_COMMAND_BYTES,
    AgiArgumentError,
    AgiDecodeError,
    AgiEnvironment,
    AgiEnvironmentKeyError,
    AgiEvent,
    AgiFrameTooLargeError,
    AgiHangup,
    AgiIncompleteError,
    AgiProtocolError,
    AgiReply,
    AgiSyntaxError,
    EnvironmentParser,
    ReplyParser,
    encode_command,
)

# What launch_netscript() and setup_env() write for AGI(agi://127.0.0.1:4573/ivr?lang=id,a b,c).
ENVIRONMENT = (
    b"agi_network: yes\n"
    b"agi_network_script: ivr?lang=id\n"
    b"agi_request: agi://127.0.0.1:4573/ivr?lang=id\n"
    b"agi_channel: PJSIP/caller-00000001\n"
    b"agi_language: id\n"
    b"agi_type: PJSIP\n"
    b"agi_uniqueid: 1732350000.17\n"
    b"agi_version: 22.1.0\n"
    b"agi_callerid: 081234567890\n"
    b"agi_calleridname: Budi Santoso\n"
    b"agi_callingpres: 0\n"
    b"agi_callingani2: 0\n"
    b"agi_callington: 0\n"
    b"agi_callingtns: 0\n"
    b"agi_dnid: 112\n"
    b"agi_rdnis: unknown\n"
    b"agi_context: emergency\n"
    b"agi_extension: 112\n"
    b"agi_priority: 3\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_threadid: 140234567890\n"
    b"agi_arg_1: a b\n"
    b"agi_arg_2: c\n"
    b"\n"
)


def parse_environment(data: bytes, **limits: int) -> EnvironmentParser:
    parser = EnvironmentParser(**limits)
    parser.feed(data)
    return parser


# --- environment -------------------------------------------------------------------------


def test_environment_typed_accessors() -> None:
    env = EnvironmentParser().feed(ENVIRONMENT)
    assert env is not None
    assert env.network is True
    assert env.network_script == "ivr?lang=id"
    assert env.script_path == "ivr"
    assert env.request == "agi://127.0.0.1:4573/ivr?lang=id"
    assert env.channel == "PJSIP/caller-00000001"
    assert env.uniqueid == "1732350000.17"
    assert env.callerid == "081234567890"
    assert env.calleridname == "Budi Santoso"
    assert env.dnid == "112"
    assert env.context == "emergency"
    assert env.extension == "112"
    assert env.priority == 3
    assert env.language == "id"
    assert env.enhanced is False
    assert env.get("agi_accountcode") == ""  # "agi_accountcode: \n" is an empty value
    assert env.get("agi_rdnis") == "unknown"
    assert env.arguments == ("a b", "c")
    assert env.get("agi_missing", "dflt") == "dflt"


def test_environment_is_immutable() -> None:
    env = EnvironmentParser().feed(ENVIRONMENT)
    assert env is not None
    with pytest.raises(TypeError):
        env.variables["agi_uniqueid"] = "forged"  # type: ignore[index]


def test_environment_without_script_routes_on_empty_path() -> None:
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1.2\n\n")
    assert env is not None
    assert env.script_path == ""
    assert env.priority is None
    assert env.arguments == ()


@pytest.mark.parametrize("priority", ["\u00b2", "\u0661", "3a", ""])
def test_a_priority_that_is_not_ascii_digits_is_none(priority: str) -> None:
    # int("\u00b2") raises: a superscript passes str.isdigit(), and the frame came from the wire.
    env = EnvironmentParser().feed(f"agi_priority: {priority}\n\n".encode())
    assert env is not None
    assert env.priority is None


def test_environment_tolerates_crlf() -> None:
    env = EnvironmentParser().feed(ENVIRONMENT.replace(b"\n", b"\r\n"))
    assert env is not None
    assert env.uniqueid == "1732350000.17"
    assert env.get("agi_accountcode") == ""


@pytest.mark.parametrize("data", [ENVIRONMENT, ENVIRONMENT.replace(b"\n", b"\r\n")])
def test_environment_split_at_every_byte(data: bytes) -> None:
    expected = EnvironmentParser().feed(data)
    for cut in range(len(data) + 1):
        parser = EnvironmentParser()
        first = parser.feed(data[:cut])
        second = parser.feed(data[cut:]) if first is None else first
        assert second == expected, cut


def test_environment_one_byte_at_a_time() -> None:
    parser = EnvironmentParser()
    results = [parser.feed(ENVIRONMENT[i : i + 1]) for i in range(len(ENVIRONMENT))]
    assert all(result is None for result in results[:-1])
    assert results[-1] is not None
    assert results[-1].uniqueid == "1732350000.17"


@pytest.mark.parametrize("crlf", [False, True])
def test_a_caller_id_that_is_not_utf8_is_escaped_not_refused(crlf: bool) -> None:
    """A carrier's number with bytes that are not UTF-8 (0813%C3%28..., which PJSIP unescapes)
    was refused with the whole session: no menu for that caller. It is escaped, as the AMI
    reader escapes it, so the IVR's caller id is the one the call is recorded under."""
    data = ENVIRONMENT.replace(b"agi_callerid: ", b"agi_callerid: 0813\xc3\x28")
    data = data.replace(b"\n", b"\r\n") if crlf else data
    for cut in (len(data), data.index(b"\xc3") + 1):  # whole, and cut inside the bad bytes
        parser = EnvironmentParser()
        env = parser.feed(data[:cut]) or parser.feed(data[cut:])
        assert env is not None and env.callerid.startswith("0813\\xc3(")
        assert env.uniqueid == "1732350000.17"


def test_environment_keeps_bytes_after_the_blank_line() -> None:
    parser = EnvironmentParser()
    env = parser.feed(b"agi_network: yes\n\nHANGUP\n200 res")
    assert env is not None
    assert parser.remainder == b"HANGUP\n200 res"
    assert parser.feed_eof() is env
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"agi_caller\xffid: 1\n\n", AgiEnvironmentKeyError, "is not an agi_* name"),
        (b"agi_network: yes\nagi_callerid:112\n\n", AgiSyntaxError, "line 2 has no ': '"),
        (b"hello world\n\n", AgiSyntaxError, "line 1 has no ': '"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", AgiSyntaxError, "line 1 has no ': '"),
        (b"Host: example\n\n", AgiEnvironmentKeyError, "key 'Host' is not an agi_* name"),
        (b"agi_Caller: x\n\n", AgiEnvironmentKeyError, "is not an agi_* name"),
        (b"agi_: x\n\n", AgiEnvironmentKeyError, "is not an agi_* name"),
        (b"agi_a: 1\nagi_a: 2\n\n", AgiEnvironmentKeyError, "line 2: duplicate key agi_a"),
    ],
)
def test_environment_rejects(data: bytes, error: type[AgiProtocolError], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)) as caught:
        parse_environment(data)
    assert "\n" not in str(caught.value)


def test_environment_rejects_an_oversized_line_before_its_newline() -> None:
    parser = EnvironmentParser(max_bytes=1024)
    parser.feed(b"agi_x: " + b"a" * 1000)
    with pytest.raises(AgiFrameTooLargeError, match="environment line longer than 1024 bytes"):
        parser.feed(b"a" * 100)


def test_environment_rejects_an_oversized_block_of_short_lines() -> None:
    block = b"".join(b"agi_k%d: %s\n" % (i, b"v" * 50) for i in range(100)) + b"\n"
    with pytest.raises(AgiFrameTooLargeError, match="environment block larger than 4096 bytes"):
        parse_environment(block, max_bytes=4096)


def test_environment_rejects_an_oversized_block_even_when_fed_whole() -> None:
    # The bound holds when the blank line arrives in the same chunk as the excess.
    block = b"".join(b"agi_k%d: v\n" % i for i in range(200)) + b"\n"
    with pytest.raises(AgiFrameTooLargeError):
        parse_environment(block, max_bytes=1024)


def test_environment_rejects_a_megabyte_header() -> None:
    parser = EnvironmentParser()
    with pytest.raises(AgiFrameTooLargeError):
        for _ in range(64):
            parser.feed(b"agi_x: " + b"a" * 16384)


def test_environment_rejects_too_many_lines() -> None:
    block = b"".join(b"agi_k%d: v\n" % i for i in range(20)) + b"\n"
    with pytest.raises(AgiFrameTooLargeError, match="longer than 10 lines"):
        parse_environment(block, max_lines=10)


def test_environment_block_exactly_at_the_bound_is_accepted() -> None:
    line = b"agi_x: " + b"a" * (1024 - len(b"agi_x: \n") - 1) + b"\n"
    assert len(line + b"\n") == 1024
    assert EnvironmentParser(max_bytes=1024).feed(line + b"\n") is not None


@pytest.mark.parametrize("data", [b"", b"agi_network: yes\n", b"agi_network: yes\nagi_req"])
def test_environment_eof_mid_block(data: bytes) -> None:
    parser = parse_environment(data)
    with pytest.raises(AgiIncompleteError, match="before the blank line"):
        parser.feed_eof()


def test_environment_random_garbage_never_escapes_as_another_error() -> None:
    rng = random.Random(112)
    for _ in range(500):
        garbage = rng.randbytes(rng.randrange(1, 300))
        parser = EnvironmentParser(max_bytes=1024)
        try:
            if parser.feed(garbage) is None:
                parser.feed_eof()
        except AgiProtocolError as exc:
            assert "\n" not in str(exc)


# --- replies -----------------------------------------------------------------------------

REPLIES: list[tuple[bytes, AgiEvent]] = [
    (b"200 result=0\n", AgiReply(200, "200 result=0", result="0")),
    (b"200 result=1\n", AgiReply(200, "200 result=1", result="1")),
    (b"200 result=-1\n", AgiReply(200, "200 result=-1", result="-1")),
    # GET DATA: the digits, a timeout with nothing pressed, a timeout after some digits,
    # and "#" pressed first (the terminator is not stored: an empty result, no "(timeout)").
    (b"200 result=1\n", AgiReply(200, "200 result=1", result="1")),
    (b"200 result=*\n", AgiReply(200, "200 result=*", result="*")),
    (
        b"200 result= (timeout)\n",
        AgiReply(200, "200 result= (timeout)", result="", data="timeout"),
    ),
    (
        b"200 result=12 (timeout)\n",
        AgiReply(200, "200 result=12 (timeout)", result="12", data="timeout"),
    ),
    (b"200 result=\n", AgiReply(200, "200 result=", result="")),
    # STREAM FILE: ASCII code of the digit pressed (49 is "1"), 0 if none, with endpos.
    (
        b"200 result=0 endpos=18400\n",
        AgiReply(200, "200 result=0 endpos=18400", result="0", endpos=18400),
    ),
    (
        b"200 result=49 endpos=3200\n",
        AgiReply(200, "200 result=49 endpos=3200", result="49", endpos=3200),
    ),
    (
        b"200 result=-1 endpos=0\n",
        AgiReply(200, "200 result=-1 endpos=0", result="-1", endpos=0),
    ),
    # RECORD FILE / WAIT FOR DIGIT style data with endpos after it.
    (
        b"200 result=-1 (hangup) endpos=800\n",
        AgiReply(200, "200 result=-1 (hangup) endpos=800", result="-1", data="hangup", endpos=800),
    ),
    (
        b"200 result=0 (timeout) endpos=16000\n",
        AgiReply(
            200, "200 result=0 (timeout) endpos=16000", result="0", data="timeout", endpos=16000
        ),
    ),
    # GET VARIABLE prints "(%s)" verbatim: parentheses and "endpos=" inside belong to the data.
    (
        b"200 result=1 (a) (b endpos=3)\n",
        AgiReply(200, "200 result=1 (a) (b endpos=3)", result="1", data="a) (b endpos=3"),
    ),
    (b"200 result=1 ()\n", AgiReply(200, "200 result=1 ()", result="1", data="")),
    # GOSUB's final reply carries free text.
    (
        b"200 result=0 Gosub complete (abnormal exit)\n",
        AgiReply(
            200,
            "200 result=0 Gosub complete (abnormal exit)",
            result="0",
            data="Gosub complete (abnormal exit)",
        ),
    ),
    (
        b"510 Invalid or unknown command\n",
        AgiReply(510, "510 Invalid or unknown command"),
    ),
    (
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        AgiReply(511, "511 Command Not Permitted on a dead channel or intercept routine"),
    ),
    (
        b"520 Invalid command syntax.  Proper usage not available.\n",
        AgiReply(520, "520 Invalid command syntax.  Proper usage not available."),
    ),
    (
        b"503 result=-2 Memory allocation failure\n",
        AgiReply(503, "503 result=-2 Memory allocation failure"),
    ),
    (b"HANGUP\n", AgiHangup()),
]

USAGE_BLOCK = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
    b"   Stream the given file, and receive DTMF data.\n"
    b"\n"
    b"520 End of proper usage.\n"
)
USAGE_REPLY = AgiReply(520, USAGE_BLOCK.decode().rstrip("\n"))


@pytest.mark.parametrize(("data", "expected"), REPLIES)
def test_reply_forms(data: bytes, expected: AgiEvent) -> None:
    assert ReplyParser().feed(data) == [expected]
    assert ReplyParser().feed(data.replace(b"\n", b"\r\n")) == [expected]


@pytest.mark.parametrize(("data", "expected"), REPLIES)
def test_reply_split_at_every_byte(data: bytes, expected: AgiEvent) -> None:
    for cut in range(len(data) + 1):
        parser = ReplyParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == [expected], cut
        parser.feed_eof()


def test_reply_ok_flag() -> None:
    assert AgiReply(200, "200 result=-1", result="-1").ok
    assert not AgiReply(510, "510 Invalid or unknown command").ok


def test_intermediate_100_is_skipped() -> None:
    parser = ReplyParser()
    assert parser.feed(b"100 result=0 Trying...\n") == []
    assert parser.feed(b"200 result=0 Gosub complete\n") == [
        AgiReply(200, "200 result=0 Gosub complete", result="0", data="Gosub complete")
    ]


def test_multiline_usage_is_one_reply() -> None:
    assert ReplyParser().feed(USAGE_BLOCK) == [USAGE_REPLY]


def test_multiline_usage_split_at_every_byte() -> None:
    stream = USAGE_BLOCK + b"200 result=1\n"
    for cut in range(len(stream) + 1):
        parser = ReplyParser()
        events = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert events == [USAGE_REPLY, AgiReply(200, "200 result=1", result="1")], cut


def test_hangup_then_dead_channel_refusal() -> None:
    # run_agi() sends HANGUP when the caller leaves; later commands answer 511.
    data = b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
    events = ReplyParser().feed(data)
    assert events[0] == AgiHangup()
    assert isinstance(events[1], AgiReply)
    assert events[1].code == 511


def test_every_reply_in_one_stream_split_at_every_byte() -> None:
    stream = b"".join(data for data, _ in REPLIES) + USAGE_BLOCK
    expected = [event for _, event in REPLIES] + [USAGE_REPLY]
    for cut in range(len(stream) + 1):
        parser = ReplyParser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == expected, cut
    parser = ReplyParser()
    assert [e for i in range(len(stream)) for e in parser.feed(stream[i : i + 1])] == expected


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"200 result=\xff\n", AgiDecodeError, "invalid UTF-8"),
        (b"hello\n", AgiSyntaxError, "not an AGI reply: 'hello'"),
        (b"200 ok\n", AgiSyntaxError, "200 reply without result="),
        (b"200-result=1\n", AgiSyntaxError, "unexpected continuation line"),
        (b"300 result=1\n", AgiSyntaxError, "unexpected AGI status 300"),
        (b"hangup\n", AgiSyntaxError, "not an AGI reply"),
        (b"20 result=1\n", AgiSyntaxError, "not an AGI reply"),
    ],
)
def test_reply_rejects(data: bytes, error: type[AgiProtocolError], message: str) -> None:
    with pytest.raises(error, match=message):
        ReplyParser().feed(data)


def test_reply_line_is_bounded() -> None:
    parser = ReplyParser(max_line_bytes=1024)
    parser.feed(b"200 result=1 (" + b"x" * 1000)
    with pytest.raises(AgiFrameTooLargeError, match="reply line longer than 1024 bytes"):
        parser.feed(b"x" * 100)


def test_reply_line_with_newline_beyond_the_bound_is_rejected() -> None:
    with pytest.raises(AgiFrameTooLargeError):
        ReplyParser(max_line_bytes=1024).feed(b"200 result=1 (" + b"x" * 2000 + b")\n")


def test_usage_block_is_bounded_in_bytes() -> None:
    parser = ReplyParser(max_line_bytes=1024)
    parser.feed(b"520-Invalid command syntax.  Proper usage follows:\n")
    with pytest.raises(AgiFrameTooLargeError, match="usage block larger than 1024 bytes"):
        for _ in range(20):
            parser.feed(b"u" * 100 + b"\n")


def test_usage_block_is_bounded_in_lines() -> None:
    parser = ReplyParser(max_usage_lines=5)
    parser.feed(b"520-Invalid command syntax.  Proper usage follows:\n")
    with pytest.raises(AgiFrameTooLargeError, match="longer than 5 lines"):
        parser.feed(b"\n" * 10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"200 resu", "middle of a reply line"),
        (b"520-Invalid command syntax.  Proper usage follows:\n Usage", "520 usage block"),
        (b"520-Invalid command syntax.  Proper usage follows:\n", "520 usage block"),
    ],
)
def test_reply_eof_mid_frame(data: bytes, message: str) -> None:
    parser = ReplyParser()
    assert parser.feed(data) == []
    with pytest.raises(AgiIncompleteError, match=message):
        parser.feed_eof()


def test_reply_eof_between_replies_is_clean() -> None:
    parser = ReplyParser()
    parser.feed(b"200 result=0\n")
    parser.feed_eof()


# --- command encoding --------------------------------------------------------------------


def asterisk_parse_args(line: str) -> list[str]:
    """A port of parse_args() in Asterisk's res/res_agi.c, branch for branch."""
    words: list[list[str]] = []
    quoted = escaped = False
    whitespace = True
    for char in line:
        literal = False
        if char == '"':
            if escaped:
                literal = True
            else:
                quoted = not quoted
                if quoted and whitespace:
                    # Starting a quote right after whitespace starts a word, even an empty one.
                    words.append([])
                    whitespace = False
                escaped = False
        elif char in " \t":
            if not quoted and not escaped:
                whitespace = True
            else:
                literal = True
        elif char == "\\":
            if escaped:
                literal = True
            else:
                escaped = True
        else:
            literal = True
        if literal:
            if whitespace:
                words.append([])
                whitespace = False
            words[-1].append(char)
            escaped = False
    return ["".join(word) for word in words]


def decode_command(line: bytes) -> list[str]:
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    return asterisk_parse_args(line[:-1].decode("utf-8"))


def test_parse_args_port_matches_asterisk_examples() -> None:
    assert asterisk_parse_args('SET VARIABLE X "a b"') == ["SET", "VARIABLE", "X", "a b"]
    assert asterisk_parse_args('STREAM FILE hello ""') == ["STREAM", "FILE", "hello", ""]
    assert asterisk_parse_args('A "x\\"y" \\\\z') == ["A", 'x"y', "\\z"]
    assert asterisk_parse_args("A  b\tc") == ["A", "b", "c"]


def test_encode_simple_command() -> None:
    assert encode_command("GET DATA", "siaga112/welcome", "5000", "1") == (
        b"GET DATA siaga112/welcome 5000 1\n"
    )
    assert encode_command("ANSWER") == b"ANSWER\n"


def test_encode_quotes_only_when_needed() -> None:
    assert encode_command("STREAM FILE", "beep", "") == b'STREAM FILE beep ""\n'
    assert encode_command("SET VARIABLE", "X", "a b") == b'SET VARIABLE X "a b"\n'
    assert encode_command("SET VARIABLE", "X", 'say "hi"\\') == (
        b'SET VARIABLE X "say \\"hi\\"\\\\"\n'
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "plain",
        "two words",
        'a"b',
        '"',
        '""',
        "\\",
        "\\\\",
        'end\\"',
        "tab\there",
        '" EXEC Dial PJSIP/evil "',
        'x" "y',
        "Jalan Merdeka No. 5, RT 02/RW 03",
        "Ibu Siti (ibu) — 081234",
        "${SHELL(id)}",
    ],
)
def test_encoded_argument_is_exactly_one_asterisk_argument(value: str) -> None:
    line = encode_command("SET VARIABLE", "CALLER_NOTE", value)
    assert decode_command(line) == ["SET", "VARIABLE", "CALLER_NOTE", value]


def test_random_arguments_round_trip_through_parse_args() -> None:
    rng = random.Random(119)
    alphabet = ' \t"\\abc01#*()$;,é'
    for _ in range(2000):
        args = [
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
            for _ in range(rng.randrange(0, 4))
        ]
        assert decode_command(encode_command("SET VARIABLE", *args)) == ["SET", "VARIABLE", *args]


@pytest.mark.parametrize(
    "value",
    [
        "x\nEXEC Dial PJSIP/evil",
        'x"\nEXEC Dial PJSIP/evil',
        "x\rEXEC Dial PJSIP/evil",
        "x\r\nHANGUP",
        "x\0y",
        "\n",
    ],
)
def test_injection_of_a_second_command_is_refused(value: str) -> None:
    with pytest.raises(AgiArgumentError, match="argument 2 contains CR, LF or NUL"):
        encode_command("SET VARIABLE", "CALLER_NOTE", value)


def test_argument_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_command("STREAM FILE", "a\nb", "")


@pytest.mark.parametrize(
    "verb", ["", "get data", "GET  DATA", "GET DATA\nHANGUP", "EXEC;", " ANSWER", "ANSWER "]
)
def test_verb_must_be_a_plain_command_name(verb: str) -> None:
    with pytest.raises(AgiArgumentError, match="not an AGI command name"):
        encode_command(verb)


def test_command_length_is_bounded_by_asterisks_buffer() -> None:
    prefix = len(b"SET VARIABLE X \n")
    assert len(encode_command("SET VARIABLE", "X", "v" * (MAX_COMMAND_BYTES - prefix))) == (
        MAX_COMMAND_BYTES
    )
    with pytest.raises(AgiArgumentError, match="longer than 8191 bytes"):
        encode_command("SET VARIABLE", "X", "v" * (MAX_COMMAND_BYTES - prefix + 1))


def test_command_word_count_is_bounded() -> None:
    encode_command("EXEC", *(["a"] * 126))
    with pytest.raises(AgiArgumentError, match="more than 127 words"):
        encode_command("EXEC", *(["a"] * 127))


def test_unencodable_argument_is_refused() -> None:
    with pytest.raises(AgiArgumentError, match="cannot be encoded"):
        encode_command("SET VARIABLE", "X", "\ud800")


# --- the recorded Asterisk 22 transcript --------------------------------------------------

TRANSCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "agi_session.txt"


def load_transcript() -> list[list[tuple[str, bytes]]]:
    """Sessions of ("<" Asterisk -> server | ">" server -> Asterisk, exact wire bytes)."""
    sessions: list[list[tuple[str, bytes]]] = []
    for line in TRANSCRIPT.read_bytes().splitlines(keepends=True):
        if line.startswith(b"# Session"):
            sessions.append([])
        elif line[:2] in (b"< ", b"> "):
            sessions[-1].append((line[:1].decode(), line[2:]))
    return sessions


def from_asterisk(session: list[tuple[str, bytes]]) -> bytes:
    return b"".join(data for direction, data in session if direction == "<")


@pytest.fixture(scope="module")
def transcript() -> list[list[tuple[str, bytes]]]:
    return load_transcript()


def test_transcript_environments(transcript: list[list[tuple[str, bytes]]]) -> None:
    for session in transcript:
        parser = EnvironmentParser()
        env = parser.feed(from_asterisk(session))
        assert env is not None
        assert env.network
        assert env.script_path == "ivr"
        assert env.uniqueid
        assert env.calleridname == "unknown"
        assert env.get("agi_accountcode") == ""
        assert env.context == "siaga112-ivr"


def test_transcript_replies_split_at_every_byte(
    transcript: list[list[tuple[str, bytes]]],
) -> None:
    first, second = transcript[0], transcript[1]
    expected: list[list[AgiEvent]] = [
        [
            AgiReply(200, "200 result=0", result="0"),
            AgiReply(200, "200 result=1", result="1"),
            AgiReply(200, "200 result= (timeout)", result="", data="timeout"),
            AgiReply(200, "200 result=50 endpos=10560", result="50", endpos=10560),
            AgiReply(200, "200 result=1", result="1"),
            AgiReply(200, "200 result=-1", result="-1"),
            AgiHangup(),
            AgiHangup(),
        ],
        [AgiHangup(), AgiHangup()],
    ]
    for session, events in zip((first, second), expected, strict=True):
        env_parser = EnvironmentParser()
        assert env_parser.feed(from_asterisk(session)) is not None
        stream = env_parser.remainder
        for cut in range(len(stream) + 1):
            parser = ReplyParser()
            assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == events, cut
            parser.feed_eof()


def test_transcript_commands_mean_the_same_as_ours(
    transcript: list[list[tuple[str, bytes]]],
) -> None:
    verbs = ("GET DATA", "STREAM FILE", "SET VARIABLE", "ANSWER")
    commands = [data for direction, data in transcript[0] if direction == ">"]
    assert len(commands) == 6
    for wire in commands:
        words = decode_command(wire)
        verb = next(v for v in verbs if words[: len(v.split())] == v.split())
        ours = encode_command(verb, *words[len(verb.split()) :])
        assert decode_command(ours) == words


# --- the shortcuts agree with the line-by-line parsing ------------------------------------


class _LineByLineEnvironment(EnvironmentParser):
    def _add_lines_at_once(self, block: list[bytes]) -> bool:
        return False  # every line through _add_line, the parsing the shortcut must agree with


class _Forgetful(dict):  # type: ignore[type-arg]
    """A memo that never remembers: every reply and command is parsed or encoded afresh."""

    def __setitem__(self, key: object, value: object) -> None:
        pass


def _outcome(parse: Callable[[], object]) -> object:
    try:
        return parse()
    except AgiProtocolError as exc:
        return (type(exc), str(exc))


_ENV_LINES = [
    *ENVIRONMENT.split(b"\n")[:-2],
    b"agi_network: again",
    b"agi_Bad: x",
    b"network: x",
    b"agi_x:novalue",
    b"agi_y: \xff\xfe",
    b"agi_cr: a\rb",
    b"agi_crlf: v\r",
    b"agi_long: " + b"v" * 600,
    b"\r",
    b"",
]


def test_environment_at_once_gives_what_line_by_line_gives() -> None:
    rng = random.Random(4573)
    for _ in range(3000):
        lines = rng.sample(_ENV_LINES, rng.randint(0, 8))
        data = b"\n".join(lines) + rng.choice([b"\n\n", b"\n", b"", b"\r\n\r\n", b"\n\n200 r"])
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 3))))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        limits = rng.choice([{}, {"max_bytes": 700, "max_lines": 5}, {"max_lines": 3}])
        at_once, line_by_line = EnvironmentParser(**limits), _LineByLineEnvironment(**limits)
        for piece in pieces:
            got = _outcome(lambda: at_once.feed(piece))  # noqa: B023
            assert got == _outcome(lambda: line_by_line.feed(piece)), data  # noqa: B023
            if not isinstance(got, AgiEnvironment | None):
                break  # the parser raised: the session is over
            if got is not None:
                assert at_once.remainder == line_by_line.remainder
                break


def test_remembered_replies_are_what_parsing_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [data for data, _ in REPLIES] + [USAGE_BLOCK, b"100 result=0 Trying...\n"]
    lines += [b"bogus\n", b"200 nothing\n", b"\xff\n", b"600 result=1\n"]
    rng = random.Random(112)
    streams = [b"".join(rng.choices(lines, k=rng.randint(1, 6))) for _ in range(2000)]
    streams = [s.replace(b"\n", b"\r\n") if rng.random() < 0.3 else s for s in streams]
    remembering = [_outcome(lambda: ReplyParser().feed(s)) for s in streams]  # noqa: B023
    monkeypatch.setattr(protocol, "_replies", _Forgetful())
    assert remembering == [_outcome(lambda: ReplyParser().feed(s)) for s in streams]  # noqa: B023


def test_remembered_commands_are_what_encoding_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["GET DATA", "SET VARIABLE", "get data", "", "X", 'a "b"', "a\\b", "\n", "é", " "]
    rng = random.Random(119)
    calls = [rng.choices(words, k=rng.randint(1, 4)) for _ in range(2000)]
    remembering = [_outcome(lambda: encode_command(*c)) for c in calls]  # noqa: B023
    monkeypatch.setattr(protocol, "_commands", _Forgetful())
    assert remembering == [_outcome(lambda: encode_command(*c)) for c in calls]  # noqa: B023
