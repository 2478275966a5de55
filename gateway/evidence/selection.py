"""Which recordings an export takes, and what is missing from a range, with the reason.

A clip starts at the keyframe at or before the requested start: segments start on keyframes,
so the first segment taken is the one that holds the start (or the first one after it).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import utc_iso
from gateway.integrity.seal import ChainRecord
from gateway.storage.index import GAP_TOLERANCE, Index
from gateway.storage.record import ENDINGS, Segment

__all__ = ["Gap", "gaps_in", "nearest", "select"]


@dataclass(frozen=True, slots=True)
class Gap:
    camera: str
    start: float
    end: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "camera": self.camera,
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "seconds": round(self.end - self.start, 3),
            "reason": self.reason,
        }


def select(index: Index, camera: str, start: float, end: float) -> list[Segment]:
    """The camera's segments that hold any of [start, end), oldest first."""
    return [
        s
        for s in index.segments(camera=camera, since=start, until=end)
        if s.end > start and s.start < end
    ]


def nearest(index: Index, camera: str, start: float, end: float) -> str:
    """What the closest recordings of a camera are, for an error message."""
    before = [s for s in index.segments(camera=camera, until=start) if s.end <= start]
    after = index.segments(camera=camera, since=end)
    parts = []
    if before:
        parts.append(f"the last before ends at {utc_iso(before[-1].end)}")
    if after:
        parts.append(f"the next starts at {utc_iso(after[0].start)}")
    return "; ".join(parts) if parts else "it has no recording at all"


def gaps_in(
    camera: str,
    segments: list[Segment],
    start: float,
    end: float,
    chain: dict[str, ChainRecord],
) -> list[Gap]:
    """Holes in [start, end) not covered by ``segments``, each with the best reason known: a
    segment retention evicted, or why the segment before the hole ended."""
    out: list[Gap] = []
    evicted = sorted(
        (r for r in chain.values() if r.evicted is not None and r.end > start and r.start < end),
        key=lambda r: r.start,
    )
    cursor = start
    previous: Segment | None = None
    for segment in [*segments, None]:
        hole_end = end if segment is None else min(segment.start, end)
        if hole_end - cursor > GAP_TOLERANCE:
            reason = _reason(previous, cursor, hole_end, evicted)
            if segment is None and previous is not None and previous.ended == "cut":
                reason = "after the last finished segment (being recorded, or not yet indexed)"
            out.append(Gap(camera, cursor, hole_end, reason))
        if segment is None:
            break
        cursor = max(cursor, segment.end)
        previous = segment
    return out


def _reason(previous: Segment | None, start: float, end: float, evicted: list[ChainRecord]) -> str:
    gone = [r for r in evicted if r.end > start and r.start < end]
    if gone:
        return f"recording evicted by retention ({gone[0].evicted}, {gone[0].evicted_at})"
    if previous is None:
        return "no recording (before the first segment kept)"
    if "recovered" in previous.flags:
        return ENDINGS["recovered"]
    return ENDINGS.get(previous.ended, previous.ended)
