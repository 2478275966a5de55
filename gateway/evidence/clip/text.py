"""The clip's wall-clock track: timed text (``mov_text``, "tx3g"), one sample per second of
wall time, so that players show the time without it being burnt into the picture.

PyAV muxes the samples this module builds (a 16-bit length and UTF-8 text each); only the
track's sample description comes from FFmpeg's ``mov_text`` encoder, which is opened but never
fed.
"""

from __future__ import annotations

import math
import struct
from datetime import datetime, tzinfo
from fractions import Fraction

from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.subtitles.codeccontext import SubtitleCodecContext

__all__ = ["TEXT_FORMAT", "TEXT_HANDLER", "WallClockTrack"]

TEXT_HANDLER = "Wall clock"
"""Handler name of the timed-text track: what players list it as."""
TEXT_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
"""How each second is written (``2026-12-02 11:15:03 CET``); ``%Z`` tells CEST from CET in the
hour that repeats when the clocks go back."""

# FFmpeg's own default style (libavcodec/ass.c): the mov_text encoder turns it into the track's
# sample description (white 16/288 Arial at the bottom centre). Players take it as a default.
_TEXT_STYLE = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""
_TEXT_TICKS = 90_000
"""Time scale of the text track, at least that of every other track. FFmpeg's MP4 muxer
compares the text track's end with other tracks' timestamps without converting them, and
inserts an empty sample wherever the text seems to lag; with the finest scale it never does."""


class WallClockTrack:
    """The wall-clock track of one clip: ``prefix`` (a camera id and a space, say) and the wall
    time in ``tz``, each second's sample written once the clip has got past its end."""

    def __init__(self, tz: tzinfo, prefix: str) -> None:
        self.tz = tz
        self.prefix = prefix
        self._container: OutputContainer | None = None
        self._stream: Stream | None = None
        self._origin = 0.0
        self._tb = Fraction(1)
        self._tick = 0.0
        self._second = 0
        """The wall second shown by the sample not yet written."""
        self._from = 0
        self._to = 0
        self._to_seconds = 0.0

    def add(self, container: OutputContainer, scales: list[int]) -> None:
        """Add the track to ``container`` before its header is written; ``scales`` are the time
        scales of its other tracks."""
        text = container.add_stream("mov_text")
        assert isinstance(text.codec_context, SubtitleCodecContext)  # noqa: S101 - for mypy: mov_text is one
        text.codec_context.subtitle_header = _TEXT_STYLE
        text.time_base = Fraction(1, max([_TEXT_TICKS, *scales]))
        text.metadata["language"] = "und"
        text.metadata["handler_name"] = TEXT_HANDLER
        self._container = container
        self._stream = text

    def start(self, origin: float) -> None:
        """Once the header is written (the muxer fixes the time base then): the clip's time zero
        is the wall time ``origin``."""
        assert self._stream is not None  # noqa: S101 - for mypy: add() set it
        self._tb = Fraction(self._stream.time_base or 1)
        self._tick = float(self._tb)
        self._origin = origin
        self._second = math.floor(origin)
        self._from = 0
        self._next_boundary()

    def until(self, seconds: float) -> None:
        """Write the samples that end at or before ``seconds`` of the clip. The current sample
        is held back until then, so that the last one can end with the clip."""
        while self._to_seconds <= seconds:
            self._write(self._to)

    def finish(self, duration: float) -> None:
        """Write the samples left, the last one ending at ``duration`` seconds of the clip."""
        end = round(duration / self._tick)
        while self._from < end:
            self._write(min(self._to, end))

    def _next_boundary(self) -> None:
        self._to = round((self._second + 1 - self._origin) / self._tick)
        self._to_seconds = self._to * self._tick

    def _write(self, to: int) -> None:
        assert self._container is not None and self._stream is not None  # noqa: S101 - for mypy: add() set them
        if to > self._from:
            when = datetime.fromtimestamp(self._second, self.tz).strftime(TEXT_FORMAT)
            data = (self.prefix + when).encode()
            packet = Packet(struct.pack(">H", len(data)) + data)
            packet.stream = self._stream
            packet.time_base = self._tb
            packet.pts = packet.dts = self._from
            packet.duration = to - self._from
            self._container.mux(packet)
        self._from = to
        self._second += 1
        self._next_boundary()
