"""Menu and screening documents as an admin edits them: validation with messages for the
admin, the live document of a published version, the readable tree."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from ivr.menu import MenuError, parse_menu
from ivr.source import line_menu_source
from telephony.admin.errors import InvalidConfig
from telephony.admin.files import replace_text
from telephony.admin.versions import (
    ConfigKind,
    check_document,
    check_menu,
    check_prompt,
    check_screening,
    live_menu_document,
    menu_tree,
    screening_document,
    versioned_prompt,
)
from telephony.screening.score import ScoreConfig
from telephony.settings import Settings


def default_menu() -> dict[str, Any]:
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def test_the_packaged_menu_is_a_valid_admin_document() -> None:
    menu = check_menu(default_menu())
    assert "menu-utama" in menu.prompts


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["menus"]["utama"].update(timeout_ms=100), "timeout_ms"),
    (lambda d: d["menus"]["utama"]["options"]["2"]["route"].update(queue="nowhere"),
     "tidak ada di known_queues"),
    (lambda d: d["prompts"].update({"Salam-Besar": "teks"}), "Nama rekaman suara"),
    (lambda d: d["prompts"].update({"menu-utama": "x" * 1001}), "terlalu panjang"),
    (lambda d: d["known_queues"].append("Bad_Queue"), "Nama antrean"),
    (lambda d: (d["known_queues"].append("general"),
                d["menus"]["utama"]["options"]["2"]["route"].update(queue="general")),
     "dipakai Asterisk untuk pengaturan umumnya"),
    (lambda d: d.pop("prompts"), "'prompts' tidak ada"),
])
def test_a_broken_menu_is_refused_with_a_reason(edit: Any, message: str) -> None:
    document = default_menu()
    edit(document)
    with pytest.raises(InvalidConfig, match=message) as refused:
        check_document(ConfigKind.MENU, document)
    assert refused.value.field == "document"


def test_a_screening_document_is_held_to_score_config() -> None:
    assert check_screening({"screening_threshold": 0.8}).screening_threshold == 0.8
    with pytest.raises(InvalidConfig, match=r"penyaringan tidak sah.*ambang"):
        check_screening({"lower_priority_threshold": 0.9, "screening_threshold": 0.5})
    with pytest.raises(InvalidConfig, match="pengaturan tidak dikenal"):
        check_document(ConfigKind.SCREENING, {"bogus": 1})


def test_every_screening_setting_is_in_the_edited_document() -> None:
    document = screening_document(ScoreConfig())
    assert document["weights"]["calls_hour"] == ScoreConfig().weights.calls_hour
    assert len(document["hour_weights"]) == 24
    assert ScoreConfig.from_mapping(json.loads(json.dumps(document))) == ScoreConfig()


def test_a_live_menu_plays_prompts_of_its_own_version() -> None:
    document = default_menu()
    original = copy.deepcopy(document)
    live = live_menu_document(document, 7)
    assert document == original  # the version's own document is left alone
    menu = parse_menu(live)
    assert menu.version == 7
    assert set(menu.prompts) == {versioned_prompt(name, 7) for name in original["prompts"]}
    assert menu.menus["utama"].prompt == "menu-utama-v7"
    assert menu.menus["utama"].invalid_prompt == "pilihan-salah-v7"
    assert menu.lines["112"].greeting == "salam-112-v7"
    assert menu.screening is not None and menu.screening.prompt == "saring-v7"
    assert menu.trailing_silence_ms == {"saring-v7": 10000}
    assert menu.prompts["menu-utama-v7"] == original["prompts"]["menu-utama"]
    # Routes and timings are the version's.
    assert menu.menus["darurat"].timeout_ms == original["menus"]["darurat"]["timeout_ms"]


def test_the_menu_tree_reads_as_the_caller_hears_it() -> None:
    tree = menu_tree(check_menu(default_menu()))
    labels = [node.label for node in tree]
    assert labels[0] == "Jalur 112 (juga nomor lain)"
    assert labels[1] == "Jalur 119"
    assert labels[2].startswith("Penyaringan")
    greeting, main = tree[0].children
    assert greeting.prompt == "salam-112" and greeting.text == "Layanan darurat satu satu dua."
    assert main.label.startswith("Menu utama: tunggu 5 dtk")
    options = [child.label for child in main.children]
    assert options[0].startswith("Tekan 1: menu darurat")
    assert "Tekan 2 → antrean non-emergency (pengaduan, keahlian general)" in options
    assert any(o.startswith("Tanpa tekan atau pilihan salah → antrean emergency-general")
               for o in options)
    assert tree[1].children[1].label == (
        "Langsung → antrean medical (darurat, keahlian medical)")


def test_an_upload_must_name_a_prompt_of_the_menu() -> None:
    assert check_prompt(default_menu(), "saring") == "saring"
    with pytest.raises(InvalidConfig, match="tidak punya rekaman suara"):
        check_prompt(default_menu(), "tidak-ada")


def test_the_state_directory_menu_is_the_default_until_an_admin_publishes(
        tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    source = line_menu_source(settings)
    assert source.current().version == 1 and not settings.live_menu_file.exists()
    published = live_menu_document(default_menu(), 7)
    replace_text(settings.live_menu_file, json.dumps(published))
    assert source.current().version == 7
    # The next publish replaces the file with one of the same size at once: still seen.
    replace_text(settings.live_menu_file, json.dumps({**published, "version": 8}))
    assert source.current().version == 8
    # A menu file the settings name must exist: no silent default for a typo.
    with pytest.raises(MenuError):
        line_menu_source(replace(settings, menu_file=tmp_path / "tidak-ada.json"))
