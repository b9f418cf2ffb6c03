"""The IVR flow: greet, ask, route. Plain Python over the :class:`~ivr.channel.MenuChannel` port.

Rules a caller can rely on:
- pressing during a prompt works (barge-in);
- a key is never lost: the whole menu tree is asked in one command (see :mod:`ivr.keys`), so
  keys pressed ahead (during the greeting, or the sub-menu's key right after the main menu's)
  count;
- pressing nothing routes to the menu's default, which for the main menu is emergency;
- pressing invalid keys gets one explanation and another try, then the default;
- the flow never hangs up: it returns a route, and the dialplan queues the call there.

The channel collects the keys (the dialplan routine plays the prompts and listens); the
decision is :func:`decide`, pure, replaying what the routine heard through the menu's rules.

Prank screening (``telephony.screening``) only informs the route: the flow asks a
:class:`Screener` for a verdict once it knows the route and how the caller used the keys (no key,
wrong keys, the first key's time: part of the score), and publishes the score, its
reasons, the queue priority and whether the screening prompt plays. The dialplan plays that
prompt, so a caller who passes it needs nothing of ours; a screener that fails or is slow
yields no verdict and the call queues as if unscored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final, Protocol

from ivr.channel import CallerHungUp, Channel, ChannelError, MenuChannel
from ivr.keys import Answer, KeyTrace, key_program, prompt_file
from ivr.menu import IvrMenu, LineEntry, Menu, Route

log = logging.getLogger("ivr.flow")

# IVR_REASONS is the verdict's reasons joined with this; the console splits them on it.
REASON_SEPARATOR: Final = "; "


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

    async def verdict(self, result: IvrResult) -> ScreeningVerdict | None:
        """The verdict for this call as the IVR decided it (the route's category, the keys);
        ``None`` when screening could not run in time (the call then queues as if it had no
        score)."""
        ...


@dataclass
class KeyLog:
    """How the caller used the keypad: when the first key came, how many were invalid."""

    clock: Callable[[], float]
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
    first_key_ms: int | None = None  # from the start of the menu (the routine's Read()s)
    invalid_keys: int = 0
    screening: ScreeningVerdict | None = None


@dataclass
class _Replay:
    """The routine's answers, handed out ask by ask; its clock reads the current answer's time.

    ``asked`` keeps each ask's prompts and wait, which is what the routine played.
    """

    trace: KeyTrace
    asked: list[tuple[list[str], int]] = field(default_factory=list)
    now_ms: int = 0
    _answers: Iterator[Answer] = field(init=False)
    short: bool = False  # the flow asked more than the routine answered

    def __post_init__(self) -> None:
        self._answers = iter(self.trace.answers)

    def clock(self) -> float:
        return self.now_ms / 1000

    def ask(self, prompts: list[str], timeout_ms: int) -> str | None:
        self.asked.append((prompts, timeout_ms))
        answer = next(self._answers, None)
        if answer is None:
            self.short = True
            return None
        self.now_ms = answer.at_ms
        return answer.key

    def left_over(self) -> int:
        return sum(1 for _ in self._answers)


@dataclass(frozen=True)
class Decision:
    """Where the answers of one key collection lead."""

    route: Route
    outcome: Outcome
    choice: str  # the main-menu key pressed, "" if none
    first_key_ms: int | None
    invalid_keys: int
    asked: tuple[tuple[tuple[str, ...], int], ...]  # each ask's prompts and wait
    consistent: bool  # the routine asked exactly what the menu's rules ask


def _ask(replay: _Replay, menu: Menu, lead_in: list[str], keys: KeyLog
         ) -> tuple[str | None, Outcome]:
    """Ask ``menu`` until a valid key, or until its attempts run out.

    Returns the key (``None`` when the attempts ran out) and the reason.
    """
    prompts = [*lead_in, menu.prompt]
    silent = invalid = 0
    while True:
        digit = replay.ask([prompt_file(p) for p in prompts], menu.timeout_ms)
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


def decide(menu: IvrMenu, entry: LineEntry, trace: KeyTrace) -> Decision:
    """Replay the routine's answers for ``entry``'s menu tree through the menu's rules."""
    assert entry.menu is not None  # validated: a line has a menu or a route
    replay = _Replay(trace)
    keys = KeyLog(replay.clock)
    main = menu.menus[entry.menu]
    lead_in = [entry.greeting] if entry.greeting else []
    key, outcome = _ask(replay, main, lead_in, keys)
    if key is None:
        route, choice = main.default, ""
    else:
        option = main.options[key]
        choice, outcome = key, Outcome.CHOSEN
        if option.route is not None:
            route = option.route
        else:
            assert option.submenu is not None
            sub = menu.menus[option.submenu]
            # The sub-choice is one short question: silence or a wrong key keeps the caller in
            # the category they chose, in its general queue, rather than back at the start.
            sub_key, _ = _ask(replay, sub, [], keys)
            sub_route = sub.options[sub_key].route if sub_key is not None else None
            route = sub_route or sub.default
    asked = tuple((tuple(prompts), wait) for prompts, wait in replay.asked)
    consistent = not replay.short and replay.left_over() == 0
    return Decision(route, outcome, choice, keys.first_key_ms, keys.invalid_keys, asked,
                    consistent)


# Besides the menu routine an IVR session spends a few AGI round trips (the opening GOSUB, the
# IVR_* variables) and the screening's wait for a late score (its own setting): the longest a
# menu may keep a caller is the session's guard less these.
SESSION_OVERHEAD_SECONDS: Final = 2.0


def _longest_ask_seconds(menu: Menu, lead_in: float, seconds: Mapping[str, float]) -> float:
    """The longest :func:`_ask` of ``menu`` can take: every ask plays its prompts and waits
    out the whole timeout (silence, or a key at its very end). After the first ask (``lead_in``
    and the prompt), each silence but the last replays the prompt and each invalid key but
    the last the invalid prompt and the prompt, before the last ask ends it."""
    prompt, wait = seconds[menu.prompt], menu.timeout_ms / 1000
    invalid = seconds[menu.invalid_prompt] if menu.invalid_prompt else 0.0
    return (lead_in + prompt + wait + (menu.no_input_attempts - 1) * (prompt + wait)
            + (menu.invalid_attempts - 1) * (invalid + prompt + wait))


def longest_stay(menu: IvrMenu, seconds: Mapping[str, float]) -> tuple[str, float]:
    """The line whose menu can keep a caller longest, and for how long (s), by the rules of
    :func:`decide` (which the dialplan routine follows) and the prompts' lengths ``seconds``:
    the main menu's longest, then its longest sub-menu's (a valid key at the last moment of
    the last ask). A line that routes directly only plays its greeting."""
    stays = []
    for line, entry in sorted(menu.lines.items()):
        greeting = seconds[entry.greeting] if entry.greeting else 0.0
        if entry.menu is None:
            stays.append((greeting, line))
            continue
        main = menu.menus[entry.menu]
        subs = [_longest_ask_seconds(menu.menus[o.submenu], 0.0, seconds)
                for o in main.options.values() if o.submenu is not None]
        stays.append((_longest_ask_seconds(main, greeting, seconds) + max(subs, default=0.0),
                      line))
    longest, line = max(stays)
    return line, longest


def menu_too_long(menu: IvrMenu, seconds: Mapping[str, float], allowed: float) -> str | None:
    """Why ``menu`` can keep a caller past the ``allowed`` seconds that fit in the IVR
    session's guard (where the dialplan fails open, cutting the caller off mid-prompt and
    without the choice they were making), or ``None`` when it cannot. ``seconds``: the
    prompts' lengths; one it lacks (its audio not made yet) counts as none, so the waits and
    attempts alone are still timed."""
    line, longest = longest_stay(menu, defaultdict(float, seconds))
    if longest <= allowed:
        return None
    return (f"menu jalur {line} bisa menahan penelepon {longest:.0f} detik (menunggu tanpa "
            "menekan atau salah tekan sampai percobaan habis, dengan panjang rekaman "
            f"suaranya), lebih dari {allowed:.0f} detik yang muat dalam batas sesi IVR. "
            "Kurangi timeout_ms, jumlah percobaan atau panjang rekaman suara.")


async def run_ivr(
    channel: MenuChannel,
    menu: IvrMenu,
    line: str,
    screener: Screener | None = None,
) -> IvrResult:
    """Run the IVR for a call on ``line`` and publish the result as channel variables.

    The variables are set only when the flow has decided, IVR_QUEUE last: until then the
    dialplan's fail-open defaults stand. A routine that stopped on an error (a prompt it could
    not play) raises :class:`ChannelError`, so the dialplan fails open as it would without us.
    """
    entry = menu.entry_for(line)
    if entry.route is not None:
        if entry.greeting:
            await channel.play(prompt_file(entry.greeting))
        result = IvrResult(entry.route, Outcome.DIRECT, "")
    else:
        trace = await channel.collect_keys(key_program(menu, entry))
        if trace.status == "HANGUP":
            raise CallerHungUp("the caller hung up during the menu")
        if trace.status != "OK":
            raise ChannelError(f"the menu routine stopped: Read() status {trace.status}")
        decision = decide(menu, entry, trace)
        if not decision.consistent:
            # The routine and decide() disagree on the rules (an edited dialplan?): the keys
            # heard still decide, one line says so.
            log.warning("line %s: menu routine answered %d keys for %d asks", line,
                        len(trace.answers), len(decision.asked))
        result = IvrResult(decision.route, decision.outcome, decision.choice,
                           decision.first_key_ms, decision.invalid_keys)
    verdict = await screener.verdict(result) if screener is not None else None
    if verdict is not None:
        result = replace(result, screening=verdict)
    await publish(channel, result, menu)
    return result


async def publish(channel: Channel, result: IvrResult, menu: IvrMenu) -> None:
    """Set the IVR_* channel variables the dialplan and the AMI listener read.

    IVR_PRIORITY and IVR_SCREEN_PROMPT stay unset without a verdict: the dialplan then queues
    the call at its normal priority, unscreened.
    """
    first_key = "" if result.first_key_ms is None else str(result.first_key_ms)
    values = [("IVR_CHOICE", result.choice), ("IVR_OUTCOME", result.outcome.value),
              ("IVR_CATEGORY", result.route.category), ("IVR_SKILL", result.route.skill),
              ("IVR_FIRST_KEY_MS", first_key), ("IVR_INVALID_KEYS", str(result.invalid_keys))]
    verdict = result.screening
    if verdict is not None:
        values += [("IVR_SCORE", f"{verdict.score:.3f}"),
                   ("IVR_REASONS", REASON_SEPARATOR.join(verdict.reasons)),
                   ("IVR_PRIORITY", str(verdict.priority))]
        if verdict.screen and menu.screening is not None:
            values.append(("IVR_SCREEN_PROMPT", prompt_file(menu.screening.prompt)))
    values.append(("IVR_QUEUE", result.route.queue))
    await channel.set_variables(values)
