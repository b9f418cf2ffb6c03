"""Asterisk's ``queue_log``: what app_queue wrote about every caller, read back line by line.

Asterisk writes one line per queue event to ``<astlogdir>/queue_log`` (logger.conf's
``queue_log``), whether or not anything of ours is listening: it is the record of the calls
that came and went while the line was down (``telephony/calls/backfill.py``).

Format (app_queue's ``ast_queue_log``): ``epoch|callid|queue|agent|event|data1|data2|...``

- ``epoch``: whole seconds, when app_queue wrote the line;
- ``callid``: the caller channel's ``Uniqueid`` (``MANAGER``/``NONE``/``REALTIME`` on member
  lines, which are not about a caller);
- ``agent``: the member's name, which is its interface (``PJSIP/op1001``) unless QueueAdd
  gave a ``MemberName`` (the desk gives the operator's display name), or ``NONE``;
- the data fields of the events the backfill reads:

  ENTERQUEUE       url|callerid|position
  CONNECT          holdtime|bridged channel uniqueid|ringtime
  COMPLETECALLER   holdtime|calltime|origposition   (the caller hung up)
  COMPLETEAGENT    holdtime|calltime|origposition   (the operator hung up)
  ABANDON          position|origposition|waittime
  EXITWITHTIMEOUT  position|origposition|waittime   (the queue's max wait: next round)
  EXITEMPTY        position|origposition|waittime
  EXITWITHKEY      key|position|origposition|waittime
  RINGNOANSWER     ringtime in milliseconds
  BLINDTRANSFER    extension|context|holdtime|calltime|origposition
  ATTENDEDTRANSFER method|target...|holdtime|calltime|origposition
  SIAGALINE        line                             (our dialplan's QueueLog(), at arrival)
  SIAGAIVR         IVR_OUTCOME|IVR_CHOICE|IVR_CATEGORY|IVR_SKILL|IVR_QUEUE|
                   IVR_FIRST_KEY_MS|IVR_INVALID_KEYS|IVR_SCORE|IVR_PRIORITY|IVR_SCREENING
                                                    (ours, as the call enters the queues;
                                                    an older dialplan: IVR_OUTCOME only,
                                                    or its first five fields)
  SIAGAEND         HANGUPCAUSE                      (ours, from the caller's hang-up handler)
  SIAGALEG         leg|state|status|cause           (ours, [siaga112-leg]: a leg the line
                                                    placed moved on; the call id is the
                                                    reporting channel's Uniqueid, as the AMI's
                                                    ``UserEvent SiagaLeg`` carries it)
  SIAGABACK        call|state                       (ours, [siaga112-back-answered]: the
                                                    operator answered (state ``answered``)
                                                    or left (``ended``) a caller a blind
                                                    transfer nobody answered brought back;
                                                    the call id is the operator channel's
                                                    Uniqueid, ``call`` the caller's, as the
                                                    AMI's ``UserEvent SiagaBack`` has them)

The caller ID (ENTERQUEUE) is whatever the carrier sent and may itself contain ``|``: it is
read as everything between the first and the last data field. The file is written by Asterisk
from what callers send, so every line is checked: a line that is not of this shape is skipped
with one clear reason (:class:`QueueLogLineError`), never guessed at. ``SIAGALEG`` and
``SIAGABACK`` are checked whole here (:func:`check_leg`, :func:`check_back`: they need nothing
the line knows but the leg's id or the call's); the data of
our other own events is checked against what the line knows where they are read
(:mod:`telephony.calls.backfill`), with the same one-line refusal.

Pure: parsing only. Reading the file from a cursor, across rotations, is
:func:`telephony.asterisk.queue_log_file.read_since`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from telephony.core.errors import SiagaError
from telephony.core.text import escaped_utf8, holds_invisible
from telephony.settings import Settings

log = logging.getLogger("telephony.asterisk")

MAX_LINE = 2048  # app_queue builds lines in a 1024-byte buffer (plus the caller's id)
MAX_FIELD = 256
MAX_LOGGED = 20  # bad lines logged one by one per read; beyond, only counted (a flood)

_EPOCH = re.compile(r"[0-9]{9,11}")
_CALL_ID = re.compile(r"(?:[A-Za-z0-9_-]{1,64}-)?[0-9]{9,11}\.[0-9]{1,9}")
_NAME = re.compile(r"[A-Za-z0-9_./@:+-]{1,128}")
_EVENT = re.compile(r"[A-Z_]{1,32}")
_NUMBER = re.compile(r"[0-9]{1,9}")
LEG_LOGGED = "SIAGALEG"  # extensions.conf, [siaga112-leg]
LEG_STATES = ("dialling", "answered", "ended")  # telephony.calls.legs.LegState
_LEG_ID = re.compile(r"[1-9][0-9]{0,8}")  # the ids the line gives out (call_legs.leg_id)
_LEG_STATUS = re.compile(r"[A-Z]{0,24}")  # Dial()'s DIALSTATUS, or the routine's ARG2
_LEG_CAUSE = re.compile(r"[0-9]{0,3}")  # HANGUPCAUSE (Q.850), empty while there is none
BACK_LOGGED = "SIAGABACK"  # extensions.conf, [siaga112-back-answered]
BACK_STATES = ("answered", "ended")  # the states UserEvent SiagaBack reports


class QueueLogLineError(SiagaError, ValueError):
    """A queue_log line that is not of the expected shape; the message is one log-safe line."""


@dataclass(frozen=True)
class QueueLogEntry:
    """One caller event of the queue_log (member lines are not kept)."""

    epoch: int
    call_id: str
    queue: str
    agent: str  # "" when NONE
    event: str
    data: tuple[str, ...]
    offset: int = 0  # where the line starts in its file (for the cursor)

    def number(self, index: int) -> int:
        """The data field ``index`` (negative counts from the end) as a whole number."""
        try:
            value = self.data[index]
        except IndexError:
            raise QueueLogLineError(
                f"{self.event} of {self.call_id}: data field {index} missing") from None
        if not _NUMBER.fullmatch(value):
            raise QueueLogLineError(
                f"{self.event} of {self.call_id}: data field {index} is not a number: "
                f"{value[:40]!r}")
        return int(value)


def _safe(text: str) -> str:
    return repr(text[:80])


def parse_line(raw: bytes, offset: int = 0) -> QueueLogEntry | None:
    """One line (without its newline) as an entry; ``None`` for a line about no caller
    (member changes, ``QUEUESTART``...). Raises :class:`QueueLogLineError` for a line that is
    not a queue_log line at all."""
    if len(raw) > MAX_LINE:
        raise QueueLogLineError(f"line at byte {offset} longer than {MAX_LINE} bytes")
    # ENTERQUEUE carries the caller number as the carrier sent it: bytes that are not UTF-8
    # are escaped as the AMI reader and the IVR escape them, not a reason to lose the call.
    line = escaped_utf8(raw).removesuffix("\r")
    fields = line.split("|")
    if len(fields) < 5:
        raise QueueLogLineError(f"line at byte {offset} has {len(fields)} fields: {_safe(line)}")
    epoch, call_id, queue, agent, event, *data = fields
    if not _EPOCH.fullmatch(epoch):
        raise QueueLogLineError(f"line at byte {offset}: epoch malformed: {_safe(epoch)}")
    if not _EVENT.fullmatch(event):
        raise QueueLogLineError(f"line at byte {offset}: event malformed: {_safe(event)}")
    if not _CALL_ID.fullmatch(call_id):
        if call_id in ("MANAGER", "NONE", "REALTIME", "CLI", "NULL"):
            return None  # a member or queue line
        raise QueueLogLineError(f"line at byte {offset}: call id malformed: {_safe(call_id)}")
    if not _NAME.fullmatch(queue):
        raise QueueLogLineError(f"line at byte {offset}: queue malformed: {_safe(queue)}")
    # The agent is the member's name (QueueAdd's MemberName: the operator's display name,
    # spaces and all), which defaults to the interface.
    if not agent or len(agent) > MAX_FIELD or holds_invisible(agent) or not agent.strip():
        raise QueueLogLineError(f"line at byte {offset}: agent malformed: {_safe(agent)}")
    if any(len(value) > MAX_FIELD or holds_invisible(value) for value in data):
        raise QueueLogLineError(f"line at byte {offset}: a data field is unsafe: {_safe(line)}")
    if event == LEG_LOGGED:
        check_leg(data, f"line at byte {offset}: {LEG_LOGGED} of {call_id}")
    if event == BACK_LOGGED:
        check_back(data, f"line at byte {offset}: {BACK_LOGGED} of {call_id}")
    return QueueLogEntry(int(epoch), call_id, queue, "" if agent == "NONE" else agent, event,
                         tuple(data), offset)


def check_leg(data: list[str] | tuple[str, ...], where: str) -> None:
    """Refuse ``SIAGALEG`` data that is not ``<leg>|<state>|<status>|<cause>`` as the
    dialplan writes it: a status and a cause on ``ended`` only (empty otherwise)."""
    if len(data) != 4:
        raise QueueLogLineError(f"{where}: {len(data)} data fields, not 4")
    leg, state, status, cause = data
    if not _LEG_ID.fullmatch(leg):
        raise QueueLogLineError(f"{where}: leg id malformed: {_safe(leg)}")
    if state not in LEG_STATES:
        raise QueueLogLineError(f"{where}: not a leg state: {_safe(state)}")
    if not _LEG_STATUS.fullmatch(status) or (status and state != "ended"):
        raise QueueLogLineError(f"{where}: status malformed for {state}: {_safe(status)}")
    if not _LEG_CAUSE.fullmatch(cause) or (cause and state != "ended"):
        raise QueueLogLineError(f"{where}: cause malformed for {state}: {_safe(cause)}")


# The row of asterisk_log_cursors a site of one node reads its queue_log from.
SOURCE = "queue_log"


def cursor_source(settings: Settings) -> str:
    """This line's row of ``asterisk_log_cursors``: ``queue_log`` on a site of one node,
    ``queue_log@<systemname>`` on a cluster.

    Why per node: the nodes share the database and each reads its own Asterisk's queue_log.
    With one row, each node took the other's cursor (another inode) for a rotation whose file
    was gone: it warned so and read its whole log again at every pass, and a log longer than
    one read's budget from its start each time the other node had saved its cursor in between.
    """
    if not settings.cluster_nodes or settings.asterisk_systemname is None:
        return SOURCE
    return f"{SOURCE}@{settings.asterisk_systemname}"


def cursor_sources(settings: Settings) -> tuple[str, ...]:
    """Every node's row (:func:`cursor_source`): the site's logs, whoever reads them."""
    if not settings.cluster_nodes:
        return (SOURCE,)
    return tuple(f"{SOURCE}@{node.name}" for node in settings.cluster_nodes)


def check_back(data: list[str] | tuple[str, ...], where: str) -> None:
    """Refuse ``SIAGABACK`` data that is not ``<caller's Uniqueid>|<state>`` as the dialplan
    writes it."""
    if len(data) != 2:
        raise QueueLogLineError(f"{where}: {len(data)} data fields, not 2")
    call, state = data
    if not _CALL_ID.fullmatch(call):
        raise QueueLogLineError(f"{where}: call id malformed: {_safe(call)}")
    if state not in BACK_STATES:
        raise QueueLogLineError(f"{where}: not answered or ended: {_safe(state)}")


@dataclass(frozen=True)
class Cursor:
    """Where the last catch-up stopped: the file (by inode, which a rotation keeps) and the
    byte after the last whole line read."""

    inode: int
    offset: int


@dataclass
class Chunk:
    """What one read found: the entries, each with its file's inode, and where it stopped."""

    entries: list[tuple[int, QueueLogEntry]]
    end: Cursor
    skipped: int = 0  # hostile or broken lines, each logged once
    lost: bool = False  # the cursor's file was gone (rotated away): lines may be missing
    more: bool = False  # the read budget ran out: the log goes on beyond ``end``


def _lines(data: bytes, base: int) -> Iterator[tuple[bytes, int]]:
    """Whole lines of ``data`` (a trailing partial line is left for later), with offsets."""
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield data[start:end], base + start
        start = end + 1


def parse_chunk(data: bytes, base: int, inode: int, chunk: Chunk) -> None:
    """Parse whole lines into ``chunk``; each bad line is logged once and skipped."""
    for raw, offset in _lines(data, base):
        if not raw.strip():
            continue
        try:
            entry = parse_line(raw, offset)
        except QueueLogLineError as exc:
            chunk.skipped += 1
            if chunk.skipped <= MAX_LOGGED:
                log.warning("queue_log: skipped: %s", exc)
            elif chunk.skipped == MAX_LOGGED + 1:
                log.warning("queue_log: more lines skipped; only their count is reported")
            continue
        if entry is not None:
            chunk.entries.append((inode, entry))
