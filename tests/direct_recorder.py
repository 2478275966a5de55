"""A recorder fed by a simulated camera on the test's own thread: no daemon, no fan-out."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.media.normalize import Normalizer
from gateway.media.packet import SessionInfo
from gateway.recorder.recorder import Recorder
from gateway.source.sim import SimSource
from gateway.storage.retention import RetentionPolicy
from gateway.storage.store import Storage
from gateway.telemetry.state import RecorderStatus

SMALL_CAMERA = "sim://hall?fps=25&gop=1&width=320&height=240"
"""A cheap simulated camera with a keyframe every second."""


class DirectRecorder:
    """Records ``url`` under ``root`` (no quota, age or free-space limit to speak of)."""

    def __init__(self, root: Path, camera: str, url: str, *, segment_duration: float) -> None:
        self.storage = Storage(root, RetentionPolicy(quota=10**9, max_age=86400, min_free=0))
        self.storage.open()
        self.status = RecorderStatus()
        self.recorder = Recorder(
            camera, self.storage, segment_duration=segment_duration, status=self.status
        )
        self._source = SimSource(url, camera_id=camera)
        tracks = self._source.open()
        self._normalizer = Normalizer(tracks, camera_id=camera)
        self.recorder.on_session_start(SessionInfo(camera, 1, tracks))

    def record(self, seconds: float) -> list[tuple[bool, str | None]]:
        """Feed the camera's packets, paced in real time; (recording, error) after each one."""
        seen = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            packet = self._normalizer.push(self._source.read())
            if packet is not None:
                self.recorder.on_packet(packet)
                seen.append((self.status.recording, self.status.error))
        return seen

    def close(self) -> None:
        self.recorder.on_session_end("test over")
        self._source.close()
        self.storage.close()
