"""One row mapper for every store: a dataclass built from the columns of the same names.

Stores select columns named as the model's fields; enum fields (plain or optional) are
converted from their stored code, and a field the row computes differently (coordinates from
two columns, a joined name) is passed as an override. A column the model lacks is ignored, a
field the row lacks is an error: a query that forgot a column fails loudly in the tests.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")


def from_row(cls: type[T], row: asyncpg.Record | Mapping[str, Any], **overrides: Any) -> T:
    """``cls(**fields)`` from ``row``: each field from its column, enums by code."""
    values: dict[str, Any] = {}
    for name, convert in _converters(cls):
        if name in overrides:
            values[name] = overrides[name]
            continue
        value = row[name]
        values[name] = value if value is None or convert is None else convert(value)
    return cls(**values)


_Converters = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_CONVERTERS: dict[type[Any], _Converters] = {}


def _converters(cls: type[Any]) -> _Converters:
    """Per init field of the dataclass ``cls``: its name and the enum to convert to, if any
    (worked out once per class: type hints are slow to resolve)."""
    known = _CONVERTERS.get(cls)
    if known is None:
        hints = typing.get_type_hints(cls)
        known = tuple((field.name, _enum_of(hints[field.name]))
                      for field in dataclasses.fields(cls) if field.init)
        _CONVERTERS[cls] = known
    return known


def _enum_of(hint: Any) -> type[Enum] | None:
    """The enum type of ``E`` or ``E | None``; ``None`` for anything else."""
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        enums = [arg for arg in typing.get_args(hint)
                 if isinstance(arg, type) and issubclass(arg, Enum)]
        if len(enums) == 1:
            return enums[0]
    return None
