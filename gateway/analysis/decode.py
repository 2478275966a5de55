"""Decoding of one keyframe packet into a small grey (and optionally colour) picture.

The analyser looks at keyframes only: a keyframe decodes alone (given the stream's parameter
sets, from the track's extradata or in band in the packet), costs one picture's decode every few
seconds instead of 25 a second, and needs no reference pictures kept between calls. A
non-keyframe is refused before it reaches FFmpeg.

Each call is bounded: the packet size is capped (:data:`MAX_PACKET`), FFmpeg refuses a picture
over ``max_pixels`` before allocating it, the decoder runs on one thread, and FFmpeg's error
detection is strict so that a damaged packet is an error rather than a half-grey picture; the
deblocking filter is skipped (it smooths 8-pixel block edges that the downscale to 320 pixels
averages away anyway, and costs an eighth of the decode: no verdict of the labelled set changed).
The
decoder context is reused from one keyframe to the next (it is flushed after each), and thrown
away for a fresh one after any failure.
"""

from __future__ import annotations

import contextlib
from typing import Final

import av
import av.error
import numpy as np
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from gateway.analysis.errors import DecodeError
from gateway.analysis.frame import ANALYSIS_WIDTH, Frame, analysis_size
from gateway.media.packet import Packet, Track

__all__ = ["DECODABLE", "MAX_PACKET", "MAX_PIXELS", "KeyframeDecoder"]

DECODABLE: Final = frozenset({"h264", "hevc"})
"""FFmpeg names of the codecs whose keyframes are analysed."""

MAX_PACKET: Final = 16 * 1024 * 1024
"""Largest keyframe accepted, in bytes: a 4K camera's keyframe is a few MB at most."""

MAX_PIXELS: Final = 3840 * 2160
"""Largest picture decoded (4K UHD): FFmpeg refuses a bigger one before allocating it."""


class KeyframeDecoder:
    """Decodes keyframe packets of one video track into :class:`Frame` pictures.

    ``codec`` is FFmpeg's name (``h264`` or ``hevc``); ``extradata`` the track's parameter sets
    (Annex B or avcC/hvcC), or ``None`` when the camera sends them in band before each keyframe.
    ``width`` is the analysed picture's width, ``colour`` whether a colour copy is kept.
    Not thread-safe: one decoder per camera, used from one thread.
    """

    def __init__(
        self,
        codec: str,
        extradata: bytes | None = None,
        *,
        width: int = ANALYSIS_WIDTH,
        colour: bool = False,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        if codec not in DECODABLE:
            raise DecodeError(f"cannot analyse {codec or 'unknown'} video (only H.264 and H.265)")
        self.codec = codec
        self.extradata = extradata or None
        self.width = width
        self.colour = colour
        self.max_pixels = max_pixels
        self._context: VideoCodecContext | None = None
        self.decoded = 0
        """Keyframes decoded since the decoder was made."""

    @classmethod
    def for_track(
        cls, track: Track, *, width: int = ANALYSIS_WIDTH, colour: bool = False
    ) -> KeyframeDecoder:
        """A decoder for a video :class:`~gateway.media.packet.Track` of the fan-out."""
        if track.kind != "video":
            raise DecodeError(f"track {track.index} is {track.kind}, not video")
        return cls(track.codec_name, track.extradata, width=width, colour=colour)

    def decode(self, packet: Packet) -> Frame:
        """The picture of one keyframe packet; :class:`DecodeError` for anything else."""
        if not packet.is_video:
            raise DecodeError(f"packet of track {packet.track} is not video")
        if not packet.keyframe or packet.continuation:
            raise DecodeError("not a keyframe: only keyframes are decoded for analysis")
        return self.decode_bytes(packet.data)

    def decode_bytes(self, data: bytes) -> Frame:
        """The picture of one keyframe's bytes (one access unit, as the camera sent it)."""
        if not data:
            raise DecodeError("empty keyframe packet")
        if len(data) > MAX_PACKET:
            raise DecodeError(f"keyframe of {len(data)} bytes is over the {MAX_PACKET} cap")
        context = self._context or self._open()
        try:
            frames = context.decode(av.Packet(data))
            if not frames:
                frames = context.decode(None)
            context.flush_buffers()
        except av.error.FFmpegError as exc:
            self.close()
            raise DecodeError(f"corrupt {self.codec} keyframe: {exc.strerror}") from exc
        if not frames:
            self.close()
            raise DecodeError(f"{self.codec} keyframe of {len(data)} bytes gave no picture")
        picture = frames[0]
        if not isinstance(picture, VideoFrame) or picture.is_corrupt:
            self.close()
            raise DecodeError(f"{self.codec} keyframe decoded with errors (damaged packet)")
        self.decoded += 1
        return self._small(picture)

    def close(self) -> None:
        """Drop the decoder context (a fresh one is opened by the next call)."""
        context, self._context = self._context, None
        if context is not None:
            with contextlib.suppress(av.error.FFmpegError, AttributeError):  # older PyAV
                getattr(context, "close", lambda: None)()

    def _open(self) -> VideoCodecContext:
        try:
            context = CodecContext.create(self.codec, "r")
        except (av.error.FFmpegError, ValueError) as exc:
            raise DecodeError(f"no {self.codec} decoder in this FFmpeg") from exc
        if not isinstance(context, VideoCodecContext):
            raise DecodeError(f"{self.codec} is not a video codec")
        if self.extradata:
            context.extradata = self.extradata
        context.thread_count = 1
        context.options = {
            "max_pixels": str(self.max_pixels),
            "err_detect": "explode",
            "skip_loop_filter": "all",
        }
        self._context = context
        return context

    def _small(self, picture: VideoFrame) -> Frame:
        try:
            out_w, out_h = analysis_size(picture.width, picture.height, self.width)
        except Exception as exc:
            raise DecodeError(f"unusable picture size {picture.width}x{picture.height}") from exc
        small = picture.reformat(
            width=out_w, height=out_h, format="gray", interpolation="AREA"
        ).to_ndarray()
        grey = np.ascontiguousarray(small, dtype=np.uint8)
        colour = None
        if self.colour:
            bgr = picture.reformat(width=out_w, height=out_h, format="bgr24").to_ndarray()
            colour = np.ascontiguousarray(bgr, dtype=np.uint8)
        return Frame(
            grey=grey,
            source_width=picture.width,
            source_height=picture.height,
            colour=colour,
        )
