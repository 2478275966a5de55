"""Privacy zones: parts of the picture the camera itself must mask, and the check that it does.

Filming the inside of a private flat (a door left open, a window across the courtyard) is
forbidden (Code de la construction et de l'habitation, article L126-1-1; CNIL guidance on
video-protection in residential buildings), so such parts of the view are masked by the camera
with a flat fill. A camera that loses its settings (a power cut, a reset, a firmware update)
films them again: this module notices that content has appeared inside a zone.

A zone is a polygon in normalised picture coordinates (``x`` and ``y`` in [0, 1], from the top
left), so one configuration holds at any resolution. The zone is judged on its interior, shrunk
by a few pixels, because compression rings along the edge of a flat fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gateway.analysis.errors import FrameError

__all__ = ["Zone", "ZoneCheck", "check_zones", "zone_mask", "zone_tiles"]

EDGE: Final = 3
"""Pixels (in the analysed picture) of the zone's border left out of the check."""

MIN_AREA: Final = 30
"""Pixels (in the analysed picture) a zone's interior needs to be judged."""

HALO: Final = 8
"""Pixels (in the analysed picture) past a zone's outline that its edge still reaches in the
band-pass of :func:`gateway.analysis.measures.tile_detail` (the wider blur is 6 pixels)."""

MIN_KEPT: Final = 0.25
"""Share of the tiles that must stay out of every zone for the zones to be left out of the
structure (a view masked almost whole is measured whole)."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon the camera must mask, in normalised coordinates."""

    name: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 3:
            raise ValueError(f"privacy zone {self.name!r} needs at least 3 points")
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"privacy zone {self.name!r}: point ({x}, {y}) is outside [0, 1] x [0, 1]"
                )


@dataclass(frozen=True, slots=True)
class ZoneCheck:
    """What one zone holds in one picture."""

    zone: str
    detail: float
    """Standard deviation, in grey levels, of the zone's interior once smoothed: 0 for a flat
    fill, several levels for any filmed content."""
    masked: bool


@lru_cache(maxsize=64)
def _mask(points: tuple[tuple[float, float], ...], width: int, height: int) -> NDArray[np.bool_]:
    mask = np.zeros((height, width), np.uint8)
    pts = np.array([(x * (width - 1), y * (height - 1)) for x, y in points], np.float32)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    kernel = np.ones((2 * EDGE + 1, 2 * EDGE + 1), np.uint8)
    inner = cv2.erode(mask, kernel)
    return inner.astype(bool)


def zone_mask(zone: Zone, width: int, height: int) -> NDArray[np.bool_]:
    """The zone's interior (border left out) on a ``width × height`` picture."""
    return _mask(zone.points, width, height)


@lru_cache(maxsize=64)
def _tiles(
    zones: tuple[Zone, ...], width: int, height: int, grid: tuple[int, int]
) -> NDArray[np.bool_] | None:
    if not zones:
        return None
    mask = np.zeros((height, width), np.uint8)
    for zone in zones:
        pts = np.array([(x * (width - 1), y * (height - 1)) for x, y in zone.points], np.float32)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    grown = cv2.dilate(mask, np.ones((2 * HALO + 1, 2 * HALO + 1), np.uint8))
    share = cv2.resize(grown.astype(np.float32), grid, interpolation=cv2.INTER_AREA)
    touched = share > 0.0
    if 1.0 - float(touched.mean()) < MIN_KEPT:
        return None
    touched.setflags(write=False)
    return touched


def zone_tiles(
    zones: tuple[Zone, ...], width: int, height: int, grid: tuple[int, int]
) -> NDArray[np.bool_] | None:
    """The tiles of a ``grid`` (columns, rows) over a ``width × height`` picture that a zone or
    its edge's halo touches (``rows × columns``), or ``None`` when there is no zone or when
    fewer than :data:`MIN_KEPT` of the tiles would be left.

    A masked zone is flat and its outline is a sharp edge: neither tells whether the camera is
    covered, so the structure measures leave those tiles out.
    """
    return _tiles(zones, width, height, grid)


def check_zones(
    grey: NDArray[np.uint8], zones: tuple[Zone, ...], *, flat: float
) -> list[ZoneCheck]:
    """Each zone judged masked when its interior's detail is at most ``flat`` grey levels.

    The picture is smoothed first (3 × 3) so that sensor noise left by the encoder over a flat
    fill does not count as content. A zone too small to judge is reported masked.
    """
    if grey.ndim != 2 or grey.size == 0:
        raise FrameError(f"zones are checked on a grey picture, not shape {grey.shape}")
    height, width = grey.shape
    smooth = cv2.blur(grey, (3, 3))
    checks = []
    for zone in zones:
        inside = zone_mask(zone, width, height)
        if int(inside.sum()) < MIN_AREA:
            checks.append(ZoneCheck(zone.name, 0.0, True))
            continue
        detail = float(smooth[inside].std())
        checks.append(ZoneCheck(zone.name, detail, detail <= flat))
    return checks
