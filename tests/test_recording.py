"""Recording real RTSP cameras: every segment plays, nothing is missing between segments."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import (
    StartCamera,
    StartGateway,
    decode_errors,
    ffprobe,
    video_packets,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.camera


def test_records_h264_with_aac_and_h265_cameras_into_playable_contiguous_segments(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    server = cameras(
        ["/h264:audio=aac:fps=25", "/h265:codec=h265:fps=25", "/alaw:audio=pcma:fps=15:gop=15"]
    )
    storage = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml",
        storage,
        [
            {"id": "hall-a", "url": server.url("/h264"), "audio": True},
            {"id": "stairs", "url": server.url("/h265")},
            {"id": "lobby", "url": server.url("/alaw"), "audio": True},
        ],
        storage={"segment_duration": "3s"},
    )
    gw = gateway(config)
    gw.wait_log("camera lobby: online", 15)
    wait_until(lambda: len(gw.segments("hall-a")) >= 3, 20, "three finished hall-a segments")
    wait_until(lambda: len(gw.segments("stairs")) >= 3, 10, "three finished stairs segments")
    started = time.monotonic()
    assert gw.stop() == 0
    assert time.monotonic() - started < 5, "SIGTERM must finalise segments within 5 s"
    assert gw.segments(partial=True) == [], "no segment left half-written after SIGTERM"

    for camera, codec, fps in (
        ("hall-a", "h264", 25),
        ("stairs", "hevc", 25),
        ("lobby", "h264", 15),
    ):
        files = gw.segments(camera)
        assert len(files) >= 3
        for path in files:
            info = ffprobe(path)
            video = [s for s in info["streams"] if s["codec_type"] == "video"]
            assert [s["codec_name"] for s in video] == [codec]
            if codec == "hevc":
                assert video[0]["codec_tag_string"] == "hvc1", "HEVC tagged for browsers"
            assert (int(video[0]["width"]), int(video[0]["height"])) == (640, 360)
            assert decode_errors(path) == "", f"{path.name} does not decode cleanly"
            packets = video_packets(path)
            assert "K" in packets[0]["flags"], "each segment starts on a keyframe"
        # Full segments (not the first nor the last) last about segment_duration.
        for path in files[1:-1]:
            stream = next(s for s in ffprobe(path)["streams"] if s["codec_type"] == "video")
            duration, frames = float(stream["duration"]), int(stream["nb_read_packets"])
            assert 2.9 <= duration <= 3.2, f"{path.name}: {duration} s"
            assert abs(frames - duration * fps) <= 2, (
                f"{path.name}: {frames} frames in {duration} s"
            )

    # AAC goes into the MP4; G.711 cannot, so it is dropped with one warning, video kept.
    audio = [
        s["codec_name"]
        for s in ffprobe(gw.segments("hall-a")[1])["streams"]
        if s["codec_type"] == "audio"
    ]
    assert audio == ["aac"]
    assert all(s["codec_type"] == "video" for s in ffprobe(gw.segments("lobby")[1])["streams"])
    assert gw.log.count("audio pcm_alaw cannot be stored in MP4") == 1

    # The index agrees with the files and shows no gap inside continuous recording.
    listing = gw.listing()
    for camera in ("hall-a", "stairs", "lobby"):
        rows = [s for s in listing["segments"] if s["camera"] == camera]
        assert sorted(Path(r["path"]) for r in rows) == gw.segments(camera)
        assert [g for g in listing["gaps"] if g["camera"] == camera] == []
        for row in rows:
            assert row["frames"] > 0 and row["bytes"] == Path(row["path"]).stat().st_size
