"""The one row mapper: columns by field name, enums by code, overrides for computed fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from telephony.core.labels import LabelledStrEnum
from telephony.db.rows import from_row


class Colour(LabelledStrEnum):
    RED = "red", "Merah"
    BLUE = "blue", "Biru"


@dataclass(frozen=True)
class Thing:
    thing_id: int
    colour: Colour
    trim: Colour | None
    made_at: datetime
    tags: frozenset[str] = frozenset()
    cached: str = field(default="", init=False)


_MADE = datetime(2025, 1, 31, 8, 0, tzinfo=UTC)


def test_columns_fill_fields_and_enums_are_read_by_code() -> None:
    thing = from_row(Thing, {"thing_id": 7, "colour": "red", "trim": "blue", "made_at": _MADE,
                             "tags": frozenset({"a"})})
    assert thing == Thing(7, Colour.RED, Colour.BLUE, _MADE, frozenset({"a"}))
    assert thing.colour is Colour.RED
    assert thing.colour.label == "Merah"


def test_an_optional_enum_stays_none() -> None:
    thing = from_row(Thing, {"thing_id": 1, "colour": "blue", "trim": None, "made_at": _MADE,
                             "tags": frozenset()})
    assert thing.trim is None
    assert thing.colour is Colour.BLUE


def test_an_override_replaces_the_column_and_extra_columns_are_ignored() -> None:
    tags = ["b", "a", "b"]
    row = {"thing_id": 1, "colour": "red", "trim": None, "made_at": _MADE, "tags": tags,
           "not_a_field": 42}
    thing = from_row(Thing, row, tags=frozenset(tags))
    assert thing.tags == frozenset({"a", "b"})


def test_an_override_needs_no_column() -> None:
    thing = from_row(Thing, {"thing_id": 1, "colour": "red", "trim": None, "made_at": _MADE},
                     tags=frozenset())
    assert thing.tags == frozenset()


def test_a_missing_column_fails_loudly_even_with_a_default() -> None:
    with pytest.raises(KeyError, match="tags"):
        from_row(Thing, {"thing_id": 1, "colour": "red", "trim": None, "made_at": _MADE})


def test_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="green"):
        from_row(Thing, {"thing_id": 1, "colour": "green", "trim": None, "made_at": _MADE,
                         "tags": frozenset()})
