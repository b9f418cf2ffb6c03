"""Incident rules: report types, the status timeline, dispatch steps, escalation, service-level
clocks, and validation of what operators and field teams send. Pure: no I/O and no clock of its
own (instants come in as arguments).

Codes (``fire``, ``on_scene``) are what the database and the API carry; the ``*_LABELS`` maps
give the Bahasa Indonesia text operators read. Every refusal is an :class:`IncidentError` with a
stable ``code``, the ``field`` at fault where there is one, and a message in Bahasa Indonesia
for the operator's screen. A refusal always means nothing was changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, IntEnum, StrEnum
from typing import Any, ClassVar, Final, TypeVar

# --------------------------------------------------------------------------------------------
# Errors


class IncidentError(Exception):
    """A request the incident rules refuse; nothing was changed."""

    code: ClassVar[str] = "incident_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(IncidentError):
    """A value is missing, malformed or out of range."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(IncidentError):
    """The incident (or dispatch) is not in a state that allows this change."""

    code = "invalid_transition"


class NotFound(IncidentError):
    """The thing named does not exist."""

    code = "not_found"


class IncidentNotFound(NotFound):
    """No incident has this id."""

    def __init__(self, incident_id: int) -> None:
        super().__init__(f"Insiden #{incident_id} tidak ditemukan.")
        self.incident_id = incident_id


class CallNotFound(NotFound):
    """No call has this id."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"Panggilan {call_id} tidak ditemukan.")
        self.call_id = call_id


class DispatchNotFound(NotFound):
    """No dispatch has this id."""

    def __init__(self, dispatch_id: int) -> None:
        super().__init__(f"Pengiriman #{dispatch_id} tidak ditemukan.")
        self.dispatch_id = dispatch_id


class RecipientNotFound(NotFound):
    """No notification recipient has this id."""

    def __init__(self, recipient_id: int) -> None:
        super().__init__(f"Penerima pemberitahuan #{recipient_id} tidak ditemukan.")
        self.recipient_id = recipient_id


class CallAlreadyLinked(IncidentError):
    """The call already belongs to an incident (a call belongs to at most one)."""

    code = "call_already_linked"

    def __init__(self, call_id: str, incident_id: int) -> None:
        super().__init__(f"Panggilan {call_id} sudah tercatat pada insiden #{incident_id}.")
        self.call_id = call_id
        self.incident_id = incident_id


class StaleIncident(IncidentError):
    """Someone else changed the incident since the caller read it (optimistic concurrency)."""

    code = "stale"

    def __init__(self, incident_id: int, expected: int, actual: int) -> None:
        super().__init__(
            f"Insiden #{incident_id} baru saja diubah petugas lain (versi {actual}, bukan "
            f"{expected}). Muat ulang lalu ulangi."
        )
        self.expected = expected
        self.actual = actual


# --------------------------------------------------------------------------------------------
# Vocabularies


class ReportType(StrEnum):
    """What the report is about (the categories of the field context)."""

    FIRE = "fire"
    FLOOD = "flood"
    TIDAL_FLOOD = "tidal_flood"
    ACCIDENT = "accident"
    MEDICAL = "medical"
    HEARSE = "hearse"
    CRIME = "crime"
    FALLEN_TREE = "fallen_tree"
    WASP_NEST = "wasp_nest"
    DISASTER = "disaster"
    VAGRANTS = "vagrants"
    PUBLIC_NUISANCE = "public_nuisance"
    BLOOD_REQUEST = "blood_request"
    RUBBISH = "rubbish"
    INFORMATION = "information"
    OTHER = "other"


REPORT_TYPE_LABELS: Final[Mapping[ReportType, str]] = {
    ReportType.FIRE: "Kebakaran",
    ReportType.FLOOD: "Banjir",
    ReportType.TIDAL_FLOOD: "Banjir rob",
    ReportType.ACCIDENT: "Kecelakaan",
    ReportType.MEDICAL: "Medis / ambulans",
    ReportType.HEARSE: "Mobil jenazah",
    ReportType.CRIME: "Kriminalitas / keamanan",
    ReportType.FALLEN_TREE: "Pohon tumbang",
    ReportType.WASP_NEST: "Sarang tawon",
    ReportType.DISASTER: "Bencana",
    ReportType.VAGRANTS: "Gelandangan dan pengemis",
    ReportType.PUBLIC_NUISANCE: "Gangguan ketertiban umum",
    ReportType.BLOOD_REQUEST: "Permintaan darah",
    ReportType.RUBBISH: "Sampah",
    ReportType.INFORMATION: "Informasi",
    ReportType.OTHER: "Lainnya",
}


class Status(StrEnum):
    """Where the incident is in its timeline."""

    NEW = "new"
    VERIFIED = "verified"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    PRANK = "prank"


STATUS_LABELS: Final[Mapping[Status, str]] = {
    Status.NEW: "Baru",
    Status.VERIFIED: "Terverifikasi",
    Status.DISPATCHED: "Diteruskan ke instansi",
    Status.ON_SCENE: "Petugas di lokasi",
    Status.RESOLVED: "Selesai ditangani",
    Status.CLOSED: "Ditutup",
    Status.CANCELLED: "Dibatalkan",
    Status.PRANK: "Laporan iseng",
}

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


class Priority(IntEnum):
    """1 is the most urgent."""

    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4


PRIORITY_LABELS: Final[Mapping[Priority, str]] = {
    Priority.CRITICAL: "Kritis",
    Priority.HIGH: "Tinggi",
    Priority.MEDIUM: "Sedang",
    Priority.LOW: "Rendah",
}


class EscalationLevel(StrEnum):
    """Which level of government handles the incident, lowest first."""

    VILLAGE = "village"
    SUB_DISTRICT = "sub_district"
    REGENCY = "regency"
    PROVINCE = "province"


ESCALATION_LABELS: Final[Mapping[EscalationLevel, str]] = {
    EscalationLevel.VILLAGE: "Desa",
    EscalationLevel.SUB_DISTRICT: "Kecamatan",
    EscalationLevel.REGENCY: "Kabupaten",
    EscalationLevel.PROVINCE: "Provinsi",
}

_ESCALATION_ORDER: Final = list(EscalationLevel)


class DispatchState(StrEnum):
    """One agency's progress on one incident."""

    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    ON_SCENE = "on_scene"
    DONE = "done"


DISPATCH_STATE_LABELS: Final[Mapping[DispatchState, str]] = {
    DispatchState.NOTIFIED: "Diberitahu",
    DispatchState.ACKNOWLEDGED: "Diterima",
    DispatchState.ON_SCENE: "Di lokasi",
    DispatchState.DONE: "Selesai",
}

_DISPATCH_ORDER: Final = list(DispatchState)

E = TypeVar("E", bound=Enum)


def _parse_enum(kind: type[E], value: object, field: str, what: str) -> E:
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
    return _parse_enum(ReportType, value, "report_type", "Jenis laporan")


def parse_status(value: object) -> Status:
    """A status from its code."""
    return _parse_enum(Status, value, "status", "Status")


def parse_escalation_level(value: object) -> EscalationLevel:
    """An escalation level from its code."""
    return _parse_enum(EscalationLevel, value, "level", "Tingkat eskalasi")


def parse_dispatch_state(value: object) -> DispatchState:
    """A dispatch state from its code."""
    return _parse_enum(DispatchState, value, "state", "Tahap pengiriman")


_PRIORITY_NAMES: Final[Mapping[str, Priority]] = {
    **{p.name.lower(): p for p in Priority},
    **{label.lower(): p for p, label in PRIORITY_LABELS.items()},
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
        if text.isdecimal():
            number = int(text)
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
            f"Status tidak dapat diubah dari '{STATUS_LABELS[current]}' ke "
            f"'{STATUS_LABELS[target]}'."
        )


# Details stay editable after resolution (to correct the record for reports) but not once the
# incident is closed, cancelled or a prank.
EDITABLE_STATUSES: Final = OPEN_STATUSES | {Status.RESOLVED}


def require_editable(status: Status) -> None:
    """Refuse an edit of a closed, cancelled or prank incident."""
    if status not in EDITABLE_STATUSES:
        raise InvalidTransition(
            f"Insiden berstatus '{STATUS_LABELS[status]}' sudah tidak dapat diubah."
        )


def require_open(status: Status) -> None:
    """Refuse work on an incident that is no longer open."""
    if status not in OPEN_STATUSES:
        raise InvalidTransition(
            f"Insiden berstatus '{STATUS_LABELS[status]}' sudah tidak dapat diubah."
        )


def status_for_dispatch(status: Status) -> Status | None:
    """The incident's status once an agency is dispatched; ``None`` means unchanged.

    Agencies are dispatched once the report is verified (the field context: "once a report is
    believed true, the system hands it to the agency"). A further agency may join while the
    incident is dispatched or on scene (the water utility when the fire brigade needs water).
    """
    if status is Status.VERIFIED:
        return Status.DISPATCHED
    if status in (Status.DISPATCHED, Status.ON_SCENE):
        return None
    if status is Status.NEW:
        raise InvalidTransition("Laporan harus diverifikasi sebelum diteruskan ke instansi.")
    raise InvalidTransition(
        f"Insiden berstatus '{STATUS_LABELS[status]}' tidak dapat diteruskan ke instansi."
    )


def check_dispatch_step(current: DispatchState, target: DispatchState) -> None:
    """A dispatch only moves forward; a step the field team did not report may be skipped."""
    if _DISPATCH_ORDER.index(target) <= _DISPATCH_ORDER.index(current):
        raise InvalidTransition(
            f"Tahap pengiriman tidak dapat diubah dari '{DISPATCH_STATE_LABELS[current]}' ke "
            f"'{DISPATCH_STATE_LABELS[target]}'."
        )


def status_after_dispatch_step(status: Status, state: DispatchState) -> Status | None:
    """The first team on scene puts a dispatched incident on scene; ``None`` means unchanged."""
    if status is Status.DISPATCHED and state in (DispatchState.ON_SCENE, DispatchState.DONE):
        return Status.ON_SCENE
    return None


def check_escalation(current: EscalationLevel, target: EscalationLevel, reason: object) -> str:
    """Escalation only goes up and always says why; returns the cleaned reason."""
    if _ESCALATION_ORDER.index(target) <= _ESCALATION_ORDER.index(current):
        raise InvalidTransition(
            f"Eskalasi hanya ke tingkat yang lebih tinggi dari "
            f"'{ESCALATION_LABELS[current]}'."
        )
    cleaned = clean_text("reason", reason, max_length=1000, multiline=True)
    if not cleaned:
        raise ValidationError("reason", "Alasan eskalasi wajib diisi.")
    return cleaned


# --------------------------------------------------------------------------------------------
# Text and identifiers

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_ANY = re.compile(r"[\x00-\x1f\x7f]")


def clean_text(field: str, value: object, *, max_length: int, multiline: bool = False) -> str:
    """Trimmed text without control characters (tabs and newlines only where multiline)."""
    if not isinstance(value, str):
        raise ValidationError(field, "Isian harus berupa teks.")
    text = value.strip()
    if (_CONTROL if multiline else _CONTROL_ANY).search(text):
        raise ValidationError(field, "Isian mengandung karakter yang tidak diizinkan.")
    if len(text) > max_length:
        raise ValidationError(field, f"Isian terlalu panjang (maksimal {max_length} karakter).")
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


_AGENCY_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")


def clean_agency_code(value: object) -> str:
    """An agency code: lower-case letters, digits and underscores (``damkar``, ``satpol_pp``)."""
    if not isinstance(value, str) or not _AGENCY_CODE.fullmatch(value):
        raise ValidationError("agency", f"Kode instansi tidak sah: {str(value)[:40]!r}.")
    return value


_VILLAGE_CODE = re.compile(r"\d{2}\.\d{2}\.\d{2}\.\d{4}")
_SUB_DISTRICT_CODE = re.compile(r"\d{2}\.\d{2}\.\d{2}")


def _gazetteer_code(field: str, value: object, pattern: re.Pattern[str]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise ValidationError(field, f"Kode wilayah tidak sah: {str(value)[:40]!r}.")
    return value.strip()


# --------------------------------------------------------------------------------------------
# Location, details and edits

LATITUDE_RANGE: Final = (-11.0, 6.0)
LONGITUDE_RANGE: Final = (95.0, 141.0)


@dataclass(frozen=True)
class Coordinates:
    """A point in Indonesia (WGS 84 degrees)."""

    latitude: float
    longitude: float


def _degrees(field: str, value: object, bounds: tuple[float, float], what: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
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
    """The details after the edit, before the gazetteer check of :func:`settle_place`."""

    def pick(new: Any, old: Any) -> Any:
        return old if new is UNSET else new

    return IncidentDetails(
        report_type=pick(patch.report_type, current.report_type),
        priority=pick(patch.priority, current.priority),
        location_text=pick(patch.location_text, current.location_text),
        village_code=pick(patch.village_code, current.village_code),
        sub_district_code=pick(patch.sub_district_code, current.sub_district_code),
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
        return {"latitude": value.latitude, "longitude": value.longitude}
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
class Place:
    """A village of the gazetteer with its sub-district, for pickers."""

    village_code: str
    village_name: str
    sub_district_code: str
    sub_district_name: str


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
# Agencies, dispatches, notifications


@dataclass(frozen=True)
class Agency:
    """An agency incidents are dispatched to (configurable table)."""

    code: str
    name: str
    active: bool


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
class Dispatch:
    """One agency sent to one incident, with its own timeline."""

    dispatch_id: int
    incident_id: int
    agency_code: str
    agency_name: str
    state: DispatchState
    notified_at: datetime
    acknowledged_at: datetime | None
    on_scene_at: datetime | None
    done_at: datetime | None
    dispatched_by: str
    note: str


def place_text(incident: Incident) -> str:
    """The location as one line: free text, village, sub-district."""
    parts = [incident.location_text] if incident.location_text else []
    if incident.village_name:
        parts.append(incident.village_name)
    if incident.sub_district_name:
        parts.append(f"Kec. {incident.sub_district_name}")
    return ", ".join(parts) or "belum diisi"


def notification_message(incident: Incident, agency: Agency) -> str:
    """The text a recipient reads (Bahasa Indonesia)."""
    line = f"[{incident.line}] " if incident.line else ""
    caller = f" Pelapor: {incident.caller_number}." if incident.caller_number else ""
    return (
        f"{line}Insiden #{incident.incident_id} - {REPORT_TYPE_LABELS[incident.report_type]} "
        f"(prioritas {PRIORITY_LABELS[incident.priority]}) diteruskan ke {agency.name}. "
        f"Lokasi: {place_text(incident)}.{caller}"
    )


def notification_payload(
    incident: Incident, agency: Agency, recipient: Recipient, dispatch_id: int
) -> dict[str, Any]:
    """The JSON body a notifier delivers, frozen when the dispatch is made."""
    coordinates = _jsonable(incident.coordinates) if incident.coordinates else None
    return {
        "kind": "dispatch",
        "incident_id": incident.incident_id,
        "dispatch_id": dispatch_id,
        "agency": {"code": agency.code, "name": agency.name},
        "recipient": {"name": recipient.name, "role": recipient.role,
                      "contact": recipient.contact},
        "report_type": incident.report_type.value,
        "report_type_label": REPORT_TYPE_LABELS[incident.report_type],
        "priority": incident.priority.value,
        "priority_label": PRIORITY_LABELS[incident.priority],
        "line": incident.line,
        "caller_number": incident.caller_number,
        "location": place_text(incident),
        "coordinates": coordinates,
        "description": incident.description,
        "message": notification_message(incident, agency),
    }


@dataclass(frozen=True)
class Notification:
    """One message for one recipient, as claimed from the outbox for delivery."""

    notification_id: int
    attempt: int  # 1 on the first try
    payload: Mapping[str, Any]


def retry_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before retrying after failed ``attempt`` (1-based): doubling, capped."""
    return float(min(cap, base * 2 ** min(max(attempt - 1, 0), 32)))


# --------------------------------------------------------------------------------------------
# Service-level clocks


@dataclass(frozen=True)
class SlaClock:
    """The dispatch target of one incident: due when, met or breached, by how much."""

    target: timedelta
    due_at: datetime
    dispatched_at: datetime | None
    breached: bool
    overdue: timedelta  # zero unless breached


def dispatch_clock(
    *,
    answered_at: datetime | None,
    dispatched_at: datetime | None,
    target: timedelta | None,
    now: datetime,
) -> SlaClock | None:
    """The dispatch clock, or ``None`` when the report type has no target or no call was
    answered yet. Dispatching exactly at the due instant meets the target."""
    if target is None or answered_at is None:
        return None
    due_at = answered_at + target
    reference = dispatched_at if dispatched_at is not None else now
    overdue = max(reference - due_at, timedelta(0))
    return SlaClock(target, due_at, dispatched_at, overdue > timedelta(0), overdue)



# --------------------------------------------------------------------------------------------
# Caller rating


def parse_rating(value: object) -> int:
    """A caller's rating: a whole number 1-5 (DTMF digits arrive as strings)."""
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
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


# --------------------------------------------------------------------------------------------
# Field documentation (attachments)


@dataclass(frozen=True)
class AttachmentMeta:
    """Validated metadata of one file a field team attached."""

    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    stored_path: str


@dataclass(frozen=True)
class Attachment:
    """An attachment as stored."""

    attachment_id: int
    incident_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    stored_path: str
    uploaded_by: str
    uploaded_at: datetime


_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Characters that mean something to a file system or a shell on some platform.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def _path_segment(field: str, value: str, what: str) -> str:
    if (not value or value != value.strip() or value.startswith(".")
            or _UNSAFE_NAME.search(value) or len(value) > 200):
        raise ValidationError(field, f"{what} tidak sah: {value[:60]!r}.")
    return value


def check_filename(filename: object) -> str:
    """An attachment's display name as a client sends it: one plain name, no directories,
    no leading dot (checked before the upload is stored, so nothing is kept for a bad one)."""
    if not isinstance(filename, str):
        raise ValidationError("filename", "Nama berkas wajib diisi.")
    return _path_segment("filename", filename, "Nama berkas")


def parse_attachment(
    filename: object,
    content_type: object,
    size_bytes: object,
    sha256: object,
    stored_path: object,
    *,
    max_bytes: int,
) -> AttachmentMeta:
    """Validate attachment metadata; names that could escape the storage root are refused.

    ``filename`` is one plain name (no directories, no leading dot); ``stored_path`` is
    relative to the attachment storage root, made of such names.
    """
    name = check_filename(filename)
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type.lower()):
        raise ValidationError("content_type", "Jenis berkas (content type) tidak sah.")
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes <= 0:
        raise ValidationError("size_bytes", "Ukuran berkas tidak sah.")
    if size_bytes > max_bytes:
        raise ValidationError(
            "size_bytes",
            f"Berkas terlalu besar (maksimal {max_bytes / 1_048_576:.0f} MB).",
        )
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise ValidationError("sha256", "Checksum SHA-256 tidak sah.")
    if not isinstance(stored_path, str) or not stored_path or len(stored_path) > 500:
        raise ValidationError("stored_path", "Lokasi simpan berkas tidak sah.")
    for segment in stored_path.split("/"):
        _path_segment("stored_path", segment, "Lokasi simpan berkas")
    return AttachmentMeta(name, content_type.lower(), size_bytes, sha256.lower(), stored_path)
