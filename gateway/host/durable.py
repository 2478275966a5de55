"""Writing files so that they survive a crash or a power cut: whole writes, synced data, synced
folder entries. One place for the journals, the keys, the holds, packages and recovery."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "write_all", "write_new"]


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (``os.write`` may take fewer), or raise the OS error."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (refused if it exists or is a link) with ``mode`` whatever the umask,
    write ``data`` and sync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a file created, renamed or removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
