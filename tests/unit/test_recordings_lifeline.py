"""The transcoding child's check, as it starts, that the worker that spawned it still lives."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from recordings.audio import worker_gone


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
