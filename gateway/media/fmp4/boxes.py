"""fMP4 at the box level: the facts a walk gathers, bounded reads, and the movie header.

What every part of the fMP4 reader shares: :class:`Fmp4Error` and the facts (:class:`TrackFacts`,
:class:`SegmentFacts`); :class:`Reader`, positioned reads over one file within a budget of bytes
(4 times the file plus 64 MiB), so that no crafted file makes a walk quadratic; box headers and
the strict and lenient walks over a box's children; and the ``moov`` parser, which finds the
tracks and their fragment defaults.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gateway.media.codec import Codec

__all__ = [
    "NON_SYNC",
    "SEARCH_CHUNK",
    "Fmp4Error",
    "ImplausibleError",
    "OverBudgetError",
    "Reader",
    "SegmentFacts",
    "TrackFacts",
    "children",
    "open_file",
    "parse_moov",
    "u32",
]

SEARCH_CHUNK = 1024 * 1024
"""Bytes read at a time: while looking for the next ``moof`` after damage, and while copying."""
_BUDGET_FACTOR = 4
_BUDGET_EXTRA = 64 * 1024 * 1024
"""Bytes a scan may read in all: 4 times the file plus 64 MiB. A normal scan reads well under
1 % of the file; the budget only stops a file crafted so that every candidate ``moof`` is
nearly plausible from making the walk quadratic."""
NON_SYNC = 0x00010000
"""``sample_is_non_sync_sample`` in ISO/IEC 14496-12 sample flags."""
_TRAK_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl"}
_CODECS: dict[bytes, Codec] = {
    b"avc1": "h264",
    b"avc3": "h264",
    b"hvc1": "hevc",
    b"hev1": "hevc",
    b"mp4a": "aac",
    b"Opus": "opus",
}


class Fmp4Error(Exception):
    """The file is not a fragmented MP4 segment, or has no usable fragment.

    ``header_only``: the file holds nothing past (part of) its movie header, so no image is
    lost if it is removed.
    """

    def __init__(self, message: str, *, header_only: bool = False) -> None:
        super().__init__(message)
        self.header_only = header_only


@dataclass(slots=True)
class TrackFacts:
    track_id: int
    kind: str = "other"
    codec: str = "unknown"
    timescale: int = 0
    width: int = 0
    height: int = 0
    default_duration: int = 0
    default_size: int = 0
    default_flags: int = 0
    samples: int = 0
    first_time: int | None = None
    end_time: int = 0

    @property
    def duration(self) -> float:
        if not self.timescale or self.first_time is None:
            return 0.0
        return (self.end_time - self.first_time) / self.timescale


@dataclass(slots=True)
class SegmentFacts:
    size: int
    """Bytes in the file (after :func:`repair`: in the repaired file)."""
    complete_size: int
    """Bytes up to the end of the last good fragment, when nothing before it is damaged: what
    cutting the file keeps."""
    fragments: int = 0
    tracks: dict[int, TrackFacts] = field(default_factory=dict)
    header_end: int = 0
    """End of the movie header (``moov``); nothing past it means no media."""
    damaged: int = 0
    """Damaged stretches skipped *before* the last good fragment (damage at the tail is cut,
    not counted here). Non-zero means the file must be rebuilt to play from end to end."""
    damaged_bytes: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) of each good fragment, ``moof`` through ``mdat``."""
    starts_on_keyframe: bool | None = None
    """Whether the first kept video sample is a sync sample (None: no video)."""
    rebuilt: bool = False
    """Set by :func:`repair` when the file was rebuilt without its damaged fragments."""
    trimmed: int = 0
    """Video samples :func:`repair` left out of a rebuilt file because they followed a damaged
    stretch and came before the next keyframe: they cannot be decoded."""

    @property
    def video(self) -> TrackFacts | None:
        return next((t for t in self.tracks.values() if t.kind == "video"), None)

    @property
    def duration(self) -> float:
        video = self.video
        if video is not None:
            return video.duration
        return max((t.duration for t in self.tracks.values()), default=0.0)

    @property
    def start_offset(self) -> float:
        """Seconds from the file's time zero to its first kept video sample (non-zero once
        damaged fragments at its start were dropped)."""
        video = self.video
        if video is None or not video.timescale or video.first_time is None:
            return 0.0
        return video.first_time / video.timescale

    @property
    def frames(self) -> int:
        video = self.video
        return video.samples if video is not None else 0

    @property
    def codec(self) -> str:
        video = self.video
        return video.codec if video is not None else "none"

    @property
    def has_audio(self) -> bool:
        return any(t.kind == "audio" for t in self.tracks.values())


class Reader:
    """Positioned reads over one open file, with a budget of bytes in all."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self.size = size
        self._budget = _BUDGET_FACTOR * size + _BUDGET_EXTRA

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        self._budget -= end - start
        if self._budget < 0:
            raise OverBudgetError
        self._f.seek(start)
        return self._f.read(end - start)

    def box(self, pos: int) -> tuple[bytes, int, int] | None:
        """(type, payload start, end) of the complete box at ``pos``, or None if there is none."""
        header = self.read(pos, pos + 16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", header)
        payload = pos + 8
        if size == 1:
            if len(header) < 16:
                return None
            (size,) = struct.unpack_from(">Q", header, 8)
            payload += 8
        elif size == 0:
            size = self.size - pos
        end = pos + size
        if end < payload or end > self.size:
            return None
        return kind, payload, end


class OverBudgetError(Exception):
    """The scan read as much as the file's size allows; the rest is treated as damaged."""


def open_file(path: Path) -> BinaryIO:
    """Open a regular file for reading: never through a symbolic link, never blocking on a
    FIFO or device that took a segment's name."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Fmp4Error("not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class ImplausibleError(Exception):
    """A ``moof`` whose contents do not hold together: damage, or not a ``moof`` at all."""


def children(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of the boxes that exactly tile ``data[start:end]``."""
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise ImplausibleError
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            raise ImplausibleError
        yield kind, pos + 8, pos + size
        pos += size


def _lenient(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of boxes in ``data[start:end]``, up to the first that does
    not fit: headers written by other tools may carry padding we need not understand."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            return
        yield kind, pos + 8, pos + size
        pos += size


_U32 = struct.Struct(">I")


def u32(data: bytes, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise ImplausibleError
    value: int = _U32.unpack_from(data, pos)[0]
    return value


def parse_moov(data: bytes, facts: SegmentFacts) -> None:
    """Tracks and their fragment defaults; :class:`Fmp4Error` naming what is damaged."""
    for kind, payload, end in _lenient(data, 0, len(data)):
        if kind == b"trak":
            track = _parse_trak(data, payload, end)
            if track is not None:
                facts.tracks[track.track_id] = track
        elif kind == b"mvex":
            for sub, sub_payload, sub_end in _lenient(data, payload, end):
                if sub == b"trex":
                    _parse_trex(data, sub_payload, sub_end, facts.tracks)
    if not facts.tracks:
        raise Fmp4Error("movie header without a track")


def _parse_trex(data: bytes, start: int, end: int, tracks: dict[int, TrackFacts]) -> None:
    if end - start < 24:
        raise Fmp4Error(f"damaged movie header: trex box of {end - start} bytes")
    track_id, _index, duration, size, flags = struct.unpack_from(">IIIII", data, start + 4)
    track = tracks.get(track_id)
    if track is not None:
        track.default_duration, track.default_size, track.default_flags = duration, size, flags


def _parse_trak(data: bytes, start: int, end: int) -> TrackFacts | None:
    track: TrackFacts | None = None
    stack = [(start, end)]
    while stack:
        lo, hi = stack.pop()
        for kind, payload, box_end in _lenient(data, lo, hi):
            if kind in _TRAK_CONTAINERS:
                stack.append((payload, box_end))
                continue
            if kind not in (b"tkhd", b"mdhd", b"hdlr", b"stsd"):
                continue
            box = data[payload:box_end]
            version = box[0] if box else 0
            if kind == b"tkhd":
                track_id = _field(box, 20 if version == 1 else 12, kind)
                track = track or TrackFacts(track_id=track_id)
                track.track_id = track_id
                continue
            if track is None:
                track = TrackFacts(track_id=0)
            if kind == b"mdhd":
                track.timescale = _field(box, 20 if version == 1 else 12, kind)
            elif kind == b"hdlr":
                if len(box) < 12:
                    raise Fmp4Error(f"damaged movie header: hdlr box of {len(box)} bytes")
                track.kind = {b"vide": "video", b"soun": "audio"}.get(box[8:12], "other")
            elif len(box) >= 16:  # stsd: the first sample entry names the codec
                track.codec = _codec(box[12:16])
                if len(box) >= 8 + 8 + 8 + 16 + 4:
                    width, height = struct.unpack_from(">HH", box, 8 + 8 + 8 + 16)
                    if track.kind in ("video", "other") and width and height:
                        track.width, track.height = width, height
    return track


def _field(box: bytes, offset: int, kind: bytes) -> int:
    if len(box) < offset + 4:
        raise Fmp4Error(f"damaged movie header: {kind.decode()} box of {len(box)} bytes")
    return int.from_bytes(box[offset : offset + 4], "big")


def _codec(fourcc: bytes) -> str:
    known = _CODECS.get(fourcc)
    if known is not None:
        return known
    text = fourcc.decode("latin-1").strip()
    return text if text.isascii() and text.isprintable() and text else "unknown"
