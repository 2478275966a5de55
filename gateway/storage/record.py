"""A finished segment: what the recorder reports, the index stores and every reader gets back.

One record from the file's closing to its eviction: importable without PyAV (the supervisor
indexes what the workers record). Its path is relative to the storage root, as the index stores
it; :meth:`Segment.resolve` gives the file's place under a root. Gaps are not stored: they are
the holes between consecutive segments of a camera (:func:`gaps`), computed when listing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["ENDED_CUT", "ENDINGS", "GAP_TOLERANCE", "Gap", "Segment", "gaps", "relative_path"]

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

GAP_TOLERANCE = 0.5
"""Seconds between two segments of a camera that still count as continuous."""


@dataclass(frozen=True, slots=True)
class Gap:
    camera: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def relative_path(path: Path) -> str:
    """The path of the segment file ``<root>/<camera>/<day>/<name>`` relative to its root."""
    return str(PurePosixPath(*path.parts[-3:]))


@dataclass(frozen=True, slots=True)
class Segment:
    """A finished segment, as the recorder closed it and as the index stores it."""

    path: str
    """Relative to the storage root: ``<camera>/<day>/<name>``."""
    camera: str
    start: float
    end: float
    bytes: int
    frames: int
    codec: str
    width: int
    height: int
    has_audio: bool
    flags: frozenset[str] = field(default_factory=frozenset)
    """``recovered`` (from an interrupted ``.part``), ``rebuilt`` (damaged fragments left out),
    ``no_keyframe`` (does not start on a keyframe, or cut at its size or time bound with no
    keyframe to cut it at), ``damaged`` (a finished file with damaged fragments, kept as it
    is)."""
    sha256: str | None = None
    """SHA-256 of the file: computed as it was written, or at sealing (None: not known yet)."""
    clock_synced: bool | None = None
    """Whether the system clock was NTP-synchronised at both ends of the segment (None: not
    known)."""
    ended: str = ENDED_CUT
    """Why the segment ended (one of :data:`ENDINGS`): what a gap after it is put down to."""
    seal_seq: int | None = None
    """Its entry in the camera's seal chain (None: not sealed yet)."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def name(self) -> str:
        """The file's name (its last path component)."""
        return PurePosixPath(self.path).name

    def resolve(self, root: Path) -> Path:
        """The file under the storage root ``root``."""
        return root / self.path


def gaps(segments: list[Segment]) -> list[Gap]:
    """Holes longer than :data:`GAP_TOLERANCE` between consecutive segments of each camera."""
    found: list[Gap] = []
    previous: dict[str, Segment] = {}
    for segment in sorted(segments, key=lambda s: (s.camera, s.start)):
        before = previous.get(segment.camera)
        if before is not None and segment.start - before.end > GAP_TOLERANCE:
            found.append(Gap(segment.camera, before.end, segment.start))
        previous[segment.camera] = segment
    return found
