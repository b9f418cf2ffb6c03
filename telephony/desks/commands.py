"""``siaga112 account desk NAME PJSIP/opNNNN --skill SKILL=LEVEL``: which phone an operator
account works at, with its skills, when the console is out of reach (an admin otherwise sets it
on the console's Antrean page). A refusal is printed by the CLI as one line.
"""

from __future__ import annotations

from ivr.menu import load_menu
from telephony.db.connection import Database
from telephony.desks.service import assign_desk, parse_skill_levels
from telephony.settings import Settings


async def desk(settings: Settings, username: str, interface: str, skills: list[str]) -> int:
    """Put an operator account at its phone with its skills (``fire=5``), replacing any."""
    levels = parse_skill_levels(skills)
    database = Database(settings)
    try:
        await assign_desk(database, load_menu(settings.menu_file), username, interface, levels)
    finally:
        await database.close()
    shown = ", ".join(f"{skill} {level}" for skill, level in sorted(levels.items())) or "-"
    print(f"Akun {username} bekerja di {interface}; keahlian: {shown}.")
    return 0
