"""The C library, loaded once, for the few kernel calls Python does not wrap."""

from __future__ import annotations

import ctypes
import functools

__all__ = ["libc"]


@functools.cache
def libc() -> ctypes.CDLL | None:
    """glibc with errno kept, or None where it cannot be loaded (the caller then does without)."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
