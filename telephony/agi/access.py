"""Who may hold a FastAGI session, and how refusals are logged.

The FastAGI port is local, but "local" is every process on the host: the survey route
stores ratings and the IVR sets a caller's queue. So a connection must come from an
allowed peer (loopback and the configured Asterisk by default) and, where a secret is set
(always on a site), name it in the AGI URL the dialplan calls:
``agi://host:port/ivr?secret=...``. Asterisk sends that URL's script part as
``agi_network_script``, so the check needs nothing Asterisk does not already do.

Refusals are counted, not logged one by one: a flood of hostile connections once wrote
26,357 lines in 45 s. :class:`RefusalTally` logs the first refusal of a quiet spell in full
and then one summary line per interval with the counts by reason.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from telephony.settings import Settings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SECRET_PARAMETER = "secret"  # noqa: S105 - the name of the URL's query parameter


def with_secret(url: str, secret: str | None) -> str:
    """``url`` carrying ``secret`` as its query (unchanged without a secret)."""
    return url if secret is None else f"{url}?{SECRET_PARAMETER}={secret}"


def allowed_networks(settings: Settings) -> tuple[IpNetwork, ...]:
    """``agi_allowed_peers`` plus the configured Asterisk (``ami_host`` when it is an
    address: a host name is not resolved here, list its address in agi_allowed_peers)."""
    texts = list(settings.agi_allowed_peers)
    with contextlib.suppress(ValueError):
        texts.append(str(ipaddress.ip_address(settings.ami_host)))
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


@dataclass(frozen=True)
class AgiAccess:
    """The allowed peers (empty: anyone) and the secret URLs must carry (None: no secret)."""

    networks: tuple[IpNetwork, ...] = ()
    secret: str | None = None

    @classmethod
    def of(cls, networks: Iterable[IpNetwork], secret: str | None) -> AgiAccess:
        return cls(tuple(networks), secret)

    def peer_allowed(self, host: str) -> bool:
        """Whether ``host`` (a socket's peer address) may connect at all."""
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(host.partition("%")[0])  # drop an IPv6 zone
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def secret_matches(self, network_script: str) -> bool:
        """Whether the script part of the URL (``ivr?secret=...``) names the secret."""
        if self.secret is None:
            return True
        query = network_script.partition("?")[2]
        try:
            given = parse_qs(query, strict_parsing=False, max_num_fields=8).get(
                SECRET_PARAMETER, [])
        except ValueError:
            return False
        return len(given) == 1 and hmac.compare_digest(given[0].encode(), self.secret.encode())


@dataclass
class _Window:
    ends: float
    counts: Counter[str] = field(default_factory=Counter)
    peers: Counter[str] = field(default_factory=Counter)


class RefusalTally:
    """Connections refused or dropped before a session began, logged as counts by reason.

    :meth:`record` logs the first refusal after a quiet spell in full (a single bad
    connection is seen at once, with its detail) and opens a window of ``interval``
    seconds; refusals within it are only counted. :meth:`flush`, due when the window ends
    (:attr:`due`), logs what it counted as one line and opens the next window, until a
    window passes with nothing. Under a flood that is one line per interval.
    """

    def __init__(self, logger: logging.Logger, interval: float,
                 clock: Callable[[], float]) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._window: _Window | None = None
        self.total: Counter[str] = Counter()  # since start, by reason (tests, diagnosis)

    @property
    def due(self) -> float | None:
        """When the open window ends (clock time), or None when quiet."""
        return None if self._window is None else self._window.ends

    def record(self, reason: str, peer: str, detail: str) -> None:
        """Count one refusal of a connection from ``peer`` (``host:port``)."""
        self.total[reason] += 1
        now = self._clock()
        if self._window is not None and now >= self._window.ends:
            self.flush()
        if self._window is None:
            self._log.warning("FastAGI connection from %s refused (%s): %s; further refusals "
                              "are summed up every %g s", peer, reason, detail, self._interval)
            self._window = _Window(now + self._interval)
            return
        self._window.counts[reason] += 1
        self._window.peers[peer.rpartition(":")[0] or peer] += 1

    def flush(self) -> None:
        """End the window: one line with what it counted and a new window, or, when it
        counted nothing, quiet again (the next refusal is logged in full)."""
        window, self._window = self._window, None
        if window is None or not window.counts:
            return
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(window.counts.items()))
        peers = ", ".join(f"{peer} ({count})" for peer, count in window.peers.most_common(3))
        self._log.warning("FastAGI refused %d more connections in the last %g s: %s; from %s",
                          window.counts.total(), self._interval, reasons, peers)
        self._window = _Window(self._clock() + self._interval)
