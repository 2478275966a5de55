"""Status of the daemon for people: a JSON-able document (control socket) and a text table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from gateway.clock import parse_utc_iso, utc_iso
from gateway.telemetry.compliance import compliance_document
from gateway.telemetry.metrics import MetricsSnapshot
from gateway.telemetry.mqtt.payloads import tamper_document
from gateway.telemetry.state import CameraStatus, ForwardStatus, StorageUsage, camera_state
from gateway.text import display
from gateway.units import format_duration, format_size

__all__ = ["render_status", "status_document", "summary"]


def _age(iso: str | None, now: float) -> float | None:
    if iso is None:
        return None
    return now - parse_utc_iso(iso)


def render_status(document: dict[str, Any]) -> str:
    """The status table of :func:`status_document`'s output (live, or from the daemon).

    Every text in it comes from a camera, the configuration or a client (error strings, codec
    names, ids), so each is shown through :func:`display`: a terminal never receives a raw
    control or bidi character.
    """
    now = time.time()
    site = display(document["site"])
    lines = [
        f"camera-gateway · site {site} · up {format_duration(document['uptime'])}",
        "",
    ]
    header = (
        f"{'camera':<14}{'state':<9}{'video':<18}{'fps':>5}{'kbit/s':>8}"
        f"{'last frame':>11}  {'recording':<11}{'sound':<6}{'segments':>9}{'dropped':>8}  "
        f"{'tamper':<11}forward"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for camera in document["cameras"]:
        video = (
            f"{display(camera['codec'])} {camera['width']}x{camera['height']}"
            if camera["codec"]
            else "-"
        )
        age = _age(camera["last_frame"], now)
        shown_age = "-" if age is None else f"{format_duration(age)} ago"
        if not camera["recording_enabled"]:
            recording = "off"
        elif camera["recording_error"]:
            recording = "ERROR"
        else:
            recording = "yes" if camera["recording"] else "waiting"
        dropped = sum(camera["dropped_frames"].values())
        forward = camera["forward"]
        tamper = camera.get("tamper")
        shown = display(forward["state"]) if forward["mode"] != "off" else "-"
        left = _age(forward["ends"], now)
        if left is not None and forward["state"] != "off":
            shown += f" ({format_duration(max(0.0, -left))} left)"
        lines.append(
            f"{display(camera['id']):<14}{display(camera['state']):<9}{video:<18}"
            f"{camera['fps']:>5.1f}"
            f"{camera['bitrate_kbps']:>8.0f}{shown_age:>11}  {recording:<11}"
            f"{'yes' if camera.get('audio') else 'no':<6}"
            f"{camera['segments']:>9}{dropped:>8}  {_tamper_cell(tamper):<11}{shown}"
        )
        suspended = forward.get("suspended")
        problems = (
            camera["error"] if camera["state"] != "online" else None,
            camera["recording_error"],
            # a suspension is said once, with the zones, by the tamper lines
            forward["error"] if forward["error"] != suspended else None,
        )
        for problem in (
            *problems,
            *_compliance_problems(camera.get("compliance", {})),
            *_tamper_problems(tamper, forward, now),
        ):
            if problem:
                lines.append(f"{'':<14}! {display(problem)}")
    lines.append("")
    storage = document["storage"]
    if storage is not None:
        share = 100.0 * storage["used"] / storage["quota"] if storage["quota"] else 0.0
        free = "?" if storage["free"] is None else format_size(storage["free"])
        oldest_age = _age(storage["oldest"], now)
        oldest = "-" if oldest_age is None else f"{format_duration(oldest_age)} ago"
        evictions = sorted(storage["evictions"].items())
        evicted = ", ".join(f"{display(k)} {v}" for k, v in evictions) or "none"
        lines.append(
            f"storage: {format_size(storage['used'])} of {format_size(storage['quota'])} "
            f"({share:.0f}%), {free} free, {storage['segments']} segments, oldest {oldest}"
        )
        lines.append(f"evicted: {evicted}")
        if storage["error"]:
            lines.append(f"! storage: {display(storage['error'])}")
        if storage.get("seal_error"):
            lines.append(f"! sealing: {display(storage['seal_error'])}")
    if document.get("mqtt_connected") is False:
        lines.append("! MQTT: not connected to the broker")
    return "\n".join(lines)


def _compliance_problems(compliance: dict[str, Any]) -> list[str]:
    """A line per broken legal minimum: ``fps 4.0 below the legal minimum 6.0 (compliant 12 %
    of the last 24 h)``."""
    problems = []
    for rule, entry in compliance.items():
        if entry["ok"]:
            continue
        ratio = entry["ratio_24h"]
        share = "" if ratio is None else f" (compliant {100 * ratio:.0f} % of the last 24 h)"
        problems.append(
            f"{rule} {entry['measured']} below the legal minimum {entry['minimum']}{share}"
        )
    return problems


_SAID = {
    "covered": "picture covered (uniform or black)",
    "defocused": "picture out of focus",
    "moved": "camera moved off its learned view",
}
"""The tamper conditions as the problem lines say them, in the monitor's precedence."""


def _tamper_cell(tamper: dict[str, Any] | None) -> str:
    """The ``tamper`` column: the state (``moved 12%`` with its shift), or ``mask!`` while a
    privacy mask is missing, the one a reader must see first (the lines below say the rest)."""
    if tamper is None:
        return "-"  # a daemon from before the integrity watch
    if tamper["privacy"] == "missing":
        return "mask!"
    state = display(tamper["state"])
    shift = tamper["shift"]
    if state == "moved" and shift is not None:
        return f"moved {shift['percent']:.0f}%"
    return state


def _tamper_problems(
    tamper: dict[str, Any] | None, forward: dict[str, Any], now: float
) -> list[str]:
    """A line per tamper condition raised (``picture covered (uniform or black) since
    2026-11-25 17:44:52 UTC (12m30s ago)``), one for missing privacy masks saying what became
    of the forward, and one when keyframes cannot be analysed."""
    if tamper is None:
        return []
    problems = []
    raised = set(tamper["conditions"]) | {tamper["state"]}
    for condition, said in _SAID.items():
        if condition not in raised:
            continue
        line = said
        shift = tamper["shift"]
        if condition == "moved" and shift is not None:
            line += f" (shift {shift['percent']:.1f} % of the width, {shift['rotation_deg']:+.1f}°)"
        since = tamper["since"]
        if condition == tamper["state"] and since is not None:
            age = _age(since, now) or 0.0
            line += f" since {since[:10]} {since[11:19]} UTC ({format_duration(age)} ago)"
        problems.append(line)
    if tamper["privacy"] == "missing":
        zones = tamper["unmasked"]
        where = f" in zone{'s' if len(zones) > 1 else ''} {', '.join(zones)}" if zones else ""
        if forward.get("suspended") is None:
            held = " (forward_when_unmasked: the forward is not held back)"
            held = held if forward["mode"] != "off" else ""
        elif forward["state"] == "suspended":
            held = ": forward suspended, recording goes on"
        else:
            held = ": no forward to the centre until it is back"
        problems.append(f"privacy mask missing{where}{held}")
    if tamper["error"]:
        problems.append(f"picture integrity not analysed: {tamper['error']}")
    return problems


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
        "suspended": forward.suspended,
    }


def status_document(
    site_id: str,
    cameras: Sequence[CameraStatus],
    storage: StorageUsage | None,
    *,
    uptime: float,
) -> dict[str, Any]:
    """Everything the status table shows, as plain data (times in UTC ISO 8601)."""
    now = time.time()
    return {
        "site": site_id,
        "uptime": round(uptime, 1),
        "cameras": [
            {
                "id": status.id,
                "url": status.url,
                "state": camera_state(status, now),
                "since": _iso(status.since),
                "error": status.error,
                "codec": status.codec,
                "width": status.width,
                "height": status.height,
                "fps": round(status.fps, 2),
                "bitrate_kbps": round(status.bitrate / 1000, 1),
                "last_frame": _iso(status.last_frame),
                "recording_enabled": status.recorder.enabled,
                "recording": status.recorder.recording,
                "recording_error": status.recorder.error,
                "audio": status.audio,
                "segments": status.recorder.segments,
                "dropped_frames": dict(status.dropped_frames),
                "forward": _forward_document(status.forward),
                "compliance": compliance_document(status.compliance),
                "tamper": tamper_document(status.tamper),
                "worker": {
                    "pid": status.worker.pid,
                    "restarts": status.worker.restarts,
                    "last_restart": status.worker.last_restart,
                    "resident_bytes": status.worker.resident_bytes,
                    "cpu": round(status.worker.cpu, 3),
                },
            }
            for status in cameras
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
            "seal_error": storage.seal_error,
        },
    }


def summary(snapshot: MetricsSnapshot) -> str:
    """One line for systemd's STATUS=: ``4/4 cameras online, 4 recording, 61% of quota``, then
    what needs a look (``1 tampered``, ``1 missing a privacy mask``, a storage error)."""
    cameras = list(snapshot.cameras)
    now = time.time()
    online = sum(1 for c in cameras if camera_state(c, now) == "online")
    recording = sum(1 for c in cameras if c.recorder.recording)
    parts = [f"{online}/{len(cameras)} cameras online", f"{recording} recording"]
    storage = snapshot.storage
    if storage is not None and storage.quota:
        parts.append(f"{100 * storage.used / storage.quota:.0f}% of quota")
    forwarding = sum(1 for c in cameras if c.forward.state == "live")
    if forwarding:
        parts.append(f"{forwarding} forwarding")
    tampered = sum(1 for c in cameras if c.tamper.state in _SAID)
    if tampered:
        parts.append(f"{tampered} tampered")
    unmasked = sum(1 for c in cameras if c.tamper.privacy == "missing")
    if unmasked:
        parts.append(f"{unmasked} missing a privacy mask")
    if storage is not None and storage.error:
        parts.append(f"storage: {storage.error}")
    return ", ".join(parts)
