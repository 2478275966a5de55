"""Reading fragmented MP4 segments without decoding: box walk, facts and crash repair.

Only box headers and the small ``moov``/``moof`` boxes are read; ``mdat`` payloads are skipped,
so a day of recordings is indexed in seconds.

Every file is untrusted input: a damaged or hostile file gives :class:`Fmp4Error` (or
``OSError`` for a real I/O error), never another exception, and the work done is bounded by
the file's size. Each count and offset is checked against the box that holds it, and a
fragment is kept only when its samples fit in the ``mdat`` that follows it.

After damage, the walk resyncs on the next plausible ``moof`` (sane size, followed by an
``mdat`` whose size fits, every sample run inside that ``mdat``), so good fragments after a
damaged one are still found. :func:`repair` cuts a file that was being written when the power
went to its last good fragment; when fragments before it are damaged, it rebuilds the file
from the movie header and the good fragments alone.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gateway.host.durable import fsync_dir
from gateway.media.codec import Codec

__all__ = ["Fmp4Error", "SegmentFacts", "TrackFacts", "repair", "scan"]

_MAX_MOOV = 16 * 1024 * 1024
"""An ``empty_moov`` header of a few tracks is about 1-4 KiB; 16 MiB bounds what a damaged size
field can make us read, while leaving room for any real header."""
_MAX_MOOF = 4 * 1024 * 1024
"""A 0.5 s fragment of 1080p25 video plus AAC audio has a ``moof`` of about 0.5 KiB (one 16-byte
entry per sample); 4 MiB is room for 250 000 samples and bounds each candidate checked."""
_MAX_HEADER_PREFIX = 1024 * 1024
"""A cut header is at most this long (a whole one is a few KiB): beyond, it is damage."""
_SEARCH_CHUNK = 1024 * 1024
"""Bytes read at a time while looking for the next ``moof`` after damage."""
_BUDGET_FACTOR = 4
_BUDGET_EXTRA = 64 * 1024 * 1024
"""Bytes a scan may read in all: 4 times the file plus 64 MiB. A normal scan reads well under
1 % of the file; the budget only stops a file crafted so that every candidate ``moof`` is
nearly plausible from making the walk quadratic."""
_NON_SYNC = 0x00010000
"""``sample_is_non_sync_sample`` in ISO/IEC 14496-12 sample flags."""

_FILLER = {
    b"ftyp",
    b"styp",
    b"free",
    b"skip",
    b"sidx",
    b"uuid",
    b"mfra",
    b"prft",
    b"emsg",
    b"meta",
    b"udta",
    b"pdin",
}
"""Top-level boxes that may sit around the movie header and fragments without being damage."""
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


# -- reading the file ------------------------------------------------------------------------


class _Reader:
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
            raise _OverBudgetError
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


class _OverBudgetError(Exception):
    """The scan read as much as the file's size allows; the rest is treated as damaged."""


def _open(path: Path) -> BinaryIO:
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


# -- the walk --------------------------------------------------------------------------------


def scan(path: Path) -> SegmentFacts:
    """Walk a segment's boxes and sum up its tracks; raise :class:`Fmp4Error` if unusable.

    A file with a movie header but no good fragment is returned with ``fragments == 0``.
    """
    with _open(path) as f:
        reader = _Reader(f, os.fstat(f.fileno()).st_size)
        try:
            return _scan(reader)[0]
        except _OverBudgetError:
            raise Fmp4Error("too damaged to read within its size budget") from None


def _scan(reader: _Reader) -> tuple[SegmentFacts, list[_Fragment]]:
    facts = SegmentFacts(size=reader.size, complete_size=0)
    kept: list[_Fragment] = []
    pos = _read_header(reader, facts)
    facts.header_end = facts.complete_size = pos
    damage_from: int | None = None
    try:
        while pos < reader.size:
            fragment = _fragment_at(reader, pos, facts.tracks)
            if fragment is not None:
                if damage_from is not None:
                    facts.damaged += 1
                    facts.damaged_bytes += pos - damage_from
                    fragment.resumes = True
                    damage_from = None
                _apply(fragment, facts)
                kept.append(fragment)
                pos = fragment.end
                facts.complete_size = pos
                continue
            box = reader.box(pos)
            if box is not None and box[0] in _FILLER:
                pos = box[2]
                if damage_from is None and facts.fragments:
                    facts.complete_size = pos
                continue
            found = _resync(reader, pos + 1, facts.tracks)
            if found is None:
                break  # damage or a cut at the tail
            damage_from = pos if damage_from is None else damage_from
            pos = found
    except _OverBudgetError:
        pass  # what was found so far stands; the rest counts as a damaged tail
    return facts, kept


def _read_header(reader: _Reader, facts: SegmentFacts) -> int:
    """Walk to the end of the movie header; raise :class:`Fmp4Error` if there is none."""
    pos = 0
    while True:
        box = reader.box(pos)
        if box is None:
            header_only = _is_header_prefix(reader, pos)
            what = "cut before it was written" if header_only else "damaged"
            raise Fmp4Error(
                f"no movie header (moov): not a segment, or {what}", header_only=header_only
            )
        kind, payload, end = box
        if kind == b"moov":
            if end - payload > _MAX_MOOV:
                raise Fmp4Error(f"movie header of {end - payload} bytes: damaged size")
            _parse_moov(reader.read(payload, end), facts)
            return end
        if kind not in _FILLER:
            raise Fmp4Error(f"box {_show(kind)} at byte {pos}, before the movie header")
        pos = end


def _is_header_prefix(reader: _Reader, pos: int) -> bool:
    """The file holds nothing but the start of a header: it stops at ``pos`` inside a
    ``ftyp``/``moov`` being written, and no fragment box is anywhere in it (a damaged header
    size in front of real media is not a header prefix)."""
    if reader.size > _MAX_HEADER_PREFIX:
        return False
    data = reader.read(0, reader.size)
    if pos + 8 <= len(data) and data[pos + 4 : pos + 8] not in (b"ftyp", b"moov", b"free"):
        return False
    return b"moof" not in data and b"mdat" not in data


def _show(kind: bytes) -> str:
    text = kind.decode("latin-1")
    return repr(text) if text.isprintable() else kind.hex()


# -- fragments -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    track_id: int
    base_time: int | None
    count: int
    duration: int
    first_flags: int


@dataclass(slots=True)
class _Fragment:
    start: int
    moof_end: int
    end: int
    runs: list[_Run]
    relocate: list[int]
    """Offsets, within the ``moof`` box, of absolute base data offsets (tfhd flag 0x01) that
    must move with the fragment when the file is rebuilt."""
    resumes: bool = False
    """The fragment follows a damaged stretch."""


def _fragment_at(reader: _Reader, pos: int, tracks: dict[int, TrackFacts]) -> _Fragment | None:
    """The fragment (``moof`` then ``mdat``) at ``pos``, if it is whole and self-consistent."""
    moof = reader.box(pos)
    if moof is None or moof[0] != b"moof":
        return None
    _, payload, moof_end = moof
    if moof_end - pos > _MAX_MOOF or moof_end - payload < 8:
        return None
    mdat = reader.box(moof_end)
    if mdat is None or mdat[0] != b"mdat":
        return None
    _, mdat_payload, mdat_end = mdat
    parser = _MoofParser(reader.read(payload, moof_end), payload - pos, pos, tracks)
    try:
        parser.parse()
    except _ImplausibleError:
        return None
    for start, end in parser.ranges:
        if start < mdat_payload or end > mdat_end:
            return None  # samples outside the mdat that follows: not a fragment of ours
    return _Fragment(pos, moof_end, mdat_end, parser.runs, parser.relocate)


class _ImplausibleError(Exception):
    """A ``moof`` whose contents do not hold together: damage, or not a ``moof`` at all."""


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of the boxes that exactly tile ``data[start:end]``."""
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise _ImplausibleError
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            raise _ImplausibleError
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


def _u32(data: bytes, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise _ImplausibleError
    value: int = _U32.unpack_from(data, pos)[0]
    return value


class _MoofParser:
    """Runs, relocatable offsets and the file byte ranges the samples of one ``moof`` claim.

    ``data`` is the ``moof`` payload, which starts ``header`` bytes into the box at
    ``moof_start``. Raises :class:`_ImplausibleError` on anything that does not fit.
    """

    def __init__(
        self, data: bytes, header: int, moof_start: int, tracks: dict[int, TrackFacts]
    ) -> None:
        self.data = data
        self.header = header
        self.moof_start = moof_start
        self.tracks = tracks
        self.runs: list[_Run] = []
        self.relocate: list[int] = []
        self.ranges: list[tuple[int, int]] = []

    def parse(self) -> None:
        seen_mfhd = False
        # ISO 14496-12 8.8.7: a traf without an explicit base starts where the previous ended.
        previous_end = self.moof_start
        for kind, payload, end in _children(self.data, 0, len(self.data)):
            if kind == b"mfhd":
                seen_mfhd = True
            elif kind == b"traf":
                previous_end = self._traf(payload, end, previous_end)
        if not seen_mfhd or not self.runs:
            raise _ImplausibleError

    def _traf(self, start: int, end: int, previous_end: int) -> int:
        """Add one ``traf``'s runs; return where its sample data ends."""
        data = self.data
        track: TrackFacts | None = None
        defaults = (0, 0, 0)
        base = data_end = previous_end
        base_time: int | None = None
        for kind, payload, box_end in _children(data, start, end):
            if kind == b"tfhd":
                track, base, defaults, offset_at = _parse_tfhd(
                    data, payload, box_end, self.tracks, base
                )
                if offset_at is not None:
                    self.relocate.append(self.header + offset_at)
                elif data[payload + 1] & 0x02:  # default-base-is-moof, as our writer sets
                    base = self.moof_start
                data_end = base
            elif kind == b"tfdt":
                version = data[payload] if payload < box_end else 0
                width = 8 if version == 1 else 4
                if payload + 4 + width > box_end:
                    raise _ImplausibleError
                base_time = int.from_bytes(data[payload + 4 : payload + 4 + width], "big")
            elif kind == b"trun":
                if track is None:
                    raise _ImplausibleError
                run, offset, size = _parse_trun(data, payload, box_end, track.track_id, defaults)
                # ISO 14496-12 8.8.8: without a data offset, a run follows the previous one.
                run_start = data_end if offset is None else base + offset
                run.base_time = base_time
                base_time = None if base_time is None else base_time + run.duration
                self.runs.append(run)
                self.ranges.append((run_start, run_start + size))
                data_end = run_start + size
        return data_end


def _parse_tfhd(
    data: bytes, payload: int, end: int, tracks: dict[int, TrackFacts], base: int
) -> tuple[TrackFacts, int, tuple[int, int, int], int | None]:
    """(track, base data offset, default duration/size/flags, where an absolute base is)."""
    flags = _u32(data, payload, end) & 0xFFFFFF
    track = tracks.get(_u32(data, payload + 4, end))
    if track is None:
        raise _ImplausibleError  # a track the movie header does not have
    duration, size, sample_flags = track.default_duration, track.default_size, track.default_flags
    pos = payload + 8
    offset_at: int | None = None
    if flags & 0x01:
        if pos + 8 > end:
            raise _ImplausibleError
        offset_at = pos
        base = int.from_bytes(data[pos : pos + 8], "big")
        pos += 8
    pos += 4 if flags & 0x02 else 0
    if flags & 0x08:
        duration, pos = _u32(data, pos, end), pos + 4
    if flags & 0x10:
        size, pos = _u32(data, pos, end), pos + 4
    if flags & 0x20:
        sample_flags, pos = _u32(data, pos, end), pos + 4
    if pos > end:
        raise _ImplausibleError
    return track, base, (duration, size, sample_flags), offset_at


def _parse_trun(
    data: bytes, payload: int, end: int, track_id: int, defaults: tuple[int, int, int]
) -> tuple[_Run, int | None, int]:
    """One run: (the run, its data offset if given, bytes of its samples).

    The sample count is bounded by the box: each per-sample field takes 4 bytes of it. Without
    per-sample sizes, every sample takes ``default_size`` (at least 1 byte) of the ``mdat``,
    which the caller checks; without per-sample fields there is no per-sample work at all.
    """
    default_duration, default_size, first_flags = defaults
    flags = _u32(data, payload, end) & 0xFFFFFF
    count = _u32(data, payload + 4, end)
    pos = payload + 8
    offset: int | None = None
    if flags & 0x01:
        offset = _u32(data, pos, end)
        offset -= (offset & 0x80000000) << 1  # signed 32-bit
        pos += 4
    if flags & 0x04:
        first_flags, pos = _u32(data, pos, end), pos + 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    stride = len(fields)
    if pos + 4 * stride * count > end:
        raise _ImplausibleError  # more entries than the box holds
    entries = array("I")
    if stride:
        if entries.itemsize != 4:
            raise _ImplausibleError  # no 32-bit array type on this platform: refuse, never guess
        entries.frombytes(data[pos : pos + 4 * stride * count])
        if sys.byteorder == "little":
            entries.byteswap()

    def column(bit: int) -> array[int]:
        return entries[fields.index(bit) :: stride]

    duration = sum(column(0x100)) if 0x100 in fields else count * default_duration
    if 0x200 in fields:
        size = sum(column(0x200))
    elif default_size > 0 or count == 0:
        size = count * default_size
    else:
        raise _ImplausibleError  # samples of no size: nothing would bound their count
    if 0x400 in fields and count and not flags & 0x04:
        first_flags = entries[fields.index(0x400)]
    return _Run(track_id, None, count, duration, first_flags), offset, size


def _resync(reader: _Reader, start: int, tracks: dict[int, TrackFacts]) -> int | None:
    """Start of the next plausible fragment at or after ``start``, or None."""
    pos = start
    while pos + 8 <= reader.size:
        chunk_start = pos + 4  # the type sits 4 bytes into its box
        chunk = reader.read(chunk_start, chunk_start + _SEARCH_CHUNK + 3)
        found = chunk.find(b"moof")
        while found != -1:
            candidate = chunk_start + found - 4
            if _fragment_at(reader, candidate, tracks) is not None:
                return candidate
            found = chunk.find(b"moof", found + 1)
        pos += _SEARCH_CHUNK
    return None


def _apply(fragment: _Fragment, facts: SegmentFacts) -> None:
    for run in fragment.runs:
        if run.count == 0:
            continue  # a run emptied by a repair: it holds no time and no sample
        track = facts.tracks[run.track_id]
        start = run.base_time if run.base_time is not None else track.end_time
        if track.first_time is None:
            track.first_time = start
            if track.kind == "video" and facts.starts_on_keyframe is None:
                facts.starts_on_keyframe = not run.first_flags & _NON_SYNC
        track.end_time = max(track.end_time, start + run.duration)
        track.samples += run.count
    facts.fragments += 1
    facts.spans.append((fragment.start, fragment.end))


# -- the movie header ------------------------------------------------------------------------


def _parse_moov(data: bytes, facts: SegmentFacts) -> None:
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


# -- repair ----------------------------------------------------------------------------------


def repair(path: Path, *, rebuild_to: Path | None = None) -> SegmentFacts:
    """Make ``path`` end on its last good fragment; raise :class:`Fmp4Error` if it has none.

    - Damage only at the tail (a write cut by a crash): the file is truncated in place.
    - Damaged fragments before good ones: the movie header and the good fragments alone are
      written, synced, to ``rebuild_to`` (it must not exist; same folder, so that a rename
      finishes the job) and ``path`` is left as it was, for the caller to keep. Without
      ``rebuild_to``, the rebuilt file replaces ``path``. ``tfdt`` keeps each fragment's place
      on the timeline; offsets relative to each ``moof`` stay valid, and absolute ones are
      moved with it. Video samples between a damaged stretch and the next keyframe cannot be
      decoded, so they are left out (``trimmed``) and the file decodes without an error.

    The returned facts tell what happened: ``damaged`` (stretches dropped before the last good
    fragment), ``rebuilt``, ``trimmed``, and ``size`` (of the file as it now is).
    """
    with _open(path) as f:
        reader = _Reader(f, os.fstat(f.fileno()).st_size)
        try:
            facts, kept = _scan(reader)
        except _OverBudgetError:
            raise Fmp4Error("too damaged to read within its size budget") from None
    if facts.fragments == 0:
        header_only = facts.size <= facts.header_end
        raise Fmp4Error("no complete fragment", header_only=header_only)
    if facts.damaged == 0:
        if facts.complete_size < facts.size:
            with path.open("r+b") as f:
                f.truncate(facts.complete_size)
                f.flush()
                os.fsync(f.fileno())
        facts.size = facts.complete_size
        return facts
    target = rebuild_to if rebuild_to is not None else path.with_name(f".{path.name}.rebuild")
    size = _rebuild(path, facts, kept, target)
    if rebuild_to is None:
        os.replace(target, path)
        fsync_dir(path.parent)
    rebuilt = scan(target if rebuild_to is not None else path)
    if rebuilt.fragments != facts.fragments or rebuilt.damaged or rebuilt.complete_size != size:
        raise Fmp4Error("rebuilt file does not read back as written")
    rebuilt.rebuilt = True
    rebuilt.damaged, rebuilt.damaged_bytes = facts.damaged, facts.damaged_bytes
    rebuilt.trimmed = facts.frames - rebuilt.frames
    return rebuilt


def _rebuild(path: Path, facts: SegmentFacts, kept: list[_Fragment], target: Path) -> int:
    """Write header and good fragments of ``path`` to ``target`` (synced); its size."""
    video = facts.video
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with _open(path) as source, os.fdopen(fd, "wb", closefd=False) as out:
            out.write(source.read(facts.header_end))
            written = facts.header_end
            seeking = False  # for a keyframe, after a damaged stretch
            for fragment in kept:
                source.seek(fragment.start)
                moof = bytearray(source.read(fragment.moof_end - fragment.start))
                for offset in fragment.relocate:
                    value = int.from_bytes(moof[offset : offset + 8], "big")
                    value += written - fragment.start
                    moof[offset : offset + 8] = value.to_bytes(8, "big")
                seeking = seeking or fragment.resumes
                if seeking and video is not None:
                    trimmed = _trim_to_keyframe(moof, video)
                    seeking = trimmed is not None and not trimmed
                out.write(moof)
                _copy(source, out, fragment.end - fragment.moof_end)
                written += fragment.end - fragment.start
            out.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    return written


def _trim_to_keyframe(moof: bytearray, video: TrackFacts) -> bool | None:
    """Leave out, in place, the video samples of ``moof`` before its first keyframe.

    Every box keeps its size (the entries taken out of the ``trun`` become a ``free`` box in
    the ``traf``), so the sample data stays where the offsets say. Returns whether the
    fragment now starts on a keyframe (False: it had none, and lost all its video), or None
    when the fragment is not laid out as our writer lays it out and is kept as it is.
    """
    header = 16 if int.from_bytes(moof[0:4], "big") == 1 else 8
    data = bytes(moof)
    try:
        for kind, payload, end in _children(data, header, len(data)):
            if kind == b"traf":
                found = _trim_traf(moof, data, payload, end, video)
                if found is not None:
                    return found
    except _ImplausibleError:
        return None
    return None


def _trim_traf(
    moof: bytearray, data: bytes, start: int, end: int, video: TrackFacts
) -> bool | None:
    """:func:`_trim_to_keyframe` for one ``traf``; None if it is not the video's, or is not
    laid out as our writer lays it out (one run, a ``tfdt``, data offsets)."""
    children = list(_children(data, start, end))
    boxes = {kind: (payload, box_end) for kind, payload, box_end in children}
    if b"tfhd" not in boxes or b"tfdt" not in boxes or b"trun" not in boxes:
        return None
    if sum(kind == b"trun" for kind, _, _ in children) != 1:
        return None
    tfhd, tfhd_end = boxes[b"tfhd"]
    if _u32(data, tfhd + 4, tfhd_end) != video.track_id:
        return None
    _, _, defaults, _ = _parse_tfhd(data, tfhd, tfhd_end, {video.track_id: video}, 0)
    trun, trun_end = boxes[b"trun"]
    cut = _cut_run(data, trun, trun_end, defaults)
    if cut is None or cut[1] == 0:
        return None if cut is None else True
    body, keyframe, count, dropped_time = cut
    freed = (trun_end - trun) - len(body)
    if freed < 8:
        return None  # too little room for a free box in place of the entries
    tfdt, tfdt_end = boxes[b"tfdt"]
    width = 8 if data[tfdt] == 1 else 4
    if tfdt + 4 + width > tfdt_end:
        return None
    decode_time = int.from_bytes(data[tfdt + 4 : tfdt + 4 + width], "big") + dropped_time
    if decode_time >= 1 << (8 * width):
        return None
    moof[tfdt + 4 : tfdt + 4 + width] = decode_time.to_bytes(width, "big")
    trun_box = struct.pack(">I4s", 8 + len(body), b"trun") + body
    moof[trun - 8 : trun_end] = trun_box + struct.pack(">I4s", freed, b"free") + bytes(freed - 8)
    return keyframe < count


def _cut_run(
    data: bytes, trun: int, end: int, defaults: tuple[int, int, int]
) -> tuple[bytes, int, int, int] | None:
    """A ``trun`` payload without the samples before the first keyframe: (payload, index of
    the keyframe (the count if none), sample count, duration left out); None if it cannot."""
    default_duration, default_size, default_flags = defaults
    flags = _u32(data, trun, end) & 0xFFFFFF
    count = _u32(data, trun + 4, end)
    if not flags & 0x01:
        return None  # a run without a data offset cannot be moved past its first samples
    offset = _u32(data, trun + 8, end)
    pos = trun + 12
    first_flags = default_flags
    if flags & 0x04:
        first_flags, pos = _u32(data, pos, end), pos + 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    stride = len(fields)
    if pos + 4 * stride * count > end:
        return None
    entries = array("I")
    entries.frombytes(data[pos : pos + 4 * stride * count])
    if sys.byteorder == "little":
        entries.byteswap()

    def column(bit: int) -> list[int] | None:
        return list(entries[fields.index(bit) :: stride]) if bit in fields else None

    sample_flags = column(0x400) or [default_flags] * count
    if flags & 0x04 and count:
        sample_flags[0] = first_flags
    keyframe = next((i for i, f in enumerate(sample_flags) if not f & _NON_SYNC), count)
    durations, sizes = column(0x100), column(0x200)
    dropped_time = sum(durations[:keyframe]) if durations else keyframe * default_duration
    offset -= (offset & 0x80000000) << 1  # signed 32-bit
    offset += sum(sizes[:keyframe]) if sizes else keyframe * default_size
    if not -(2**31) <= offset < 2**31:
        return None
    kept = entries[keyframe * stride :]
    if sys.byteorder == "little":
        kept.byteswap()
    body = struct.pack(">III", data[trun] << 24 | flags, count - keyframe, offset & 0xFFFFFFFF)
    if flags & 0x04:
        body += struct.pack(">I", sample_flags[keyframe] if keyframe < count else first_flags)
    return body + kept.tobytes(), keyframe, count, dropped_time


def _copy(source: BinaryIO, out: BinaryIO, length: int) -> None:
    while length > 0:
        chunk = source.read(min(length, _SEARCH_CHUNK))
        if not chunk:
            raise Fmp4Error("file shrank while it was being rebuilt")
        out.write(chunk)
        length -= len(chunk)
