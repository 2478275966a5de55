"""Camera sources: pull one camera and hand out its tracks and raw packets; the pull loop.

A source is opened once per connection attempt; :func:`open_source` picks the implementation from
the URL scheme. The simulated source is an ordinary source, selected by ``sim://``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from gateway.source.errors import SourceError

if TYPE_CHECKING:
    from gateway.config import CameraConfig
    from gateway.media.normalize import RawPacket
    from gateway.media.packet import Track
    from gateway.source.tls import TlsPolicy

__all__ = ["Source", "SourceError", "camera_tls_policy", "open_source"]


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

    return RtspSource(
        camera.source_url(), camera_id=camera.id, audio=camera.audio, tls=camera_tls_policy(camera)
    )


def camera_tls_policy(camera: CameraConfig) -> TlsPolicy:
    """How an ``rtsps://`` camera is checked: its ``tls`` section, or the system CAs.

    The same policy applies to ``url`` and ``forward_url``: both are streams of one device.
    """
    from gateway.source.tls import TlsPolicy

    tls = camera.tls
    if tls is None:
        return TlsPolicy()
    if tls.insecure:
        return TlsPolicy(verify=False)
    ca_file = str(tls.ca_file) if tls.ca_file is not None else None
    return TlsPolicy(ca_file=ca_file, pins=tuple(tls.pin_sha256))
