"""A finished segment as the index stores it: importable without PyAV (the supervisor indexes
what the workers record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SegmentInfo"]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A finished segment, as the index stores it."""

    camera: str
    path: Path
    start: float
    end: float
    bytes: int
    frames: int
    codec: str
    width: int
    height: int
    has_audio: bool
    flags: frozenset[str] = field(default_factory=frozenset)
    """``no_keyframe``: cut at its size or time bound, with no keyframe to cut it at."""
