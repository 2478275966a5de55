"""Has the camera been turned? The scene's displacement against a reference, measured.

Features (ORB: corners with a binary descriptor, unaffected by a uniform change of lighting) are
found on the reference picture once and on each new one; matched descriptors give point pairs,
and a similarity transform (shift, rotation, scale) is fitted to them with RANSAC
(``cv2.estimateAffinePartial2D``), so that the few points on a person walking by, or matched by
mistake, are outliers and change nothing. Pictures are equalised first: the colour → infrared
switch and the day's lighting change the grey levels, not where the corners are.

The result is a :class:`Displacement`: how far the scene moved in the picture (pixels of the
camera's picture and percent of its width) and by how much it turned, or ``None`` when too few
points agree for the scene to be recognised at all (turned right away, or a different scene).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["Displacement", "Features", "compose", "displacement", "features", "match"]

FEATURES: Final = 250
"""ORB features kept per picture: enough for a robust fit, cheap at 320 pixels wide."""

MIN_INLIERS: Final = 14
"""Point pairs that must agree on one transform for the scene to count as recognised."""

MIN_INLIER_SHARE: Final = 0.2
"""Share of the matches that must be inliers (below it the fit is chance)."""

RANSAC_PIXELS: Final = 3.0
"""Reprojection error, in analysed pixels, under which a pair is an inlier."""

Affine = NDArray[np.float64]
"""A 2 × 3 affine matrix mapping reference points to current points."""

_ORB = cv2.ORB.create(
    nfeatures=FEATURES, scaleFactor=1.2, nlevels=4, edgeThreshold=15, patchSize=15
)
_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)


@dataclass(frozen=True, slots=True)
class Features:
    """The corners of one picture and their descriptors."""

    points: NDArray[np.float32]
    """``N × 2`` positions in the analysed picture."""
    descriptors: NDArray[np.uint8] | None
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True, slots=True)
class Displacement:
    """How the scene moved from the reference to the current picture."""

    dx: float
    """Shift of the picture's centre, in pixels of the camera's picture (to the right > 0)."""
    dy: float
    """Shift of the picture's centre, in pixels of the camera's picture (downwards > 0)."""
    rotation: float
    """Rotation of the scene in the picture, in degrees (counter-clockwise > 0)."""
    scale: float
    """Zoom of the scene (1: unchanged)."""
    width: int
    """Width of the camera's picture, in pixels (what ``percent`` is of)."""
    inliers: int
    matches: int

    @property
    def pixels(self) -> float:
        """Length of the centre's shift, in pixels of the camera's picture."""
        return math.hypot(self.dx, self.dy)

    @property
    def percent(self) -> float:
        """Length of the centre's shift, in percent of the picture's width."""
        return 100.0 * self.pixels / self.width if self.width else 0.0


def features(grey: NDArray[np.uint8]) -> Features:
    """ORB features of a grey analysed picture (equalised first)."""
    flat = cv2.equalizeHist(grey)
    keypoints, descriptors = _ORB.detectAndCompute(flat, None)
    points = np.array([kp.pt for kp in keypoints], np.float32).reshape(-1, 2)
    kept = None if descriptors is None else np.asarray(descriptors, np.uint8)
    return Features(points, kept, int(grey.shape[1]), int(grey.shape[0]))


def compose(second: Affine, first: Affine) -> Affine:
    """The transform applying ``first`` then ``second``."""
    a = np.vstack([first, [0.0, 0.0, 1.0]])
    b = np.vstack([second, [0.0, 0.0, 1.0]])
    out: Affine = (b @ a)[:2]
    return out


def match(reference: Features, current: Features) -> tuple[Affine, int, int] | None:
    """The similarity transform from ``reference`` to ``current`` with its inlier and match
    counts, or ``None`` when the scene is not recognised."""
    if reference.descriptors is None or current.descriptors is None:
        return None
    if len(reference) < MIN_INLIERS or len(current) < MIN_INLIERS:
        return None
    pairs = _MATCHER.match(reference.descriptors, current.descriptors)
    if len(pairs) < MIN_INLIERS:
        return None
    src = reference.points[[p.queryIdx for p in pairs]]
    dst = current.points[[p.trainIdx for p in pairs]]
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS, maxIters=500
    )
    if matrix is None or inliers is None:
        return None
    count = int(inliers.sum())
    if count < MIN_INLIERS or count < MIN_INLIER_SHARE * len(pairs):
        return None
    return np.asarray(matrix, np.float64), count, len(pairs)


def displacement(
    matrix: Affine, *, width: int, height: int, source_width: int, inliers: int, matches: int
) -> Displacement:
    """The :class:`Displacement` a reference → current transform on a ``width × height``
    analysed picture stands for, in pixels of a ``source_width`` wide camera picture."""
    centre = np.array([width / 2.0, height / 2.0])
    moved = matrix[:, :2] @ centre + matrix[:, 2]
    ratio = source_width / width
    a, b = float(matrix[0, 0]), float(matrix[0, 1])
    return Displacement(
        dx=float(moved[0] - centre[0]) * ratio,
        dy=float(moved[1] - centre[1]) * ratio,
        rotation=math.degrees(math.atan2(b, a)),
        scale=math.hypot(a, b),
        width=source_width,
        inliers=inliers,
        matches=matches,
    )
