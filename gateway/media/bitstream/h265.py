"""H.265 (ITU-T H.265 | ISO/IEC 23008-2): NAL unit types, parameter sets, the SPS.

A NAL unit opens with two header bytes: forbidden_zero_bit, nal_unit_type (6 bits),
nuh_layer_id (6 bits), nuh_temporal_id_plus1 (3 bits) (7.3.1.2). Numbers in the docstrings are
the standard's clauses.
"""

from __future__ import annotations

from enum import IntEnum
from fractions import Fraction
from typing import Final

from gateway.media.bitstream.nal import end_of, headers
from gateway.media.bitstream.rbsp import BitReader, BitstreamError, SequenceInfo, reader

__all__ = [
    "AU_OPENERS",
    "PARAMETER_SETS",
    "NalType",
    "nal_type",
    "parameter_sets",
    "parse_sps",
]


class NalType(IntEnum):
    """nal_unit_type (Table 7-1), and the RTP aggregation and fragmentation types of RFC 7798
    (48-50, unspecified in H.265 itself). 0-31 are VCL: slices of pictures."""

    TRAIL_N = 0
    TRAIL_R = 1
    TSA_N = 2
    TSA_R = 3
    STSA_N = 4
    STSA_R = 5
    RADL_N = 6
    RADL_R = 7
    RASL_N = 8
    RASL_R = 9
    BLA_W_LP = 16
    BLA_W_RADL = 17
    BLA_N_LP = 18
    IDR_W_RADL = 19
    IDR_N_LP = 20
    CRA = 21
    VPS = 32
    SPS = 33
    PPS = 34
    AUD = 35
    """Access unit delimiter."""
    END_OF_SEQUENCE = 36
    END_OF_BITSTREAM = 37
    FILLER = 38
    PREFIX_SEI = 39
    SUFFIX_SEI = 40
    AP = 48
    """RTP aggregation packet."""
    FU = 49
    """RTP fragmentation unit."""
    PACI = 50


VCL_END: Final = 32
"""nal_unit_type below this is a slice segment (VCL)."""
IRAP: Final = frozenset(range(16, 24))
"""Intra random access points (BLA, IDR, CRA, reserved 22-23): keyframes."""
AU_OPENERS: Final = frozenset({32, 33, 34, 35, 39, 41, 42, 43, 44, *range(48, 56)})
"""Of the base layer, after a picture's last slice, these begin the next access unit
(7.4.2.4.4): VPS, SPS, PPS, access unit delimiter, prefix SEI, reserved 41-44, unspecified
48-55."""
PARAMETER_SETS: Final = frozenset({32, 33, 34})
"""VPS, SPS, PPS: what a decoder needs before a picture (the hvcC's arrays)."""

MAX_SIDE = 16888
"""Luma samples a side at most: level 6.2 allows 35 651 584 a picture, and no side may exceed
sqrt(8 × MaxLumaPs) (A.4.1), 16 888. Anything wider is garbage, not a picture."""
MAX_SUB_LAYERS = 7
MAX_SHORT_TERM_SETS = 64
MAX_DELTA_POCS = 32
"""Reference pictures one short-term set may list: 16 in a conforming stream (the DPB's size),
32 in FFmpeg's arrays; a count past it is refused rather than followed."""


def nal_type(header: int) -> int:
    """nal_unit_type of a NAL unit's first header byte."""
    return (header >> 1) & 0x3F


def parameter_sets(data: bytes) -> dict[int, list[bytes]]:
    """VPS, SPS and PPS NAL units (by type) of an Annex B buffer before its first slice, in
    order, without repeats."""
    found: dict[int, list[bytes]] = {32: [], 33: [], 34: []}
    for at in headers(data):
        kind = (data[at] >> 1) & 0x3F
        if kind < VCL_END:
            break
        target = found.get(kind)
        if target is not None:
            nal = data[at : end_of(data, at)]
            if nal not in target:
                target.append(nal)
    return found


def parse_sps(nal: bytes | memoryview) -> SequenceInfo:
    """The picture size and frame rate of a sequence parameter set NAL unit (7.3.2.2.1).

    Everything up to the VUI is read: profile_tier_level with its sub-layers, scaling lists and
    short-term reference picture sets are skipped field by field, since the VUI's timing comes
    after them. The size is cropped by the conformance window (7-17, 7-18); a VUI that ends
    early leaves the frame rate unknown, as FFmpeg does; anything else that does not parse
    raises :class:`BitstreamError`.
    """
    if len(nal) < 2 or (nal[0] >> 1) & 0x3F != NalType.SPS:
        raise BitstreamError("not an H.265 SPS")
    bits = reader(nal, header=2)
    bits.skip(4)  # sps_video_parameter_set_id
    sub_layers = bits.u(3) + 1  # sps_max_sub_layers_minus1
    if sub_layers > MAX_SUB_LAYERS:
        raise BitstreamError(f"{sub_layers} sub-layers (at most 7)")
    bits.skip(1)  # sps_temporal_id_nesting_flag
    profile, level = _profile_tier_level(bits, sub_layers - 1)
    bits.ue(15)  # sps_seq_parameter_set_id
    chroma = bits.ue(3)
    separate_planes = chroma == 3 and bits.flag()
    width = bits.ue(MAX_SIDE)  # pic_width_in_luma_samples
    height = bits.ue(MAX_SIDE)
    left = right = top = bottom = 0
    if bits.flag():  # conformance_window_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
    depth_luma = bits.ue(8)
    depth_chroma = bits.ue(8)
    poc_lsb_bits = bits.ue(12) + 4  # log2_max_pic_order_cnt_lsb_minus4
    _skip_coding_tools(bits, sub_layers, poc_lsb_bits)
    rate = None
    if bits.flag():  # vui_parameters_present_flag
        try:
            rate = _vui_frame_rate(bits)
        except BitstreamError:
            rate = None
    # ChromaArrayType 0 (monochrome or separate planes) crops by samples, else by chroma ones.
    array_type = 0 if separate_planes else chroma
    unit_x = 2 if array_type in (1, 2) else 1
    unit_y = 2 if array_type == 1 else 1
    width -= unit_x * (left + right)
    height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise BitstreamError(f"conformance window leaves no picture ({width}x{height})")
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


def _skip_coding_tools(bits: BitReader, sub_layers: int, poc_lsb_bits: int) -> None:
    """What lies between the bit depths and the VUI (7.3.2.2.1): picture buffering, block sizes,
    scaling lists, PCM, reference picture sets, and two flags."""
    ordering = bits.flag()  # sps_sub_layer_ordering_info_present_flag
    for _ in range(sub_layers if ordering else 1):
        bits.ue()  # sps_max_dec_pic_buffering_minus1
        bits.ue()  # sps_max_num_reorder_pics
        bits.ue()  # sps_max_latency_increase_plus1
    for _ in range(6):
        # log2_min_luma_coding_block_size_minus3, log2_diff_max_min_luma_coding_block_size,
        # log2_min/diff_max_min luma_transform_block_size, max_transform_hierarchy_depth_inter,
        # max_transform_hierarchy_depth_intra
        bits.ue(32)
    if bits.flag() and bits.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present
        _skip_scaling_list_data(bits)
    bits.skip(2)  # amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if bits.flag():  # pcm_enabled_flag
        bits.skip(8)  # pcm_sample_bit_depth_luma_minus1, pcm_sample_bit_depth_chroma_minus1
        bits.ue()  # log2_min_pcm_luma_coding_block_size_minus3
        bits.ue()  # log2_diff_max_min_pcm_luma_coding_block_size
        bits.skip(1)  # pcm_loop_filter_disabled_flag
    _skip_short_term_sets(bits)
    if bits.flag():  # long_term_ref_pics_present_flag
        for _ in range(bits.ue(32)):  # num_long_term_ref_pics_sps
            bits.skip(poc_lsb_bits + 1)  # lt_ref_pic_poc_lsb_sps, used_by_curr_pic_lt_sps_flag
    bits.skip(2)  # sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag


def _profile_tier_level(bits: BitReader, max_sub_layers_minus1: int) -> tuple[int, int]:
    """profile_tier_level(1, sps_max_sub_layers_minus1) (7.3.3): general_profile_idc and
    general_level_idc; the sub-layers' profiles and levels are skipped."""
    bits.skip(3)  # general_profile_space, general_tier_flag
    profile = bits.u(5)
    bits.skip(32 + 48)  # general_profile_compatibility_flag[32], constraint and reserved bits
    level = bits.u(8)
    present = [(bits.flag(), bits.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1:
        bits.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        bits.skip((88 if profile_present else 0) + (8 if level_present else 0))
    return profile, level


def _skip_scaling_list_data(bits: BitReader) -> None:
    """scaling_list_data() (7.3.4): 4×4 to 32×32 lists, copied (a ue) or coded (se deltas)."""
    for size in range(4):
        for _ in range(0, 6, 3 if size == 3 else 1):
            if not bits.flag():  # scaling_list_pred_mode_flag
                bits.ue(5)  # scaling_list_pred_matrix_id_delta
                continue
            if size > 1:
                bits.se(-7, 247)  # scaling_list_dc_coef_minus8
            for _ in range(min(64, 1 << (4 + (size << 1)))):
                bits.se(-128, 127)  # scaling_list_delta_coef


def _skip_short_term_sets(bits: BitReader) -> None:
    """st_ref_pic_set(i) for each of num_short_term_ref_pic_sets (7.3.7).

    A set predicted from the previous one has a flag or two per picture of that set, so only
    each set's count of pictures is kept: NumDeltaPocs counted as FFmpeg counts it (every
    picture used or kept by the prediction).
    """
    counts: list[int] = []
    for index in range(bits.ue(MAX_SHORT_TERM_SETS)):
        if index and bits.flag():  # inter_ref_pic_set_prediction_flag
            bits.skip(1)  # delta_rps_sign
            bits.ue(2**15 - 1)  # abs_delta_rps_minus1
            count = 0
            for _ in range(counts[index - 1] + 1):
                used = bits.flag()  # used_by_curr_pic_flag
                if used or bits.flag():  # use_delta_flag
                    count += 1
        else:
            negative = bits.ue(MAX_DELTA_POCS)  # num_negative_pics
            positive = bits.ue(MAX_DELTA_POCS)  # num_positive_pics
            count = negative + positive
            for _ in range(count):
                bits.ue(2**15 - 1)  # delta_poc_s0/s1_minus1
                bits.skip(1)  # used_by_curr_pic_s0/s1_flag
        if count > MAX_DELTA_POCS:
            raise BitstreamError(f"a reference picture set of {count} pictures")
        counts.append(count)


def _vui_frame_rate(bits: BitReader) -> Fraction | None:
    """The VUI up to its timing (E.2.1): vui_time_scale / vui_num_units_in_tick; None without
    timing or with a zero in it."""
    if bits.flag() and bits.u(8) == 255:  # aspect_ratio_info_present_flag, EXTENDED_SAR
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
    bits.skip(3)  # neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present
    if bits.flag():  # default_display_window_flag
        for _ in range(4):
            bits.ue()
    if not bits.flag():  # vui_timing_info_present_flag
        return None
    units, scale = bits.u(32), bits.u(32)
    return Fraction(scale, units) if units and scale else None
