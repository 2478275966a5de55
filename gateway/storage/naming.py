"""Where segments live and how their names carry camera and UTC start time.

``<root>/<camera>/<YYYY-MM-DD>/<camera>_<YYYYMMDDTHHMMSS.mmm>Z.mp4``; a segment being written has
the extra suffix ``.part``, so it can be recognised (and repaired) after a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "FINAL_SUFFIX",
    "PART_SUFFIX",
    "SegmentName",
    "final_path",
    "parse_segment_path",
    "segment_path",
]

FINAL_SUFFIX = ".mp4"
PART_SUFFIX = ".mp4.part"
_NAME = re.compile(
    r"^(?P<camera>[a-z0-9_-]{1,32})_(?P<stamp>\d{8}T\d{6}\.\d{3})Z(?P<suffix>\.mp4(?:\.part)?)$"
)


@dataclass(frozen=True, slots=True)
class SegmentName:
    camera: str
    start: float
    """UNIX seconds, UTC, millisecond precision."""
    partial: bool


def segment_path(root: Path, camera: str, start: float) -> Path:
    """Path of a new segment (being written: ``.part``)."""
    moment = datetime.fromtimestamp(start, UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}"
    day = moment.strftime("%Y-%m-%d")
    return root / camera / day / f"{camera}_{stamp}Z{PART_SUFFIX}"


def final_path(part: Path) -> Path:
    """The finished name of a ``.part`` segment."""
    if not part.name.endswith(PART_SUFFIX):
        raise ValueError(f"not a segment being written: {part}")
    return part.with_name(part.name[: -len(".part")])


def parse_segment_path(path: Path) -> SegmentName | None:
    """Camera and start time from a segment file name, or None if it is not one of ours."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    moment = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
    return SegmentName(
        camera=match["camera"],
        start=moment.timestamp(),
        partial=match["suffix"] == PART_SUFFIX,
    )
