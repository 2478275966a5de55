"""The RTMP simple handshake, client side: C0+C1 out, S0+S1+S2 in, C2 (S1 echoed) out.

What FFmpeg, nginx-rtmp and MediaMTX accept. S2 is not checked against C1: servers that speak
the complex handshake do not echo it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from gateway.push.error import PushError

__all__ = ["SIZE", "Handshake"]

SIZE = 1536
"""Bytes of C1, S1, C2 and S2."""
VERSION = 3


class Handshake:
    """One client handshake; ``random`` gives C1's random bytes."""

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._buffer = bytearray()
        self.done = False

    def start(self) -> bytes:
        """C0 and C1: version, a zero time and zero field, then random bytes."""
        return bytes((VERSION,)) + bytes(8) + self._random(SIZE - 8)

    def receive(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Feed the server's bytes; once S0, S1 and S2 are in, C2 and whatever came after
        them (the first chunks). :class:`PushError` if S0 is not RTMP version 3."""
        self._buffer += data
        if self._buffer and self._buffer[0] != VERSION:
            raise PushError(f"not an RTMP server (handshake version {self._buffer[0]})")
        if len(self._buffer) < 1 + 2 * SIZE:
            return None
        self.done = True
        s1 = bytes(self._buffer[1 : 1 + SIZE])
        rest = bytes(self._buffer[1 + 2 * SIZE :])
        self._buffer.clear()
        return s1, rest
