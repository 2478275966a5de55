"""A plain-text status table of cameras and storage, for the demo and the terminal."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.state import CameraStatus
from gateway.storage.store import StorageUsage
from gateway.stream import Reader
from gateway.units import format_duration, format_size

__all__ = ["render_status"]


def render_status(
    site_id: str,
    cameras: Sequence[tuple[CameraStatus, Sequence[Reader]]],
    storage: StorageUsage | None,
    *,
    uptime: float,
) -> str:
    now = time.time()
    lines = [f"camera-gateway · site {site_id} · up {format_duration(uptime)}", ""]
    header = (
        f"{'camera':<14}{'state':<9}{'video':<18}{'fps':>5}{'kbit/s':>8}"
        f"{'last frame':>11}  {'recording':<11}{'segments':>9}{'dropped':>8}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for status, readers in cameras:
        video = f"{status.codec} {status.width}x{status.height}" if status.codec else "-"
        age = (
            "-" if status.last_frame is None else f"{format_duration(now - status.last_frame)} ago"
        )
        rec = status.recorder
        if not rec.enabled:
            recording = "off"
        elif rec.error:
            recording = "ERROR"
        else:
            recording = "yes" if rec.recording else "waiting"
        dropped = sum(r.stats.dropped_frames for r in readers)
        lines.append(
            f"{status.id:<14}{status.state:<9}{video:<18}{status.fps:>5.1f}"
            f"{status.bitrate / 1000:>8.0f}{age:>11}  {recording:<11}{rec.segments:>9}{dropped:>8}"
        )
        for problem in (status.error if status.state != "online" else None, rec.error):
            if problem:
                lines.append(f"{'':<14}! {problem}")
    lines.append("")
    if storage is not None:
        share = 100.0 * storage.used / storage.quota if storage.quota else 0.0
        free = "?" if storage.free is None else format_size(storage.free)
        oldest = "-" if storage.oldest is None else f"{format_duration(now - storage.oldest)} ago"
        evicted = ", ".join(f"{k} {v}" for k, v in sorted(storage.evictions.items())) or "none"
        lines.append(
            f"storage: {format_size(storage.used)} of {format_size(storage.quota)} "
            f"({share:.0f}%), {free} free, {storage.segments} segments, oldest {oldest}"
        )
        lines.append(f"evicted: {evicted}")
        if storage.error:
            lines.append(f"! storage: {storage.error}")
    return "\n".join(lines)
