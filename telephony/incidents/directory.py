"""The directory incidents are worked against: the agencies dispatched to, the people each
notifies, and the gazetteer's places. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from telephony.incidents.errors import ValidationError
from telephony.incidents.model import ReportType, clean_text, parse_report_type


@dataclass(frozen=True)
class Agency:
    """An agency incidents are dispatched to (configurable table)."""

    code: str
    name: str
    active: bool


_AGENCY_CODE: Final = re.compile(r"[a-z][a-z0-9_]{1,31}")


def clean_agency_code(value: object) -> str:
    """An agency code: lower-case letters, digits and underscores (``damkar``, ``satpol_pp``)."""
    if not isinstance(value, str) or not _AGENCY_CODE.fullmatch(value):
        raise ValidationError("agency", f"Kode instansi tidak sah: {str(value)[:40]!r}.")
    return value


def parse_agency(code: object, name: object, active: bool) -> Agency:
    """Validate an agency as an admin enters it."""
    agency = Agency(clean_agency_code(code), clean_text("name", name, max_length=100), active)
    if not agency.name:
        raise ValidationError("name", "Nama instansi wajib diisi.")
    return agency


@dataclass(frozen=True)
class Recipient:
    """A person notified when ``agency`` is dispatched to a report of ``report_type``.

    ``report_type`` ``None`` means every report type.
    """

    recipient_id: int
    agency_code: str
    report_type: ReportType | None
    name: str
    role: str
    contact: str
    active: bool


@dataclass(frozen=True)
class RecipientInput:
    """A validated new recipient."""

    agency_code: str
    report_type: ReportType | None
    name: str
    role: str
    contact: str


def parse_recipient(
    agency_code: object, report_type: object, name: object, role: object, contact: object
) -> RecipientInput:
    """Validate a recipient; ``report_type`` ``None`` or ``""`` means every report type."""
    kind = None if report_type in (None, "") else parse_report_type(report_type)
    cleaned_name = clean_text("name", name, max_length=200)
    cleaned_contact = clean_text("contact", contact, max_length=200)
    if not cleaned_name:
        raise ValidationError("name", "Nama penerima wajib diisi.")
    if not cleaned_contact:
        raise ValidationError("contact", "Kontak penerima wajib diisi.")
    return RecipientInput(
        agency_code=clean_agency_code(agency_code),
        report_type=kind,
        name=cleaned_name,
        role=clean_text("role", role, max_length=100),
        contact=cleaned_contact,
    )


@dataclass(frozen=True)
class Place:
    """A village of the gazetteer with its sub-district, for pickers."""

    village_code: str
    village_name: str
    sub_district_code: str
    sub_district_name: str
