"""The demo: a real line on this machine, a few real calls, and what the database kept.

Starts the Asterisk lab, the embedded PostgreSQL and the line's services, logs three operator
phones (one sipp UAS) in by skill, places a handful of sipp calls through the IVR with RFC 4733
DTMF, waits until every call has ended in the database, and prints the call records and the
per-queue figures.

SIGINT (Ctrl-C) and SIGTERM stop it the same way, at any point: the sipp processes and the
lab's Asterisk run in sessions of their own (so a terminal's Ctrl-C reaches only us), and
only the unwinding of the demo stops them; SIGTERM's default action would skip that and leave
them running. The embedded PostgreSQL stays up, as after a finished demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ivr.menu import load_menu
from telephony.app import Line, running_line
from telephony.callpath import LineStartError
from telephony.calls.store import CallRecord, QueueFigures
from telephony.core.text import os_reason
from telephony.desks.operators import OperatorDesk
from telephony.lab.chroot import Lab
from telephony.lab.sipp import SippResult, caller, operator
from telephony.settings import Settings

# Operator phones and their skills (level 1-5); all are endpoints of the lab's sipp UAS.
DEMO_OPERATORS = {
    "PJSIP/op1001": {"general": 5, "medical": 4, "fire": 3},
    "PJSIP/op1002": {"general": 4, "security": 5, "disaster": 4, "javanese": 5},
    "PJSIP/op1003": {"general": 3, "medical": 5, "madurese": 5},
}


@dataclass(frozen=True)
class DemoCall:
    """One demo caller: number dialled, keys pressed, and how long they stay on the line."""

    label: str
    caller_id: str
    line: str
    dtmf: str
    stay_seconds: float


DEMO_CALLS = (
    DemoCall("darurat, lalu kebakaran", "081200000001", "112", "12", 10),
    DemoCall("informasi", "081200000002", "112", "3", 10),
    DemoCall("diam (tanpa tombol)", "081200000003", "112", "", 30),
    DemoCall("saluran 119", "081200000004", "119", "", 24),
    DemoCall("tombol salah dua kali", "081200000005", "112", "70", 24),
)


async def _place(settings: Settings, call: DemoCall, delay: float) -> SippResult:
    await asyncio.sleep(delay)  # stagger the callers a little, as real arrivals are
    async with caller(
        settings.sip_host, settings.sip_port, call.line, caller_id=call.caller_id,
        dtmf=call.dtmf, talk_seconds=call.stay_seconds, audio=True,
    ) as sipp:
        return await sipp.wait()


async def _wait_until_recorded(line: Line, since: datetime, count: int) -> list[CallRecord]:
    """Poll the database until ``count`` calls since ``since`` have ended (bounded)."""
    records: list[CallRecord] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = await line.database.run(
            lambda c: line.repository.call_records(c, since=since, limit=count * 2))
        if len([r for r in records if r.ended_at is not None]) >= count:
            break
        await asyncio.sleep(0.5)
    return records


def _print_records(records: list[CallRecord]) -> None:
    print(f"\nCatatan panggilan ({len(records)}):")
    print(f"  {'penelepon':13} {'sal':3} {'tombol':6} {'hasil IVR':9} {'antrean':17} {'pos':>3} "
          f"{'operator':13} {'tunggu':>6} {'bicara':>6} {'sif':6} {'akhir':12} sebab")
    for r in sorted(records, key=lambda r: r.caller_number):
        print(f"  {r.caller_number:13} {r.line or '-':3} {r.ivr_choice or '-':6} "
              f"{r.ivr_outcome or '-':9} {r.answered_queue or r.queue or '-':17} "
              f"{r.queue_position if r.queue_position is not None else '-':>3} "
              f"{r.operator or '-':13} {r.wait_seconds if r.wait_seconds is not None else '-':>6} "
              f"{r.talk_seconds if r.talk_seconds is not None else '-':>6} "
              f"{r.shift_name or '-':6} {r.disposition:12} {r.hangup_cause_text or '-'}")


def _print_queues(figures: list[QueueFigures]) -> None:
    print("\nPer antrean:")
    print(f"  {'antrean':17} {'masuk':>5} {'dijawab':>7} {'ditinggal':>9} {'rata tunggu':>11} "
          f"{'rata bicara':>11}")
    for q in figures:
        wait = f"{float(q.mean_wait):.1f} dtk" if q.mean_wait is not None else "-"
        talk = f"{float(q.mean_talk):.1f} dtk" if q.mean_talk is not None else "-"
        print(f"  {q.queue:17} {q.offered:>5} {q.answered:>7} {q.abandoned:>9} {wait:>11} "
              f"{talk:>11}")


async def run_demo(settings: Settings, *, keep_running: bool = False) -> int:
    """Run the demo; returns 0 when every call was placed and recorded, 128 + the signal's
    number when SIGINT or SIGTERM stopped it before it finished."""
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(signum: int) -> None:
        # One cancellation unwinds everything; a second signal must not cut that short.
        if not received:
            main.cancel()
        received.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await _run_demo(settings, keep_running=keep_running)
    except asyncio.CancelledError:
        if not received:
            raise
        print(f"\nDemo dihentikan ({signal.Signals(received[0]).name}).")
        return 128 + received[0]
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _refuse_while_a_line_runs(settings: Settings) -> None:
    """A demo left running (``--keep-running``) or ``siaga112 serve`` holds the line's FastAGI
    port, and its Asterisk is this lab instance: starting the lab restarted that Asterisk
    under it, then the new line failed on the port and stopped the lab, leaving the running
    demo's console without an Asterisk. Refused first, the lab untouched. (An Asterisk a
    killed demo left behind holds no FastAGI port, and the lab still restarts it.)"""
    family = socket.AF_INET6 if ":" in settings.agi_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.agi_host, settings.agi_port))
        except OSError as exc:
            raise LineStartError(
                f"FastAGI {settings.agi_host}:{settings.agi_port} sudah dipakai "
                f"({os_reason(exc)}): demo lain atau 'siaga112 serve' masih berjalan? "
                "Asterisk lab tidak disentuh; hentikan proses itu dulu (Ctrl-C), lalu ulangi."
            ) from exc


async def _run_demo(settings: Settings, *, keep_running: bool) -> int:
    _refuse_while_a_line_runs(settings)
    lab = Lab(settings)
    print("Menyalakan Asterisk lab ...")
    # A stop during the boot lets the boot finish (it is bounded), so the stop below finds
    # the Asterisk it started.
    starting = asyncio.ensure_future(asyncio.to_thread(lab.start))
    try:
        await asyncio.shield(starting)
        await asyncio.to_thread(lab.site.install_prompts, settings.prompts_dir)
        async with running_line(settings) as line, operator(
            settings.lab_operator_sip_port, audio=True
        ):
            async with asyncio.timeout(30):
                await line.listener.wait_ready()
            desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
            for interface, skills in DEMO_OPERATORS.items():
                queues = await desk.log_in(interface, skills)
                print(f"Operator {interface} masuk ke: {', '.join(queues)}")
            since = datetime.now(UTC)
            print(f"\nMenempatkan {len(DEMO_CALLS)} panggilan sipp:", flush=True)
            for call in DEMO_CALLS:
                print(f"  {call.caller_id} -> {call.line}: {call.label}"
                      f" (tombol: {call.dtmf or '-'})")
            results = await asyncio.gather(
                *(_place(settings, call, i * 0.5) for i, call in enumerate(DEMO_CALLS)))
            records = await _wait_until_recorded(line, since, len(DEMO_CALLS))
            _print_records(records)
            _print_queues(await line.database.run(
                lambda c: line.repository.queue_figures(c, since=since)))
            failed = [c.caller_id for c, r in zip(DEMO_CALLS, results, strict=True) if not r.ok]
            ended = [r for r in records if r.ended_at is not None]
            ok = not failed and len(ended) == len(DEMO_CALLS)
            print("\nDemo selesai: " + ("semua panggilan tercatat." if ok else
                  f"gagal: sipp {failed}, tercatat {len(ended)}/{len(DEMO_CALLS)}."))
            if keep_running:
                console = f"{line.web.url}/console/" if line.web.url else "tidak berjalan"
                print(f"Layanan tetap berjalan; konsol: {console} (akun dibuat dengan "
                      "'siaga112 account create'). Tekan Ctrl-C untuk berhenti.", flush=True)
                # Ctrl-C or SIGTERM is the way out of here, and not a failure.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
            return 0 if ok else 1
    finally:
        await asyncio.wait([starting])
        if not starting.cancelled():
            starting.exception()  # raised above when it matters; retrieved either way
        await asyncio.to_thread(lab.stop)
        print("Asterisk lab dihentikan.", flush=True)
