"""Record the AMI and FastAGI transcripts in tests/fixtures/ from a real Asterisk lab.

Run from the repository root, with nothing else on the default lab ports (5060, 5038, 4573,
5070)::

    .venv/bin/python -m scripts.record_fixtures

It starts a lab instance "fixtures" with the default settings (and secrets), drives calls
with sipp and captures what Asterisk sends with plain sockets. Re-run it after an Asterisk
upgrade and review the diff: the unit tests of the AMI listener and the AGI server parse
these files. tests/fixtures/README.md describes each scenario.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.secrets import ami_secret
from telephony.settings import Settings
from tests.e2e.rawami import Message, RawAmi

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SETTINGS = dataclasses.replace(
    Settings(),
    lab_instance="fixtures",
    lab_operators=4,
    queue_wrapup_seconds=0,
    agi_session_timeout=5,
)
IVR_VARIABLES = "IVR_CHOICE,IVR_OUTCOME,IVR_CATEGORY,IVR_SKILL,IVR_QUEUE,IVR_LINE,IVR_CALL_ID"

log = logging.getLogger("record_fixtures")

AgiHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def is_event(name: str, **fields: str) -> Callable[[Message], bool]:
    """Matches an AMI event by name and header values."""
    return lambda m: m.get("Event") == name and all(m.get(k) == v for k, v in fields.items())


def hangup_of(channel_prefix: str) -> Callable[[Message], bool]:
    """Matches the Hangup event of a channel whose name starts with ``channel_prefix``."""
    return lambda m: is_event("Hangup")(m) and m.get("Channel", "").startswith(channel_prefix)


async def agi_stub_setting(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, variables: dict[str, str]
) -> None:
    """What the IVR does when it has decided: set the IVR_* variables, then end."""
    while (await reader.readline()) not in (b"\n", b""):
        pass
    for name, value in variables.items():
        writer.write(f'SET VARIABLE {name} "{value}"\n'.encode())
        await writer.drain()
        await reader.readline()
    writer.close()


def stub(variables: dict[str, str]) -> AgiHandler:
    """A FastAGI handler that sets ``variables``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await agi_stub_setting(reader, writer, variables)

    return handle


async def serve_agi(handler: AgiHandler) -> asyncio.Server:
    """The FastAGI server on the line's AGI port."""
    return await asyncio.start_server(handler, SETTINGS.agi_host, SETTINGS.agi_port)


def save(name: str, data: bytes) -> None:
    """Write one fixture, byte for byte."""
    (FIXTURES / name).write_bytes(data)
    log.info("wrote %s (%d bytes)", name, len(data))


async def record_answered(lab: Lab) -> None:
    """112 -> IVR (stub chooses medical) -> queue -> operator answers -> caller hangs up."""
    await lab.acli("queue add member PJSIP/op1001 to medical")
    ami = RawAmi("127.0.0.1", SETTINGS.ami_port)
    await ami.login(SETTINGS.ami_username, ami_secret(SETTINGS))
    ivr = stub(
        {
            "IVR_CHOICE": "1",
            "IVR_CATEGORY": "emergency",
            "IVR_SKILL": "medical",
            "IVR_QUEUE": "medical",
            "IVR_OUTCOME": "chosen",
        }
    )
    server = await serve_agi(ivr)
    try:
        async with sipp.operator(SETTINGS.lab_operator_sip_port, ring_seconds=1) as operator:
            call = sipp.caller(SETTINGS.sip_host, SETTINGS.sip_port, "112", talk_seconds=5)
            async with call:
                result = await call.wait()
            assert result.ok, result
            await ami.wait_for(is_event("AgentComplete"))
            for side in ("PJSIP/op1001-", "PJSIP/carrier-"):
                await ami.wait_for(hangup_of(side))
            await operator.stop()
    finally:
        server.close()
        await server.wait_closed()
    save("ami_call_answered.txt", bytes(ami.raw))
    await ami.close()
    await lab.acli("queue remove member PJSIP/op1001 from medical")


async def record_abandoned(lab: Lab) -> None:
    """112 -> IVR (no input: emergency-general) -> nobody answers -> caller hangs up."""
    ami = RawAmi("127.0.0.1", SETTINGS.ami_port)
    await ami.login(SETTINGS.ami_username, ami_secret(SETTINGS))
    ivr = stub(
        {
            "IVR_CHOICE": "",
            "IVR_CATEGORY": "emergency",
            "IVR_SKILL": "general",
            "IVR_QUEUE": "emergency-general",
            "IVR_OUTCOME": "no_input",
        }
    )
    server = await serve_agi(ivr)
    try:
        call = sipp.caller(
            SETTINGS.sip_host, SETTINGS.sip_port, "112", caller_id="6281234567890", talk_seconds=4
        )
        async with call:
            result = await call.wait()
        assert result.ok, result
        await ami.wait_for(is_event("QueueCallerAbandon"))
        await ami.wait_for(is_event("Hangup"))
    finally:
        server.close()
        await server.wait_closed()
    save("ami_call_abandoned.txt", bytes(ami.raw))
    await ami.close()


async def record_resync(lab: Lab) -> None:
    """QueueStatus, CoreShowChannels and Status while one caller waits in "fire" and another
    talks to op1001 from "medical"; the session logs in with ``Events: off``."""
    await lab.acli("queue add member PJSIP/op1001 to medical")
    await lab.acli("queue add member PJSIP/op1002 to fire")
    await lab.acli("queue pause member PJSIP/op1002 queue fire reason istirahat")
    choices = {
        "medical": {"IVR_CHOICE": "1", "IVR_SKILL": "medical", "IVR_QUEUE": "medical"},
        "fire": {"IVR_CHOICE": "2", "IVR_SKILL": "fire", "IVR_QUEUE": "fire"},
    }
    order = iter(("medical", "fire"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chosen = choices[next(order)]
        await agi_stub_setting(
            reader, writer, chosen | {"IVR_CATEGORY": "emergency", "IVR_OUTCOME": "chosen"}
        )

    watcher = RawAmi("127.0.0.1", SETTINGS.ami_port)
    await watcher.login(SETTINGS.ami_username, ami_secret(SETTINGS))
    server = await serve_agi(handle)
    try:
        async with sipp.operator(SETTINGS.lab_operator_sip_port) as operator:
            talking = sipp.caller(
                SETTINGS.sip_host, SETTINGS.sip_port, "112", caller_id="081111111111",
                talk_seconds=8,
            )  # fmt: skip
            waiting = sipp.caller(
                SETTINGS.sip_host, SETTINGS.sip_port, "119", caller_id="082222222222",
                talk_seconds=5,
            )  # fmt: skip
            async with talking:
                await watcher.wait_for(is_event("AgentConnect", Queue="medical"))
                async with waiting:
                    await watcher.wait_for(is_event("QueueCallerJoin", Queue="fire"))
                    ami = RawAmi("127.0.0.1", SETTINGS.ami_port)
                    await ami.login(SETTINGS.ami_username, ami_secret(SETTINGS), events=False)
                    await ami.list_action("QueueStatus")
                    await ami.list_action("CoreShowChannels")
                    await ami.list_action("Status", Variables=IVR_VARIABLES)
                    save("ami_resync.txt", bytes(ami.raw))
                    await ami.close()
                    assert (await waiting.wait()).ok
                assert (await talking.wait()).ok
            await operator.stop()
    finally:
        server.close()
        await server.wait_closed()
        await watcher.close()
    for member, queue in (("op1001", "medical"), ("op1002", "fire")):
        await lab.acli(f"queue remove member PJSIP/{member} from {queue}")


class AgiTranscript:
    """A readable FastAGI transcript: ``<`` Asterisk to server, ``>`` server to Asterisk."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.started = time.monotonic()

    def note(self, text: str) -> None:
        """A comment line."""
        self.lines.append(f"# {text}\n".encode())

    def received(self, line: bytes) -> None:
        """One line Asterisk sent, as received (its newline included)."""
        self.lines.append(b"< " + line if line.endswith(b"\n") else b"< " + line + b"\n")

    def sent(self, line: bytes) -> None:
        """One line the server sent."""
        self.lines.append(b"> " + line)

    async def command(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str
    ) -> bytes:
        """Send one command and record it and Asterisk's reply line."""
        line = command.encode() + b"\n"
        self.sent(line)
        writer.write(line)
        await writer.drain()
        reply = await reader.readline()
        if reply:
            self.received(reply)
        return reply

    async def rest(self, reader: asyncio.StreamReader) -> None:
        """Everything else Asterisk sends until it closes the connection."""
        async with asyncio.timeout(10):
            while line := await reader.readline():
                self.received(line)
        self.note("Asterisk closed the connection")


async def scripted_agi_session(
    transcript: AgiTranscript, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The commands of session 1, timed against the caller's DTMF (see :func:`record_agi`)."""
    transcript.note("ANSWER on a channel the dialplan already answered:")
    await transcript.command(reader, writer, "ANSWER")
    transcript.note("GET DATA; the caller presses 1 while the 5.6 s prompt plays:")
    await transcript.command(reader, writer, "GET DATA siaga112/x 3000 1")
    transcript.note("GET DATA with a 0.5 s prompt; no digit within the 1000 ms timeout:")
    await transcript.command(reader, writer, "GET DATA siaga112/y 1000 1")
    transcript.note("STREAM FILE with escape digits; the caller presses 2 (ASCII 50):")
    await transcript.command(reader, writer, 'STREAM FILE siaga112/x "12"')
    transcript.note("SET VARIABLE:")
    await transcript.command(reader, writer, 'SET VARIABLE IVR_CHOICE "1"')
    transcript.note("GET DATA; the caller hangs up while the prompt plays. The reply is")
    transcript.note("result=-1, then 'HANGUP' (AGIEXITONHANGUP=yes), then the socket closes:")
    await transcript.command(reader, writer, "GET DATA siaga112/x 3000 1")
    await transcript.rest(reader)


async def record_agi(lab: Lab, prompts: Path) -> None:
    """A FastAGI session with a caller who presses 1, then nothing, then 2, then hangs up;
    then a session whose server stalls until the dialplan's guard expires."""
    lab.site.install_prompts(prompts)
    await lab.acli("queue add member PJSIP/op1001 to emergency-general")
    transcript = AgiTranscript()
    transcript.note("FastAGI as Asterisk 22 speaks it (see tests/fixtures/README.md).")
    transcript.note("'<' Asterisk -> server, '>' server -> Asterisk; after the marker and one")
    transcript.note("space each line is exactly as on the wire, its newline included.")
    finished = asyncio.Event()
    sessions = iter(("scripted", "stalled"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind = next(sessions)
        if kind == "scripted":
            transcript.note("Session 1. The environment, ended by an empty line:")
        else:
            transcript.note(
                f"Session 2. The server reads the environment and never answers; after "
                f"agi_session_timeout ({SETTINGS.agi_session_timeout:g} s, TIMEOUT(absolute)) "
                "Asterisk sends:"
            )
        while line := await reader.readline():
            transcript.received(line)
            if line == b"\n":
                break
        if kind == "scripted":
            await scripted_agi_session(transcript, reader, writer)
        else:
            await transcript.rest(reader)
            finished.set()
        writer.close()

    server = await serve_agi(handle)
    try:
        # Digit 1 at 1.5 s (in the first prompt), digit 2 at ~4.6 s (in STREAM FILE), BYE
        # at ~6.6 s (in the last GET DATA).
        presser = sipp.caller(
            SETTINGS.sip_host, SETTINGS.sip_port, "112", dtmf="12", dtmf_delay=1.5,
            dtmf_gap=3.0, talk_seconds=2.0,
        )  # fmt: skip
        async with presser:
            result = await presser.wait()
        assert result.ok, result
        async with sipp.operator(SETTINGS.lab_operator_sip_port, talk_seconds=1) as operator:
            staller = sipp.caller(SETTINGS.sip_host, SETTINGS.sip_port, "112", talk_seconds=30)
            async with staller:
                result = await staller.wait()
            assert result.ok, result
            await operator.stop()
        async with asyncio.timeout(10):
            await finished.wait()
    finally:
        server.close()
        await server.wait_closed()
    save("agi_session.txt", b"".join(transcript.lines))
    await lab.acli("queue remove member PJSIP/op1001 from emergency-general")


def make_prompts(directory: Path) -> Path:
    """x: a 5.6 s Indonesian prompt; y: a short one. 8 kHz mono 16-bit, as the IVR's."""
    for name, text in (
        ("x", "Selamat datang di layanan darurat satu satu dua. Tekan satu untuk medis."),
        ("y", "Halo."),
    ):
        raw = directory / f"{name}-raw.wav"
        subprocess.run(["espeak-ng", "-v", "id", "-w", str(raw), text], check=True, timeout=30)
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(directory / f"{name}.wav")],
            check=True,
            timeout=30,
        )
        raw.unlink()
    return directory


async def main() -> None:
    """Record every fixture with one lab run."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prompts = make_prompts(Path(tmp))
        async with Lab(SETTINGS) as lab:
            await record_answered(lab)
            await record_abandoned(lab)
            await record_resync(lab)
            await record_agi(lab, prompts)


if __name__ == "__main__":
    asyncio.run(main())
