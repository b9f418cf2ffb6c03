"""IVR decisions over a scripted channel (the FastAGI channel is tested on its own)."""

import json
from collections.abc import Sequence
from importlib import resources

import pytest

from ivr.channel import CallerHungUp, ChannelError
from ivr.flow import IvrResult, Outcome, ScreeningVerdict, decide, longest_stay, run_ivr
from ivr.keys import Answer, KeyProgram, KeyTrace
from ivr.menu import load_menu, parse_menu

MENU = load_menu()


def trace(*keys: str | None, status: str = "OK") -> KeyTrace:
    """What the menu routine heard: the keys (None = silence), one a second."""
    return KeyTrace(tuple(Answer(key, 1000 * (i + 1)) for i, key in enumerate(keys)), status)


class ScriptedChannel:
    """Answers the key collection with the scripted keys (None = silence), one a second."""

    def __init__(self, keys: Sequence[str | None], *, status: str = "OK") -> None:
        self.trace = trace(*keys, status=status)
        self.programs: list[KeyProgram] = []
        self.played: list[str] = []
        self.variables: dict[str, str] = {}
        self.order: list[str] = []

    @property
    def asked(self) -> tuple[tuple[tuple[str, ...], int], ...]:
        """What the routine played, ask by ask (by the menu's rules)."""
        if not self.programs:
            return ()
        return decide(MENU, MENU.entry_for("112"), self.trace).asked

    async def collect_keys(self, program: KeyProgram) -> KeyTrace:
        self.programs.append(program)
        return self.trace

    async def ask_digit(self, prompts: Sequence[str], timeout_ms: int) -> str | None:
        raise AssertionError("the IVR asks its whole menu in one collect_keys")

    async def play(self, prompt: str) -> None:
        self.played.append(prompt)

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value
        self.order.append(name)

    async def set_variables(self, values: Sequence[tuple[str, str]]) -> None:
        for name, value in values:
            await self.set_variable(name, value)


async def test_press_one_then_fire() -> None:
    channel = ScriptedChannel(["1", "2"])
    result = await run_ivr(channel, MENU, "112")
    assert (result.route.queue, result.outcome, result.choice) == ("fire", Outcome.CHOSEN, "1")
    assert channel.variables == {
        "IVR_CHOICE": "1", "IVR_OUTCOME": "chosen", "IVR_CATEGORY": "emergency",
        "IVR_SKILL": "fire", "IVR_QUEUE": "fire",
        "IVR_FIRST_KEY_MS": "1000", "IVR_INVALID_KEYS": "0",
    }
    # The greeting and menu are asked together so a caller can barge in at once.
    assert channel.asked[0][0] == ("siaga112/salam-112", "siaga112/menu-utama")
    # The emergency sub-choice is short.
    assert channel.asked[1] == (("siaga112/menu-darurat",), 3000)
    # One collection for the whole tree.
    assert len(channel.programs) == 1


async def test_emergency_sub_choice_silence_goes_to_general_emergency() -> None:
    result = await run_ivr(ScriptedChannel(["1", None]), MENU, "112")
    assert (result.route.queue, result.outcome, result.choice) == (
        "emergency-general", Outcome.CHOSEN, "1")


async def test_silence_goes_to_emergency_without_replaying() -> None:
    channel = ScriptedChannel([None])
    result = await run_ivr(channel, MENU, "112")
    assert (result.route.queue, result.outcome, result.choice) == (
        "emergency-general", Outcome.NO_INPUT, "")
    assert len(channel.asked) == 1


async def test_invalid_twice_goes_to_emergency_after_one_explanation() -> None:
    channel = ScriptedChannel(["7", "#"])
    result = await run_ivr(channel, MENU, "112")
    assert (result.route.queue, result.outcome) == ("emergency-general", Outcome.INVALID)
    assert channel.asked[1][0] == ("siaga112/pilihan-salah", "siaga112/menu-utama")


async def test_invalid_then_valid_is_served() -> None:
    result = await run_ivr(ScriptedChannel(["5", "3"]), MENU, "112")
    assert (result.route.queue, result.route.category) == ("information", "information")


@pytest.mark.parametrize(("key", "queue"), [("2", "non-emergency"), ("8", "javanese"),
                                            ("9", "madurese")])
def test_direct_options(key: str, queue: str) -> None:
    option = MENU.menus["utama"].options[key]
    assert option.route is not None and option.route.queue == queue


async def test_line_119_goes_straight_to_medical() -> None:
    channel = ScriptedChannel([])
    result = await run_ivr(channel, MENU, "119")
    assert (result.route.queue, result.outcome) == ("medical", Outcome.DIRECT)
    assert channel.played == ["siaga112/salam-119"] and channel.programs == []


async def test_unknown_line_is_served_as_112() -> None:
    result = await run_ivr(ScriptedChannel(["3"]), MENU, "0800")
    assert result.route.queue == "information"


async def test_queue_is_published_last_so_the_dialplan_default_stands_until_then() -> None:
    channel = ScriptedChannel(["2"])
    await run_ivr(channel, MENU, "112")
    assert channel.order[-1] == "IVR_QUEUE"


async def test_hangup_stops_the_flow_and_sets_nothing() -> None:
    channel = ScriptedChannel(["7"], status="HANGUP")
    with pytest.raises(CallerHungUp):
        await run_ivr(channel, MENU, "112")
    assert channel.variables == {}


async def test_a_routine_stopped_by_an_error_fails_open_with_nothing_set() -> None:
    # A prompt Read() could not play: the dialplan's fail-open defaults must stand.
    channel = ScriptedChannel([], status="ERROR")
    with pytest.raises(ChannelError):
        await run_ivr(channel, MENU, "112")
    assert channel.variables == {}


class FixedScreener:
    def __init__(self, verdict: ScreeningVerdict | None) -> None:
        self.verdict_to_give = verdict
        self.asked: list[IvrResult] = []

    @property
    def categories(self) -> list[str]:
        return [result.route.category for result in self.asked]

    async def verdict(self, result: IvrResult) -> ScreeningVerdict | None:
        self.asked.append(result)
        return self.verdict_to_give


async def test_keys_are_timed_from_the_start_and_invalid_ones_counted() -> None:
    channel = ScriptedChannel(["7", "1", "2"])
    result = await run_ivr(channel, MENU, "112")
    # The routine heard the first key (the invalid 7) 1 s after it began.
    assert (result.first_key_ms, result.invalid_keys) == (1000, 1)
    assert channel.variables["IVR_FIRST_KEY_MS"] == "1000"
    assert channel.variables["IVR_INVALID_KEYS"] == "1"


async def test_silence_publishes_no_first_key() -> None:
    channel = ScriptedChannel([None])
    result = await run_ivr(channel, MENU, "112")
    assert result.first_key_ms is None
    assert channel.variables["IVR_FIRST_KEY_MS"] == ""


async def test_verdict_is_asked_with_the_routed_category_and_published_before_the_queue() -> None:
    screener = FixedScreener(ScreeningVerdict(0.8312, ("5 panggilan dalam 1 jam terakhir",
                                                       "nomor disembunyikan"), 5, screen=True))
    channel = ScriptedChannel(["2"])
    result = await run_ivr(channel, MENU, "112", screener)
    assert screener.categories == ["complaint"]
    assert result.screening is not None
    assert channel.variables["IVR_SCORE"] == "0.831"
    assert channel.variables["IVR_REASONS"] == (
        "5 panggilan dalam 1 jam terakhir; nomor disembunyikan")
    assert channel.variables["IVR_PRIORITY"] == "5"
    assert channel.variables["IVR_SCREEN_PROMPT"] == "siaga112/saring"
    assert channel.order[-1] == "IVR_QUEUE"


async def test_a_verdict_without_screening_sets_no_prompt() -> None:
    screener = FixedScreener(ScreeningVerdict(0.55, ("x",), 0, screen=False))
    channel = ScriptedChannel(["3"])
    await run_ivr(channel, MENU, "112", screener)
    assert channel.variables["IVR_PRIORITY"] == "0"
    assert "IVR_SCREEN_PROMPT" not in channel.variables


async def test_no_verdict_leaves_priority_and_prompt_to_the_dialplan() -> None:
    channel = ScriptedChannel([None])
    result = await run_ivr(channel, MENU, "112", FixedScreener(None))
    assert result.route.queue == "emergency-general"
    assert not {"IVR_SCORE", "IVR_PRIORITY", "IVR_SCREEN_PROMPT"} & channel.variables.keys()
    assert channel.order[-1] == "IVR_QUEUE"


async def test_119_is_screened_as_an_emergency() -> None:
    screener = FixedScreener(None)
    await run_ivr(ScriptedChannel([]), MENU, "119", screener)
    assert screener.categories == ["emergency"]
    assert screener.asked[0].outcome is Outcome.DIRECT


async def test_verdict_is_asked_with_the_keys_the_caller_pressed() -> None:
    # The screening score reads the keys: a wrong 7 then 1 and 2, and a caller who pressed none.
    screener = FixedScreener(None)
    await run_ivr(ScriptedChannel(["7", "1", "2"]), MENU, "112", screener)
    await run_ivr(ScriptedChannel([None]), MENU, "112", screener)
    keys = [(r.outcome, r.first_key_ms, r.invalid_keys) for r in screener.asked]
    assert keys == [(Outcome.CHOSEN, 1000, 1), (Outcome.NO_INPUT, None, 0)]


def test_decide_replays_type_ahead_keys_as_the_caller_meant_them() -> None:
    # 1 and 2 heard 50 ms apart: the 2 was waiting when the sub-menu was asked.
    keys = KeyTrace((Answer("1", 2300), Answer("2", 2350)))
    decision = decide(MENU, MENU.entry_for("112"), keys)
    assert (decision.route.queue, decision.choice, decision.first_key_ms) == ("fire", "1", 2300)
    assert decision.consistent


def test_decide_flags_a_routine_that_answered_more_or_less_than_the_rules_ask() -> None:
    entry = MENU.entry_for("112")
    extra = decide(MENU, entry, trace("3", "9"))
    assert extra.route.queue == "information" and not extra.consistent
    # Nothing heard at all (a routine that stopped early): the menu's default.
    short = decide(MENU, entry, trace())
    assert (short.route.queue, short.outcome) == ("emergency-general", Outcome.NO_INPUT)
    assert not short.consistent


def test_a_wrong_key_in_the_sub_menu_keeps_the_category_general_queue() -> None:
    decision = decide(MENU, MENU.entry_for("112"), trace("1", "9"))
    assert (decision.route.queue, decision.outcome, decision.invalid_keys) == (
        "emergency-general", Outcome.CHOSEN, 1)
    assert decision.consistent


@pytest.mark.parametrize(("silent", "wrong"), [(1, 1), (3, 2), (5, 5), (2, 4)])
def test_the_longest_stay_is_what_the_slowest_caller_hears_and_waits(
        silent: int, wrong: int) -> None:
    """longest_stay follows decide()'s rules: the slowest caller (a key at the end of every
    wait) stays silent and presses wrong keys until one try is left of each, then picks the
    emergency sub-menu and does the same there. What decide() asks them, prompt by prompt and
    wait by wait, adds up to longest_stay."""
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    for name in ("utama", "darurat"):
        document["menus"][name].update(no_input_attempts=silent, invalid_attempts=wrong)
    menu = parse_menu(document)
    seconds = {name: 1.0 + n / 4 for n, name in enumerate(sorted(menu.prompts))}
    slowest = [*[None] * (silent - 1), *["7"] * (wrong - 1), "1",
               *[None] * (silent - 1), *["7"] * (wrong - 1), "2"]
    decision = decide(menu, menu.entry_for("112"), trace(*slowest))
    assert decision.route.queue == "fire" and decision.consistent
    heard = sum(seconds[p.removeprefix("siaga112/")] for prompts, _ in decision.asked
                for p in prompts)
    waited = sum(wait for _, wait in decision.asked) / 1000
    line, longest = longest_stay(menu, seconds)
    assert line == "112" and longest == pytest.approx(heard + waited)


def test_a_line_without_a_menu_stays_for_its_greeting() -> None:
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    document["lines"] = {"119": document["lines"]["119"]}
    document["default_line"] = "119"
    menu = parse_menu(document)
    assert longest_stay(menu, dict.fromkeys(menu.prompts, 4.5)) == ("119", 4.5)
