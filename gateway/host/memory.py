"""Keeping the daemon's resident memory close to what it uses.

Many threads allocating and freeing packet-sized buffers make glibc's allocator keep one arena
per thread and hold freed pages. Two arenas are plenty here, and freed pages are handed back to
the system once a minute.
"""

from __future__ import annotations

from gateway.host.libc import libc as load_libc

__all__ = ["limit_arenas", "trim"]

_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024
"""Buffers above this (keyframes, mostly) are mapped and unmapped on their own. Left to glibc,
the threshold grows after the first large free and keyframe-sized holes fragment the heap."""


def limit_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas and fix the mmap threshold; call before starting threads."""
    libc = load_libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, count)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim() -> None:
    """Return freed heap pages to the system."""
    libc = load_libc()
    if libc is not None:
        libc.malloc_trim(0)
