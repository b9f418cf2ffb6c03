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
   supervisor is told to try again (503). The Originate is ``Async``: Asterisk queues it at
   once, and only its ``OriginateResponse`` tells whether the phone answered. One that did
   not (busy, not answered, not registered) gets the same second entry, with the reason.

A supervisor's phone that is in a call or ringing already (still listening, or a second click
on the wallboard; on a cluster also through another node, as this node's Asterisk has every
node's device state of it) is refused before step 3: ringing it again would only be a call
waiting, and the audit log would name a mode that was never heard. Requests are taken one at
a time, so two clicks cannot both find the phone free. After step 4 the request waits a moment
(``answer_wait_seconds``) for Asterisk to say the phone cannot be rung at all (not
registered, refusing): that comes within milliseconds, and the supervisor is told so (409)
instead of being promised a ring. If the operator's call ends while the supervisor's phone
still rings, the line hangs the phone up (it would ring on for ``ring_seconds`` into a
listening of nothing), and the second entry says the call had ended.

Needs the AMI classes ``reporting`` (CoreShowChannels) and ``originate`` (an Originate of
ChanSpy: Asterisk asks for ``system`` only for applications that reach a shell).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from telephony.accounts.model import Account, Role
from telephony.ami.actions import AmiActionError, AmiListActions
from telephony.ami.channels import (
    UP,
    LiveChannel,
    device_state,
    live_channels,
    operator_channel,
)
from telephony.ami.originate import ORIGINATE_RESPONSE, parse_code, printable, reason_label
from telephony.ami.responses import EventSource, OriginateResponses
from telephony.calls.ids import valid_call_id
from telephony.calls.outages import OPEN_CALL_HORIZON
from telephony.calls.store import operator_open_call
from telephony.cluster.peers import DEVICE, IN_USE_STATES, RINGING_STATE
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.service import AuditLog
from telephony.supervision.errors import (
    InvalidSupervision,
    NoLiveCall,
    NoSupervisorPhone,
    NotSupervisor,
    PhoneBusy,
    PhoneUnreachable,
    SupervisionUnavailable,
    UnknownOperator,
)
from telephony.supervision.model import (
    AUDIT_OBJECT,
    FAILED_ACTION,
    RIGHT_REVOKED,
    SPIED_CALL_ENDED,
    SpyMode,
    SupervisionInputError,
    failure_reason,
    is_ours,
    operator_interface,
    originate_action,
    parse_mode,
)
from telephony.supervision.rights import ListeningRights
from telephony.supervision.store import SupervisionRepository

log = logging.getLogger("telephony.supervision")

HANGUP = "Hangup"  # the AMI event of a channel hung up
# How long after its ring time an Originate whose OriginateResponse never came (an AMI
# reconnect lost it) still keeps the supervisor's phone counted as ringing.
RESPONSE_GRACE_SECONDS = 10.0


class SupervisionAmi(AmiListActions, EventSource, Protocol):
    """What the service needs of AMI (``AmiListener``): actions, the live channels, and the
    events that tell how an Originate went."""


@dataclass(frozen=True)
class SupervisionConfig:
    """How long the supervisor's phone rings before the attempt is given up, and how long a
    request waits for Asterisk to say it could not ring it at all."""

    ring_seconds: float = 30.0
    answer_wait_seconds: float = 1.0


@dataclass(frozen=True)
class _Ringing:
    """A supervisor's Originate Asterisk has queued whose OriginateResponse has not come:
    what its ``supervision.failed`` entry needs, should the phone not take the call."""

    actor: str
    interface: str  # the operator's
    remote_address: str
    detail: dict[str, str]
    sent_at: float  # monotonic
    # Set once the OriginateResponse is applied: None if answered, else why not in words.
    outcome: asyncio.Future[str | None]


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

    def __init__(self, database: Database, ami: SupervisionAmi, audit: AuditLog, *,
                 config: SupervisionConfig | None = None,
                 repository: SupervisionRepository | None = None,
                 rights: ListeningRights | None = None) -> None:
        self._database = database
        self._ami = ami
        self._audit = audit
        self._config = config or SupervisionConfig()
        # Told of every answered listen-in: its supervisor may have lost the right meanwhile;
        # and tells of each account whose rights changed, whose ringing then stops.
        self._rights = rights
        if rights is not None:
            rights.on_change(self.rights_changed)
        self._repo = repository or SupervisionRepository()
        self._ringing: dict[str, _Ringing] = {}  # by ActionID
        self._serial = asyncio.Lock()
        self._responses = OriginateResponses(ami, is_ours)
        # Ringing attempts whose spied channel hung up (the operator's call ended), by
        # ActionID: their ringing is stopped (run) and their failure says why.
        self._spied_gone: set[str] = set()
        # Ringing attempts whose supervisor lost the right meanwhile (another role,
        # disabled), by ActionID: their ringing is stopped too, and their failure says why.
        self._revoked: set[str] = set()
        self._stop: asyncio.Queue[str] = asyncio.Queue()
        ami.subscribe(HANGUP, self._hung_up)

    async def start(self, account: Account, *, operator: str, mode: str,
                    call_id: str | None = None, remote_address: str) -> Supervision:
        """Listen in (or whisper, or barge) on the call the operator at ``operator`` is
        answering now (``call_id``, when given, must be that call)."""
        chosen, interface, phone, username = await self._checked(
            account, operator=operator, mode=mode, call_id=call_id)
        # One request at a time: the phone found free stays free until the Originate is out.
        async with self._serial:
            started, ringing = await self._ring(
                account, chosen, interface=interface, username=username, phone=phone,
                call_id=call_id, remote_address=remote_address)
        try:
            async with asyncio.timeout(self._config.answer_wait_seconds):
                # Shielded: the outcome is still applied after the wait gives up.
                why = await asyncio.shield(ringing.outcome)
        except TimeoutError:
            return started  # ringing
        if why is not None:
            raise PhoneUnreachable(phone, why)
        return started

    async def _checked(self, account: Account, *, operator: str, mode: str,
                       call_id: str | None) -> tuple[SpyMode, str, str, str]:
        """Step 1: the mode, the operator's interface, the supervisor's phone and the
        operator's username; raises the refusal of a request that cannot be carried out."""
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
        return chosen, interface, phone, username

    async def live_call(self, account: Account, *, operator: str, mode: str,
                        call_id: str | None = None) -> str | None:
        """The call (or call-back leg's channel) the operator at ``operator`` is answering
        now as the records have it: ``call_id`` when given, else the latest answered and not
        ended; ``None`` for none. A request :meth:`start` refuses (step 1) is refused here
        with its own refusal: on a cluster it is not sent on to the call's node for that
        (telephony/web/nodes.py), nor a 503 while that node's line is down."""
        _, interface, _, _ = await self._checked(account, operator=operator, mode=mode,
                                                 call_id=call_id)
        if call_id is not None:
            return call_id
        since = datetime.now(UTC) - OPEN_CALL_HORIZON
        return await self._database.run(
            lambda c: operator_open_call(c, interface, since=since, answered_only=True))

    async def _ring(self, account: Account, chosen: SpyMode, *, interface: str, username: str,
                    phone: str, call_id: str | None, remote_address: str
                    ) -> tuple[Supervision, _Ringing]:
        """Steps 2 to 4, for a supervisor with a phone and an operator at ``interface``."""
        try:
            channels = await live_channels(self._ami)
        except AmiActionError as exc:
            log.error("CoreShowChannels for %s's %s of %s failed: %s", account.username,
                      chosen.value, interface, exc)
            raise SupervisionUnavailable() from exc
        if self._phone_busy(phone, channels) or await self._busy_elsewhere(phone):
            log.info("%s's %s of %s refused: their phone %s is busy", account.username,
                     chosen.value, interface, phone)
            raise PhoneBusy(phone)
        live = operator_channel(channels, interface, call_id)
        if live is None:
            raise NoLiveCall(interface)
        token = uuid.uuid4().hex
        try:
            action = originate_action(phone=phone, channel=live.channel, operator=interface,
                                      mode=chosen, ring_seconds=self._config.ring_seconds,
                                      token=token)
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
        # Kept before sending: a phone that cannot be reached answers at once, possibly
        # before the action's own reply.
        ringing = _Ringing(account.username, interface, remote_address, detail,
                           time.monotonic(), asyncio.get_running_loop().create_future())
        self._ringing[action["ActionID"]] = ringing
        try:
            reply = await self._ami.send_action(action)
        except AmiActionError as exc:
            log.error("Originate of %s's %s of %s (call %s) failed: %s", account.username,
                      chosen.value, interface, started.call_id, exc)
            if self._ringing.pop(action["ActionID"], None) is not None:
                await self._failed(account.username, interface, remote_address,
                                   {**detail, "reason": exc.message[:200]})
            raise SupervisionUnavailable() from exc
        log.info("%s (%s) %s %s on call %s", account.username, phone, chosen.value,
                 interface, started.call_id)
        # An outcome that came before the action's own reply answers the action (the
        # listener hands it to no subscriber then).
        if printable(reply.get("Event")) == ORIGINATE_RESPONSE:
            await self.originate_response(reply)
        return started, ringing

    def _phone_busy(self, phone: str, channels: Sequence[LiveChannel]) -> bool:
        """Whether the supervisor's ``phone`` has a channel now (talking, listening, ringing)
        or an Originate of ours to it has not been answered yet (Asterisk may not have made
        its channel yet). Forgets Originates whose answer can no longer come."""
        horizon = time.monotonic() - self._config.ring_seconds - RESPONSE_GRACE_SECONDS
        for aid, ringing in list(self._ringing.items()):
            if ringing.sent_at < horizon:
                log.warning("no OriginateResponse for %s's %s of %s: its outcome is unknown",
                            ringing.actor, ringing.detail["mode"], ringing.interface)
                del self._ringing[aid]
        return (any(channel.interface == phone for channel in channels)
                or any(r.detail["phone"] == phone for r in self._ringing.values()))

    async def _busy_elsewhere(self, phone: str) -> bool:
        """Whether the supervisor's ``phone`` is in a call or ringing through another cluster
        node (listening in on a call there): this node's Asterisk lists no channel of it, but
        has every node's device state of it (res_pjsip_publish_asterisk, the cluster's
        ``^PJSIP/`` devices). Without this a second listen-in, to a call on this node, rang
        the phone again in the middle of the first. On a single node it says what the
        channels say. A state that cannot be read holds nothing up: the phone is rung."""
        if not DEVICE.fullmatch(phone):
            return False
        try:
            state = await device_state(self._ami, phone)
        except AmiActionError as exc:
            log.warning("device state of the supervisor's phone %s not read (%s); rung "
                        "regardless", phone, exc)
            return False
        return state in IN_USE_STATES | {RINGING_STATE}

    @property
    def awaiting_response(self) -> int:
        """How many Originates Asterisk queued have no OriginateResponse yet (their phone
        still ringing, or its answer not yet applied)."""
        return len(self._ringing)

    # -- what Asterisk reports -----------------------------------------------------------------

    async def run(self) -> None:
        """Forever: record how the supervisors' Originates went, as Asterisk reports it, and
        stop the ringing of those whose operator's call ended meanwhile."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._responses.run(self.originate_response))
            group.create_task(self._stop_ringing())

    def _hung_up(self, event: Mapping[str, Any]) -> None:
        """A channel hung up (inside the listener's callback: note it, return). The spied
        channel of a supervisor's phone still ringing: the phone would ring on for up to
        ``ring_seconds`` into a listening of nothing."""
        channel = printable(event.get("Channel"))
        for aid, ringing in self._ringing.items():
            if ringing.detail["channel"] == channel and aid not in self._spied_gone:
                self._spied_gone.add(aid)
                self._stop.put_nowait(aid)

    def rights_changed(self, username: str) -> None:
        """``username`` lost the right to listen in (another role, disabled: only such
        changes are announced; :mod:`telephony.supervision.rights`): the phone of each of
        its attempts still ringing stops ringing. One answered meanwhile is hung up there."""
        for aid, ringing in self._ringing.items():
            if ringing.actor == username and aid not in self._revoked:
                self._revoked.add(aid)
                self._stop.put_nowait(aid)

    async def _stop_ringing(self) -> None:
        """Forever: hang up the ringing phone of each attempt whose spied call ended, or
        whose supervisor lost the right."""
        while True:
            aid = await self._stop.get()
            ringing = self._ringing.get(aid)
            if ringing is None:
                self._spied_gone.discard(aid)
                self._revoked.discard(aid)
                continue  # answered or given up meanwhile
            why = ("its supervisor lost the right" if aid in self._revoked
                   else "the operator's call ended")
            phone = ringing.detail["phone"]
            try:
                for channel in await live_channels(self._ami):
                    if channel.interface == phone and channel.state != UP:
                        await self._ami.send_action({"Action": "Hangup",
                                                     "Channel": channel.channel})
                        log.info("%s's %s of %s: %s while %s rang; its ringing stopped",
                                 ringing.actor, ringing.detail["mode"], ringing.interface,
                                 why, phone)
            except AmiActionError as exc:
                log.warning("the ringing of %s (%s) not stopped: %s", phone, why, exc)

    async def originate_response(self, event: Mapping[str, Any]) -> bool:
        """Apply a supervisor's OriginateResponse; ``False`` if it is none of ours (or its
        attempt already has its outcome). Answered: the listening runs, the first entry says
        all. Not: the phone was busy, not answered or not reachable, and a
        ``supervision.failed`` entry says so."""
        aid = printable(event.get("ActionID"))
        ringing = self._ringing.pop(aid, None)
        if ringing is None:
            return False
        spied_gone, revoked = aid in self._spied_gone, aid in self._revoked
        self._spied_gone.discard(aid)
        self._revoked.discard(aid)
        if printable(event.get("Response")) == "Success":
            ringing.outcome.set_result(None)
            leg = printable(event.get("Channel"))
            if self._rights is not None and leg:
                # Its supervisor may have lost the right while the phone rang.
                self._rights.answered(leg, ringing.detail["channel"], ringing.detail["mode"])
            return True
        code = parse_code(printable(event.get("Reason")))
        reason = (RIGHT_REVOKED if revoked else SPIED_CALL_ENDED if spied_gone
                  else failure_reason(code))
        log.warning("%s's %s of %s: %s", ringing.actor, ringing.detail["mode"],
                    ringing.interface, reason)
        try:
            await self._failed(ringing.actor, ringing.interface, ringing.remote_address,
                               {**ringing.detail, "reason": reason})
        finally:
            ringing.outcome.set_result(reason_label(code))
        return True

    async def _failed(self, actor: str, interface: str, remote_address: str,
                      detail: dict[str, str]) -> None:
        """The second entry of an attempt Asterisk did not carry out."""
        try:
            await self._audit.audit(actor=actor, action=FAILED_ACTION,
                                    object_type=AUDIT_OBJECT, object_id=interface,
                                    remote_address=remote_address, detail=detail)
        except DatabaseUnavailable as exc:
            # The attempt itself is on record; the supervisor still hears it failed.
            log.error("audit entry %s for %s not written: %s", FAILED_ACTION, actor, exc)
