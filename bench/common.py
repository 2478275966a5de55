"""Shared pieces of the benchmarks: clips, the test camera and centre, /proc readings, digests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from digest import avcc_digest  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
SYSTEM_PYTHON = "/usr/bin/python3"
TICKS = os.sysconf("SC_CLK_TCK")

CLIPS = {
    # name: (size, bitrate, GOP in frames); 25 fps
    "1080p": ("1920x1080", "4M", 50),
    "720p": ("1280x720", "1.5M", 50),
}


def make_clip(profile: str = "1080p", seconds: int = 120) -> Path:
    """A pre-encoded H.264 clip (testsrc2, unique pictures), made once and cached."""
    size, bitrate, gop = CLIPS[profile]
    CACHE.mkdir(parents=True, exist_ok=True)
    clip = CACHE / f"clip-{profile}-{seconds}s.mp4"
    if not clip.exists():
        partial = clip.with_suffix(".part.mp4")
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=25",
                "-t",
                str(seconds),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-b:v",
                bitrate,
                "-maxrate",
                bitrate,
                "-bufsize",
                bitrate,
                "-g",
                str(gop),
                "-keyint_min",
                str(gop),
                "-sc_threshold",
                "0",
                "-pix_fmt",
                "yuv420p",
                str(partial),
            ],
            check=True,
        )
        partial.rename(clip)
    return clip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    """User + system CPU of a process, in clock ticks (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    return cpu_ticks(pid) / TICKS


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start_ready(cmd: list[str], log: Path) -> subprocess.Popen[str]:
    """Start a test server that prints ``READY <port>`` once listening."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("a"), text=True)
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("READY"):
        raise RuntimeError(f"{cmd[1]} did not start: {log.read_text()[-1500:]}")
    return proc


def start_cameras(n: int, clip: Path, work: Path) -> tuple[subprocess.Popen[str], int, Path]:
    """N cameras replaying ``clip`` (each client gets its own pipeline), logging when each
    keyframe leaves (see :func:`clip_frames` for the other pictures)."""
    port = free_port()
    departures = work / "departures.log"
    cmd = [
        SYSTEM_PYTHON,
        str(ROOT / "tests/support/rtsp_camera.py"),
        "--port",
        str(port),
        "--keyframe-departures",
        str(departures),
    ]
    for i in range(n):
        cmd += ["--mount", f"/cam{i}:clip={clip}:shared=0"]
    return start_ready(cmd, work / "cameras.log"), port, departures


def start_centre(
    n: int, work: Path, kind: str = "light"
) -> tuple[subprocess.Popen[str], int, Path]:
    """The centre's RTSP ingest for N cameras, logging arrivals: ``light`` is bench/centre.py,
    ``gstreamer`` the GStreamer RTSP server the tests use (costlier: see bench/centre.py)."""
    port = free_port()
    arrivals = work / "arrivals.log"
    if kind == "light":
        cmd = [sys.executable, str(ROOT / "bench/centre.py"), "--port", str(port)]
        cmd += ["--arrivals", str(arrivals)]
        return start_ready(cmd, work / "centre.log"), port, arrivals
    cmd = [
        SYSTEM_PYTHON,
        str(ROOT / "tests/support/rtsp_receiver.py"),
        "--port",
        str(port),
        "--out",
        str(work / "centre"),
        "--arrivals",
        str(arrivals),
        "--discard",
    ]
    for i in range(n):
        cmd += ["--path", f"/bench/cam{i}"]
    return start_ready(cmd, work / "centre.log"), port, arrivals


@dataclass(frozen=True, slots=True)
class ClipFrame:
    seconds: float
    """Presentation time in the clip."""
    digest: str
    keyframe: bool


def clip_frames(clip: Path) -> list[ClipFrame]:
    """Every picture of a clip in sending order, with its identity (tests/support/digest.py)."""
    frames = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                frames.append(
                    ClipFrame(
                        float(packet.pts * stream.time_base),
                        avcc_digest(bytes(packet)),
                        packet.is_keyframe,
                    )
                )
    return frames


def expand_departures(
    keyframes: list[tuple[int, str, str]], frames: list[ClipFrame]
) -> list[tuple[int, str, str]]:
    """Departure of every picture from the departure of each keyframe: the camera replays the
    clip in real time, so a picture leaves its GOP's keyframe's time plus its own offset."""
    index = {f.digest: i for i, f in enumerate(frames) if f.keyframe}
    out = []
    for ns, mount, digest in keyframes:
        first = index.get(digest)
        if first is None:
            continue
        start = frames[first].seconds
        for frame in frames[first:]:
            if frame.keyframe and frame is not frames[first]:
                break
            out.append((ns + round((frame.seconds - start) * 1e9), mount, frame.digest))
    return out
