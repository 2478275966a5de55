"""The clip file being written: its tracks, copied from the first contributing source's, the
timeline every source is placed on, and finalising (faststart, fsync) or deleting it.

The file is written with ``movflags=+faststart``: FFmpeg writes the media, then moves the index
(moov) in front of it in a second pass over the file, so a player can start playing before it
has the whole file. That pass doubles the disk traffic of an export; ``ffmpeg -c copy -movflags
+faststart`` pays the same.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import tzinfo
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from gateway.evidence.clip.model import Clip, ClipError, ClipSource, iso, why
from gateway.evidence.clip.sources import Layout
from gateway.evidence.clip.text import WallClockTrack
from gateway.media.codec import codec_of

__all__ = ["Placement", "Writer"]


@dataclass(slots=True)
class Placement:
    """How one source's timestamps become the clip's: ``round(ts * scale) + offset``."""

    video_scale: float
    video_offset: int
    audio_scale: float
    audio_offset: int
    frame: int
    """One frame's duration in output ticks, for packets that do not state theirs."""
    path: Path
    used: bool = False
    """Whether a packet of this source was written."""


class Writer:
    """The clip being written: the output, its tracks, and where the timeline has got to."""

    def __init__(self, output: Path, start: float, end: float, tz: tzinfo, prefix: str) -> None:
        self.output = output
        self.start = start
        self.end = end
        self.container: OutputContainer | None = None
        self.layout: Layout | None = None
        self.first: Path | None = None
        """The source the clip starts in, whose tracks the output copies."""
        self.origin = 0.0
        """Wall time of the clip's time zero (its first frame)."""
        self.video_done = False
        self.sources: list[Path] = []
        self.frames = 0
        self.adjusted = 0.0
        self.fps: float | None = None
        self._video: Stream | None = None
        self._audio: Stream | None = None
        self._text = WallClockTrack(tz, prefix)
        self._vtick = self._atick = 0.0
        self._vtb = self._atb = Fraction(1)
        self._last_vdts: int | None = None
        self._last_vdur = 1
        self._last_adts: int | None = None
        self._end_ticks = 0
        """Latest end (pts + duration) of a video frame written, in video ticks."""

    def begin(
        self,
        source: ClipSource,
        video: VideoStream,
        audio: AudioStream | None,
        layout: Layout,
        origin: float,
    ) -> None:
        """Create the output, its tracks taken from the first contributing source's."""
        try:
            container = av.open(
                str(self.output), "w", format="mp4", container_options={"movflags": "+faststart"}
            )
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{self.output}: cannot create ({why(exc)})") from exc
        self.container = container
        self.layout = layout
        self.first = source.path
        self.origin = origin
        rate = video.average_rate or video.guessed_rate
        self.fps = float(rate) if rate else None
        out_video = container.add_stream_from_template(video)
        # Keep the recording's sample entry type: 'hvc1' says parameter sets are in the sample
        # description only, 'hev1' that they may also be in-band. FFmpeg would pick 'hev1'.
        out_video.codec_context.codec_tag = video.codec_context.codec_tag
        self._video = out_video
        scales = [int(1 / video.time_base)] if video.time_base else []
        if audio is not None:
            self._audio = container.add_stream_from_template(audio)
            scales.append(audio.codec_context.sample_rate)
        self._text.add(container, scales)
        container.metadata["creation_time"] = iso(origin)
        try:
            container.start_encoding()
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{self.output}: cannot write the header ({why(exc)})") from exc
        # The muxer fixes each track's time base when it writes the header.
        self._vtb = Fraction(out_video.time_base or 1)
        self._vtick = float(self._vtb)
        if self._audio is not None:
            self._atb = Fraction(self._audio.time_base or 1)
            self._atick = float(self._atb)
        self._text.start(origin)

    def place(
        self,
        source: ClipSource,
        base: float,
        first_dts: int,
        video: VideoStream,
        audio: AudioStream | None,
    ) -> Placement:
        """Where ``source`` goes in the clip: at its wall time, ``base`` being the wall time of
        timestamp 0, unless that is not after the last frame written."""
        vtick = float(video.time_base or 1)
        video_scale = vtick / self._vtick
        shift = base - self.origin  # clip seconds = timestamp * tick + shift
        video_offset = round(shift / self._vtick)
        first = round(first_dts * video_scale) + video_offset
        if self._last_vdts is not None and first <= self._last_vdts:
            bump = self._last_vdts + self._last_vdur - first
            video_offset += bump
            shift += bump * self._vtick
            self.adjusted = max(self.adjusted, bump * self._vtick)
        audio_scale, audio_offset = 0.0, 0
        if audio is not None and self._atick:
            audio_scale = float(audio.time_base or 1) / self._atick
            audio_offset = round(shift / self._atick)
        rate = video.average_rate or video.guessed_rate
        frame = max(1, round(1 / (float(rate) * self._vtick))) if rate else 1
        return Placement(video_scale, video_offset, audio_scale, audio_offset, frame, source.path)

    # -- packets -----------------------------------------------------------------------------

    def write_video(self, packet: Packet[Stream], place: Placement) -> None:
        assert self.container is not None and self._video is not None  # noqa: S101 - for mypy: begin() set them
        if not place.used:
            place.used = True
            self.sources.append(place.path)
        scale, offset = place.video_scale, place.video_offset
        dts = round((packet.dts or 0) * scale) + offset
        if self._last_vdts is not None and dts <= self._last_vdts:
            raise ClipError(f"{place.path}: video decode times go backwards (damaged recording)")
        pts = dts if packet.pts is None else round(packet.pts * scale) + offset
        duration = round(packet.duration * scale) if packet.duration else place.frame
        self._text.until(dts * self._vtick)
        packet.stream = self._video
        if place.video_scale != 1.0:
            packet.time_base = self._vtb
        packet.dts = dts
        packet.pts = pts
        packet.duration = duration
        self.container.mux(packet)
        self._last_vdts = dts
        self._last_vdur = max(1, duration)
        self._end_ticks = max(self._end_ticks, pts + duration)
        self.frames += 1

    def write_audio(self, packet: Packet[Stream], place: Placement) -> None:
        assert self.container is not None and self._audio is not None  # noqa: S101 - for mypy: begin() set them
        if not place.used:
            place.used = True
            self.sources.append(place.path)
        scale, offset = place.audio_scale, place.audio_offset
        dts = round((packet.dts or 0) * scale) + offset
        if self._last_adts is not None and dts <= self._last_adts:
            return  # sound the previous segment already has (segments overlapping)
        pts = dts if packet.pts is None else round(packet.pts * scale) + offset
        packet.stream = self._audio
        if scale != 1.0:
            packet.time_base = self._atb
            if packet.duration:
                packet.duration = round(packet.duration * scale)
        packet.dts = dts
        packet.pts = pts
        self.container.mux(packet)
        self._last_adts = dts

    # -- end ---------------------------------------------------------------------------------

    def finish(self, given: int) -> Clip:
        """Close the output (the faststart pass runs then) and sync it; ``given`` is the number
        of sources asked for, for the message when nothing was written."""
        if self.container is None or self.layout is None or not self.frames:
            raise ClipError(
                f"nothing recorded from {iso(self.start)} to {iso(self.end)} "
                f"in the {given} segment(s) given"
            )
        duration = self._end_ticks * self._vtick
        try:
            self._text.finish(duration)
            self.container.close()
            fd = os.open(self.output, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{self.output}: cannot finish the clip ({why(exc)})") from exc
        return Clip(
            path=self.output,
            start=self.origin,
            end=self.origin + duration,
            frames=self.frames,
            codec=codec_of(self.layout.codec),
            width=self.layout.width,
            height=self.layout.height,
            fps=self.fps,
            has_audio=self.layout.audio is not None,
            sources=tuple(self.sources),
            adjusted=self.adjusted,
        )

    def abort(self) -> None:
        """After an error: close and delete the output, if it was created."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):  # the disk that failed a write may fail this too
            self.container.close()
        with contextlib.suppress(FileNotFoundError):
            self.output.unlink()
