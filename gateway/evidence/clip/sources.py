"""The segments a clip reads: opening them, the track layout that must match within one file,
splitting a list of segments into runs, and choosing those a time range needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream

from gateway.evidence.clip.model import ClipError, ClipSource, why

__all__ = ["OPEN_OPTIONS", "Layout", "demux", "layout_of", "open_source", "prepare", "runs"]


@dataclass(frozen=True, slots=True)
class Layout:
    """What must be the same in every segment of one file: the tracks' sample descriptions."""

    codec: str
    """FFmpeg's name for it (compared as it is: two codecs unknown to :data:`Codec` differ)."""
    width: int
    height: int
    extradata: bytes
    """avcC / hvcC: the parameter sets."""
    audio: tuple[str, int, int, bytes] | None
    """Codec, sample rate, channels, AudioSpecificConfig."""


OPEN_OPTIONS = {"probesize": "32", "analyzeduration": "0"}
"""A segment's tracks are all described in its movie header (codec, parameter sets, frame
rate): FFmpeg need not read and decode frames to find them, which cost 30 of the 41 ms of
opening a 60 s 1080p segment."""


def open_source(path: Path) -> InputContainer:
    """Open a segment for reading; :class:`ClipError` if it is missing or unreadable."""
    try:
        return av.open(str(path), "r", options=OPEN_OPTIONS)
    except FileNotFoundError:
        raise ClipError(f"{path}: missing") from None
    except (av.FFmpegError, OSError) as exc:
        raise ClipError(f"{path}: not a readable recording ({why(exc)})") from exc


def layout_of(container: InputContainer, path: Path) -> Layout:
    """The track layout of an opened segment; :class:`ClipError` if it has no video."""
    if not container.streams.video:
        raise ClipError(f"{path}: no video track")
    video = container.streams.video[0].codec_context
    audio = None
    if container.streams.audio:
        ctx = container.streams.audio[0].codec_context
        audio = (ctx.name, ctx.sample_rate, ctx.channels, bytes(ctx.extradata or b""))
    return Layout(
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
    previous: Layout | None = None
    for source in sources:
        with open_source(source.path) as container:
            layout = layout_of(container, source.path)
        if groups and layout == previous:
            groups[-1].append(source)
        else:
            groups.append([source])
        previous = layout
    return groups


def prepare(
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


def demux(container: InputContainer, streams: list[Stream], path: Path) -> Iterator[Packet[Stream]]:
    """The packets of ``streams``; a read error is a :class:`ClipError` naming ``path``."""
    packets = container.demux(streams)
    count = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{path}: unreadable after {count} packets ({why(exc)})") from exc
        count += 1
        yield packet
