"""The packets since the last video keyframe: what a new viewer needs to show a picture at once."""

from __future__ import annotations

from gateway.media.packet import Packet

__all__ = ["GopCache"]


class GopCache:
    """Keeps the current GOP (keyframe first, audio included), up to ``max_bytes``.

    A GOP larger than the limit is dropped whole and caching resumes at the next keyframe.
    Not thread-safe: its owner serialises access.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._packets: list[Packet] = []
        self._bytes = 0
        self._open = False

    def add(self, packet: Packet) -> None:
        if packet.starts_gop:
            self._packets = [packet]
            self._bytes = len(packet.data)
            self._open = True
            return
        if not self._open:
            return
        self._bytes += len(packet.data)
        if self._bytes > self.max_bytes:
            self.clear()
            return
        self._packets.append(packet)

    def packets(self) -> list[Packet]:
        """A copy of the cached GOP, keyframe first (empty if none is cached)."""
        return list(self._packets)

    def clear(self) -> None:
        self._packets = []
        self._bytes = 0
        self._open = False
