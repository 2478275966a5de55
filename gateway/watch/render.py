"""Snapshots made: one keyframe as a JPEG, privacy zones blacked out, size-capped.

A snapshot is made from the last keyframe the camera sent (no second session on the camera):
decoded alone, scaled down to ``width`` at most, every privacy zone filled black (the zone
grown by a few pixels, so that no edge of what the camera may be showing through a lost mask
is left), then compressed at the best JPEG quality that fits ``max_bytes``. The same keyframe
and settings always give the same bytes, so the hash journalled with a change names the
picture exactly.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from gateway.analysis import DecodeError, KeyframeDecoder, Zone
from gateway.watch.snapshot import Keyframe, Snapshot, SnapshotError

__all__ = ["mask_zones", "render"]

QUALITIES: Final = (85, 75, 65, 50, 35)
"""JPEG qualities tried in turn until the picture fits."""
GROW: Final = 4
"""Pixels the black fill of a zone reaches past its outline."""


def render(keyframe: Keyframe, zones: tuple[Zone, ...], *, width: int, max_bytes: int) -> Snapshot:
    """The keyframe as a JPEG of at most ``max_bytes``; :class:`SnapshotError` if impossible."""
    decoder = KeyframeDecoder(keyframe.codec, keyframe.extradata, width=width, colour=True)
    try:
        frame = decoder.decode_bytes(keyframe.data)
    except DecodeError as exc:
        raise SnapshotError(f"the last keyframe cannot be decoded: {exc}") from None
    finally:
        decoder.close()
    picture = frame.colour
    if picture is None:  # colour=True always keeps one
        raise SnapshotError("the keyframe gave no colour picture")
    picture = mask_zones(picture.copy(), zones)
    while True:
        for quality in QUALITIES:
            ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(encoded) <= max_bytes:
                height, out_width = picture.shape[:2]
                return Snapshot(encoded.tobytes(), out_width, height, keyframe.at)
        if picture.shape[1] <= 160:
            raise SnapshotError(f"no JPEG of this picture fits in {max_bytes} bytes")
        half = (picture.shape[1] // 2, picture.shape[0] // 2)
        picture = np.asarray(cv2.resize(picture, half, interpolation=cv2.INTER_AREA), np.uint8)


def mask_zones(picture: NDArray[np.uint8], zones: tuple[Zone, ...]) -> NDArray[np.uint8]:
    """``picture`` (BGR) with every zone filled black, in place; returned for convenience."""
    height, width = picture.shape[:2]
    for zone in zones:
        points = np.array(
            [[round(x * (width - 1)), round(y * (height - 1))] for x, y in zone.points],
            dtype=np.int32,
        )
        cv2.fillPoly(picture, [points], (0, 0, 0))
        cv2.polylines(picture, [points], True, (0, 0, 0), thickness=2 * GROW + 1)
    return picture
