"""Text no record can hold: found at any depth of decoded JSON, keys included."""

from __future__ import annotations

import errno
import unicodedata

import pytest

from telephony.core.text import (
    INVISIBLE_CATEGORIES,
    ascii_digits,
    bidi_control,
    holds_invisible,
    holds_unsafe_text,
    invisible,
    os_reason,
    unsafe_line,
    unsafe_text,
    whole_number,
)
from tests.support.web import BIDI_CONTROLS, spoofed


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff"])
def test_a_nul_or_a_lone_surrogate_is_unsafe(text: str) -> None:
    assert unsafe_text(text)


@pytest.mark.parametrize("text", ["", "Kebakaran di Jl. Merdeka", "line\nbreak", "\U0001f525"])
def test_ordinary_text_is_safe(text: str) -> None:
    assert not unsafe_text(text)


@pytest.mark.parametrize("value", [
    {"menus": [{"prompt": {"text": "a\x00"}}]},
    {"ok": 1, "k\ud800": "v"},
    [[["\ud800"]]],
])
def test_unsafe_text_is_found_at_any_depth_and_in_keys(value: object) -> None:
    assert holds_unsafe_text(value)


def test_a_deep_document_of_safe_text_is_walked_without_recursion() -> None:
    deep: object = "ok"
    for _ in range(100_000):
        deep = [deep]
    assert not holds_unsafe_text({"a": deep, "b": 1.5, "c": None, "d": True})


@pytest.mark.parametrize(("text", "expected"), [
    ("0", True), ("2026", True), ("", False), ("\u0661\u0662", False), ("\u00b2", False),
    ("1a", False), (" 1", False), ("-1", False), ("\uff11", False)])
def test_a_number_we_parse_is_ascii_digits(text: str, expected: bool) -> None:
    assert ascii_digits(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("2026", 2026), ("9" * 18, int("9" * 18)), ("9" * 19, None),
    # Past 4300 digits int() raises a ValueError of its own, where a number or None is owed.
    ("9" * 5000, None), ("", None), ("\u0661", None), ("-1", None)])
def test_a_whole_number_is_at_most_18_ascii_digits(text: str, expected: int | None) -> None:
    assert whole_number(text) == expected


@pytest.mark.parametrize(("error", "expected"), [
    (FileNotFoundError(errno.ENOENT, "No such file or directory"),
     "berkas atau direktori tidak ada"),
    (PermissionError(errno.EACCES, "Permission denied"), "izin ditolak"),
    (OSError(errno.ENOSPC, "No space left on device"), "ruang disk habis"),
    (OSError(errno.EROFS, "Read-only file system"), "sistem berkas hanya-baca"),
])
def test_a_common_os_error_is_told_in_bahasa_indonesia(error: OSError, expected: str) -> None:
    assert os_reason(error) == expected


def test_an_uncommon_os_error_keeps_the_system_reason() -> None:
    assert os_reason(OSError(errno.ELOOP, "Too many levels of symbolic links")) == (
        "Too many levels of symbolic links")
    assert os_reason(OSError("disk full")) == "disk full"


@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_a_bidi_control_cannot_be_part_of_a_name(control: str) -> None:
    assert bidi_control(f"Sari{control}") and unsafe_line(spoofed("Sari", control))
    assert not unsafe_text(control)  # free text keeps it (incidents.model.clean_text)


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\tb", "a\x85b", "a\u2028b", "a\u2029b",
                                  "a\x7fb", "a\x00b", "\ud800"])
def test_a_line_break_or_control_cannot_be_part_of_a_name(text: str) -> None:
    assert unsafe_line(text) and not bidi_control(text)


@pytest.mark.parametrize("text", ["Sari", "Pos Damkar Kota", "Jl. Trunojoyo 12", "", "--x",
                                  "\u0645\u0633\u062c\u062f", "\u00e9\u00e8 \u00fc"])
def test_plain_names_in_any_script_are_one_line(text: str) -> None:
    assert not unsafe_line(text) and not bidi_control(text)


def test_holds_invisible_takes_a_printable_string_as_it_is_on_every_code_point() -> None:
    """The shortcut (str.isprintable) keeps nothing the per-character rule would find."""
    for point in range(0x110000):
        char = chr(point)
        assert holds_invisible(char) is invisible(char), hex(point)
        if char.isprintable():
            assert unicodedata.category(char) not in INVISIBLE_CATEGORIES, hex(point)


@pytest.mark.parametrize("text", ["\u202eanirS", "a\u200bb", "\ufeff", "a\tb", "\ue000",
                                  "a\u2028b", "\U000e0001"])
def test_a_disguising_character_is_invisible(text: str) -> None:
    assert holds_invisible(text)


@pytest.mark.parametrize("text", ["Sari", "+6281234", "a b", "a\u00a0b", "\u0645\u0633", "☎é"])
def test_text_anyone_can_see_is_not_invisible(text: str) -> None:
    assert not holds_invisible(text)
