"""Stream copy into an output container: the one place packets become muxed output.

Used by the recorder (MP4 files). Timestamps are rebased so that the output starts at zero,
with every track rebased by the same instant (A/V stay aligned).
Tracks the container cannot take are skipped and listed in :attr:`Remuxer.skipped`.
"""

from __future__ import annotations

import functools

import av
from av.container import OutputContainer
from av.stream import Stream

from gateway.media.packet import Packet, Track

__all__ = ["Remuxer", "container_takes"]


@functools.cache
def _supported(format_name: str) -> frozenset[str]:
    # Listing the codecs a format takes walks every codec FFmpeg knows: once per format.
    import io

    probe = av.open(io.BytesIO(), "w", format=format_name)
    return frozenset(probe.supported_codecs)


def container_takes(container: OutputContainer, codec_name: str) -> bool:
    """Whether FFmpeg's muxer for ``container`` takes the codec FFmpeg calls ``codec_name``
    (:attr:`Track.codec_name`). For the recorder's MP4: the forwarder's RTSP and RTMP are
    written by hand and list what they carry themselves, in ``gateway.forward``."""
    return codec_name in _supported(container.format.name.split(",")[0])


class Remuxer:
    """Adds the tracks to ``container`` and writes packets into it, rebased to start at 0."""

    def __init__(
        self, container: OutputContainer, tracks: tuple[Track, ...], *, hevc_tag: str | None = None
    ) -> None:
        self.container = container
        self.skipped: list[Track] = []
        self._streams: dict[int, tuple[Stream, Track]] = {}
        self._base: dict[int, int] = {}
        self._base_seconds: float | None = None
        self.end_seconds = 0.0
        """End of the latest video packet written, in input seconds (audio if no video)."""
        self.frames = 0
        self._has_video = any(t.kind == "video" for t in tracks)
        for track in tracks:
            if not container_takes(container, track.codec_name):
                self.skipped.append(track)
                continue
            stream = track.add_to(container)
            if hevc_tag and track.codec == "hevc" and stream.codec_context is not None:
                stream.codec_context.codec_tag = hevc_tag
            self._streams[track.index] = (stream, track)

    @property
    def tracks(self) -> list[Track]:
        return [track for _, track in self._streams.values()]

    @property
    def duration(self) -> float:
        """Seconds of media written so far."""
        if self._base_seconds is None:
            return 0.0
        return self.end_seconds - self._base_seconds

    def write(self, packet: Packet, data: bytes | None = None) -> None:
        """Mux one packet (``data`` replaces its payload if given); FFmpeg errors propagate."""
        entry = self._streams.get(packet.track)
        if entry is None:
            return
        stream, track = entry
        if self._base_seconds is None:
            self._base_seconds = packet.seconds
        base = self._base.get(packet.track)
        if base is None:
            base = self._base[packet.track] = round(self._base_seconds / packet.time_base)
        out = av.Packet(packet.data if data is None else data)
        out.stream = stream
        out.time_base = packet.time_base
        out.dts = packet.dts - base
        out.pts = packet.pts - base
        out.duration = packet.duration
        out.is_keyframe = packet.keyframe
        self.container.mux(out)
        if track.kind == "video" or not self._has_video:
            self.frames += track.kind == "video"
            self.end_seconds = max(self.end_seconds, packet.end_seconds)
