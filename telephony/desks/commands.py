"""``siaga112 account desk NAME PJSIP/opNNNN --skill SKILL=LEVEL [--new-secret]``: which phone
an operator account works at, with its skills, when the console is out of reach (an admin
otherwise sets it on the console's Antrean page). A phone without a secret gets one (and
``--new-secret`` replaces it): it is printed once, for the admin to type into the phone, and
only its digest is kept. A refusal is printed by the CLI as one line.
"""

from __future__ import annotations

from ivr.menu import load_menu
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
    return 0


def phone_secret_text(interface: str, realm: str, secret: str) -> str:
    """What the admin types into the phone; the secret is shown this once only."""
    return (f"Telepon {interface} mendaftar (REGISTER) dengan nama pengguna "
            f"{phone_username(interface)}, realm {realm}, sandi: {secret}\n"
            "Sandi ini hanya ditampilkan sekali; yang lama (jika ada) tidak berlaku lagi.")
