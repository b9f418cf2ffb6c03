"""A real file system that fills up: a tiny tmpfs. Mounting needs root, as the lab itself does
(its Asterisk runs in a chroot), so a mount refused fails the test rather than skipping the
disk-full behaviour it proves."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size_kb: int = 64) -> Iterator[Path]:
    """``path`` as a tmpfs of ``size_kb`` KiB, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode:
        pytest.fail(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def read_only(mounted: Path) -> Iterator[Path]:
    """A mount of :func:`tiny_tmpfs` read-only (as a file system with errors is remounted by
    the kernel), writable again afterwards."""
    subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True,
                   capture_output=True)
    try:
        yield mounted
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mounted)], capture_output=True,
                       check=False)


def fill_up(directory: Path) -> Path:
    """Write a filler file into ``directory`` until its file system is full (ENOSPC); delete
    the file it returns to free the space again."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError:
                break
        # Any page left is taken byte by byte, so that even a tiny write fails.
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0"):
                pass
    finally:
        os.close(fd)
    return filler
