"""A supervisor who loses the right to listen in stops listening at once.

Refusing new listen-ins is not enough: a supervisor made an operator (or admin), or whose
account was disabled, kept the ChanSpy already running on their phone, and so kept hearing
callers after the admin had taken that right away. Now:

- The account service announces the change at commit (``NOTIFY siaga112_account_rights``,
  the username; the HTTP route and the CLI alike: :mod:`telephony.accounts.store`); so does
  giving an account another phone (``assign_desk``: ``account desk``, the console's and the
  API's desk assignment), whose old phone may be listening in.
- Every line LISTENs on it (on a cluster each node's Asterisk carries its own listen-ins) and
  runs a round: Asterisk's channels (``CoreShowChannels``), those of a supervisor's phone in
  ChanSpy, and the account holding each phone now (``account_operators``). A leg whose phone
  no active supervisor holds is hung up (AMI ``Hangup``), then audited as
  ``supervision.revoked`` by ``system`` with the account, the phone, the legs and the reason.
- A listen-in answered while the right was being taken away may not run ChanSpy yet when
  the round looks: the leg its OriginateResponse named is looked at too (and wakes a round).
- A round also runs after every AMI login, when the LISTEN connection is made again, and
  every ``interval`` seconds as a safety net (a notification lost).

The source of truth is what is stored: a round brings Asterisk to it, so a round too many
costs one ``CoreShowChannels``. The supervisor's console needs nothing more: the same change
ended every session of the account, and the page goes to the login form.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from telephony.accounts.store import RIGHTS_CHANNEL
from telephony.ami.actions import AmiActionError, AmiListActions
from telephony.ami.channels import live_channels
from telephony.ami.originate import printable
from telephony.cluster.listening import ChannelListener
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.service import AuditLog
from telephony.supervision.model import (
    AUDIT_OBJECT,
    REVOKED_ACTION,
    SpyLeg,
    revoked_reason,
    spy_leg,
)
from telephony.supervision.store import SupervisionRepository

log = logging.getLogger("telephony.supervision")

ACTOR: Final = "system"  # the line ended it, because of an admin's change (its own entry)
LISTENER_NAME: Final = "siaga112 listening rights"  # the LISTEN connection's name
# How long a leg an OriginateResponse named is looked at without running ChanSpy: well past
# the moment its ChanSpy starts (or it was hung up).
ANSWERED_SECONDS: Final = 10.0


class RightsAmi(AmiListActions, Protocol):
    """What ending listen-ins needs of AMI (``AmiListener``)."""

    @property
    def logged_in(self) -> bool:
        """Whether an AMI session is up."""
        ...


class ListeningRights:
    """See the module's docstring."""

    def __init__(self, database: Database, ami: RightsAmi, audit: AuditLog, *,
                 interval: float = 30.0, retry_seconds: float = 5.0,
                 repository: SupervisionRepository | None = None) -> None:
        self._database = database
        self._ami = ami
        self._audit = audit
        self._repo = repository or SupervisionRepository()
        self._channel = ChannelListener(database, RIGHTS_CHANNEL, LISTENER_NAME, self,
                                        interval=interval, retry_seconds=retry_seconds)
        # Legs answered for a listen-in (OriginateResponse), ChanSpy perhaps not yet running:
        # leg -> (the listen-in's spied channel and mode, when noted).
        self._answered: dict[str, tuple[SpyLeg, float]] = {}
        # Legs hung up and audited: one Asterisk keeps a while (a ChanSpy whose spied channel
        # carries no audio lingers: asterisk/asterisk#978) is hung up again, not audited again.
        self._hung: set[str] = set()
        # Told the username of each change (the wallboard closes that account's boards).
        self._watchers: list[Callable[[str], None]] = []
        self.rounds = 0  # rounds done with an AMI session (tests wait on them)
        self.ended = 0  # legs hung up and audited

    # -- what wakes a round ------------------------------------------------------------------

    def on_change(self, watcher: Callable[[str], None]) -> None:
        """Call ``watcher`` with the username of each account whose rights changed (inside
        the LISTEN callback: it notes it and returns)."""
        self._watchers.append(watcher)

    def notified(self, payload: str) -> None:
        """An account's rights changed (:class:`ChannelListener`; the round looks at all)."""
        username = printable(payload)[:64]
        log.info("rights of account %r changed: its listening in is looked at", username)
        for watcher in self._watchers:
            watcher(username)

    def listening(self) -> None:
        """The LISTEN connection was (re)made: the round it wakes looks at every leg."""

    def booted(self, _event: Mapping[str, str]) -> None:
        """``FullyBooted`` (a new AMI session): a change made while AMI was away applies now."""
        self._channel.wake()

    def answered(self, leg: str, spied: str, mode: str) -> None:
        """A supervisor's phone answered a listen-in (its OriginateResponse): ``leg`` is looked
        at before it shows ChanSpy."""
        self._answered[leg] = (SpyLeg(leg, spied, mode), time.monotonic())
        self._channel.wake()

    async def run(self) -> None:
        """Listen and end listen-ins, until cancelled."""
        await self._channel.run()

    # -- the round ---------------------------------------------------------------------------

    async def round(self) -> bool:
        """End every listen-in on this Asterisk whose phone no active supervisor holds;
        ``False``: AMI or the database failed, run again after a while."""
        if not self._ami.logged_in:
            return True  # its FullyBooted wakes a round
        try:
            return await self._end_revoked()
        finally:
            self.rounds += 1

    async def _end_revoked(self) -> bool:
        try:
            channels = await live_channels(self._ami)
        except AmiActionError as exc:
            log.warning("listening in not checked against the accounts' rights: %s", exc)
            return False
        alive = {channel.channel for channel in channels}
        self._hung &= alive
        legs = {leg.leg: leg for channel in channels
                if (leg := spy_leg(channel.channel, channel.application,
                                   channel.application_data)) is not None}
        horizon = time.monotonic() - ANSWERED_SECONDS
        for name, (noted, at) in list(self._answered.items()):
            if name not in alive or at < horizon:
                del self._answered[name]
            elif name not in legs:
                legs[name] = noted
        if not legs:
            return True
        try:
            holders = await self._database.run(functools.partial(
                self._repo.holders, phones={leg.phone for leg in legs.values()}))
        except DatabaseUnavailable as exc:
            log.warning("listening in not checked against the accounts' rights: %s", exc)
            return False
        done = True
        for leg in legs.values():
            holder = holders.get(leg.phone)
            why = revoked_reason(holder)
            if why is not None:
                done = await self._end(leg, holder.username if holder else "", why) and done
        return done

    async def _end(self, leg: SpyLeg, account: str, why: str) -> bool:
        """Hang ``leg`` up, then audit it; whether both were done."""
        try:
            await self._ami.send_action({"Action": "Hangup", "Channel": leg.leg})
        except AmiActionError as exc:
            # Gone meanwhile (the call ended, the supervisor hung up): nothing to end, nothing
            # heard after the change. Anything else: tried again.
            log.warning("listening in on %s from %s (account %s) not hung up: %s",
                        leg.spied or "?", leg.leg, account or "-", exc)
            return False
        self._answered.pop(leg.leg, None)
        if leg.leg in self._hung:
            return True
        self._hung.add(leg.leg)
        self.ended += 1
        log.warning("listening in on %s from %s hung up: %s", leg.spied or "?", leg.leg, why)
        try:
            await self._audit.audit(
                actor=ACTOR, action=REVOKED_ACTION, object_type=AUDIT_OBJECT,
                object_id=leg.operator, remote_address="",
                detail={"account": account, "phone": leg.phone, "leg": leg.leg,
                        "channel": leg.spied, "mode": leg.mode, "reason": why})
        except DatabaseUnavailable as exc:
            # The listening is over, which matters most; the log line above says so.
            log.error("audit entry %s for %s not written: %s", REVOKED_ACTION, leg.leg, exc)
        return True
