"""Reading an fMP4 segment's fragments: the walk from the movie header to the end of the file.

Each ``moof`` is parsed (``tfhd``, ``tfdt``, ``trun``) and a fragment is kept only when it holds
together and its samples fit in the ``mdat`` that follows it. After damage, the walk resyncs on
the next plausible ``moof``, so good fragments after a damaged one are still found.
:func:`scan` sums up what the walk found; :mod:`gateway.media.fmp4.rebuild` repairs from it.
"""

from __future__ import annotations

import os
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path

from gateway.media.fmp4.boxes import (
    NON_SYNC,
    SEARCH_CHUNK,
    Fmp4Error,
    ImplausibleError,
    OverBudgetError,
    Reader,
    SegmentFacts,
    TrackFacts,
    children,
    open_file,
    parse_moov,
    u32,
)

__all__ = ["Fragment", "parse_tfhd", "scan", "walk"]

_MAX_MOOV = 16 * 1024 * 1024
"""An ``empty_moov`` header of a few tracks is about 1-4 KiB; 16 MiB bounds what a damaged size
field can make us read, while leaving room for any real header."""
_MAX_MOOF = 4 * 1024 * 1024
"""A 0.5 s fragment of 1080p25 video plus AAC audio has a ``moof`` of about 0.5 KiB (one 16-byte
entry per sample); 4 MiB is room for 250 000 samples and bounds each candidate checked."""
_MAX_HEADER_PREFIX = 1024 * 1024
"""A cut header is at most this long (a whole one is a few KiB): beyond, it is damage."""
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


def scan(path: Path) -> SegmentFacts:
    """Walk a segment's boxes and sum up its tracks; raise :class:`Fmp4Error` if unusable.

    A file with a movie header but no good fragment is returned with ``fragments == 0``.
    """
    with open_file(path) as f:
        reader = Reader(f, os.fstat(f.fileno()).st_size)
        try:
            return walk(reader)[0]
        except OverBudgetError:
            raise Fmp4Error("too damaged to read within its size budget") from None


def walk(reader: Reader) -> tuple[SegmentFacts, list[Fragment]]:
    """The facts of the file behind ``reader`` and its good fragments, in file order (raises
    :class:`OverBudgetError` only from the movie header: past it, the budget ends the walk)."""
    facts = SegmentFacts(size=reader.size, complete_size=0)
    kept: list[Fragment] = []
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
    except OverBudgetError:
        pass  # what was found so far stands; the rest counts as a damaged tail
    return facts, kept


def _read_header(reader: Reader, facts: SegmentFacts) -> int:
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
            parse_moov(reader.read(payload, end), facts)
            return end
        if kind not in _FILLER:
            raise Fmp4Error(f"box {_show(kind)} at byte {pos}, before the movie header")
        pos = end


def _is_header_prefix(reader: Reader, pos: int) -> bool:
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


@dataclass(slots=True)
class _Run:
    track_id: int
    base_time: int | None
    count: int
    duration: int
    first_flags: int


@dataclass(slots=True)
class Fragment:
    start: int
    moof_end: int
    end: int
    runs: list[_Run]
    relocate: list[int]
    """Offsets, within the ``moof`` box, of absolute base data offsets (tfhd flag 0x01) that
    must move with the fragment when the file is rebuilt."""
    resumes: bool = False
    """The fragment follows a damaged stretch."""


def _fragment_at(reader: Reader, pos: int, tracks: dict[int, TrackFacts]) -> Fragment | None:
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
    except ImplausibleError:
        return None
    for start, end in parser.ranges:
        if start < mdat_payload or end > mdat_end:
            return None  # samples outside the mdat that follows: not a fragment of ours
    return Fragment(pos, moof_end, mdat_end, parser.runs, parser.relocate)


class _MoofParser:
    """Runs, relocatable offsets and the file byte ranges the samples of one ``moof`` claim.

    ``data`` is the ``moof`` payload, which starts ``header`` bytes into the box at
    ``moof_start``. Raises :class:`ImplausibleError` on anything that does not fit.
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
        for kind, payload, end in children(self.data, 0, len(self.data)):
            if kind == b"mfhd":
                seen_mfhd = True
            elif kind == b"traf":
                previous_end = self._traf(payload, end, previous_end)
        if not seen_mfhd or not self.runs:
            raise ImplausibleError

    def _traf(self, start: int, end: int, previous_end: int) -> int:
        """Add one ``traf``'s runs; return where its sample data ends."""
        data = self.data
        track: TrackFacts | None = None
        defaults = (0, 0, 0)
        base = data_end = previous_end
        base_time: int | None = None
        for kind, payload, box_end in children(data, start, end):
            if kind == b"tfhd":
                track, base, defaults, offset_at = parse_tfhd(
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
                    raise ImplausibleError
                base_time = int.from_bytes(data[payload + 4 : payload + 4 + width], "big")
            elif kind == b"trun":
                if track is None:
                    raise ImplausibleError
                run, offset, size = _parse_trun(data, payload, box_end, track.track_id, defaults)
                # ISO 14496-12 8.8.8: without a data offset, a run follows the previous one.
                run_start = data_end if offset is None else base + offset
                run.base_time = base_time
                base_time = None if base_time is None else base_time + run.duration
                self.runs.append(run)
                self.ranges.append((run_start, run_start + size))
                data_end = run_start + size
        return data_end


def parse_tfhd(
    data: bytes, payload: int, end: int, tracks: dict[int, TrackFacts], base: int
) -> tuple[TrackFacts, int, tuple[int, int, int], int | None]:
    """(track, base data offset, default duration/size/flags, where an absolute base is)."""
    flags = u32(data, payload, end) & 0xFFFFFF
    track = tracks.get(u32(data, payload + 4, end))
    if track is None:
        raise ImplausibleError  # a track the movie header does not have
    duration, size, sample_flags = track.default_duration, track.default_size, track.default_flags
    pos = payload + 8
    offset_at: int | None = None
    if flags & 0x01:
        if pos + 8 > end:
            raise ImplausibleError
        offset_at = pos
        base = int.from_bytes(data[pos : pos + 8], "big")
        pos += 8
    pos += 4 if flags & 0x02 else 0
    if flags & 0x08:
        duration, pos = u32(data, pos, end), pos + 4
    if flags & 0x10:
        size, pos = u32(data, pos, end), pos + 4
    if flags & 0x20:
        sample_flags, pos = u32(data, pos, end), pos + 4
    if pos > end:
        raise ImplausibleError
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
    flags = u32(data, payload, end) & 0xFFFFFF
    count = u32(data, payload + 4, end)
    pos = payload + 8
    offset: int | None = None
    if flags & 0x01:
        offset = u32(data, pos, end)
        offset -= (offset & 0x80000000) << 1  # signed 32-bit
        pos += 4
    if flags & 0x04:
        first_flags, pos = u32(data, pos, end), pos + 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    stride = len(fields)
    if pos + 4 * stride * count > end:
        raise ImplausibleError  # more entries than the box holds
    entries = array("I")
    if stride:
        if entries.itemsize != 4:
            raise ImplausibleError  # no 32-bit array type on this platform: refuse, never guess
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
        raise ImplausibleError  # samples of no size: nothing would bound their count
    if 0x400 in fields and count and not flags & 0x04:
        first_flags = entries[fields.index(0x400)]
    return _Run(track_id, None, count, duration, first_flags), offset, size


def _resync(reader: Reader, start: int, tracks: dict[int, TrackFacts]) -> int | None:
    """Start of the next plausible fragment at or after ``start``, or None."""
    pos = start
    while pos + 8 <= reader.size:
        chunk_start = pos + 4  # the type sits 4 bytes into its box
        chunk = reader.read(chunk_start, chunk_start + SEARCH_CHUNK + 3)
        found = chunk.find(b"moof")
        while found != -1:
            candidate = chunk_start + found - 4
            if _fragment_at(reader, candidate, tracks) is not None:
                return candidate
            found = chunk.find(b"moof", found + 1)
        pos += SEARCH_CHUNK
    return None


def _apply(fragment: Fragment, facts: SegmentFacts) -> None:
    for run in fragment.runs:
        if run.count == 0:
            continue  # a run emptied by a repair: it holds no time and no sample
        track = facts.tracks[run.track_id]
        start = run.base_time if run.base_time is not None else track.end_time
        if track.first_time is None:
            track.first_time = start
            if track.kind == "video" and facts.starts_on_keyframe is None:
                facts.starts_on_keyframe = not run.first_flags & NON_SYNC
        track.end_time = max(track.end_time, start + run.duration)
        track.samples += run.count
    facts.fragments += 1
    facts.spans.append((fragment.start, fragment.end))
