"""The recordings worker in a process of its own, so a test can SIGKILL it mid-job, and an
ffmpeg that encodes in real time, so the job lasts as long as the recording.

``python -m tests.support.recording_worker CONFIG`` runs :meth:`RecordingWorker.run` until
killed; CONFIG is the JSON that :func:`worker_argv` writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
from dataclasses import asdict, replace
from pathlib import Path

from recordings.worker import RecordingsConfig, RecordingWorker
from telephony.db.connection import Database
from telephony.settings import load_settings


def realtime_ffmpeg(directory: Path) -> Path:
    """A directory whose ``ffmpeg`` reads its input in real time (``-re``) and notes its pid in
    ``ffmpeg.pids`` there: put first in PATH, it makes every transcode as slow as the call."""
    directory.mkdir(parents=True, exist_ok=True)
    real = shutil.which("ffmpeg")
    assert real is not None, "ffmpeg is needed"
    shim = directory / "ffmpeg"
    shim.write_text(f'#!/bin/sh\necho $$ >> "{directory}/ffmpeg.pids"\nexec "{real}" -re "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return directory


def ffmpeg_pids(directory: Path) -> list[int]:
    """The pids the shim of :func:`realtime_ffmpeg` started, oldest first."""
    pids = directory / "ffmpeg.pids"
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


def with_path_first(config: RecordingsConfig, directory: Path) -> RecordingsConfig:
    """``config`` whose transcoder finds its ffmpeg in ``directory`` first (``env`` execs it:
    the worker is still the child's parent)."""
    path = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"
    return replace(config, transcoder=("env", f"PATH={path}", sys.executable, "-m",
                                       "recordings.audio"))


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, pgrp, ...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _processes() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children_of(pid: int) -> list[int]:
    """The running processes whose parent is ``pid`` (what bench/faults.py watches in serve)."""
    return [child for child in _processes()
            if (fields := _stat_fields(child)) and fields[0] != "Z" and int(fields[1]) == pid]


def group_members(pgid: int) -> list[int]:
    """The running processes of process group ``pgid`` (a transcoder and its ffmpeg)."""
    return [member for member in _processes()
            if (fields := _stat_fields(member)) and fields[0] != "Z" and int(fields[2]) == pgid]


def worker_argv(config: RecordingsConfig, dsn: str, path: Path) -> list[str]:
    """The command that runs a worker with ``config`` on database ``dsn`` (written to
    ``path``)."""
    fields = {key: str(value) if isinstance(value, Path) else value
              for key, value in asdict(config).items()}
    path.write_text(json.dumps({"dsn": dsn, "config": fields}))
    return [sys.executable, "-m", "tests.support.recording_worker", str(path)]


async def _run(path: Path) -> None:
    written = json.loads(path.read_text())
    fields = written["config"]
    for key in ("incoming_dir", "storage_dir", "quarantine_dir"):
        fields[key] = Path(fields[key])
    fields["transcoder"] = tuple(fields["transcoder"])
    config = RecordingsConfig(**fields)
    database = Database(replace(load_settings(environ={}), database_dsn=written["dsn"]))
    try:
        await RecordingWorker(database, config).run()
    finally:
        await database.close()


if __name__ == "__main__":
    asyncio.run(_run(Path(sys.argv[1])))
