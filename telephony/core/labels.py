"""Enums whose members carry their label for people: one pattern for every coded choice.

A code (``"fire"``) is what the database, AMI and the API keep; its label (``"Kebakaran"``) is
what an operator reads. Declaring both on the member keeps them from drifting apart::

    class Status(LabelledStrEnum):
        NEW = "new", "Baru"

    Status("new").label == "Baru"
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Self


class LabelledStrEnum(StrEnum):
    """A string enum whose members are declared as ``CODE = "code", "Label"``."""

    _value_: str
    label: str

    # ``label`` defaults only for the type checker: a lookup by code (``Status("new")``) goes
    # through Enum's own ``__new__``, never this one, which runs once per declared member.
    def __new__(cls, value: str, label: str = "") -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def labels(cls) -> dict[str, str]:
        """Code -> label, in declaration order (for forms and the API)."""
        return {member.value: member.label for member in cls}


class LabelledIntEnum(IntEnum):
    """An integer enum whose members are declared as ``NAME = 1, "Label"``."""

    _value_: int
    label: str

    def __new__(cls, value: int, label: str = "") -> Self:
        member = int.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def labels(cls) -> dict[int, str]:
        """Value -> label, in declaration order."""
        return {member.value: member.label for member in cls}
