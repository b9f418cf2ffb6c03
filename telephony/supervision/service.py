"""Listening in on an operator's live call: check, audit, then ring the supervisor's phone.

In this order, so that nothing is heard that the audit log does not name:

1. The request: a mode, the operator's interface, optionally the call (all checked against
   strict patterns: the interface and the channel found for it are spliced into an AMI
   action). The supervisor must have a phone (``siaga112 account desk``), and an operator
   account must work at the interface.
2. Asterisk is asked (``CoreShowChannels``) for the operator's answered channel now, on the
   call named if one was (``telephony.ami.channels``): no such channel, no listening.
3. The audit entry (``supervision.listen`` / ``whisper`` / ``barge``, about the operator's
   desk, with the call, the spied channel, the supervisor's phone and the mode) is written.
   If it cannot be, the error propagates and nothing is sent.
4. ``Originate`` rings the supervisor's phone into ``ChanSpy`` on exactly that channel
   (``telephony.supervision.model``). If Asterisk refuses it or does not answer, a second
   entry (``supervision.failed``) says so; the first one stands (it was attempted), and the
   supervisor is told to try again (503).

Needs the AMI classes ``reporting`` (CoreShowChannels) and ``originate`` (an Originate of
ChanSpy: Asterisk asks for ``system`` only for applications that reach a shell).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from telephony.accounts.model import Account, Role
from telephony.ami.actions import AmiActionError, AmiListActions
from telephony.ami.channels import live_channels, operator_channel
from telephony.calls.ids import valid_call_id
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.service import AuditLog
from telephony.supervision.errors import (
    InvalidSupervision,
    NoLiveCall,
    NoSupervisorPhone,
    NotSupervisor,
    SupervisionUnavailable,
    UnknownOperator,
)
from telephony.supervision.model import (
    FAILED_ACTION,
    SpyMode,
    SupervisionInputError,
    operator_interface,
    originate_action,
    parse_mode,
)
from telephony.supervision.store import SupervisionRepository

log = logging.getLogger("telephony.supervision")

AUDIT_OBJECT = "desk"  # as the desk's own entries (join, pause ...): the operator's interface


@dataclass(frozen=True)
class SupervisionConfig:
    """How long the supervisor's phone rings before the attempt is given up."""

    ring_seconds: float = 30.0


@dataclass(frozen=True)
class Supervision:
    """A listening-in Asterisk has queued: the supervisor's phone is about to ring."""

    mode: SpyMode
    operator: str  # the operator's interface
    operator_username: str
    call_id: str
    channel: str  # the operator's channel being spied on
    phone: str  # the supervisor's phone


class SupervisionService:
    """Starts a supervisor's listening-in, audited before Asterisk hears of it."""

    def __init__(self, database: Database, ami: AmiListActions, audit: AuditLog, *,
                 config: SupervisionConfig | None = None,
                 repository: SupervisionRepository | None = None) -> None:
        self._database = database
        self._ami = ami
        self._audit = audit
        self._config = config or SupervisionConfig()
        self._repo = repository or SupervisionRepository()

    async def start(self, account: Account, *, operator: str, mode: str,
                    call_id: str | None = None, remote_address: str) -> Supervision:
        """Listen in (or whisper, or barge) on the call the operator at ``operator`` is
        answering now (``call_id``, when given, must be that call)."""
        if account.role is not Role.SUPERVISOR:
            raise NotSupervisor()
        try:
            chosen = parse_mode(mode)
        except SupervisionInputError:
            raise InvalidSupervision("mode", "Mode harus listen (dengarkan), whisper "
                                             "(bisikkan), atau barge (sela).") from None
        try:
            interface = operator_interface(operator)
        except SupervisionInputError:
            raise InvalidSupervision("operator", "Operator harus berbentuk PJSIP/nama, "
                                                 f"bukan {operator[:40]!r}.") from None
        if call_id is not None and not valid_call_id(call_id):
            raise InvalidSupervision("call_id", f"Panggilan {call_id[:40]!r} tidak dikenal.")

        async def work(connection: asyncpg.Connection) -> tuple[str | None, str | None]:
            return (await self._repo.phone(connection, account.account_id),
                    await self._repo.operator_at(connection, interface))

        phone, username = await self._database.run(work)
        if phone is None:
            raise NoSupervisorPhone(account.username)
        if username is None:
            raise UnknownOperator(interface)
        try:
            channels = await live_channels(self._ami)
        except AmiActionError as exc:
            log.error("CoreShowChannels for %s's %s of %s failed: %s", account.username,
                      chosen.value, interface, exc)
            raise SupervisionUnavailable() from exc
        live = operator_channel(channels, interface, call_id)
        if live is None:
            raise NoLiveCall(interface)
        try:
            action = originate_action(phone=phone, channel=live.channel, operator=interface,
                                      mode=chosen, ring_seconds=self._config.ring_seconds)
        except SupervisionInputError as exc:
            # Asterisk's own channel name, but not shaped as chan_pjsip names them.
            log.warning("not spying on %s for %s: %s", interface, account.username, exc)
            raise NoLiveCall(interface) from exc
        started = Supervision(chosen, interface, username, live.linkedid, live.channel, phone)
        detail = {"call_id": started.call_id, "channel": started.channel, "phone": phone,
                  "mode": chosen.value}
        # First the record, then the act: if it cannot be written this raises, and nothing
        # reaches Asterisk.
        await self._audit.audit(actor=account.username, action=chosen.audit_action,
                                object_type=AUDIT_OBJECT, object_id=interface,
                                remote_address=remote_address, detail=detail)
        try:
            await self._ami.send_action(action)
        except AmiActionError as exc:
            log.error("Originate of %s's %s of %s (call %s) failed: %s", account.username,
                      chosen.value, interface, started.call_id, exc)
            await self._failed(account, interface, remote_address,
                               {**detail, "reason": exc.message[:200]})
            raise SupervisionUnavailable() from exc
        log.info("%s (%s) %s %s on call %s", account.username, phone, chosen.value,
                 interface, started.call_id)
        return started

    async def _failed(self, account: Account, interface: str, remote_address: str,
                      detail: dict[str, str]) -> None:
        """The second entry of an attempt Asterisk did not carry out."""
        try:
            await self._audit.audit(actor=account.username, action=FAILED_ACTION,
                                    object_type=AUDIT_OBJECT, object_id=interface,
                                    remote_address=remote_address, detail=detail)
        except DatabaseUnavailable as exc:
            # The attempt itself is on record; the supervisor still hears it failed.
            log.error("audit entry %s for %s not written: %s", FAILED_ACTION,
                      account.username, exc)
