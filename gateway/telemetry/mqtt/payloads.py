"""The JSON documents published over MQTT. Consumers must ignore fields they do not know:
later versions add fields (``tamper``, ``compliance``, ...), never rename or remove them."""

from __future__ import annotations

import time
from typing import Any, NotRequired, TypedDict

from gateway import __version__
from gateway.clock import utc_iso
from gateway.telemetry.compliance import Rule, RulePayload, compliance_document
from gateway.telemetry.events import Event
from gateway.telemetry.state import (
    CameraStatus,
    PrivacyState,
    StorageUsage,
    TamperState,
    TamperStatus,
    camera_state,
)

__all__ = [
    "CameraPayload",
    "ComplianceEventPayload",
    "ForwardSuspensionEventPayload",
    "PrivacyEventPayload",
    "ShiftPayload",
    "StatePayload",
    "StoragePayload",
    "TamperEventPayload",
    "TamperPayload",
    "camera_payload",
    "event_payload",
    "significant",
    "state_payload",
    "tamper_document",
]


class ShiftPayload(TypedDict):
    """How far the scene moved from the view the camera's watch learned."""

    dx_px: float
    """Pixels of the camera's picture, to the right > 0."""
    dy_px: float
    """Pixels, downwards > 0."""
    percent: float
    """Length of the shift in percent of the picture's width (``moved`` past
    ``analysis.move_percent``)."""
    rotation_deg: float
    """Degrees, counter-clockwise > 0 (``moved`` past ``analysis.move_degrees``)."""


class TamperPayload(TypedDict):
    """A camera's ``tamper`` (status document and MQTT camera status): whether it still films
    what it should, and whether its privacy masks hide what the law forbids it to show."""

    state: TamperState
    """``off`` (not analysed), ``unknown`` (no keyframe analysed yet, or none can be: see
    ``error``), ``learning``, ``ok``, ``covered``, ``defocused`` or ``moved``."""
    since: str | None
    conditions: list[str]
    """Every condition raised now: a moved camera also out of focus shows ``defocused`` with
    both listed; ``privacy_mask_missing`` is listed beside the state."""
    shift: ShiftPayload | None
    """As last measured; None when it is not (no keyframe recognised yet, the picture covered,
    or the camera turned so far that its view is not recognised)."""
    privacy: PrivacyState
    """``none`` (no privacy zone), ``unknown`` (not judged yet), ``ok`` or ``missing``."""
    unmasked: list[str]
    """Names of the privacy zones showing content on the last analysed keyframe."""
    error: str | None
    keyframes: int
    """Keyframes analysed since the daemon started."""
    analysed_at: str | None


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
    forward_suspended: str | None
    """Why no picture goes to the centre (a privacy mask is missing), or None; ``forward`` is
    then ``suspended`` while a session is open."""
    error: str | None
    compliance: dict[str, RulePayload]
    """The legal minima per rule (``fps``, ``resolution``): see
    :mod:`gateway.telemetry.compliance`."""
    tamper: TamperPayload


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


class TamperEventPayload(TypedDict):
    """``P/events`` of kind ``tamper_detected`` or ``tamper_cleared``: a condition raised
    (once it held ``analysis.min_duration`` on every analysed keyframe) or cleared."""

    event: str
    time: str
    camera: str
    condition: str
    """``covered``, ``defocused`` or ``moved``."""
    state: TamperState
    """The camera's state after the change."""
    shift_percent: NotRequired[float]
    """With ``rotation``, when a shift was measured."""
    rotation: NotRequired[float]
    zones: NotRequired[str]
    """Comma-separated names of the privacy zones showing content, if any."""


class PrivacyEventPayload(TypedDict):
    """``P/events`` of kind ``privacy_mask_missing`` or ``privacy_mask_restored``."""

    event: str
    time: str
    camera: str
    state: TamperState
    shift_percent: NotRequired[float]
    rotation: NotRequired[float]
    zones: NotRequired[str]
    """Comma-separated names of the privacy zones showing content (when missing)."""


class ForwardSuspensionEventPayload(TypedDict):
    """``P/events`` of kind ``forward_suspended`` (a privacy mask went missing: nothing goes to
    the centre, recording goes on) or ``forward_resumed``."""

    event: str
    time: str
    camera: str
    session: str | None
    """The forward session held back, or None when none is open."""
    reason: NotRequired[str]
    """Why (``forward_suspended`` only)."""


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


def tamper_document(tamper: TamperStatus) -> TamperPayload:
    """``tamper`` as status and MQTT show it."""
    shift = tamper.shift
    return {
        "state": tamper.state,
        "since": _iso(tamper.since),
        "conditions": list(tamper.conditions),
        "shift": None
        if shift is None
        else {
            "dx_px": round(shift.dx, 1),
            "dy_px": round(shift.dy, 1),
            "percent": round(shift.percent, 2),
            "rotation_deg": round(shift.rotation, 2),
        },
        "privacy": tamper.privacy,
        "unmasked": list(tamper.unmasked),
        "error": tamper.error,
        "keyframes": tamper.keyframes,
        "analysed_at": _iso(tamper.analysed_at),
    }


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
        "forward_suspended": forward.suspended,
        "error": error,
        "compliance": compliance_document(status.compliance),
        "tamper": tamper_document(status.tamper),
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
    "forward_suspended",
    "error",
)


def significant(payload: CameraPayload) -> tuple[Any, ...]:
    """The fields whose change is published at once (the rest waits for the interval): a
    tamper state or a mask going missing is, the shift measured on each keyframe is not."""
    verdicts = tuple((rule, entry["ok"]) for rule, entry in payload["compliance"].items())
    tamper = payload["tamper"]
    integrity = (tamper["state"], tuple(tamper["conditions"]), tamper["privacy"], tamper["error"])
    return (*(payload.get(key) for key in _SIGNIFICANT), verdicts, integrity)


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
