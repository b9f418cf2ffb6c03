"""The caller-rating survey over a scripted channel (the FastAGI channel is tested on its own)."""

from collections.abc import Sequence

import pytest

from ivr.channel import CallerHungUp, ChannelError
from ivr.menu import load_menu
from ivr.survey import ANSWER_TIMEOUT_MS, SURVEY_PROMPTS, run_survey

INTRO, ASK = "siaga112/survei-pembuka", "siaga112/survei-nilai"
INVALID = "siaga112/survei-salah"
THANKS, NO_RATING = "siaga112/survei-terima-kasih", "siaga112/survei-tanpa-nilai"


class ScriptedChannel:
    """Answers each ask_digit with the next scripted key (None = silence); ``hang_up`` names
    the call (ask_digit or play, by count) at which the caller is gone."""

    def __init__(self, keys: Sequence[str | None], *, hang_up_at: int | None = None,
                 fail_play: type[ChannelError] | None = None) -> None:
        self.keys = list(keys)
        self.asked: list[tuple[list[str], int]] = []
        self.played: list[str] = []
        self.hang_up_at = hang_up_at
        self.fail_play = fail_play

    def _step(self) -> None:
        if self.hang_up_at is not None and len(self.asked) + len(self.played) >= self.hang_up_at:
            raise CallerHungUp("caller hung up")

    async def ask_digit(self, prompts: Sequence[str], timeout_ms: int) -> str | None:
        self._step()
        self.asked.append((list(prompts), timeout_ms))
        return self.keys.pop(0)

    async def play(self, prompt: str) -> None:
        self._step()
        if self.fail_play is not None:
            raise self.fail_play(f"cannot play {prompt}")
        self.played.append(prompt)

    async def set_variable(self, name: str, value: str) -> None:
        raise AssertionError("the survey sets no channel variables")

    async def set_variables(self, values: Sequence[tuple[str, str]]) -> None:
        raise AssertionError("the survey sets no channel variables")


async def test_a_rating_is_taken_at_once_and_thanked() -> None:
    channel = ScriptedChannel(["4"])
    assert await run_survey(channel) == 4
    # Introduction and question in one ask, so the caller can press during either.
    assert channel.asked == [([INTRO, ASK], ANSWER_TIMEOUT_MS)]
    assert channel.played == [THANKS]


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5"])
async def test_every_rating_key(key: str) -> None:
    assert await run_survey(ScriptedChannel([key])) == int(key)


async def test_an_invalid_key_is_explained_and_asked_once_more() -> None:
    channel = ScriptedChannel(["9", "5"])
    assert await run_survey(channel) == 5
    assert [prompts for prompts, _ in channel.asked] == [[INTRO, ASK], [INVALID, ASK]]
    assert channel.played == [THANKS]


async def test_silence_is_asked_once_more_without_an_explanation() -> None:
    channel = ScriptedChannel([None, "2"])
    assert await run_survey(channel) == 2
    assert [prompts for prompts, _ in channel.asked] == [[INTRO, ASK], [ASK]]


@pytest.mark.parametrize("keys", [[None, None], ["0", "#"], ["*", None], [None, "6"]])
async def test_two_misses_end_without_a_rating(keys: list[str | None]) -> None:
    channel = ScriptedChannel(keys)
    assert await run_survey(channel) is None
    assert len(channel.asked) == 2
    assert channel.played == [NO_RATING]


async def test_hanging_up_before_rating_gives_none() -> None:
    channel = ScriptedChannel(["9", "4"], hang_up_at=1)
    assert await run_survey(channel) is None
    assert len(channel.asked) == 1 and channel.played == []


async def test_hanging_up_during_the_goodbye_gives_none() -> None:
    assert await run_survey(ScriptedChannel([None, None], hang_up_at=2)) is None


@pytest.mark.parametrize("failure", [CallerHungUp, ChannelError])
async def test_the_rating_stands_whatever_happens_to_the_thanks(
    failure: type[ChannelError],
) -> None:
    assert await run_survey(ScriptedChannel(["3"], fail_play=failure)) == 3


async def test_a_channel_fault_before_the_rating_propagates() -> None:
    class Broken(ScriptedChannel):
        async def ask_digit(self, prompts: Sequence[str], timeout_ms: int) -> str | None:
            raise ChannelError("GET DATA refused")

    with pytest.raises(ChannelError):
        await run_survey(Broken([]))


def test_prompts_are_valid_names_apart_from_the_menu_s() -> None:
    menu = load_menu()
    assert not SURVEY_PROMPTS.keys() & menu.prompts.keys()
    for name, text in SURVEY_PROMPTS.items():
        assert name.replace("-", "").isalnum() and text.strip()
    played = {INTRO, ASK, INVALID, THANKS, NO_RATING}
    assert {f"siaga112/{name}" for name in SURVEY_PROMPTS} == played
