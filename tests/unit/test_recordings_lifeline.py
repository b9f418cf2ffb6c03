"""The transcoding child as it starts: its check that the worker that spawned it still lives,
and its session's place behind Asterisk and the line for the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recordings import audio
from recordings.audio import AUTOGROUP, AUTOGROUP_NICE, worker_gone, yield_the_session


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()[0]


def test_run_by_hand_there_is_no_worker_to_outlive() -> None:
    assert not worker_gone("")
    assert not worker_gone("not-a-pid")


def test_a_worker_that_is_still_our_parent_lives() -> None:
    assert not worker_gone(str(os.getppid()))


def test_a_live_worker_behind_a_wrapper_that_forks_lives() -> None:
    # Not our parent (a shell stands between), but running: us, here.
    assert not worker_gone(str(os.getpid()))


def test_a_killed_worker_nobody_has_reaped_yet_is_gone() -> None:
    """The hole bench/faults.py's scenario 6 fell into: signal 0 still reaches a zombie."""
    with subprocess.Popen(["true"]) as zombie:
        deadline = time.monotonic() + 5
        while _state(zombie.pid) != "Z":  # exits at once; we do not reap it until we are done
            assert time.monotonic() < deadline, "true did not exit"
            os.sched_yield()
        os.kill(zombie.pid, 0)  # a zombie still answers signal 0
        assert worker_gone(str(zombie.pid))


def test_a_worker_that_was_reaped_is_gone() -> None:
    with subprocess.Popen(["true"]) as reaped:
        pass  # the context manager waits for it
    assert worker_gone(str(reaped.pid))


def test_the_session_asks_for_the_lowest_autogroup_nice(tmp_path: Path) -> None:
    autogroup = tmp_path / "autogroup"
    yield_the_session(autogroup)
    assert autogroup.read_text() == f"{AUTOGROUP_NICE}\n"


def test_a_kernel_without_autogroup_changes_nothing(tmp_path: Path) -> None:
    yield_the_session(tmp_path / "absent" / "autogroup")  # no error, nothing written
    assert not (tmp_path / "absent").exists()


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="this kernel has no autogroup")
def test_a_child_in_a_session_of_its_own_takes_the_lowest_rank() -> None:
    """As the worker starts the child (start_new_session): the kernel takes the value."""
    ours = AUTOGROUP.read_text()
    code = ("from recordings.audio import AUTOGROUP, yield_the_session; "
            "yield_the_session(); print(AUTOGROUP.read_text())")
    shown = subprocess.run([sys.executable, "-c", code], start_new_session=True, check=True,
                           capture_output=True, text=True, timeout=30).stdout
    assert shown.split()[-2:] == ["nice", str(AUTOGROUP_NICE)]
    assert AUTOGROUP.read_text() == ours  # the session that started it keeps its rank


def test_the_child_takes_its_rank_before_it_works(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    steps: list[str] = []
    # Not this test process's handlers nor its alarm.
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setattr(signal, "alarm", lambda _: 0)
    monkeypatch.setattr(audio, "die_with_parent", lambda: steps.append("lifeline"))
    monkeypatch.setattr(audio, "yield_the_session", lambda: steps.append("rank"))

    def process(*_: object) -> None:
        steps.append("work")
        raise audio.BadAudio("not audio")

    monkeypatch.setattr(audio, "process", process)
    assert audio.main(["in.wav", "out.opus", "opus", "5"]) == audio.EXIT_BAD_AUDIO
    assert steps == ["lifeline", "rank", "work"]
    assert "not audio" in capsys.readouterr().out
