"""The IVR flow: greet, ask, route. Plain Python over the :class:`~ivr.channel.Channel` interface.

Rules a caller can rely on:
- pressing during a prompt works (barge-in);
- pressing nothing routes to the menu's default, which for the main menu is emergency;
- pressing invalid keys gets one explanation and another try, then the default;
- the flow never hangs up: it returns a route, and the dialplan queues the call there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ivr.channel import Channel
from ivr.menu import IvrMenu, Menu, Route

# Prompts live under this directory of Asterisk's sounds (see telephony.lab.install_prompts).
PROMPT_PREFIX = "siaga112/"


class Outcome(StrEnum):
    """How the caller reached the route (the IVR_OUTCOME channel variable)."""

    CHOSEN = "chosen"
    NO_INPUT = "no_input"
    INVALID = "invalid"
    DIRECT = "direct"  # the line routes without a menu (119)


@dataclass(frozen=True)
class IvrResult:
    """What the IVR decided for one call."""

    route: Route
    outcome: Outcome
    choice: str  # the main-menu key pressed, "" if none


def prompt_file(name: str) -> str:
    """The Asterisk sound name of a prompt."""
    return PROMPT_PREFIX + name


async def _ask(channel: Channel, menu: Menu, lead_in: list[str]) -> tuple[str | None, Outcome]:
    """Ask ``menu`` until a valid key, or until its attempts run out.

    Returns the key (``None`` when the attempts ran out) and the reason.
    """
    prompts = [*lead_in, menu.prompt]
    silent = invalid = 0
    while True:
        digit = await channel.ask_digit([prompt_file(p) for p in prompts], menu.timeout_ms)
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


async def run_ivr(channel: Channel, menu: IvrMenu, line: str) -> IvrResult:
    """Run the IVR for a call on ``line`` and publish the result as channel variables.

    The variables are set only when the flow has decided, IVR_QUEUE last: until then the
    dialplan's fail-open defaults stand.
    """
    entry = menu.entry_for(line)
    lead_in = [entry.greeting] if entry.greeting else []
    if entry.route is not None:
        if lead_in:
            await channel.play(prompt_file(lead_in[0]))
        result = IvrResult(entry.route, Outcome.DIRECT, "")
    else:
        assert entry.menu is not None  # validated: a line has a menu or a route
        main = menu.menus[entry.menu]
        key, outcome = await _ask(channel, main, lead_in)
        result = await _follow(channel, menu, main, key, outcome)
    await publish(channel, result)
    return result


async def _follow(
    channel: Channel, menu: IvrMenu, main: Menu, key: str | None, outcome: Outcome
) -> IvrResult:
    if key is None:
        return IvrResult(main.default, outcome, "")
    option = main.options[key]
    if option.route is not None:
        return IvrResult(option.route, Outcome.CHOSEN, key)
    assert option.submenu is not None
    sub = menu.menus[option.submenu]
    # The sub-choice is one short question: silence or a wrong key keeps the caller in the
    # category they chose, in its general queue, rather than sending them back to the start.
    sub_key, _ = await _ask(channel, sub, [])
    route = sub.options[sub_key].route if sub_key is not None else None
    return IvrResult(route or sub.default, Outcome.CHOSEN, key)


async def publish(channel: Channel, result: IvrResult) -> None:
    """Set the IVR_* channel variables the dialplan and the AMI listener read."""
    await channel.set_variable("IVR_CHOICE", result.choice)
    await channel.set_variable("IVR_OUTCOME", result.outcome.value)
    await channel.set_variable("IVR_CATEGORY", result.route.category)
    await channel.set_variable("IVR_SKILL", result.route.skill)
    await channel.set_variable("IVR_QUEUE", result.route.queue)
