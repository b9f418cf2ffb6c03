"""Queue settings and queue membership as an admin changes them (pure: no I/O).

Every queue the live menu routes to, plus the overflow queue, is one section of
``queues_siaga112.conf``, which ``asterisk-conf/queues.conf`` includes: strategy, ring timeout,
retry, wrap-up and announcements, rendered from :class:`QueueSettings`. The fixed safety
settings stay in queues.conf's templates, out of an admin's reach: every queue the IVR routes
to is on ``[queue](!)`` (a caller neither joins nor stays in it while none of its operators can
take a call: the dialplan moves them to the overflow at once), the overflow on
``[overflow](!)`` (callers wait there even with nobody logged in); an operator on a call is
never rung in either.

How long a caller waits in a queue before overflowing is not a queue option in Asterisk but an
argument of the dialplan's ``Queue()``; the dialplan reads it every round from a file the line
writes into Asterisk's configuration directory (``siaga112-live/max_wait.<queue>``), so a
change applies to the next round of every caller, including those already waiting.

Operators are *dynamic* members (AMI QueueAdd at login). Their queues and penalties follow
from their skills and the menu (``telephony.desks.operators.OperatorDesk.plan``);
:func:`member_changes` is what brings one logged-in operator from the membership Asterisk
reports to the planned one, without logging anyone out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from ivr.menu import IvrMenu
from telephony.admin.errors import InvalidConfig, StaleSettings
from telephony.admin.versions import QUEUE_NAME
from telephony.core.labels import LabelledStrEnum
from telephony.desks.operators import OVERFLOW_QUEUE, skill_queues
from telephony.settings import Settings

QUEUES_CONF: Final = "queues_siaga112.conf"  # included by asterisk-conf/queues.conf
# The numbers the dialplan reads with FILE() while calls go on (extensions.conf,
# [siaga112-setting]), one file each, in this directory of Asterisk's configuration.
LIVE_SETTINGS_DIR: Final = "siaga112-live"


def max_wait_key(queue: str) -> str:
    """The live setting holding a queue's wait before overflow."""
    return f"max_wait.{queue}"


NORMAL_PRIORITY_KEY: Final = "normal_priority"  # the preset QUEUE_PRIO of every call

class Strategy(LabelledStrEnum):
    """How a queue picks the phone to ring (Asterisk's ``strategy``), as an admin may set it.

    "linear" is left out: Asterisk cannot switch a running queue to or from it on a reload.
    A queue's settings keep the code as a string: queues.conf may hold one we do not offer.
    """

    RINGALL = "ringall", "Semua telepon berdering bersamaan"
    LEASTRECENT = "leastrecent", "Yang paling lama menganggur"
    FEWESTCALLS = "fewestcalls", "Yang paling sedikit menerima panggilan"
    RANDOM = "random", "Acak"
    RRMEMORY = "rrmemory", "Bergiliran (ingat giliran terakhir)"
    RRORDERED = "rrordered", "Bergiliran menurut urutan masuk"
    WRANDOM = "wrandom", "Acak berbobot penalti"

# Bounds an admin may set, with the reason for each in the messages below.
RING_TIMEOUT: Final = (5, 120)
# app_queue reads a retry of 0 (or less) as its default of 5 s: the shortest wait between
# two rounds of ringing an admin can have is 1 s, and a 0 would give them five.
RETRY: Final = (1, 60)
WRAPUP: Final = (0, 600)
ANNOUNCE_FREQUENCY: Final = (15, 600)  # or 0: no announcements
MAX_WAIT: Final = (10, 3600)


@dataclass(frozen=True)
class QueueSettings:
    """What an admin sets for one queue. ``updated_by`` is None for the defaults."""

    queue: str
    strategy: str
    ring_timeout_seconds: int
    retry_seconds: int
    wrapup_seconds: int
    announce_position: bool
    announce_holdtime: bool
    announce_frequency_seconds: int
    max_wait_seconds: int
    updated_by: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class QueueDefaults:
    """The settings file's values for queues no admin has changed."""

    wrapup_seconds: int
    max_wait_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueDefaults:
        """The defaults the settings file gives."""
        return cls(wrapup_seconds=settings.queue_wrapup_seconds,
                   max_wait_seconds=settings.queue_max_wait)

    def for_queue(self, queue: str) -> QueueSettings:
        """The default settings of ``queue``: the overflow rings everyone at once, a skill
        queue the operator idle longest; 15 s per ring, the round retried at once."""
        return QueueSettings(
            queue=queue,
            strategy="ringall" if queue == OVERFLOW_QUEUE else "leastrecent",
            ring_timeout_seconds=15,
            retry_seconds=1,
            wrapup_seconds=self.wrapup_seconds,
            announce_position=False,
            announce_holdtime=False,
            announce_frequency_seconds=0,
            max_wait_seconds=self.max_wait_seconds,
        )


EDITABLE: Final = ("strategy", "ring_timeout_seconds", "retry_seconds", "wrapup_seconds",
                   "announce_position", "announce_holdtime", "announce_frequency_seconds",
                   "max_wait_seconds")


def _whole(raw: Mapping[str, Any], name: str, bounds: tuple[int, int], what: str) -> int:
    value = raw[name]
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidConfig(f"{what} harus bilangan bulat {low}-{high} detik.", name)
    return value


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw[name]
    if not isinstance(value, bool):
        raise InvalidConfig("Isian ini harus ya atau tidak.", name)
    return value


def parse_queue_settings(queue: str, raw: Mapping[str, Any], known: Iterable[str]
                         ) -> QueueSettings:
    """Validate an admin's settings for ``queue`` (every field of :data:`EDITABLE`)."""
    if queue not in set(known):
        raise InvalidConfig(f"Antrean {queue[:40]!r} tidak dikenal menu IVR yang berlaku.",
                            "queue")
    if not QUEUE_NAME.fullmatch(queue):  # known queues come from a checked menu; belt and braces
        raise InvalidConfig(f"Nama antrean {queue[:40]!r} tidak sah.", "queue")
    missing = [name for name in EDITABLE if name not in raw]
    if missing:
        raise InvalidConfig(f"Isian {missing[0]} wajib diisi.", missing[0])
    strategy = raw["strategy"]
    if strategy not in Strategy.labels():
        raise InvalidConfig(f"Strategi {str(strategy)[:30]!r} tidak dikenal; pilih salah satu: "
                            f"{', '.join(Strategy.labels())}.", "strategy")
    frequency = raw["announce_frequency_seconds"]
    settings = QueueSettings(
        queue=queue,
        strategy=strategy,
        ring_timeout_seconds=_whole(raw, "ring_timeout_seconds", RING_TIMEOUT,
                                    "Lama dering per operator"),
        retry_seconds=_whole(raw, "retry_seconds", RETRY, "Jeda sebelum mencoba lagi"),
        wrapup_seconds=_whole(raw, "wrapup_seconds", WRAPUP, "Waktu wrap-up"),
        announce_position=_flag(raw, "announce_position"),
        announce_holdtime=_flag(raw, "announce_holdtime"),
        announce_frequency_seconds=0 if frequency == 0 and type(frequency) is int else _whole(
            raw, "announce_frequency_seconds", ANNOUNCE_FREQUENCY, "Selang pengumuman"),
        max_wait_seconds=_whole(raw, "max_wait_seconds", MAX_WAIT,
                                "Lama tunggu sebelum dialihkan"),
    )
    announcing = settings.announce_position or settings.announce_holdtime
    if announcing and settings.announce_frequency_seconds == 0:
        raise InvalidConfig("Pengumuman posisi atau lama tunggu perlu selang pengumuman "
                            f"{ANNOUNCE_FREQUENCY[0]}-{ANNOUNCE_FREQUENCY[1]} detik.",
                            "announce_frequency_seconds")
    if settings.max_wait_seconds < settings.ring_timeout_seconds:
        # Otherwise the caller overflows before the first operator has rung out.
        raise InvalidConfig("Lama tunggu sebelum dialihkan tidak boleh lebih singkat dari lama "
                            "dering per operator.", "max_wait_seconds")
    return settings


@dataclass(frozen=True)
class Seen:
    """The state of a queue's settings an admin's form was made from: when they had been
    stored (``None``: still the defaults). Two admins with the page open must not undo each
    other's change unseen: the form carries the full settings, an older copy of them too."""

    updated_at: datetime | None


def parse_seen(raw: object) -> Seen:
    """``expected_updated_at`` as a client sends it: the ``updated_at`` it read (ISO 8601 with
    its offset), or null for a queue it saw on the defaults."""
    if raw is None:
        return Seen(None)
    instant = None
    if isinstance(raw, str):
        try:
            instant = datetime.fromisoformat(raw)
        except ValueError:
            instant = None
    if instant is None or instant.tzinfo is None:
        raise InvalidConfig("expected_updated_at harus waktu ISO 8601 dengan zona waktu (nilai "
                            "updated_at yang dibaca), atau null.", "expected_updated_at")
    return Seen(instant)


def check_unchanged(queue: str, stored: QueueSettings | None, seen: Seen) -> None:
    """Refuse a change made from settings stored over since (:class:`Seen`)."""
    now = None if stored is None else stored.updated_at
    if now == seen.updated_at:
        return
    by = f" oleh {stored.updated_by}" if stored is not None and stored.updated_by else ""
    raise StaleSettings(f"Pengaturan antrean {queue} baru saja diubah{by} sejak halaman ini "
                        "dibuka; perubahan Anda tidak disimpan agar perubahan itu tidak "
                        "tertimpa. Muat ulang, lalu ulangi.", "expected_updated_at")


def operator_revision(interface: str | None, skills: Mapping[str, int],
                      phone: str | None) -> str:
    """A short fingerprint of an operator's desk, phone kind and skills as an admin's form
    shows them. Desks carry no time of change; the form posts all three whole, so one made
    before another admin's change would put it back unseen (:class:`Seen` for queues)."""
    shown = json.dumps([interface, sorted(skills.items()), phone], ensure_ascii=True)
    return hashlib.sha256(shown.encode("ascii")).hexdigest()[:16]


def check_operator_unchanged(username: str, revision: str, expected: str) -> None:
    """Refuse a change of ``username``'s desk made from a form older than ``revision``."""
    if revision != expected:
        raise StaleSettings(f"Telepon atau keahlian {username} baru saja diubah admin lain "
                            "sejak halaman ini dibuka; perubahan Anda tidak disimpan agar "
                            "perubahan itu tidak tertimpa. Muat ulang, lalu ulangi.",
                            "expected_revision")


def effective_settings(queues: Iterable[str], stored: Mapping[str, QueueSettings],
                       defaults: QueueDefaults) -> list[QueueSettings]:
    """The settings of every queue in ``queues`` and the overflow queue, by name: an admin's
    where stored, else the defaults."""
    names = sorted({*queues, OVERFLOW_QUEUE})
    return [stored.get(name) or defaults.for_queue(name) for name in names]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _template(queue: str) -> str:
    """The queues.conf template of ``queue``: whether a caller may wait in it with nobody
    there to answer."""
    return "overflow" if queue == OVERFLOW_QUEUE else "queue"


def render_queues_conf(queues: Sequence[QueueSettings]) -> str:
    """``queues_siaga112.conf``: one section per queue, on the ``[queue](!)`` template, the
    overflow on ``[overflow](!)``."""
    parts = [
        "; Generated by siaga112 (telephony/admin/queues.py) from the queue settings; the\n"
        "; line rewrites it and reloads app_queue when an admin changes them. Do not edit.\n"
    ]
    for settings in queues:
        parts.append(
            f"\n[{settings.queue}]({_template(settings.queue)})\n"
            f"strategy = {settings.strategy}\n"
            f"timeout = {settings.ring_timeout_seconds}\n"
            f"retry = {settings.retry_seconds}\n"
            f"wrapuptime = {settings.wrapup_seconds}\n"
            f"announce-frequency = {settings.announce_frequency_seconds}\n"
            f"announce-position = {_yes(settings.announce_position)}\n"
            f"announce-holdtime = {_yes(settings.announce_holdtime)}\n"
        )
    return "".join(parts)


@dataclass(frozen=True)
class Member:
    """A queue member as Asterisk's QueueStatus reports it."""

    queue: str
    interface: str
    name: str
    penalty: int
    paused: bool
    pause_reason: str
    dynamic: bool  # added with QueueAdd (an operator's login), not from queues.conf
    in_call: bool


@dataclass(frozen=True)
class MemberChange:
    """One AMI action that brings a member closer to its plan (``pause``: a cluster node
    follows a pause made through another node's line, telephony/cluster/members.py)."""

    action: Literal["add", "remove", "penalty", "pause"]
    queue: str
    interface: str
    penalty: int = 0
    paused: bool = False
    pause_reason: str = ""
    name: str = ""


def planned_membership(
    levels: Mapping[str, int], joined: Collection[str], joined_under: IvrMenu, now: IvrMenu,
    plan: Callable[[Mapping[str, int]], Mapping[str, int]],
) -> dict[str, int]:
    """Queue -> penalty a logged-in operator should have now.

    ``levels`` are their skills as stored now, ``joined`` the queues they are in, reached
    through ``joined_under`` (the menu before the change); ``plan`` maps skills to queues and
    penalties under ``now`` (``OperatorDesk.plan``). A skill counts if they joined one of its
    queues: an operator who took only some of their skills keeps only those, a new level
    changes penalties, a skill taken away takes its queues along, and a skill granted now
    waits for the operator to join it. ``{}``: they are left in no queue.
    """
    before = skill_queues(joined_under)
    after = skill_queues(now)
    active = {skill: level for skill, level in levels.items()
              if before.get(skill, set()) & set(joined) and skill in after}
    return dict(plan(active)) if active else {}


def member_changes(interface: str, current: Sequence[Member], planned: Mapping[str, int]
                   ) -> list[MemberChange]:
    """The QueueAdd/QueueRemove/QueuePenalty actions that take a logged-in operator from
    ``current`` (their dynamic memberships) to ``planned`` (queue -> penalty).

    A queue they join inherits their pause (an operator on a break stays on it); additions
    come first, so they are never out of every queue in between.
    """
    mine = {m.queue: m for m in current if m.interface == interface and m.dynamic}
    paused = [m for m in mine.values() if m.paused]
    name = next((m.name for m in mine.values() if m.name), interface)
    reason = paused[0].pause_reason if paused else ""
    changes = [MemberChange("add", queue, interface, penalty, bool(paused), reason, name)
               for queue, penalty in sorted(planned.items()) if queue not in mine]
    changes += [MemberChange("penalty", queue, interface, penalty)
                for queue, penalty in sorted(planned.items())
                if queue in mine and mine[queue].penalty != penalty]
    changes += [MemberChange("remove", queue, interface)
                for queue in sorted(mine) if queue not in planned]
    return changes


def moved_members(current: Sequence[Member], previous: str, interface: str
                  ) -> list[MemberChange]:
    """The QueueAdd/QueueRemove actions that move a logged-in operator whose desk the admin
    put at another phone: every queue ``previous`` is a dynamic member of is joined by
    ``interface`` with the same penalty and pause, then left by ``previous``. Left there,
    the old phone would go on being rung for them (an empty desk, a ring timeout lost each
    round), and their desk, which now names the new phone, could not take it out."""
    there = {m.queue for m in current if m.interface == interface}
    mine = [m for m in current if m.interface == previous and m.dynamic]
    # A member named by its phone (no display name at login) is named by the new one.
    changes = [MemberChange("add", m.queue, interface, m.penalty, m.paused, m.pause_reason,
                            interface if m.name in ("", previous) else m.name)
               for m in mine if m.queue not in there]
    changes += [MemberChange("remove", m.queue, previous) for m in mine]
    return changes


def dropped_members(current: Sequence[Member], kept: Collection[str]) -> list[MemberChange]:
    """The QueueRemove actions that empty every queue a new configuration drops (those not in
    ``kept``), to be sent before the reload that drops them.

    app_queue keeps a dropped queue alive, members and all, for the callers waiting in it,
    where no action can reach it by name any more: they would wait out their max wait for
    operators who no longer take that queue. Emptied first, the queue lets them go at once
    (leavewhenempty, queues.conf) and the dialplan takes them to all-operators.
    """
    return [MemberChange("remove", m.queue, m.interface) for m in current
            if m.dynamic and m.queue not in kept]
