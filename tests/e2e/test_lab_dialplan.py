"""The shipped dialplan, queues and AMI user, proved with a real Asterisk and real sipp calls.

One lab instance ("dialplan-test", on its own ports) serves the whole module. Each test logs the
operators it needs into queues (CLI ``queue add member``; the line itself uses AMI QueueAdd),
answers with a sipp UAS on ``lab_operator_sip_port`` and watches the AMI events the call
tracker will rely on. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from telephony.asterisk.config import render_template, template_values
from telephony.asterisk.errors import AsteriskSiteError
from telephony.lab import sipp
from telephony.lab.chroot import Lab, operator_names
from telephony.secrets import ami_secret
from telephony.settings import Settings
from tests.e2e.rawami import Message, RawAmi
from tests.support.net import own_lab

SETTINGS = Settings(
    **own_lab("dialplan-test"),
    lab_operators=40,
    queue_max_wait=2,
    queue_wrapup_seconds=0,
    # A short deadline for the server's first command and a longer guard for the session:
    # the stall tests tell the two apart.
    agi_first_command_seconds=2,
    agi_session_timeout=8,
)

AgiHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Login = Callable[[str, str], Awaitable[None]]


@pytest.fixture(scope="module")
async def lab() -> AsyncIterator[Lab]:
    async with Lab(SETTINGS) as lab:
        yield lab
    # No recordings worker runs here: the calls' recordings would pile up in the cached rootfs.
    for recording in lab.monitor_dir.glob("*.wav"):
        recording.unlink(missing_ok=True)


@pytest.fixture
async def ami(lab: Lab) -> AsyncIterator[RawAmi]:
    session = RawAmi("127.0.0.1", SETTINGS.ami_port)
    response = await session.login(SETTINGS.ami_username, ami_secret(SETTINGS))
    assert response["Response"] == "Success", response
    yield session
    await session.close()


@pytest.fixture
async def login(lab: Lab) -> AsyncIterator[Login]:
    """Log an operator into a queue for the test; everybody is logged out afterwards."""
    added: list[tuple[str, str]] = []

    async def add(operator: str, queue: str) -> None:
        await lab.acli(f"queue add member PJSIP/{operator} to {queue}")
        added.append((operator, queue))

    yield add
    for operator, queue in added:
        await lab.acli(f"queue remove member PJSIP/{operator} from {queue}")
    # A failed test may leave a caller in a queue; the next test must start with none.
    await lab.acli("channel request hangup all")
    await lab.wait_cli("core show channels count", lambda out: out.startswith("0 active channels"))


@asynccontextmanager
async def agi_server(handler: AgiHandler) -> AsyncIterator[None]:
    server = await asyncio.start_server(handler, SETTINGS.agi_host, SETTINGS.agi_port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def read_agi_env(reader: asyncio.StreamReader) -> dict[str, str]:
    env = {}
    async with asyncio.timeout(5):
        while (line := await reader.readline()) not in (b"\n", b""):
            key, _, value = line.decode().rstrip("\n").partition(": ")
            env[key] = value
    return env


async def agi_command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str
) -> str:
    writer.write(command.encode() + b"\n")
    await writer.drain()
    async with asyncio.timeout(10):
        while (line := (await reader.readline()).decode().rstrip("\n")).startswith("100 "):
            pass  # "100 result=0 Trying...": GOSUB's notice before its reply
        return line


def ivr_setting(variables: dict[str, str]) -> AgiHandler:
    """A FastAGI stub that sets ``variables`` (in order) and ends the session."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_agi_env(reader)
        for name, value in variables.items():
            assert await agi_command(reader, writer, f'SET VARIABLE {name} "{value}"') == (
                "200 result=1"
            )
        writer.close()

    return handle


def is_event(name: str, **fields: str) -> Callable[[Message], bool]:
    return lambda m: m.get("Event") == name and all(m.get(k) == v for k, v in fields.items())


async def answered_call(
    ami: RawAmi, number: str = "112", caller_id: str = "081234567890", talk: float = 2.0
) -> tuple[sipp.SippResult, Message, float]:
    """One call through the line, answered by the operator UAS, who hangs up after ``talk``
    seconds. Returns the caller's result, the AgentConnect event and the seconds from dialling
    to the operator's answer."""
    start = len(ami.messages)
    dialled = time.monotonic()
    async with sipp.operator(SETTINGS.lab_operator_sip_port, talk_seconds=talk) as operator:
        # The caller would stay far longer than any test waits: the operator ends the call.
        call = sipp.caller(
            SETTINGS.sip_host, SETTINGS.sip_port, number, caller_id=caller_id, talk_seconds=30
        )
        async with call:
            connect = await ami.wait_for(is_event("AgentConnect"), within=20, start=start)
            answered_after = time.monotonic() - dialled
            result = await call.wait()
        operator_result = await operator.stop()
    assert operator_result.successful == 1, operator_result
    return result, connect, answered_after


async def channel_variable(ami: RawAmi, channel_event: Message, name: str) -> str:
    response = await ami.action("Getvar", Channel=channel_event["Channel"], Variable=name)
    return response.get("Value", "")


@pytest.mark.e2e
async def test_asterisk_comes_first_on_the_cpu(lab: Lab) -> None:
    """Its session weighs lab_asterisk_nice, where the kernel shares the CPU by session;
    the session that started the lab keeps its own weight."""
    asterisk = Path(f"/proc/{int(lab.pid_file.read_text(encoding='ascii'))}/autogroup")
    if not asterisk.exists():
        pytest.skip("this kernel does not share the CPU by session (no autogroup)")
    assert lab.settings.lab_asterisk_nice < 0
    assert asterisk.read_text().split()[-2:] == ["nice", str(lab.settings.lab_asterisk_nice)]
    assert Path("/proc/self/autogroup").read_text() != asterisk.read_text()


@pytest.mark.e2e
async def test_fails_open_to_emergency_queue_without_ivr_server(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    await login("op1001", "emergency-general")
    start = len(ami.messages)

    result, connect, answered_after = await answered_call(ami)

    assert result.ok, result
    assert connect["Queue"] == "emergency-general"
    assert connect["Interface"] == "PJSIP/op1001"
    assert answered_after < 5
    outcome = await ami.wait_for(is_event("VarSet", Variable="IVR_OUTCOME"), start=start)
    assert outcome["Value"] == "failopen"
    status = await ami.wait_for(is_event("VarSet", Variable="AGISTATUS"), start=start)
    assert status["Value"] == "FAILURE"  # connection refused


@pytest.mark.e2e
async def test_ivr_choice_routes_to_its_queue(lab: Lab, ami: RawAmi, login: Login) -> None:
    await login("op1001", "medical")
    start = len(ami.messages)
    ivr = ivr_setting({"IVR_QUEUE": "medical", "IVR_OUTCOME": "chosen"})

    async with agi_server(ivr):
        result, connect, _ = await answered_call(ami)

    assert result.ok, result
    assert connect["Queue"] == "medical"
    assert connect["Interface"] == "PJSIP/op1001"
    outcomes = [
        m["Value"] for m in ami.messages[start:] if is_event("VarSet", Variable="IVR_OUTCOME")(m)
    ]
    assert outcomes == ["chosen"]


@pytest.mark.e2e
async def test_dialplan_presets_the_contract_variables(lab: Lab, ami: RawAmi, login: Login) -> None:
    """Before the IVR runs, the channel carries IVR_CALL_ID, IVR_LINE and the fail-open
    IVR_QUEUE; numbers other than 112/119 and odd caller IDs are still taken as 112."""
    await login("op1001", "emergency-general")
    seen: list[dict[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await read_agi_env(reader)
        values = {"uniqueid": env["agi_uniqueid"], "callerid": env["agi_callerid"]}
        for name in ("IVR_CALL_ID", "IVR_LINE", "IVR_QUEUE", "AGIEXITONHANGUP"):
            reply = await agi_command(reader, writer, f"GET VARIABLE {name}")
            values[name] = reply.partition("(")[2].rstrip(")")
        seen.append(values)
        await agi_command(reader, writer, "SET VARIABLE IVR_OUTCOME direct")
        writer.close()

    async with agi_server(handle):
        for number, caller_id in (("112", "081234567890"), ("+62112", "anonymous")):
            result, connect, _ = await answered_call(ami, number, caller_id, talk=1)
            assert result.ok, (number, result)
            assert connect["Queue"] == "emergency-general"

    for values, caller_id in zip(seen, ("081234567890", "anonymous"), strict=True):
        assert values["IVR_CALL_ID"] == values["uniqueid"]
        assert values["IVR_LINE"] == "112"
        assert values["IVR_QUEUE"] == "emergency-general"
        assert values["AGIEXITONHANGUP"] == "yes"
        assert values["callerid"] == caller_id


@pytest.mark.e2e
async def test_unknown_queue_from_ivr_fails_open_to_line_default(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    """119's fail-open queue is medical; a queue name that is not configured (or would smuggle
    Queue() options in) is not trusted."""
    await login("op1002", "medical")
    start = len(ami.messages)
    ivr = ivr_setting({"IVR_QUEUE": "medical,tT", "IVR_OUTCOME": "chosen"})

    async with agi_server(ivr):
        result, connect, _ = await answered_call(ami, "119")

    assert result.ok, result
    assert connect["Queue"] == "medical"
    line = await ami.wait_for(is_event("VarSet", Variable="IVR_LINE"), start=start)
    assert line["Value"] == "119"
    outcome = await ami.wait_for(is_event("VarSet", Variable="IVR_OUTCOME", Value="failopen"))
    assert outcome["Uniqueid"] == connect["Uniqueid"]


@pytest.mark.e2e
async def test_caller_hanging_up_while_operator_rings_is_an_abandon(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    await login("op1001", "emergency-general")
    start = len(ami.messages)
    phone = sipp.operator(SETTINGS.lab_operator_sip_port, ring_seconds=10, max_calls=1)
    async with phone:
        call = sipp.caller(SETTINGS.sip_host, SETTINGS.sip_port, talk_seconds=1.5)
        async with call:
            result = await call.wait()
        await ami.wait_for(is_event("QueueCallerAbandon", Queue="emergency-general"), start=start)
        # The phone got CANCEL (answered 200, then 487 to the INVITE): a clean call for sipp,
        # which exits after it.
        ringing = await phone.wait(within=10)
    assert result.ok, result
    assert ringing.successful == 1 and ringing.failed == 0, ringing
    called = await ami.wait_for(is_event("AgentCalled"), start=start)
    assert called["Interface"] == "PJSIP/op1001"


@pytest.mark.e2e
async def test_unstaffed_queue_sends_the_caller_to_all_operators_at_once(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    """Nobody is in fire: the caller does not wait there (joinempty), but goes straight on to
    all-operators, where op1003 answers; no QueueCallerJoin for fire (the line never sees the
    caller there). A caller waiting for a skilled operator who is busy overflows after the
    queue's max wait: tests/e2e/test_admin_line.py."""
    assert "in 'ringall' strategy" in await lab.acli("queue show all-operators")
    assert "in 'leastrecent' strategy" in await lab.acli("queue show fire")
    await login("op1003", "all-operators")
    start = len(ami.messages)
    ivr = ivr_setting({"IVR_QUEUE": "fire", "IVR_OUTCOME": "chosen"})

    async with agi_server(ivr):
        result, connect, _ = await answered_call(ami)

    assert result.ok, result
    assert connect["Queue"] == "all-operators"
    assert connect["Interface"] == "PJSIP/op1003"
    joined = [m["Queue"] for m in ami.messages[start:] if m.get("Event") == "QueueCallerJoin"
              and m.get("Uniqueid") == connect["Uniqueid"]]
    assert joined == ["all-operators"]


@pytest.mark.e2e
async def test_stalled_ivr_server_fails_open_without_hanging_up(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    """A server that accepts the connection and never answers: TIMEOUT(absolute) plus
    AGIEXITONHANGUP pull the caller out after the first-command deadline (not the session
    guard) and into the queue."""
    await login("op1004", "emergency-general")
    start = len(ami.messages)
    after_stall: list[bytes] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_agi_env(reader)
        async with asyncio.timeout(30):
            after_stall.append(await reader.read())  # until Asterisk closes the socket
        writer.close()

    async with agi_server(stall):
        result, connect, answered_after = await answered_call(ami)

    assert result.ok, result
    assert connect["Queue"] == "emergency-general"
    first = SETTINGS.agi_first_command_seconds
    assert first <= answered_after < first + 3 < SETTINGS.agi_session_timeout
    outcome = await ami.wait_for(is_event("VarSet", Variable="IVR_OUTCOME"), start=start)
    assert outcome["Value"] == "failopen"
    # res_agi tells the stalled server the channel "hung up", then closes the connection.
    assert after_stall and after_stall[0].startswith(b"HANGUP\n")


# A FastAGI server as a stopped `serve` is one: the kernel completes Asterisk's connection
# into the listen backlog and takes the environment into the socket buffer, and nothing
# ever answers.
_LISTEN_ONLY = """
import socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(64)
print("listening", flush=True)
time.sleep(600)
"""


@pytest.mark.e2e
async def test_stopped_ivr_server_costs_the_caller_only_the_first_command_deadline(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    """The issue's fault: the FastAGI server's process SIGSTOPped. The caller reaches the
    emergency queue's operator after agi_first_command_seconds, not the session guard."""
    await login("op1005", "emergency-general")
    start = len(ami.messages)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LISTEN_ONLY, SETTINGS.agi_host, str(SETTINGS.agi_port),
        stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(10):
            assert await process.stdout.readline() == b"listening\n"
        os.kill(process.pid, signal.SIGSTOP)
        result, connect, answered_after = await answered_call(ami)
    finally:
        process.kill()  # SIGKILL ends a stopped process too
        await process.wait()

    print(f"stopped FastAGI server: operator answered {answered_after:.2f} s after dialling")
    assert result.ok, result
    assert connect["Queue"] == "emergency-general"
    first = SETTINGS.agi_first_command_seconds
    assert first <= answered_after < first + 3 < SETTINGS.agi_session_timeout
    outcome = await ami.wait_for(is_event("VarSet", Variable="IVR_OUTCOME"), start=start)
    assert outcome["Value"] == "failopen"


@pytest.mark.e2e
async def test_a_live_server_keeps_the_session_guard_after_its_first_command(
    lab: Lab, ami: RawAmi, login: Login
) -> None:
    """The opening GOSUB to [siaga112-agi-alive] lifts the first-command deadline: a command
    that takes longer than it completes; a server that stalls later is cut by the session
    guard, and the caller still reaches the emergency queue."""
    await login("op1006", "emergency-general")
    start = len(ami.messages)
    replies: list[str] = []

    async def alive_then_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_agi_env(reader)
        replies.append(await agi_command(reader, writer, "GOSUB siaga112-agi-alive s 1"))
        # Longer than the first-command deadline: the caller must still be here after it.
        replies.append(await agi_command(reader, writer, "EXEC Wait 3"))
        async with asyncio.timeout(SETTINGS.agi_session_timeout + 10):
            await reader.read()  # stall until Asterisk closes the socket
        writer.close()

    async with agi_server(alive_then_stall):
        result, connect, answered_after = await answered_call(ami)

    print(f"stall after the first command: operator answered {answered_after:.2f} s after "
          "dialling")
    assert result.ok, result
    assert replies == ["200 result=0 Gosub complete", "200 result=0"]
    assert connect["Queue"] == "emergency-general"
    guard = SETTINGS.agi_session_timeout
    assert guard <= answered_after < guard + SETTINGS.agi_first_command_seconds + 3
    outcome = await ami.wait_for(is_event("VarSet", Variable="IVR_OUTCOME"), start=start)
    assert outcome["Value"] == "failopen"


@pytest.mark.e2e
async def test_ami_user_has_exactly_the_classes_the_listener_needs(lab: Lab, ami: RawAmi) -> None:
    allowed = {
        "Ping": {},
        "QueueStatus": {},
        "CoreShowChannels": {},
        "Status": {"Variables": "IVR_QUEUE"},
        "QueueAdd": {"Queue": "information", "Interface": "PJSIP/op1001"},
        "QueuePause": {"Queue": "information", "Interface": "PJSIP/op1001", "Paused": "true"},
        "QueueRemove": {"Queue": "information", "Interface": "PJSIP/op1001"},
        # Accepted (then fails for want of the endpoint): permission is checked first.
        "Originate": {"Channel": "PJSIP/nobody", "Application": "Wait", "Data": "1"},
        # system: PJSIP learns an admin's new registering phone only at a reload. The class
        # also lets the user read configuration files (GetConfig): see manager.conf.
        "Reload": {"Module": "res_pjsip.so"},
        "GetConfig": {"Filename": "manager.conf"},
        # call: an operator's transfers and conferences (and with it Setvar, which the line
        # does not use: see manager.conf).
        "BlindTransfer": {"Channel": "PJSIP/nobody-0", "Exten": "1", "Context": "x"},
        "Atxfer": {"Channel": "PJSIP/nobody-0", "Exten": "1", "Context": "x"},
        "Redirect": {"Channel": "PJSIP/nobody-0", "Exten": "1", "Context": "x", "Priority": "1"},
        "PlayDTMF": {"Channel": "PJSIP/nobody-0", "Digit": "1", "Receive": "yes"},
    }
    for action, headers in allowed.items():
        response = await ami.action(action, **headers)
        assert response.get("Message") != "Permission denied", (action, response)
    for action, headers in {
        "Command": {"Command": "core show version"},
        "UpdateConfig": {"SrcFilename": "manager.conf", "DstFilename": "manager.conf"},
    }.items():
        response = await ami.action(action, **headers)
        assert response.get("Message") == "Permission denied", (action, response)
    assert "Timestamp" in await ami.wait_for(lambda m: "Event" in m and "Timestamp" in m)


@pytest.mark.e2e
async def test_burst_of_calls_is_answered_by_operators_logged_in_over_ami(
    lab: Lab, ami: RawAmi
) -> None:
    """40 calls at 20 calls/s, each answered by its own operator (logged in with AMI QueueAdd,
    as the line does). Call setup must not stall: this is what the rootfs /etc/hosts entry,
    direct_media=no and the RTP range are for."""
    operators = operator_names(SETTINGS.lab_operators)
    for name in operators:
        response = await ami.action("QueueAdd", Queue="security", Interface=f"PJSIP/{name}")
        assert response["Response"] == "Success", response
    start = len(ami.messages)
    ivr = ivr_setting({"IVR_QUEUE": "security", "IVR_OUTCOME": "chosen"})
    try:
        async with agi_server(ivr), sipp.operator(SETTINGS.lab_operator_sip_port) as operator:
            burst = sipp.caller(
                SETTINGS.sip_host, SETTINGS.sip_port, calls=len(operators), rate=20, talk_seconds=4
            )
            async with burst:
                result = await burst.wait()
            answered = await operator.stop()
    finally:
        for name in operators:
            await ami.action("QueueRemove", Queue="security", Interface=f"PJSIP/{name}")
    assert result.ok and result.successful == len(operators), result
    assert answered.successful == len(operators), answered
    connects = [m for m in ami.messages[start:] if is_event("AgentConnect", Queue="security")(m)]
    assert len(connects) == len(operators)
    assert {m["Interface"] for m in connects} == {f"PJSIP/{name}" for name in operators}
    assert max(int(m["HoldTime"]) for m in connects) <= 1


@pytest.mark.e2e
async def test_reload_queues_keeps_logged_in_operators(lab: Lab, login: Login) -> None:
    await login("op1001", "javanese")
    await asyncio.to_thread(lab.reload_queues)
    assert "PJSIP/op1001" in await lab.acli("queue show javanese")


def write_silence(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(rate * seconds))


@pytest.mark.e2e
async def test_prompts_install_and_play(
    lab: Lab, tmp_path: Path, ami: RawAmi, login: Login
) -> None:
    """A prompt copied by install_prompts plays as siaga112/<name> (STREAM FILE finds it)."""
    write_silence(tmp_path / "uji.wav", 0.1)
    assert lab.site.install_prompts(tmp_path) == ["uji"]
    await login("op1001", "emergency-general")
    replies: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_agi_env(reader)
        replies.append(await agi_command(reader, writer, 'STREAM FILE siaga112/uji ""'))
        replies.append(await agi_command(reader, writer, 'STREAM FILE siaga112/missing ""'))
        await agi_command(reader, writer, "SET VARIABLE IVR_OUTCOME direct")
        writer.close()

    async with agi_server(handle):
        result, _, _ = await answered_call(ami, talk=1)
    assert result.ok, result
    assert replies[0].startswith("200 result=0 endpos=")
    assert replies[0] != "200 result=0 endpos=0"
    assert replies[1] == "200 result=-1 endpos=0"  # file not found


@pytest.mark.e2e
async def test_caller_dtmf_reaches_the_ivr(lab: Lab, tmp_path: Path, login: Login) -> None:
    """RFC 4733 digits from the carrier reach GET DATA, a repeated digit included."""
    write_silence(tmp_path / "sunyi.wav", 0.1)
    lab.site.install_prompts(tmp_path)
    await login("op1001", "emergency-general")
    replies: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_agi_env(reader)
        # As the line's server does: past the first-command deadline GET DATA will still run.
        await agi_command(reader, writer, "GOSUB siaga112-agi-alive s 1")
        replies.append(await agi_command(reader, writer, "GET DATA siaga112/sunyi 3000 3"))
        await agi_command(reader, writer, "SET VARIABLE IVR_OUTCOME chosen")
        writer.close()

    async with agi_server(handle), sipp.operator(SETTINGS.lab_operator_sip_port, talk_seconds=1):
        call = sipp.caller(
            SETTINGS.sip_host, SETTINGS.sip_port, dtmf="121", dtmf_delay=1.0, dtmf_gap=0.5
        )
        async with call:
            result = await call.wait()
    assert result.ok, result
    assert replies == ["200 result=121"]


def test_install_prompts_refuses_what_asterisk_cannot_play(tmp_path: Path) -> None:
    lab = Lab(SETTINGS)
    source = tmp_path / "src"
    source.mkdir()
    write_silence(source / "salam.wav", 0.02, rate=16000)
    lab.host_dir = tmp_path / "instance"  # keep the real rootfs out of this test
    with pytest.raises(AsteriskSiteError, match="8000 Hz"):
        lab.site.install_prompts(source)


def test_templates_reject_injection_and_unknown_placeholders() -> None:
    assert render_template("port=@{port} ${EXTEN} a@b", {"port": 5060}) == (
        "port=5060 ${EXTEN} a@b"
    )
    with pytest.raises(AsteriskSiteError, match="contains"):
        render_template("secret=@{secret}", {"secret": "x\n[evil]"})
    with pytest.raises(AsteriskSiteError, match="contains"):
        render_template("secret=@{secret}", {"secret": "x;comment"})
    with pytest.raises(AsteriskSiteError, match="needs a value"):
        render_template("@{missing}", {})


def test_every_template_renders_with_the_lab_values() -> None:
    lab = Lab(SETTINGS)
    values = template_values(SETTINGS, lab.instance_dir)
    for template in sorted(lab.conf_dir.glob("*.conf")):
        rendered = render_template(template.read_text(), values)
        assert "@{" not in rendered, template.name
    phones = f"127.0.0.1:{SETTINGS.lab_operator_sip_port}"
    assert f"contact = sip:op1004@{phones}" in lab.operators_conf()
