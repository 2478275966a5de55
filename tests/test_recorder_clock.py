"""A system clock step (NTP correcting a box that booted with a wrong clock) cuts the segment,
so file names and the index tell the corrected time."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from gateway import clock
from gateway.media.normalize import Normalizer
from gateway.media.packet import SessionInfo
from gateway.recorder.recorder import Recorder
from gateway.source.sim import SimSource
from gateway.state import RecorderStatus
from gateway.storage.naming import parse_segment_path
from gateway.storage.retention import RetentionPolicy
from gateway.storage.store import Storage


def test_clock_step_starts_a_new_segment_named_with_the_corrected_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Storage(tmp_path / "rec", RetentionPolicy(quota=10**9, max_age=86400, min_free=0))
    storage.open()
    status = RecorderStatus()
    recorder = Recorder("hall", storage, segment_duration=60, status=status)
    source = SimSource("sim://hall?fps=25&gop=1&width=320&height=240", camera_id="hall")
    tracks = source.open()
    normalizer = Normalizer(tracks, camera_id="hall")
    recorder.on_session_start(SessionInfo("hall", 1, tracks))

    real_time = time.time
    offset = 0.0
    monkeypatch.setattr(clock.time, "time", lambda: real_time() + offset)

    def record(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for packet in filter(None, [normalizer.push(source.read())]):
                recorder.on_packet(packet)

    record(1.5)
    before_step = real_time()
    offset = 3600.0  # NTP steps the clock forward by an hour
    with caplog.at_level(logging.WARNING):
        record(1.5)
    recorder.on_session_end("test over")
    source.close()
    storage.close()

    segments = sorted((tmp_path / "rec" / "hall").rglob("*.mp4"))
    assert len(segments) == 2, segments
    starts = [parse_segment_path(p).start for p in segments]  # type: ignore[union-attr]
    assert abs(starts[0] - (before_step - 1.5)) < 0.5
    assert abs(starts[1] - (before_step + 3600)) < 1.5
    assert "system clock stepped by +3600.0 s" in caplog.text
    assert status.segments == 2
