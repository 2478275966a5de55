"""One keyframe judged on its own against the camera's learned reference: the raw tests.

Each condition has a raising and a clearing threshold (hysteresis); the state machine in
:mod:`gateway.analysis.monitor` only raises or clears it once a test has held for a while.

Thresholds were set on the labelled set of ``tests/analysis_set.py`` (photographs and
corridors, encoded as H.264; figures in ``bench/results/analysis_quality.md``). In short: a
healthy picture keeps more than 0.7 of its tiles structured, except a scene that holds little
detail to begin with (a rocket under a night sky: 0.34 by day, 0.23 at night), which is why the
cover threshold also scales with the camera's own structure and why a cover is also told by
the learned view's detailed tiles gone flat; an 80 % cover leaves 0.15–0.34 and a uniform,
black or sprayed one under 0.12. A healthy picture keeps over 0.75 of its learned sharpness
(heavy compression included); a 4-pixel defocus at 704 pixels wide leaves under 0.58 of it.

The tiles a privacy zone or the halo of its outline touches are left out of the structure and
of the learned view's detail: a camera draws its masks over whatever is before the lens, so
their flat fill and sharp outline tell nothing of a cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gateway.analysis.frame import Frame
from gateway.analysis.measures import DEAD, GRID, Measures, measure
from gateway.analysis.motion import (
    Affine,
    Displacement,
    Features,
    compose,
    displacement,
    features,
    match,
)
from gateway.analysis.privacy import Zone, ZoneCheck, check_zones, zone_tiles

__all__ = ["Judgement", "Reference", "Settings", "judge", "turned", "verdict"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Thresholds and durations of the integrity checks (defaults set on the labelled set)."""

    min_duration: float = 10.0
    """Seconds a condition must hold (on every keyframe) before it is raised or cleared."""
    interval: float = 2.0
    """Seconds between analysed keyframes, as the caller arranges them."""
    learning_frames: int = 5
    """Healthy keyframes the reference and the sharpness baseline are learned from."""
    cover_structure: float = 0.36
    """Covered when at most this share of the tiles holds detail: an 80 % cover leaves 20 % of
    the picture plus the row or column of tiles along its edge, up to 1/3 of a 16 × 12 grid."""
    cover_unlearned: float = 0.2
    """... before the camera's view is learned: lower, as some healthy views hold little detail
    (a night sky); a uniform, black or sprayed cover leaves under 0.12."""
    cover_relative: float = 0.45
    """... and at most this share of the camera's own learned structure."""
    cover_clear: float = 0.1
    """Cleared when the structure is back this far above the raising threshold."""
    cover_lost: float = 0.6
    """Also covered when, with at most ``cover_structure`` left, this share of the tiles that
    held detail in the learned view is flat: a cover hiding just the part of a scene that held
    its detail (a night sky above a rocket keeps most of its detailed tiles)."""
    defocus_ratio: float = 0.6
    """Defocused when sharpness falls under this share of the learned baseline."""
    defocus_clear: float = 0.72
    """Cleared when sharpness is back over this share."""
    move_percent: float = 5.0
    """Moved when the scene's centre shifted by more than this percent of the picture's width."""
    move_degrees: float = 5.0
    """... or turned by more than this many degrees."""
    move_clear: float = 0.7
    """Cleared when both are back under this share of their raising thresholds."""
    mask_detail: float = 4.0
    """A privacy zone is masked while its interior varies by at most this many grey levels."""
    mask_clear: float = 3.0
    """... and masked again once it is back under this."""
    refresh_every: float = 600.0
    """Seconds between refreshes of the reference while the camera is healthy and still."""
    baseline_weight: float = 0.02
    """Weight of each healthy keyframe in the sharpness baseline's running mean."""
    zones: tuple[Zone, ...] = field(default=())
    """Privacy zones the camera must mask."""

    @property
    def max_gap(self) -> float:
        """Seconds without a keyframe after which a pending change is forgotten."""
        return max(3.0 * self.interval, self.interval + 1.0)


@dataclass(slots=True)
class Reference:
    """What the camera looked like when it was healthy."""

    features: Features
    sharpness: float
    structure: float
    live: NDArray[np.bool_]
    """Tiles holding detail in the learned view (``rows × columns``)."""
    offset: Affine
    """Transform from the first learned view to this reference's view (a refreshed reference
    keeps measuring moves against the view first learned, so slow creep adds up)."""
    taken_at: float


@dataclass(frozen=True, slots=True)
class Judgement:
    """The raw tests of one keyframe (before any duration or hysteresis)."""

    measures: Measures
    covered: bool
    uncovered: bool
    """Structure back above the clearing threshold."""
    lost: float | None
    """Share of the learned view's detailed tiles that are flat now (``None`` while learning)."""
    sharpness_ratio: float | None
    displacement: Displacement | None
    recognised: bool
    """The scene matched the reference (``displacement`` is then set)."""
    zones: tuple[ZoneCheck, ...]
    features: Features | None = None
    transform: Affine | None = None
    """Transform from the first learned view to this picture (when recognised)."""

    @property
    def flat(self) -> bool:
        """So little structure that sharpness, aim and masks cannot be judged."""
        return self.covered


def cover_threshold(settings: Settings, reference: Reference | None) -> float:
    """The structure under which a picture is covered, for this camera."""
    if reference is None:
        return settings.cover_unlearned
    return min(settings.cover_structure, settings.cover_relative * reference.structure)


def lost_share(m: Measures, reference: Reference | None) -> float | None:
    """Share of the reference's detailed tiles that are flat in the picture measured."""
    if reference is None or m.tiles is None or m.tiles.shape != reference.live.shape:
        return None
    live = int(reference.live.sum())
    if live == 0:
        return None
    return float((reference.live & (m.tiles < DEAD)).sum()) / live


def turned(moved: Displacement, settings: Settings) -> bool:
    """A displacement over the move thresholds."""
    return moved.percent > settings.move_percent or abs(moved.rotation) > settings.move_degrees


def judge(frame: Frame, reference: Reference | None, settings: Settings) -> Judgement:
    """The raw tests of ``frame`` against ``reference`` (``None`` while learning: only the
    cover and the masks are judged).

    A picture is covered when its structure is under the camera's threshold, or when little
    is left and most of the tiles that held the learned view's detail are flat, unless the
    scene is recognised, turned away: then those tiles went out of view (a scene whose detail
    sits in one corner, turned by 20 %), and the camera is moved, not covered.
    """
    ignore = zone_tiles(settings.zones, frame.width, frame.height, GRID)
    m = measure(frame.grey, ignore=ignore)
    threshold = cover_threshold(settings, reference)
    lost = lost_share(m, reference)
    hidden = (
        lost is not None and m.structure <= settings.cover_structure and lost >= settings.cover_lost
    )
    zones = tuple(check_zones(frame.grey, settings.zones, flat=settings.mask_detail))
    if m.structure <= threshold:
        return Judgement(m, True, False, lost, None, None, False, zones)
    found = features(frame.grey)
    ratio = None
    moved: Displacement | None = None
    total: Affine | None = None
    if reference is not None:
        ratio = m.sharpness / reference.sharpness if reference.sharpness > 0 else None
        fit = match(reference.features, found)
        if fit is not None:
            matrix, inliers, matches = fit
            total = compose(matrix, reference.offset)
            moved = displacement(
                total,
                width=frame.width,
                height=frame.height,
                source_width=frame.source_width,
                inliers=inliers,
                matches=matches,
            )
    away = moved is not None and turned(moved, settings)
    if hidden and not away:
        return Judgement(m, True, False, lost, None, None, False, zones)
    uncovered = m.structure > threshold + settings.cover_clear and (
        lost is None or lost < settings.cover_lost - 0.15 or away
    )
    recognised = moved is not None
    return Judgement(m, False, uncovered, lost, ratio, moved, recognised, zones, found, total)


def verdict(j: Judgement, settings: Settings) -> frozenset[str]:
    """The conditions one keyframe shows on its own, by the raising thresholds and the
    precedence of :mod:`gateway.analysis.monitor` (``privacy`` for an unmasked zone)."""
    if j.covered:
        return frozenset({"covered"})
    found: set[str] = set()
    if any(z.detail > settings.mask_detail for z in j.zones):
        found.add("privacy")
    if j.sharpness_ratio is None:
        return frozenset(found)
    blurred = j.sharpness_ratio < settings.defocus_ratio
    if blurred:
        found.add("defocused")
    moved = j.displacement
    if moved is not None:
        if turned(moved, settings):
            found.add("moved")
    elif not blurred:
        found.add("moved")
    return frozenset(found)
