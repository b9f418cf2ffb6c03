"""Versions of what an admin edits as a whole document: the IVR menu and the screening
configuration (pure: no I/O).

A document is validated by the same code the line loads it with (:func:`ivr.menu.parse_menu`,
:meth:`ScoreConfig.from_mapping`) plus the few rules that matter only once an admin edits
it from a browser: names that end up in file names and in the dialplan, and bounded texts.

Publishing a menu writes a *live* document in which every prompt name carries the version
(``menu-utama`` -> ``menu-utama-v7``). The prompt audio of each version then has files of its
own in Asterisk's sounds directory, so a call still in the IVR of the previous version goes on
hearing that version's prompts while the next call hears the new ones, and a rollback only
points the menu file back at files that are still there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ivr.menu import NAME, IvrMenu, Menu, MenuError, Route, parse_menu
from telephony.admin.errors import InvalidConfig
from telephony.core.labels import LabelledStrEnum
from telephony.core.text import holds_unsafe_text
from telephony.screening.score import ScoreConfig, ScoreConfigError

# Prompt names become file names and, for the screening prompt, the dialplan only accepts
# lower-case letters, digits and '-' (extensions.conf, [siaga112-ivr]).
PROMPT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
# Queue names: the menu's own pattern (skills are held to it too).
QUEUE_NAME: Final = NAME
# app_queue reads queues.conf's [general] as its own settings, never as a queue, however often
# it appears: a queue of that name would be accepted here and rendered, and then never exist
# in Asterisk (its callers fail open elsewhere, every QueueAdd to it is refused, and with it
# the login of each operator whose skill goes there).
RESERVED_QUEUES: Final = frozenset({"general"})
MAX_PROMPT_TEXT: Final = 1000  # espeak-ng reads it aloud: a minute of speech at most
MAX_QUEUES: Final = 40
NOTE_MAX: Final = 500

CATEGORY_LABELS: Final[Mapping[str, str]] = {
    "emergency": "darurat", "complaint": "pengaduan", "information": "informasi",
}


class ConfigKind(LabelledStrEnum):
    """What a version is a version of."""

    MENU = "menu", "Menu IVR"
    SCREENING = "screening", "Penyaringan panggilan iseng"


@dataclass(frozen=True)
class PromptRecording:
    """A recorded prompt of a menu version (it replaces the synthesised voice)."""

    prompt: str
    sha256: str
    filename: str
    uploaded_by: str
    uploaded_at: datetime


@dataclass(frozen=True)
class ConfigVersion:
    """One saved version and its publication state."""

    version_id: int
    kind: ConfigKind
    document: Mapping[str, Any]
    note: str
    based_on: int | None
    created_by: str
    created_at: datetime
    last_published_at: datetime | None  # None: never published (a draft)
    last_published_by: str | None
    live: bool  # the version the line runs now
    recordings: tuple[PromptRecording, ...] = ()


@dataclass(frozen=True)
class TreeNode:
    """One line of the menu as an admin reads it, with the prompt heard there."""

    label: str
    prompt: str | None = None
    text: str | None = None
    children: tuple[TreeNode, ...] = field(default_factory=tuple)


def check_menu(document: Any) -> IvrMenu:
    """The menu ``document`` describes, or :class:`InvalidConfig` saying what is wrong."""
    try:
        menu = parse_menu(document)
    except MenuError as exc:
        raise InvalidConfig(f"Menu IVR tidak sah: {exc}", "document") from exc
    for name, text in menu.prompts.items():
        if not PROMPT_NAME.fullmatch(name):
            raise InvalidConfig(f"Nama rekaman suara {name[:40]!r} tidak sah: huruf kecil, angka "
                                "dan '-', paling banyak 40 karakter.", "document")
        if len(text) > MAX_PROMPT_TEXT:
            raise InvalidConfig(f"Teks rekaman suara {name} terlalu panjang (maksimal "
                                f"{MAX_PROMPT_TEXT} karakter).", "document")
        # espeak-ng reads it (ivr/prompts.py passes "--" before it as well): a text that
        # starts with "-" would otherwise be an option, "-f<path>" reading a file aloud.
        if text.lstrip().startswith("-"):
            raise InvalidConfig(f"Teks rekaman suara {name} tidak boleh diawali tanda '-'.",
                                "document")
    if len(menu.known_queues) > MAX_QUEUES:
        raise InvalidConfig(f"Terlalu banyak antrean (maksimal {MAX_QUEUES}).", "document")
    for queue in sorted(menu.known_queues):
        if not QUEUE_NAME.fullmatch(queue):
            raise InvalidConfig(f"Nama antrean {queue[:40]!r} tidak sah: huruf kecil dan '-', "
                                "paling banyak 40 karakter.", "document")
        if queue in RESERVED_QUEUES:
            raise InvalidConfig(f"Nama antrean {queue!r} dipakai Asterisk untuk pengaturan "
                                "umumnya (queues.conf), bukan untuk antrean: pilih nama lain, "
                                "mis. 'umum'.", "document")
    return menu


def check_screening(document: Any) -> ScoreConfig:
    """The screening configuration ``document`` describes, or :class:`InvalidConfig`."""
    try:
        return ScoreConfig.from_mapping(document)
    except ScoreConfigError as exc:
        raise InvalidConfig(f"Konfigurasi penyaringan tidak sah: {exc}", "document") from exc


def check_document(kind: ConfigKind, document: Any) -> None:
    """Validate a document of ``kind`` (see :func:`check_menu`, :func:`check_screening`)."""
    # A JSON escape (``\u0000``, ``\ud800``) brings such text in past every check of the
    # console form's raw text, in parts the line ignores too; JSONB would refuse it.
    if holds_unsafe_text(document):
        raise InvalidConfig("Dokumen berisi karakter yang tidak sah (NUL atau \\ud800-"
                            "\\udfff).", "document")
    if kind is ConfigKind.MENU:
        check_menu(document)
    else:
        check_screening(document)


def check_prompt(document: Mapping[str, Any], prompt: str) -> str:
    """``prompt`` if the menu ``document`` has a prompt of that name."""
    if prompt not in check_menu(document).prompts:
        raise InvalidConfig(f"Menu ini tidak punya rekaman suara bernama {prompt[:40]!r}.",
                            "prompt")
    return prompt


def versioned_prompt(name: str, version_id: int) -> str:
    """The name a prompt of version ``version_id`` is installed (and played) under."""
    return f"{name}-v{version_id}"


def live_menu_document(document: Mapping[str, Any], version_id: int) -> dict[str, Any]:
    """The menu file the line loads for a published version: every prompt renamed with
    :func:`versioned_prompt`, and ``version`` set to the version id (the line logs it)."""
    menu = check_menu(document)

    def renamed(name: str | None) -> str | None:
        return None if name is None else versioned_prompt(name, version_id)

    live: dict[str, Any] = {**document, "version": version_id}
    live["prompts"] = {renamed(name): text for name, text in menu.prompts.items()}
    live["lines"] = {
        line: {**raw, **({"greeting": renamed(raw["greeting"])} if raw.get("greeting") else {})}
        for line, raw in document["lines"].items()
    }
    live["menus"] = {}
    for name, raw in document["menus"].items():
        menu_raw = {**raw, "prompt": renamed(raw["prompt"])}
        if raw.get("invalid_prompt"):
            menu_raw["invalid_prompt"] = renamed(raw["invalid_prompt"])
        live["menus"][name] = menu_raw
    if "screening" in document:
        live["screening"] = {**document["screening"],
                             "prompt": renamed(document["screening"]["prompt"])}
    return live


def screening_document(config: ScoreConfig) -> dict[str, Any]:
    """Every field of ``config``, as the JSON an admin edits (defaults included)."""
    document = dataclasses.asdict(config)
    document["hour_weights"] = list(config.hour_weights)
    return document


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} dtk"


def _route_label(route: Route) -> str:
    category = CATEGORY_LABELS.get(route.category, route.category)
    return f"antrean {route.queue} ({category}, keahlian {route.skill})"


def _menu_node(menu: IvrMenu, current: Menu, heading: str) -> TreeNode:
    children: list[TreeNode] = []
    for key, option in sorted(current.options.items()):
        if option.submenu is not None:
            children.append(_menu_node(menu, menu.menus[option.submenu], f"Tekan {key}: menu"))
        else:
            assert option.route is not None  # parse_menu: an option has a route or a menu
            children.append(TreeNode(f"Tekan {key} → {_route_label(option.route)}"))
    children.append(TreeNode(f"Tanpa tekan atau pilihan salah → {_route_label(current.default)}"))
    if current.invalid_prompt is not None:
        children.append(TreeNode("Bila pilihan salah, terdengar:", current.invalid_prompt,
                                 menu.prompts[current.invalid_prompt]))
    label = (f"{heading} {current.name}: tunggu {_seconds(current.timeout_ms)}, ditanya "
             f"{current.no_input_attempts}x bila tanpa tekan, {current.invalid_attempts}x bila "
             "salah")
    return TreeNode(label, current.prompt, menu.prompts[current.prompt], tuple(children))


def menu_tree(menu: IvrMenu) -> tuple[TreeNode, ...]:
    """The menu as an admin reads it: each line, what it plays, and where each key leads."""
    nodes: list[TreeNode] = []
    for line, entry in sorted(menu.lines.items()):
        children: list[TreeNode] = []
        if entry.greeting is not None:
            children.append(TreeNode("Salam", entry.greeting, menu.prompts[entry.greeting]))
        if entry.menu is not None:
            children.append(_menu_node(menu, menu.menus[entry.menu], "Menu"))
        else:
            assert entry.route is not None  # parse_menu: an entry has a route or a menu
            children.append(TreeNode(f"Langsung → {_route_label(entry.route)}"))
        default = " (juga nomor lain)" if line == menu.default_line else ""
        nodes.append(TreeNode(f"Jalur {line}{default}", children=tuple(children)))
    if menu.screening is not None:
        nodes.append(TreeNode(
            f"Penyaringan (skor iseng tinggi), lalu menunggu {_seconds(menu.screening.wait_ms)}",
            menu.screening.prompt, menu.prompts[menu.screening.prompt]))
    return tuple(nodes)
