"""The JSON documents published over MQTT. Consumers must ignore fields they do not know:
later versions add fields (``tamper``, ``compliance``, ...), never rename or remove them."""

from __future__ import annotations

import time
from typing import Any, TypedDict

from gateway import __version__
from gateway.clock import utc_iso
from gateway.telemetry.compliance import Rule, RulePayload, compliance_document
from gateway.telemetry.events import Event
from gateway.telemetry.state import CameraStatus, StorageUsage, camera_state

__all__ = [
    "CameraPayload",
    "ComplianceEventPayload",
    "StatePayload",
    "StoragePayload",
    "camera_payload",
    "event_payload",
    "significant",
    "state_payload",
]


class CameraPayload(TypedDict):
    """``P/cameras/<id>/status``."""

    state: str
    since: str | None
    last_frame: str | None
    fps: float
    bitrate_kbps: float
    codec: str | None
    width: int | None
    height: int | None
    recording: bool
    recording_error: str | None
    audio: bool
    """The camera's sound is kept."""
    forward: str
    forward_mode: str
    forward_error: str | None
    forward_ends: str | None
    error: str | None
    compliance: dict[str, RulePayload]
    """The legal minima per rule (``fps``, ``resolution``): see
    :mod:`gateway.telemetry.compliance`."""


class ComplianceEventPayload(TypedDict):
    """``P/events`` of kind ``compliance_broken`` or ``compliance_restored``: a camera's rule
    broken (for :data:`~gateway.telemetry.compliance.HOLD` seconds, online), or kept again."""

    event: str
    time: str
    camera: str
    rule: Rule
    measured: float | str
    """Frames per second (``fps``) or ``WIDTHxHEIGHT`` (``resolution``), when it changed."""
    minimum: float | str


class StoragePayload(TypedDict):
    used: int
    quota: int
    free: int | None
    oldest_recording: str | None
    error: str | None


class CameraCounts(TypedDict):
    online: int
    total: int


class StatePayload(TypedDict):
    """``P/state``."""

    site: str
    version: str
    uptime: float
    clock_synchronized: bool | None
    cameras: CameraCounts
    storage: StoragePayload | None


def _iso(timestamp: float | None) -> str | None:
    return utc_iso(timestamp) if timestamp is not None else None


def camera_payload(status: CameraStatus) -> CameraPayload:
    now = time.time()
    state = camera_state(status, now)
    forward = status.forward
    error = status.error if state != "online" else None
    return {
        "state": state,
        "since": _iso(status.since),
        "last_frame": _iso(status.last_frame),
        "fps": round(status.fps, 2),
        "bitrate_kbps": round(status.bitrate / 1000, 1),
        "codec": status.codec,
        "width": status.width,
        "height": status.height,
        "recording": status.recorder.recording,
        "recording_error": status.recorder.error,
        "audio": status.audio,
        "forward": forward.state if forward.mode != "off" else "off",
        "forward_mode": forward.mode,
        "forward_error": forward.error,
        "forward_ends": _iso(forward.ends),
        "error": error,
        "compliance": compliance_document(status.compliance),
    }


_SIGNIFICANT = (
    "state",
    "codec",
    "width",
    "height",
    "recording",
    "recording_error",
    "audio",
    "forward",
    "forward_error",
    "error",
)


def significant(payload: CameraPayload) -> tuple[Any, ...]:
    """The fields whose change is published at once (the rest waits for the interval)."""
    verdicts = tuple((rule, entry["ok"]) for rule, entry in payload["compliance"].items())
    return (*(payload.get(key) for key in _SIGNIFICANT), verdicts)


def state_payload(
    *,
    site_id: str,
    uptime: float,
    cameras: list[CameraStatus],
    storage: StorageUsage | None,
    clock_synchronized: bool | None,
) -> StatePayload:
    now = time.time()
    online = sum(1 for c in cameras if camera_state(c, now) == "online")
    return {
        "site": site_id,
        "version": __version__,
        "uptime": round(uptime, 1),
        "clock_synchronized": clock_synchronized,
        "cameras": {"online": online, "total": len(cameras)},
        "storage": None
        if storage is None
        else {
            "used": storage.used,
            "quota": storage.quota,
            "free": storage.free,
            "oldest_recording": _iso(storage.oldest),
            "error": storage.error,
        },
    }


def event_payload(event: Event) -> dict[str, Any]:
    return {
        "event": event.kind,
        "time": utc_iso(event.time),
        "camera": event.camera,
        **event.fields,
    }
