"""Who holds a recording job: the claiming process, by host, pid and start time (Linux /proc).

A job's lease bounds how long a dead worker can hold it; the holder lets a worker on the same
host see at once that the holder is gone and take the job over without waiting for the lease.
The host is the host name with the kernel's boot id and our pid namespace, so two machines that
share a name, one machine after a reboot, or two containers that share the host's name (host
networking) but not its pids, are never mistaken for each other; the start time (clock ticks
after boot) tells a live process from a newer one that reuses a dead one's pid.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Holder:
    """A process that may claim jobs."""

    host: str
    pid: int
    started: int | None  # None where /proc cannot tell


def this_host() -> str:
    """``<host name>/<boot id>/<pid namespace>``: the pids this process can see, since boot."""
    try:
        boot = _BOOT_ID.read_text().strip()
        namespace = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        boot, namespace = "unknown-boot", "unknown-ns"
    return f"{socket.gethostname()}/{boot}/{namespace}"


def process_started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields are counted after its last ')'.
    # Field 22 (starttime) is the 20th after it; a zombie is dead however long it lingers.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def this_process() -> Holder:
    """The holder this process claims jobs as."""
    pid = os.getpid()
    return Holder(this_host(), pid, process_started(pid))
