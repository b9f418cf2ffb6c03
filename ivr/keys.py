"""The IVR's key collection as one dialplan routine: what the routine is told, what it answers.

Why a dialplan routine: while res_agi waits for the next AGI command it reads the caller's
channel and throws every frame away, DTMF included (``run_agi``'s idle loop in Asterisk's
res_agi.c). A caller who pressed 1 then, quickly, 2 lost the 2 whenever it arrived between the
command that returned the 1 and the next one. So the whole menu tree of a line is asked by
``[siaga112-menu]`` in extensions.conf, run by ONE AGI command (GOSUB): between its Read()s
nothing reads the channel, and a key pressed at any moment (during the greeting, between the
main menu and the sub-menu) waits in the channel for the next Read(), which takes it at once.

The routine mirrors :func:`ivr.flow.decide`'s rules (barge-in, attempts, the invalid-key
prompt, sub-menus one level deep) and answers with what each ask heard and when; the flow then
replays those answers through :func:`ivr.flow.decide`, so the decision stays pure Python.

Everything spliced into the GOSUB command is checked against strict patterns here: sound
names, keys and numbers only, so a menu edit can never smuggle a dialplan argument or
application option in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from ivr.menu import IvrMenu, LineEntry, Menu
from telephony.core.errors import SiagaError

# Where the routine lives (extensions.conf) and the GOSUB command's target.
ROUTINE: Final = ("siaga112-menu", "s", "1")
# Prompts live under this directory of Asterisk's sounds (see telephony/asterisk/site.py).
PROMPT_PREFIX: Final = "siaga112/"
# A prompt's sound name as the routine may play it: no ",", "|", ":", "&", "(" or ")"
# (ivr.menu refuses any other prompt name already).
_SOUND: Final = re.compile(r"siaga112/[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# The keys a menu may offer (ivr.menu.DTMF_KEYS); none is special in a regex bracket.
_KEYS: Final = re.compile(r"[0-9*#]{1,12}")
# A route's category (ivr.menu.CATEGORIES), as the routine splices it into a Set().
_CATEGORY: Final = re.compile(r"[a-z]{1,20}")
# One answer: the key Read() returned ("-" when the wait ran out), "@", the milliseconds
# since the routine began. The routine stops early on "!HANGUP" or "!ERROR" (Read()'s status).
_ANSWER: Final = re.compile(r"(?P<key>[0-9*#A-D-])@(?P<ms>[0-9]{1,7})")
_END: Final = re.compile(r"!(?P<status>[A-Z]{1,16})")
# A menu is asked at most 5 + 5 times (ivr.menu: attempts 1-5), and there are two levels.
MAX_ANSWERS: Final = 20


class KeyProgramError(SiagaError, ValueError):
    """A menu cannot be handed to the dialplan routine (it would not pass the strict checks)."""


class KeyTraceError(SiagaError, ValueError):
    """The dialplan routine answered something that is not a key trace."""


def prompt_file(name: str) -> str:
    """The Asterisk sound name of a prompt."""
    return PROMPT_PREFIX + name


@dataclass(frozen=True)
class Answer:
    """What one ask heard: a key, or ``None`` when the wait ran out; and when."""

    key: str | None
    at_ms: int  # since the routine began


@dataclass(frozen=True)
class KeyTrace:
    """The routine's answers in order, and how it ended."""

    answers: tuple[Answer, ...]
    status: str = "OK"  # OK, or Read()'s READSTATUS that stopped it (HANGUP, ERROR)


def _sound(name: str) -> str:
    sound = prompt_file(name)
    if not _SOUND.fullmatch(sound):
        raise KeyProgramError(f"prompt {name!r}: not a plain sound name (A-Z, 0-9, '-')")
    return sound


@dataclass(frozen=True)
class MenuSpec:
    """One menu as the routine reads it (fields joined by "|")."""

    prompt: str  # sound names, prefixed
    timeout_ms: int
    no_input_attempts: int
    invalid_attempts: int
    invalid_prompt: str | None
    keys: str  # the valid keys
    # A sub-menu's: the category every way out of it leads to (its options and its default),
    # if they share one. The routine publishes it (IVR_CATEGORY) as it enters the sub-menu: a
    # caller who chose emergency and then hung up in the sub-menu never lets the routine
    # answer, and is still known to have chosen an emergency (the call-back worklist's
    # ivr_emergency).
    category: str | None = None

    @classmethod
    def of(cls, menu: Menu) -> MenuSpec:
        """The spec of a validated menu; raises :class:`KeyProgramError` if it cannot pass."""
        keys = "".join(sorted(menu.options))
        if not _KEYS.fullmatch(keys):
            raise KeyProgramError(f"menus.{menu.name}: keys {keys!r} are not telephone keys")
        numbers = (menu.timeout_ms, menu.no_input_attempts, menu.invalid_attempts)
        if not (500 <= menu.timeout_ms <= 30000 and all(1 <= n <= 5 for n in numbers[1:])):
            raise KeyProgramError(f"menus.{menu.name}: timeout or attempts out of range")
        return cls(
            prompt=_sound(menu.prompt),
            timeout_ms=menu.timeout_ms,
            no_input_attempts=menu.no_input_attempts,
            invalid_attempts=menu.invalid_attempts,
            invalid_prompt=_sound(menu.invalid_prompt) if menu.invalid_prompt else None,
            keys=keys,
        )

    def argument(self) -> str:
        """prompt|timeout in seconds (Read() takes seconds)|no-input|invalid|invalid prompt|keys
        |category (empty when the menu's routes do not share one)"""
        seconds = f"{self.timeout_ms / 1000:g}"
        return "|".join([self.prompt, seconds, str(self.no_input_attempts),
                         str(self.invalid_attempts), self.invalid_prompt or "", self.keys,
                         self.category or ""])


def _shared_category(menu: Menu) -> str | None:
    routes = [menu.default, *(o.route for o in menu.options.values())]
    categories = {route.category for route in routes if route is not None}
    if len(categories) != 1 or any(route is None for route in routes):
        return None  # mixed, or an option opens another menu
    (category,) = categories
    if not _CATEGORY.fullmatch(category):
        raise KeyProgramError(f"menus.{menu.name}: category {category!r} is not a plain word")
    return category


@dataclass(frozen=True)
class KeyProgram:
    """The key collection of one line's menu tree, for the routine."""

    greeting: str | None  # sound name, played with the main menu (barge-in)
    main: MenuSpec
    submenus: tuple[tuple[str, MenuSpec], ...]  # (main-menu key, its sub-menu)

    def arguments(self) -> str:
        """The GOSUB argument: greeting, main menu, then one ``key:menu`` per sub-menu."""
        subs = [f"{key}:{spec.argument()}" for key, spec in self.submenus]
        return ",".join([self.greeting or "", self.main.argument(), *subs])


def key_program(menu: IvrMenu, entry: LineEntry) -> KeyProgram:
    """The program asking ``entry``'s menu tree (the entry must have a menu)."""
    if entry.menu is None:
        raise KeyProgramError("a line that routes directly has no keys to collect")
    main = menu.menus[entry.menu]
    submenus = []
    for key, option in sorted(main.options.items()):
        if option.submenu is not None:
            sub = menu.menus[option.submenu]
            if any(o.submenu is not None for o in sub.options.values()):
                # ivr.menu allows two levels; the routine asks exactly two.
                raise KeyProgramError(f"menus.{sub.name}: a sub-menu cannot open another menu")
            spec = replace(MenuSpec.of(sub), category=_shared_category(sub))
            submenus.append((key, spec))
    greeting = _sound(entry.greeting) if entry.greeting else None
    return KeyProgram(greeting, MenuSpec.of(main), tuple(submenus))


def parse_trace(text: str) -> KeyTrace:
    """Parse the routine's answer, e.g. ``1@2310/2@2362`` or ``-@7004/!HANGUP``.

    Raises :class:`KeyTraceError` on anything else.
    """
    answers: list[Answer] = []
    status = "OK"
    parts = text.split("/") if text else []
    if len(parts) > MAX_ANSWERS + 1:
        raise KeyTraceError(f"key trace too long: {len(parts)} parts")
    for index, part in enumerate(parts):
        if (end := _END.fullmatch(part)) is not None and index == len(parts) - 1:
            status = end["status"]
            continue
        match = _ANSWER.fullmatch(part)
        if match is None:
            raise KeyTraceError(f"key trace part {part[:40]!r} is not key@ms")
        key = match["key"]
        answers.append(Answer(None if key == "-" else key, int(match["ms"])))
    return KeyTrace(tuple(answers), status)
