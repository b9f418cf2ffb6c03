"""The pure rules of recordings: names, states, the storage layout, silence share, retention.

Nothing here touches a file, a clock or the database; the worker, the retention command and
the repository apply these rules.

Names
    Asterisk's MixMonitor names each file after the caller channel's unique id
    (``<epoch>.<sequence>``, e.g. ``1795430334.0``), which is also the call's ``call_id``. Every
    path we build starts from such an id, so an id of any other shape (``../x``, an empty
    string, a name with a slash) is refused before it can name a file.

Kinds
    A call's ``mixed`` recording holds both parties. With separate legs on, MixMonitor also
    writes each direction alone: ``<call_id>-caller.wav`` (what the line received: the caller)
    and ``<call_id>-line.wav`` (what it sent: IVR prompts and the operator). Each leg is a
    recording of its own, named, stored, processed and retained like the mixed one.
    An operator's call-back of the caller (a ``callback`` leg of the call, ``call_legs``) is
    recorded from the caller's answer, on the caller's channel, as
    ``<call_id>-callback<leg_id>.wav``: a recording of that call too, one per call-back the
    caller answered, filed and retained with the call's own. The operator's talk with an
    agency in an attended transfer or a conference (a leg the caller's recording does not
    hear: they wait on hold) is recorded from the agency's answer, on the agency's channel,
    as ``<call_id>-consult<leg_id>.wav``, likewise.

States
    ``pending`` (the file is complete and waits) -> ``processing`` (claimed by a worker under a
    lease) -> ``done`` (stored, measured, checksummed) -> ``expired`` (removed by retention).
    A processing job goes back to ``pending`` after a transient error, or to ``processing``
    again when another worker takes over an expired lease; ``failed`` (the source is kept in
    quarantine, or it was refused) and ``missing`` (the call ended without a file) are final.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import NamedTuple
from zoneinfo import ZoneInfo

from telephony.calls.ids import CALL_ID_PATTERN, valid_call_id
from telephony.core.errors import SiagaError
from telephony.core.labels import LabelledStrEnum

SOURCE_SUFFIX = ".wav"  # MixMonitor(${UNIQUEID}.wav) in extensions.conf
FORMATS = ("opus", "mp3")  # the compressed formats, each stored under its own extension
# A unique id, then a leg's suffix, or a call-back's with its leg id, if any.
_STEM = (rf"(?P<call_id>{CALL_ID_PATTERN})"
         r"(?:-(?P<suffix>caller|line|(?:callback|consult)[1-9][0-9]{0,17}))?")
_SOURCE = re.compile(rf"(?P<stem>{_STEM})\.wav")
_TEMP = re.compile(rf"\.(?P<stem>{_STEM})\.[0-9a-f]{{32}}\.tmp")


class Kind(LabelledStrEnum):
    """Which audio a recording holds (the ``recordings.kind`` column)."""

    MIXED = "mixed", "gabungan"  # both parties
    # What the line received from the caller (MixMonitor's r() file).
    CALLER = "caller", "penelepon"
    # What the line sent to the caller: prompts, the operator (its t() file).
    LINE = "line", "layanan"
    # An operator's call-back of the caller, both parties (one per call-back).
    CALLBACK = "callback", "panggilan balik"
    # The operator's talk with an agency before handing the caller over, or the conference
    # (one per attended transfer or conference leg the agency answered).
    CONSULT = "consult", "bicara dengan instansi"


LEGS = (Kind.CALLER, Kind.LINE)
# The recordings of a leg of the call (``call_legs``), one per leg, named with its id.
LEG_KINDS = (Kind.CALLBACK, Kind.CONSULT)
CALL_KINDS = (Kind.MIXED, *LEGS)  # the recordings of the call itself, one of each at most


class Source(NamedTuple):
    """Whose recording a monitor-directory file is: a call's, of a kind (and a call-back's
    leg)."""

    call_id: str
    kind: Kind
    leg_id: int | None = None
_LEG_OPTIONS = {Kind.CALLER: "r", Kind.LINE: "t"}


class RecordingNameError(SiagaError, ValueError):
    """A recording name is not one we create; it must not name a file."""


def _checked(call_id: str) -> str:
    if not valid_call_id(call_id):
        raise RecordingNameError(f"not an Asterisk unique id: {call_id!r}")
    return call_id


def _stem(call_id: str, kind: Kind, leg_id: int | None = None) -> str:
    """``<call_id>`` for the mixed recording, ``<call_id>-<leg>`` for a leg,
    ``<call_id>-callback<leg_id>`` for a call-back (``consult`` likewise)."""
    checked = _checked(call_id)
    if (kind in LEG_KINDS) != (leg_id is not None):
        raise RecordingNameError(f"a leg's recording, and only one, names its leg: "
                                 f"{kind.value} {leg_id!r}")
    if leg_id is not None and not (isinstance(leg_id, int) and 0 < leg_id < 10**18):
        raise RecordingNameError(f"not a leg id: {leg_id!r}")
    if kind is Kind.MIXED:
        return checked
    return f"{checked}-{kind.value}{leg_id if leg_id is not None else ''}"


def source_name(call_id: str, kind: Kind = Kind.MIXED, leg_id: int | None = None) -> str:
    """The file MixMonitor writes for the call (or its call-back ``leg_id``), in Asterisk's
    monitor directory."""
    return _stem(call_id, kind, leg_id) + SOURCE_SUFFIX


def parse_source(name: str) -> Source | None:
    """Whose a monitor-directory file is, or None for any other file."""
    match = _SOURCE.fullmatch(name)
    if match is None:
        return None
    # By the groups, not the first dash: a cluster node's call ids have one of their own.
    call_id, suffix = match["call_id"], match["suffix"] or ""
    for kind in LEG_KINDS:
        if suffix.startswith(kind.value):
            return Source(call_id, kind, int(suffix[len(kind.value):]))
    return Source(call_id, Kind(suffix) if suffix else Kind.MIXED)


def describe(kind: Kind) -> str:
    """A recording of ``kind`` in a log line: ``recording``, ``caller leg``, ``line leg``,
    ``callback recording``, ``consult recording``."""
    if kind in LEG_KINDS:
        return f"{kind.value} recording"
    return "recording" if kind is Kind.MIXED else f"{kind.value} leg"


def mixmonitor_options(separate_legs: bool) -> str:
    """MixMonitor's options for the dialplan: each leg's file, named as :func:`source_name`
    names it, with Asterisk's ``${UNIQUEID}`` for the call id; nothing without separate legs."""
    if not separate_legs:
        return ""
    return "".join(f"{_LEG_OPTIONS[leg]}(${{UNIQUEID}}-{leg.value}{SOURCE_SUFFIX})"
                   for leg in LEGS)


def storage_relpath(
    call_id: str, started_at: datetime, timezone: str, fmt: str, kind: Kind = Kind.MIXED, *,
    leg_id: int | None = None,
) -> PurePosixPath:
    """``YYYY/MM/DD/<call_id>.<fmt>`` (a leg: ``<call_id>-<leg>.<fmt>``, a call-back:
    ``<call_id>-callback<leg_id>.<fmt>``), dated by the call's local arrival day, so a call's
    legs and call-backs lie next to its mixed recording.

    The local day (the line's time zone), not UTC: a supervisor looking for last night's calls
    thinks in the line's calendar.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown recording format {fmt!r}")
    local = started_at.astimezone(ZoneInfo(timezone))
    return PurePosixPath(f"{local:%Y}", f"{local:%m}", f"{local:%d}",
                         f"{_stem(call_id, kind, leg_id)}.{fmt}")


def temp_name(call_id: str, token: str, kind: Kind = Kind.MIXED,
              leg_id: int | None = None) -> str:
    """The name a worker writes a transcoded file under before renaming it into place.

    It carries the worker's claim token, so two workers (one of them past its lease) never
    write the same file, and it starts with a dot so nothing mistakes it for a recording.
    """
    name = f".{_stem(call_id, kind, leg_id)}.{token}.tmp"
    if _TEMP.fullmatch(name) is None:
        raise RecordingNameError(f"claim token must be 32 hex digits: {token!r}")
    return name


def is_temp_of(name: str, call_id: str, kind: Kind = Kind.MIXED,
               leg_id: int | None = None) -> bool:
    """True if ``name`` is a temporary file some worker wrote for this recording.

    A leg's temporary files are not its mixed recording's: jobs of one call run side by side.
    """
    match = _TEMP.fullmatch(name)
    return match is not None and match["stem"] == _stem(call_id, kind, leg_id)



class State(LabelledStrEnum):
    """Where a recording is in its life (the ``recordings.state`` column); the label is the
    word the ``recordings`` commands print."""

    PENDING = "pending", "menunggu"
    PROCESSING = "processing", "diproses"
    DONE = "done", "tersimpan"
    FAILED = "failed", "gagal"
    MISSING = "missing", "tanpa berkas"
    EXPIRED = "expired", "dihapus"


# States a row may be created in: a complete file, a call without one, a refused name.
INITIAL_STATES = frozenset({State.PENDING, State.MISSING, State.FAILED})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.PROCESSING}),
    # Back to PROCESSING: another worker takes over after the lease ran out.
    State.PROCESSING: frozenset({State.PROCESSING, State.PENDING, State.DONE, State.FAILED}),
    State.DONE: frozenset({State.EXPIRED}),
    State.FAILED: frozenset(),
    State.MISSING: frozenset(),
    State.EXPIRED: frozenset(),
}


def can_transition(current: State, target: State) -> bool:
    """True if a recording in ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


def sources_of(target: State) -> tuple[State, ...]:
    """The states from which ``target`` can be reached (the guard of an UPDATE)."""
    return tuple(s for s in State if target in TRANSITIONS[s])


def state_after_error(attempts: int, max_attempts: int, *, permanent: bool) -> State:
    """After a processing error: retry (PENDING) unless it cannot succeed or tries ran out."""
    if permanent or attempts >= max_attempts:
        return State.FAILED
    return State.PENDING


def silence_share(segments: Iterable[Sequence[int]], duration_ms: int) -> float:
    """The share of ``duration_ms`` covered by silent ``[start, end)`` segments (in ms).

    Segments may overlap, come in any order or stick out of the recording (pydub's detector
    steps in windows); overlaps count once and anything outside ``[0, duration_ms]`` not at all.
    """
    if duration_ms <= 0:
        raise ValueError("a recording without audio has no silence share")
    clipped = sorted(
        (max(0, start), min(duration_ms, end)) for start, end in segments
    )
    covered = 0
    reach = 0  # everything before this instant is already counted
    for start, end in clipped:
        uncounted_from = max(start, reach)
        if end > uncounted_from:
            covered += end - uncounted_from
            reach = end
    return covered / duration_ms


def loudness(dbfs: float) -> float | None:
    """Loudness to store: pydub reports digital silence as -inf dBFS, which is no level at all."""
    return None if dbfs == float("-inf") else dbfs


def is_settled(mtime: float, now: float, settle_seconds: float) -> bool:
    """True once a file has not changed for ``settle_seconds``: Asterisk has finished it.

    MixMonitor writes every 20 ms while the call lasts and closes the file right after the
    hang-up, which may be reported before the last write.
    """
    return now - mtime >= settle_seconds


# Why a call has no recording although Asterisk left a file for it: the file is empty. The
# dialplan's MixMonitor writes the WAV header when it opens the file, at the answer, so a file
# with not even that in it means every write was refused: the monitor directory's disk was full
# (or read-only) for the whole call. The caller was answered all the same (a recording never
# holds a call up); what is missing is the site's disk, not a broken recording, so it is no
# case for quarantine.
NOT_WRITTEN = ("Asterisk could not write the recording: its file is empty (the disk of its "
               "monitor directory was full or read-only during the call)")
# Why a call has no file at all while the monitor directory's file system takes no new file
# (read-only, as the kernel remounts a disk after errors, or without a block or inode left)
# when the line pairs it: MixMonitor could not even create it.
NOT_CREATED = ("Asterisk could not create the recording file (the disk of its monitor "
               "directory was read-only or full when the call was paired)")
NOT_RECORDED = frozenset({NOT_WRITTEN, NOT_CREATED})
# What the console and the API say of such a recording.
NOT_WRITTEN_TEXT = ("tidak terekam: disk rekaman Asterisk penuh atau tidak dapat ditulis "
                    "selama panggilan")


def unavailable_because(state: State, reason: str | None) -> str | None:
    """Why a recording cannot be played, in words for the console (Bahasa Indonesia), when
    the line knows more than its state says; None otherwise."""
    if state is State.MISSING and reason in NOT_RECORDED:
        return NOT_WRITTEN_TEXT
    return None


@dataclass(frozen=True)
class Pairing:
    """A recording row an ended call gets: its kind, its first state and, unless pending, why."""

    kind: Kind
    state: State
    reason: str | None = None


def pair_files(
    mtimes: Mapping[Kind, float], *, now: float, ended_seconds_ago: float,
    settle_seconds: float, missing_after_seconds: float, separate_legs: bool,
    empty: frozenset[Kind] = frozenset(), disk_refuses: bool = False,
) -> list[Pairing] | None:
    """The rows an ended call gets now, from the files Asterisk left for it (their modification
    times by kind); None to look again later.

    MixMonitor opens a call's files together when it is answered and closes them together when
    it ends, so once the mixed file is complete a leg that is not there will never come: it is
    missing at once (if legs are recorded at all) and does not hold the mix up. A leg found
    while separate legs are off (just turned off, say) is a recording of the call all the same.
    A file of a kind in ``empty`` holds nothing: that recording is missing (:data:`NOT_WRITTEN`);
    one not there while the monitor directory ``disk_refuses`` new files was never created
    (:data:`NOT_CREATED`).
    """
    if not all(is_settled(mtime, now, settle_seconds) for mtime in mtimes.values()):
        return None  # Asterisk may still be writing
    if Kind.MIXED not in mtimes and ended_seconds_ago < missing_after_seconds:
        return None
    rows = []
    for kind in CALL_KINDS:
        if kind in empty and kind in mtimes:
            rows.append(Pairing(kind, State.MISSING, NOT_WRITTEN))
        elif kind in mtimes:
            rows.append(Pairing(kind, State.PENDING))
        elif kind is Kind.MIXED:
            rows.append(Pairing(kind, State.MISSING, NOT_CREATED if disk_refuses
                                else "the call ended without a recording file"))
        elif separate_legs:
            rows.append(Pairing(kind, State.MISSING, NOT_CREATED if disk_refuses
                                else f"the call ended without its {describe(kind)}'s file"))
    return rows


def pair_leg(
    mtime: float | None, *, now: float, ended_seconds_ago: float, settle_seconds: float,
    missing_after_seconds: float, kind: Kind = Kind.CALLBACK, empty: bool = False,
    disk_refuses: bool = False,
) -> Pairing | None:
    """The row an ended leg's recording of ``kind`` (:data:`LEG_KINDS`) gets now, from its
    file's modification time (``None``: no file); None to look again later. Only a leg that
    was answered is recorded (the dialplan starts MixMonitor then: the caller's answer of a
    call-back, the agency's of a consult), so only such legs are paired at all. An ``empty``
    file holds nothing: the recording is missing (:data:`NOT_WRITTEN`); none while the disk
    refuses new files, :data:`NOT_CREATED`."""
    if mtime is not None:
        if not is_settled(mtime, now, settle_seconds):
            return None
        return Pairing(kind, State.MISSING, NOT_WRITTEN) if empty else Pairing(kind,
                                                                               State.PENDING)
    if ended_seconds_ago < missing_after_seconds:
        return None
    return Pairing(kind, State.MISSING, NOT_CREATED if disk_refuses
                   else f"the leg ended without its {describe(kind)} file")


# What MixMonitor writes to a .wav: 8 kHz, 16-bit, mono.
WAV_BYTES_PER_SECOND = 16_000


def processing_bound(base_seconds: float, source_bytes: int) -> float:
    """How long measuring and transcoding a source of ``source_bytes`` may take: the
    ``process_timeout`` of every file, plus the call's own length.

    The transcoder runs at the lowest priority, so on a machine busy with calls it gets a few
    per cent of a core: an hour of audio, 53 s of CPU alone (measured 2026-12-07), then takes
    some 20 minutes. A bound that ignored the length cut every long call during a surge, three
    times, and quarantined it; slower than the call itself, something is wrong.
    """
    return base_seconds + max(source_bytes, 0) / WAV_BYTES_PER_SECOND


CATEGORIES = ("emergency", "complaint", "information")


@dataclass(frozen=True)
class RetentionPolicy:
    """Days a recording is kept, by the IVR category of its call (``calls.ivr_category``).

    ``default_days`` covers calls without a category: hung up in the IVR, or failed open (those
    reached the emergency queue, so the default should be as long as emergencies').
    """

    emergency_days: int
    complaint_days: int
    information_days: int
    default_days: int

    def __post_init__(self) -> None:
        if min(self.emergency_days, self.complaint_days, self.information_days,
               self.default_days) < 1:
            raise ValueError("retention days must be at least 1")

    def days_for(self, category: str | None) -> int:
        """The retention of a call in ``category``."""
        return {
            "emergency": self.emergency_days,
            "complaint": self.complaint_days,
            "information": self.information_days,
        }.get(category or "", self.default_days)

    def expires_at(self, category: str | None, started_at: datetime) -> datetime:
        """When a recording of a call in ``category`` that started at ``started_at`` expires."""
        return started_at + timedelta(days=self.days_for(category))

    def is_expired(
        self, category: str | None, started_at: datetime, legal_hold: bool, now: datetime,
        *, incident_open: bool = False, incident_ended_at: datetime | None = None,
    ) -> bool:
        """True if the recording must be removed now. A legal hold always keeps it, and so
        does an incident of its call still being worked on (its recordings are the case's
        evidence, whoever forgot to hold them); once the incident has ended, the retention
        runs from that end, so a case that took years does not lose its calls the night it
        closes."""
        if legal_hold or incident_open:
            return False
        counted_from = max(started_at, incident_ended_at or started_at)
        return self.expires_at(category, counted_from) <= now

    def cutoffs(self, now: datetime) -> tuple[dict[str, datetime], datetime]:
        """For each category, the start before which its recordings may have expired at
        ``now``; and the same for calls without a known category."""
        return ({category: now - timedelta(days=self.days_for(category))
                 for category in CATEGORIES}, now - timedelta(days=self.default_days))

    def earliest_cutoff(self, now: datetime) -> datetime:
        """No recording that started after this instant can have expired at ``now``."""
        shortest = min(self.emergency_days, self.complaint_days, self.information_days,
                       self.default_days)
        return now - timedelta(days=shortest)


def holder_is_gone(claimed_started: int | None, running_started: int | None) -> bool:
    """True if the process that claimed a job on this host is dead: no process has its pid now
    (``running_started`` None), or the one that has it started at another time (the pid was
    reused). A claim whose start time was not known (``claimed_started`` None) cannot be
    judged: it waits out its lease."""
    if claimed_started is None:
        return False
    return running_started != claimed_started
