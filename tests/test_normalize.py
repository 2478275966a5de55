"""Timestamp repair before the fan-out: split pictures marked (and joined where muxed),
invented and repaired timestamps, and no packet held back."""

from __future__ import annotations

import itertools
from fractions import Fraction

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
