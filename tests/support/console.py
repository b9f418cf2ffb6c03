"""The web console for tests: a running application whose desk talks to a stand-in Asterisk,
and browsers for its users (the fixtures that start it are in tests/loopback/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.menu import load_menu
from telephony.ami.actions import AmiActionRefusedError
from telephony.calls.facts import CallFact, OperatorStateChanged
from telephony.calls.store import CallRepository
from telephony.db.connection import Database
from telephony.desks.phones import PhoneKind
from telephony.desks.service import assign_desk
from telephony.settings import Settings
from telephony.web.context import CONTEXT
from tests.support.calls import CALENDAR, OPERATOR
from tests.support.web import PASSWORD, Browser

# Typed into every free-text field: must be stored as typed and shown as text.
HOSTILE: Final = (
    "<script>alert('x')</script><img src=x onerror=alert(1)>'; DROP TABLE incidents; --")


class StandInAsterisk:
    """Takes the desk's AMI actions and reports their effect back the way Asterisk's
    QueueMemberAdded/Removed/Pause events reach the call store; or refuses everything."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.actions: list[dict[str, str]] = []
        self.refusing = False
        # Seconds between an action and its effect reaching the store: the real listener
        # records Asterisk's events a moment after Asterisk answered the action.
        self.lag = 0.0
        self._late: set[asyncio.Task[None]] = set()

    async def send_action(self, action: Mapping[str, str]) -> Any:
        self.actions.append(dict(action))
        if self.refusing:
            raise AmiActionRefusedError(f"{action['Action']} refused: Interface not found")
        now = datetime.now(UTC)
        interface = action["Interface"]

        async def members(connection: asyncpg.Connection) -> list[str]:
            rows = await connection.fetch(
                "SELECT queue FROM queue_members WHERE operator = $1 AND state <> 'logged_out'",
                interface)
            return [row["queue"] for row in rows]

        facts: list[CallFact]
        if action["Action"] == "QueueAdd":
            facts = [OperatorStateChanged(interface, action["Queue"], "idle", False, "", now)]
        elif action["Action"] == "QueueRemove":
            facts = [OperatorStateChanged(interface, action["Queue"], "logged_out", False, "",
                                          now)]
        else:
            paused = action["Paused"] == "true"
            facts = [OperatorStateChanged(interface, queue, "paused" if paused else "idle",
                                          paused, action.get("Reason", ""), now)
                     for queue in await self.database.run(members)]
        if not self.lag:
            await self.database.run(lambda c: CallRepository(CALENDAR).apply(c, facts))
            return

        async def late() -> None:
            await asyncio.sleep(self.lag)
            await self.database.run(lambda c: CallRepository(CALENDAR).apply(c, facts))

        task = asyncio.create_task(late())
        self._late.add(task)
        task.add_done_callback(self._late.discard)


@dataclass
class Console:
    """A running application with a stand-in Asterisk, and browsers for its users."""

    client: TestClient[web.Request, web.Application]
    asterisk: StandInAsterisk
    database: Database
    dsn: str
    settings: Settings
    make_browser: Callable[[], Awaitable[Browser]]

    async def user(self, username: str, role: str, *, desk: bool = False,
                   phone: PhoneKind | None = None, interface: str = OPERATOR) -> Browser:
        """An account (at ``interface`` with the fire and medical skills, if ``desk``; with a
        registering phone of that kind, if ``phone``), logged in through the login form."""
        await self.client.app[CONTEXT].accounts.create(username, role, PASSWORD,
                                                         actor="test")
        if desk:
            await assign_desk(self.database, load_menu(), username, interface,
                              {"fire": 5, "medical": 3}, phone=phone,
                              realm=None if phone is None else self.settings.sip_realm)
        browser = await self.make_browser()
        response = await browser.log_in(username)
        assert response.status == 303 and response.headers["Location"] == "/console/"
        return browser


ConsoleFactory = Callable[..., Awaitable[Console]]


async def record(console: Console, facts: list[CallFact]) -> None:
    """Store ``facts`` as the listener would."""
    await console.database.run(lambda c: CallRepository(CALENDAR).apply(c, facts))
