"""The web application for tests: its context over a test database, the OpenAPI shape check,
and a console browser (a cookie jar that posts forms with their CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from ivr.source import menu_source
from recordings.library import RecordingLibrary
from telephony.accounts.model import ThrottlePolicy
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.actions import AmiActionError, AmiActions
from telephony.calls.archive import CallArchive
from telephony.calls.store import CallRepository
from telephony.db.connection import Database
from telephony.desks.service import DeskConfig, DeskService
from telephony.incidents.attachments import AttachmentStore
from telephony.incidents.config import IncidentConfig
from telephony.incidents.notifiers import LogNotifier
from telephony.incidents.services import IncidentServices
from telephony.screening.service import ScreeningService, screening_config_source
from telephony.settings import Settings, softphone_origin
from telephony.web.context import ApiContext, WebConfig
from telephony.web.routing import CSRF_COOKIE
from telephony.web.schemas import Schema, validate
from telephony.web.server import api_schemas
from tests.support.calls import CALENDAR

# Every feature's schemas, as the application's route table carries them.
SCHEMAS: Final = api_schemas()

PASSWORD: Final = "kata-sandi-rahasia-112"
# Cheap argon2 parameters: these tests log in dozens of times.
CHEAP_HASHER: Final = PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1)


class NoAmi:
    """No Asterisk here: every AMI action fails as it would with Asterisk unreachable."""

    async def send_action(self, action: Mapping[str, str]) -> Any:
        raise AmiActionError(f"{action['Action']}: not logged in to Asterisk")


def make_context(settings: Settings, database: Database, *,
                 throttle: ThrottlePolicy | None = None,
                 ami: AmiActions | None = None, softphone: bool = False) -> ApiContext:
    """The application's services over ``database``, as the line wires them, with cheap
    password hashing; the desk's AMI actions go to ``ami`` (none reach Asterisk by default).
    With ``softphone``, browser desks get the settings' softphone (the lab's by default)."""
    desks = DeskConfig.from_settings(settings) if softphone else DeskConfig()
    origin = desks.softphone_ws_url and softphone_origin(desks.softphone_ws_url)
    incidents = IncidentServices.build(database, LogNotifier(), IncidentConfig(
        attachment_max_bytes=settings.attachment_max_bytes))
    accounts = AccountService(database, CHEAP_HASHER, AccountConfig(
        throttle=throttle or ThrottlePolicy()))
    return ApiContext(
        incidents=incidents.incidents,
        dispatches=incidents.dispatches,
        directory=incidents.directory,
        accounts=accounts,
        calls=CallArchive(database, CallRepository(CALENDAR)),
        recordings=RecordingLibrary(database, settings.recordings_dir),
        attachments=AttachmentStore(settings.attachments_dir, settings.timezone),
        screening=ScreeningService(database, screening_config_source(None), settings.timezone),
        desks=DeskService(database, ami or NoAmi(), menu_source(None), accounts, config=desks),
        config=WebConfig(attachment_max_bytes=settings.attachment_max_bytes,
                         softphone_origin=origin),
    )


def conforms(value: Any, schema: Schema | str) -> None:
    """``value`` has exactly the shape its OpenAPI schema documents (references followed)."""
    if isinstance(schema, str):
        schema = SCHEMAS[schema]
    if "$ref" in schema:
        conforms(value, schema["$ref"].rsplit("/", 1)[1])
        return
    validate(value, {k: v for k, v in schema.items()
                     if k not in ("properties", "required", "additionalProperties")})
    if isinstance(value, dict) and "properties" in schema:
        assert set(value) == set(schema["required"]), (sorted(value), schema["required"])
        for name, item in value.items():
            conforms(item, schema["properties"][name])
    if isinstance(value, list) and "items" in schema:
        for item in value:
            conforms(item, schema["items"])


@dataclass
class Browser:
    """One person's browser: its own cookies, following no redirect on its own."""

    http: aiohttp.ClientSession
    pages: list[str] = field(default_factory=list)

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        response = await self.http.get(path, allow_redirects=False)
        return response.status, await response.text(), response

    async def post(self, path: str, data: Mapping[str, str | list[str]], *,
                   csrf: bool = True) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        for name, value in data.items():
            for item in value if isinstance(value, list) else [value]:
                form.add_field(name, item)
        if csrf:
            form.add_field("csrf_token", self.cookie(CSRF_COOKIE) or "")
        return await self.http.post(path, data=form, allow_redirects=False)

    def cookie(self, name: str) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    async def log_in(self, username: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        status, html, _ = await self.get("/console/login")
        assert status == 200
        token = re.search(r'name="login_token" value="([^"]+)"', html)
        assert token is not None
        return await self.post("/console/login", {"username": username, "password": password,
                                                  "login_token": token.group(1)}, csrf=False)

    async def flash(self, response: aiohttp.ClientResponse) -> tuple[str, str]:
        """Follow a form's redirect; the page and its one-shot message."""
        assert response.status == 303, (response.status, await response.text())
        status, html, _ = await self.get(response.headers["Location"])
        assert status == 200, html
        found = re.search(r'<p class="flash flash-(\w+)"[^>]*>([^<]*)</p>', html)
        assert found is not None, html
        return found.group(1), found.group(2)

# The bidirectional formatting characters: embeddings and overrides, isolates, the marks.
BIDI_CONTROLS: Final = (*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)),
                        "\u200e", "\u200f")


def spoofed(name: str, control: str = "\u202e") -> str:
    """``name`` typed backwards after a bidi control: with the right-to-left override it
    displays as ``name``, though it is another text."""
    return control + name[::-1]
