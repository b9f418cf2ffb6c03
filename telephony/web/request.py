"""What every handler, of the JSON API and of the console, reads from a request and how it
answers: the services, who is asking and from where, path ids, the JSON body held to the
schema the route table documents, query parameters, the console's form fields, an upload,
and a JSON response.

Refusals are exceptions (``ApiError`` here) that the error middleware answers; a handler
never builds an error response itself.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import (
    BadContentDispositionHeader,
    BadContentDispositionParam,
    BodyPartReader,
    hdrs,
    web,
)
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from multidict import MultiDict, MultiMapping

from telephony.calls.ids import valid_call_id
from telephony.core.text import unsafe_text, whole_number
from telephony.incidents.attachment_meta import check_filename
from telephony.web.context import CONTEXT, ApiContext
from telephony.web.errors import ApiError, dumps
from telephony.web.routing import ROUTE_TABLE, SESSION, Route
from telephony.web.schemas import too_deep, validate
from telephony.web.security import FORM_TYPE, read_form

UPLOAD_CHUNK: Final = 64 * 1024
# The days and instants a query may name: enough for any record or report of the line, and
# far from the ends of the calendar, where a report's arithmetic (the day after, a week)
# would overflow.
FIRST_DAY: Final = date(1970, 1, 1)
LAST_DAY: Final = date(2999, 12, 31)
# A suffix range of length zero (aiohttp's own pattern, ^bytes=(\d*)-(\d*)$, reads it as
# "from byte 0" and sends the whole file).
_EMPTY_SUFFIX: Final = re.compile(r"bytes=-0+", re.ASCII | re.IGNORECASE)
# A path id: ASCII digits only (str.isdecimal() takes any script's digits, "١٢" too).
_PATH_ID: Final = re.compile(r"[0-9]{1,18}")
# Room for a multipart body's boundaries and part headers around the file itself.
MULTIPART_OVERHEAD: Final = 16 * 1024

Form = MultiMapping[str]


def context_of(request: web.Request) -> ApiContext:
    """The services the handlers are a thin layer over."""
    return request.app[CONTEXT]


def actor_of(request: web.Request) -> str:
    """Who is asking: the session's account name (for the audit log and the services)."""
    return request[SESSION].account.username


def remote_of(request: web.Request) -> str:
    """Where the request came from, for the audit log and the login throttle: the client, as
    a trusted HTTPS front names it (``telephony.web.forwarded`` has already replaced the
    request's ``remote``), else whoever connected."""
    return request.remote or ""


def json_response(data: Mapping[str, Any], status: int = 200) -> web.Response:
    """A JSON answer, Indonesian text unescaped."""
    return web.json_response(data, status=status, dumps=dumps)


def instant_json(value: datetime | None) -> str | None:
    """An instant as the API writes it: ISO 8601 with its offset."""
    return value.isoformat() if value is not None else None


def path_id(request: web.Request, name: str, what: str) -> int:
    """A numeric id from the path; anything else names nothing (404, saying ``what``)."""
    raw = request.match_info[name]
    if not _PATH_ID.fullmatch(raw) or int(raw) == 0:
        raise ApiError(404, "not_found", f"{what} {raw[:40]!r} tidak ditemukan.")
    return int(raw)


def path_call_id(request: web.Request) -> str:
    """A call id (an Asterisk unique id) from the path; anything else names nothing (404)."""
    call_id = request.match_info["call_id"]
    if not valid_call_id(call_id):
        raise ApiError(404, "not_found", f"Panggilan {call_id[:40]!r} tidak ditemukan.")
    return call_id


def _route(request: web.Request) -> Route:
    route = request.app[ROUTE_TABLE].route_of(request.match_info.route)
    assert route is not None  # the security middleware let only known routes through
    return route


class DuplicateKey(ValueError):
    """A JSON object names one key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"kunci {key[:40]!r} muncul dua kali dalam satu objek")
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def loads_unique(text: str) -> Any:
    """``json.loads`` refusing an object that names a key twice (:class:`DuplicateKey`, a
    ``ValueError``). The decoder keeps the last value silently: an admin's menu with two
    "1" options would run one of them and show no sign of the other."""
    return json.loads(text, object_pairs_hook=_unique_pairs)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The JSON body, held to the schema the route table documents for it."""
    body = _route(request).body
    assert body is not None and body.schema is not None
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "Kirim isi permintaan sebagai application/json.")
    try:
        # UTF-8 whatever charset the Content-Type names: JSON exchanged between systems is
        # UTF-8 (RFC 8259 8.1), and an unknown charset made aiohttp's text() a LookupError.
        data = loads_unique((await request.read()).decode("utf-8"))
    except DuplicateKey as exc:
        raise ApiError(422, "invalid", f"Isi permintaan tidak sah: {exc}.") from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nested deeper than the decoder goes (hostile, not a bug of ours).
        raise ApiError(400, "bad_json", "Isi permintaan bukan JSON (UTF-8) yang sah.") from exc
    if too_deep(data):
        raise ApiError(400, "bad_json", "Isi permintaan bersarang terlalu dalam.")
    validate(data, request.app[ROUTE_TABLE].schemas[body.schema])
    assert isinstance(data, dict)  # the schema says object
    return data


def query_of(request: web.Request) -> Mapping[str, str]:
    """The query string, refusing parameters the route does not document, and one sent
    twice: every parameter is one value, and ``?limit=1&limit=500`` silently used the first
    (a client meant one of them, and could not tell which counted)."""
    known = {param.name for param in _route(request).query}
    for name in request.query:
        if name not in known:
            raise ApiError(422, "invalid", f"Parameter tidak dikenal: {name[:40]!r}.",
                           field=name[:40])
        if len(request.query.getall(name)) > 1:
            raise ApiError(422, "invalid", f"Parameter {name} dikirim lebih dari sekali.",
                           field=name)
    return request.query


def query_int(query: Mapping[str, str], name: str, default: int, high: int, *,
              low: int = 1) -> int:
    """A whole number ``low``..``high``; ``default`` when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    number = whole_number(raw)
    if number is None or not low <= number <= high:
        raise ApiError(422, "invalid", f"{name} harus bilangan {low}-{high}.", field=name)
    return number


def query_instant(query: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 instant with its offset (a bare local time would be ambiguous)."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        # An unescaped "+" of the offset arrives as a space: the example alone would read
        # as if it had been sent right.
        raise ApiError(422, "invalid", f"{name} harus waktu ISO 8601 dengan zona waktu, "
                                       "mis. 2025-01-31T08:00:00+07:00 (di alamat, tulis + "
                                       "sebagai %2B).", field=name)
    if not FIRST_DAY <= instant.date() <= LAST_DAY:
        raise _out_of_range(name)
    return instant


def _out_of_range(name: str) -> ApiError:
    return ApiError(422, "invalid", f"{name} harus antara {FIRST_DAY.isoformat()} dan "
                                    f"{LAST_DAY.isoformat()}.", field=name)


def query_day(query: Mapping[str, str], name: str, default: date) -> date:
    """A calendar day, YYYY-MM-DD; ``default`` when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"{name} harus tanggal YYYY-MM-DD, mis. 2025-01-31.",
                       field=name) from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _out_of_range(name)
    return day


def query_choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices``, or ``None`` when absent."""
    raw = query.get(name)
    if raw is not None and raw not in choices:
        raise ApiError(422, "invalid", f"{name} harus salah satu dari: {', '.join(choices)}.",
                       field=name)
    return raw


def query_text(query: Mapping[str, str], name: str, max_length: int) -> str | None:
    """Text of 1..``max_length`` characters, or ``None`` when absent."""
    raw = query.get(name)
    if raw is not None and (not raw or len(raw) > max_length):
        raise ApiError(422, "invalid", f"{name} harus 1-{max_length} karakter.", field=name)
    return raw


async def form_of(request: web.Request) -> Form:
    """The posted form's text fields (a console form is always url-encoded)."""
    if request.content_type != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", "Kirim formulir sebagai "
                                                      f"{FORM_TYPE}.")
    posted = await read_form(request)
    form: MultiDict[str] = MultiDict(
        (name, value) for name, value in posted.items() if isinstance(value, str))
    for name, value in form.items():
        if unsafe_text(name) or unsafe_text(value):
            raise ApiError(422, "invalid", "Formulir berisi karakter yang tidak sah.",
                           field=None if unsafe_text(name) else name[:40])
    return form


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(UPLOAD_CHUNK):
        yield chunk


@contextlib.contextmanager
def _disposition_checked() -> Iterator[None]:
    """Refuse (422) a Content-Disposition aiohttp cannot read (no disposition type, a
    filename* in an unknown charset ...): aiohttp only warns and drops it, so the upload would
    be refused for a missing name with the client's header in a warning on stderr (or, where
    warnings are errors, a 500)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadContentDispositionHeader)
        warnings.simplefilter("error", BadContentDispositionParam)
        try:
            yield
        except (BadContentDispositionHeader, BadContentDispositionParam) as exc:
            raise ApiError(422, "invalid", "Header Content-Disposition tidak sah; kirim nama "
                                           "berkas sebagai filename=\"nama.jpg\".",
                           field="filename") from exc


async def _multipart_file(request: web.Request) -> tuple[str, AsyncIterator[bytes]]:
    """The ``file`` part of a multipart form; a body that is not multipart as its
    Content-Type says (no boundary, no such boundary in the body) is refused (400): aiohttp
    raises a ValueError, which was a 500."""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "file":
                with _disposition_checked():
                    filename = part.filename
                return check_filename(filename), _part_chunks(part)
            await part.release()
    except ValueError as exc:
        raise ApiError(400, "bad_multipart", "Unggahan multipart tidak sah: batas (boundary) "
                                             "tidak ada atau tidak ditemukan.") from exc
    raise ApiError(422, "invalid", "Unggahan tidak berisi bagian 'file'.", field="file")


async def read_upload(request: web.Request, max_bytes: int
                      ) -> tuple[str, AsyncIterator[bytes]]:
    """The client's file name and the file's bytes, from a multipart form (field ``file``)
    or a raw body (name in ``?filename=`` or Content-Disposition)."""
    declared = request.content_length
    if request.content_type == "multipart/form-data":
        if declared is not None and declared > max_bytes + MULTIPART_OVERHEAD:
            raise ApiError(413, "too_large", f"Berkas terlalu besar (maksimal "
                                             f"{max_bytes / 1_048_576:.0f} MB).")
        return await _multipart_file(request)
    if declared is not None and declared > max_bytes:
        raise ApiError(413, "too_large",
                       f"Berkas terlalu besar (maksimal {max_bytes / 1_048_576:.0f} MB).")
    name = query_of(request).get("filename")
    if name is None and (disposition := request.headers.get("Content-Disposition")):
        with _disposition_checked():
            name = content_disposition_filename(parse_content_disposition(disposition)[1],
                                                "filename")
    return check_filename(name), request.content.iter_chunked(UPLOAD_CHUNK)


def head_mark(request: web.Request) -> dict[str, str]:
    """What an audit entry of a file's read adds for a HEAD: the same handler answers it
    (the same access, but no bytes sent), and an auditor must not read a link checker's HEAD
    as a playback or a download. Nothing for a GET, whose entries stay as they were."""
    return {"method": "HEAD"} if request.method == "HEAD" else {}


def _range_refused(request: web.Request, size: int, mtime: float) -> str | None:
    """Why aiohttp's FileResponse would answer the request's Range with 416, or None: a range
    that starts at or past the end, the last zero bytes (``bytes=-0``, which aiohttp reads as
    the whole file), or a header that is not one byte range. Mirrors its own reading, so that
    the refusal is ours, said before anything is audited."""
    header = request.headers.get(hdrs.RANGE)
    if header is None:
        return None
    if (if_range := request.if_range) is not None and mtime > if_range.timestamp():
        return None  # a stale If-Range: the whole file is sent, the Range ignored
    if _EMPTY_SUFFIX.fullmatch(header):
        return "Rentang byte yang diminta di luar berkas."
    try:
        wanted = request.http_range
    except ValueError:
        return ("Header Range tidak dapat dipenuhi: kirim satu rentang byte, "
                "mis. bytes=0-1023.")
    start = wanted.start
    if start is None:
        return None
    if start < 0 and wanted.stop is None:  # the last -start bytes: some, unless it is empty
        return "Rentang byte yang diminta di luar berkas." if size == 0 else None
    return "Rentang byte yang diminta di luar berkas." if start >= size else None


def file_response(request: web.Request, path: Path, headers: Mapping[str, str]
                  ) -> web.FileResponse:
    """A file (a recording, an attachment) answered with HTTP Range as aiohttp does it, except
    that what aiohttp refuses with an empty body is refused here first, in our words: a Range
    it cannot satisfy (416, with ``bytes=-0``, the last zero bytes, among them rather than the
    whole file, RFC 9110 14.1.3), and a file gone since the caller found it (404). Call it
    before auditing the read: a refused request is no read."""
    try:
        found = path.stat()
    except OSError as exc:
        raise ApiError(404, "not_found", "Berkas tidak ada lagi (mungkin baru saja dihapus)."
                       ) from exc
    refused = _range_refused(request, found.st_size, found.st_mtime)
    if refused is not None:
        raise ApiError(416, "range_not_satisfiable", refused,
                       headers={"Content-Range": f"bytes */{found.st_size}"})
    return web.FileResponse(path, headers=headers)
