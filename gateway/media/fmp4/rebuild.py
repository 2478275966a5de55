"""Repairing an fMP4 segment: cutting it at its last good fragment, or rebuilding it.

A file whose only damage is at its tail (a write cut by a crash) is truncated in place. One with
damaged fragments before good ones is rebuilt from its movie header and its good fragments
alone, with absolute data offsets moved along and the undecodable video samples between a
damaged stretch and the next keyframe left out.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from pathlib import Path
from typing import BinaryIO

from gateway.host.durable import fsync_dir
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
    u32,
)
from gateway.media.fmp4.fragments import Fragment, parse_tfhd, scan, walk

__all__ = ["repair"]


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
    with open_file(path) as f:
        reader = Reader(f, os.fstat(f.fileno()).st_size)
        try:
            facts, kept = walk(reader)
        except OverBudgetError:
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


def _rebuild(path: Path, facts: SegmentFacts, kept: list[Fragment], target: Path) -> int:
    """Write header and good fragments of ``path`` to ``target`` (synced); its size."""
    video = facts.video
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with open_file(path) as source, os.fdopen(fd, "wb", closefd=False) as out:
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
        for kind, payload, end in children(data, header, len(data)):
            if kind == b"traf":
                found = _trim_traf(moof, data, payload, end, video)
                if found is not None:
                    return found
    except ImplausibleError:
        return None
    return None


def _trim_traf(
    moof: bytearray, data: bytes, start: int, end: int, video: TrackFacts
) -> bool | None:
    """:func:`_trim_to_keyframe` for one ``traf``; None if it is not the video's, or is not
    laid out as our writer lays it out (one run, a ``tfdt``, data offsets)."""
    found = list(children(data, start, end))
    boxes = {kind: (payload, box_end) for kind, payload, box_end in found}
    if b"tfhd" not in boxes or b"tfdt" not in boxes or b"trun" not in boxes:
        return None
    if sum(kind == b"trun" for kind, _, _ in found) != 1:
        return None
    tfhd, tfhd_end = boxes[b"tfhd"]
    if u32(data, tfhd + 4, tfhd_end) != video.track_id:
        return None
    _, _, defaults, _ = parse_tfhd(data, tfhd, tfhd_end, {video.track_id: video}, 0)
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
    flags = u32(data, trun, end) & 0xFFFFFF
    count = u32(data, trun + 4, end)
    if not flags & 0x01:
        return None  # a run without a data offset cannot be moved past its first samples
    offset = u32(data, trun + 8, end)
    pos = trun + 12
    first_flags = default_flags
    if flags & 0x04:
        first_flags, pos = u32(data, pos, end), pos + 4
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
    keyframe = next((i for i, f in enumerate(sample_flags) if not f & NON_SYNC), count)
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
        chunk = source.read(min(length, SEARCH_CHUNK))
        if not chunk:
            raise Fmp4Error("file shrank while it was being rebuilt")
        out.write(chunk)
        length -= len(chunk)
