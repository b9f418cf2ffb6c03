"""The IVR flow: greet, ask, route. Plain Python over the :class:`~ivr.channel.Channel` interface.

Rules a caller can rely on:
- pressing during a prompt works (barge-in);
- pressing nothing routes to the menu's default, which for the main menu is emergency;
- pressing invalid keys gets one explanation and another try, then the default;
- the flow never hangs up: it returns a route, and the dialplan queues the call there.

Prank screening (``telephony.screening``) only informs the route: the flow asks a
:class:`Screener` for a verdict once it knows the category, and publishes the score, its
reasons, the queue priority and whether the screening prompt plays. The dialplan plays that
prompt, so a caller who passes it needs nothing of ours; a screener that fails or is slow
yields no verdict and the call queues as if unscored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ivr.channel import Channel
from ivr.menu import IvrMenu, Menu, Route

# Prompts live under this directory of Asterisk's sounds (see telephony/asterisk/site.py).
PROMPT_PREFIX = "siaga112/"


class Outcome(StrEnum):
    """How the caller reached the route (the IVR_OUTCOME channel variable)."""

    CHOSEN = "chosen"
    NO_INPUT = "no_input"
    INVALID = "invalid"
    DIRECT = "direct"  # the line routes without a menu (119)


@dataclass(frozen=True)
class ScreeningVerdict:
    """What prank screening decided for a call before it queues."""

    score: float  # in [0, 1]; higher: more likely a prank or silent call
    reasons: tuple[str, ...]  # in words an operator reads with the ringing call
    priority: int  # the Asterisk queue priority (QUEUE_PRIO): higher is answered first
    screen: bool  # the caller first hears the screening prompt


class Screener(Protocol):
    """Prank screening as the flow sees it; one per call."""

    async def verdict(self, category: str) -> ScreeningVerdict | None:
        """The verdict for this call routed to ``category``; ``None`` when screening could
        not run in time (the call then queues as if it had no score)."""
        ...


@dataclass
class KeyLog:
    """How the caller used the keypad: when the first key came, how many were invalid."""

    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    first_key_ms: int | None = None
    invalid_keys: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def pressed(self, *, valid: bool) -> None:
        """Note one key."""
        if self.first_key_ms is None:
            self.first_key_ms = round((self.clock() - self.started) * 1000)
        if not valid:
            self.invalid_keys += 1


@dataclass(frozen=True)
class IvrResult:
    """What the IVR decided for one call."""

    route: Route
    outcome: Outcome
    choice: str  # the main-menu key pressed, "" if none
    first_key_ms: int | None = None  # from the start of the IVR
    invalid_keys: int = 0
    screening: ScreeningVerdict | None = None


def prompt_file(name: str) -> str:
    """The Asterisk sound name of a prompt."""
    return PROMPT_PREFIX + name


async def _ask(
    channel: Channel, menu: Menu, lead_in: list[str], keys: KeyLog
) -> tuple[str | None, Outcome]:
    """Ask ``menu`` until a valid key, or until its attempts run out.

    Returns the key (``None`` when the attempts ran out) and the reason.
    """
    prompts = [*lead_in, menu.prompt]
    silent = invalid = 0
    while True:
        digit = await channel.ask_digit([prompt_file(p) for p in prompts], menu.timeout_ms)
        if digit is not None:
            keys.pressed(valid=digit in menu.options)
        if digit is not None and digit in menu.options:
            return digit, Outcome.CHOSEN
        if digit is None:
            silent += 1
            if silent >= menu.no_input_attempts:
                return None, Outcome.NO_INPUT
            prompts = [menu.prompt]
        else:
            invalid += 1
            if invalid >= menu.invalid_attempts:
                return None, Outcome.INVALID
            prompts = [p for p in (menu.invalid_prompt, menu.prompt) if p]


async def run_ivr(
    channel: Channel,
    menu: IvrMenu,
    line: str,
    screener: Screener | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> IvrResult:
    """Run the IVR for a call on ``line`` and publish the result as channel variables.

    The variables are set only when the flow has decided, IVR_QUEUE last: until then the
    dialplan's fail-open defaults stand.
    """
    keys = KeyLog(clock)
    entry = menu.entry_for(line)
    lead_in = [entry.greeting] if entry.greeting else []
    if entry.route is not None:
        if lead_in:
            await channel.play(prompt_file(lead_in[0]))
        route, outcome, choice = entry.route, Outcome.DIRECT, ""
    else:
        assert entry.menu is not None  # validated: a line has a menu or a route
        main = menu.menus[entry.menu]
        key, outcome = await _ask(channel, main, lead_in, keys)
        route, outcome, choice = await _follow(channel, menu, main, key, outcome, keys=keys)
    verdict = await screener.verdict(route.category) if screener is not None else None
    result = IvrResult(route, outcome, choice, keys.first_key_ms, keys.invalid_keys, verdict)
    await publish(channel, result, menu)
    return result


async def _follow(
    channel: Channel, menu: IvrMenu, main: Menu, key: str | None, outcome: Outcome, *,
    keys: KeyLog,
) -> tuple[Route, Outcome, str]:
    if key is None:
        return main.default, outcome, ""
    option = main.options[key]
    if option.route is not None:
        return option.route, Outcome.CHOSEN, key
    assert option.submenu is not None
    sub = menu.menus[option.submenu]
    # The sub-choice is one short question: silence or a wrong key keeps the caller in the
    # category they chose, in its general queue, rather than sending them back to the start.
    sub_key, _ = await _ask(channel, sub, [], keys)
    route = sub.options[sub_key].route if sub_key is not None else None
    return route or sub.default, Outcome.CHOSEN, key


async def publish(channel: Channel, result: IvrResult, menu: IvrMenu) -> None:
    """Set the IVR_* channel variables the dialplan and the AMI listener read.

    IVR_PRIORITY and IVR_SCREEN_PROMPT stay unset without a verdict: the dialplan then queues
    the call at its normal priority, unscreened.
    """
    await channel.set_variable("IVR_CHOICE", result.choice)
    await channel.set_variable("IVR_OUTCOME", result.outcome.value)
    await channel.set_variable("IVR_CATEGORY", result.route.category)
    await channel.set_variable("IVR_SKILL", result.route.skill)
    first_key = "" if result.first_key_ms is None else str(result.first_key_ms)
    await channel.set_variable("IVR_FIRST_KEY_MS", first_key)
    await channel.set_variable("IVR_INVALID_KEYS", str(result.invalid_keys))
    verdict = result.screening
    if verdict is not None:
        await channel.set_variable("IVR_SCORE", f"{verdict.score:.3f}")
        await channel.set_variable("IVR_REASONS", "; ".join(verdict.reasons))
        await channel.set_variable("IVR_PRIORITY", str(verdict.priority))
        if verdict.screen and menu.screening is not None:
            await channel.set_variable("IVR_SCREEN_PROMPT", prompt_file(menu.screening.prompt))
    await channel.set_variable("IVR_QUEUE", result.route.queue)
