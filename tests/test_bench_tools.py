"""The benchmark's own instruments: its light centre, and departure times from keyframes.

The benchmark's figures are only as good as these: a centre that missed or misnamed pictures
would count loss that is not there, or hide loss that is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
from helpers import ROOT, free_port

sys.path.insert(0, str(ROOT / "tests" / "support"))
from digest import avcc_digest

sys.path.insert(0, str(ROOT / "bench"))
from common import ClipFrame, clip_frames, expand_departures


def _clip(path: Path) -> Path:
    """3 s of H.264 with large pictures (split into FU-A fragments) and 1 s GOPs."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
            "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-g", "25",
            "-bf", "0", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def test_light_centre_logs_every_picture_pushed_by_its_identity(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4")
    sent = [f.digest for f in clip_frames(clip)]
    assert len(sent) == 75 and all(sent)
    arrivals = tmp_path / "arrivals.log"
    port = free_port()
    centre = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/centre.py"),
            "--port",
            str(port),
            "--arrivals",
            str(arrivals),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert centre.stdout is not None and centre.stdout.readline().startswith("READY")
        push = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-re",
                "-i",
                str(clip),
                "-c",
                "copy",
                "-f",
                "rtsp",
                "-rtsp_transport",
                "tcp",
                f"rtsp://127.0.0.1:{port}/site/cam7",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert push.returncode == 0, push.stderr
    finally:
        centre.terminate()
        centre.wait(10)
    lines = [line.split() for line in arrivals.read_text().splitlines()]
    assert {path for _, path, _ in lines} == {"/site/cam7"}
    assert [digest for _, _, digest in lines] == sent  # each picture once, in order
    times = [int(ns) for ns, _, _ in lines]
    assert times == sorted(times)
    # Paced by -re: arrival times follow the pictures' own timing, not a burst at the end.
    assert 2.5 < (times[-1] - times[0]) / 1e9 < 4.0


def test_departures_of_every_picture_follow_from_its_keyframe() -> None:
    frames = [ClipFrame(i / 25, f"d{i}", i % 50 == 0) for i in range(120)]
    keyframes = [(1_000_000_000, "/cam0", "d50"), (5_000_000_000, "/cam1", "d0")]
    out = expand_departures(keyframes, frames)
    # Frames 50..99 after the first keyframe (up to the next one), frames 0..49 after the second.
    assert [d for _, m, d in out if m == "/cam0"] == [f"d{i}" for i in range(50, 100)]
    assert [d for _, m, d in out if m == "/cam1"] == [f"d{i}" for i in range(50)]
    assert out[1][0] == 1_000_000_000 + 40_000_000
    assert out[-1][0] == 5_000_000_000 + 49 * 40_000_000
    # A keyframe the clip does not hold (another clip, a corrupted log) yields nothing.
    assert expand_departures([(0, "/cam0", "unknown")], frames) == []


def test_clip_identities_match_what_a_recording_of_it_holds(tmp_path: Path) -> None:
    """The identity survives stream copy: a copy of the clip reads back the same pictures."""
    clip = _clip(tmp_path / "clip.mp4")
    copy = tmp_path / "copy.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(clip),
            "-c",
            "copy",
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov",
            str(copy),
        ],
        check=True,
    )
    with av.open(str(copy)) as container:
        copied = [avcc_digest(bytes(p)) for p in container.demux(video=0) if p.size]
    assert copied == [f.digest for f in clip_frames(clip)]
