"""The route table's rules and the schema validator that holds request bodies to the docs."""

from dataclasses import replace

import pytest

from telephony.accounts.model import Role
from telephony.incidents.attachments import sniff_content_type
from telephony.incidents.schemas import SCHEMAS as INCIDENT_SCHEMAS
from telephony.web.routing import PUBLIC, Access, Reply, RouteTable
from telephony.web.schemas import (
    CALL_ID,
    SHELL_SCHEMAS,
    SchemaViolation,
    all_required,
    ref,
    registry,
    too_deep,
    validate,
)
from telephony.web.server import api_routes, api_schemas

SCHEMAS = api_schemas()


def test_a_route_must_name_its_roles_or_be_explicitly_public() -> None:
    with pytest.raises(ValueError, match="roles it serves"):
        Access(frozenset())
    with pytest.raises(ValueError, match="roles it serves"):
        Access(frozenset({Role.ADMIN}), public=True)
    assert PUBLIC.public and Access.to(Role.ADMIN).roles == {Role.ADMIN}


def test_two_routes_cannot_share_a_method_and_path() -> None:
    route = api_routes()[0]
    with pytest.raises(ValueError, match="share"):
        RouteTable([route, route], SCHEMAS)


def test_two_features_cannot_declare_the_same_schema() -> None:
    with pytest.raises(ValueError, match="declared twice: Incident"):
        registry(SHELL_SCHEMAS, INCIDENT_SCHEMAS, {"Incident": all_required({})})


def test_a_schema_cannot_refer_to_one_nobody_declared() -> None:
    with pytest.raises(ValueError, match="not declared: Nowhere"):
        registry(SHELL_SCHEMAS, {"Somewhere": all_required({"there": ref("Nowhere")})})


def test_a_route_cannot_name_a_schema_nobody_declared() -> None:
    route = replace(api_routes()[0], reply=Reply(200, "Nowhere"))
    with pytest.raises(ValueError, match="undeclared schemas: Nowhere"):
        RouteTable([route], SCHEMAS)


def test_every_feature_s_schemas_are_gathered() -> None:
    assert INCIDENT_SCHEMAS.items() <= SCHEMAS.items()
    assert "Error" in SCHEMAS


def test_only_login_is_public_and_admins_get_no_caller_data() -> None:
    routes = api_routes()
    assert [(r.method, r.path) for r in routes if r.access.public] == [("POST", "/api/session")]
    for route in routes:
        if route.path.startswith(("/api/incidents", "/api/calls", "/api/recordings",
                                  "/api/dispatches")):
            assert Role.ADMIN not in route.access.roles, route.path


def test_every_json_body_and_reply_names_a_known_schema() -> None:
    for route in api_routes():
        if route.body is not None and route.body.schema is not None:
            assert route.body.schema in SCHEMAS
        if route.reply.schema is not None:
            assert route.reply.schema in SCHEMAS


@pytest.mark.parametrize(("body", "field"), [
    ([], ""),
    ({}, "status"),
    ({"status": 1}, "status"),
    ({"status": True}, "status"),
    ({"status": "x" * 41}, "status"),
    ({"status": "new", "expected_version": 0}, "expected_version"),
    ({"status": "new", "expected_version": 1.5}, "expected_version"),
    ({"status": "new", "actor": "someone else"}, "actor"),
])
def test_bodies_not_matching_their_schema_are_refused(body: object, field: str) -> None:
    with pytest.raises(SchemaViolation) as refused:
        validate(body, SCHEMAS["StatusChange"])
    assert refused.value.field == field


def test_matching_bodies_pass() -> None:
    validate({"status": "verified", "note": "", "expected_version": 3}, SCHEMAS["StatusChange"])
    validate({"village_code": None, "latitude": "-7,0", "priority": 2},
             SCHEMAS["IncidentPatch"])


@pytest.mark.parametrize(("head", "kind"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n....", "image/png"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
    (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
    (b"\x00\x00\x00\x18ftypheic", "image/heic"),
    (b"OggS\x00\x02", "audio/ogg"),
    ("Laporan: api sudah padam. Terima kasih \u2013 tim Damkar".encode(), "text/plain"),
    ("é".encode()[:1], "text/plain"),  # a character cut at the end of the sniffed bytes
    (b"<html><script>alert(1)</script>", "text/plain"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
    (b"", "application/octet-stream"),
])
def test_content_type_comes_from_the_bytes(head: bytes, kind: str) -> None:
    assert sniff_content_type(head) == kind


def test_the_validator_honours_patterns_as_the_openapi_document_means_them() -> None:
    validate("1700000000.12", CALL_ID)
    for bad in ("1700000000.12\n", "x1700000000.12", "1700000000"):
        with pytest.raises(SchemaViolation, match="format"):
            validate(bad, CALL_ID)


def test_no_string_or_name_holds_a_nul_or_a_lone_surrogate() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    for bad in ({"a": "x\x00"}, {"a": "\ud800"}, {"\udfff": "x"}):
        with pytest.raises(SchemaViolation, match="karakter yang tidak sah"):
            validate(bad, schema)
    validate({"a": "Jl. Merdeka\nNo. 1\tRT 2"}, schema)
    # Nor deep inside a free-form object (an IVR menu document), which has no properties
    # for the walk to follow.
    free = {"type": "object", "properties": {"document": {"type": "object"}}}
    hidden: list[object] = [{"document": {"prompts": {"salam": "a\x00b"}}},
                            {"document": {"menus": [{"\ud800": 1}]}}, {"extra": ["\udfff"]}]
    for value in hidden:
        with pytest.raises(SchemaViolation, match="karakter yang tidak sah"):
            validate(value, free)


def test_nesting_is_measured_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert too_deep(deep)
    assert not too_deep({"a": [{"b": [1, 2]}]})


@pytest.mark.parametrize("value", [2**63, -(2**63), 10**30])
def test_an_integer_past_bigint_is_refused_whatever_the_schema_allows(value: int) -> None:
    with pytest.raises(SchemaViolation, match="di luar batas"):
        validate({"based_on": value}, {"type": "object", "properties": {
            "based_on": {"type": ["integer", "null"], "minimum": 1}}}, "")
    validate({"based_on": 2**63 - 1}, {"type": "object", "properties": {
        "based_on": {"type": ["integer", "null"], "minimum": 1}}}, "")
