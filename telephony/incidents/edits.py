"""Operators' edits of an incident's details: the patch as a form or JSON sends it, applied to
what is stored, with the village and sub-district made to agree with the gazetteer, and the
changes as the timeline records them. Pure: the service asks the gazetteer and passes its
answers in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from telephony.incidents.errors import ValidationError
from telephony.incidents.model import (
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    Coordinates,
    IncidentDetails,
    Priority,
    ReportType,
    clean_text,
    parse_priority,
    parse_report_type,
)

_VILLAGE_CODE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{4}")
_SUB_DISTRICT_CODE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}")


def _gazetteer_code(field: str, value: object, pattern: re.Pattern[str]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise ValidationError(field, f"Kode wilayah tidak sah: {str(value)[:40]!r}.")
    return value.strip()


def _degrees(field: str, value: object, bounds: tuple[float, float], what: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.isascii():  # float() reads other scripts' digits too
        try:
            number = float(value.strip().replace(",", "."))
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ValidationError(field, f"{what} harus berupa angka derajat.")
    low, high = bounds
    if not low <= number <= high:
        raise ValidationError(
            field, f"{what} harus di antara {low:g} dan {high:g} (wilayah Indonesia)."
        )
    return number


def parse_coordinates(latitude: object, longitude: object) -> Coordinates | None:
    """Both or neither; within Indonesia's bounding box (roughly)."""
    if latitude is None and longitude is None:
        return None
    if latitude is None or longitude is None:
        field = "latitude" if latitude is None else "longitude"
        raise ValidationError(field, "Lintang dan bujur harus diisi bersama.")
    return Coordinates(
        _degrees("latitude", latitude, LATITUDE_RANGE, "Lintang"),
        _degrees("longitude", longitude, LONGITUDE_RANGE, "Bujur"),
    )


LOCATION_MAX: Final = 500
DESCRIPTION_MAX: Final = 4000


class Unset(Enum):
    """Marks a field an edit leaves alone (``None`` means "clear it")."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True)
class IncidentPatch:
    """An operator's edit: only the fields given change."""

    report_type: ReportType | Unset = UNSET
    priority: Priority | Unset = UNSET
    location_text: str | Unset = UNSET
    village_code: str | Unset | None = UNSET
    sub_district_code: str | Unset | None = UNSET
    coordinates: Coordinates | Unset | None = UNSET
    description: str | Unset = UNSET

    @property
    def touches_place(self) -> bool:
        """Whether the village or sub-district is part of the edit."""
        return self.village_code is not UNSET or self.sub_district_code is not UNSET


_PATCH_FIELDS: Final = frozenset({
    "report_type", "priority", "location_text", "village_code", "sub_district_code",
    "latitude", "longitude", "description",
})


def parse_patch(raw: Mapping[str, object]) -> IncidentPatch:
    """Validate an edit as it comes from a form or JSON; unknown fields are refused.

    ``latitude``/``longitude`` come together (both ``None`` clears the point); an empty
    village or sub-district code clears it.
    """
    unknown = sorted(set(raw) - _PATCH_FIELDS)
    if unknown:
        raise ValidationError(unknown[0], f"Kolom tidak dikenal: {unknown[0][:40]!r}.")
    if not raw:
        raise ValidationError("", "Tidak ada perubahan yang dikirim.")
    values: dict[str, Any] = {}
    if "report_type" in raw:
        values["report_type"] = parse_report_type(raw["report_type"])
    if "priority" in raw:
        values["priority"] = parse_priority(raw["priority"])
    if "location_text" in raw:
        values["location_text"] = clean_text(
            "location_text", raw["location_text"], max_length=LOCATION_MAX
        )
    if "description" in raw:
        values["description"] = clean_text(
            "description", raw["description"], max_length=DESCRIPTION_MAX, multiline=True
        )
    if "village_code" in raw:
        values["village_code"] = _gazetteer_code("village_code", raw["village_code"],
                                                 _VILLAGE_CODE)
    if "sub_district_code" in raw:
        values["sub_district_code"] = _gazetteer_code(
            "sub_district_code", raw["sub_district_code"], _SUB_DISTRICT_CODE
        )
    if "latitude" in raw or "longitude" in raw:
        if "latitude" not in raw or "longitude" not in raw:
            field = "longitude" if "latitude" in raw else "latitude"
            raise ValidationError(field, "Lintang dan bujur harus diisi bersama.")
        values["coordinates"] = parse_coordinates(raw["latitude"], raw["longitude"])
    return IncidentPatch(**values)


def apply_patch(current: IncidentDetails, patch: IncidentPatch) -> IncidentDetails:
    """The details after the edit, before the gazetteer check of :func:`settle_place`.

    A village cleared takes its sub-district with it (as choosing one brings it), unless
    the edit names a sub-district: an operator who picked the wrong village and set it
    back to "belum diketahui" kept its sub-district, which the console form does not show
    and so could not clear, and the incident (and the agencies notified of it) read "Kec."
    of a place the operator had taken back.
    """

    def pick(new: Any, old: Any) -> Any:
        return old if new is UNSET else new

    village_cleared = patch.village_code is None and current.village_code is not None
    sub_district = (None if village_cleared and patch.sub_district_code is UNSET
                    else pick(patch.sub_district_code, current.sub_district_code))
    return IncidentDetails(
        report_type=pick(patch.report_type, current.report_type),
        priority=pick(patch.priority, current.priority),
        location_text=pick(patch.location_text, current.location_text),
        village_code=pick(patch.village_code, current.village_code),
        sub_district_code=sub_district,
        coordinates=pick(patch.coordinates, current.coordinates),
        description=pick(patch.description, current.description),
    )


def settle_place(
    details: IncidentDetails,
    patch: IncidentPatch,
    *,
    village_sub_district: str | None,
    sub_district_known: bool,
) -> IncidentDetails:
    """Make village and sub-district agree, using what the gazetteer says.

    ``village_sub_district`` is the sub-district of ``details.village_code`` (``None``: no such
    village); ``sub_district_known`` whether ``details.sub_district_code`` exists. A village
    chosen by the operator brings its sub-district; a sub-district chosen alone drops a village
    that lies elsewhere; both chosen must agree.
    """
    if details.village_code is not None and village_sub_district is None:
        raise ValidationError("village_code",
                              f"Desa/kelurahan {details.village_code} tidak ada di gazetir.")
    if details.sub_district_code is not None and not sub_district_known:
        raise ValidationError("sub_district_code",
                              f"Kecamatan {details.sub_district_code} tidak ada di gazetir.")
    if details.village_code is None:
        return details
    if patch.village_code is not UNSET:
        chosen = patch.sub_district_code
        if isinstance(chosen, str) and chosen != village_sub_district:
            raise ValidationError(
                "sub_district_code",
                f"Desa/kelurahan {details.village_code} tidak terletak di kecamatan {chosen}.",
            )
        return _with_place(details, details.village_code, village_sub_district)
    if details.sub_district_code != village_sub_district:
        return _with_place(details, None, details.sub_district_code)
    return details


def _with_place(
    details: IncidentDetails, village: str | None, sub_district: str | None
) -> IncidentDetails:
    return IncidentDetails(
        report_type=details.report_type,
        priority=details.priority,
        location_text=details.location_text,
        village_code=village,
        sub_district_code=sub_district,
        coordinates=details.coordinates,
        description=details.description,
    )


def _jsonable(value: object) -> object:
    if isinstance(value, Coordinates):
        return value.to_json()
    if isinstance(value, Enum):
        return value.value
    return value


def changed_fields(before: IncidentDetails, after: IncidentDetails) -> dict[str, Any]:
    """``{field: {"from": old, "to": new}}`` for the event log; empty if nothing changed."""
    changes: dict[str, Any] = {}
    for name in IncidentDetails.__dataclass_fields__:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes[name] = {"from": _jsonable(old), "to": _jsonable(new)}
    return changes
