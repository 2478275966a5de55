"""Reading fragmented MP4 segments without decoding: box walk, facts and crash repair.

Only box headers and the small ``moov``/``moof`` boxes are read; ``mdat`` payloads are skipped,
so a day of recordings is indexed in seconds. :func:`repair` cuts a file that was being written
when the power went to its last complete fragment, which then plays as an ordinary segment.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["Fmp4Error", "SegmentFacts", "TrackFacts", "repair", "scan"]

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf"}
_MAX_HEADER_BOX = 16 * 1024 * 1024
_CODECS = {
    b"avc1": "h264",
    b"avc3": "h264",
    b"hvc1": "hevc",
    b"hev1": "hevc",
    b"mp4a": "aac",
    b"Opus": "opus",
}


class Fmp4Error(Exception):
    """The file is not a fragmented MP4 segment, or has no complete fragment."""


@dataclass(slots=True)
class TrackFacts:
    track_id: int
    kind: str = "other"
    codec: str = "unknown"
    timescale: int = 0
    width: int = 0
    height: int = 0
    default_duration: int = 0
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
    """Bytes in the file that belong to complete boxes."""
    complete_size: int
    """Bytes up to the end of the last complete fragment (what :func:`repair` keeps)."""
    fragments: int = 0
    tracks: dict[int, TrackFacts] = field(default_factory=dict)

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


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """Yield (type, box start, payload start, box end) of complete boxes in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                return
            (size,) = struct.unpack(">Q", large)
            payload += 8
        elif size == 0:
            size = end - pos
        if size < payload - pos or pos + size > end:
            return  # truncated or corrupt: stop at the last complete box
        yield kind, pos, payload, pos + size
        pos += size


def _read(f: BinaryIO, start: int, end: int) -> bytes:
    if end - start > _MAX_HEADER_BOX:
        raise Fmp4Error("metadata box too large")
    f.seek(start)
    return f.read(end - start)


def scan(path: Path) -> SegmentFacts:
    """Walk a segment's boxes and sum up its tracks; raise :class:`Fmp4Error` if unusable."""
    with path.open("rb") as f:
        end = os.fstat(f.fileno()).st_size
        facts = SegmentFacts(size=0, complete_size=0)
        seen_moov = False
        pending_moof: bytes | None = None
        for kind, _box_start, payload, box_end in _boxes(f, 0, end):
            facts.size = box_end
            if kind == b"moov":
                _parse_moov(f, payload, box_end, facts)
                seen_moov = True
                facts.complete_size = box_end
            elif kind == b"moof":
                pending_moof = _read(f, payload, box_end)
            elif kind == b"mdat" and pending_moof is not None:
                _parse_moof(pending_moof, facts)
                pending_moof = None
                facts.fragments += 1
                facts.complete_size = box_end
            elif kind in (b"mfra", b"free", b"skip", b"styp", b"sidx") and pending_moof is None:
                facts.complete_size = box_end
        if not seen_moov:
            raise Fmp4Error("no movie header (moov): not a segment, or cut before it was written")
        return facts


def repair(path: Path) -> SegmentFacts:
    """Cut ``path`` after its last complete fragment; raise :class:`Fmp4Error` if none."""
    facts = scan(path)
    if facts.fragments == 0:
        raise Fmp4Error("no complete fragment")
    if facts.complete_size < path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(facts.complete_size)
            f.flush()
            os.fsync(f.fileno())
    facts.size = facts.complete_size
    return facts


def _parse_moov(f: BinaryIO, start: int, end: int, facts: SegmentFacts) -> None:
    for kind, _, payload, box_end in _boxes(f, start, end):
        if kind == b"trak":
            track = _parse_trak(f, payload, box_end)
            if track is not None:
                facts.tracks[track.track_id] = track
        elif kind == b"mvex":
            for sub, _, sub_payload, sub_end in _boxes(f, payload, box_end):
                if sub == b"trex":
                    data = _read(f, sub_payload, sub_end)
                    track_id, _index, duration = struct.unpack_from(">III", data, 4)
                    if track_id in facts.tracks:
                        facts.tracks[track_id].default_duration = duration


def _parse_trak(f: BinaryIO, start: int, end: int) -> TrackFacts | None:
    track: TrackFacts | None = None
    stack = [(start, end)]
    while stack:
        lo, hi = stack.pop()
        for kind, _, payload, box_end in _boxes(f, lo, hi):
            if kind in _CONTAINERS:
                stack.append((payload, box_end))
                continue
            if kind not in (b"tkhd", b"mdhd", b"hdlr", b"stsd"):
                continue
            data = _read(f, payload, box_end)
            version = data[0]
            if kind == b"tkhd":
                track_id = struct.unpack_from(">I", data, 20 if version == 1 else 12)[0]
                track = track or TrackFacts(track_id=track_id)
                track.track_id = track_id
            elif track is None:
                track = TrackFacts(track_id=0)
            if kind == b"mdhd":
                track.timescale = struct.unpack_from(">I", data, 20 if version == 1 else 12)[0]
            elif kind == b"hdlr":
                handler = data[8:12]
                track.kind = {b"vide": "video", b"soun": "audio"}.get(handler, "other")
            elif kind == b"stsd" and len(data) >= 16:
                fourcc = data[12:16]
                track.codec = _CODECS.get(fourcc, fourcc.decode("latin-1").strip())
                if len(data) >= 8 + 8 + 8 + 16 + 4:
                    width, height = struct.unpack_from(">HH", data, 8 + 8 + 8 + 16)
                    if track.kind in ("video", "other") and width and height:
                        track.width, track.height = width, height
    return track


def _parse_moof(data: bytes, facts: SegmentFacts) -> None:
    for traf_start, traf_end in _children(data, 0, len(data), b"traf"):
        track: TrackFacts | None = None
        default_duration = 0
        base_time: int | None = None
        for kind, payload, _box_end in _iter(data, traf_start, traf_end):
            flags = int.from_bytes(data[payload + 1 : payload + 4], "big")
            if kind == b"tfhd":
                track_id = struct.unpack_from(">I", data, payload + 4)[0]
                track = facts.tracks.get(track_id)
                if track is None:
                    break
                default_duration = track.default_duration
                pos = payload + 8
                pos += 8 if flags & 0x01 else 0
                pos += 4 if flags & 0x02 else 0
                if flags & 0x08:
                    default_duration = struct.unpack_from(">I", data, pos)[0]
            elif kind == b"tfdt":
                version = data[payload]
                fmt = ">Q" if version == 1 else ">I"
                base_time = struct.unpack_from(fmt, data, payload + 4)[0]
            elif kind == b"trun" and track is not None:
                count = struct.unpack_from(">I", data, payload + 4)[0]
                pos = payload + 8
                pos += 4 if flags & 0x01 else 0
                pos += 4 if flags & 0x04 else 0
                per_sample = 4 * sum(bool(flags & bit) for bit in (0x100, 0x200, 0x400, 0x800))
                total = 0
                for i in range(count):
                    if flags & 0x100:
                        total += struct.unpack_from(">I", data, pos + i * per_sample)[0]
                    else:
                        total += default_duration
                start = base_time if base_time is not None else track.end_time
                if track.first_time is None:
                    track.first_time = start
                track.end_time = max(track.end_time, start + total)
                track.samples += count
                base_time = start + total


def _iter(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            return
        yield kind, pos + 8, pos + size
        pos += size


def _children(data: bytes, start: int, end: int, wanted: bytes) -> Iterator[tuple[int, int]]:
    for kind, payload, box_end in _iter(data, start, end):
        if kind == wanted:
            yield payload, box_end
