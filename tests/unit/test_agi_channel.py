"""AgiChannel over a scripted fake session: command building and reply mapping only."""

from __future__ import annotations

import pytest

from ivr.channel import CallerHungUp, Channel, ChannelError
from ivr.keys import Answer, KeyProgram, key_program
from ivr.menu import load_menu
from telephony.agi.channel import AgiChannel
from telephony.agi.protocol import AgiArgumentError, AgiReply, encode_command
from telephony.agi.server import AgiHungUpError, AgiSessionError


def ok(result: str, data: str | None = None, endpos: int | None = None) -> AgiReply:
    line = f"200 result={result}"
    if data is not None:
        line += f" ({data})"
    if endpos is not None:
        line += f" endpos={endpos}"
    return AgiReply(200, line, result=result, data=data, endpos=endpos)


NOT_PERMITTED = AgiReply(511, "511 Command Not Permitted on a dead channel or intercept routine")
INVALID = AgiReply(510, "510 Invalid or unknown command")
USAGE = AgiReply(
    520,
    "520-Invalid command syntax.  Proper usage follows:\n Usage: GET DATA\n"
    "520 End of proper usage.",
)


class FakeSession:
    """Answers each command with the next scripted reply or exception; records commands."""

    def __init__(self, *script: AgiReply | Exception) -> None:
        self.script = list(script)
        self.commands: list[tuple[str, ...]] = []
        self.session_bound: list[bool] = []

    async def command(self, verb: str, *arguments: str, session_bound: bool = False) -> AgiReply:
        encode_command(verb, *arguments)  # the real session refuses unsafe arguments likewise
        self.commands.append((verb, *arguments))
        self.session_bound.append(session_bound)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def channel_for(*script: AgiReply | Exception) -> tuple[AgiChannel, FakeSession]:
    session = FakeSession(*script)
    return AgiChannel(session), session


def test_agi_channel_is_an_ivr_channel() -> None:
    channel: Channel = AgiChannel(FakeSession())
    assert channel is not None


# --- ask_digit ---------------------------------------------------------------------------


@pytest.mark.parametrize("digit", ["0", "1", "9", "*", "A", "D"])
async def test_ask_digit_returns_the_digit(digit: str) -> None:
    channel, session = channel_for(ok(digit))
    assert await channel.ask_digit(["siaga112/menu"], 5000) == digit
    assert session.commands == [("GET DATA", "siaga112/menu", "5000", "1")]


async def test_ask_digit_timeout_is_none() -> None:
    channel, _ = channel_for(ok("", "timeout"))
    assert await channel.ask_digit(["siaga112/menu"], 3000) is None


async def test_ask_digit_hash_arrives_as_an_empty_result_without_timeout() -> None:
    channel, _ = channel_for(ok(""))
    assert await channel.ask_digit(["siaga112/menu"], 3000) == "#"


async def test_ask_digit_minus_one_is_a_hangup() -> None:
    channel, _ = channel_for(ok("-1"))
    with pytest.raises(CallerHungUp, match="result=-1"):
        await channel.ask_digit(["siaga112/menu"], 3000)


@pytest.mark.parametrize("result", ["12", "x", "-2", "49"])
async def test_ask_digit_unexpected_result(result: str) -> None:
    channel, _ = channel_for(ok(result))
    with pytest.raises(ChannelError, match="unexpected reply") as caught:
        await channel.ask_digit(["siaga112/menu"], 3000)
    assert not isinstance(caught.value, CallerHungUp)


ANY_DIGIT = "0123456789*#ABCD"


async def test_ask_digit_plays_leading_prompts_interruptibly_then_waits_on_the_last() -> None:
    channel, session = channel_for(ok("0", endpos=8000), ok("0", endpos=4000), ok("", "timeout"))
    assert await channel.ask_digit(["siaga112/welcome", "siaga112/p2", "siaga112/menu"], 4000) is (
        None
    )
    assert session.commands == [
        ("STREAM FILE", "siaga112/welcome", ANY_DIGIT),
        ("STREAM FILE", "siaga112/p2", ANY_DIGIT),
        ("GET DATA", "siaga112/menu", "4000", "1"),
    ]


@pytest.mark.parametrize(
    ("ascii_code", "digit"), [("49", "1"), ("48", "0"), ("42", "*"), ("35", "#")]
)
async def test_ask_digit_barge_in_on_a_leading_prompt_stops_there(
    ascii_code: str, digit: str
) -> None:
    channel, session = channel_for(ok(ascii_code, endpos=3200))
    assert await channel.ask_digit(["siaga112/welcome", "siaga112/menu"], 4000) == digit
    assert session.commands == [("STREAM FILE", "siaga112/welcome", ANY_DIGIT)]


async def test_ask_digit_hangup_on_a_leading_prompt() -> None:
    channel, _ = channel_for(ok("-1", endpos=0))
    with pytest.raises(CallerHungUp, match="STREAM FILE 'siaga112/welcome'"):
        await channel.ask_digit(["siaga112/welcome", "siaga112/menu"], 4000)


@pytest.mark.parametrize("result", ["10", "x", "-2"])
async def test_ask_digit_unexpected_result_on_a_leading_prompt(result: str) -> None:
    channel, _ = channel_for(ok(result))
    with pytest.raises(ChannelError, match="unexpected reply"):
        await channel.ask_digit(["siaga112/welcome", "siaga112/menu"], 4000)


async def test_ask_digit_without_prompts_just_waits() -> None:
    channel, session = channel_for(ok("", "timeout"))
    assert await channel.ask_digit([], 2000) is None
    assert session.commands == [("GET DATA", "", "2000", "1")]


async def test_ask_digit_refuses_a_bare_string() -> None:
    channel, session = channel_for()
    with pytest.raises(TypeError, match="not a str"):
        await channel.ask_digit("siaga112/menu", 2000)
    assert session.commands == []


@pytest.mark.parametrize("timeout_ms", [0, -1])
async def test_ask_digit_needs_a_positive_timeout(timeout_ms: int) -> None:
    channel, session = channel_for()
    with pytest.raises(ValueError, match="timeout_ms must be positive"):
        await channel.ask_digit(["siaga112/menu"], timeout_ms)
    assert session.commands == []


# --- play --------------------------------------------------------------------------------


async def test_play_streams_the_file_without_escape_digits() -> None:
    channel, session = channel_for(ok("0", endpos=18400))
    await channel.play("siaga112/please-wait")
    assert session.commands == [("STREAM FILE", "siaga112/please-wait", "")]


async def test_play_minus_one_is_a_hangup() -> None:
    channel, _ = channel_for(ok("-1", endpos=0))
    with pytest.raises(CallerHungUp):
        await channel.play("siaga112/please-wait")


async def test_play_unexpected_result() -> None:
    channel, _ = channel_for(ok("", "timeout"))
    with pytest.raises(ChannelError, match="unexpected reply"):
        await channel.play("siaga112/please-wait")


# --- set_variable ------------------------------------------------------------------------


async def test_set_variable() -> None:
    channel, session = channel_for(ok("1"))
    await channel.set_variable("SIAGA_SERVICE", 'ambulans "119"')
    assert session.commands == [("SET VARIABLE", "SIAGA_SERVICE", 'ambulans "119"')]


@pytest.mark.parametrize("name", ["", "1X", "DB(family/key)", "X Y", "X\nY", "FILE(/tmp/x)"])
async def test_set_variable_refuses_non_plain_names(name: str) -> None:
    channel, session = channel_for(ok("1"))
    with pytest.raises(ChannelError, match="not a plain variable name"):
        await channel.set_variable(name, "v")
    assert session.commands == []


async def test_set_variable_refuses_an_injected_second_command() -> None:
    channel, session = channel_for(ok("1"))
    with pytest.raises(ChannelError, match="CR, LF or NUL") as caught:
        await channel.set_variable("SIAGA_NOTE", 'x"\nEXEC Dial PJSIP/evil')
    assert isinstance(caught.value.__context__, AgiArgumentError)
    assert session.commands == []


async def test_set_variable_unexpected_result() -> None:
    channel, _ = channel_for(ok("0"))
    with pytest.raises(ChannelError, match="unexpected reply"):
        await channel.set_variable("SIAGA_SERVICE", "polisi")


async def test_set_variables_sends_plain_values_in_one_mset_after_the_others() -> None:
    channel, session = channel_for(ok("1"), ok("1"), ok("0"))
    await channel.set_variables([("IVR_CHOICE", ""), ("IVR_OUTCOME", "no_input"),
                                 ("IVR_REASONS", "Nomor ini, baru saja; menelepon"),
                                 ("IVR_SCREEN_PROMPT", "siaga112/saring"),
                                 ("IVR_QUEUE", "emergency-general")])
    assert session.commands == [
        ("SET VARIABLE", "IVR_CHOICE", ""),
        ("SET VARIABLE", "IVR_REASONS", "Nomor ini, baru saja; menelepon"),
        ("EXEC", "MSet", "IVR_OUTCOME=no_input,IVR_SCREEN_PROMPT=siaga112/saring,"
                         "IVR_QUEUE=emergency-general")]


@pytest.mark.parametrize("value", ["a,b", "a=b", "${X}", "$[1+1]", 'a"b', "a\\b", "a b", ""])
async def test_set_variables_never_puts_what_mset_would_parse_in_mset(value: str) -> None:
    channel, session = channel_for(ok("1"))
    await channel.set_variables([("SIAGA_NOTE", value)])
    assert session.commands == [("SET VARIABLE", "SIAGA_NOTE", value)]


async def test_set_variables_without_mset_sets_one_by_one() -> None:
    channel, session = channel_for(ok("-2"), ok("1"), ok("1"))
    await channel.set_variables([("IVR_OUTCOME", "chosen"), ("IVR_QUEUE", "fire")])
    assert session.commands == [("EXEC", "MSet", "IVR_OUTCOME=chosen,IVR_QUEUE=fire"),
                                ("SET VARIABLE", "IVR_OUTCOME", "chosen"),
                                ("SET VARIABLE", "IVR_QUEUE", "fire")]


async def test_set_variables_refuses_a_non_plain_name_before_sending_anything() -> None:
    channel, session = channel_for(ok("0"))
    with pytest.raises(ChannelError, match="not a plain variable name"):
        await channel.set_variables([("IVR_QUEUE", "fire"), ("DB(x/y)", "1")])
    assert session.commands == []


# --- refusals and hangups, common to every command ----------------------------------------


@pytest.mark.parametrize("refusal", [INVALID, USAGE])
async def test_refusals_are_channel_errors_naming_command_and_reply(refusal: AgiReply) -> None:
    channel, _ = channel_for(refusal)
    with pytest.raises(ChannelError) as caught:
        await channel.ask_digit(["siaga112/menu"], 5000)
    message = str(caught.value)
    assert "GET DATA 'siaga112/menu' '5000' '1'" in message
    assert refusal.line.splitlines()[0] in message
    assert not isinstance(caught.value, CallerHungUp)


async def test_dead_channel_refusal_is_a_hangup() -> None:
    channel, _ = channel_for(NOT_PERMITTED)
    with pytest.raises(CallerHungUp, match="511 Command Not Permitted"):
        await channel.set_variable("SIAGA_SERVICE", "polisi")


@pytest.mark.parametrize(
    "exception", [CallerHungUp("caller hung up (HANGUP)"), ChannelError("no reply within 30 s")]
)
async def test_session_exceptions_pass_through(exception: ChannelError) -> None:
    channel, _ = channel_for(exception)
    with pytest.raises(type(exception)) as caught:
        await channel.play("siaga112/please-wait")
    assert caught.value is exception


@pytest.mark.parametrize(("exception", "ivr_error"), [
    (AgiHungUpError("ANSWER: caller hung up (HANGUP from Asterisk)"), CallerHungUp),
    (AgiSessionError("ANSWER: no reply within 30 s"), ChannelError),
])
async def test_session_errors_become_the_ivr_s_and_stay_the_server_s(
    exception: AgiSessionError, ivr_error: type[ChannelError]
) -> None:
    # The flow catches the IVR's exceptions; the FastAGI server hosting the session still
    # recognises its own (and logs a hang-up as one).
    channel, _ = channel_for(exception)
    with pytest.raises(ivr_error) as caught:
        await channel.play("siaga112/please-wait")
    assert isinstance(caught.value, type(exception))
    assert str(caught.value) == str(exception)
    assert isinstance(caught.value, CallerHungUp) == isinstance(exception, AgiHungUpError)


# --- collect_keys --------------------------------------------------------------------------


GOSUB_DONE = AgiReply(200, "200 result=0 Gosub complete", result="0", data="Gosub complete")


def _program() -> KeyProgram:
    menu = load_menu()
    return key_program(menu, menu.entry_for("112"))


async def test_collect_keys_is_one_gosub_bounded_by_the_session_then_reads_the_answer() -> None:
    channel, session = channel_for(GOSUB_DONE, ok("1", "1@2310/2@2362"))
    trace = await channel.collect_keys(_program())
    assert trace.answers == (Answer("1", 2310), Answer("2", 2362))
    assert session.commands == [
        ("GOSUB", "siaga112-menu", "s", "1", _program().arguments()),
        ("GET VARIABLE", "GOSUB_RETVAL"),
    ]
    assert session.session_bound == [True, False]


async def test_collect_keys_with_nothing_heard_is_an_empty_trace() -> None:
    channel, _ = channel_for(GOSUB_DONE, ok("0"))
    assert (await channel.collect_keys(_program())).answers == ()


@pytest.mark.parametrize("replies", [
    (AgiReply(200, "200 result=-1 Gosub label not found", result="-1"),),
    (AgiReply(200, "200 result=0 Gosub complete (abnormal exit)", result="0",
              data="Gosub complete (abnormal exit)"), ok("0")),
    (GOSUB_DONE, ok("1", "1@2310;Hangup()")),
    (INVALID,),
])
async def test_collect_keys_fails_open_on_anything_odd(replies: tuple[AgiReply, ...]) -> None:
    channel, _ = channel_for(*replies)
    with pytest.raises(ChannelError) as raised:
        await channel.collect_keys(_program())
    assert not isinstance(raised.value, CallerHungUp)


async def test_collect_keys_reports_a_hang_up_after_the_routine() -> None:
    channel, _ = channel_for(GOSUB_DONE, NOT_PERMITTED)
    with pytest.raises(CallerHungUp):
        await channel.collect_keys(_program())
