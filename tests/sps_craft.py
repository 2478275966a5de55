"""Sequence parameter sets written field by field, for the syntax no encoder here produces.

libx264 never puts scaling lists in its SPS (they go in the PPS) nor uses pic_order_cnt_type 1;
libx265 never predicts one reference picture set from another, codes scaling lists, PCM or
long-term pictures in its SPS. These writers do, following the standards' syntax tables; FFmpeg's
``trace_headers`` filter (:func:`trace`) then checks that what they write is an SPS FFmpeg
reads to its stop bit, so that the writer and the parser under test cannot share a misreading.
Nothing here imports ``gateway``.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        assert 0 <= value < 1 << count or count == 0
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, header: bytes) -> bytes:
        """The NAL unit: header, RBSP with its stop bit, emulation prevention bytes inserted."""
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        rbsp = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray(header)
        zeros = 0
        for byte in rbsp:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


@dataclass
class H264Sps:
    profile: int = 100
    level: int = 40
    chroma: int = 1
    scaling: list[list[int] | None] | None = None
    """Per list (8, or 12 for 4:4:4): its values, or None for not present."""
    poc_type: int = 0
    poc_cycle: list[int] = field(default_factory=list)
    width_mbs: int = 120
    map_units: int = 68
    frame_mbs_only: bool = True
    crop: tuple[int, int, int, int] | None = (0, 0, 0, 4)
    sar: tuple[int, int] | None = None
    timing: tuple[int, int] | None = (1, 50)
    """num_units_in_tick, time_scale."""

    def nal(self) -> bytes:
        w = BitWriter()
        w.u(8, self.profile)
        w.u(8, 0)
        w.u(8, self.level)
        w.ue(0)
        if self.profile in HIGH_PROFILES:
            w.ue(self.chroma)
            if self.chroma == 3:
                w.u(1, 0)
            w.ue(0)
            w.ue(0)
            w.u(1, 0)
            w.u(1, self.scaling is not None)
            for values in self.scaling or []:
                w.u(1, values is not None)
                last = 8
                for value in values or []:
                    w.se((value - last + 128) % 256 - 128)
                    last = value
        w.ue(0)  # log2_max_frame_num_minus4
        w.ue(self.poc_type)
        if self.poc_type == 0:
            w.ue(2)
        elif self.poc_type == 1:
            w.u(1, 0)
            w.se(-1)
            w.se(2)
            w.ue(len(self.poc_cycle))
            for offset in self.poc_cycle:
                w.se(offset)
        w.ue(2)  # max_num_ref_frames
        w.u(1, 0)
        w.ue(self.width_mbs - 1)
        w.ue(self.map_units - 1)
        w.u(1, self.frame_mbs_only)
        if not self.frame_mbs_only:
            w.u(1, 1)
        w.u(1, 1)  # direct_8x8_inference_flag
        w.u(1, self.crop is not None)
        for offset in self.crop or ():
            w.ue(offset)
        w.u(1, 1)  # vui_parameters_present_flag
        w.u(1, self.sar is not None)
        if self.sar is not None:
            w.u(8, 255)
            w.u(16, self.sar[0])
            w.u(16, self.sar[1])
        w.u(1, 0)  # overscan
        w.u(1, 1)  # video_signal_type: video_format 5, limited range, BT.709 colours
        w.u(3, 5)
        w.u(1, 0)
        w.u(1, 1)
        w.u(24, 0x010101)
        w.u(1, 1)  # chroma_loc_info
        w.ue(0)
        w.ue(0)
        w.u(1, self.timing is not None)
        if self.timing is not None:
            w.u(32, self.timing[0])
            w.u(32, self.timing[1])
            w.u(1, 1)
        w.u(4, 0)  # nal_hrd, vcl_hrd, pic_struct_present, bitstream_restriction: absent
        return w.nal(b"\x67")


@dataclass
class H265Sps:
    sub_layers: list[tuple[bool, bool]] = field(default_factory=list)
    """(profile present, level present) of each sub-layer above the first."""
    chroma: int = 1
    width: int = 1920
    height: int = 1088
    window: tuple[int, int, int, int] | None = (0, 0, 0, 4)
    ordering: bool = True
    scaling: bool = False
    pcm: bool = False
    sets: list[tuple[int, ...] | tuple[str, int, list[tuple[int, int]]]] = field(
        default_factory=list
    )
    """Each reference picture set: explicit (negative count, positive count), or predicted
    ("inter", delta_rps, [(used_by_curr_pic_flag, use_delta_flag) per picture + 1])."""
    long_term: int = 0
    sar: tuple[int, int] | None = None
    display_window: tuple[int, int, int, int] | None = None
    timing: tuple[int, int] | None = (1, 25)

    def vps(self) -> bytes:
        """A VPS to go with it (7.3.2.1): FFmpeg reads no HEVC SPS without its VPS."""
        w = BitWriter()
        w.u(4, 0)
        w.u(2, 0b11)  # base layer internal and available
        w.u(6, 0)
        w.u(3, len(self.sub_layers))
        w.u(1, 1)
        w.u(16, 0xFFFF)
        self._profile_tier_level(w)
        w.u(1, 1)
        for _ in range(len(self.sub_layers) + 1):
            w.ue(4)
            w.ue(2)
            w.ue(0)
        w.u(6, 0)  # vps_max_layer_id
        w.ue(0)  # vps_num_layer_sets_minus1
        w.u(2, 0)  # no timing, no extension
        return w.nal(b"\x40\x01")

    def _profile_tier_level(self, w: BitWriter) -> None:
        w.u(8, 1)  # profile space 0, tier 0, Main
        w.u(32, 0x60000000)
        w.u(4, 0b1001)  # progressive, frame only
        w.u(43, 0)
        w.u(1, 0)
        w.u(8, 120)
        for profile, level in self.sub_layers:
            w.u(1, profile)
            w.u(1, level)
        if self.sub_layers:
            w.u(2 * (8 - len(self.sub_layers)), 0)
        for profile, level in self.sub_layers:
            if profile:
                w.u(8, 1)
                w.u(32, 0x60000000)
                w.u(4, 0b1001)
                w.u(44, 0)
            if level:
                w.u(8, 120)

    def nal(self) -> bytes:
        w = BitWriter()
        w.u(4, 0)
        w.u(3, len(self.sub_layers))
        w.u(1, 1)
        self._profile_tier_level(w)
        w.ue(0)
        w.ue(self.chroma)
        if self.chroma == 3:
            w.u(1, 0)
        w.ue(self.width)
        w.ue(self.height)
        w.u(1, self.window is not None)
        for offset in self.window or ():
            w.ue(offset)
        w.ue(0)
        w.ue(0)
        w.ue(4)  # log2_max_pic_order_cnt_lsb_minus4: 8-bit POC lsb
        w.u(1, self.ordering)
        for _ in range(len(self.sub_layers) + 1 if self.ordering else 1):
            w.ue(4)
            w.ue(2)
            w.ue(0)
        for value in (0, 3, 0, 3, 1, 1):  # 8x8 to 64x64 coding blocks, 4x4 to 32x32 transforms
            w.ue(value)
        w.u(1, self.scaling)
        if self.scaling:
            w.u(1, 1)
            for size in range(4):
                for matrix in range(0, 6, 3 if size == 3 else 1):
                    if size == 0 and matrix == 1:
                        w.u(1, 0)  # copied from the list before
                        w.ue(1)
                        continue
                    w.u(1, 1)
                    if size > 1:
                        w.se(8)  # DC 16
                    w.se(8)  # 8 to 16, then flat
                    for _ in range(min(64, 1 << (4 + 2 * size)) - 1):
                        w.se(0)
        w.u(2, 0b11)  # amp, sao
        w.u(1, self.pcm)
        if self.pcm:
            w.u(4, 7)
            w.u(4, 7)
            w.ue(0)
            w.ue(1)
            w.u(1, 0)
        w.ue(len(self.sets))
        for index, rps in enumerate(self.sets):
            if index:
                w.u(1, rps[0] == "inter")
            if rps[0] == "inter":
                _, delta, flags = rps
                assert isinstance(delta, int) and isinstance(flags, list)
                w.u(1, delta < 0)
                w.ue(abs(delta) - 1)
                for used, use_delta in flags:
                    w.u(1, used)
                    if not used:
                        w.u(1, use_delta)
                continue
            negative, positive = rps[0], rps[1]  # ("inter", ...) sets were taken above
            assert isinstance(negative, int) and isinstance(positive, int)
            w.ue(negative)
            w.ue(positive)
            for _ in range(negative + positive):
                w.ue(0)
                w.u(1, 1)
        w.u(1, self.long_term > 0)
        if self.long_term:
            w.ue(self.long_term)
            for poc in range(self.long_term):
                w.u(8, poc * 16)
                w.u(1, 1)
        w.u(2, 0b11)  # temporal mvp, strong intra smoothing
        w.u(1, 1)  # vui_parameters_present_flag
        w.u(1, self.sar is not None)
        if self.sar is not None:
            w.u(8, 255)
            w.u(16, self.sar[0])
            w.u(16, self.sar[1])
        w.u(1, 0)  # overscan
        w.u(1, 1)
        w.u(3, 5)
        w.u(1, 0)
        w.u(1, 1)
        w.u(24, 0x010101)
        w.u(1, 1)  # chroma_loc_info
        w.ue(0)
        w.ue(0)
        w.u(3, 0)  # neutral_chroma_indication, field_seq, frame_field_info_present
        w.u(1, self.display_window is not None)
        for offset in self.display_window or ():
            w.ue(offset)
        w.u(1, self.timing is not None)
        if self.timing is not None:
            w.u(32, self.timing[0])
            w.u(32, self.timing[1])
            w.u(1, 0)  # vui_poc_proportional_to_timing_flag
            w.u(1, 0)  # vui_hrd_parameters_present_flag
        w.u(1, 0)  # bitstream_restriction_flag
        w.u(1, 0)  # sps_extension_present_flag
        return w.nal(b"\x42\x01")


_FIELD = re.compile(r"^\[trace_headers @ \w+\] \d+\s+([\w\[\]]+)\s+[01]+ = (-?\d+)$")


def trace(units: list[bytes], codec: str) -> dict[str, list[int]]:
    """Each field of these parameter sets as FFmpeg's trace_headers reads them; AssertionError
    if FFmpeg cannot read each to its stop bit."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"sps.{codec}"
        path.write_bytes(b"".join(b"\x00\x00\x00\x01" + unit for unit in units))
        done = subprocess.run(
            [
                *("ffmpeg", "-hide_banner", "-f", codec, "-i", str(path), "-c", "copy"),
                *("-bsf:v", "trace_headers", "-f", "null", "-"),
            ],
            capture_output=True,
            text=True,
        )
    lines = done.stderr.splitlines()
    refused = [line for line in lines if "out of range" in line or "Failed to read" in line]
    assert not refused, refused
    fields: dict[str, list[int]] = {}
    for line in lines:
        match = _FIELD.match(line)
        if match is not None:
            fields.setdefault(match[1], []).append(int(match[2]))
    stops = fields.get("rbsp_stop_one_bit")
    assert stops == [1] * len(units), f"FFmpeg did not read them to their ends: {done.stderr}"
    return fields
