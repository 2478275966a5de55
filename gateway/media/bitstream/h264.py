"""H.264 (ITU-T H.264 | ISO/IEC 14496-10): NAL unit types, parameter sets, the SPS.

A NAL unit opens with one header byte: forbidden_zero_bit, nal_ref_idc (2 bits), nal_unit_type
(5 bits, 7.3.1). Numbers in the docstrings are the standard's clauses.
"""

from __future__ import annotations

from enum import IntEnum
from fractions import Fraction
from typing import Final

from gateway.media.bitstream.nal import end_of, headers
from gateway.media.bitstream.rbsp import BitReader, BitstreamError, SequenceInfo, reader

__all__ = [
    "AU_OPENERS",
    "HIGH_PROFILES",
    "PARAMETER_SETS",
    "SLICE_HEADERS",
    "VCL",
    "NalType",
    "nal_type",
    "parameter_sets",
    "parse_sps",
    "sps_format",
]


class NalType(IntEnum):
    """nal_unit_type (Table 7-1), and the RTP aggregation and fragmentation types of RFC 6184
    (24-29, unspecified in H.264 itself)."""

    SLICE = 1
    """A slice of a non-IDR picture."""
    PARTITION_A = 2
    PARTITION_B = 3
    PARTITION_C = 4
    IDR = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    """Access unit delimiter."""
    END_OF_SEQUENCE = 10
    END_OF_STREAM = 11
    FILLER = 12
    SPS_EXTENSION = 13
    PREFIX = 14
    SUBSET_SPS = 15
    DEPTH_PARAMETER_SET = 16
    AUXILIARY_SLICE = 19
    SLICE_EXTENSION = 20
    SLICE_EXTENSION_DEPTH = 21
    STAP_A = 24
    STAP_B = 25
    MTAP16 = 26
    MTAP24 = 27
    FU_A = 28
    FU_B = 29


def nal_type(header: int) -> int:
    """nal_unit_type of a NAL unit's header byte."""
    return header & 0x1F


VCL: Final = frozenset({1, 2, 3, 4, 5})
"""Slices (1, 5) and slice data partitions A, B, C (2, 3, 4): the picture itself."""
SLICE_HEADERS: Final = frozenset({1, 2, 5})
"""The VCL NAL units that open with a slice header (partitions B and C follow their A)."""
AU_OPENERS: Final = frozenset({6, 7, 8, 9, 14, 15, 16, 17, 18})
"""After a picture's last slice, these begin the next access unit (7.4.1.2.3): SEI, SPS, PPS,
access unit delimiter, prefix NAL unit, subset SPS, depth parameter set, reserved 17-18."""
PARAMETER_SETS: Final = frozenset({7, 8, 13})
"""SPS, PPS and SPS extension: what a decoder needs before a picture (the avcC's content)."""

HIGH_PROFILES: Final = frozenset(
    {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135, 144}
)
"""Profiles whose SPS carries chroma_format_idc, bit depths and scaling lists (7.3.2.1.1),
with 144 (the withdrawn High 4:4:4) that FFmpeg still reads so."""

MAX_SIDE_MBS = 1055
"""Macroblocks a side at most: level 6.2 allows 139 264 per frame, and no side may exceed
sqrt(8 × MaxFS) (A.3.1 h, i), 1055. Anything wider is garbage, not a picture."""


def parameter_sets(data: bytes) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The SPS, PPS and SPS extension NAL units of an Annex B buffer, in order, no repeats.

    Only what precedes the first slice is looked at (where an access unit carries them), so
    that a large keyframe is not scanned twice.
    """
    found: dict[int, list[bytes]] = {7: [], 8: [], 13: []}
    for at in headers(data):
        kind = data[at] & 0x1F
        if kind in VCL:
            break
        target = found.get(kind)
        if target is not None:
            nal = data[at : end_of(data, at)]
            if nal not in target:
                target.append(nal)
    return found[7], found[8], found[13]


def sps_format(nal: bytes | memoryview) -> tuple[int, int, int]:
    """chroma_format_idc, bit_depth_luma_minus8 and bit_depth_chroma_minus8 of an SPS: what an
    avcC of a High profile adds (ISO/IEC 14496-15 5.3.3.1). Reads no further than those."""
    bits = reader(nal, header=1)
    profile = bits.u(8)
    bits.skip(16)  # constraint_set0..5_flag, reserved_zero_2bits, level_idc
    bits.ue(31)  # seq_parameter_set_id
    if profile not in HIGH_PROFILES:
        return 1, 0, 0
    chroma = bits.ue(3)
    if chroma == 3:
        bits.skip(1)  # separate_colour_plane_flag
    return chroma, bits.ue(6), bits.ue(6)


def parse_sps(nal: bytes | memoryview) -> SequenceInfo:
    """The picture size and frame rate of a sequence parameter set NAL unit (7.3.2.1.1).

    Cropped as frame_cropping says (7-18 to 7-21), in units of the chroma subsampling and, for
    field coding, of two lines. A VUI that ends early (FFmpeg warns "Truncated VUI" and does
    the same) leaves the frame rate unknown; anything else that does not parse raises
    :class:`BitstreamError`.
    """
    if not nal or nal[0] & 0x1F != NalType.SPS:
        raise BitstreamError("not an H.264 SPS")
    bits = reader(nal, header=1)
    profile = bits.u(8)
    bits.skip(8)  # constraint_set0..5_flag, reserved_zero_2bits
    level = bits.u(8)
    bits.ue(31)  # seq_parameter_set_id
    chroma, separate_planes, depth_luma, depth_chroma = 1, False, 0, 0
    if profile in HIGH_PROFILES:
        chroma, separate_planes, depth_luma, depth_chroma = _high_profile_fields(bits)
    bits.ue(12)  # log2_max_frame_num_minus4
    poc_type = bits.ue(2)
    if poc_type == 0:
        bits.ue(12)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.skip(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue(255)):  # num_ref_frames_in_pic_order_cnt_cycle
            bits.se()  # offset_for_ref_frame[i]
    bits.ue()  # max_num_ref_frames
    bits.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue(MAX_SIDE_MBS - 1) + 1
    map_units = bits.ue(MAX_SIDE_MBS - 1) + 1
    frame_mbs_only = bits.flag()
    if not frame_mbs_only:
        bits.skip(1)  # mb_adaptive_frame_field_flag
    bits.skip(1)  # direct_8x8_inference_flag
    left = right = top = bottom = 0
    if bits.flag():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
    rate = None
    if bits.flag():  # vui_parameters_present_flag
        try:
            rate = _vui_frame_rate(bits)
        except BitstreamError:
            rate = None
    # ChromaArrayType 0 (monochrome or separate planes) crops by samples, else by chroma ones.
    array_type = 0 if separate_planes else chroma
    unit_x = 2 if array_type in (1, 2) else 1
    unit_y = (2 if array_type == 1 else 1) * (1 if frame_mbs_only else 2)
    width = 16 * width_mbs - unit_x * (left + right)
    height = 16 * map_units * (1 if frame_mbs_only else 2) - unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise BitstreamError(f"cropping leaves no picture ({width}x{height})")
    return SequenceInfo(
        width=width,
        height=height,
        frame_rate=rate,
        profile=profile,
        level=level,
        chroma_format=chroma,
        bit_depth_luma=8 + depth_luma,
        bit_depth_chroma=8 + depth_chroma,
    )


def _high_profile_fields(bits: BitReader) -> tuple[int, bool, int, int]:
    """chroma_format_idc, separate_colour_plane_flag, bit_depth_luma_minus8 and
    bit_depth_chroma_minus8 of a High profile's SPS; its scaling lists are skipped."""
    chroma = bits.ue(3)
    separate_planes = chroma == 3 and bits.flag()
    depth_luma = bits.ue(6)
    depth_chroma = bits.ue(6)
    bits.skip(1)  # qpprime_y_zero_transform_bypass_flag
    if bits.flag():  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma != 3 else 12):
            if bits.flag():  # seq_scaling_list_present_flag[i]
                _skip_scaling_list(bits, 16 if i < 6 else 64)
    return chroma, separate_planes, depth_luma, depth_chroma


def _skip_scaling_list(bits: BitReader, size: int) -> None:
    """scaling_list() (7.3.2.1.1.1): delta_scale codes until one makes the next scale 0."""
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se(-128, 127) + 256) % 256
        last = following or last


def _vui_frame_rate(bits: BitReader) -> Fraction | None:
    """The VUI up to timing_info (E.1.1): time_scale / (2 × num_units_in_tick), since H.264
    ticks count fields (E.2.1); None without timing or with a zero in it (FFmpeg ignores it)."""
    if bits.flag() and bits.u(8) == 255:  # aspect_ratio_info_present_flag, Extended_SAR
        bits.skip(32)  # sar_width, sar_height
    if bits.flag():  # overscan_info_present_flag
        bits.skip(1)
    if bits.flag():  # video_signal_type_present_flag
        bits.skip(4)  # video_format, video_full_range_flag
        if bits.flag():  # colour_description_present_flag
            bits.skip(24)
    if bits.flag():  # chroma_loc_info_present_flag
        bits.ue(5)
        bits.ue(5)
    if not bits.flag():  # timing_info_present_flag
        return None
    units, scale = bits.u(32), bits.u(32)
    return Fraction(scale, 2 * units) if units and scale else None
