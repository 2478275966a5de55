"""``sim://`` cameras: a synthetic H.264 test pattern with a running clock, paced in real time.

Settings are in the URL (see :mod:`gateway.config.simurl`). The picture is encoded here with
PyAV's libx264 and then travels the same path as a real camera's packets.
"""

from __future__ import annotations

import io
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction

import av
from av.container import OutputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream

from gateway.config.simurl import parse_sim_url
from gateway.media.normalize import RawPacket
from gateway.media.packet import Track, track_from_stream
from gateway.source.errors import SourceError
from gateway.source.pattern import PatternGenerator

__all__ = ["SimSource"]


class SimSource:
    """Encodes the pattern on the fly; each :meth:`read` waits until the next frame is due."""

    def __init__(self, url: str, *, camera_id: str) -> None:
        self._settings = parse_sim_url(url)
        self._camera_id = camera_id
        self._hue = zlib.crc32(camera_id.encode()) % 7
        self._holder: OutputContainer | None = None
        self._encoder: VideoCodecContext | None = None
        self._pattern: PatternGenerator | None = None
        self._pending: list[RawPacket] = []
        self._frame = 0
        self._started = 0.0

    def open(self) -> tuple[Track, ...]:
        s = self._settings
        holder = av.open(io.BytesIO(), "w", format="nut")
        stream: VideoStream = holder.add_stream("libx264", rate=s["fps"])
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = s["width"], s["height"], "yuv420p"
        ctx.time_base = Fraction(1, s["fps"])
        ctx.gop_size = s["fps"] * s["gop"]
        ctx.bit_rate = s["bitrate"] * 1000
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0"}
        try:
            holder.start_encoding()
        except av.error.FFmpegError as exc:
            raise SourceError(f"simulated camera cannot encode: {exc.strerror}") from None
        self._holder, self._encoder = holder, ctx
        self._pattern = PatternGenerator(s["width"], s["height"], hue=self._hue)
        self._frame = 0
        self._started = time.monotonic()
        track = track_from_stream(0, stream)
        return (replace(track, time_base=Fraction(ctx.time_base)),)

    def read(self) -> RawPacket:
        if self._encoder is None or self._pattern is None:
            raise SourceError("not connected")
        while not self._pending:
            self._pending.extend(self._encode_next())
        return self._pending.pop(0)

    def _encode_next(self) -> list[RawPacket]:
        assert self._encoder is not None and self._pattern is not None  # noqa: S101 - for mypy: read() checked
        fps = self._settings["fps"]
        due = self._started + self._frame / fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = datetime.now(UTC)
        picture = self._pattern.draw(self._frame / fps, now.strftime("%H:%M:%S"))
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = self._frame
        frame.time_base = self._encoder.time_base
        self._frame += 1
        received = time.monotonic()
        return [
            RawPacket(
                track=0,
                data=bytes(p),
                pts=p.pts,
                dts=p.dts,
                duration=p.duration or 1,
                keyframe=p.is_keyframe,
                received=received,
            )
            for p in self._encoder.encode(frame)
        ]

    def close(self) -> None:
        self._encoder = None
        self._pending.clear()
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.close()
