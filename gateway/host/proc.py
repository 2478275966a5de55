"""What /proc and pidfds tell about a process: whether it ended, its CPU time, its resident
memory."""

from __future__ import annotations

import os
import select

__all__ = ["CLOCK_TICKS", "cpu_ticks", "exited", "resident_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second, the unit of :func:`cpu_ticks`."""


def exited(pidfd: int) -> bool:
    """The process behind ``pidfd`` has ended (a pidfd polls readable then)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of ``pid`` in clock ticks (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0
