"""The running Asterisk as the admin services change it: the files it reads (the queues
include, the live settings, the prompt audio) and the AMI actions that make it take them
without a restart.

- ``QueueReload`` is app_queue's own reload (what ``module reload app_queue.so`` does, queue
  statistics kept): it re-reads queues.conf, keeps dynamic members (operators logged in with
  QueueAdd) and leaves waiting callers and answered calls alone. It needs no AMI write class,
  unlike ``Command``, which would let the line's AMI user run any CLI command.
- The live settings are files the dialplan reads with ``FILE()`` on every use: no AMI action
  at all (AstDB's ``DBPut``, or a global variable's ``Setvar``, would need the ``system`` or
  ``call`` write class, and with them ``Reload``, ``ModuleLoad`` or ``Hangup``).
- ``QueueAdd``/``QueueRemove``/``QueuePenalty``/``QueuePause`` (class ``agent``) move
  logged-in operators.
- ``Reload`` of ``res_pjsip.so`` (class ``system``) after a registering phone is stored:
  PJSIP reads a realtime phone at its REGISTER, but its OPTIONS/endpoint-state machinery
  (which gives app_queue the phone's device state) learns realtime AORs and endpoints only
  at a load or reload, so without one a new phone stays Unavailable and is never rung. The
  reload re-reads pjsip.conf and sorcery; calls up and registrations (in AstDB) stay.
- ``PJSIPShowEndpoint`` and ``DBDel`` (class ``system``) end a phone's registration when its
  secret is renewed: the phone may be lost or stolen, and must not keep ringing.

Library and OS errors become :class:`~telephony.admin.errors.ApplyFailed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from telephony.admin.errors import ApplyFailed
from telephony.admin.queues import LIVE_SETTINGS_DIR, QUEUES_CONF, Member, MemberChange
from telephony.ami.actions import AmiActionError, AmiActionRefusedError, AmiListActions
from telephony.asterisk.errors import AsteriskSiteError
from telephony.asterisk.site import AsteriskSite
from telephony.core.text import os_reason
from telephony.desks.phones import end_registration

log = logging.getLogger("telephony.admin")


def _member(event: Mapping[str, str]) -> Member:
    return Member(
        queue=event.get("Queue", ""),
        interface=event.get("Location") or event.get("Interface", ""),
        name=event.get("Name") or event.get("MemberName", ""),
        penalty=int(event.get("Penalty") or 0),
        paused=event.get("Paused") == "1",
        pause_reason=event.get("PausedReason", ""),
        dynamic=event.get("Membership") == "dynamic",
        in_call=event.get("InCall") == "1",
    )


def _not_done(name: str, exc: AmiActionError) -> str:
    """Why Asterisk did not carry out the action ``name``, for the admin: its refusal in its
    own words, or (no AMI session, no answer in time) that it could not be reached, which
    the listener's English would only blur ("menolak ...: not logged in to Asterisk"; the
    listener logs its connection's troubles itself)."""
    if isinstance(exc, AmiActionRefusedError):
        return f"Asterisk menolak {name}: {exc}"
    return f"Asterisk tidak tersambung atau tidak menjawab ({name} tidak terkirim)"


class AdminAmi(AmiListActions, Protocol):
    """What the admin needs of AMI (``AmiListener``): actions, and whether a session is up."""

    @property
    def logged_in(self) -> bool:
        """True while an AMI session is up."""
        ...


class AsteriskAdmin:
    """Applies admin changes to one running Asterisk.

    Without an AMI session every action fails at once (:class:`ApplyFailed`): the listener
    would hold each one up to its action timeout waiting for a login, and an admin's change
    that needs a few actions (a publish: the queues, their reload, bringing them back) hung
    for 20 s or more before saying Asterisk was down. What was stored is applied again at
    the next AMI session either way."""

    def __init__(self, ami: AdminAmi, site: AsteriskSite) -> None:
        self._ami = ami
        self._site = site
        self._conf_dir = site.etc_dir

    @property
    def connected(self) -> bool:
        """Whether an AMI session to this Asterisk is up now."""
        return self._ami.logged_in

    def _check_connected(self, name: str) -> None:
        if not self._ami.logged_in:
            raise ApplyFailed(_not_done(name, AmiActionError(f"{name}: not logged in")))

    async def _send(self, action: Mapping[str, str]) -> None:
        self._check_connected(action["Action"])
        try:
            await self._ami.send_action(action)
        except AmiActionError as exc:
            raise ApplyFailed(_not_done(action["Action"], exc)) from exc

    async def install_prompts(self, src_dir: Path) -> list[str]:
        """Install the prompt audio in ``src_dir`` into Asterisk's sounds."""
        try:
            return await asyncio.to_thread(self._site.install_prompts, src_dir)
        except (AsteriskSiteError, OSError) as exc:
            raise ApplyFailed(f"Rekaman suara tidak dapat dipasang di Asterisk: {exc}") from exc

    def has_prompts(self, names: Iterable[str]) -> bool:
        """Whether every one of the prompts ``names`` is installed in Asterisk's sounds."""
        return all((self._site.sounds_dir / f"{name}.wav").is_file() for name in names)

    def write_queues_conf(self, text: str) -> bool:
        """Replace the queues include in one rename; returns whether it changed."""
        path = self._conf_dir / QUEUES_CONF
        try:
            if path.read_text(encoding="utf-8") == text:
                return False
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ApplyFailed(f"Konfigurasi antrean tidak dapat dibaca: {os_reason(exc)}") from exc
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            raise ApplyFailed(f"Konfigurasi antrean tidak dapat ditulis: {os_reason(exc)}") from exc
        return True

    async def reload_queues(self) -> None:
        """Make app_queue read queues.conf again (members and callers stay)."""
        await self._send({"Action": "QueueReload"})

    async def reload_phones(self) -> None:
        """Make PJSIP learn the registering phones stored now (calls and registrations stay)."""
        await self._send({"Action": "Reload", "Module": "res_pjsip.so"})

    async def end_registration(self, interface: str) -> list[str]:
        """End the phone's current registration now (a renewed secret: the phone may be
        lost or stolen); the contacts it had (:func:`~telephony.desks.phones.end_registration`)."""
        self._check_connected("PJSIPShowEndpoint")
        try:
            return await end_registration(self._ami, interface)
        except AmiActionError as exc:
            raise ApplyFailed(_not_done("DBDel", exc)) from exc

    def write_number(self, key: str, value: int) -> None:
        """Set the live setting ``key``, which the dialplan reads on every use."""
        path = self._conf_dir / LIVE_SETTINGS_DIR / key
        tmp = path.with_name(f".{key}.tmp")
        try:
            path.parent.mkdir(exist_ok=True)
            tmp.write_text(str(value), encoding="ascii")
            tmp.replace(path)
        except OSError as exc:
            raise ApplyFailed(f"Pengaturan {key} tidak dapat ditulis: {os_reason(exc)}") from exc

    async def members(self) -> list[Member]:
        """Every queue member, as QueueStatus reports them now."""
        try:
            self._check_connected("QueueStatus")
            events = await self._ami.send_list_action({"Action": "QueueStatus"})
        except ApplyFailed as exc:
            raise ApplyFailed(f"Status antrean tidak dapat dibaca: {exc.message}") from exc
        except AmiActionError as exc:
            raise ApplyFailed("Status antrean tidak dapat dibaca: "
                              f"{_not_done('QueueStatus', exc)}") from exc
        return [_member(event) for event in events if event.get("Event") == "QueueMember"]

    async def change_member(self, change: MemberChange) -> None:
        """Carry out one membership change."""
        if change.action == "add":
            action = {"Action": "QueueAdd", "Queue": change.queue,
                      "Interface": change.interface, "Penalty": str(change.penalty),
                      "MemberName": change.name or change.interface,
                      "Paused": "true" if change.paused else "false"}
            if change.paused and change.pause_reason:
                action["Reason"] = change.pause_reason
        elif change.action == "pause":
            # With Queue: this queue only (a pause made elsewhere, followed queue by queue).
            action = {"Action": "QueuePause", "Queue": change.queue,
                      "Interface": change.interface,
                      "Paused": "true" if change.paused else "false"}
            if change.paused and change.pause_reason:
                action["Reason"] = change.pause_reason
        elif change.action == "penalty":
            action = {"Action": "QueuePenalty", "Queue": change.queue,
                      "Interface": change.interface, "Penalty": str(change.penalty)}
        else:
            action = {"Action": "QueueRemove", "Queue": change.queue,
                      "Interface": change.interface}
        await self._send(action)
        log.info("queue member %s: %s %s (penalty %d)", change.interface, change.action,
                 change.queue, change.penalty)
