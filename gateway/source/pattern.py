"""Test-pattern pictures for the simulated camera: moving bars and a running UTC clock.

Pictures are built directly as YUV 4:2:0 planes (no colour conversion), with the clock drawn as
seven-segment digits, so a viewer can read on any recording when it was filmed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["PatternGenerator"]

_SEGMENTS = {  # a, b, c, d, e, f, g
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


class PatternGenerator:
    """Makes ``yuv420p`` pictures of a fixed size; ``draw(t, text)`` returns one picture."""

    def __init__(self, width: int, height: int, *, hue: int = 0) -> None:
        if width % 2 or height % 2:
            raise ValueError("width and height must be even")
        self.width = width
        self.height = height
        x = np.arange(width, dtype=np.uint16)
        self._luma_row = ((x * 255) // max(1, width - 1)).astype(np.uint8)
        self._u = np.full((height // 2, width // 2), (96 + hue * 37) % 256, dtype=np.uint8)
        self._v = np.full((height // 2, width // 2), (160 + hue * 53) % 256, dtype=np.uint8)
        self._digit_h = max(10, height // 8)
        self._digit_w = self._digit_h // 2
        self._stroke = max(2, self._digit_h // 8)

    def draw(self, t: float, text: str) -> npt.NDArray[np.uint8]:
        """Picture at time ``t`` (seconds) with ``text`` (digits, ':' and spaces) drawn on it."""
        shift = int(t * self.width / 4) % self.width
        y = np.broadcast_to(np.roll(self._luma_row, shift), (self.height, self.width)).copy()
        top = self.height - self._digit_h - self._digit_h // 2
        box_w = len(text) * (self._digit_w + self._stroke * 2) + self._stroke * 2
        y[top - self._stroke : top + self._digit_h + self._stroke, 0:box_w] = 16
        x = self._stroke
        for char in text:
            self._draw_char(y, char, x, top)
            x += self._digit_w + self._stroke * 2
        return np.concatenate((y, self._u.reshape(-1, self.width), self._v.reshape(-1, self.width)))

    def _draw_char(self, y: npt.NDArray[np.uint8], char: str, x: int, top: int) -> None:
        s, w, h = self._stroke, self._digit_w, self._digit_h
        if char == ":":
            y[top + h // 3 : top + h // 3 + s, x + w // 2 : x + w // 2 + s] = 235
            y[top + 2 * h // 3 : top + 2 * h // 3 + s, x + w // 2 : x + w // 2 + s] = 235
            return
        mid = top + h // 2
        boxes = {
            "a": (top, top + s, x, x + w),
            "b": (top, mid, x + w - s, x + w),
            "c": (mid, top + h, x + w - s, x + w),
            "d": (top + h - s, top + h, x, x + w),
            "e": (mid, top + h, x, x + s),
            "f": (top, mid, x, x + s),
            "g": (mid - s // 2, mid - s // 2 + s, x, x + w),
        }
        for segment in _SEGMENTS.get(char, ""):
            r0, r1, c0, c1 = boxes[segment]
            y[r0:r1, c0:c1] = 235
