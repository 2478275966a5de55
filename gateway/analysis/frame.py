"""The downscaled picture every measure works on, made from a decoded frame or an array.

Analysis runs on a small grey picture (320 pixels wide by default): the measures and the feature
matching need the scene's structure, not its detail, and a 320 × 180 picture costs a few hundred
microseconds per measure where a 1080p one would cost tens of milliseconds. A colour copy is
kept only when asked for (a snapshot); the analysis never needs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gateway.analysis.errors import FrameError

__all__ = ["ANALYSIS_WIDTH", "MIN_SIDE", "Frame", "analysis_size", "frame_from_array"]

ANALYSIS_WIDTH: Final = 320
"""Width of the analysed grey picture, in pixels."""

MIN_SIDE: Final = 32
"""Smallest side, in pixels, of a picture that can be analysed (below it no tile has content)."""

MAX_SIDE: Final = 16384
"""Largest side accepted (FFmpeg's own limit is 16384 for H.264 and H.265)."""

Grey = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Frame:
    """One analysed picture: the downscaled grey plane and, optionally, a small colour copy."""

    grey: Grey
    """2-D ``uint8``, :data:`ANALYSIS_WIDTH` wide (or the source width when narrower)."""
    source_width: int
    source_height: int
    colour: NDArray[np.uint8] | None = None
    """``H × W × 3`` BGR ``uint8`` at the same size as ``grey``, or ``None``."""

    @property
    def width(self) -> int:
        return int(self.grey.shape[1])

    @property
    def height(self) -> int:
        return int(self.grey.shape[0])


def analysis_size(width: int, height: int, target: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """The analysed picture's size for a ``width × height`` source: ``target`` wide (never
    upscaled), the height keeping the aspect ratio and even, at least :data:`MIN_SIDE`."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise FrameError(f"picture of {width}x{height} is too small to analyse (min {MIN_SIDE})")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise FrameError(f"picture of {width}x{height} is larger than {MAX_SIDE} on a side")
    out_w = min(target, width)
    out_h = max(MIN_SIDE, round(height * out_w / width / 2) * 2)
    return out_w, out_h


def frame_from_array(
    picture: NDArray[np.generic], *, width: int = ANALYSIS_WIDTH, colour: bool = False
) -> Frame:
    """A :class:`Frame` from a grey (``H × W``) or BGR (``H × W × 3``) ``uint8`` array.

    Raises :class:`FrameError` for an empty, too small, non-``uint8`` or oddly shaped array.
    """
    if not isinstance(picture, np.ndarray):
        raise FrameError(f"a picture must be a numpy array, not {type(picture).__name__}")
    if picture.size == 0:
        raise FrameError(f"empty picture (shape {picture.shape})")
    if picture.dtype != np.uint8:
        raise FrameError(f"picture must be uint8, not {picture.dtype}")
    if picture.ndim == 3 and picture.shape[2] == 1:
        picture = picture[:, :, 0]
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[2] != 3):
        raise FrameError(f"picture must be H x W (grey) or H x W x 3 (BGR), not {picture.shape}")
    height, width_in = int(picture.shape[0]), int(picture.shape[1])
    size = analysis_size(width_in, height, width)
    array = np.ascontiguousarray(picture)
    small = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        kept = small if colour else None
    else:
        grey = small
        kept = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR) if colour else None
    return Frame(
        grey=np.ascontiguousarray(grey, dtype=np.uint8),
        source_width=width_in,
        source_height=height,
        colour=None if kept is None else np.ascontiguousarray(kept, dtype=np.uint8),
    )
