"""Cutting a buffer into NAL units: Annex B start codes, or lengths in front (AVCC/HVCC).

Cameras and FFmpeg's RTP depacketisers give Annex B (H.264 Annex B, H.265 Annex B): each NAL
unit after a ``00 00 01`` start code, often ``00 00 00 01``. MP4 and FLV carry the same units
with a big-endian length in front instead (ISO/IEC 14496-15), 4 bytes in what FFmpeg writes.

These run on every packet the forwarder sends, so they search with ``bytes.find`` (a C loop)
and give offsets, not copies: the caller slices a ``memoryview`` where it needs the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.media.bitstream.rbsp import BitstreamError

__all__ = ["START_CODE", "end_of", "headers", "is_annexb", "length_prefixed", "spans", "units"]

START_CODE = b"\x00\x00\x01"


def is_annexb(data: bytes) -> bool:
    """Whether ``data`` opens with a start code (and so is Annex B, not length-prefixed)."""
    return data.startswith(START_CODE) or data.startswith(b"\x00" + START_CODE)


def headers(data: bytes) -> Iterator[int]:
    """The offset of each NAL unit's header byte, in order.

    The next start code is searched for only when the next header is asked for, so a caller
    that stops at a picture's first slice never scans its slice data (the bulk of a packet).
    """
    find = data.find
    start = find(START_CODE)
    while start >= 0:
        header = start + 3
        if header < len(data):
            yield header
        start = find(START_CODE, header)


def end_of(data: bytes, header: int) -> int:
    """Where the NAL unit whose header is at ``header`` ends (see :func:`spans`)."""
    following = data.find(START_CODE, header)
    end = len(data) if following < 0 else following
    while end > header and data[end - 1] == 0:
        end -= 1
    return end


def spans(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit of an Annex B buffer, start codes excluded.

    Zero bytes before the next start code or at the end are left out: they are the first byte
    of a 4-byte start code or ``trailing_zero_8bits`` of the byte stream, never part of a NAL
    unit, whose last byte holds its RBSP stop bit. Empty units are skipped.
    """
    find = data.find
    start = find(START_CODE)
    while start >= 0:
        begin = start + 3
        following = find(START_CODE, begin)
        end = len(data) if following < 0 else following
        while end > begin and data[end - 1] == 0:
            end -= 1
        if end > begin:
            yield begin, end
        start = following


def units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B buffer, as copies (for parameter sets: small and kept)."""
    for begin, end in spans(data):
        yield data[begin:end]


def length_prefixed(data: bytes | memoryview, size: int = 4) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit of a length-prefixed buffer (an MP4 or FLV sample).

    ``size`` is the length field's width: 1, 2 or 4 (``lengthSizeMinusOne`` + 1 of the avcC or
    hvcC). :class:`BitstreamError` when a length runs past the end; zero lengths are skipped.
    """
    if size not in (1, 2, 4):
        raise BitstreamError(f"NAL unit length field of {size} bytes (1, 2 or 4)")
    pos, total = 0, len(data)
    while pos < total:
        begin = pos + size
        if begin > total:
            raise BitstreamError(f"truncated NAL unit length at byte {pos}")
        end = begin + int.from_bytes(data[pos:begin], "big")
        if end > total:
            raise BitstreamError(f"NAL unit at byte {pos} runs {end - total} bytes past the end")
        if end > begin:
            yield begin, end
        pos = end
