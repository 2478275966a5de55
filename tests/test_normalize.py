"""Timestamp repair before the fan-out: split pictures marked (and joined where muxed),
distinct pictures stamped alike kept apart (told by their H.264/H.265 bitstream), invented and
repaired timestamps, and no packet held back."""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media.normalize import MAX_JUMP_SECONDS, AccessUnitJoiner, Normalizer, RawPacket
from gateway.media.packet import Packet, Track

VIDEO_TB = Fraction(1, 90000)
AUDIO_TB = Fraction(1, 48000)
FRAME = 3600  # one frame at 25 fps in 1/90000
AUDIO_FRAME = 960  # 20 ms at 48 kHz

VIDEO = Track(index=0, kind="video", codec="h264", time_base=VIDEO_TB)
AUDIO = Track(index=1, kind="audio", codec="aac", time_base=AUDIO_TB)


def video(
    dts: int | None,
    data: bytes = b"v",
    *,
    pts: int | None = None,
    key: bool = False,
    duration: int = FRAME,
) -> RawPacket:
    return RawPacket(
        track=0,
        data=data,
        pts=dts if pts is None else pts,
        dts=dts,
        duration=duration,
        keyframe=key,
        received=0.0,
    )


def audio(dts: int | None, data: bytes = b"a") -> RawPacket:
    return RawPacket(
        track=1, data=data, pts=dts, dts=dts, duration=AUDIO_FRAME, keyframe=True, received=0.0
    )


def run(normalizer: Normalizer, packets: list[RawPacket]) -> list[Packet]:
    """What a muxing consumer (the recorder) sees: normalised, then split pictures joined."""
    joiner = AccessUnitJoiner()
    out: list[Packet] = []
    for raw in packets:
        packet = normalizer.push(raw)
        if packet is not None:
            out.extend(joiner.push(packet))
    out.extend(joiner.flush())
    return out


def assert_clean(packets: list[Packet]) -> None:
    """Per track: decode times strictly increase and no picture is shown before it is decoded."""
    by_track: dict[int, list[Packet]] = {}
    for p in packets:
        by_track.setdefault(p.track, []).append(p)
    for track_packets in by_track.values():
        dts = [p.dts for p in track_packets]
        assert all(b > a for a, b in itertools.pairwise(dts)), dts
        assert all(p.pts >= p.dts for p in track_packets)


def test_split_picture_is_passed_on_at_once_and_marked_as_a_continuation() -> None:
    n = Normalizer((VIDEO,), camera_id="cam")

    # Bytes no bitstream reader takes (see the H.264/H.265 tests below): the timestamp decides.
    first = n.push(video(0, b"SPS-PPS", key=True))
    second = n.push(video(0, b"SLICE"))  # same timestamp: the same picture, split by the camera
    third = n.push(video(FRAME, b"NEXT"))

    assert first is not None and second is not None and third is not None
    assert (first.data, first.continuation, first.starts_gop) == (b"SPS-PPS", False, True)
    assert (second.data, second.continuation, second.starts_gop) == (b"SLICE", True, False)
    assert (second.dts, second.pts) == (first.dts, first.pts)
    assert not third.continuation and third.dts == FRAME


def test_joiner_rebuilds_whole_pictures_for_muxers() -> None:
    n = Normalizer((VIDEO,), camera_id="cam")

    out = run(n, [video(0, b"A"), video(0, b"B", key=True), video(FRAME, b"C")])

    assert [p.data for p in out] == [b"AB", b"C"]
    assert out[0].keyframe and not out[0].continuation
    assert [p.dts for p in out] == [0, FRAME]


def test_joiner_drops_a_continuation_whose_start_it_never_saw() -> None:
    joiner = AccessUnitJoiner()
    n = Normalizer((VIDEO,), camera_id="cam")
    start = n.push(video(0, b"A", key=True))
    rest = n.push(video(0, b"B"))
    assert start is not None and rest is not None

    assert joiner.push(rest) == []  # joined mid-picture: half a picture is not kept
    assert joiner.flush() == []


def test_first_packet_without_timestamp_gets_one_frame_before_its_successor() -> None:
    n = Normalizer((VIDEO,), camera_id="cam")
    base = 900_000

    out = run(n, [video(None, b"first", key=True), video(base, b"second"), video(base + FRAME)])

    assert [p.data for p in out] == [b"first", b"second", b"v"]  # not merged
    first, second, third = out
    assert first.keyframe and not second.keyframe
    assert second.dts - first.dts == FRAME
    assert third.dts - second.dts == FRAME
    assert first.dts == 0  # the session starts at zero
    assert n.repaired >= 1


def test_repeated_and_backwards_timestamps_become_strictly_increasing() -> None:
    n = Normalizer((VIDEO, AUDIO), camera_id="cam")
    video_dts = [0, FRAME, 2 * FRAME, FRAME, 3 * FRAME, 2 * FRAME, 5 * FRAME]
    audio_dts = [0, 960, 960, 960, 1920, 960, 2880]
    raws: list[RawPacket] = []
    for i, (v, a) in enumerate(zip(video_dts, audio_dts, strict=True)):
        # A camera may also send pts before dts, which no muxer accepts.
        raws.append(video(v, bytes([i]), pts=v - 10))
        raws.append(audio(a, bytes([i])))

    out = run(n, raws)

    assert_clean(out)
    assert [p.data for p in out if p.is_video] == [bytes([i]) for i in range(len(video_dts))]
    assert [p.data for p in out if not p.is_video] == [bytes([i]) for i in range(len(audio_dts))]
    assert n.repaired >= 5
    assert n.discontinuities == 0


@pytest.mark.parametrize("jump_seconds", [MAX_JUMP_SECONDS + 1, 3600.0, -(MAX_JUMP_SECONDS + 1)])
def test_large_jump_continues_the_timeline_one_frame_later(jump_seconds: float) -> None:
    n = Normalizer((VIDEO,), camera_id="cam")
    start = 10 * 3600 * 90000  # camera clock at 10:00
    jump = round(jump_seconds * 90000)
    before = [start + i * FRAME for i in range(5)]
    after = [start + 4 * FRAME + jump + i * FRAME for i in range(3)]

    out = run(n, [video(d) for d in before + after])

    assert [p.dts for p in out] == [i * FRAME for i in range(8)]
    assert n.discontinuities == 1


def test_small_step_is_elapsed_time_not_a_discontinuity() -> None:
    n = Normalizer((VIDEO,), camera_id="cam")
    step = round((MAX_JUMP_SECONDS - 1) * 90000)  # a camera that lost 4 s of frames

    out = run(n, [video(0), video(FRAME), video(FRAME + step)])

    assert [p.dts for p in out] == [0, FRAME, FRAME + step]
    assert n.discontinuities == 0


def test_nothing_is_held_back() -> None:
    n = Normalizer((VIDEO, AUDIO), camera_id="cam")

    for raw in (video(0, key=True), audio(0, b"A0"), video(FRAME), audio(960, b"A1")):
        packet = n.push(raw)
        assert packet is not None and packet.data == raw.data


def test_audio_and_video_share_one_origin() -> None:
    """Tracks with different time bases keep the camera's A/V offset and start near zero."""
    n = Normalizer((VIDEO, AUDIO), camera_id="cam")
    t0 = 1000.0  # the camera's clock, seconds
    raws: list[RawPacket] = []
    for i in range(10):
        raws.append(video(round((t0 + i * 0.04) * 90000), key=i == 0))
        # Audio starts 0.1 s after the first picture.
        raws.append(audio(round((t0 + 0.1 + i * 0.02) * 48000)))

    out = run(n, raws)

    videos = [p for p in out if p.is_video]
    audios = [p for p in out if not p.is_video]
    assert audios[0].seconds - videos[0].seconds == pytest.approx(0.1, abs=1e-4)
    assert abs(videos[0].seconds) <= 0.1 + 1e-4
    assert abs(audios[0].seconds) <= 0.1 + 1e-4
    # The same camera instant (t0 + 0.2 s) has the same session time on both tracks.
    assert videos[5].seconds == pytest.approx(audios[5].seconds, abs=1e-4)
    assert videos[9].seconds - videos[0].seconds == pytest.approx(0.36, abs=1e-4)


def test_audio_first_still_aligns_video() -> None:
    """Audio arrives first; the video must not be shifted to zero on its own."""
    n = Normalizer((VIDEO, AUDIO), camera_id="cam")
    t0 = 50.0
    raws = [
        audio(round(t0 * 48000)),
        video(round((t0 + 0.5) * 90000), key=True),
        audio(round((t0 + 0.02) * 48000)),
        video(round((t0 + 0.54) * 90000)),
    ]

    out = run(n, raws)

    first_video = next(p for p in out if p.is_video)
    assert first_video.seconds == pytest.approx(0.5, abs=1e-4)


def test_packets_of_unknown_tracks_are_ignored() -> None:
    n = Normalizer((VIDEO,), camera_id="cam")

    assert n.push(audio(0)) is None  # track 1 is not part of this session


timestamps = st.one_of(st.none(), st.integers(min_value=-(2**33), max_value=2**33))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1]), timestamps, timestamps, st.booleans()),
        max_size=60,
    )
)
def test_any_input_gives_clean_timelines_and_loses_no_data(
    spec: list[tuple[int, int | None, int | None, bool]],
) -> None:
    n = Normalizer((VIDEO, AUDIO), camera_id="cam")
    raws = [
        RawPacket(
            track=track,
            data=f"{i};".encode(),
            pts=pts,
            dts=dts,
            duration=0 if i % 3 == 0 else FRAME,
            keyframe=key,
            received=float(i),
        )
        for i, (track, pts, dts, key) in enumerate(spec)
    ]

    out = run(n, raws)

    assert_clean(out)
    for track in (0, 1):
        sent = b"".join(r.data for r in raws if r.track == track)
        received = b"".join(p.data for p in out if p.track == track)
        assert received == sent  # merged or not, every byte arrives, in order
        assert all(p.duration > 0 for p in out)


# -- pictures told apart by their bitstream ----------------------------------------------------
#
# Real encoder output (PyAV's libx264 and libx265), cut into packets the way cameras and
# depacketisers cut it, stamped alike where a camera stamps alike; FFmpeg's decoder says
# whether what comes out are whole pictures.

HEVC = Track(index=0, kind="video", codec="hevc", time_base=VIDEO_TB)
TRACKS = {"h264": VIDEO, "hevc": HEVC}
ENCODERS = {
    # codec: (encoder, options); x264's settings SEI and x265's VPS/SPS/PPS/SEI are in-band
    "h264": ("libx264", {"preset": "ultrafast", "tune": "zerolatency", "threads": "1"}),
    "hevc": ("libx265", {"preset": "ultrafast", "tune": "zerolatency", "threads": "1"}),
}
PICTURES = 8


@functools.cache
def pictures(codec: str, params: str = "") -> tuple[bytes, ...]:
    """``PICTURES`` pictures (Annex B, as the encoder gives them: the first one a keyframe with
    its parameter sets), 128x128 and moving, so that each one depends on the one before."""
    encoder, options = ENCODERS[codec]
    context = av.CodecContext.create(encoder, "w")
    assert isinstance(context, av.VideoCodecContext)
    context.width = context.height = 128
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, 25)
    context.framerate = Fraction(25)
    key = "x264-params" if codec == "h264" else "x265-params"
    quiet = "" if codec == "h264" else "log-level=none"
    context.options = {**options, key: ":".join(p for p in (quiet, params) if p)}
    out: list[bytes] = []
    for i in range(PICTURES):
        image = np.zeros((128 * 3 // 2, 128), np.uint8)
        image[:128] = (np.arange(128)[None, :] * 2 + i * 8) % 256
        image[i * 12 : i * 12 + 16, 16:48] = 255
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in context.encode(frame)]
    out += [bytes(p) for p in context.encode(None)]
    assert len(out) == PICTURES
    return tuple(out)


def nal_units(packet: bytes) -> list[bytes]:
    """An Annex B packet cut before each start code (start codes kept: joined, they are it)."""
    cuts = []
    at = packet.find(b"\x00\x00\x01")
    while at >= 0:
        cuts.append(at - 1 if at and packet[at - 1] == 0 else at)
        at = packet.find(b"\x00\x00\x01", at + 3)
    return [packet[a:b] for a, b in itertools.pairwise([*cuts, len(packet)])]


def nal_type(unit: bytes, codec: str) -> int:
    header = unit[unit.find(b"\x00\x00\x01") + 3]
    return header & 0x1F if codec == "h264" else (header >> 1) & 0x3F


def is_slice(unit: bytes, codec: str) -> bool:
    kind = nal_type(unit, codec)
    return kind in (1, 5) if codec == "h264" else kind < 32


def stamped(packets: list[list[bytes]], stamps: list[int]) -> list[RawPacket]:
    """RawPackets of each picture's packets (lists of bytes), all stamped with its timestamp;
    the first picture is the keyframe. No durations: the normaliser infers them."""
    return [
        RawPacket(
            track=0,
            data=data,
            pts=stamp,
            dts=stamp,
            duration=0,
            keyframe=index == 0 and part == 0,
            received=0.0,
        )
        for index, (picture, stamp) in enumerate(zip(packets, stamps, strict=True))
        for part, data in enumerate(picture)
    ]


def decoded(codec: str, samples: list[Packet]) -> tuple[int, list[str]]:
    """Frames FFmpeg's decoder makes of ``samples`` (one packet each), and its complaints."""
    decoder = av.CodecContext.create(codec, "r")
    frames = 0
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            for sample in samples:
                packet = av.Packet(sample.data)
                packet.pts, packet.dts = sample.pts, sample.dts
                # PyAV's stubs give a codec context opened by name no decode(); it has one.
                frames += len(decoder.decode(packet))  # type: ignore[attr-defined]
            frames += len(decoder.decode(None))  # type: ignore[attr-defined]
    finally:
        av.logging.set_level(level)
    return frames, [message.strip() for _, _, message in logs]


def assert_whole_pictures(codec: str, out: list[Packet], expected: tuple[bytes, ...]) -> None:
    """One sample per picture, bytes unchanged, clean timestamps, and the decoder agrees."""
    assert [p.data for p in out] == list(expected)
    assert [p.keyframe for p in out] == [i == 0 for i in range(len(expected))]
    assert_clean(out)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(out))
    assert all(p.duration > 0 for p in out)
    assert decoded(codec, out) == (len(expected), [])


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_pictures_stamped_alike_stay_separate_a_frame_interval_apart(codec: str) -> None:
    """What a signing camera sent: after the first keyframe, six P pictures stamped alike."""
    n = Normalizer((TRACKS[codec],), camera_id="cam")
    stamps = [0, FRAME, FRAME, FRAME, FRAME, FRAME, FRAME, 7 * FRAME]

    out = run(n, stamped([[p] for p in pictures(codec)], stamps))

    assert_whole_pictures(codec, out, pictures(codec))
    # The camera's clock went on at its frame rate: the moved pictures fill the frames it skipped.
    assert [p.dts for p in out] == [i * FRAME for i in range(PICTURES)]
    assert [p.pts for p in out] == [p.dts for p in out]
    assert all(p.duration == FRAME for p in out)
    assert n.repaired == 5


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_keyframe_and_its_successors_stamped_alike_stay_separate(codec: str) -> None:
    n = Normalizer((TRACKS[codec],), camera_id="cam")

    out = run(n, stamped([[p] for p in pictures(codec)], [0] * PICTURES))

    assert_whole_pictures(codec, out, pictures(codec))
    assert [p.dts for p in out] == [i * FRAME for i in range(PICTURES)]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_parameter_sets_sent_apart_from_their_slice_are_joined_to_it(codec: str) -> None:
    keyframe, *rest = pictures(codec)
    units = nal_units(keyframe)
    first_slice = next(i for i, u in enumerate(units) if is_slice(u, codec))
    assert first_slice >= 3  # (VPS,) SPS, PPS, SEI
    setup, picture = b"".join(units[:first_slice]), b"".join(units[first_slice:])
    n = Normalizer((TRACKS[codec],), camera_id="cam")
    stamps = [i * FRAME for i in range(PICTURES)]
    raws = stamped([[setup, picture], *([p] for p in rest)], stamps)

    out = run(n, raws)

    assert_whole_pictures(codec, out, pictures(codec))
    assert [p.dts for p in out] == [i * FRAME for i in range(PICTURES)]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_picture_sliced_into_several_packets_is_joined_even_when_pictures_share_a_stamp(
    codec: str,
) -> None:
    """Each NAL unit its own packet (as RTP single-NAL packets come), slices of each picture
    after the first (first_mb_in_slice > 0, first_slice_segment_in_pic_flag 0) included."""
    sliced = pictures(codec, "slices=2")
    packets = [nal_units(p) for p in sliced]
    assert all(sum(is_slice(u, codec) for u in units) == 2 for units in packets)
    for stamps in ([i * FRAME for i in range(PICTURES)], [0, *[FRAME] * (PICTURES - 1)]):
        n = Normalizer((TRACKS[codec],), camera_id="cam")

        out = run(n, stamped(packets, stamps))

        assert_whole_pictures(codec, out, sliced)


def test_an_access_unit_delimiter_opens_the_next_picture_and_its_slices_follow_it() -> None:
    """x264 with aud=1: every picture opens with a delimiter, here sent alone."""
    with_aud = pictures("h264", "aud=1")
    packets = []
    for picture in with_aud:
        aud, *others = nal_units(picture)
        assert nal_type(aud, "h264") == 9
        packets.append([aud, b"".join(others)])
    n = Normalizer((VIDEO,), camera_id="cam")

    out = run(n, stamped(packets, [0] * PICTURES))

    assert_whole_pictures("h264", out, with_aud)


def test_an_sei_sent_alone_after_a_picture_opens_the_next_one() -> None:
    """An SEI in a packet of its own (as a signing camera's signature may come) after a
    picture and stamped like it: it opens the next access unit, which the next slice joins."""
    keyframe, second = pictures("h264")[:2]
    units = nal_units(keyframe)
    sei = next(u for u in units if nal_type(u, "h264") == 6)
    others = b"".join(u for u in units if u is not sei)
    n = Normalizer((VIDEO,), camera_id="cam")
    # The SEI comes after the first picture, then the second picture, all stamped alike.
    raws = stamped([[others], [sei, second]], [0, 0])

    out = run(n, raws)

    assert [p.data for p in out] == [others, sei + second]
    assert out[1].dts == FRAME


def test_codecs_and_layouts_not_read_keep_the_timestamp_rule() -> None:
    """MJPEG has no NAL units; length-prefixed (AVCC) H.264 is not what sources give here."""
    mjpeg = Track(index=0, kind="video", codec="mjpeg", time_base=VIDEO_TB)
    second = pictures("h264")[1]
    avcc = len(second[4:]).to_bytes(4, "big") + second[4:]
    for track, data in ((mjpeg, b"\xff\xd8 picture"), (VIDEO, avcc)):
        n = Normalizer((track,), camera_id="cam")

        out = run(n, [video(0, data, key=True), video(0, data), video(FRAME, data)])

        assert [p.data for p in out] == [data + data, data]


def test_stamps_that_come_too_early_after_moved_pictures_go_a_tick_after_them() -> None:
    """A camera whose clock did not skip the pictures it stamped alike: its next stamps are
    earlier than the moved pictures, so they go a tick after them until the timeline has
    caught up with the camera (within as many pictures as were moved)."""
    n = Normalizer((VIDEO,), camera_id="cam")
    stamps = [0, FRAME, FRAME, FRAME, 2 * FRAME, 3 * FRAME, 4 * FRAME, 5 * FRAME]

    out = run(n, stamped([[p] for p in pictures("h264")], stamps))

    assert_whole_pictures("h264", out, pictures("h264"))
    assert [p.dts for p in out] == [
        *(0, FRAME, 2 * FRAME, 3 * FRAME),  # two pictures moved off the camera's FRAME
        *(3 * FRAME + 1, 3 * FRAME + 2),  # its next stamps (2 and 3 frames) come too early
        *(4 * FRAME, 5 * FRAME),  # caught up
    ]


def test_a_camera_clock_that_stands_still_gives_a_timeline_at_the_frame_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """12 s of pictures stamped alike, then the clock goes on from where it stood: the
    pictures keep the frame rate, and once the clock moves again the pictures put a tick apart
    (the moved ones were ahead of it) cover less than MAX_JUMP_SECONDS of it."""
    n = Normalizer((VIDEO,), camera_id="cam")
    keyframe, *others = pictures("h264")
    frozen = [keyframe, *itertools.islice(itertools.cycle(others), 299)]
    after = list(itertools.islice(itertools.cycle(others), 200))
    stamps = [0] * 300 + [FRAME * (i + 1) for i in range(200)]

    out = run(n, stamped([[p] for p in frozen + after], stamps))

    assert len(out) == 500
    assert_clean(out)
    assert [p.dts for p in out[:300]] == [i * FRAME for i in range(300)]
    squeezed = [b.dts - a.dts for a, b in itertools.pairwise(out[300:])].count(1)
    assert 0 < squeezed * FRAME * VIDEO_TB < MAX_JUMP_SECONDS
    assert n.discontinuities == 2  # after 5 s and 10 s of pictures stamped alike
    assert caplog.text.count("share one timestamp") == 1


@settings(max_examples=120, deadline=None)
@given(
    codec=st.sampled_from(["h264", "hevc"]),
    slices=st.sampled_from([1, 2]),
    draw=st.data(),
)
def test_any_cut_into_packets_and_any_stamps_shared_give_back_the_pictures(
    codec: str, slices: int, draw: st.DataObject
) -> None:
    """Real pictures cut into packets at any NAL unit boundary, any of them stamped like the
    one before: what comes out is the pictures, byte for byte, and they decode."""
    source = pictures(codec, f"slices={slices}")
    packets = []
    for picture in source:
        units = nal_units(picture)
        cuts = draw.draw(st.sets(st.integers(1, len(units) - 1))) if len(units) > 1 else set()
        bounds = [0, *sorted(cuts), len(units)]
        packets.append([b"".join(units[a:b]) for a, b in itertools.pairwise(bounds)])
    stamps = [0]
    for shared in draw.draw(st.lists(st.booleans(), min_size=PICTURES - 1, max_size=PICTURES - 1)):
        stamps.append(stamps[-1] + (0 if shared else FRAME))
    n = Normalizer((TRACKS[codec],), camera_id="cam")

    out = run(n, stamped(packets, stamps))

    assert_whole_pictures(codec, out, source)
