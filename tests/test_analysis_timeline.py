"""The core of ``bench/analysis_timeline.py`` on a short run: a 2-minute clean run of one
corridor (its timeline scaled down, infrared included) raises nothing, and a cover is raised
and cleared within ``min_duration`` + 2 intervals through the state machine, on real H.264."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from analysis_scenes import Scene

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from analysis_timeline import TAMPERS, clean_run, delay_trial, learned_camera, parse_scene

from gateway.analysis import Settings


@pytest.fixture(scope="module")
def scene() -> Scene:
    return parse_scene("corridor0")


def test_a_two_minute_clean_run_raises_nothing(scene: Scene) -> None:
    run = clean_run(scene, 120.0, seed=1)
    assert run["keyframes"] == 60
    assert run["learned_at"] is not None
    assert run["states"][0]["state"] == "ok"
    assert {"day", "dusk", "infrared", "dawn", "lights down"} <= set(run["phases"])
    assert run["keyframes_with_people"] > 0
    assert run["false_alarms"] == []


def test_a_cover_is_raised_and_cleared_within_the_bound(scene: Scene) -> None:
    s = Settings()
    bound = s.min_duration + 2 * s.interval
    learned = learned_camera(scene, 60.0, seed=2)
    cover = next(t for t in TAMPERS if t.name == "covered: uniform")
    trial = delay_trial(learned, cover, 0.5, 0, seed=3)
    assert trial["raise_delay"] is not None
    assert s.min_duration <= trial["raise_delay"] <= bound
    assert trial["clear_delay"] is not None
    assert s.min_duration <= trial["clear_delay"] <= bound
    assert trial["others"] == []
    assert trial["within_bound"]
