"""Reading the payload of a NAL unit: emulation prevention removed, then Exp-Golomb bits.

Everything read here comes from a camera, so it is untrusted: :class:`BitReader` raises
:class:`BitstreamError` (a ``ValueError``) and nothing else at the end of the data or on a code
no conforming stream holds, and every read is bounded (an Exp-Golomb code has at most 31
leading zeros, the largest that fits the 32-bit values of H.264 9.1 and H.265 9.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "MAX_PARAMETER_SET",
    "BitReader",
    "BitstreamError",
    "SequenceInfo",
    "reader",
    "unescape",
]

MAX_PARAMETER_SET = 4096
"""Bytes of a parameter set read at most. Encoders write tens of bytes (24 to 49 for the x264
and x265 streams of tests/fixtures); only a contrived SPS (64 reference picture sets of 16
pictures with the largest deltas) passes 4 KiB, which is also the copy FFmpeg keeps of one.
Refusing more bounds the work a hostile camera can ask for."""


class BitstreamError(ValueError):
    """A NAL unit that cannot be read: truncated, or a value outside what the standard allows."""


@dataclass(frozen=True, slots=True)
class SequenceInfo:
    """What a sequence parameter set says about the pictures, as a player would show them."""

    width: int
    """Luma samples per line after cropping (H.264 frame_cropping, H.265 conformance window)."""
    height: int
    frame_rate: Fraction | None
    """From the VUI timing (None when the SPS does not say): ``time_scale / (2 ·
    num_units_in_tick)`` for H.264 (a tick is a field), ``time_scale / num_units_in_tick``
    for H.265: what FFmpeg and ffprobe report, and for a variable-rate stream its maximum."""
    profile: int
    """profile_idc (H.264) or general_profile_idc (H.265)."""
    level: int
    """level_idc (H.264: 10 × level; H.265: 30 × level)."""
    chroma_format: int
    """chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4."""
    bit_depth_luma: int
    bit_depth_chroma: int


def unescape(nal: bytes | memoryview) -> bytes:
    """The RBSP of a NAL unit: each ``00 00 03`` becomes ``00 00`` (H.264 7.4.1, H.265 7.4.2).

    ``bytes.replace`` works left to right without overlap, as the standard's loop does: after
    an emulation prevention byte the count of zeros starts again.
    """
    return bytes(nal).replace(b"\x00\x00\x03", b"\x00\x00")


def reader(nal: bytes | memoryview, *, header: int) -> BitReader:
    """A reader of a parameter set's NAL unit, positioned after its ``header`` bytes."""
    if len(nal) > MAX_PARAMETER_SET:
        raise BitstreamError(f"parameter set of {len(nal)} bytes (at most 4096 are read)")
    if len(nal) <= header:
        raise BitstreamError("empty parameter set")
    return BitReader(unescape(nal), start=header)


class BitReader:
    """Big-endian bit reading of an RBSP with the standards' descriptors u(n), ue(v), se(v)."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, rbsp: bytes, *, start: int = 0) -> None:
        if len(rbsp) > MAX_PARAMETER_SET:
            raise BitstreamError(f"parameter set of {len(rbsp)} bytes (at most 4096 are read)")
        self._data = rbsp
        self._pos = start * 8
        self._end = len(rbsp) * 8

    @property
    def position(self) -> int:
        """Bits read so far, counted from the start of the data."""
        return self._pos

    def u(self, bits: int) -> int:
        """An unsigned integer of ``bits`` bits (at most 32)."""
        pos = self._pos
        end = pos + bits
        if end > self._end:
            raise BitstreamError("truncated parameter set")
        self._pos = end
        if not bits:
            return 0
        last = (end + 7) >> 3
        chunk = int.from_bytes(self._data[pos >> 3 : last], "big")
        return (chunk >> ((last << 3) - end)) & ((1 << bits) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, bits: int) -> None:
        if self._pos + bits > self._end:
            raise BitstreamError("truncated parameter set")
        self._pos += bits

    def ue(self, maximum: int = 0xFFFFFFFE) -> int:
        """An unsigned Exp-Golomb code, refused above ``maximum`` (the field's legal range)."""
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise BitstreamError("Exp-Golomb code longer than 32 bits")
        value = (1 << zeros) - 1 + self.u(zeros)
        if value > maximum:
            raise BitstreamError(f"value {value} out of range (at most {maximum})")
        return value

    def se(self, low: int = -(2**31) + 1, high: int = 2**31 - 1) -> int:
        """A signed Exp-Golomb code, refused outside ``low``..``high``."""
        code = self.ue()
        value = (code + 1) // 2 if code & 1 else -(code // 2)
        if not low <= value <= high:
            raise BitstreamError(f"value {value} out of range ({low}..{high})")
        return value
