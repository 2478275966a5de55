"""Camera sources: pull one camera and hand out its tracks and raw packets.

A source is opened once per connection attempt; :func:`open_source` picks the implementation from
the URL scheme. The simulated source is an ordinary source, selected by ``sim://``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from gateway.media.normalize import RawPacket
from gateway.media.packet import Track
from gateway.source.errors import SourceError

if TYPE_CHECKING:
    from gateway.config import CameraConfig

__all__ = ["Source", "SourceError", "open_source"]


class Source(Protocol):
    """One connection to one camera. Not thread-safe: the camera's thread owns it."""

    def open(self) -> tuple[Track, ...]:
        """Connect and return the tracks; raise :class:`SourceError` on failure."""
        ...

    def read(self) -> RawPacket:
        """Return the next packet; raise :class:`SourceError` on timeout, error or end."""
        ...

    def close(self) -> None: ...


def open_source(camera: CameraConfig) -> Source:
    """Build the source for a camera's URL scheme (not yet connected)."""
    scheme = camera.url.split("://", 1)[0].lower()
    if scheme == "sim":
        from gateway.source.sim import SimSource

        return SimSource(camera.url, camera_id=camera.id)
    from gateway.source.rtsp import RtspSource

    return RtspSource(camera.source_url(), camera_id=camera.id, audio=camera.audio)
