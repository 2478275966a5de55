"""Packets and tracks as they travel from a source to its consumers.

A :class:`Packet` is immutable and owns its bytes, so one packet can be handed to several consumer
threads at once. A :class:`Track` carries the codec parameters of one elementary stream in a form
any consumer can copy into its own output container (stream copy, never a decode).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import av
from av.container import OutputContainer
from av.stream import Stream

from gateway.media.codec import Codec, codec_of

__all__ = ["Packet", "SessionInfo", "Track", "TrackKind", "track_from_stream"]

TrackKind = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class Packet:
    """One access unit of one track, with repaired timestamps (dts strictly increasing)."""

    track: int
    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction
    keyframe: bool
    is_video: bool
    received: float
    """``time.monotonic()`` when the source received it."""
    tick: float = 0.0
    """Seconds per time-base unit, as a float (0: compute it from ``time_base``). Hot paths use
    it instead of exact ``Fraction`` arithmetic, which costs microseconds per packet."""
    continuation: bool = False
    """More of the previous packet's picture (same timestamps), split apart by the camera.

    Sent on at once rather than held back to be joined (that would delay every frame by one
    frame interval); consumers that need whole access units join it with
    :class:`~gateway.media.normalize.AccessUnitJoiner`.
    """

    @property
    def starts_gop(self) -> bool:
        """A video keyframe that begins a picture: where a consumer may start or resume."""
        return self.is_video and self.keyframe and not self.continuation

    @property
    def scale(self) -> float:
        """Seconds per time-base unit."""
        return self.tick or float(self.time_base)

    @property
    def seconds(self) -> float:
        """Decode time in seconds since the start of the session."""
        return self.dts * self.scale

    @property
    def end_seconds(self) -> float:
        """When the packet stops being shown, in seconds since the start of the session."""
        return (self.pts + self.duration) * self.scale


@dataclass(frozen=True, slots=True)
class Track:
    """Codec parameters of one elementary stream, ready to be copied into an output."""

    index: int
    kind: TrackKind
    codec: Codec
    time_base: Fraction
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    extradata: bytes | None = field(default=None, repr=False)
    """Codec setup: Annex B parameter sets (H.264/H.265 from cameras), AudioSpecificConfig (AAC)."""
    ffmpeg_codec: str = ""
    """FFmpeg's name of the codec when ``codec`` is ``unknown`` (a codec the daemon does not
    treat by name); empty otherwise. See :attr:`codec_name`."""
    template: Stream | None = field(default=None, repr=False, compare=False)
    _holder: OutputContainer | None = field(default=None, repr=False, compare=False)

    @property
    def codec_name(self) -> str:
        """FFmpeg's name of the codec, for its muxers and in messages: ``codec``, or what FFmpeg
        calls a codec that is ``unknown`` here (an AMR camera's audio is still recorded)."""
        return self.ffmpeg_codec or self.codec

    def add_to(self, output: OutputContainer) -> Stream:
        """Create the matching stream-copy stream in ``output``."""
        if self.template is None:
            raise ValueError(f"track {self.index} ({self.codec_name}) has no codec parameters")
        stream = output.add_stream_from_template(self.template)
        stream.time_base = self.time_base
        return stream

    def describe(self) -> str:
        if self.kind == "video":
            return f"{self.codec_name} {self.width}x{self.height}"
        return f"{self.codec_name} {self.sample_rate} Hz"


def track_from_stream(index: int, stream: Stream) -> Track:
    """Copy the codec parameters of a demuxed or encoder stream into a self-owned :class:`Track`.

    The parameters are copied into a small never-written container so that the track stays valid
    after the source container is closed.
    """
    holder = av.open(io.BytesIO(), "w", format="nut")
    template = holder.add_stream_from_template(stream)
    ctx = stream.codec_context
    kind: TrackKind = "video" if stream.type == "video" else "audio"
    time_base = stream.time_base or Fraction(1, 90000)
    name = ctx.codec.canonical_name if ctx is not None else "unknown"
    codec = codec_of(name)
    return Track(
        index=index,
        kind=kind,
        codec=codec,
        time_base=Fraction(time_base),
        width=int(getattr(ctx, "width", 0) or 0),
        height=int(getattr(ctx, "height", 0) or 0),
        sample_rate=int(getattr(ctx, "sample_rate", 0) or 0),
        channels=int(getattr(ctx, "channels", 0) or 0),
        extradata=bytes(ctx.extradata) if ctx is not None and ctx.extradata else None,
        ffmpeg_codec=name if codec == "unknown" else "",
        template=template,
        _holder=holder,
    )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One uninterrupted connection to a camera: what consumers need to open their outputs."""

    camera_id: str
    session: int
    """Counts connections of this camera since the daemon started."""
    tracks: tuple[Track, ...]

    @property
    def video(self) -> Track | None:
        return next((t for t in self.tracks if t.kind == "video"), None)
