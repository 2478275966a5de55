"""Limits on FFmpeg itself, set once per camera worker.

FFmpeg sizes some buffers from what the peer announces: an RTSP reply's ``Content-Length`` is
allocated whole (1.5 GB when a camera says so), and an H.264 FU-A fragment run that never ends
grows one packet without bound. ``av_max_alloc`` caps every single allocation FFmpeg makes; a
larger one fails with ENOMEM, which ends the camera's session with an error instead of taking
the box's memory.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

__all__ = ["MAX_ALLOCATION", "limit_allocations"]

log = logging.getLogger(__name__)

MAX_ALLOCATION = 64 * 1024 * 1024
"""Largest single FFmpeg allocation. A 4K keyframe is a few MB, and FFmpeg's own buffers are
far smaller; 64 MiB leaves a wide margin for any real stream."""


def limit_allocations(max_bytes: int = MAX_ALLOCATION) -> bool:
    """Apply ``av_max_alloc`` to the libavutil PyAV loaded; False (logged) if not found."""
    import av  # noqa: F401  (loads libavutil)

    path = _loaded("libavutil")
    if path is None:
        log.warning("libavutil not found in this process: FFmpeg allocations are not capped")
        return False
    try:
        lib = ctypes.CDLL(path)
        lib.av_max_alloc.argtypes = [ctypes.c_size_t]
        lib.av_max_alloc.restype = None
        lib.av_max_alloc(max_bytes)
    except (OSError, AttributeError) as exc:
        log.warning("cannot cap FFmpeg allocations (%s)", exc)
        return False
    return True


def _loaded(prefix: str) -> str | None:
    """Path of a shared library mapped into this process whose file name starts with prefix."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rpartition(" ")[2]
        if path.startswith("/") and Path(path).name.startswith(prefix):
            return path
    return None
