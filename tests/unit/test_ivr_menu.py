"""Menu validation: a broken admin edit is refused before it reaches a caller."""

import copy
import json
import wave
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from ivr.menu import MenuError, load_menu, parse_menu
from ivr.source import line_menu_source, menu_source
from telephony.settings import Settings

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


def write_prompt(path: Path, seconds: int) -> None:
    """A WAV of ``seconds`` (100 frames a second: only its length is read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(100)
        audio.writeframes(b"\0\0" * 100 * seconds)


def test_a_hand_edited_menu_too_long_for_the_ivr_session_is_refused_at_load(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Only a menu published through the console was timed; one edited by hand in menu_file
    # that keeps a caller past the IVR session's guard was taken, and the dialplan's
    # fail-open cut its callers off mid-prompt, without the choice they were making.
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(DEFAULT), encoding="utf-8")
    configured = replace(settings, menu_file=path)  # a guard of 90 s: a menu may take 87.7
    source = line_menu_source(configured)
    waits = edited(lambda d: d["menus"]["utama"].update(timeout_ms=30000, no_input_attempts=3))
    path.write_text(json.dumps(waits), encoding="utf-8")
    assert source.current().menus["utama"].timeout_ms == 5000  # the last good menu stays
    assert ("menu edit refused, keeping the last good one (version 1): menu jalur 112 bisa "
            "menahan penelepon 123 detik") in caplog.text
    # The prompts' own lengths count: the audio `siaga112 prompts` made for the edited menu.
    longer = edited(lambda d: d["menus"]["utama"].update(timeout_ms=20000))
    path.write_text(json.dumps(longer), encoding="utf-8")
    assert source.current().menus["utama"].timeout_ms == 20000  # 2 x 20 + 3 s of waits
    write_prompt(configured.prompts_dir / "menu-utama.wav", 30)
    path.write_text(json.dumps(edited(lambda d: d["menus"]["utama"].update(timeout_ms=19000))),
                    encoding="utf-8")
    assert source.current().menus["utama"].timeout_ms == 20000
    assert "menu jalur 112 bisa menahan penelepon 101 detik" in caplog.text  # 41 s untimed
    # At the line's start there is no last good menu: it runs (the guard fails open to the
    # queue) and says why; an IVR process the line restarts keeps the line's menu.
    caplog.clear()
    path.write_text(json.dumps(waits), encoding="utf-8")
    assert line_menu_source(configured).current().menus["utama"].timeout_ms == 30000
    assert "menu version 1 runs as it is" in caplog.text
    assert line_menu_source(configured, last_good=load_menu()).current() == load_menu()
