"""Measures of one analysed grey picture: brightness, contrast, structure, sharpness.

All are computed on the small grey picture of :mod:`gateway.analysis.frame` (a few hundred
microseconds each at 320 pixels wide). Two of them are built to survive the changes a healthy
camera goes through:

- ``structure`` is the share of the picture's tiles that hold detail at the scale of objects
  (a band-pass between 1.5 and 6 pixels, so that neither sensor noise nor a slow lighting gradient
  counts). A cover, a lens cap, a hand or sprayed paint leaves little of it; a dark infrared
  scene keeps its edges and so its structure.
- ``sharpness`` is the variance of the Laplacian divided by the mean squared gradient: the
  Laplacian alone scales with the square of the contrast (a 40 % dimmer picture would read as
  2.8 times blurrier), the ratio does not, and it falls when the finest detail is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gateway.analysis.errors import FrameError
from gateway.analysis.frame import MIN_SIDE

__all__ = ["DEAD", "GRID", "LIVE", "Measures", "measure", "tile_detail"]

GRID: Final = (16, 12)
"""Tiles across and down the picture for ``structure`` (a 20 % strip is three columns)."""

LIVE: Final = 1.0
"""Band-pass standard deviation, in grey levels, above which a tile holds detail."""

DEAD: Final = 0.5
"""... and under which it is flat (a cover: the encoder leaves ~0.2 of sensor noise on it)."""


@dataclass(frozen=True, slots=True)
class Measures:
    """What one picture looks like, in numbers (see the module's documentation)."""

    brightness: float
    """Mean grey level over 255, in [0, 1]."""
    contrast: float
    """Standard deviation of the grey levels over 255."""
    laplacian: float
    """Variance of the Laplacian, in grey levels squared (the textbook focus measure)."""
    sharpness: float
    """Variance of the Laplacian over the mean squared gradient: independent of contrast."""
    structure: float
    """Share of tiles holding detail, in [0, 1]."""
    tiles: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)
    """Each tile's detail (:func:`tile_detail`), to compare with the reference's."""


def tile_detail(grey: NDArray[np.uint8], grid: tuple[int, int] = GRID) -> NDArray[np.float64]:
    """Band-pass standard deviation of each tile, ``rows × columns``, in grey levels."""
    pic = grey.astype(np.float32)
    band = cv2.GaussianBlur(pic, (0, 0), 1.5) - cv2.GaussianBlur(pic, (0, 0), 6.0)
    mean = cv2.resize(band, grid, interpolation=cv2.INTER_AREA)
    square = cv2.resize(band * band, grid, interpolation=cv2.INTER_AREA)
    return np.sqrt(np.maximum(square - mean * mean, 0.0)).astype(np.float64)


def measure(grey: NDArray[np.uint8], *, ignore: NDArray[np.bool_] | None = None) -> Measures:
    """The :class:`Measures` of a grey ``uint8`` picture.

    ``ignore`` (``rows × columns`` of :data:`GRID`) marks tiles left out of ``structure``: the
    privacy zones a camera masks. Their detail in ``tiles`` reads 0, so a learned view never
    counts them as detailed.
    """
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise FrameError(f"measures need a 2-D uint8 grey picture, not {grey.dtype} {grey.shape}")
    if min(grey.shape) < MIN_SIDE:
        raise FrameError(f"picture of {grey.shape[1]}x{grey.shape[0]} is too small to measure")
    mean, std = cv2.meanStdDev(grey)
    pic = grey.astype(np.float32)
    lap = cv2.Laplacian(pic, cv2.CV_32F, ksize=3)
    gx = cv2.Sobel(pic, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(pic, cv2.CV_32F, 0, 1, ksize=3)
    laplacian = float(lap.var())
    gradient = float(np.mean(gx * gx + gy * gy)) / 16.0  # Sobel's gain is 4 per axis
    detail = tile_detail(grey)
    live = detail > LIVE
    if ignore is not None:
        if ignore.shape != detail.shape:
            raise FrameError(f"ignored tiles are {ignore.shape}, the grid is {detail.shape}")
        structure = float(live[~ignore].mean())
        detail[ignore] = 0.0
    else:
        structure = float(live.mean())
    return Measures(
        brightness=float(mean[0, 0]) / 255.0,
        contrast=float(std[0, 0]) / 255.0,
        laplacian=laplacian,
        sharpness=laplacian / gradient if gradient > 1e-3 else 0.0,
        structure=structure,
        tiles=detail,
    )
