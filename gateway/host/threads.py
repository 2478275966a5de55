"""Native names for the daemon's threads, so ``top -H``, ``ps -L`` and profilers tell them apart."""

from __future__ import annotations

import ctypes
import threading

from gateway.host.libc import libc as load_libc

__all__ = ["name_native_thread", "name_process"]

_PR_SET_NAME = 15


def name_native_thread() -> None:
    """Give the calling OS thread its Python name (the kernel keeps 15 bytes)."""
    libc = load_libc()
    if libc is None:
        return
    name = threading.current_thread().name.encode()[:15]
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def name_process(name: str) -> None:
    """Name the calling process (``ps -o comm``, ``top``): a camera's worker reads as its camera."""
    libc = load_libc()
    if libc is None:
        return
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
