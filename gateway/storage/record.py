"""A finished segment as the index stores it: importable without PyAV (the supervisor indexes
what the workers record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ENDED_CUT", "ENDINGS", "SegmentInfo"]

ENDED_CUT = "cut"
ENDINGS: dict[str, str] = {
    ENDED_CUT: "cut at its length or size, the next one follows",
    "camera": "the camera's stream ended (camera offline or restarted)",
    "clock_step": "the system clock was stepped",
    "no_keyframe": "no keyframe from the camera: cut, recording resumed at the next keyframe",
    "stopping": "the daemon or the camera's worker was stopping",
    "recovered": "recording was interrupted (crash, power cut or storage error)",
}
"""Why a segment ended, and what that says about a gap after it."""


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
    sha256: str | None = None
    """SHA-256 of the file, computed while it was written (None: to be computed from the file)."""
    clock_synced: bool | None = None
    """Whether the system clock was NTP-synchronised at both ends of the segment (None: not
    known)."""
    ended: str = ENDED_CUT
    """Why the segment ended (one of :data:`ENDINGS`): what a gap after it is put down to."""
