"""Bad input to the analysis ends in a clear error: arrays it cannot analyse, packets it cannot
decode; and the decoder takes what cameras send (parameter sets in band or in extradata,
H.264 and H.265) and recovers after a damaged keyframe."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from analysis_scenes import photo_scene
from analysis_set import encode_keyframe

from gateway.analysis import (
    CameraMonitor,
    DecodeError,
    FrameError,
    KeyframeDecoder,
    Zone,
    frame_from_array,
    measure,
)
from gateway.analysis.measures import GRID
from gateway.analysis.privacy import zone_tiles
from gateway.media.packet import Packet, Track


@pytest.fixture(scope="module")
def keyframe() -> bytes:
    return encode_keyframe(photo_scene("astronaut").view())[0]


def packet(data: bytes, *, keyframe: bool = True, video: bool = True) -> Packet:
    return Packet(
        track=0,
        data=data,
        pts=0,
        dts=0,
        duration=3600,
        time_base=Fraction(1, 90000),
        keyframe=keyframe,
        is_video=video,
        received=0.0,
    )


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros((0, 640, 3), np.uint8), "empty"),
        (np.zeros((20, 640), np.uint8), "too small"),
        (np.zeros((480, 640), np.float32), "uint8"),
        (np.zeros((480, 640, 4), np.uint8), "H x W"),
        (np.zeros((2, 480, 640, 3), np.uint8), "H x W"),
        (np.zeros(100, np.uint8), "H x W"),
    ],
)
def test_an_array_that_cannot_be_analysed_is_refused_with_a_reason(
    array: np.ndarray, words: str
) -> None:
    with pytest.raises(FrameError, match=words):
        frame_from_array(array)


def test_odd_sized_pictures_are_analysed() -> None:
    rng = np.random.default_rng(0)
    for h, w in ((33, 47), (577, 703), (1081, 1921)):
        picture = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        frame = frame_from_array(picture, colour=True)
        assert frame.width == min(320, w)
        assert frame.height % 2 == 0
        assert frame.colour is not None
        assert frame.colour.shape[:2] == frame.grey.shape
        m = measure(frame.grey)
        assert 0.0 <= m.brightness <= 1.0
        assert 0.0 <= m.structure <= 1.0


def test_a_flat_picture_is_measured_without_dividing_by_zero() -> None:
    m = measure(np.full((240, 320), 128, np.uint8))
    assert m.sharpness == 0.0
    assert m.structure == 0.0
    assert m.contrast == 0.0
    status = CameraMonitor().observe(frame_from_array(np.zeros((240, 320), np.uint8)), 0.0)
    assert status.judgement.covered


def test_a_keyframe_packet_decodes_into_a_small_grey_picture(keyframe: bytes) -> None:
    decoder = KeyframeDecoder("h264", colour=True)
    frame = decoder.decode(packet(keyframe))
    assert (frame.source_width, frame.source_height) == (704, 576)
    assert frame.grey.shape == (262, 320)
    assert frame.grey.dtype == np.uint8
    assert frame.colour is not None
    assert frame.colour.shape == (262, 320, 3)
    again = decoder.decode(packet(keyframe))  # the context is reused
    assert np.array_equal(again.grey, frame.grey)
    assert decoder.decoded == 2


def test_a_non_keyframe_is_never_decoded(keyframe: bytes) -> None:
    decoder = KeyframeDecoder("h264")
    with pytest.raises(DecodeError, match="not a keyframe"):
        decoder.decode(packet(keyframe, keyframe=False))
    with pytest.raises(DecodeError, match="not video"):
        decoder.decode(packet(keyframe, video=False))
    assert decoder.decoded == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no parameter sets"])
def test_a_corrupt_keyframe_is_a_clear_error_and_the_next_one_decodes(
    keyframe: bytes, damage: str
) -> None:
    decoder = KeyframeDecoder("h264")
    slice_start = keyframe.find(b"\x00\x00\x01\x65")
    data = {
        "truncated": keyframe[: len(keyframe) // 2],
        "garbage": b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 8,
        "empty": b"",
        "no parameter sets": keyframe[slice_start:],
    }[damage]
    with pytest.raises(DecodeError) as raised:
        decoder.decode(packet(data))
    assert raised.value.reason
    assert decoder.decode(packet(keyframe)).grey.shape == (262, 320)


def test_parameter_sets_may_come_in_extradata() -> None:
    picture = photo_scene("coffee", 640, 360).view()
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 640, 360, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.flags |= av.codec.context.Flags.global_header
    ctx.options = {"preset": "veryfast", "tune": "zerolatency"}
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    assert ctx.extradata
    track = Track(
        index=0,
        kind="video",
        codec="h264",
        time_base=Fraction(1, 90000),
        width=640,
        height=360,
        extradata=bytes(ctx.extradata),
    )
    decoded = KeyframeDecoder.for_track(track).decode(packet(data))
    assert decoded.grey.shape == (180, 320)


def test_h265_keyframes_decode() -> None:
    picture = photo_scene("chelsea", 640, 480).view()
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 640, 480, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    assert KeyframeDecoder("hevc").decode(packet(data)).grey.shape == (240, 320)


def test_codecs_and_tracks_that_cannot_be_analysed_are_refused() -> None:
    with pytest.raises(DecodeError, match="mjpeg"):
        KeyframeDecoder("mjpeg")
    audio = Track(index=1, kind="audio", codec="aac", time_base=Fraction(1, 8000))
    with pytest.raises(DecodeError, match="audio"):
        KeyframeDecoder.for_track(audio)


def test_privacy_zones_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="3 points"):
        Zone("door", ((0.1, 0.1), (0.2, 0.2)))
    with pytest.raises(ValueError, match="outside"):
        Zone("door", ((0.1, 0.1), (1.2, 0.2), (0.1, 0.5)))


def test_zone_tiles_leave_out_the_masked_part_of_the_structure() -> None:
    left = Zone("door", ((0.0, 0.0), (0.25, 0.0), (0.25, 1.0), (0.0, 1.0)))
    tiles = zone_tiles((left,), 320, 240, GRID)
    assert tiles is not None and tiles.shape == (GRID[1], GRID[0])
    assert tiles[:, :4].all() and not tiles[:, 6:].any()  # the zone, its halo, nothing more
    assert zone_tiles((), 320, 240, GRID) is None
    most = Zone("most", ((0.0, 0.0), (0.9, 0.0), (0.9, 1.0), (0.0, 1.0)))
    assert zone_tiles((most,), 320, 240, GRID) is None  # measured whole
    rng = np.random.default_rng(3)
    picture = np.full((240, 320), 100, np.uint8)
    picture[:, 160:] = rng.integers(0, 255, (240, 160), dtype=np.uint8)  # detail on the right
    picture[:, 80:84] = 250  # the outline of a mask: sharp, not the scene's
    whole = measure(picture)
    masked = measure(picture, ignore=tiles)
    assert masked.structure > whole.structure  # flat masked tiles no longer count against it
    assert masked.tiles is not None and not masked.tiles[tiles].any()
    with pytest.raises(FrameError, match="grid"):
        measure(picture, ignore=np.zeros((3, 3), bool))
