"""The remux loop of one source: which of its packets are in the clip's range (from the
keyframe of the GOP shown at its start to the last frame shown before its end, and the sound
alongside), handed to the :class:`~gateway.evidence.clip.writer.Writer` in decode order."""

from __future__ import annotations

import av
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream

from gateway.evidence.clip.model import ClipError, ClipSource, why
from gateway.evidence.clip.sources import Layout, demux, layout_of, open_source
from gateway.evidence.clip.writer import Placement, Writer

__all__ = ["SourceCopy", "copy_opened", "copy_source"]


def copy_source(writer: Writer, source: ClipSource) -> None:
    """Copy what ``source`` holds of the range; :class:`ClipError` if its tracks differ from
    those of the clip."""
    with open_source(source.path) as container:
        layout = layout_of(container, source.path)
        if writer.layout is not None and layout != writer.layout:
            raise ClipError(
                f"{source.path}: its tracks differ from those of {writer.first} "
                "(codec, parameter sets or audio): write one clip per run of sources"
            )
        copy_opened(writer, source, container, layout)


def copy_opened(
    writer: Writer, source: ClipSource, container: InputContainer, layout: Layout
) -> None:
    """Copy what the opened ``source`` holds of the range."""
    try:
        SourceCopy(writer, source, container, layout).run()
    except (av.FFmpegError, OSError) as exc:  # demux errors are ClipErrors already
        raise ClipError(f"{writer.output}: cannot write the clip ({why(exc)})") from exc


class SourceCopy:
    """Reading one source: which of its packets are in the range, and where they go."""

    def __init__(
        self, writer: Writer, source: ClipSource, container: InputContainer, layout: Layout
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
        self.place: Placement | None = None
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
        for packet in demux(self.container, streams, self.source.path):
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
