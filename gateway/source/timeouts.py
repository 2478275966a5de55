"""How long a camera may take, in one place that loads no media library (the supervisor's
liveness rules read them)."""

from __future__ import annotations

__all__ = ["OPEN_TIMEOUT", "READ_TIMEOUT"]

OPEN_TIMEOUT = 5.0
"""Seconds allowed for connect, DESCRIBE, SETUP, PLAY and probing (for ``rtsps://``, the same
again before, for the connection and the TLS handshake)."""
READ_TIMEOUT = 2.0
"""Seconds a read may wait for data. FFmpeg's RTSP client returns once more after the first
timeout (flushing what it held), so a silent camera is declared after at most twice this: 4 s."""
