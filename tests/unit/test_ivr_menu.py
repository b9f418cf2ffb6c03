"""Menu validation: a broken admin edit is refused before it reaches a caller."""

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from ivr.menu import MenuError, load_menu, parse_menu
from ivr.source import menu_source

DEFAULT: dict[str, Any] = json.loads(
    resources.files("ivr").joinpath("menu.json").read_text("utf-8"))


def edited(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEFAULT)
    change(document)
    return document


def test_default_menu_is_valid() -> None:
    menu = load_menu()
    assert menu.fail_open_route("112").queue == "emergency-general"
    assert menu.fail_open_route("119").queue == "medical"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["menus"]["utama"]["options"].__setitem__(
            "1", {"route": {"category": "emergency", "skill": "x", "queue": "nowhere"}}),
         "antrean 'nowhere' tidak ada"),
        (lambda d: d["menus"]["utama"]["options"].__setitem__("A", {"menu": "darurat"}),
         "bukan tombol telepon"),
        (lambda d: d["menus"]["darurat"]["options"].__setitem__("9", {"menu": "utama"}),
         "bersarang lebih dari"),
        (lambda d: d["prompts"].pop("menu-utama"), "tidak ada teks untuk menu-utama"),
        (lambda d: d["menus"]["utama"].__setitem__("timeout_ms", 10), "timeout_ms"),
        (lambda d: d["menus"]["utama"].__setitem__("timeout_ms", True), "harus bilangan bulat"),
        (lambda d: d["prompts"].__setitem__("../../etc/passwd", "x"), "nama rekaman suara"),
        (lambda d: d.__setitem__("default_line", "999"), "bukan salah satu jalur"),
        (lambda d: d["lines"]["112"].__setitem__("route", {}), "tepat satu"),
        (lambda d: d["menus"]["utama"]["default"].__setitem__("category", "x"), "category"),
        # Odd but valid JSON an admin may publish: each was accepted, and then either failed
        # every call of the line (a menu without keys: the menu routine needs one) or failed
        # with a TypeError, a 500 at the console instead of a reason.
        (lambda d: d["menus"]["utama"].__setitem__("options", {}), "paling sedikit satu tombol"),
        (lambda d: d["menus"]["darurat"].__setitem__("options", {}),
         "menus.darurat.options: menu harus punya"),
        (lambda d: d["known_queues"].append(5), "nama antrean harus teks, bukan bilangan bulat"),
        (lambda d: d["known_queues"].append({"x": 1}), "nama antrean harus teks, bukan objek"),
        (lambda d: d["menus"]["utama"].__setitem__("invalid_prompt", 5),
         "invalid_prompt: harus teks"),
        (lambda d: d["lines"]["112"].__setitem__("greeting", ["salam-112"]),
         "greeting: harus teks, bukan daftar"),
        (lambda d: d["lines"]["112"].__setitem__("menu", ["utama"]), "menu: harus teks"),
        (lambda d: d["prompts"].__setitem__("menu-utama", 5), "harus teks, bukan bilangan"),
    ],
)
def test_broken_menus_are_refused(change: Any, message: str) -> None:
    with pytest.raises(MenuError, match=message):
        parse_menu(edited(change))


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "menu.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(MenuError, match="tidak dapat dibaca"):
        load_menu(path)


def test_menu_source_reloads_edits_and_keeps_the_last_good_menu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(DEFAULT), encoding="utf-8")
    source = menu_source(path)
    assert source.current().menus["utama"].timeout_ms == 5000

    path.write_text(json.dumps(edited(
        lambda d: d["menus"]["utama"].__setitem__("timeout_ms", 7000))), encoding="utf-8")
    assert source.current().menus["utama"].timeout_ms == 7000

    path.write_text("{broken", encoding="utf-8")
    assert source.current().menus["utama"].timeout_ms == 7000
    assert "menu edit refused" in caplog.text
