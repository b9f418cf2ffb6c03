"""The route table: every route with the roles it serves, registered and documented from one
list, so a handler cannot be reachable without an access policy, nor undocumented.

A :class:`Route` cannot be built without an :class:`Access`: either the roles that may use it
or an explicit :data:`PUBLIC`. :meth:`RouteTable.install` is the only place handlers are added
to the application, and the security middleware refuses any request whose route the table does
not know (a handler added to the router some other way is unreachable, not open). The table
carries the schema registry its routes' JSON bodies name (the features' schemas, gathered by
:func:`telephony.web.schemas.registry`); :meth:`RouteTable.openapi` writes the OpenAPI 3.1
description from the same routes and schemas.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from telephony.accounts.model import Role, Session
from telephony.web.schemas import CALL_ID, Schema, matches_pattern

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The cluster node whose Asterisk carries what a request acts on (an operator's live channel);
# ``None``: this line's (telephony/web/nodes.py).
NodeOf = Callable[[web.Request], Awaitable[str | None]]

SESSION_COOKIE: Final = "siaga112_session"
CSRF_COOKIE: Final = "siaga112_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
# The same token in an HTML form of the console (application/x-www-form-urlencoded).
CSRF_FIELD: Final = "csrf_token"
# The authenticated session of a request, set by the security middleware.
SESSION: Final = web.RequestKey("session", Session)


@dataclass(frozen=True)
class Access:
    """Who may use a route: ``roles``, or anyone when ``public`` (only logging in)."""

    roles: frozenset[Role]
    public: bool = False

    def __post_init__(self) -> None:
        if self.public == bool(self.roles):
            raise ValueError("a route names the roles it serves, or is explicitly public")

    @classmethod
    def to(cls, *roles: Role) -> Access:
        """Access for these roles only."""
        return cls(frozenset(roles))


PUBLIC: Final = Access(frozenset(), public=True)
EVERYONE: Final = Access.to(Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
CASEWORK: Final = Access.to(Role.OPERATOR, Role.SUPERVISOR)
# Recordings are evidence and hold callers' voices: those who handle or review calls only.
PLAYBACK: Final = Access.to(Role.OPERATOR, Role.SUPERVISOR)
OVERSIGHT: Final = Access.to(Role.SUPERVISOR, Role.ADMIN)
# A desk is an operator's phone; supervisors and admins have none.
DESK: Final = Access.to(Role.OPERATOR)
# Listening in on an operator's live call: supervisors only (admins run the system; they do
# not hear callers).
SUPERVISION: Final = Access.to(Role.SUPERVISOR)
ADMIN: Final = Access.to(Role.ADMIN)


@dataclass(frozen=True)
class Param:
    """A documented query parameter."""

    name: str
    schema: Schema
    description: str


def limit_param(high: int) -> Param:
    """The ``limit`` query parameter of a list: at most ``high`` rows."""
    return Param("limit", {"type": "integer", "minimum": 1, "maximum": high},
                 "Jumlah maksimal baris")


def offset_param(high: int) -> Param:
    """The ``offset`` query parameter of a paged list: rows to skip, 0..``high`` (the page's
    answer names the next one, so a client follows it rather than counting)."""
    return Param("offset", {"type": "integer", "minimum": 0, "maximum": high},
                 "Jumlah baris yang dilewati (dari next_offset halaman sebelumnya)")


@dataclass(frozen=True)
class Body:
    """A request body: JSON checked against the registry's ``schema``, or an upload."""

    schema: str | None  # None: not JSON (an upload; see ``content``)
    content: Mapping[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A successful response: status, and a JSON schema name or other media types."""

    status: int = 200
    schema: str | None = None
    content: Mapping[str, Schema] = field(default_factory=dict)
    description: str = "Berhasil"


@dataclass(frozen=True)
class Route:
    """One method on one path, its handler, who may call it, and what it takes and gives."""

    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    tag: str
    reply: Reply = Reply()
    body: Body | None = None
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # statuses beyond those every route of its kind may return
    # A route that acts on a live call through Asterisk's AMI runs on the node carrying it:
    # the front spreads the console's requests over the lines (telephony/web/nodes.py).
    runs_on: NodeOf | None = None

    @property
    def path_params(self) -> list[str]:
        """The ``{name}`` parts of the path."""
        return re.findall(r"\{(\w+)\}", self.path)


_ERROR_TEXT: Final[Mapping[int, str]] = {
    400: "Isi permintaan tidak dapat dibaca (bukan JSON, multipart, atau kompresi yang sah)",
    401: "Belum masuk atau sesi berakhir",
    403: "Tidak berhak (peran, atau token CSRF tidak ada)", 404: "Tidak ditemukan",
    409: "Bertentangan dengan keadaan saat ini", 413: "Berkas atau permintaan terlalu besar",
    415: "Jenis isi harus application/json", 416: "Rentang byte tidak dapat dipenuhi",
    422: "Isian tidak sah", 429: "Terlalu banyak percobaan masuk",
    502: "Asterisk tidak menerima perubahan", 503: "Basis data sedang tidak tersedia",
}


def answers_head(route: Route) -> bool:
    """Whether ``route`` is a GET that HEAD answers too: every one but a WebSocket's (whose
    upgrade HEAD cannot make)."""
    return route.method == "GET" and route.reply.status != 101


def _head_of(route: Route) -> Route:
    """The HEAD of a GET route: its handler and access, its answer without a body (aiohttp
    sends a HEAD response's headers only, Content-Length as the GET's would be)."""
    reply = Reply(route.reply.status, description=f"{route.reply.description} (tanpa isi)")
    return replace(route, method="HEAD", reply=reply)


class RouteTable:
    """The application's routes and the schemas their JSON bodies name; install them once,
    then look up a request's policy.

    Every GET route answers HEAD as well (HTTP requires it; uptime checkers, proxies and
    download tools probe with it): the table adds the HEAD itself, with the GET's handler
    and access, so a feature declares GETs only and no GET can miss its HEAD."""

    def __init__(self, routes: Iterable[Route], schemas: Mapping[str, Schema]) -> None:
        declared = tuple(routes)
        if any(route.method == "HEAD" for route in declared):
            raise ValueError("HEAD routes come from the table itself, one per GET route")
        self.routes: tuple[Route, ...] = (
            *declared, *(_head_of(route) for route in declared if answers_head(route)))
        self.schemas: Mapping[str, Schema] = schemas
        seen = [(r.method, r.path) for r in self.routes]
        if len(set(seen)) != len(seen):
            raise ValueError("two routes share a method and path")
        named = {r.body.schema for r in self.routes if r.body is not None} | {
            r.reply.schema for r in self.routes}
        if unknown := sorted(name for name in named if name is not None
                             and name not in schemas):
            raise ValueError(f"routes name undeclared schemas: {', '.join(unknown)}")
        self._by_route: dict[AbstractRoute, Route] = {}

    def install(self, app: web.Application) -> None:
        """Register every handler on ``app`` and remember its policy."""
        app[ROUTE_TABLE] = self
        for route in self.routes:
            registered = app.router.add_route(route.method, route.path, route.handler)
            self._by_route[registered] = route

    def route_of(self, registered: AbstractRoute) -> Route | None:
        """The table's route behind a matched aiohttp route; ``None`` if it has none."""
        return self._by_route.get(registered)

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        """The OpenAPI 3.1 description of every ``/api/`` route."""
        paths: dict[str, dict[str, Any]] = {}
        for route in self.routes:
            if route.path.startswith("/api/"):
                paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": title, "version": version,
                "description": (
                    "API JSON layanan 112/119. Masuk dengan POST /api/session; kirim token "
                    "sebagai 'Authorization: Bearer <token>', atau pakai cookie sesi dan "
                    f"sertakan header {CSRF_HEADER} pada setiap POST/PUT/PATCH/DELETE. Setiap "
                    "pemutaran rekaman dan unduhan lampiran dicatat di log audit. Setiap GET "
                    "(kecuali WebSocket) juga menjawab HEAD: status dan header yang sama, "
                    "tanpa isi."),
            },
            "paths": paths,
            "components": {
                "schemas": dict(self.schemas),
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "cookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                },
            },
        }


ROUTE_TABLE: Final = web.AppKey("route_table", RouteTable)


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


# Path parameters that are not numeric ids (those are integers >= 1).
_PATH_SCHEMAS: Final[Mapping[str, Schema]] = {
    "call_id": CALL_ID,
    "prompt": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$",
               "description": "Nama rekaman suara menu"},
    "queue": {"type": "string", "pattern": "^[a-z][a-z-]{0,39}$", "description": "Antrean"},
    "username": {"type": "string", "maxLength": 32, "description": "Nama akun"},
}


def _path_schema(name: str) -> Schema:
    return _PATH_SCHEMAS.get(name, {"type": "integer", "minimum": 1})


_PATH_INTEGER: Final = re.compile(r"[0-9]{1,18}")


def path_conforms(name: str, raw: str) -> bool:
    """Whether the path parameter ``name``'s value ``raw`` is what the OpenAPI document says
    it is: a whole number >= 1 in ASCII digits, or a string of its pattern and length."""
    schema = _path_schema(name)
    if schema["type"] == "integer":
        return _PATH_INTEGER.fullmatch(raw) is not None and int(raw) >= schema["minimum"]
    return (len(raw) <= schema.get("maxLength", len(raw))
            and matches_pattern(raw, schema.get("pattern", "")))


def _operation(route: Route) -> dict[str, Any]:
    access = route.access
    roles = ", ".join(r.label for r in sorted(access.roles))
    head = route.method == "HEAD"
    operation: dict[str, Any] = {
        # Unique per operation, as OpenAPI requires: a HEAD shares its GET's handler.
        "operationId": route.handler.__name__ + ("_head" if head else ""),
        "summary": route.summary,
        "tags": [route.tag],
        "description": "Tanpa sesi." if access.public else f"Peran: {roles}.",
        "security": [] if access.public else [{"bearer": []}, {"cookie": []}],
        "x-roles": sorted(r.value for r in access.roles),
    }
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": _path_schema(name)} for name in route.path_params]
    parameters += [{"name": p.name, "in": "query", "required": False, "schema": p.schema,
                    "description": p.description} for p in route.query]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        content = _json(route.body.schema) if route.body.schema else dict(route.body.content)
        operation["requestBody"] = {"required": True, "content": content}
    reply = route.reply
    reply_content = _json(reply.schema) if reply.schema else dict(reply.content)
    responses: dict[str, Any] = {str(reply.status): {"description": reply.description,
                                                     **({"content": reply_content}
                                                        if reply_content else {})}}
    errors = set(route.errors) | {503}
    if not access.public:
        errors |= {401, 403}
    if route.path_params:
        errors.add(404)
    if route.body is not None or route.query:
        errors.add(422)
    if route.body is not None:
        # A body that cannot be read (not JSON, a broken multipart or Content-Encoding), and
        # one past the server's limit, whatever the route.
        errors |= {400, 413}
    if route.body is not None and route.body.schema is not None:
        errors.add(415)
    for status in sorted(errors):
        # A HEAD's refusal has the headers of the GET's, and no body.
        responses[str(status)] = {"description": _ERROR_TEXT[status],
                                  **({} if head else _json("Error"))}
    operation["responses"] = responses
    return operation
