"""The IVR menu as data: lines, menus, options, routes and prompt texts.

The menu is a JSON document (``ivr/menu.json`` ships the default; ``Settings.menu_file`` points
to an admin's copy). It is validated as a whole before use, so a broken edit is refused with a
clear message instead of reaching a caller: every option leads somewhere, every route names a
known queue, every prompt has a text, and menus nest at most two deep (the emergency
sub-choice) so nobody is kept long in the IVR.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from telephony.core.errors import SiagaError

DTMF_KEYS = frozenset("0123456789*#")
_PROMPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
MAX_MENU_DEPTH = 2
CATEGORIES = frozenset({"emergency", "complaint", "information"})
# Queue names become queues.conf sections and must pass the dialplan's check of IVR_QUEUE;
# skills name queues' members and reach AMI actions and the dialplan too, so they are held to
# the same pattern. Always fullmatch: ``$`` would let a trailing newline through.
NAME = re.compile(r"[a-z][a-z-]{0,39}")


class MenuError(SiagaError, ValueError):
    """The menu document is not a valid menu."""


@dataclass(frozen=True)
class Route:
    """Where a call goes: its category, the skill it needs and the queue that has it."""

    category: str
    skill: str
    queue: str


@dataclass(frozen=True)
class Option:
    """A key's effect: a final route, or a sub-menu (by name)."""

    route: Route | None = None
    submenu: str | None = None


@dataclass(frozen=True)
class Menu:
    """One menu: its prompt, how long to wait, how often to ask, and where silence goes."""

    name: str
    prompt: str
    timeout_ms: int
    no_input_attempts: int
    invalid_attempts: int
    invalid_prompt: str | None
    default: Route
    options: Mapping[str, Option]


@dataclass(frozen=True)
class LineEntry:
    """What a dialled line (112, 119) does first: a greeting, then a menu or a direct route."""

    greeting: str | None
    menu: str | None = None
    route: Route | None = None


@dataclass(frozen=True)
class ScreeningPrompt:
    """The prompt a call with a high prank score hears before it queues.

    The dialplan plays it with talk detection; ``wait_ms`` of silence is appended to the audio
    so that the caller's speech, a key, or the end of the file (the timeout) all pass.
    """

    prompt: str
    wait_ms: int


@dataclass(frozen=True)
class IvrMenu:
    """The whole, validated menu document."""

    version: int
    lines: Mapping[str, LineEntry]
    default_line: str
    menus: Mapping[str, Menu]
    prompts: Mapping[str, str]
    known_queues: frozenset[str]
    screening: ScreeningPrompt | None = None  # None: no screening prompt, priority only

    @property
    def trailing_silence_ms(self) -> dict[str, int]:
        """Prompts whose audio ends with silence, and how much (see :class:`ScreeningPrompt`)."""
        if self.screening is None:
            return {}
        return {self.screening.prompt: self.screening.wait_ms}

    def entry_for(self, line: str) -> LineEntry:
        """The entry for a dialled line; an unknown line is served as the default line."""
        return self.lines.get(line) or self.lines[self.default_line]

    def fail_open_route(self, line: str) -> Route:
        """The route the dialplan takes when the IVR cannot run for ``line``."""
        entry = self.entry_for(line)
        if entry.route is not None:
            return entry.route
        assert entry.menu is not None  # validated: an entry has a menu or a route
        return self.menus[entry.menu].default


# The JSON names of the Python types a document holds, for the admin's messages.
_JSON_TYPES: dict[type, str] = {
    str: "teks", int: "bilangan bulat", float: "bilangan", bool: "true/false",
    dict: "objek", list: "daftar", type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _require(mapping: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in mapping:
        raise MenuError(f"{where}: {key!r} tidak ada")
    value = mapping[key]
    if kind is int and isinstance(value, bool):
        raise MenuError(f"{where}.{key}: harus bilangan bulat")
    if not isinstance(value, kind):
        raise MenuError(f"{where}.{key}: harus {_JSON_TYPES[kind]}, bukan {_json_type(value)}")
    return value


def _optional_name(mapping: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional prompt or menu name: absent or null is none; anything but text is refused
    here, as it would otherwise fail deep inside (a set lookup, a join) with no message."""
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MenuError(f"{where}.{key}: harus teks, bukan {_json_type(value)}")
    return value


def _route(raw: Any, where: str, queues: frozenset[str]) -> Route:
    if not isinstance(raw, Mapping):
        raise MenuError(f"{where}: harus objek rute (category, skill, queue)")
    route = Route(
        category=_require(raw, "category", str, where),
        skill=_require(raw, "skill", str, where),
        queue=_require(raw, "queue", str, where),
    )
    if not NAME.fullmatch(route.skill):
        raise MenuError(f"{where}.skill: {route.skill[:40]!r} tidak sah: huruf kecil dan '-', "
                        "paling banyak 40 karakter")
    if route.category not in CATEGORIES:
        raise MenuError(f"{where}.category: {route.category[:40]!r} bukan salah satu dari "
                        f"{', '.join(sorted(CATEGORIES))}")
    if route.queue not in queues:
        raise MenuError(f"{where}.queue: antrean {route.queue[:40]!r} tidak ada di known_queues")
    return route


def _menu(name: str, raw: Any, queues: frozenset[str]) -> Menu:
    where = f"menus.{name}"
    if not isinstance(raw, Mapping):
        raise MenuError(f"{where}: harus objek")
    options: dict[str, Option] = {}
    for key, value in _require(raw, "options", dict, where).items():
        owhere = f"{where}.options.{key}"
        if key not in DTMF_KEYS:
            raise MenuError(f"{owhere}: bukan tombol telepon (0-9, * atau #)")
        if not isinstance(value, Mapping) or ("route" in value) == ("menu" in value):
            raise MenuError(f"{owhere}: harus berisi tepat satu dari 'route' atau 'menu'")
        if "route" in value:
            options[key] = Option(route=_route(value["route"], f"{owhere}.route", queues))
        else:
            options[key] = Option(submenu=_require(value, "menu", str, owhere))
    menu = Menu(
        name=name,
        prompt=_require(raw, "prompt", str, where),
        timeout_ms=_require(raw, "timeout_ms", int, where),
        no_input_attempts=_require(raw, "no_input_attempts", int, where),
        invalid_attempts=_require(raw, "invalid_attempts", int, where),
        invalid_prompt=_optional_name(raw, "invalid_prompt", where),
        default=_route(_require(raw, "default", dict, where), f"{where}.default", queues),
        options=options,
    )
    if not options:
        # The menu routine (ivr.keys) needs at least one key to listen for: a menu without
        # one passed here and then failed every call at the line, each failing open.
        raise MenuError(f"{where}.options: menu harus punya paling sedikit satu tombol")
    if not 500 <= menu.timeout_ms <= 30000:
        raise MenuError(f"{where}.timeout_ms: harus antara 500 dan 30000")
    if not 1 <= menu.no_input_attempts <= 5 or not 1 <= menu.invalid_attempts <= 5:
        raise MenuError(f"{where}: jumlah percobaan harus antara 1 dan 5")
    return menu


def _check_depth(menus: Mapping[str, Menu], start: str, where: str) -> None:
    """Every path from ``start`` ends within MAX_MENU_DEPTH menus (so no cycles either)."""
    frontier, depth = {start}, 1
    while frontier:
        if depth > MAX_MENU_DEPTH:
            raise MenuError(f"{where}: menu bersarang lebih dari {MAX_MENU_DEPTH} tingkat "
                            "(atau berputar)")
        nxt = set()
        for name in frontier:
            for key, option in menus[name].options.items():
                if option.submenu is not None:
                    if option.submenu not in menus:
                        raise MenuError(f"menus.{name}.options.{key}: menu "
                                        f"{option.submenu[:40]!r} tidak ada")
                    nxt.add(option.submenu)
        frontier, depth = nxt, depth + 1


def _screening(raw: Any) -> ScreeningPrompt:
    if not isinstance(raw, Mapping):
        raise MenuError("screening: harus objek")
    screening = ScreeningPrompt(
        prompt=_require(raw, "prompt", str, "screening"),
        wait_ms=_require(raw, "wait_ms", int, "screening"),
    )
    # Long enough to find the keys after the prompt, short enough that a caller who cannot
    # press anything is not kept from an operator for long.
    if not 3000 <= screening.wait_ms <= 30000:
        raise MenuError("screening.wait_ms: harus antara 3000 dan 30000")
    return screening


def parse_menu(document: Any) -> IvrMenu:
    """Validate a decoded menu document and build the menu."""
    if not isinstance(document, Mapping):
        raise MenuError("menu: harus objek JSON")
    listed = _require(document, "known_queues", list, "menu")
    for queue in listed:
        if not isinstance(queue, str):
            raise MenuError(f"menu.known_queues: nama antrean harus teks, bukan "
                            f"{_json_type(queue)}")
    queues = frozenset(listed)
    menus = {
        name: _menu(name, raw, queues)
        for name, raw in _require(document, "menus", dict, "menu").items()
    }
    lines: dict[str, LineEntry] = {}
    for line, raw in _require(document, "lines", dict, "menu").items():
        where = f"lines.{line}"
        if not isinstance(raw, Mapping) or ("route" in raw) == ("menu" in raw):
            raise MenuError(f"{where}: harus berisi tepat satu dari 'route' atau 'menu'")
        entry = LineEntry(
            greeting=_optional_name(raw, "greeting", where),
            menu=_optional_name(raw, "menu", where),
            route=_route(raw["route"], f"{where}.route", queues) if "route" in raw else None,
        )
        if entry.menu is not None:
            if entry.menu not in menus:
                raise MenuError(f"{where}.menu: menu {entry.menu[:40]!r} tidak ada")
            _check_depth(menus, entry.menu, where)
        lines[line] = entry
    default_line = _require(document, "default_line", str, "menu")
    if default_line not in lines:
        raise MenuError(f"default_line: {default_line[:40]!r} bukan salah satu jalur di lines")
    prompts = dict(_require(document, "prompts", dict, "menu"))
    screening = _screening(document["screening"]) if "screening" in document else None
    used = {m.prompt for m in menus.values()}
    used |= {screening.prompt} if screening else set()
    used |= {m.invalid_prompt for m in menus.values() if m.invalid_prompt}
    used |= {e.greeting for e in lines.values() if e.greeting}
    missing = sorted(used - prompts.keys())
    if missing:
        raise MenuError(f"prompts: tidak ada teks untuk {', '.join(missing)}")
    for name, text in prompts.items():
        if not isinstance(text, str):
            raise MenuError(f"prompts.{name[:40]}: harus teks, bukan {_json_type(text)}")
        if not text.strip():
            raise MenuError(f"prompts.{name[:40]}: teks kosong")
        # The IVR splices prompt names into its dialplan routine's arguments (ivr.keys):
        # plain ASCII only, so a name can never carry a separator or an option.
        if not _PROMPT_NAME.fullmatch(name):
            raise MenuError(f"prompts.{name[:40]}: nama rekaman suara hanya huruf, angka dan "
                            "'-' (ASCII, paling banyak 64)")
    return IvrMenu(
        version=_require(document, "version", int, "menu"),
        lines=lines,
        default_line=default_line,
        menus=menus,
        prompts=prompts,
        known_queues=queues,
        screening=screening,
    )


def load_menu(path: Path | None = None) -> IvrMenu:
    """Load and validate a menu file; ``None`` loads the packaged default."""
    try:
        if path is None:
            text = resources.files("ivr").joinpath("menu.json").read_text("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MenuError(f"menu {path or 'ivr/menu.json'} tidak dapat dibaca: {exc}") from exc
    return parse_menu(document)
