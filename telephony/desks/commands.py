"""``siaga112 account desk NAME PJSIP/opNNNN --skill SKILL=LEVEL [--new-secret]``: which phone
an operator account works at, with its skills, when the console is out of reach (an admin
otherwise sets it on the console's Antrean page); or, without skills, the phone a supervisor
listens in on (``telephony.supervision``). A phone without a secret gets one (and
``--new-secret`` replaces it): it is printed once, for the admin to type into the phone, and
only its digest is kept. A refusal is printed by the CLI as one line.

The phone stored, the command asks the running Asterisk over AMI to reload PJSIP, as the
console does (``telephony.admin.asterisk``): without it a phone added after Asterisk started
is never rung by a queue. If Asterisk is out of reach or refuses, the phone stays stored, one
line says so, and the line's next AMI session reloads PJSIP (``telephony.admin.sync``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ivr.menu import load_menu
from telephony.ami.actions import AmiActionError
from telephony.ami.listener import AmiListener
from telephony.calls.facts import CallFact
from telephony.db.connection import Database
from telephony.desks.phones import phone_username
from telephony.desks.service import assign_desk, parse_skill_levels
from telephony.settings import Settings


async def desk(settings: Settings, username: str, interface: str, skills: list[str],
               *, new_secret: bool = False) -> int:
    """Put an operator account at its phone with its skills (``fire=5``), replacing any."""
    levels = parse_skill_levels(skills)
    database = Database(settings)
    try:
        assignment = await assign_desk(database, load_menu(settings.menu_file), username,
                                       interface, levels, realm=settings.sip_realm,
                                       new_secret=new_secret)
    finally:
        await database.close()
    shown = ", ".join(f"{skill} {level}" for skill, level in sorted(levels.items())) or "-"
    print(f"Akun {username} bekerja di {interface}; keahlian: {shown}.")
    if assignment.phone_secret is not None:
        print(phone_secret_text(assignment.interface, settings.sip_realm,
                                assignment.phone_secret))
        # A new secret: a phone Asterisk may not know yet, or new credentials.
        failed = await reload_phones(settings)
        if failed is not None:
            print(f"Telepon tersimpan, tetapi belum diterapkan di Asterisk ({failed}); "
                  "diterapkan saat line tersambung kembali ke Asterisk.")
    return 0


class _NoCalls:
    """The CLI's AMI session follows no call: the serving line records them."""

    async def record(self, facts: Sequence[CallFact]) -> None:
        """Drop ``facts``."""

    async def open_call_ids(self) -> set[str]:
        """None: this session records nothing."""
        return set()


async def reload_phones(settings: Settings, *, wait_seconds: float = 10.0) -> str | None:
    """Ask Asterisk to reload PJSIP (``Reload`` of ``res_pjsip.so``) over a short AMI
    session; returns ``None``, or why it did not."""
    listener = AmiListener(settings, _NoCalls(), action_timeout=wait_seconds)
    await listener.start()
    try:
        await listener.send_action({"Action": "Reload", "Module": "res_pjsip.so"})
    except AmiActionError as exc:
        return exc.message
    finally:
        await listener.stop()
    return None


def phone_secret_text(interface: str, realm: str, secret: str) -> str:
    """What the admin types into the phone; the secret is shown this once only."""
    return (f"Telepon {interface} mendaftar (REGISTER) dengan nama pengguna "
            f"{phone_username(interface)}, realm {realm}, sandi: {secret}\n"
            "Sandi ini hanya ditampilkan sekali; yang lama (jika ada) tidak berlaku lagi.")
