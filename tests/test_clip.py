"""Evidence clips: segments recorded by Debian's ffmpeg, clipped, and checked with ffprobe/ffmpeg.

The expected video of a range is worked out here from the source segments alone (the last
keyframe at or before the start, every packet in decode order up to the last frame shown
before the end), and compared NAL unit by NAL unit, parsed here from the length-prefixed
samples: a clip must carry every unit of the recording, SEI units included, byte for byte.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import pytest
from helpers import decode_errors, ffprobe, tmpfs

from gateway.evidence.clip import Clip, ClipError, ClipSource, runs, write_clip, write_clips

T0 = datetime(2026, 12, 2, 10, 15, 0, tzinfo=UTC).timestamp()
"""Wall start of the first segment: 11:15:00 CET."""
PARIS = ZoneInfo("Europe/Paris")
FPS = 25
GOP = 25
SEGMENT = 2.0
X264_SEI_UUID = bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef")
"""The UUID of the "user data unregistered" SEI in which x264 writes its settings."""
X265_SEI_UUID = bytes.fromhex("2ca2de09b51747dbbb55a4fe7fc2fc4e")


def encode(
    path: Path,
    offset: float,
    *,
    size: str = "320x240",
    audio: bool = False,
    hevc: bool = False,
    seconds: float = SEGMENT,
) -> Path:
    """One segment as the recorder lays it out: fragmented MP4 in 0.5 s fragments, starting on
    a keyframe, a keyframe every second; the test pattern from ``offset`` seconds on."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-ss", str(offset), "-t", str(seconds), "-pix_fmt", "yuv420p"]
    if hevc:
        # repeat-headers: parameter sets and x265's SEI in every keyframe, as cameras send them
        params = f"keyint={GOP}:min-keyint={GOP}:open-gop=0:scenecut=0:repeat-headers=1"
        params += ":log-level=error"
        cmd += ["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", params]
    else:  # x264's defaults: B-frames; aud=1 puts an access unit delimiter in every sample
        cmd += ["-c:v", "libx264", "-g", str(GOP), "-sc_threshold", "0", "-x264-params", "aud=1"]
    if audio:
        cmd += ["-c:a", "aac"]
    cmd += ["-video_track_timescale", "90000", "-movflags", "empty_moov+default_base_moof"]
    cmd += ["-frag_duration", "500000", "-f", "mp4", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return path


@dataclass(frozen=True)
class Sample:
    pts: int
    dts: int
    key: bool
    data: bytes


def read_video(path: Path) -> tuple[list[Sample], float, str, int]:
    """Video samples, seconds per tick, codec, NAL length size (from avcC/hvcC)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        extradata = bytes(ctx.extradata or b"")
        length = (extradata[4 if ctx.name == "h264" else 21] & 3) + 1
        samples = [
            Sample(p.pts, p.dts, p.is_keyframe, bytes(p))
            for p in container.demux(stream)
            if p.size and p.pts is not None and p.dts is not None
        ]
        return samples, float(stream.time_base or 1), ctx.name, length


def read_audio(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def nal_units(data: bytes, length: int) -> list[bytes]:
    units, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + length], "big")
        assert size and pos + length + size <= len(data), "sample is not length-prefixed"
        units.append(data[pos + length : pos + length + size])
        pos += length + size
    return units


def nal_type(unit: bytes, codec: str) -> int:
    return unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F


def nal_list(samples: list[bytes], codec: str, length: int) -> list[tuple[int, str]]:
    return [
        (nal_type(unit, codec), hashlib.sha256(unit).hexdigest())
        for data in samples
        for unit in nal_units(data, length)
    ]


def expected_samples(sources: list[ClipSource], start: float, end: float) -> list[bytes]:
    """The range as the brief defines it, from the sources: the last keyframe at or before
    start (the first one if the recording begins after it), then every sample in decode order
    up to the last one shown before end."""
    frames: list[tuple[float, bool, bytes]] = []
    for source in sorted(sources, key=lambda s: s.start):
        if source.start >= end:
            continue
        samples, tick, _, _ = read_video(source.path)
        first = samples[0].dts
        frames += [(source.start + (s.pts - first) * tick, s.key, s.data) for s in samples]
    keys = [i for i, (wall, key, _) in enumerate(frames) if key and wall <= start]
    begin = keys[-1] if keys else next(i for i, f in enumerate(frames) if f[1])
    last = max(i for i, (wall, _, _) in enumerate(frames) if i >= begin and wall < end)
    return [data for _, _, data in frames[begin : last + 1]]


def boxes(path: Path) -> list[str]:
    """Top-level MP4 box types in file order."""
    data, found, pos = path.read_bytes(), [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        found.append(kind.decode())
        pos += size
    return found


def cues(path: Path) -> list[tuple[float, float, str]]:
    """The wall-clock track as ffmpeg reads it: (start s, end s, text)."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "s:0",
            "-show_entries",
            "packet=pts_time,duration_time,size",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    timing = [p for p in json.loads(result.stdout)["packets"] if int(p["size"]) > 2]
    srt = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "webvtt", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    texts = [block.splitlines()[1] for block in srt.split("\n\n")[1:] if block.strip()]
    assert len(texts) == len(timing)
    return [
        (float(p["pts_time"]), float(p["pts_time"]) + float(p["duration_time"]), text)
        for p, text in zip(timing, texts, strict=True)
    ]


def packets(path: Path, stream: str) -> list[dict[str, str]]:
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time,dts_time,dts,flags",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(result.stdout)["packets"])


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clip-media")


@pytest.fixture(scope="module")
def h264(media: Path) -> list[Path]:
    """Four 2 s H.264 segments of one continuous picture, each from its own encoder run (so
    each opens with x264's SEI), with the same parameter sets."""
    return [encode(media / f"h264-{i}.mp4", i * SEGMENT) for i in range(4)]


@pytest.fixture(scope="module")
def spanning(h264: list[Path], media: Path) -> tuple[Clip, list[ClipSource], float, float]:
    sources = [ClipSource(p, T0 + i * SEGMENT) for i, p in enumerate(h264)]
    start, end = T0 + 0.5, T0 + 6.3
    clip = write_clip(sources, start, end, media / "spanning.mp4", tz=PARIS, label="cam1")
    return clip, sources, start, end


def test_a_clip_spanning_segments_carries_every_nal_unit_of_the_range_unchanged(
    spanning: tuple[Clip, list[ClipSource], float, float],
) -> None:
    clip, sources, start, end = spanning
    samples, _, codec, length = read_video(clip.path)
    got = nal_list([s.data for s in samples], codec, length)
    want = nal_list(expected_samples(sources, start, end), "h264", 4)
    assert got == want
    # Each segment's first keyframe carries x264's "user data unregistered" SEI (type 6); all
    # four are in the range, and every sample has an access unit delimiter (type 9).
    seis = [u for s in samples for u in nal_units(s.data, length) if nal_type(u, codec) == 6]
    assert sum(X264_SEI_UUID in u for u in seis) == 4
    assert all(9 in {nal_type(u, codec) for u in nal_units(s.data, length)} for s in samples)
    assert clip.sources == tuple(s.path for s in sources)
    assert clip.frames == len(samples)


def test_the_clip_plays_with_moov_first_and_covers_the_range(
    spanning: tuple[Clip, list[ClipSource], float, float],
) -> None:
    clip, _, start, end = spanning
    assert decode_errors(clip.path) == ""
    found = boxes(clip.path)
    assert found.index("moov") < found.index("mdat")
    info = ffprobe(clip.path)
    kinds = [(s["codec_type"], s["codec_name"]) for s in info["streams"]]
    assert kinds == [("video", "h264"), ("subtitle", "mov_text")]
    text = info["streams"][1]
    assert text["tags"]["language"] == "und"
    assert text["tags"]["handler_name"] == "Wall clock"
    duration = float(info["format"]["duration"])
    frames = int(info["streams"][0]["nb_read_packets"])
    assert abs(duration - (end - start)) < GOP / FPS
    assert abs(frames - (end - start) * FPS) <= GOP
    assert abs(duration - (clip.end - clip.start)) < 0.01
    assert (clip.codec, clip.width, clip.height, clip.fps, clip.has_audio) == (
        "h264",
        320,
        240,
        25.0,
        False,
    )
    # The first frame is the keyframe before the start. The last frame shown before the end
    # may need a P-frame shown after it (x264's 3 B-frames): up to 4 frames more.
    assert clip.start <= start < clip.start + GOP / FPS
    assert end - 1 / FPS <= clip.end <= end + 5 / FPS


def test_the_wall_clock_track_shows_each_second_in_the_zone_given_over_the_whole_clip(
    spanning: tuple[Clip, list[ClipSource], float, float],
) -> None:
    clip, _, _, _ = spanning
    shown = cues(clip.path)
    assert shown[0][0] == 0.0
    assert abs(shown[-1][1] - (clip.end - clip.start)) < 0.001
    for (_, end, _), (begin, _, _) in itertools.pairwise(shown):
        assert abs(end - begin) < 0.001  # no holes, no overlaps
    for begin, end, text in shown:
        second = int(clip.start + begin + 1e-6)
        when = datetime.fromtimestamp(second, PARIS).strftime("%Y-%m-%d %H:%M:%S %Z")
        assert text == f"cam1 {when}"
        assert end - begin <= 1.0 + 1e-6
    assert shown[0][2] == "cam1 2026-12-02 11:15:00 CET"


def test_a_request_starting_mid_gop_starts_at_the_keyframe_before(
    h264: list[Path], tmp_path: Path
) -> None:
    sources = [ClipSource(p, T0 + i * SEGMENT) for i, p in enumerate(h264)]
    clip = write_clip(sources, T0 + 3.6, T0 + 4.3, tmp_path / "mid.mp4")
    samples, _tick, _, _ = read_video(clip.path)
    source, source_tick, _, _ = read_video(h264[1])
    # h264-1's keyframes are at 0.08 s and 1.08 s of its presentation (B-frame delay 80 ms).
    keyframe = next(s for s in source if s.key and s.pts * source_tick > 0.5)
    assert samples[0].key and samples[0].data == keyframe.data
    assert clip.start == pytest.approx(T0 + 2 + keyframe.pts * source_tick, abs=1e-6)
    assert [s.data for s in samples] == expected_samples(sources, T0 + 3.6, T0 + 4.3)
    assert packets(clip.path, "v:0")[0]["pts_time"] == "0.000000"
    assert decode_errors(clip.path) == ""


def test_a_request_from_before_the_recording_starts_at_its_first_keyframe(
    h264: list[Path], tmp_path: Path
) -> None:
    sources = [ClipSource(h264[0], T0)]
    clip = write_clip(sources, T0 - 30, T0 + 1.5, tmp_path / "early.mp4")
    samples, _, _, _ = read_video(clip.path)
    assert samples[0].data == read_video(h264[0])[0][0].data
    assert clip.start == pytest.approx(T0 + 0.08, abs=1e-6)


def test_a_gap_between_segments_stays_a_gap_in_the_timeline(
    h264: list[Path], tmp_path: Path
) -> None:
    # The camera was offline from T0+4 to T0+6: the last two segments start 2 s later.
    starts = [T0, T0 + 2, T0 + 6, T0 + 8]
    sources = [ClipSource(p, s) for p, s in zip(h264, starts, strict=True)]
    clip = write_clip(sources, T0 + 1.2, T0 + 9.5, tmp_path / "gap.mp4", tz=PARIS)
    samples, _, codec, length = read_video(clip.path)
    want = expected_samples(sources, T0 + 1.2, T0 + 9.5)
    assert nal_list([s.data for s in samples], codec, length) == nal_list(want, codec, length)
    assert decode_errors(clip.path) == ""
    video = packets(clip.path, "v:0")
    keys = [float(p["pts_time"]) for p in video if p["flags"].startswith("K")]
    # Segment 3 opens at T0+6 (+80 ms delay): where a player shows it.
    first_after_gap = min(k for k in keys if k > 4.0 - (clip.start - T0))
    assert clip.start + first_after_gap == pytest.approx(T0 + 6.08, abs=1e-4)
    assert clip.end == pytest.approx(T0 + 9.52, abs=0.05)
    shown = cues(clip.path)
    assert len(shown) == 9  # 11:15:01 to 11:15:09, the seconds of the gap included
    assert shown[3][2] == "2026-12-02 11:15:04 CET"
    assert shown[-1][1] == pytest.approx(clip.end - clip.start, abs=0.001)


def test_segments_overlapping_by_a_few_ms_keep_decode_times_increasing(
    h264: list[Path], tmp_path: Path
) -> None:
    starts = [T0, T0 + 1.997, T0 + 3.994, T0 + 5.991]
    sources = [ClipSource(p, s) for p, s in zip(h264, starts, strict=True)]
    clip = write_clip(sources, T0, T0 + 8, tmp_path / "overlap.mp4")
    dts = [int(p["dts"]) for p in packets(clip.path, "v:0")]
    assert all(a < b for a, b in itertools.pairwise(dts))
    assert clip.adjusted == 0.0  # 3 ms less than a frame: each placed at its own time
    samples, _, codec, length = read_video(clip.path)
    everything = [s.data for p in h264 for s in read_video(p)[0]]
    assert nal_list([s.data for s in samples], codec, length) == nal_list(everything, codec, 4)
    assert decode_errors(clip.path) == ""


def test_a_segment_overlapping_by_frames_is_placed_after_the_previous_one(
    h264: list[Path], tmp_path: Path
) -> None:
    # The index puts the second segment 100 ms before the first one ends.
    sources = [ClipSource(h264[0], T0), ClipSource(h264[1], T0 + 1.9)]
    clip = write_clip(sources, T0, T0 + 4, tmp_path / "overlap.mp4")
    dts = [float(p["dts_time"]) for p in packets(clip.path, "v:0")]
    assert all(a < b for a, b in itertools.pairwise(dts))
    assert clip.adjusted == pytest.approx(0.1, abs=1e-4)  # to 40 ms after the last frame
    assert clip.frames == 2 * SEGMENT * FPS
    assert decode_errors(clip.path) == ""


def test_audio_is_copied_alongside_the_video(media: Path, tmp_path: Path) -> None:
    paths = [encode(media / f"aac-{i}.mp4", i * SEGMENT, audio=True) for i in range(3)]
    sources = [ClipSource(p, T0 + i * SEGMENT) for i, p in enumerate(paths)]
    clip = write_clip(sources, T0 + 0.5, T0 + 5.5, tmp_path / "audio.mp4")
    assert clip.has_audio
    assert decode_errors(clip.path) == ""
    info = ffprobe(clip.path)
    kinds = [s["codec_name"] for s in info["streams"]]
    assert kinds == ["h264", "aac", "mov_text"]
    video, audio = (float(info["streams"][i]["duration"]) for i in (0, 1))
    assert abs(video - audio) < 0.1
    # Every AAC frame written is one of the recording's, in the recording's order.
    recorded = [data for p in paths for data in read_audio(p)]
    position = 0
    for data in read_audio(clip.path):
        position = recorded.index(data, position) + 1
    assert len(read_audio(clip.path)) == pytest.approx(audio * 48000 / 1024, abs=2)


def test_an_hevc_recording_is_copied_unit_for_unit_with_its_hvc1_tag(
    media: Path, tmp_path: Path
) -> None:
    paths = [encode(media / f"hevc-{i}.mp4", i * SEGMENT, hevc=True) for i in range(2)]
    sources = [ClipSource(p, T0 + i * SEGMENT) for i, p in enumerate(paths)]
    clip = write_clip(sources, T0 + 0.3, T0 + 3.7, tmp_path / "hevc.mp4")
    assert clip.codec == "hevc"
    assert decode_errors(clip.path) == ""
    info = ffprobe(clip.path)
    assert info["streams"][0]["codec_tag_string"] == "hvc1"
    samples, _, codec, length = read_video(clip.path)
    want = expected_samples(sources, T0 + 0.3, T0 + 3.7)
    assert nal_list([s.data for s in samples], codec, length) == nal_list(want, codec, length)
    # Every keyframe has in-band parameter sets (VPS 32, SPS 33, PPS 34) and x265's prefix SEI
    # (39), left where they are.
    keyframes = [[nal_type(u, codec) for u in nal_units(s.data, length)] for s in samples if s.key]
    assert len(keyframes) == 4
    assert all(types[:4] == [32, 33, 34, 39] for types in keyframes)
    units = [u for s in samples for u in nal_units(s.data, length)]
    assert sum(X265_SEI_UUID in u for u in units if nal_type(u, codec) == 39) == 4


def test_runs_split_the_sources_where_the_resolution_changes(
    h264: list[Path], media: Path, tmp_path: Path
) -> None:
    wide = encode(media / "wide.mp4", 4.0, size="640x480")
    sources = [
        ClipSource(h264[0], T0),
        ClipSource(h264[1], T0 + 2),
        ClipSource(wide, T0 + 4),
        ClipSource(h264[3], T0 + 6),
    ]
    assert runs(sources) == [sources[:2], sources[2:3], sources[3:]]
    with pytest.raises(ClipError, match=r"wide\.mp4.*differ.*one clip per run"):
        write_clip(sources, T0 + 1, T0 + 5, tmp_path / "mixed.mp4")
    assert not (tmp_path / "mixed.mp4").exists()
    # One clip per run is fine.
    clip = write_clip(sources[2:3], T0 + 1, T0 + 5, tmp_path / "wide.mp4")
    assert (clip.width, clip.height) == (640, 480)


def test_write_clips_writes_one_playable_clip_per_run_opening_each_source_once(
    h264: list[Path], media: Path, tmp_path: Path
) -> None:
    wide = encode(media / "wide.mp4", 4.0, size="640x480")
    sources = [
        ClipSource(h264[0], T0),
        ClipSource(h264[1], T0 + 2),
        ClipSource(wide, T0 + 4),
        ClipSource(h264[3], T0 + 8),
    ]
    clips = write_clips(sources, T0 + 1, T0 + 9, lambda n: tmp_path / f"part-{n}.mp4")
    assert [c.path.name for c in clips] == ["part-1.mp4", "part-2.mp4", "part-3.mp4"]
    assert [(c.width, c.height) for c in clips] == [(320, 240), (640, 480), (320, 240)]
    for clip in clips:
        assert decode_errors(clip.path) == "", clip.path.name
    assert clips[1].start == pytest.approx(T0 + 4, abs=0.1)  # x264 B-frames: shown 80 ms on


def test_a_missing_source_is_an_error_naming_it(h264: list[Path], tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    sources = [ClipSource(h264[0], T0), ClipSource(missing, T0 + 2)]
    with pytest.raises(ClipError, match=r"gone\.mp4: missing") as raised:
        write_clip(sources, T0, T0 + 3, tmp_path / "out.mp4")
    assert str(missing) in raised.value.reason
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(ClipError, match=r"gone\.mp4: missing"):
        runs(sources)


def test_an_unreadable_source_is_an_error_and_leaves_no_partial_clip(
    h264: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"not a recording " * 500)
    sources = [ClipSource(h264[0], T0), ClipSource(broken, T0 + 2)]
    output = tmp_path / "out.mp4"
    # The first segment is copied before the second is opened: the output is removed again.
    with pytest.raises(ClipError, match=r"broken\.mp4: not a readable recording"):
        write_clip(sources, T0 + 0.5, T0 + 3, output)
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [broken]


def test_a_range_without_recording_is_an_error(h264: list[Path], tmp_path: Path) -> None:
    sources = [ClipSource(h264[0], T0), ClipSource(h264[1], T0 + 10)]  # a gap from T0+2 to +10
    for start, end in ((T0 + 3, T0 + 8), (T0 + 100, T0 + 110), (T0 - 20, T0 - 10)):
        with pytest.raises(ClipError, match="nothing recorded from 2026-12-02T"):
            write_clip(sources, start, end, tmp_path / "none.mp4")
    with pytest.raises(ClipError, match="empty range"):
        write_clip(sources, T0 + 1, T0 + 1, tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()


@pytest.mark.root
def test_a_full_disk_is_an_error_and_leaves_no_partial_clip(
    h264: list[Path], tmp_path: Path
) -> None:
    sources = [ClipSource(p, T0 + i * SEGMENT) for i, p in enumerate(h264)]
    with tmpfs(tmp_path / "small", "128k") as small:
        with pytest.raises(ClipError, match=r"out\.mp4: cannot (write|finish).*No space left"):
            write_clip(sources, T0, T0 + 8, small / "out.mp4")
        assert list(small.iterdir()) == []
