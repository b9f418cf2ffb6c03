"""The menu routine's arguments (strictly checked) and its answers (strictly parsed)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from ivr.keys import (
    MAX_ANSWERS,
    Answer,
    KeyProgramError,
    KeyTrace,
    KeyTraceError,
    key_program,
    parse_trace,
)
from ivr.menu import load_menu, parse_menu

MENU = load_menu()


def document() -> dict[str, Any]:
    text = resources.files("ivr").joinpath("menu.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_the_default_112_menu_as_routine_arguments() -> None:
    program = key_program(MENU, MENU.entry_for("112"))
    assert program.arguments() == ",".join([
        "siaga112/salam-112",
        "siaga112/menu-utama|5|1|2|siaga112/pilihan-salah|12389|",
        "1:siaga112/menu-darurat|3|1|1||1234|emergency",
    ])


def test_fractional_waits_and_special_keys_pass() -> None:
    doc = document()
    doc["menus"]["darurat"]["timeout_ms"] = 2500
    doc["menus"]["utama"]["options"]["#"] = doc["menus"]["utama"]["options"].pop("1")
    menu = parse_menu(doc)
    arguments = key_program(menu, menu.entry_for("112")).arguments()
    assert arguments.endswith(",#:siaga112/menu-darurat|2.5|1|1||1234|emergency")
    assert "|#2389" in arguments


def test_a_sub_menu_whose_routes_mix_categories_publishes_none() -> None:
    doc = document()
    doc["menus"]["darurat"]["options"]["4"]["route"]["category"] = "information"
    menu = parse_menu(doc)
    arguments = key_program(menu, menu.entry_for("112")).arguments()
    assert arguments.endswith(",1:siaga112/menu-darurat|3|1|1||1234|")


def test_a_line_that_routes_directly_has_no_program() -> None:
    with pytest.raises(KeyProgramError):
        key_program(MENU, MENU.entry_for("119"))


@pytest.mark.parametrize("name", ["menü", "a,b", "a|b", "a:b", "a&b", "a(b)", "a_b", "-a",
                                  "a" * 65])
def test_a_prompt_that_could_smuggle_arguments_is_refused(name: str) -> None:
    doc = document()
    doc["prompts"][name] = "teks"
    doc["menus"]["utama"]["prompt"] = name
    # The menu's own validation refuses it before it could reach a call.
    with pytest.raises(ValueError, match="nama rekaman suara"):
        parse_menu(doc)


@pytest.mark.parametrize(("text", "expected"), [
    ("", KeyTrace(())),
    ("1@2310/2@2362", KeyTrace((Answer("1", 2310), Answer("2", 2362)))),
    ("-@7004", KeyTrace((Answer(None, 7004),))),
    ("#@10/*@20/A@30", KeyTrace((Answer("#", 10), Answer("*", 20), Answer("A", 30)))),
    ("7@900/!ERROR", KeyTrace((Answer("7", 900),), "ERROR")),
    ("!HANGUP", KeyTrace((), "HANGUP")),
])
def test_traces_parse(text: str, expected: KeyTrace) -> None:
    assert parse_trace(text) == expected


@pytest.mark.parametrize("text", [
    "1", "12@5", "1@", "1@-5", "x@1", "1@2/", "!ERROR/1@2", "1@2\n", "1@12345678",
    "/".join(["1@1"] * (MAX_ANSWERS + 2)),
])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(KeyTraceError):
        parse_trace(text)
