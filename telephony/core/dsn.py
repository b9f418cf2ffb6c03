"""What a PostgreSQL connection string names: its hosts and how one of them is chosen.

A replicated database (a primary and its streaming replica, failed over by Patroni) is reached
with one libpq/asyncpg DSN listing every node, ``postgresql://user@db1:5432,db2:5432/siaga112
?target_session_attrs=read-write``: each new connection tries the hosts in order and keeps the
first that accepts writes, so after a failover the line's pool reconnects to the new primary
with nothing told to it. Without ``target_session_attrs`` the first host that answers would
do, a replica included, and every write would fail there: such a DSN is refused.

Pure parsing, for the settings' checks and for the renderers that need a host.
"""

from __future__ import annotations

import shlex
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PORT: Final = 5432
# Attributes that only accept a server taking writes (asyncpg and libpq both know them).
WRITABLE_ATTRS: Final = ("read-write", "primary")


class DsnError(ValueError):
    """A connection string whose hosts or ports cannot be read."""


def _keyword_pairs(dsn: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(dsn) if "=" in item)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError as exc:
        raise DsnError(f"not a port: {text!r}") from exc
    if not 0 < port < 65536:
        raise DsnError(f"not a port: {text!r}")
    return port


def dsn_hosts(dsn: str) -> tuple[tuple[str, int], ...]:
    """The ``(host, port)`` pairs of ``dsn``, in the order they are tried; empty when it
    names none (libpq's defaults or ``PG*`` variables decide). :class:`DsnError` if it
    cannot be read."""
    try:
        return _hosts(dsn)
    except DsnError:
        raise
    except ValueError as exc:  # urlsplit's "Invalid IPv6 URL", shlex's "No closing quotation"
        # Else the settings' check of the DSN ended every command in a traceback.
        raise DsnError(f"cannot be read: {exc}") from exc


def _hosts(dsn: str) -> tuple[tuple[str, int], ...]:
    if "://" in dsn:
        netloc = urlsplit(dsn).netloc.rpartition("@")[2]
        pairs: list[tuple[str, int]] = []
        for item in filter(None, netloc.split(",")):
            if item.startswith("["):  # [IPv6]:port
                host, _, rest = item[1:].partition("]")
                port = rest.removeprefix(":")
            else:
                host, _, port = item.partition(":")
            pairs.append((unquote(host), _port(port) if port else DEFAULT_PORT))
        return tuple(pairs)
    keywords = _keyword_pairs(dsn)
    hosts = [h for h in keywords.get("host", keywords.get("hostaddr", "")).split(",") if h]
    ports = [_port(p) for p in keywords.get("port", "").split(",") if p]
    if not hosts:
        return ()
    if len(ports) <= 1:
        return tuple((host, ports[0] if ports else DEFAULT_PORT) for host in hosts)
    if len(ports) != len(hosts):
        raise DsnError(f"{len(hosts)} hosts but {len(ports)} ports")
    return tuple(zip(hosts, ports, strict=True))


def session_attrs(dsn: str) -> str | None:
    """The DSN's ``target_session_attrs``, if it sets one."""
    if "://" in dsn:
        found = dict(parse_qsl(urlsplit(dsn).query)).get("target_session_attrs")
    else:
        found = _keyword_pairs(dsn).get("target_session_attrs")
    return found


def multi_host_refusal(name: str, dsn: str | None) -> str | None:
    """Why ``dsn`` (the setting ``name``) cannot carry the line's writes, or ``None``."""
    if dsn is None:
        return None
    try:
        hosts = dsn_hosts(dsn)
    except DsnError as exc:
        return f"{name}: {exc}"
    if len(hosts) > 1 and session_attrs(dsn) not in WRITABLE_ATTRS:
        return (f"{name} lists {len(hosts)} hosts: add target_session_attrs=read-write, or a "
                "replica may be chosen and every write refused")
    return None
