"""Status of the daemon for people: a JSON-able document (control socket) and a text table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from gateway.clock import utc_iso
from gateway.state import CameraStatus, ForwardStatus
from gateway.storage.store import StorageUsage
from gateway.stream import Reader
from gateway.units import format_duration, format_size

__all__ = ["render_status", "status_document"]


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
        f"{'last frame':>11}  {'recording':<11}{'segments':>9}{'dropped':>8}  forward"
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
        forward = status.forward
        shown: str = forward.state if forward.mode != "off" else "-"
        if forward.ends is not None and forward.state != "off":
            shown += f" ({format_duration(max(0.0, forward.ends - now))} left)"
        lines.append(
            f"{status.id:<14}{status.state:<9}{video:<18}{status.fps:>5.1f}"
            f"{status.bitrate / 1000:>8.0f}{age:>11}  {recording:<11}{rec.segments:>9}{dropped:>8}"
            f"  {shown}"
        )
        problems = (status.error if status.state != "online" else None, rec.error, forward.error)
        for problem in problems:
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


def _iso(timestamp: float | None) -> str | None:
    return utc_iso(timestamp) if timestamp is not None else None


def _forward_document(forward: ForwardStatus) -> dict[str, Any]:
    return {
        "mode": forward.mode,
        "state": forward.state,
        "error": forward.error,
        "since": _iso(forward.since),
        "target": forward.target,
        "session": forward.session_id,
        "requested_by": forward.requested_by,
        "started": _iso(forward.started),
        "ends": _iso(forward.ends),
        "bytes_sent": forward.bytes_sent,
        "dropped_frames": forward.dropped_frames,
        "reconnects": forward.reconnects,
    }


def status_document(
    site_id: str,
    cameras: Sequence[tuple[CameraStatus, Sequence[Reader]]],
    storage: StorageUsage | None,
    *,
    uptime: float,
) -> dict[str, Any]:
    """Everything the status table shows, as plain data (times in UTC ISO 8601)."""
    return {
        "site": site_id,
        "uptime": round(uptime, 1),
        "cameras": [
            {
                "id": status.id,
                "url": status.url,
                "state": status.state,
                "since": _iso(status.since),
                "error": status.error,
                "codec": status.codec,
                "width": status.width,
                "height": status.height,
                "fps": round(status.fps, 2),
                "bitrate_kbps": round(status.bitrate / 1000, 1),
                "last_frame": _iso(status.last_frame),
                "recording": status.recorder.recording,
                "recording_error": status.recorder.error,
                "segments": status.recorder.segments,
                "dropped_frames": {r.name: r.stats.dropped_frames for r in readers},
                "forward": _forward_document(status.forward),
            }
            for status, readers in cameras
        ],
        "storage": None
        if storage is None
        else {
            "used": storage.used,
            "quota": storage.quota,
            "free": storage.free,
            "segments": storage.segments,
            "oldest": _iso(storage.oldest),
            "evictions": storage.evictions,
            "error": storage.error,
        },
    }
