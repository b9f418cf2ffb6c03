"""A fake Asterisk Manager Interface that replays transcripts, for tests.

In the spirit of panoramisk's ``testing`` module, with one difference: panoramisk fakes the
client's transport, this fakes the server. :class:`FakeAsterisk` listens on a loopback TCP
port and speaks AMI as Asterisk 22 does (banner, ``Login``, ``Ping``, the list actions the
listener's resync sends, ``QueueAdd``), so the listener's own connection, login, resync,
keep-alive and reconnection code runs unchanged against it. Events are whatever the test
sends: frames it writes itself, or a transcript recorded from the lab (``tests/fixtures/ami_*.txt``,
see its README) replayed byte for byte as Asterisk would write them.

:class:`ListSink` is the call store's stand-in: the facts the listener records, in a list.

Nothing here is used by the running line; it lives next to the code it fakes so that it
follows that code's protocol (``telephony.ami.framing``) and types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final, TypeVar

from telephony.ami.framing import AmiFrame, AmiFrameDecoder
from telephony.calls.facts import CallEnded, CallFact, CallStarted, CallVanished
from telephony.calls.spool import SpooledCall

Fields = tuple[tuple[str, str], ...]
"""One AMI frame's ``Key: value`` lines, in order, repeated keys kept (``AmiFrame.fields``)."""

F = TypeVar("F", bound=CallFact)

BANNER: Final = b"Asterisk Call Manager/9.0.0\r\n"
USERNAME: Final = "siaga112"
SECRET: Final = "right-secret"  # noqa: S105 - the fake's own, accepted nowhere else

# The list actions the fake answers: action -> (its events' list attribute, the closing
# event, the opening response's message), as Asterisk answers them.
_LISTS: Final = {
    "coreshowchannels": ("channels", "CoreShowChannelsComplete", "Channels"),
    "status": ("status", "StatusComplete", "Channel status"),
    "queuestatus": ("queues", "QueueStatusComplete", "Queue status"),
}


def render(fields: Fields) -> bytes:
    """One frame as Asterisk writes it: CRLF lines and an empty line."""
    return "".join(f"{key}: {value}\r\n" for key, value in fields).encode() + b"\r\n"


def read_frames(path: Path) -> list[AmiFrame]:
    """Every frame of a transcript file (the banner line is not a frame and is skipped).

    A transcript must decode cleanly: a rejected frame in one means the file is damaged.
    """
    items = AmiFrameDecoder().feed(path.read_bytes())
    frames = [item for item in items if isinstance(item, AmiFrame)]
    if len(frames) != len(items):
        raise ValueError(f"{path}: frames the decoder rejects")
    return frames


def read_events(path: Path) -> list[Fields]:
    """The events of a transcript, without the responses (a recorded one holds the login's)."""
    return [frame.fields for frame in read_frames(path) if frame.get("Event")]


class FakeAsterisk:
    """An AMI server on 127.0.0.1 with one logged-in session that the test drives.

    It answers ``Login`` (``username``/``secret``; a wrong secret ends the session, as
    Asterisk does), ``Ping`` (unless ``answer_pings`` is off: a half-open connection),
    ``CoreShowChannels``/``Status``/``QueueStatus`` with the events in :attr:`channels`,
    :attr:`status` and :attr:`queues` (their ``ActionID`` added, the ``...Complete`` event
    counted), and the actions in :attr:`accepts` (``QueueAdd``; add e.g. ``reload``), followed
    by the events :attr:`follow_ups` gives for them; ``Getvar`` of a name in
    :attr:`variables` with its value (e.g. ``DEVICE_STATE(PJSIP/op1001)``, every node's
    device state as Asterisk aggregates it); those in :attr:`unknown` get
    "Invalid/unknown command" (a module still loading); those in :attr:`silent` get no answer at
    all (an Asterisk too busy to answer in time); every other action is refused with
    "Interface not found".
    Every action received is kept in :attr:`actions` (keys lower-cased).

    Use ``async with fake_asterisk() as server:``, or :meth:`start` and :meth:`close`.
    """

    def __init__(self, *, username: str = USERNAME, secret: str = SECRET) -> None:
        self.username = username
        self.secret = secret
        self.answer_pings = True
        self.uptime = 5  # FullyBooted's Uptime at each login: less than before = a restart
        self.channels: list[Fields] = []  # CoreShowChannel events
        self.status: list[Fields] = []  # Status events
        self.queues: list[Fields] = []  # QueueParams/QueueMember/QueueEntry events
        self.variables: dict[str, str] = {}  # Getvar's answers (functions too), by name
        self.actions: list[dict[str, str]] = []
        # Actions (lower-cased) answered with Success, and their message.
        self.accepts: dict[str, str] = {"queueadd": "Added interface to queue"}
        # The events that follow an accepted action's response (lower-cased name -> the
        # events for that action), e.g. how an Async Originate went (OriginateResponse).
        self.follow_ups: dict[str, Callable[[dict[str, str]], list[Fields]]] = {}
        # Actions (lower-cased) no module has registered yet, as while Asterisk boots.
        self.unknown: set[str] = set()
        # Actions (lower-cased) taken and never answered, as by an Asterisk too busy to
        # answer within the line's action timeout.
        self.silent: set[str] = set()
        # With a queue app: QueueAdd/QueueRemove/QueuePause/QueuePenalty change its members and
        # QueueStatus lists them (after :attr:`queues`), as app_queue does.
        self.queue_app: QueueApp | None = None
        self.logins = 0
        self.login_times: list[float] = []  # loop time of each Login received
        self.port = 0
        self._server: asyncio.Server | None = None
        self._session: asyncio.StreamWriter | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0: any free port; :attr:`port` says which)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and end every session."""
        if self._server is None:
            raise RuntimeError("FakeAsterisk not started")
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        # Python 3.11's wait_closed() does not wait for the connection handlers.
        await asyncio.gather(*self._handlers)

    def names(self) -> list[str]:
        """The names of the actions received, in order."""
        return [action.get("action", "") for action in self.actions]

    def load_resync(self, path: Path) -> None:
        """Answer the list actions with the replies of a recorded resync transcript.

        The fake writes its own ``...Complete`` events (with its own count) and ActionIDs, so
        the recorded ones are left out.
        """
        replies: dict[str, list[Fields]] = {"Queue": [], "CoreShowChannel": [], "Status": []}
        for frame in read_events(path):
            event = dict(frame)["Event"]
            kind = next(k for k in replies if event.startswith(k))
            if not event.endswith("Complete"):
                replies[kind].append(tuple((k, v) for k, v in frame if k != "ActionID"))
        self.queues = replies["Queue"]
        self.channels = replies["CoreShowChannel"]
        self.status = replies["Status"]

    async def send(self, data: bytes) -> None:
        """Write to the logged-in session, as Asterisk writes events."""
        if self._session is None:
            raise RuntimeError("no AMI session is logged in")
        self._session.write(data)
        await self._session.drain()

    async def send_frames(self, frames: Iterable[Fields]) -> None:
        """Write ``frames`` to the logged-in session, in one write."""
        await self.send(b"".join(render(frame) for frame in frames))

    async def replay(self, path: Path) -> None:
        """Write the events of a transcript file to the logged-in session."""
        await self.send_frames(read_events(path))

    def drop(self) -> None:
        """Close the logged-in session without a word, as a lost connection does."""
        if self._session is None:
            raise RuntimeError("no AMI session is logged in")
        self._session.close()
        self._session = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        writer.write(BANNER)
        authenticated = False
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = raw.decode().strip().split("\r\n")
                action = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
                self.actions.append(action)
                name, aid = action.get("action", "").lower(), action.get("actionid", "")
                if name == "login":
                    authenticated = self._login(action, aid, writer)
                    if not authenticated:
                        await writer.drain()
                        return  # Asterisk ends the session after a failed login
                elif not authenticated:
                    writer.write(self._response(aid, "Error", "Permission denied"))
                elif name == "ping":
                    if self.answer_pings:
                        writer.write(
                            f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n"
                            f"Timestamp: 1732345678.000000\r\n\r\n".encode()
                        )
                elif name in self.silent:
                    pass
                elif name in self.unknown:
                    writer.write(self._response(aid, "Error", "Invalid/unknown command"))
                elif self.queue_app is not None and name in QueueApp.ACTIONS:
                    ok, message = self.queue_app.act(action)
                    writer.write(self._response(aid, "Success" if ok else "Error", message))
                elif name == "getvar" and action.get("variable", "") in self.variables:
                    writer.write(self._value(aid, action["variable"]))
                elif name in _LISTS:
                    writer.write(self._list_reply(name, aid))
                elif name in self.accepts:
                    writer.write(self._response(aid, "Success", self.accepts[name]))
                    follow_up = self.follow_ups.get(name)
                    for event in follow_up(action) if follow_up is not None else []:
                        writer.write(render(event))
                else:
                    writer.write(self._response(aid, "Error", "Interface not found"))
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)

    def _login(self, action: dict[str, str], aid: str, writer: asyncio.StreamWriter) -> bool:
        """Answer a Login; ``True`` if it was accepted (the session is then this one)."""
        self.logins += 1
        self.login_times.append(asyncio.get_running_loop().time())
        if action.get("username") != self.username or action.get("secret") != self.secret:
            writer.write(self._response(aid, "Error", "Authentication failed"))
            return False
        self._session = writer
        writer.write(self._response(aid, "Success", "Authentication accepted"))
        writer.write(
            f"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {self.uptime}"
            f"\r\nLastReload: {self.uptime}\r\nStatus: Fully Booted\r\n\r\n".encode()
        )
        return True

    @staticmethod
    def _response(aid: str, response: str, message: str) -> bytes:
        return f"Response: {response}\r\nActionID: {aid}\r\nMessage: {message}\r\n\r\n".encode()

    def _value(self, aid: str, variable: str) -> bytes:
        return (f"Response: Success\r\nActionID: {aid}\r\nVariable: {variable}\r\n"
                f"Value: {self.variables[variable]}\r\n\r\n").encode()

    def _list_reply(self, name: str, aid: str) -> bytes:
        attribute, complete, message = _LISTS[name]
        items: list[Fields] = list(getattr(self, attribute))
        if name == "queuestatus" and self.queue_app is not None:
            items += self.queue_app.status()
        out = [
            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
            f"Message: {message} will follow\r\n\r\n".encode()
        ]
        out += [render((*item[:1], ("ActionID", aid), *item[1:])) for item in items]
        out.append(
            render(
                (
                    ("Event", complete),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", str(len(items))),
                )
            )
        )
        return b"".join(out)


class QueueApp:
    """app_queue's dynamic members as the AMI actions change them (each member a dict of its
    QueueMember fields, by queue and interface), for :class:`FakeAsterisk`; answers with
    Asterisk 22's messages. ``static`` members (from queues.conf) are listed, never changed."""

    ACTIONS: Final = ("queueadd", "queueremove", "queuepause", "queuepenalty")

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], dict[str, str]] = {}

    def add_static(self, queue: str, interface: str) -> None:
        """A member from queues.conf."""
        self.members[(queue, interface)] = self._member(queue, interface, "static", "0",
                                                        interface, paused=False, reason="")

    def clear(self) -> None:
        """Forget every member, as an Asterisk restarted without its AstDB."""
        self.members.clear()

    def of(self, interface: str) -> dict[str, tuple[int, bool, str]]:
        """Queue -> (penalty, paused, reason) of ``interface``'s members."""
        return {queue: (int(m["Penalty"]), m["Paused"] == "1", m["PausedReason"])
                for (queue, iface), m in sorted(self.members.items()) if iface == interface}

    @staticmethod
    def _member(queue: str, interface: str, membership: str, penalty: str, name: str, *,
                paused: bool, reason: str) -> dict[str, str]:
        return {"Event": "QueueMember", "Queue": queue, "Name": name, "Location": interface,
                "StateInterface": interface, "Membership": membership, "Penalty": penalty,
                "CallsTaken": "0", "LastCall": "0", "LastPause": "0", "LoginTime": "0",
                "InCall": "0", "Status": "1", "Paused": "1" if paused else "0",
                "PausedReason": reason if paused else "", "Wrapuptime": "0"}

    def status(self) -> list[Fields]:
        """QueueStatus's QueueMember events."""
        return [tuple(member.items()) for _, member in sorted(self.members.items())]

    def act(self, action: dict[str, str]) -> tuple[bool, str]:
        """Carry out one action (keys lower-cased); (success, message)."""
        name, queue = action["action"].lower(), action.get("queue", "")
        interface = action.get("interface", "")
        key = (queue, interface)
        if name == "queueadd":
            if key in self.members:
                return False, "Unable to add interface: Already there"
            paused = action.get("paused", "false").lower() in ("true", "yes", "1")
            self.members[key] = self._member(
                queue, interface, "dynamic", action.get("penalty", "0"),
                action.get("membername") or interface, paused=paused,
                reason=action.get("reason", ""))
            return True, "Added interface to queue"
        if name == "queueremove":
            if self.members.get(key, {}).get("Membership") != "dynamic":
                return False, "Unable to remove interface: Not there"
            del self.members[key]
            return True, "Removed interface from queue"
        chosen = [m for (q, i), m in self.members.items()
                  if i == interface and (not queue or q == queue)]
        if not chosen:
            return False, ("Interface not found" if name == "queuepause"
                           else "Invalid interface, queuename or penalty")
        for member in chosen:
            if name == "queuepause":
                paused = action.get("paused", "").lower() in ("true", "yes", "1")
                member["Paused"] = "1" if paused else "0"
                member["PausedReason"] = action.get("reason", "") if paused else ""
            else:
                member["Penalty"] = action.get("penalty", "0")
        if name == "queuepenalty":
            return True, "Interface penalty set successfully"
        return True, f"Interface {'paused' if member['Paused'] == '1' else 'unpaused'} successfully"


@asynccontextmanager
async def fake_asterisk(
    port: int = 0, *, username: str = USERNAME, secret: str = SECRET
) -> AsyncIterator[FakeAsterisk]:
    """A started :class:`FakeAsterisk`, closed afterwards."""
    server = FakeAsterisk(username=username, secret=secret)
    await server.start(port)
    try:
        yield server
    finally:
        await server.close()


class ListSink:
    """The call store, as a list (a ``FactSink``); open calls are those started and not
    ended or vanished, plus ``open_ids`` (calls the store knew before the test)."""

    def __init__(self, open_ids: Sequence[str] = ()) -> None:
        self.facts: list[CallFact] = []
        self.preset_open = set(open_ids)

    async def record(self, facts: Sequence[CallFact]) -> None:
        self.facts.extend(facts)

    def overflow(self, facts: Sequence[CallFact]) -> None:
        self.facts.extend(facts)

    def spooled_calls(self) -> dict[str, SpooledCall]:
        """None: this store takes every fact at once."""
        return {}

    async def open_calls(self) -> dict[str, set[str]]:
        """The open calls; the queues they wait in are not kept (a restarted listener joins
        them again)."""
        return {call_id: set() for call_id in await self.open_call_ids()}

    async def open_call_ids(self) -> set[str]:
        """The open calls' ids (as the recorder's ``stored_open_call_ids``)."""
        started = {f.call_id for f in self.facts if isinstance(f, CallStarted)}
        closed = {f.call_id for f in self.facts if isinstance(f, CallEnded | CallVanished)}
        return (started | self.preset_open) - closed

    def of(self, kind: type[F]) -> list[F]:
        """The facts of one kind, in the order recorded."""
        return [f for f in self.facts if isinstance(f, kind)]
