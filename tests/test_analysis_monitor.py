"""The per-camera state machine: learning, then conditions raised after ``min_duration`` and
cleared when the picture is back, without flapping, with time passed in by the caller.

Pictures go straight to the analyser here (no encoding): the codec's part is in
``test_analysis_quality.py``. Keyframes come every 2 s, as the default ``interval``.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from analysis_scenes import (
    Image,
    Scene,
    corridor_scene,
    defocus,
    mask,
    partial_cover,
    uniform,
)

from gateway.analysis import CameraMonitor, Frame, Settings, Status, frame_from_array
from gateway.analysis.debounce import Debounce

STEP = 2.0


@pytest.fixture(scope="module")
def scene() -> Scene:
    return corridor_scene(7)


def frame(picture: Image) -> Frame:
    return frame_from_array(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def clock(start: float = 0.0) -> Iterator[float]:
    t = start
    while True:
        yield t
        t += STEP


def learned(scene: Scene, settings: Settings | None = None) -> tuple[CameraMonitor, float]:
    """A monitor that has learned the scene's view, and the time of its last keyframe."""
    monitor = CameraMonitor(settings or Settings(zones=scene.zones))
    healthy = frame(mask(scene.view(), scene.zones))
    at = 0.0
    for at in (0.0, 2.0, 4.0, 6.0, 8.0):
        status = monitor.observe(healthy, at)
    assert status.state == "ok"
    return monitor, at


def run(monitor: CameraMonitor, picture: Frame, start: float, count: int) -> list[Status]:
    return [monitor.observe(picture, start + STEP * (k + 1)) for k in range(count)]


def test_learning_lasts_the_first_healthy_keyframes(scene: Scene) -> None:
    monitor = CameraMonitor(Settings(zones=scene.zones, learning_frames=5))
    healthy = frame(mask(scene.view(), scene.zones))
    states = [monitor.observe(healthy, t) for t in (0.0, 2.0, 4.0, 6.0, 8.0)]
    assert [s.state for s in states] == ["learning"] * 4 + ["ok"]
    assert [s.learned for s in states] == [1, 2, 3, 4, 5]
    assert monitor.reference is not None


def test_a_covered_camera_is_not_learned_from_and_is_reported_covered(scene: Scene) -> None:
    monitor = CameraMonitor(Settings())
    black = frame(uniform((576, 704, 3), np.random.default_rng(1), 5))
    statuses = [monitor.observe(black, 2.0 * k) for k in range(7)]
    assert statuses[-1].state == "covered"
    assert statuses[-1].learned == 0
    assert monitor.reference is None


def test_covered_is_raised_after_min_duration_and_cleared_when_the_picture_is_back(
    scene: Scene,
) -> None:
    monitor, at = learned(scene)
    cloth = frame(uniform((576, 704, 3), np.random.default_rng(2), 90))
    statuses = run(monitor, cloth, at, 7)  # first covered keyframe at at + 2
    raised = [s.judgement.covered for s in statuses]
    assert all(raised)
    states = [s.state for s in statuses]
    assert states[:5] == ["ok"] * 5, "raised before min_duration"
    assert states[5] == "covered"  # 10 s after the first covered keyframe
    assert statuses[5].since == at + 12.0
    assert statuses[5].changes[0].condition == "covered"
    assert statuses[5].changes[0].active
    back = run(monitor, frame(mask(scene.view(), scene.zones)), at + 14.0, 7)
    assert [s.state for s in back] == ["covered"] * 5 + ["ok", "ok"]
    assert not back[5].changes[0].active


def test_a_picture_flickering_about_a_threshold_never_flaps(scene: Scene) -> None:
    monitor, at = learned(scene)
    healthy = frame(mask(scene.view(), scene.zones))
    cloth = frame(uniform((576, 704, 3), np.random.default_rng(3), 90))
    states = {
        monitor.observe(cloth if k % 2 else healthy, at + STEP * (k + 1)).state for k in range(30)
    }
    assert states == {"ok"}


def test_hysteresis_keeps_a_raised_condition_while_the_value_wanders_near_the_threshold() -> None:
    """Raised at > 5, cleared under 3.5: values between never change the state."""
    d = Debounce(min_duration=10.0, max_gap=6.0)
    changes = []
    values = [6.0] * 6 + [4.9, 5.2, 4.1, 5.3, 3.9, 4.8] * 5 + [3.0] * 6
    for k, v in enumerate(values):
        if d.update(raising=v > 5.0, clearing=v < 3.5, at=2.0 * k):
            changes.append((k, d.active))
    assert changes == [(5, True), (len(values) - 1, False)]


def test_a_gap_in_keyframes_restarts_the_wait() -> None:
    d = Debounce(min_duration=10.0, max_gap=6.0)
    for t in (0.0, 2.0, 4.0, 6.0):
        assert not d.update(raising=True, clearing=False, at=t)
    for t in (20.0, 22.0, 24.0, 26.0, 28.0):  # 14 s unseen: the wait starts again at 20
        assert not d.update(raising=True, clearing=False, at=t)
    assert d.update(raising=True, clearing=False, at=30.0)


def test_a_turned_camera_is_moved_with_its_displacement_and_clears_when_turned_back(
    scene: Scene,
) -> None:
    monitor, at = learned(scene)
    turned = frame(mask(scene.view(dx=0.1 * scene.width), scene.zones))
    statuses = run(monitor, turned, at, 6)
    assert statuses[-1].state == "moved"
    d = statuses[-1].judgement.displacement
    assert d is not None
    assert d.percent == pytest.approx(10.0, abs=2.0)
    assert d.dx == pytest.approx(0.1 * scene.width, abs=0.02 * scene.width)
    back = run(monitor, frame(mask(scene.view(), scene.zones)), at + 12.0, 6)
    assert back[-1].state == "ok"


def test_a_defocused_camera_is_defocused_not_moved(scene: Scene) -> None:
    monitor, at = learned(scene)
    blurred = frame(mask(defocus(scene.view(), 8), scene.zones))
    statuses = run(monitor, blurred, at, 6)
    assert statuses[-1].state == "defocused"
    assert statuses[-1].conditions == {"defocused"}


def test_covered_hides_a_move_under_way(scene: Scene) -> None:
    monitor, at = learned(scene)
    turned = frame(mask(scene.view(dx=0.15 * scene.width), scene.zones))
    cloth = frame(uniform((576, 704, 3), np.random.default_rng(4), 60))
    run(monitor, turned, at, 4)  # moved pending, not raised yet
    statuses = run(monitor, cloth, at + 8.0, 6)
    assert statuses[-1].state == "covered"
    assert statuses[-1].conditions == {"covered"}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_an_80_percent_cover_with_the_masks_drawn_over_it_is_covered(seed: int) -> None:
    """A camera draws its privacy masks over whatever is in front of the lens: their flat fill
    and sharp outline on the cover are no detail of the scene, and do not hide the cover."""
    scene = corridor_scene(seed)
    assert scene.zones
    for side in range(4):
        monitor, at = learned(scene)
        rng = np.random.default_rng(seed * 10 + side)
        covered = frame(mask(partial_cover(scene.view(), rng, 0.8, side), scene.zones))
        statuses = run(monitor, covered, at, 6)
        assert statuses[-1].conditions == {"covered"}, (side, statuses[-1].judgement.measures)


def test_a_lost_privacy_mask_is_reported_beside_the_state_and_cleared_when_masked_again(
    scene: Scene,
) -> None:
    assert scene.zones
    monitor, at = learned(scene)
    unmasked = frame(scene.view())
    statuses = run(monitor, unmasked, at, 6)
    assert statuses[-1].state == "ok"
    assert statuses[-1].privacy_mask_missing
    assert set(statuses[-1].unmasked) <= {z.name for z in scene.zones}
    assert statuses[-1].unmasked
    back = run(monitor, frame(mask(scene.view(), scene.zones)), at + 12.0, 6)
    assert not back[-1].privacy_mask_missing


def test_relearn_accepts_a_new_aim(scene: Scene) -> None:
    monitor, at = learned(scene)
    turned = frame(mask(scene.view(dx=0.12 * scene.width), scene.zones))
    assert run(monitor, turned, at, 6)[-1].state == "moved"
    monitor.relearn()
    statuses = run(monitor, turned, at + 12.0, 6)
    assert [s.state for s in statuses[:4]] == ["learning"] * 4
    assert statuses[-1].state == "ok"


def test_a_slow_creep_across_refreshes_is_still_measured_from_the_first_view(
    scene: Scene,
) -> None:
    """The reference is refreshed while the camera is still, but moves are measured from the
    view first learned: 0.8 % at a time adds up to a move."""
    settings = Settings(zones=scene.zones, refresh_every=4.0)
    monitor, at = learned(scene, settings)
    status = None
    for step in range(1, 12):
        picture = frame(mask(scene.view(dx=0.008 * step * scene.width), scene.zones))
        for _ in range(3):
            at += STEP
            status = monitor.observe(picture, at)
        assert monitor.reference is not None
    assert status is not None
    d = status.judgement.displacement
    assert d is not None
    assert d.percent == pytest.approx(8.8, abs=1.5)
    assert "moved" in status.conditions or status.state == "moved"
