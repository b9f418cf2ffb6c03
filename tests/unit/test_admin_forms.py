"""The console's editors: the menu and screening documents an admin's posted form makes."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from telephony.admin.errors import InvalidConfig
from telephony.admin.forms import (
    menu_from_form,
    route_choices,
    route_value,
    screening_from_form,
)
from telephony.admin.versions import check_menu


def menu() -> dict[str, Any]:
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def test_the_form_offers_every_route_of_the_menu_once() -> None:
    choices = dict(route_choices(menu()))
    assert choices["route:emergency:fire:fire"] == "antrean fire (darurat, keahlian fire)"
    assert len(choices) == 9  # one per (category, skill, queue) the menu routes to
    assert route_value({"category": "emergency", "skill": "general",
                        "queue": "emergency-general"}) in choices


def test_a_posted_form_changes_what_it_names_and_nothing_else() -> None:
    before = menu()
    after = menu_from_form(before, {
        "prompt.menu-utama": "  Darurat,\n tekan satu.  ",
        "menu.utama.timeout": "2,5", "menu.utama.no_input": "2",
        "menu.utama.default": "route:complaint:general:non-emergency",
        "option.utama.9": "", "option.utama.2": "menu:darurat",
        "new.utama.key": "7", "new.utama.target": "route:emergency:medical:medical",
        "screening.wait": "12",
    })
    assert before == menu()  # the version edited is left alone
    utama = after["menus"]["utama"]
    assert after["prompts"]["menu-utama"] == "Darurat, tekan satu."
    assert (utama["timeout_ms"], utama["no_input_attempts"], utama["invalid_attempts"]) == (
        2500, 2, 2)
    assert utama["default"]["queue"] == "non-emergency"
    assert "9" not in utama["options"] and utama["options"]["2"] == {"menu": "darurat"}
    assert utama["options"]["7"]["route"]["queue"] == "medical"
    assert after["screening"]["wait_ms"] == 12000
    assert after["menus"]["darurat"] == before["menus"]["darurat"]
    check_menu(after)


@pytest.mark.parametrize(("form", "message"), [
    ({"menu.utama.timeout": "lima"}, "harus berupa angka"),
    ({"option.utama.1": "route:emergency:fire:nowhere"}, "tidak dikenal"),
    ({"menu.utama.default": "menu:darurat"}, "harus ke sebuah antrean"),
    ({"new.utama.key": "1", "new.utama.target": "menu:darurat"}, "sudah dipakai"),
    ({"new.utama.key": "x", "new.utama.target": "menu:darurat"}, "pilih tombol"),
    ({"new.utama.key": "7"}, "pilih tombol"),
])
def test_a_bad_form_is_refused_with_a_reason(form: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        menu_from_form(menu(), form)


def test_the_screening_form_sets_thresholds_and_priorities() -> None:
    assert screening_from_form({"weights": {"withheld": 0.5}}, {
        "screening_threshold": "0,8", "normal_priority": "12", "lowered_priority": ""}) == {
        "weights": {"withheld": 0.5}, "screening_threshold": 0.8, "normal_priority": 12}
    with pytest.raises(InvalidConfig, match="angka bulat"):
        screening_from_form({}, {"normal_priority": "1.5"})
