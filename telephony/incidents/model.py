"""The incident itself: report types, the status timeline, priorities, escalation, the caller's
rating, and the :class:`Incident` record. Pure: no I/O and no clock of its own (instants come
in as arguments).

Codes (``fire``, ``on_scene``) are what the database and the API carry; each member's
``.label`` is the Bahasa Indonesia text operators read. Every refusal is an
:class:`~telephony.incidents.errors.IncidentError`. Operators' edits of the details are parsed
in ``telephony.incidents.edits``; dispatches, the agency directory and the notification outbox
have modules of their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, TypeVar

from telephony.core.labels import LabelledIntEnum, LabelledStrEnum
from telephony.core.text import BIDI_MESSAGE, bidi_control, unsafe_line, whole_number
from telephony.incidents.errors import InvalidTransition, ValidationError
from telephony.screening.features import Label

# --------------------------------------------------------------------------------------------
# Vocabularies


class ReportType(LabelledStrEnum):
    """What the report is about (the categories of the field context)."""

    FIRE = "fire", "Kebakaran"
    FLOOD = "flood", "Banjir"
    TIDAL_FLOOD = "tidal_flood", "Banjir rob"
    ACCIDENT = "accident", "Kecelakaan"
    MEDICAL = "medical", "Medis / ambulans"
    HEARSE = "hearse", "Mobil jenazah"
    CRIME = "crime", "Kriminalitas / keamanan"
    FALLEN_TREE = "fallen_tree", "Pohon tumbang"
    WASP_NEST = "wasp_nest", "Sarang tawon"
    DISASTER = "disaster", "Bencana"
    VAGRANTS = "vagrants", "Gelandangan dan pengemis"
    PUBLIC_NUISANCE = "public_nuisance", "Gangguan ketertiban umum"
    BLOOD_REQUEST = "blood_request", "Permintaan darah"
    RUBBISH = "rubbish", "Sampah"
    INFORMATION = "information", "Informasi"
    OTHER = "other", "Lainnya"


class Status(LabelledStrEnum):
    """Where the incident is in its timeline."""

    NEW = "new", "Baru"
    VERIFIED = "verified", "Terverifikasi"
    DISPATCHED = "dispatched", "Diteruskan ke instansi"
    ON_SCENE = "on_scene", "Petugas di lokasi"
    RESOLVED = "resolved", "Selesai ditangani"
    CLOSED = "closed", "Ditutup"
    CANCELLED = "cancelled", "Dibatalkan"
    PRANK = "prank", "Laporan iseng"


# Open: still being worked on. Calls can be linked, details edited, agencies dispatched. A
# resolved incident is no longer open: it waits for closing (and the caller's rating).
OPEN_STATUSES: Final = frozenset({Status.NEW, Status.VERIFIED, Status.DISPATCHED,
                                  Status.ON_SCENE})

# The whole state machine: forward one step at a time, or cancelled / prank from an open state.
TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    Status.NEW: frozenset({Status.VERIFIED, Status.CANCELLED, Status.PRANK}),
    Status.VERIFIED: frozenset({Status.DISPATCHED, Status.CANCELLED, Status.PRANK}),
    Status.DISPATCHED: frozenset({Status.ON_SCENE, Status.CANCELLED, Status.PRANK}),
    Status.ON_SCENE: frozenset({Status.RESOLVED, Status.CANCELLED, Status.PRANK}),
    Status.RESOLVED: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.PRANK: frozenset(),
}

# Ended: nothing can move it again (closed, cancelled, a prank). Until then an incident still
# needs its calls' recordings; from then on they are kept for their own retention.
ENDED_STATUSES: Final = frozenset(status for status, onward in TRANSITIONS.items()
                                  if not onward)


class Priority(LabelledIntEnum):
    """1 is the most urgent."""

    CRITICAL = 1, "Kritis"
    HIGH = 2, "Tinggi"
    MEDIUM = 3, "Sedang"
    LOW = 4, "Rendah"


class EscalationLevel(LabelledStrEnum):
    """Which level of government handles the incident, lowest first."""

    VILLAGE = "village", "Desa"
    SUB_DISTRICT = "sub_district", "Kecamatan"
    REGENCY = "regency", "Kabupaten"
    PROVINCE = "province", "Provinsi"


_ESCALATION_ORDER: Final = list(EscalationLevel)

E = TypeVar("E", bound=Enum)


def parse_enum(kind: type[E], value: object, field: str, what: str) -> E:
    """A member of ``kind`` from its code (any case, surrounding blanks ignored)."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind(value.strip().lower())
        except ValueError:
            pass
    raise ValidationError(field, f"{what} tidak dikenal: {str(value)[:40]!r}.")


def parse_report_type(value: object) -> ReportType:
    """A report type from its code."""
    return parse_enum(ReportType, value, "report_type", "Jenis laporan")


def parse_status(value: object) -> Status:
    """A status from its code."""
    return parse_enum(Status, value, "status", "Status")


def parse_escalation_level(value: object) -> EscalationLevel:
    """An escalation level from its code."""
    return parse_enum(EscalationLevel, value, "level", "Tingkat eskalasi")


_PRIORITY_NAMES: Final[Mapping[str, Priority]] = {
    **{p.name.lower(): p for p in Priority},
    **{p.label.lower(): p for p in Priority},
}


def parse_priority(value: object) -> Priority:
    """A priority from 1-4 (number or digit string) or its name, English or Indonesian."""
    if isinstance(value, Priority):
        return value
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _PRIORITY_NAMES:
            return _PRIORITY_NAMES[text]
        number = whole_number(text)
    if number is not None and number in {p.value for p in Priority}:
        return Priority(number)
    raise ValidationError(
        "priority", "Prioritas harus 1-4 atau kritis / tinggi / sedang / rendah."
    )


# --------------------------------------------------------------------------------------------
# The status timeline


def check_transition(current: Status, target: Status) -> None:
    """Refuse a status change the timeline does not allow."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"Status tidak dapat diubah dari '{current.label}' ke '{target.label}'."
        )


# Details stay editable after resolution (to correct the record for reports) but not once the
# incident is closed, cancelled or a prank.
EDITABLE_STATUSES: Final = OPEN_STATUSES | {Status.RESOLVED}


def require_editable(status: Status) -> None:
    """Refuse an edit of a closed, cancelled or prank incident."""
    if status not in EDITABLE_STATUSES:
        raise InvalidTransition(f"Insiden berstatus '{status.label}' sudah tidak dapat diubah.")


def require_open(status: Status) -> None:
    """Refuse work on an incident that is no longer open."""
    if status not in OPEN_STATUSES:
        raise InvalidTransition(f"Insiden berstatus '{status.label}' sudah tidak dapat diubah.")


def check_escalation(current: EscalationLevel, target: EscalationLevel, reason: object) -> str:
    """Escalation only goes up and always says why; returns the cleaned reason."""
    if _ESCALATION_ORDER.index(target) <= _ESCALATION_ORDER.index(current):
        raise InvalidTransition(
            f"Eskalasi hanya ke tingkat yang lebih tinggi dari '{current.label}'."
        )
    cleaned = clean_text("reason", reason, max_length=1000, multiline=True)
    if not cleaned:
        raise ValidationError("reason", "Alasan eskalasi wajib diisi.")
    return cleaned


# --------------------------------------------------------------------------------------------
# Text and identifiers

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_ANY = re.compile(r"[\x00-\x1f\x7f]")
# What each free-text field is called in a refusal. A console form's refusal is shown at the
# top of the page, away from the field: "Isian mengandung karakter ..." left the operator
# guessing which of the location and the description to fix, and the code name
# ("location_text") is no word of theirs.
TEXT_FIELD_NAMES: Final[Mapping[str, str]] = {
    "location_text": "Lokasi", "description": "Uraian", "note": "Catatan",
    "reason": "Alasan", "actor": "Pelaku", "name": "Nama", "contact": "Kontak",
    "role": "Peran", "filename": "Nama berkas"}
# One-line fields are also refused a tab or a line break, which a paste from a spreadsheet or
# a chat message brings along unseen: say so, or the operator cannot find what to remove.
_ONE_LINE: Final = " (satu baris saja: tanpa tab atau baris baru)"
NOTE_MAX: Final = 1000  # the longest note an operator may add to a change


def clean_text(field: str, value: object, *, max_length: int, multiline: bool = False) -> str:
    """Trimmed text without control characters (tabs and newlines only where multiline).

    One line (a name, a contact, a location, an actor) is also refused with a bidi control
    (``core.text.bidi_control``): an override would show the name reversed, passing it off as
    another. Multi-line free text (an incident's description, a note, a reason) keeps them as
    typed: it is what the operator took down, maybe pasted from a message mixing Arabic script
    with Latin, where the marks and isolates belong, and refusing it mid-call would lose the
    report over a character nobody can see. The console shows each such text in a block of
    its own, isolated (``unicode-bidi: isolate``), so an override cannot reach past it.
    """
    named = TEXT_FIELD_NAMES.get(field, "Isian")
    if not isinstance(value, str):
        raise ValidationError(field, f"{named} harus berupa teks.")
    # A browser posts a textarea's line breaks as CRLF (HTML's form encoding), which the
    # control check below would refuse: every description typed on two lines in the console.
    text = (value.replace("\r\n", "\n").replace("\r", "\n") if multiline else value).strip()
    if not multiline and bidi_control(text):
        raise ValidationError(field, f"{named} {BIDI_MESSAGE}.")
    if (_CONTROL if multiline else _CONTROL_ANY).search(text) or (
            not multiline and unsafe_line(text)):
        raise ValidationError(field, f"{named} mengandung karakter yang tidak diizinkan"
                                     f"{_ONE_LINE if not multiline else ''}.")
    if len(text) > max_length:
        raise ValidationError(field, f"{named} terlalu panjang (maksimal {max_length} karakter).")
    return text


def clean_actor(value: object) -> str:
    """Who did it: an operator, a field team, or ``system``; never empty."""
    actor = clean_text("actor", value, max_length=100)
    if not actor:
        raise ValidationError("actor", "Pelaku perubahan wajib diisi.")
    return actor


_MAX_ID: Final = 2**63 - 1  # PostgreSQL bigint


def check_id(field: str, value: object) -> int:
    """A database id as given by a caller: a positive whole number."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_ID:
        raise ValidationError(field, f"Nomor tidak sah: {str(value)[:40]!r}.")
    return value


# --------------------------------------------------------------------------------------------
# Place and details

LATITUDE_RANGE: Final = (-11.0, 6.0)
LONGITUDE_RANGE: Final = (95.0, 141.0)


@dataclass(frozen=True)
class Coordinates:
    """A point in Indonesia (WGS 84 degrees)."""

    latitude: float
    longitude: float

    def to_json(self) -> dict[str, float]:
        """The point as the event log and notification payloads carry it."""
        return {"latitude": self.latitude, "longitude": self.longitude}


@dataclass(frozen=True)
class IncidentDetails:
    """What an operator edits on an incident."""

    report_type: ReportType
    priority: Priority
    location_text: str
    village_code: str | None
    sub_district_code: str | None
    coordinates: Coordinates | None
    description: str


# --------------------------------------------------------------------------------------------
# Incidents, calls and what the IVR knew

INFORMATION_CATEGORY: Final = "information"  # the IVR's category for information-only calls
SYSTEM_ACTOR: Final = "system"

_SKILL_REPORT_TYPES: Final[Mapping[str, ReportType]] = {
    "fire": ReportType.FIRE,
    "medical": ReportType.MEDICAL,
    "security": ReportType.CRIME,
    "disaster": ReportType.DISASTER,
}


@dataclass(frozen=True)
class CallSnapshot:
    """What the call record says about a call, as far as an incident cares."""

    call_id: str
    line: str | None
    caller_number: str
    ivr_category: str | None
    ivr_skill: str | None
    operator: str | None
    answered_at: datetime | None


@dataclass(frozen=True)
class NewIncident:
    """An incident pre-filled from its first call."""

    report_type: ReportType
    priority: Priority
    line: str | None
    caller_number: str
    ivr_category: str | None
    ivr_skill: str | None
    operator: str | None


def is_information_only(call: CallSnapshot) -> bool:
    """A call the IVR routed to the information queue needs no incident of its own.

    A call without a category (the IVR failed open) is treated as an emergency.
    """
    return call.ivr_category == INFORMATION_CATEGORY


def prefill_from_call(call: CallSnapshot) -> NewIncident:
    """Report type and priority guessed from the IVR; the operator corrects them."""
    if call.ivr_category == INFORMATION_CATEGORY:
        report_type, priority = ReportType.INFORMATION, Priority.LOW
    elif call.ivr_category == "complaint":
        report_type, priority = ReportType.OTHER, Priority.MEDIUM
    else:
        report_type = _SKILL_REPORT_TYPES.get(call.ivr_skill or "", ReportType.OTHER)
        priority = Priority.HIGH
    return NewIncident(
        report_type=report_type,
        priority=priority,
        line=call.line,
        caller_number=call.caller_number,
        ivr_category=call.ivr_category,
        ivr_skill=call.ivr_skill,
        operator=call.operator,
    )


@dataclass(frozen=True)
class Incident:
    """An incident as stored, with the names of its place and its first call's answer."""

    incident_id: int
    version: int
    status: Status
    report_type: ReportType
    priority: Priority
    line: str | None
    caller_number: str
    ivr_category: str | None
    ivr_skill: str | None
    operator: str | None
    location_text: str
    village_code: str | None
    village_name: str | None
    sub_district_code: str | None
    sub_district_name: str | None
    coordinates: Coordinates | None
    description: str
    escalation_level: EscalationLevel
    escalation_reason: str
    rating: int | None
    rated_at: datetime | None
    answered_at: datetime | None  # the earliest answer among its calls: the SLA clock's start
    dispatched_at: datetime | None
    status_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    created_by: str

    @property
    def is_open(self) -> bool:
        """Still being worked on."""
        return self.status in OPEN_STATUSES

    @property
    def details(self) -> IncidentDetails:
        """The operator-editable part."""
        return IncidentDetails(
            report_type=self.report_type,
            priority=self.priority,
            location_text=self.location_text,
            village_code=self.village_code,
            sub_district_code=self.sub_district_code,
            coordinates=self.coordinates,
            description=self.description,
        )


def place_text(incident: Incident) -> str:
    """The location as one line: free text, village, sub-district."""
    parts = [incident.location_text] if incident.location_text else []
    if incident.village_name:
        parts.append(incident.village_name)
    if incident.sub_district_name:
        parts.append(f"Kec. {incident.sub_district_name}")
    return ", ".join(parts) or "belum diisi"


@dataclass(frozen=True)
class IncidentEvent:
    """One entry of an incident's append-only timeline."""

    event_id: int
    incident_id: int
    at: datetime
    actor: str
    kind: str  # created, status, details, call_linked, escalated, dispatch, rating, attachment
    detail: Mapping[str, Any]


# --------------------------------------------------------------------------------------------
# A nuisance call's automatic incident

# The line opens an incident for every answered call, a prank's too (see
# ``IncidentService.create_for_answered_calls``). When the operator labels the call a nuisance
# and nothing else was done on its incident, the incident goes with the label: a prank to
# "Laporan iseng", a silent or accidental call (no report at all, not a prank) to
# "Dibatalkan". Both statuses already mean "not an incident" to the open list, merging and
# the daily summary (``reports.model.NOT_INCIDENTS``), so no reader needs a rule of its own.
# The move is the system's, recorded with :data:`LABEL_DISMISSED` as its reason, so a wrong
# label taken back (relabelled genuine or test, say) brings the incident back to "Baru" with
# :data:`LABEL_WITHDRAWN`: the one way out of those two statuses, and only for an incident
# the label alone had closed.
NUISANCE_STATUSES: Final[Mapping[str, Status]] = {
    Label.PRANK.value: Status.PRANK, Label.SILENT.value: Status.CANCELLED,
    Label.ACCIDENTAL.value: Status.CANCELLED}
LABEL_DISMISSED: Final = "nuisance_label"  # a status event's reason: the call's label closed it
LABEL_WITHDRAWN: Final = "label_withdrawn"  # ... and reopened it when the label changed
_LABEL_REASONS: Final = frozenset({LABEL_DISMISSED, LABEL_WITHDRAWN})


def _by_label(event: IncidentEvent) -> bool:
    return event.kind == "status" and event.detail.get("reason") in _LABEL_REASONS


def status_for_label(incident: Incident, *, call_id: str, calls: Sequence[str],
                     events: Sequence[IncidentEvent], dispatched: bool,
                     label: str | None) -> Status | None:
    """Where the label ``label`` (``None``: unlabelled) of ``call_id`` puts its incident, or
    ``None`` to leave it. Only an incident the line opened for that call alone, never
    dispatched and with nothing on its timeline but its creation and earlier moves by label
    (no edit, escalation, linked call, attachment or operator's status change), follows its
    call's label: to the label's nuisance status, or back to "Baru" from one the label had
    put it in."""
    if (incident.created_by != SYSTEM_ACTOR or list(calls) != [call_id] or dispatched
            or not all(e.kind == "created" or _by_label(e) for e in events)):
        return None
    wanted = NUISANCE_STATUSES.get(label or "", Status.NEW)
    if incident.status is wanted:
        return None
    if incident.status is Status.NEW or (events and _by_label(events[-1])):
        return wanted
    return None


# --------------------------------------------------------------------------------------------
# Caller rating


def parse_rating(value: object) -> int:
    """A caller's rating: a whole number 1-5 (DTMF digits arrive as strings)."""
    if isinstance(value, str) and (number := whole_number(value.strip())) is not None:
        value = number
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    raise ValidationError("rating", "Penilaian harus angka 1 sampai 5.")


def rating_is_new(status: Status, existing: int | None, rating: int) -> bool:
    """Whether to store ``rating``; ``False`` when that same rating is already stored.

    The caller rates once, after the incident is resolved; a repeated submission of the same
    rating (a retried survey) is harmless, a different one is refused.
    """
    if status not in (Status.RESOLVED, Status.CLOSED):
        raise InvalidTransition("Penilaian hanya dapat diberikan setelah insiden selesai.")
    if existing is None:
        return True
    if existing == rating:
        return False
    raise InvalidTransition(f"Insiden ini sudah dinilai {existing}.")


# -- finding an earlier incident ---------------------------------------------------------------

SEARCH_MIN: Final = 3
SEARCH_MAX: Final = 100
SEARCH_LIMIT: Final = 50  # the newest matches a search shows
# A number as an operator types it from a note: digits with spaces, dashes, dots, brackets,
# maybe a leading +.
_NUMBER_LIKE: Final = re.compile(r"\+?[0-9][0-9 .()\-]*")


@dataclass(frozen=True)
class IncidentSearch:
    """What an operator looks an earlier incident up by: a caller's number (``digits``, and
    ``caller_key`` when it is a whole number, which finds the caller however the carrier
    wrote it) or a place (part of the village's, sub-district's or location's name)."""

    text: str
    digits: str | None
    caller_key: str | None

    @property
    def place(self) -> str | None:
        """The place name to look for; ``None`` for a number."""
        return None if self.digits is not None else self.text


def parse_search(raw: object, caller_key: str | None) -> IncidentSearch:
    """The operator's search as typed (``caller_key``: its history key if it reads as a
    caller's number, see ``telephony.calls.ids.parse_caller_id``); refused with a reason when
    too short, too long or holding control characters."""
    if not isinstance(raw, str):
        raise ValidationError("cari", "Isi pencarian harus berupa teks.")
    text = " ".join(raw.split())
    if _CONTROL_ANY.search(text) or bidi_control(text):
        raise ValidationError("cari", "Isi pencarian mengandung karakter yang tidak diizinkan.")
    if len(text) > SEARCH_MAX:
        raise ValidationError("cari", f"Isi pencarian terlalu panjang (maksimal {SEARCH_MAX} "
                                      "karakter).")
    number = _NUMBER_LIKE.fullmatch(text) is not None
    digits = re.sub(r"[^0-9]", "", text) if number else None
    if len(digits if digits is not None else text) < SEARCH_MIN:
        raise ValidationError("cari", f"Ketik sedikitnya {SEARCH_MIN} huruf nama desa atau "
                                      f"lokasi, atau {SEARCH_MIN} angka nomor penelepon.")
    return IncidentSearch(text, digits, caller_key if number else None)
