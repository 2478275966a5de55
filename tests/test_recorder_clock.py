"""A system clock step (NTP correcting a box that booted with a wrong clock) cuts the segment,
so file names and the index tell the corrected time."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from direct_recorder import SMALL_CAMERA, DirectRecorder

from gateway.storage.naming import parse_segment_path


def test_clock_step_starts_a_new_segment_named_with_the_corrected_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rig = DirectRecorder(tmp_path / "rec", "hall", SMALL_CAMERA, segment_duration=60)
    real_time = time.time
    offset = 0.0
    # The wall clock as gateway.clock reads it (time.time); the monotonic clock is left alone.
    monkeypatch.setattr(time, "time", lambda: real_time() + offset)

    rig.record(1.5)
    before_step = real_time()
    offset = 3600.0  # NTP steps the clock forward by an hour
    with caplog.at_level(logging.WARNING):
        rig.record(1.5)
    rig.close()

    segments = sorted((tmp_path / "rec" / "hall").rglob("*.mp4"))
    assert len(segments) == 2, segments
    starts = [parse_segment_path(p).start for p in segments]  # type: ignore[union-attr]
    # The first segment is named with the time before the step (it began within the first
    # 1.5 s, later on a loaded machine), the second with the corrected time.
    assert before_step - 2.0 <= starts[0] <= before_step
    assert abs(starts[1] - (before_step + 3600)) < 1.5
    assert "system clock stepped by +3600.0 s" in caplog.text
    assert rig.status.segments == 2
