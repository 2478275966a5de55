"""Where one picture's access unit ends and the next begins (H.264 7.4.1.2.3, H.265 7.4.2.4.4).

What the normaliser reads when a camera stamps two packets alike: whether the second is more
of the first picture or the next picture. Only the NAL unit headers up to a packet's first
slice, and one bit of that slice's header, are looked at.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.media.bitstream.h264 import AU_OPENERS as _H264_OPENERS
from gateway.media.bitstream.h264 import SLICE_HEADERS as _H264_SLICE_HEADERS
from gateway.media.bitstream.h264 import VCL as _H264_VCL
from gateway.media.bitstream.h265 import AU_OPENERS as _HEVC_OPENERS
from gateway.media.bitstream.h265 import VCL_END as _HEVC_VCL_END
from gateway.media.bitstream.nal import headers

__all__ = ["FIRST_SLICE", "OPENER", "OTHER", "SLICE", "Role", "h264_role", "h265_role", "scan"]

OTHER, OPENER, SLICE, FIRST_SLICE = range(4)
"""What a NAL unit says about access units: nothing; it opens the next access unit if it follows
a picture's slice (AUD, parameter sets, SEI...); a slice of a picture; a picture's first slice."""

Role = Callable[[bytes, int], int]
"""What the NAL unit whose header is at an offset of a packet says (one of the above)."""


def h264_role(data: bytes, at: int) -> int:
    """A picture's first slice has ``first_mb_in_slice`` = 0: an Exp-Golomb ue(v) whose code
    for 0 is a single 1 bit, so the first bit after the one-byte header."""
    kind = data[at] & 0x1F
    if kind in _H264_VCL:
        first = kind in _H264_SLICE_HEADERS and at + 1 < len(data) and data[at + 1] & 0x80
        return FIRST_SLICE if first else SLICE
    return OPENER if kind in _H264_OPENERS else OTHER


def h265_role(data: bytes, at: int) -> int:
    """A picture's first slice segment has ``first_slice_segment_in_pic_flag`` set: the first
    bit after the two-byte header, of the base layer (slices of other layers belong to the
    same access unit). The header is read inline rather than through :mod:`h265`'s helpers:
    this runs for each NAL unit of a packet stamped like its predecessor."""
    if at + 1 >= len(data):
        return OTHER
    header = data[at]
    kind = (header >> 1) & 0x3F
    base_layer = not (header & 1 or data[at + 1] & 0xF8)
    if kind < _HEVC_VCL_END:
        first = base_layer and at + 2 < len(data) and data[at + 2] & 0x80
        return FIRST_SLICE if first else SLICE
    return OPENER if base_layer and kind in _HEVC_OPENERS else OTHER


def scan(data: bytes, role: Role, after_slice: bool) -> tuple[bool, bool]:
    """(whether this Annex B packet begins the next access unit, whether it holds a slice),
    given whether the access unit so far holds a slice (``after_slice``).

    It begins the next one if, before its own first slice, it carries an AUD, a parameter set,
    an SEI... or if that first slice is a picture's first, and the access unit so far already
    holds a slice. Nothing after the packet's first slice is looked at: the parser that cut the
    stream into packets (FFmpeg's, for RTSP) is not second-guessed within a packet.

    H.264's frame_num is not compared: it needs the active SPS's ``log2_max_frame_num`` (so
    every SPS and PPS tracked), two non-reference pictures in a row share it anyway, and a
    picture whose first slice does not come first (arbitrary slice order, Baseline only) is
    something FFmpeg's decoder does not take either. The two fields of an interlaced frame are
    two access units (H.264 7.4.1.2): in two packets stamped alike, they become two samples.
    """
    for at in headers(data):
        kind = role(data, at)
        if kind >= SLICE:
            return after_slice and kind == FIRST_SLICE, True
        if kind == OPENER and after_slice:
            return True, False
    return False, False
