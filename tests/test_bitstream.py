"""H.264/H.265 bitstream reading: NAL units cut as the standards say, SPS read as FFmpeg reads
them (real libx264 and libx265 output, checked against ffprobe and FFmpeg's trace_headers), and
nothing but a BitstreamError, in bounded time, on what a hostile camera can send."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, get_args

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sps_craft import H264Sps, H265Sps, trace

from gateway.media.bitstream import BitstreamError, SequenceInfo, h264, h265, nal, pictures
from gateway.media.bitstream.rbsp import BitReader, unescape
from gateway.media.codec import CODECS, Codec, codec_of

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "sps.json").read_text())
"""SPS of real encoder output with what ffprobe and trace_headers said of it (make_sps.py)."""

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="needs ffmpeg and ffprobe (Debian package ffmpeg)",
)


def parse(codec: str, sps: bytes) -> SequenceInfo:
    return h264.parse_sps(sps) if codec == "h264" else h265.parse_sps(sps)


def by_name(cases: list[dict[str, Any]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


# -- the SPS of real encoders ------------------------------------------------------------------


@by_name(FIXTURES)
def test_the_sps_of_real_encoders_gives_the_size_and_frame_rate_ffprobe_reports(
    case: dict[str, Any],
) -> None:
    info = parse(case["codec"], bytes.fromhex(case["sps"]))
    probe = case["ffprobe"]
    assert (info.width, info.height) == (probe["width"], probe["height"])
    if case["name"] == "x265 no VUI timing":
        # Encoded at 30000/1001, which the SPS does not say: ffprobe falls back to its raw
        # demuxer's 25 fps, the parser says it does not know.
        assert info.frame_rate is None and probe["r_frame_rate"] == "25/1"
    else:
        assert info.frame_rate == Fraction(probe["r_frame_rate"])


@by_name([c for c in FIXTURES if c["trace_headers"] is not None])
def test_the_sps_of_real_encoders_gives_the_fields_ffmpeg_reads(case: dict[str, Any]) -> None:
    info = parse(case["codec"], bytes.fromhex(case["sps"]))
    traced = case["trace_headers"]
    assert info.profile == traced["profile_idc"]
    assert info.level == traced["level_idc"]
    assert info.chroma_format == traced["chroma_format_idc"]
    assert info.bit_depth_luma == 8 + traced["bit_depth_luma_minus8"]
    assert info.bit_depth_chroma == 8 + traced["bit_depth_chroma_minus8"]


@by_name([c for c in FIXTURES if c["codec"] == "h264"])
def test_the_avcc_fields_of_an_sps_are_those_its_full_reading_gives(case: dict[str, Any]) -> None:
    sps = bytes.fromhex(case["sps"])
    info = h264.parse_sps(sps)
    expected = (info.chroma_format, info.bit_depth_luma - 8, info.bit_depth_chroma - 8)
    assert h264.sps_format(sps) == expected


LIVE = [
    ("h264", "1920x1080", "25"),
    ("h264", "704x576", "30000/1001"),
    ("h264", "350x198", "30000/1001"),
    ("hevc", "1280x720", "25"),
    ("hevc", "704x576", "30000/1001"),
    ("hevc", "350x198", "25"),
]


@needs_ffmpeg
@pytest.mark.parametrize(("codec", "size", "rate"), LIVE, ids=["-".join(c) for c in LIVE])
def test_what_this_machines_encoders_write_is_read_as_ffprobe_reads_it(
    tmp_path: Path, codec: str, size: str, rate: str
) -> None:
    path = tmp_path / f"clip.{codec}"
    encoder = ["-c:v", "libx264"] if codec == "h264" else ["-c:v", "libx265"]
    if codec == "hevc":
        encoder += ["-x265-params", "log-level=error"]
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"),
            *("-frames:v", "2", "-pix_fmt", "yuv420p", *encoder, "-f", codec, str(path)),
        ],
        check=True,
    )
    probe = json.loads(
        subprocess.run(
            [
                *("ffprobe", "-v", "error", "-of", "json"),
                *("-show_entries", "stream=width,height,r_frame_rate", str(path)),
            ],
            capture_output=True,
            check=True,
        ).stdout
    )["streams"][0]
    if codec == "h264":
        sps = next(u for u in nal.units(path.read_bytes()) if h264.nal_type(u[0]) == 7)
    else:
        sps = next(u for u in nal.units(path.read_bytes()) if h265.nal_type(u[0]) == 33)
    info = parse(codec, sps)
    assert (info.width, info.height, info.frame_rate) == (
        probe["width"],
        probe["height"],
        Fraction(probe["r_frame_rate"]),
    )


# -- syntax no encoder here writes: crafted, and read by FFmpeg too ----------------------------

CRAFTED_H264 = {
    "scaling lists in the SPS": (
        H264Sps(
            scaling=[[16] * 16, None, [*range(1, 16), 255], None, None, [200] * 16, [16] * 64, None]
        ),
        (1920, 1080, Fraction(25)),
    ),
    "4:4:4, twelve scaling lists, cropped by single samples": (
        H264Sps(
            profile=244,
            chroma=3,
            scaling=[None] * 6 + [[16] * 64] * 6,
            width_mbs=22,
            map_units=13,
            crop=(0, 1, 0, 1),
        ),
        (351, 207, Fraction(25)),
    ),
    "fields, pic_order_cnt_type 1, extended SAR, 29.97": (
        H264Sps(
            poc_type=1,
            poc_cycle=[1, -2, 3],
            frame_mbs_only=False,
            map_units=34,
            crop=(0, 0, 0, 2),
            timing=(1001, 60000),
            sar=(4, 3),
        ),
        (1920, 1080, Fraction(30000, 1001)),
    ),
    "no timing": (H264Sps(timing=None), (1920, 1080, None)),
    "baseline, no cropping": (
        H264Sps(profile=66, poc_type=2, crop=None, width_mbs=22, map_units=18),
        (352, 288, Fraction(25)),
    ),
}

CRAFTED_H265 = {
    "sub-layers, scaling lists, PCM, predicted and long-term reference pictures": (
        H265Sps(
            sub_layers=[(True, True), (False, True)],
            scaling=True,
            pcm=True,
            sets=[
                (2, 0),
                (1, 1),
                ("inter", -1, [(1, 0), (0, 0), (1, 0)]),
                ("inter", 1, [(0, 0), (0, 1), (1, 0)]),
            ],
            long_term=3,
            sar=(4, 3),
            display_window=(2, 2, 2, 2),
            timing=(1001, 30000),
        ),
        (1920, 1080, Fraction(30000, 1001)),
    ),
    "4:2:2 window, one sub-layer's ordering, no timing": (
        H265Sps(
            sub_layers=[(True, False)], ordering=False, chroma=2, window=(0, 2, 0, 4), timing=None
        ),
        (1916, 1084, None),
    ),
    "4:4:4 window by single samples": (
        H265Sps(chroma=3, window=(1, 0, 1, 0)),
        (1919, 1087, Fraction(25)),
    ),
    "monochrome": (H265Sps(chroma=0, window=(0, 1, 0, 1)), (1919, 1087, Fraction(25))),
}


@needs_ffmpeg
@pytest.mark.parametrize("name", list(CRAFTED_H264))
def test_h264_syntax_encoders_here_do_not_write_is_read_as_ffmpeg_reads_it(name: str) -> None:
    sps, expected = CRAFTED_H264[name]
    unit = sps.nal()
    fields = trace([unit], "h264")
    info = h264.parse_sps(unit)
    assert (info.width, info.height, info.frame_rate) == expected
    assert fields["pic_width_in_mbs_minus1"] == [sps.width_mbs - 1]
    if sps.scaling is not None:
        assert fields["seq_scaling_matrix_present_flag"] == [1]


@needs_ffmpeg
@pytest.mark.parametrize("name", list(CRAFTED_H265))
def test_h265_syntax_encoders_here_do_not_write_is_read_as_ffmpeg_reads_it(name: str) -> None:
    sps, expected = CRAFTED_H265[name]
    unit = sps.nal()
    fields = trace([sps.vps(), unit], "hevc")
    info = h265.parse_sps(unit)
    assert (info.width, info.height, info.frame_rate) == expected
    assert fields["pic_width_in_luma_samples"] == [sps.width]
    if any(rps[0] == "inter" for rps in sps.sets):
        assert 1 in fields["inter_ref_pic_set_prediction_flag"]


# -- cutting buffers into NAL units ------------------------------------------------------------


def test_annex_b_is_cut_at_three_and_four_byte_start_codes_without_trailing_zeros() -> None:
    data = b"\x00\x00\x00\x01AAA\x00\x00\x01BB\x00\x00\x00\x01C\x00\x00"
    assert list(nal.units(data)) == [b"AAA", b"BB", b"C"]
    assert list(nal.headers(data)) == [4, 10, 16]
    assert [nal.end_of(data, at) for at in nal.headers(data)] == [7, 12, 17]


def test_empty_nal_units_and_a_start_code_at_the_end_give_nothing() -> None:
    assert list(nal.spans(b"\x00\x00\x01\x00\x00\x01")) == []
    assert list(nal.headers(b"AB\x00\x00\x01")) == []
    assert not nal.is_annexb(b"\x00\x00\x00\x05\x65")  # a 4-byte length, not a start code


def test_length_prefixed_units_are_the_annex_b_units_with_their_lengths() -> None:
    units = [b"\x67\x42\xc0\x1e", b"\x68\xce", b"\x65" + bytes(range(1, 256)) * 2]
    annexb = b"".join(b"\x00\x00\x00\x01" + u for u in units)
    assert list(nal.units(annexb)) == units
    for size in (1, 2, 4):
        fitting = [u for u in units if len(u) < 1 << (8 * size)]
        prefixed = b"".join(len(u).to_bytes(size, "big") + u for u in fitting)
        assert [prefixed[b:e] for b, e in nal.length_prefixed(prefixed, size)] == fitting


@pytest.mark.parametrize(
    ("data", "size"),
    [(b"\x00\x00\x00\x05\x65\x88", 4), (b"\x00\x00\x00", 4), (b"\x01\x02\x03", 3)],
    ids=["length past the end", "truncated length", "no such length size"],
)
def test_a_broken_length_prefixed_sample_is_a_bitstream_error(data: bytes, size: int) -> None:
    with pytest.raises(BitstreamError):
        list(nal.length_prefixed(data, size))


def test_parameter_sets_are_those_before_the_first_slice_without_repeats() -> None:
    sps, pps = b"\x67\x42\xc0\x1e\xda", b"\x68\xce\x3c\x80"
    late = b"\x67\x4d\x00\x28"  # after the slice: the next access unit's
    data = b"".join(
        b"\x00\x00\x00\x01" + u for u in (b"\x09\xf0", sps, pps, sps, b"\x65\x88\x80", late)
    )
    assert h264.parameter_sets(data) == ([sps], [pps], [])
    vps, hsps, hpps = b"\x40\x01\x0c", b"\x42\x01\x01", b"\x44\x01\xc1"
    hevc = b"".join(b"\x00\x00\x01" + u for u in (vps, hsps, hpps, b"\x26\x01\xaf", vps))
    assert h265.parameter_sets(hevc) == {32: [vps], 33: [hsps], 34: [hpps]}


def test_a_keyframe_without_an_sps_before_its_slice_gets_the_extradata_in_front() -> None:
    from gateway.media.params import with_parameter_sets

    start = b"\x00\x00\x00\x01"
    extradata = start + b"\x67\x42\xc0\x1e" + start + b"\x68\xce\x3c\x80"
    bare = start + b"\x09\xf0" + start + b"\x65\x88\x84" + b"\x67" * 40  # "SPS" in slice data
    assert with_parameter_sets(bare, extradata, "h264") == extradata + bare
    whole = extradata + start + b"\x65\x88\x84"
    assert with_parameter_sets(whole, extradata, "h264") is whole
    avcc = b"\x01\x42\xc0\x1e\xff\xe1"
    assert with_parameter_sets(bare, avcc, "h264") is bare
    assert with_parameter_sets(bare, extradata, "mjpeg") is bare
    hevc_sets = start + b"\x40\x01\x0c" + start + b"\x42\x01\x01" + start + b"\x44\x01\xc1"
    hevc_idr = start + b"\x26\x01\xaf\x42\x01"
    assert with_parameter_sets(hevc_idr, hevc_sets, "hevc") == hevc_sets + hevc_idr
    assert with_parameter_sets(hevc_sets + hevc_idr, hevc_sets, "hevc") == hevc_sets + hevc_idr


# -- reading an RBSP -----------------------------------------------------------------------------


def test_emulation_prevention_bytes_are_removed_and_nothing_else() -> None:
    assert unescape(b"\x00\x00\x03\x00\x00\x03\x01") == b"\x00\x00\x00\x00\x01"
    assert unescape(b"\x00\x03\x00\x00\x03\x03") == b"\x00\x03\x00\x00\x03"


def test_exp_golomb_codes_read_as_the_standard_tables_give() -> None:
    codes = ["1", "010", "011", "00100", "00101", "0001000", "00101"]  # ue 0 1 2 3 4 7, se -2
    bits = "".join(codes)
    bits += "0" * (-len(bits) % 8)
    reader = BitReader(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    assert [reader.ue() for _ in range(6)] == [0, 1, 2, 3, 4, 7]
    assert reader.se() == -2
    assert reader.position == len("".join(codes))


@pytest.mark.parametrize(
    "data",
    [b"\x00\x00\x00\x00\x01", b"", b"\x00"],
    ids=["code longer than 32 bits", "nothing", "only zeros"],
)
def test_an_exp_golomb_code_that_cannot_be_is_a_bitstream_error(data: bytes) -> None:
    with pytest.raises(BitstreamError):
        BitReader(data).ue()


def test_a_value_past_its_fields_range_is_a_bitstream_error() -> None:
    with pytest.raises(BitstreamError, match="out of range"):
        BitReader(b"\x10").ue(3)  # 0001000: 7


# -- hostile input -----------------------------------------------------------------------------

REAL_SPS = [(c["codec"], bytes.fromhex(c["sps"])) for c in FIXTURES]


@by_name(FIXTURES)
def test_a_truncated_sps_is_refused_or_read_alike_up_to_its_frame_rate(
    case: dict[str, Any],
) -> None:
    sps = bytes.fromhex(case["sps"])
    whole = parse(case["codec"], sps)
    for cut in range(len(sps)):
        try:
            info = parse(case["codec"], sps[:cut])
        except BitstreamError:
            continue
        assert (info.width, info.height) == (whole.width, whole.height)
        assert info.frame_rate in (whole.frame_rate, None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REAL_SPS), st.data())
def test_an_sps_with_bits_flipped_is_read_or_refused_never_anything_else(
    real: tuple[str, bytes], data: st.DataObject
) -> None:
    codec, sps = real
    damaged = bytearray(sps)
    for at in data.draw(st.lists(st.integers(1, len(sps) * 8 - 1), min_size=1, max_size=6)):
        damaged[at // 8] ^= 0x80 >> (at % 8)
    try:
        info = parse(codec, bytes(damaged))
    except BitstreamError:
        return
    assert info.width > 0 and info.height > 0


HOSTILE = st.binary(max_size=600)


@settings(max_examples=500, deadline=None)
@given(HOSTILE)
def test_random_bytes_as_an_sps_are_read_or_refused(data: bytes) -> None:
    for header in (b"\x67", b"\x42\x01"):
        codec = "h264" if len(header) == 1 else "hevc"
        with contextlib.suppress(BitstreamError):
            parse(codec, header + data)
    with contextlib.suppress(BitstreamError):
        h264.sps_format(b"\x67" + data)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00"]) | HOSTILE).map(
        b"".join
    )
)
def test_random_bytes_are_cut_and_scanned_without_an_error(data: bytes) -> None:
    spans = list(nal.spans(data))
    assert all(0 < b < e <= len(data) for b, e in spans)
    assert len(list(nal.headers(data))) >= len(spans)
    h264.parameter_sets(data)
    h265.parameter_sets(data)
    for role in (pictures.h264_role, pictures.h265_role):
        for after in (False, True):
            pictures.scan(data, role, after)
    with contextlib.suppress(BitstreamError):
        list(nal.length_prefixed(data))


def test_a_huge_parameter_set_is_refused_without_being_read() -> None:
    huge = b"\x67\x64\x00\x28" + b"\xff" * 2_000_000
    started = time.perf_counter()
    with pytest.raises(BitstreamError, match="at most 4096"):
        h264.parse_sps(huge)
    with pytest.raises(BitstreamError, match="at most 4096"):
        h265.parse_sps(b"\x42\x01" + huge)
    assert time.perf_counter() - started < 0.1


def test_the_largest_counts_an_sps_may_claim_are_refused_or_bounded() -> None:
    growing: list[Any] = [(2, 0)]
    growing += [("inter", 1, [(1, 0)] * (count + 1)) for count in range(2, 40)]
    with pytest.raises(BitstreamError, match="reference picture set"):
        h265.parse_sps(H265Sps(sets=growing).nal())  # each set one picture more: 33 > 32
    too_many = H265Sps(sets=[(2, 0)] * 65).nal()
    with pytest.raises(BitstreamError, match="out of range"):
        h265.parse_sps(too_many)


# -- codec names ---------------------------------------------------------------------------------


def test_every_codec_is_named_as_ffmpeg_names_it() -> None:
    ffmpeg_names = set()
    for name in av.codecs_available:
        try:
            ffmpeg_names.add(av.codec.Codec(name, "r").canonical_name)
        except (av.FFmpegError, ValueError):
            continue
    assert CODECS - {"unknown"} <= ffmpeg_names
    assert set(get_args(Codec)) == CODECS


def test_a_codec_not_listed_is_unknown_and_keeps_its_ffmpeg_name_for_muxers_and_messages() -> None:
    import io

    from gateway.media.packet import track_from_stream
    from gateway.media.remux import container_takes

    assert codec_of("hevc") == "hevc"
    assert codec_of("h265") == "unknown"
    holder = av.open(io.BytesIO(), "w", format="nut")
    stream = holder.add_stream("ac3", rate=48000)
    track = track_from_stream(1, stream)
    assert (track.codec, track.codec_name) == ("unknown", "ac3")
    assert track.describe() == "ac3 48000 Hz"
    mp4 = av.open(io.BytesIO(), "w", format="mp4")
    assert container_takes(mp4, track.codec_name), "the recorder still records AC-3 audio"


def test_the_codec_names_in_the_gateway_are_checked_by_mypy(tmp_path: Path) -> None:
    """``Codec`` is a Literal: a comparison with a name FFmpeg does not use is a type error."""
    root = Path(__file__).resolve().parents[1]
    mypy = root / ".venv" / "bin" / "mypy"
    if not mypy.exists():
        pytest.skip("mypy is not installed in .venv")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from gateway.media.codec import Codec\n\n\n"
        'def is_hevc(codec: Codec) -> bool:\n    return codec == "h265"\n'
    )
    done = subprocess.run(
        [str(mypy), "--strict", "--cache-dir", str(tmp_path / "cache"), str(probe)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert "Non-overlapping equality check" in done.stdout, done.stdout
    assert "Literal['h265']" in done.stdout
