"""JSON Schemas (OpenAPI 3.1 dialect) of the API's bodies: the builders and fragments every
feature writes its schemas with, the shell's own (the error body), the registry that gathers
the features' into one, and the small validator that holds request bodies to them.

Each feature declares its bodies in its ``schemas.py`` (``SCHEMAS``), beside its routes; the
server gathers them with :func:`registry` into the one registry its route table carries. The
same schemas document the API (``/api/openapi.json``) and check what clients send, so the two
cannot drift: a request body that does not match its schema is refused before a handler sees
it. Only the keywords used here are supported by :func:`validate` (it does not follow
``$ref``). The domain parsers still check values (a status code, a village code); this only
guarantees shapes and types.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from telephony.calls.ids import CALL_ID_PATTERN
from telephony.core.errors import Invalid
from telephony.core.text import unsafe_text

Schema = Mapping[str, Any]

DATETIME: Final[Schema] = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME: Final[Schema] = {"type": ["string", "null"], "format": "date-time"}
CALL_ID: Final[Schema] = {"type": "string", "pattern": rf"^{CALL_ID_PATTERN}$", "maxLength": 64,
                          "description": "Uniqueid Asterisk dari kanal penelepon"}
VERSION: Final[Schema] = {
    "type": "integer", "minimum": 1,
    "description": "Versi insiden yang dibaca klien; perubahan ditolak (409) bila sudah "
                   "berubah sejak itu.",
}


def ref(name: str) -> Schema:
    """A reference to the registry's schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def object_schema(properties: Mapping[str, Schema], required: tuple[str, ...] = (),
                  description: str = "") -> Schema:
    """A request object: only these properties, the ``required`` ones always."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties),
                              "required": list(required), "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


def all_required(properties: Mapping[str, Schema], description: str = "") -> Schema:
    """A response object: every property is always present (possibly null)."""
    return object_schema(properties, tuple(properties), description)


def text(max_length: int) -> Schema:
    """A string of at most ``max_length`` characters."""
    return {"type": "string", "maxLength": max_length}


NULLABLE_TEXT: Final[Schema] = {"type": ["string", "null"]}
NULLABLE_INT: Final[Schema] = {"type": ["integer", "null"]}
NULLABLE_NUMBER: Final[Schema] = {"type": ["number", "null"]}

# The shell's own: every refusal's body, whichever feature refuses.
SHELL_SCHEMAS: Final[Mapping[str, Schema]] = {
    "Error": object_schema({"error": all_required({
        "code": {"type": "string"},
        "message": {"type": "string", "description": "Pesan untuk pengguna (Bahasa Indonesia)"},
        "field": NULLABLE_TEXT,
    })}, ("error",)),
}


def _refs(schema: object) -> Iterator[str]:
    """The schema names ``schema`` refers to, at any depth."""
    if isinstance(schema, Mapping):
        if isinstance(target := schema.get("$ref"), str):
            yield target.rsplit("/", 1)[1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def registry(*declared: Mapping[str, Schema]) -> dict[str, Schema]:
    """One registry of the schemas ``declared`` (each feature's ``SCHEMAS``, and the
    shell's). Raises ``ValueError`` if two declare the same name (one would silently hide the
    other) or a schema refers to a name none declares."""
    schemas: dict[str, Schema] = {}
    for part in declared:
        if twice := sorted(schemas.keys() & part.keys()):
            raise ValueError(f"schemas declared twice: {', '.join(twice)}")
        schemas.update(part)
    if unknown := sorted({name for schema in schemas.values() for name in _refs(schema)}
                         - schemas.keys()):
        raise ValueError(f"schemas referred to but not declared: {', '.join(unknown)}")
    return schemas


_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}


class SchemaViolation(Invalid, ValueError):
    """A body does not match its schema; ``field`` names where (empty: the body itself)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


# A JSON body nests no deeper than this (ours nest 4 levels at most); deeper is hostile, and
# would exhaust the recursion of the decoder or of :func:`validate`.
MAX_DEPTH: Final = 32
MAX_INTEGER: Final = 2**63 - 1  # PostgreSQL's bigint


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    # JSON Schema's patterns are ECMA-262: unanchored, and ``$`` (no multiline flag) is the
    # end of the text, which is Python's ``\Z`` (Python's ``$`` also matches before a
    # trailing newline, which is exactly what a validator must not let through).
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def matches_pattern(value: str, pattern: str) -> bool:
    """Whether ``value`` matches the JSON Schema ``pattern`` as the OpenAPI document means it."""
    return _pattern(pattern).search(value) is not None


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) nests deeper than ``limit`` (walked without recursion)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def validate(value: object, schema: Schema, field: str = "") -> None:
    """Raise :class:`SchemaViolation` unless ``value`` matches ``schema`` (the keywords
    type, enum, maxLength, pattern, minimum, maximum, items, maxItems, properties, required,
    additionalProperties). No string anywhere, and no property name, may hold a NUL or a lone
    surrogate, whatever its schema says."""
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is_type(value, name) for name in names):
            raise SchemaViolation(field, f"Isian {field or 'badan permintaan'} harus bertipe "
                                         f"{' atau '.join(names)}.")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolation(field, f"Isian {field} tidak dikenal.")
    if isinstance(value, str):
        if unsafe_text(value):
            raise SchemaViolation(field, f"Isian {field or 'badan permintaan'} berisi karakter "
                                         "yang tidak sah.")
        if len(value) > schema.get("maxLength", len(value)):
            raise SchemaViolation(field, f"Isian {field} terlalu panjang (maksimal "
                                         f"{schema['maxLength']} karakter).")
        if "pattern" in schema and not matches_pattern(value, schema["pattern"]):
            raise SchemaViolation(field, f"Isian {field} tidak sesuai format.")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        # Past PostgreSQL's bigint no id, version or count of ours exists: the driver cannot
        # even send it (an OverflowError, a 500), whatever the schema's own bounds.
        raise SchemaViolation(field, f"Isian {field} di luar batas.")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise SchemaViolation(field, f"Isian {field} di luar batas.")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise SchemaViolation(field, f"Isian {field} terlalu banyak (maksimal "
                                         f"{schema['maxItems']}).")
        for item in value:
            validate(item, schema.get("items", {}), field)
    if isinstance(value, dict):
        properties: Mapping[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaViolation(name, f"Isian {name} wajib diisi.")
        for name, item in value.items():
            if unsafe_text(name):
                raise SchemaViolation("", "Nama kolom berisi karakter yang tidak sah.")
            if name not in properties:
                if schema.get("additionalProperties", True) is False:
                    raise SchemaViolation(str(name)[:40],
                                          f"Kolom tidak dikenal: {str(name)[:40]!r}.")
                # A free-form object (an IVR menu document ...) is walked too: its strings
                # reach a JSONB column, which refuses a NUL (a 500 there, not a 422 here).
                validate(item, {}, str(name)[:40])
                continue
            validate(item, properties[name], name)
