"""The tamper camera (``tests/support/tamper_camera.py``): a real RTSP camera whose picture is
switched while it streams. Each mode's keyframe is pulled by Debian's ffmpeg, as any client
would, then judged twice: by plain OpenCV measures, and by the integrity analysis itself.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from tamper import MASK, MODES, TamperCamera

from gateway.analysis import CameraMonitor, Settings, Zone, frame_from_array, judge
from gateway.analysis.judge import verdict

pytestmark = pytest.mark.camera

Picture = NDArray[np.uint8]
EDGE = 4
"""Pixels of the mask's border left out where its interior is judged (the encoder rings
along the edge of a flat fill)."""


def grab(url: str, out: Path, frames: int = 1, timeout: float = 10.0) -> None:
    """The first ``frames`` decoded pictures of the stream (a keyframe first), as PNG."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-rtsp_transport",
            "tcp",
            "-analyzeduration",
            "200000",  # the SDP carries the parameter sets: do not probe 5 s of stream
            "-probesize",
            "100000",
            "-i",
            url,
            "-frames:v",
            str(frames),
            *(["-update", "1"] if frames == 1 else []),
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


def picture(url: str, out: Path) -> Picture:
    grab(url, out)
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert image is not None, f"ffmpeg wrote no picture to {out}"
    return np.asarray(image, np.uint8)


def grey(image: Picture) -> Picture:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)


def mask_interior(image: Picture) -> Picture:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = MASK
    return grey(image)[
        round(y0 * h) + EDGE : round(y1 * h) - EDGE, round(x0 * w) + EDGE : round(x1 * w) - EDGE
    ]


def laplacian_variance(image: Picture) -> float:
    return float(cv2.Laplacian(grey(image), cv2.CV_64F).var())


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TamperCamera]:
    with TamperCamera(tmp_path_factory.mktemp("tamper")).start() as started:
        yield started


@pytest.fixture(scope="module")
def pictures(camera: TamperCamera, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Picture]:
    """One keyframe per mode, each pulled by a new client once the camera announced the mode."""
    folder = tmp_path_factory.mktemp("pictures")
    taken = {}
    for mode in MODES:
        camera.set_mode(mode)
        taken[mode] = picture(camera.url, folder / f"{mode}.png")
    camera.set_mode("normal")
    return taken


def test_every_mode_streams_a_picture_of_the_camera_size(pictures: dict[str, Picture]) -> None:
    assert {mode: p.shape for mode, p in pictures.items()} == dict.fromkeys(MODES, (360, 640, 3))


def test_the_normal_picture_is_detailed_around_a_flat_privacy_mask(
    pictures: dict[str, Picture],
) -> None:
    normal = pictures["normal"]
    assert grey(normal).std() > 30
    assert mask_interior(normal).std() < 3
    assert abs(float(mask_interior(normal).mean()) - 128) < 6


def test_a_covered_camera_streams_a_near_black_picture(pictures: dict[str, Picture]) -> None:
    black = grey(pictures["black"])
    assert black.mean() < 20
    assert black.std() < 8


def test_a_defocused_camera_loses_most_of_its_sharpness(pictures: dict[str, Picture]) -> None:
    normal, blurred = (laplacian_variance(pictures[m]) for m in ("normal", "blur"))
    assert blurred < 0.3 * normal, (blurred, normal)


def test_a_turned_camera_shows_the_scene_shifted_by_15_percent_of_the_width(
    pictures: dict[str, Picture],
) -> None:
    normal, shifted = (grey(pictures[m]).astype(np.float32) for m in ("normal", "shift"))
    (dx, dy), _response = cv2.phaseCorrelate(normal, shifted)
    width = normal.shape[1]
    assert abs(abs(dx) - 0.15 * width) <= 0.02 * width, (dx, dy)
    assert abs(dy) <= 2, (dx, dy)


def test_an_unmasked_camera_shows_content_where_the_mask_was(
    pictures: dict[str, Picture],
) -> None:
    assert mask_interior(pictures["unmask"]).std() > 10
    assert mask_interior(pictures["normal"]).std() < 3


def test_the_integrity_analysis_tells_each_tampering(pictures: dict[str, Picture]) -> None:
    x0, y0, x1, y1 = MASK
    zone = Zone("flat", ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    settings = Settings(zones=(zone,))
    monitor = CameraMonitor(settings)
    healthy = frame_from_array(pictures["normal"])
    for k in range(settings.learning_frames):
        monitor.observe(healthy, 2.0 * k)
    assert monitor.reference is not None, "the normal picture was not learned"
    found = {
        mode: verdict(judge(frame_from_array(p), monitor.reference, settings), settings)
        for mode, p in pictures.items()
    }
    assert found["normal"] == frozenset()
    assert found["black"] == {"covered"}
    assert found["blur"] == {"defocused"}
    # the mask turned with the camera, so the configured zone is filmed as well
    assert "moved" in found["shift"]
    assert "covered" not in found["shift"] and "defocused" not in found["shift"]
    assert found["unmask"] == {"privacy"}


def test_the_stream_runs_at_the_camera_frame_rate(camera: TamperCamera, tmp_path: Path) -> None:
    started = time.monotonic()
    grab(camera.url, tmp_path / "f%02d.png", frames=21)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.8, f"21 pictures at 10 fps arrived in {elapsed:.2f} s"
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v",
            "-read_intervals",
            "%+2.5",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            camera.url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=15,
    )
    rows = [line.split(",") for line in probe.stdout.split() if line.count(",") >= 1]
    times = [float(t) for t, *_ in rows if t != "N/A"]
    steps = np.diff(times)
    assert len(steps) >= 15
    assert np.all(np.abs(steps - 0.1) < 0.03), steps
    keys = [float(t) for t, flags, *_ in rows if t != "N/A" and flags.startswith("K")]
    assert np.allclose(np.diff(keys), 1.0, atol=0.05), keys


def test_the_camera_keeps_streaming_once_its_stdin_is_closed(tmp_path: Path) -> None:
    with TamperCamera(tmp_path).start() as camera:
        camera.set_mode("black")
        assert camera.proc is not None and camera.proc.stdin is not None
        camera.proc.stdin.close()
        time.sleep(0.5)
        assert camera.proc.poll() is None
        assert grey(picture(camera.url, tmp_path / "after.png")).mean() < 20
    with pytest.raises(ValueError, match="unknown mode"):
        camera.set_mode("sepia")
