"""A camera that gives several distinct pictures one RTP timestamp is recorded picture by
picture: each picture its own MP4 sample, a frame interval after the one before, every NAL unit
kept byte for byte and in order (a signing camera's signature covers them all), and FFmpeg's
decoder takes the file without a complaint.

The camera is ``tests/support/shared_timestamp_camera.py``: x264 pictures (a clip made by
Debian's ffmpeg) over the hostile camera's RTSP server, a run of them stamped alike. It is
pulled by the daemon's own RTSP source, repaired by its normaliser and written by its recorder,
as a camera worker does, and the file is checked with ffmpeg and ffprobe.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest
from helpers import ROOT, decode_errors, video_frames
from hostile import HostileCamera, hostile_clip

from gateway.media.normalize import Normalizer
from gateway.media.packet import SessionInfo
from gateway.recorder.recorder import Recorder
from gateway.source.errors import SourceError
from gateway.source.rtsp import RtspSource
from gateway.storage.retention import RetentionPolicy
from gateway.storage.store import Storage
from gateway.telemetry.state import RecorderStatus

sys.path.insert(0, str(ROOT / "tests" / "support"))
from digest import avcc_nals
from hostile_camera import Clip

pytestmark = pytest.mark.camera

SHARED_SCRIPT = ROOT / "tests" / "support" / "shared_timestamp_camera.py"


class SharedTimestampCamera(HostileCamera):
    """The camera process: pictures ``first`` to ``first + shared - 1`` of the clip share one
    RTP timestamp; the clip is sent once, then the camera ends the session."""

    def __init__(self, log_dir: Path, *, first: int, shared: int) -> None:
        super().__init__("shared-timestamp", log_dir, clip=hostile_clip())
        self.first = first
        self.shared = shared

    def command(self) -> list[str]:
        return [
            *(self.python, str(SHARED_SCRIPT), "--port", str(self.port), "--path", self.path),
            *("--clip", str(self.clip), "--first", str(self.first), "--shared", str(self.shared)),
        ]


@pytest.fixture
def shared_camera(tmp_path: Path) -> Iterator[Callable[..., SharedTimestampCamera]]:
    started: list[SharedTimestampCamera] = []

    def start(*, first: int, shared: int) -> SharedTimestampCamera:
        camera = SharedTimestampCamera(tmp_path, first=first, shared=shared)
        started.append(camera)
        camera.start()
        return camera

    yield start
    for camera in started:
        camera.stop()


def record_until_the_camera_ends(url: str, root: Path) -> list[Path]:
    """The daemon's packet path for one camera session, on this thread: RTSP source,
    normaliser, recorder and storage; the finished segments."""
    storage = Storage(root, RetentionPolicy(quota=10**9, max_age=86400, min_free=0))
    storage.open()
    source = RtspSource(url, camera_id="cam", audio=False)
    try:
        tracks = source.open()
        normalizer = Normalizer(tracks, camera_id="cam")
        recorder = Recorder("cam", storage, segment_duration=60, status=RecorderStatus())
        recorder.on_session_start(SessionInfo("cam", 1, tracks))
        while True:
            try:
                raw = source.read()
            except SourceError as exc:
                assert exc.reason == "the camera ended the stream", exc.reason
                break
            packet = normalizer.push(raw)
            if packet is not None:
                recorder.on_packet(packet)
        recorder.on_session_end("the camera ended the stream")
    finally:
        source.close()
        storage.close()
    return sorted((root / "cam").rglob("*.mp4"))


def samples(path: Path) -> list[list[bytes]]:
    """The NAL units of each video sample of an MP4 file, in file order."""
    with av.open(str(path)) as container:
        return [avcc_nals(bytes(p)) for p in container.demux(video=0) if p.size]


def sample_times(path: Path) -> list[tuple[int, int, int]]:
    """(dts, pts, duration) of each video sample, in the track's time base, read by ffprobe."""
    result = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json"),
            *("-show_entries", "packet=pts,dts,duration", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    packets = json.loads(result.stdout)["packets"]
    return [(int(p["dts"]), int(p["pts"]), int(p["duration"])) for p in packets]


@pytest.mark.parametrize(
    ("first", "shared"),
    [
        pytest.param(1, 6, id="six-P-pictures-after-the-keyframe"),
        pytest.param(0, 7, id="the-keyframe-and-six-P-pictures"),
    ],
)
def test_pictures_sharing_one_rtp_timestamp_are_recorded_as_separate_pictures(
    shared_camera: Callable[..., SharedTimestampCamera], tmp_path: Path, first: int, shared: int
) -> None:
    camera = shared_camera(first=first, shared=shared)
    clip = Clip.load(str(camera.clip))

    segments = record_until_the_camera_ends(camera.url(), tmp_path / "rec")

    assert f"sent {len(clip.units)} pictures" in camera.log
    assert len(segments) == 1, segments
    segment = segments[0]
    assert decode_errors(segment) == ""
    assert video_frames(segment) == len(clip.units), "one decoded frame per picture sent"
    # Every NAL unit as the encoder made it, in order, one picture per sample.
    assert samples(segment) == [unit.nals for unit in clip.units]
    times = sample_times(segment)
    dts = [t[0] for t in times]
    pts = [t[1] for t in times]
    assert all(b > a for a, b in itertools.pairwise(dts)), dts[: first + shared + 2]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts[: first + shared + 2]
    assert all(t[2] > 0 for t in times), times[: first + shared + 2]
    # Each picture the camera stamped alike gets a frame interval of its own: the camera's
    # clock went on at 25 fps past them, so the whole recording is on its 25 fps grid. (FFmpeg
    # gives the very first picture no timestamp: it is put one frame before the next, so a
    # first picture that shared the next one's timestamp leaves one frame interval of gap.)
    frame = 3600
    steps = [b - a for a, b in itertools.pairwise(dts)]
    assert all(step > 0 and step % frame == 0 for step in steps), steps
    assert dts[-1] - dts[0] in ((len(clip.units) - 1) * frame, len(clip.units) * frame)
    assert [t[2] for t in times][first : first + shared] == [frame] * shared
