"""The integrity tests find what they should on the labelled set, and nothing on healthy pictures.

The set (``analysis_set.py``): eight photographs and four corridors (one at 1280 × 720), each
encoded as H.264 keyframes and decoded back; the larger version and its figures are in
``bench/analysis_quality.py`` and ``bench/results/analysis_quality.md``.
"""

from __future__ import annotations

import numpy as np
import pytest
from analysis_scenes import scenes
from analysis_set import CLASSES, Outcome, build, evaluate


@pytest.fixture(scope="session")
def outcomes() -> list[Outcome]:
    rng = np.random.default_rng(12)
    found: list[Outcome] = []
    for scene in scenes(3, hd=1):
        found += evaluate(build(scene, rng))
    return found


@pytest.mark.parametrize("condition", CLASSES)
def test_each_condition_is_found_on_at_least_95_percent_of_its_pictures(
    outcomes: list[Outcome], condition: str
) -> None:
    positives = [o for o in outcomes if condition in o.sample.labels]
    assert len(positives) >= 4
    missed = [f"{o.sample.scene}/{o.sample.variant}" for o in positives if condition not in o.found]
    assert len(missed) <= 0.05 * len(positives), f"{condition} missed on {missed}"


def test_healthy_pictures_raise_nothing(outcomes: list[Outcome]) -> None:
    negatives = [o for o in outcomes if not o.sample.labels]
    variants = {o.sample.variant for o in negatives}
    assert {"people", "lighting+40", "lighting-40", "ramp", "noise", "infrared"} <= variants
    assert {"night", "compressed", "shift3%", "rot2"} <= variants
    alarms = [
        f"{o.sample.scene}/{o.sample.variant}: {sorted(o.found)}" for o in negatives if o.found
    ]
    assert alarms == []


def test_positives_raise_no_other_condition(outcomes: list[Outcome]) -> None:
    """A cover is reported as covered only, a defocus as defocused only, a move as moved only
    (the precedence of gateway.analysis.monitor on single pictures)."""
    wrong = [
        f"{o.sample.scene}/{o.sample.variant}: {sorted(o.found)}"
        for o in outcomes
        if o.sample.labels and not o.found <= o.sample.labels
    ]
    assert wrong == []


def test_displacement_is_measured_within_2_percent_of_the_width(outcomes: list[Outcome]) -> None:
    measured = [o for o in outcomes if o.sample.truth is not None]
    assert len(measured) >= 40
    for o in measured:
        assert o.displacement is not None, f"{o.sample.scene}/{o.sample.variant} not recognised"
        assert o.sample.truth is not None
        rotation, angle = o.displacement[2], o.sample.truth[2]
        error = o.error
        assert error is not None
        assert error < 2.0, f"{o.sample.scene}/{o.sample.variant}: off by {error:.2f} % of width"
        assert abs(rotation - angle) < 1.0, f"{o.sample.variant}: {rotation:.1f}° for {angle}°"
