"""``siaga112 account desk NAME PJSIP/opNNNN --skill SKILL=LEVEL [--phone desk|browser]
[--new-secret]``: which phone an operator account works at, with its skills, when the console
is out of reach (an admin otherwise sets it on the console's Antrean page); or, without skills,
the phone a supervisor listens in on (``telephony.supervision``). A desk phone without a
secret gets one (and ``--new-secret`` replaces it): it is printed once, for the admin to type
into the phone, and only its digest is kept. A browser phone (``--phone browser``, the
console's softphone) gets no secret to type: its desk page makes one each time it opens.
A refusal is printed by the CLI as one line.

A renewed secret (``--new-secret``) also ends the phone's current registration at once, as
the console does (the phone may be lost or stolen): it registers again with the new secret.
On a cluster that is the registration at the SIP front, the only one there is: no AMI is
asked (the Docker cluster's admin container has none).
The phone stored, the command asks the running Asterisk over AMI to reload PJSIP, as the
console does (``telephony.admin.asterisk``): without it a phone added after Asterisk started
is never rung by a queue. If Asterisk is out of reach or refuses, the phone stays stored, one
line says so, and the line's next AMI session reloads PJSIP (``telephony.admin.sync``).
On a cluster the command tells every node's line instead, and each reloads its own node.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Awaitable, Callable, Sequence

from ivr.menu import load_menu
from telephony.admin.store import AdminTopic, announce
from telephony.ami.actions import AmiActionError, AmiListActions
from telephony.ami.listener import AmiListener
from telephony.calls.facts import CallFact
from telephony.calls.spool import SpooledCall
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.operators import OperatorDesk
from telephony.desks.phones import PhoneKind, end_registration, phone_username
from telephony.desks.service import assign_desk, parse_skill_levels
from telephony.kamailio.registrar import FrontRegistrar, end_front_registration
from telephony.settings import Settings


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``account desk``'s arguments, among the ``account`` actions of the CLI."""
    desk = actions.add_parser(
        "desk", help="put an operator account at its phone (Asterisk interface), with skills; "
                     "or a supervisor account at the phone they listen in on, without")
    desk.add_argument("username")
    desk.add_argument("interface", help="the phone, e.g. PJSIP/op1001")
    desk.add_argument("--skill", action="append", default=[], metavar="SKILL=LEVEL",
                      help="a skill and its level 1-5, e.g. fire=5 (repeatable)")
    desk.add_argument("--phone", choices=[kind.value for kind in PhoneKind], default=None,
                      help="what rings at the desk: a SIP phone on the desk, or the "
                           "console's softphone in the browser (default: as it was; desk)")
    desk.add_argument("--new-secret", action="store_true",
                      help="give the phone a new SIP secret (the old one stops working)")


async def desk(settings: Settings, username: str, interface: str, skills: list[str],
               *, new_secret: bool = False, phone: str | None = None) -> int:
    """Put an operator account at its phone with its skills (``fire=5``), replacing any;
    ``phone`` (desk or browser) says what rings there."""
    levels = parse_skill_levels(skills)
    kind = None if phone is None else PhoneKind(phone)
    database = Database(settings)
    try:
        assignment = await assign_desk(database, load_menu(settings.menu_file), username,
                                       interface, levels, realm=settings.sip_realm,
                                       new_secret=new_secret, phone=kind)
        if settings.cluster_nodes and (assignment.phone_secret is not None
                                       or assignment.phone_changed):
            await _announce_phone(database)
    finally:
        await database.close()
    shown = ", ".join(f"{skill} {level}" for skill, level in sorted(levels.items())) or "-"
    print(f"Akun {username} bekerja di {interface}; keahlian: {shown}.")
    if kind is PhoneKind.BROWSER:
        print(f"Telepon meja ini adalah softphone di browser: {interface} mendaftar saat "
              "operator membuka layar operatornya; tidak ada sandi untuk diketik.")
    if assignment.phone_secret is not None:
        print(phone_secret_text(assignment.interface, settings.sip_realm,
                                assignment.phone_secret))
    front = FrontRegistrar.from_settings(settings)
    if new_secret and front is None:
        # A renewed secret: the phone may be lost or stolen, and its registration (made with
        # the old one) must not go on ringing it with callers until it expires.
        failed = await _over_ami(settings, lambda ami: end_registration(ami, interface), 10.0)
        if failed is not None:
            print(f"Pendaftaran {interface} yang sekarang belum diakhiri ({failed}): sandi "
                  "lama tidak dapat mendaftar lagi, tetapi telepon itu masih dapat berdering "
                  "sampai pendaftarannya habis.")
    elif new_secret and front is not None and assignment.phone_secret is not None:
        # Behind a cluster's front the phone registers there only (each node's endpoint has
        # the front as its contact), so no Asterisk holds a registration to end. The Docker
        # cluster's admin container has no AMI at all: asking one held the command 10 s
        # before the front's note.
        front_note = await end_front_registration(front, interface, settings.sip_realm,
                                                  assignment.phone_secret)
        print(front_note or f"Pendaftaran {interface} di front SIP diakhiri; telepon itu "
                            "mendaftar lagi dengan sandi baru.")
    if not settings.cluster_nodes and (assignment.phone_secret is not None
                                       or assignment.phone_changed):
        # A new secret or kind: a phone Asterisk may not know yet, or new credentials.
        failed = await reload_phones(settings)
        if failed is not None:
            print(f"Telepon tersimpan, tetapi belum diterapkan di Asterisk ({failed}); "
                  "diterapkan saat line tersambung kembali ke Asterisk.")
    return 0


async def _announce_phone(database: Database) -> None:
    """On a cluster: tell every node's line a phone was stored, and each reloads PJSIP on
    its own node (telephony/cluster/admin_sync.py), as the console's change is told. This
    command has no node of its own to reload (the Docker cluster's admin service is none,
    and this host's AMI would be one node's at most): untold, no node would ring the new
    phone until its line's next AMI session."""
    try:
        await database.run(functools.partial(announce, topic=AdminTopic.PHONES))
    except DatabaseUnavailable as exc:
        print(f"Telepon tersimpan, tetapi node-node belum diberi tahu ({exc.message}); "
              "diterapkan di setiap node saat line-nya tersambung kembali ke Asterisk.")
        return
    print("Telepon tersimpan; line di setiap node memuatnya ke Asterisk node itu.")


class _NoCalls:
    """The CLI's AMI session follows no call: the serving line records them."""

    async def record(self, facts: Sequence[CallFact]) -> None:
        """Drop ``facts``."""

    def overflow(self, facts: Sequence[CallFact]) -> None:
        """Drop ``facts``."""

    def spooled_calls(self) -> dict[str, SpooledCall]:
        """None: this session records nothing."""
        return {}

    async def open_calls(self) -> dict[str, set[str]]:
        """None: this session records nothing."""
        return {}


async def _over_ami(settings: Settings, work: Callable[[AmiListActions], Awaitable[object]],
                    wait_seconds: float) -> str | None:
    """Run ``work`` over a short AMI session; returns ``None``, or why it failed."""
    listener = AmiListener(settings, _NoCalls(), action_timeout=wait_seconds)
    await listener.start()
    try:
        await work(listener)
    except AmiActionError as exc:
        return exc.message
    finally:
        await listener.stop()
    return None


async def reload_phones(settings: Settings, *, wait_seconds: float = 10.0) -> str | None:
    """Ask Asterisk to reload PJSIP (``Reload`` of ``res_pjsip.so``) over a short AMI
    session; returns ``None``, or why it did not."""
    return await _over_ami(settings, lambda ami: ami.send_action(
        {"Action": "Reload", "Module": "res_pjsip.so"}), wait_seconds)


async def leave_queues(settings: Settings, interface: str, queues: list[str], *,
                       wait_seconds: float = 10.0) -> str | None:
    """Take ``interface`` out of ``queues`` (``QueueRemove``) over a short AMI session, as a
    logout does; returns ``None``, or why it did not. The serving line sees Asterisk's
    events and records the desk as out."""
    menu = load_menu(settings.menu_file)
    return await _over_ami(settings, lambda ami: OperatorDesk(ami, menu).log_out(
        interface, queues), wait_seconds)


def phone_secret_text(interface: str, realm: str, secret: str) -> str:
    """What the admin types into the phone; the secret is shown this once only."""
    return (f"Telepon {interface} mendaftar (REGISTER) dengan nama pengguna "
            f"{phone_username(interface)}, realm {realm}, sandi: {secret}\n"
            "Sandi ini hanya ditampilkan sekali; yang lama (jika ada) tidak berlaku lagi.")
