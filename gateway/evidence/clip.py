"""One evidence clip: a camera's recorded segments over a time range, copied into one MP4 file.

The clip is a stream copy (PyAV demux → mux, never a decode): every video NAL unit is written
as the camera sent it, SEI units included. ONVIF Media Signing puts its signatures in SEI "user
data unregistered" units and hashes every NAL unit of a GOP, so inserting parameter sets,
running a bitstream filter or dropping a unit would break the camera's own signature. Parameter
sets travel in the MP4 sample description (avcC/hvcC) alone, which therefore has to be the same
in every segment of one file: :func:`runs` splits a list of segments where it is not.

Timeline: a segment's indexed start is the wall time of its first packet, and the clip's time
zero is the wall time of its first frame, so every packet is placed at its wall time. A gap
between segments (the camera was offline) stays a gap in the file (players hold the last
picture) and the time a player shows, added to :attr:`Clip.start`, is the real time. Where the
index puts a segment's first frame at or before the previous segment's last frame (the camera's
clock and the wall clock drifting apart by a frame or more), that segment is placed later by
just enough that decode times keep increasing; :attr:`Clip.adjusted` says by how much at most.

A timed-text track (``mov_text``, "tx3g") carries the wall-clock time, one sample per second of
wall time, so that players show the time without it being burnt into the picture. PyAV muxes
the samples this module builds (a 16-bit length and UTF-8 text each); only the track's sample
description comes from FFmpeg's ``mov_text`` encoder, which is opened but never fed.

The file is written with ``movflags=+faststart``: FFmpeg writes the media, then moves the index
(moov) in front of it in a second pass over the file, so a player can start playing before it
has the whole file. That pass doubles the disk traffic of an export; ``ffmpeg -c copy -movflags
+faststart`` pays the same.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.subtitles.codeccontext import SubtitleCodecContext
from av.video.stream import VideoStream

from gateway.media.codec import Codec, codec_of

__all__ = [
    "TEXT_FORMAT",
    "TEXT_HANDLER",
    "Clip",
    "ClipError",
    "ClipSource",
    "runs",
    "write_clip",
    "write_clips",
]

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


class ClipError(Exception):
    """The clip cannot be written; ``reason`` says why, naming the file concerned."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClipSource:
    """A finished segment file."""

    path: Path
    start: float
    """Wall-clock time (UTC epoch seconds) of its first packet, as indexed."""


@dataclass(frozen=True, slots=True)
class Clip:
    """A written clip and what it covers."""

    path: Path
    start: float
    """Wall time (UTC epoch seconds) of the first frame written: the file's time zero."""
    end: float
    """Wall time at which the last frame written stops being shown."""
    frames: int
    """Video frames written."""
    codec: Codec
    """``h264`` or ``hevc``."""
    width: int
    height: int
    fps: float | None
    """The recording's average frame rate, if its container states one."""
    has_audio: bool
    sources: tuple[Path, ...]
    """The segments that contributed packets, in order."""
    adjusted: float = 0.0
    """The most, in seconds, by which a segment was placed later than its indexed start so that
    timestamps keep increasing; 0.0 unless two segments overlap by a frame or more."""


@dataclass(frozen=True, slots=True)
class _Layout:
    """What must be the same in every segment of one file: the tracks' sample descriptions."""

    codec: str
    """FFmpeg's name for it (compared as it is: two codecs unknown to :data:`Codec` differ)."""
    width: int
    height: int
    extradata: bytes
    """avcC / hvcC: the parameter sets."""
    audio: tuple[str, int, int, bytes] | None
    """Codec, sample rate, channels, AudioSpecificConfig."""


_OPEN_OPTIONS = {"probesize": "32", "analyzeduration": "0"}
"""A segment's tracks are all described in its movie header (codec, parameter sets, frame
rate): FFmpeg need not read and decode frames to find them, which cost 30 of the 41 ms of
opening a 60 s 1080p segment."""


def _open(path: Path) -> InputContainer:
    try:
        return av.open(str(path), "r", options=_OPEN_OPTIONS)
    except FileNotFoundError:
        raise ClipError(f"{path}: missing") from None
    except (av.FFmpegError, OSError) as exc:
        raise ClipError(f"{path}: not a readable recording ({_why(exc)})") from exc


def _layout(container: InputContainer, path: Path) -> _Layout:
    if not container.streams.video:
        raise ClipError(f"{path}: no video track")
    video = container.streams.video[0].codec_context
    audio = None
    if container.streams.audio:
        ctx = container.streams.audio[0].codec_context
        audio = (ctx.name, ctx.sample_rate, ctx.channels, bytes(ctx.extradata or b""))
    return _Layout(
        codec=video.name,
        width=video.width,
        height=video.height,
        extradata=bytes(video.extradata or b""),
        audio=audio,
    )


def runs(sources: Sequence[ClipSource]) -> list[list[ClipSource]]:
    """Group consecutive sources whose tracks can go into one file: same codec, same parameter
    sets (so same resolution), same audio or none. Each group is one clip's worth of sources.

    Reads each source's header; raises :class:`ClipError` for a missing or unreadable one.
    """
    groups: list[list[ClipSource]] = []
    previous: _Layout | None = None
    for source in sources:
        with _open(source.path) as container:
            layout = _layout(container, source.path)
        if groups and layout == previous:
            groups[-1].append(source)
        else:
            groups.append([source])
        previous = layout
    return groups


def write_clip(
    sources: Sequence[ClipSource],
    start: float,
    end: float,
    output: Path,
    *,
    tz: tzinfo = UTC,
    label: str = "",
) -> Clip:
    """Copy the frames of ``sources`` shown from ``start`` to ``end`` (UTC epoch seconds) into
    the MP4 file ``output`` (replaced if it exists), synced before returning.

    The clip begins at the keyframe of the GOP whose frame is shown at ``start`` (at the first
    frame after ``start`` when none is, a keyframe: the next segment's first) and ends with the
    last frame shown before ``end``, plus, with B-frames, the reference frames it needs. Sources
    are the segments of one run (:func:`runs`), in any order; those that cannot hold frames of
    the range are not opened. The timed-text track shows ``label`` (a camera id, say) and the
    wall time in ``tz``.

    Raises :class:`ClipError` if a source is missing or unreadable, if nothing is recorded in the
    range, if the segments of the range do not form one run, or if the output cannot be written;
    no output is left behind then.
    """
    prefix, ordered, wanted = _prepare(sources, start, end, label)
    writer = _Writer(output, start, end, tz, prefix)
    try:
        for source in wanted:
            if writer.video_done:
                break
            writer.copy(source)
        return writer.finish(len(ordered))
    except BaseException:
        writer.abort()
        raise


def write_clips(
    sources: Sequence[ClipSource],
    start: float,
    end: float,
    output: Callable[[int], Path],
    *,
    tz: tzinfo = UTC,
    label: str = "",
) -> list[Clip]:
    """Like :func:`write_clip` over sources that may hold several runs (a camera whose stream
    changed): one clip per run, the n-th (from 1) written to ``output(n)``. Each source is
    opened once. On error, every clip written is deleted."""
    prefix, ordered, wanted = _prepare(sources, start, end, label)
    clips: list[Clip] = []
    writer = _Writer(output(1), start, end, tz, prefix)
    try:
        for source in wanted:
            if writer.video_done:
                break
            with _open(source.path) as container:
                layout = _layout(container, source.path)
                if writer.layout is not None and layout != writer.layout:
                    clips.append(writer.finish(len(ordered)))
                    writer = _Writer(output(len(clips) + 1), start, end, tz, prefix)
                writer.copy_from(source, container, layout)
        if writer.container is not None or not clips:
            clips.append(writer.finish(len(ordered)))
        return clips
    except BaseException:
        writer.abort()
        for clip in clips:
            with contextlib.suppress(FileNotFoundError):
                clip.path.unlink()
        raise


def _prepare(
    sources: Sequence[ClipSource], start: float, end: float, label: str
) -> tuple[str, list[ClipSource], list[ClipSource]]:
    """Check a request; (text prefix, sources in time order, those that may hold the range)."""
    if not end > start:
        raise ClipError(f"empty range: end {end} is not after start {start}")
    prefix = f"{label} " if label else ""
    if len(prefix.encode()) > 1000:
        raise ClipError("label too long for the wall-clock track (over 1000 bytes)")
    ordered = sorted(sources, key=lambda s: s.start)
    for source in ordered:
        if not source.path.is_file():
            raise ClipError(f"{source.path}: missing")
    # A source whose successor starts at or before `start` ends before it; none starting at or
    # after `end` can hold a frame shown before it.
    wanted = [
        s
        for i, s in enumerate(ordered)
        if s.start < end and (i + 1 == len(ordered) or ordered[i + 1].start > start)
    ]
    return prefix, ordered, wanted


def _demux(
    container: InputContainer, streams: list[Stream], path: Path
) -> Iterator[Packet[Stream]]:
    packets = container.demux(streams)
    count = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{path}: unreadable after {count} packets ({_why(exc)})") from exc
        count += 1
        yield packet


@dataclass(slots=True)
class _Placement:
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


class _Writer:
    """The clip being written: the output, its tracks, and where the timeline has got to."""

    def __init__(self, output: Path, start: float, end: float, tz: tzinfo, prefix: str) -> None:
        self.output = output
        self.start = start
        self.end = end
        self.tz = tz
        self.prefix = prefix
        self.container: OutputContainer | None = None
        self.layout: _Layout | None = None
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
        self._text: Stream | None = None
        self._vtick = self._atick = self._ttick = 0.0
        self._vtb = self._atb = self._ttb = Fraction(1)
        self._last_vdts: int | None = None
        self._last_vdur = 1
        self._last_adts: int | None = None
        self._end_ticks = 0
        """Latest end (pts + duration) of a video frame written, in video ticks."""
        self._second = 0
        """The wall second shown by the text sample not yet written."""
        self._text_from = 0
        self._text_to = 0
        self._text_to_seconds = 0.0

    # -- sources -----------------------------------------------------------------------------

    def copy(self, source: ClipSource) -> None:
        """Copy what ``source`` holds of the range."""
        with _open(source.path) as container:
            layout = _layout(container, source.path)
            if self.layout is not None and layout != self.layout:
                raise ClipError(
                    f"{source.path}: its tracks differ from those of {self.first} "
                    "(codec, parameter sets or audio): write one clip per run of sources"
                )
            self.copy_from(source, container, layout)

    def copy_from(self, source: ClipSource, container: InputContainer, layout: _Layout) -> None:
        """Copy what the opened ``source`` holds of the range."""
        try:
            _SourceCopy(self, source, container, layout).run()
        except (av.FFmpegError, OSError) as exc:  # demux errors are ClipErrors already
            raise ClipError(f"{self.output}: cannot write the clip ({_why(exc)})") from exc

    def begin(
        self,
        source: ClipSource,
        video: VideoStream,
        audio: AudioStream | None,
        layout: _Layout,
        origin: float,
    ) -> None:
        """Create the output, its tracks taken from the first contributing source's."""
        try:
            container = av.open(
                str(self.output), "w", format="mp4", container_options={"movflags": "+faststart"}
            )
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{self.output}: cannot create ({_why(exc)})") from exc
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
        text = container.add_stream("mov_text")
        assert isinstance(text.codec_context, SubtitleCodecContext)  # noqa: S101 - for mypy: mov_text is one
        text.codec_context.subtitle_header = _TEXT_STYLE
        text.time_base = Fraction(1, max([_TEXT_TICKS, *scales]))
        text.metadata["language"] = "und"
        text.metadata["handler_name"] = TEXT_HANDLER
        self._text = text
        container.metadata["creation_time"] = _iso(origin)
        try:
            container.start_encoding()
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{self.output}: cannot write the header ({_why(exc)})") from exc
        # The muxer fixes each track's time base when it writes the header.
        self._vtb = Fraction(out_video.time_base or 1)
        self._vtick = float(self._vtb)
        if self._audio is not None:
            self._atb = Fraction(self._audio.time_base or 1)
            self._atick = float(self._atb)
        self._ttb = Fraction(text.time_base or 1)
        self._ttick = float(self._ttb)
        self._second = math.floor(origin)
        self._text_from = 0
        self._next_text_boundary()

    def place(
        self,
        source: ClipSource,
        base: float,
        first_dts: int,
        video: VideoStream,
        audio: AudioStream | None,
    ) -> _Placement:
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
        return _Placement(video_scale, video_offset, audio_scale, audio_offset, frame, source.path)

    # -- packets -----------------------------------------------------------------------------

    def write_video(self, packet: Packet[Stream], place: _Placement) -> None:
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
        self._text_until(dts * self._vtick)
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

    def write_audio(self, packet: Packet[Stream], place: _Placement) -> None:
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

    # -- the wall-clock track ----------------------------------------------------------------

    def _next_text_boundary(self) -> None:
        self._text_to = round((self._second + 1 - self.origin) / self._ttick)
        self._text_to_seconds = self._text_to * self._ttick

    def _text_until(self, seconds: float) -> None:
        """Write the text samples that end at or before ``seconds`` of the clip. The current
        sample is held back until then, so that the last one can end with the clip."""
        while self._text_to_seconds <= seconds:
            self._write_text(self._text_to)

    def _write_text(self, to: int) -> None:
        assert self.container is not None and self._text is not None  # noqa: S101 - for mypy: begin() set them
        if to > self._text_from:
            when = datetime.fromtimestamp(self._second, self.tz).strftime(TEXT_FORMAT)
            data = (self.prefix + when).encode()
            packet = Packet(struct.pack(">H", len(data)) + data)
            packet.stream = self._text
            packet.time_base = self._ttb
            packet.pts = packet.dts = self._text_from
            packet.duration = to - self._text_from
            self.container.mux(packet)
        self._text_from = to
        self._second += 1
        self._next_text_boundary()

    # -- end ---------------------------------------------------------------------------------

    def finish(self, given: int) -> Clip:
        if self.container is None or self.layout is None or not self.frames:
            raise ClipError(
                f"nothing recorded from {_iso(self.start)} to {_iso(self.end)} "
                f"in the {given} segment(s) given"
            )
        duration = self._end_ticks * self._vtick
        end_text = round(duration / self._ttick)
        try:
            while self._text_from < end_text:
                self._write_text(min(self._text_to, end_text))
            self.container.close()
            fd = os.open(self.output, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{self.output}: cannot finish the clip ({_why(exc)})") from exc
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


class _SourceCopy:
    """Reading one source: which of its packets are in the range, and where they go."""

    def __init__(
        self, writer: _Writer, source: ClipSource, container: InputContainer, layout: _Layout
    ) -> None:
        self.writer = writer
        self.source = source
        self.container = container
        self.layout = layout
        self.video = container.streams.video[0]
        self.audio = container.streams.audio[0] if layout.audio is not None else None
        self.vtick = float(self.video.time_base or 1)
        self.atick = float(self.audio.time_base or 1) if self.audio is not None else 0.0
        self.base: float | None = None
        """Wall time of timestamp 0: the index's start is that of the first packet."""
        self.place: _Placement | None = None
        self.gop: list[Packet[Stream]] = []
        """Before the clip starts: the current GOP (and its sound), from its keyframe on."""
        self.key_dts = 0
        self.key_wall = 0.0
        rate = self.video.average_rate or self.video.guessed_rate
        self.frame = round(1 / (float(rate) * self.vtick)) if rate else 0
        """One frame's duration in ticks, for packets that do not state theirs (0: unknown)."""
        self.pending: list[Packet[Stream]] = []
        """Frames decoded before end but shown after it, kept if a frame shown before needs
        them (B-frames)."""
        self.audio_done = self.audio is None

    def run(self) -> None:
        writer = self.writer
        streams: list[Stream] = [self.video]
        if self.audio is not None:
            streams.append(self.audio)
        vindex = self.video.index
        early: list[Packet[Stream]] = []
        for packet in _demux(self.container, streams, self.source.path):
            if packet.dts is None:
                continue  # the demuxer's end-of-stream markers
            if packet.stream_index == vindex:
                if self.base is None:
                    self.base = self.source.start - packet.dts * self.vtick
                if not writer.video_done:
                    self.on_video(packet)
                for sound in early:
                    self.on_audio(sound)
                early.clear()
            elif not self.audio_done:
                if self.base is None:
                    early.append(packet)
                else:
                    self.on_audio(packet)
            if writer.video_done and self.audio_done:
                break

    def on_video(self, packet: Packet[Stream]) -> None:
        writer = self.writer
        assert self.base is not None and packet.dts is not None  # noqa: S101 - for mypy: see run()
        pts = packet.dts if packet.pts is None else packet.pts
        wall = pts * self.vtick + self.base
        if writer.container is None:
            self.before_start(packet, wall)
            return
        if self.place is None:
            self.place = writer.place(self.source, self.base, packet.dts, self.video, self.audio)
        if packet.dts * self.vtick + self.base >= writer.end:
            writer.video_done = True  # nothing decoded from here on is shown before the end
            self.pending.clear()
        elif wall >= writer.end:
            self.pending.append(packet)
        else:
            for needed in self.pending:
                writer.write_video(needed, self.place)
            self.pending.clear()
            writer.write_video(packet, self.place)

    def before_start(self, packet: Packet[Stream], wall: float) -> None:
        """Keep the current GOP until a frame shown at ``start`` (or after it) comes; the clip
        starts at that GOP's keyframe."""
        writer = self.writer
        vindex = self.video.index
        if packet.is_keyframe:
            self.gop = [
                p for p in self.gop if p.stream_index != vindex and self.audio_wall(p) >= wall
            ]
            self.gop.append(packet)
            self.key_dts = packet.dts or 0
            self.key_wall = wall
        elif self.gop:
            self.gop.append(packet)
        else:
            return  # no keyframe yet: not decodable
        if wall + (packet.duration or self.frame) * self.vtick <= writer.start:
            return
        if self.key_wall >= writer.end:
            writer.video_done = True  # the first frame after start is after the end too
            return
        writer.begin(self.source, self.video, self.audio, self.layout, self.key_wall)
        assert self.base is not None  # noqa: S101 - for mypy: see run()
        self.place = writer.place(self.source, self.base, self.key_dts, self.video, self.audio)
        gop, self.gop = self.gop, []
        for queued in gop:
            if queued.stream_index == vindex:
                self.on_video(queued)
            else:
                self.on_audio(queued)

    def audio_wall(self, packet: Packet[Stream]) -> float:
        assert self.base is not None  # noqa: S101 - for mypy: see run()
        pts = packet.dts if packet.pts is None else packet.pts
        return (pts or 0) * self.atick + self.base

    def on_audio(self, packet: Packet[Stream]) -> None:
        writer = self.writer
        wall = self.audio_wall(packet)
        if wall >= writer.end:
            self.audio_done = True
        elif writer.container is None:
            if self.gop and wall >= self.key_wall:
                self.gop.append(packet)
        elif self.place is not None and wall >= writer.origin:
            writer.write_audio(packet, self.place)


def _why(exc: BaseException) -> str:
    """FFmpeg's or the OS's words for an error, without PyAV's errno and repeated file name."""
    return str(getattr(exc, "strerror", None) or exc)


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
