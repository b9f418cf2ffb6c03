"""The AMI side of the tests: the recorded and synthetic transcripts of ``tests/fixtures``,
a listener configured for :class:`telephony.ami.testing.FakeAsterisk`, bounded polling, and
an AMI action port that records what services send (:class:`RecordingAmi`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.ami.framing import AmiFrame
from telephony.ami.listener import AmiListener, FactSink
from telephony.ami.testing import SECRET, USERNAME, Fields, read_events, read_frames
from telephony.ami.tracker import AmiEvent, CallTracker, QueueSnapshot
from telephony.calls.backlog import DEFAULT_BOUND
from telephony.calls.facts import AsteriskBooted, CallFact
from telephony.settings import Settings

FIXTURES: Final = Path(__file__).parent.parent / "fixtures"
NOW: Final = datetime(2024, 11, 23, 7, 0, tzinfo=UTC)  # the tracker's clock in these tests
CALLER: Final = "1732345678.0"  # the call of the synthetic answered transcript


def existing(*names: str) -> list[Path]:
    """Recorded transcripts join the synthetic ones as soon as they are in the tree."""
    return [FIXTURES / name for name in names if (FIXTURES / name).exists()]


def events(path: Path) -> list[AmiEvent]:
    """The events of a transcript, as the listener gets them (panoramisk messages)."""
    return [frame.to_message() for frame in read_frames(path) if frame.get("Event")]


def resync_replies(path: Path) -> tuple[list[AmiEvent], list[AmiEvent], list[AmiEvent]]:
    """(QueueStatus, CoreShowChannels, Status) replies of a recorded resync."""
    queues: list[AmiEvent] = []
    channels: list[AmiEvent] = []
    status: list[AmiEvent] = []
    for message in events(path):
        name = str(message["Event"])
        if name.startswith("Queue"):
            queues.append(message)
        elif name.startswith("CoreShowChannel"):
            channels.append(message)
        elif name.startswith("Status"):
            status.append(message)
    return queues, channels, status


ANSWERED: Final = read_events(FIXTURES / "ami_synthetic_call_answered.txt")
ABANDONED: Final = read_events(FIXTURES / "ami_synthetic_call_abandoned.txt")


def expected_facts(frames: Sequence[Fields]) -> list[CallFact]:
    """What a fresh tracker (clock at NOW) makes of ``frames``, as the listener hands it on:
    a greeting (``FullyBooted``) goes no further than its outage watch."""
    tracker = CallTracker(clock=lambda: NOW)
    return [fact for frame in frames for fact in tracker.handle(AmiFrame(frame).to_message())
            if not isinstance(fact, AsteriskBooted)]


def listener(port: int, sink: FactSink, *, secret: str = SECRET,
             backlog_bound: int = DEFAULT_BOUND, **options: float) -> AmiListener:
    """A listener for the fake Asterisk on ``port``: quick to reconnect, its tracker's clock
    at NOW; ``options`` go to :class:`AmiListener` (``action_timeout`` 2 s unless given)."""
    settings = Settings(
        ami_host="127.0.0.1",
        ami_port=port,
        ami_username=USERNAME,
        ami_secret=secret,
        ami_reconnect_seconds=0.05,
    )
    options.setdefault("action_timeout", 2.0)
    return AmiListener(
        settings, sink, tracker=CallTracker(clock=lambda: NOW), auth_retry_seconds=0.1,
        backlog_bound=backlog_bound, **options
    )


def live_call_snapshot(uid: str) -> tuple[list[Fields], list[Fields], list[Fields]]:
    """What Asterisk reports (channels, status, queues) for one caller waiting in the medical
    queue."""
    base = (
        ("Channel", "PJSIP/carrier-00000000"),
        ("ChannelState", "6"),
        ("CallerIDNum", "081234567890"),
        ("Context", "siaga112-queue"),
        ("Exten", "s"),
        ("Uniqueid", uid),
        ("Linkedid", uid),
    )
    channels: list[Fields] = [(("Event", "CoreShowChannel"), *base, ("Duration", "00:00:09"))]
    status: list[Fields] = [
        (
            ("Event", "Status"),
            *base,
            ("Variable", "IVR_LINE=112"),
            ("Variable", "IVR_CHOICE=2"),
            ("Variable", "IVR_OUTCOME=chosen"),
            ("Variable", "IVR_CATEGORY="),
        )
    ]
    queues: list[Fields] = [
        (
            ("Event", "QueueEntry"),
            ("Queue", "medical"),
            ("Position", "1"),
            ("Channel", "PJSIP/carrier-00000000"),
            ("Uniqueid", uid),
            ("Wait", "4"),
        )
    ]
    return channels, status, queues


class SeenFacts:
    """A fact observer that keeps what it was told, in order (what the wallboard hears)."""

    def __init__(self) -> None:
        self.facts: list[CallFact] = []

    def recorded(self, facts: Sequence[CallFact]) -> None:
        self.facts.extend(facts)

    def resynced(self, queues: QueueSnapshot | None) -> None:
        """Nothing to keep."""


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Bounded polling: the condition must hold within ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polling, not an Event: the conditions span the sink, the server and the logs.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class RecordingAmi:
    """Records actions; answers QueueStatus with ``members`` (and another list action with its
    ``lists`` events, if any); fails while ``down``, and refuses the actions named in
    ``refuse`` (as Asterisk refuses a class the user lacks)."""

    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []
        self.members: list[dict[str, str]] = []
        self.lists: dict[str, list[dict[str, str]]] = {}  # by action name
        self.down = False
        self.refuse: set[str] = set()

    async def send_action(self, action: Mapping[str, str]) -> Any:
        if self.down:
            raise AmiActionError(f"{action['Action']}: not logged in to Asterisk")
        if action["Action"] in self.refuse:
            raise AmiActionRefusedError(f"{action['Action']} refused: Permission denied")
        self.actions.append(dict(action))
        return {"Response": "Success"}

    async def send_list_action(self, action: Mapping[str, str]) -> list[Any]:
        await self.send_action(action)
        if action["Action"] in self.lists:
            return list(self.lists[action["Action"]])
        return [{"Event": "QueueMember", **m} for m in self.members]

    @property
    def logged_in(self) -> bool:
        return not self.down

    def named(self, name: str) -> list[dict[str, str]]:
        return [a for a in self.actions if a["Action"] == name]
