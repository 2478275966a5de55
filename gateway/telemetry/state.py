"""Live state of the daemon, held in one place: written by workers, read by status and metrics.

In a camera's worker process, its threads only assign fields and bump counters (cheap, no locks
on the packet path). The supervisor keeps a mirror of each camera's status, updated from the
worker's reports and carried across worker restarts (counters never go back), which status
output, MQTT and metrics read; they never sit in the packet path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gateway.clock import wall_at
from gateway.config.camera import ForwardMode

if TYPE_CHECKING:
    from gateway.media.packet import Packet, SessionInfo
    from gateway.telemetry.compliance import Rule, RuleStatus

__all__ = [
    "STALLED_AFTER",
    "CameraState",
    "CameraStatus",
    "ForwardState",
    "ForwardStatus",
    "PrivacyState",
    "RecorderStatus",
    "Shift",
    "StorageUsage",
    "TamperState",
    "TamperStatus",
    "WorkerStatus",
    "camera_state",
]

CameraState = Literal["starting", "online", "offline", "error", "disabled"]
"""``error``: the camera refuses our credentials; ``disabled``: neither recorded nor forwarded."""
ForwardState = Literal["off", "connecting", "live", "error", "suspended"]
"""``suspended``: a session is open but no picture goes, see :attr:`ForwardStatus.suspended`."""
TamperState = Literal["off", "unknown", "learning", "ok", "covered", "defocused", "moved"]
"""The camera's picture integrity: ``off`` when not analysed, ``unknown`` before the first
analysed keyframe (or when its keyframes cannot be analysed: see ``error``); else the state of
:class:`gateway.analysis.CameraMonitor`."""
PrivacyState = Literal["none", "unknown", "ok", "missing"]
"""The camera's privacy masks: ``none`` when it has no privacy zone."""
_RATE_WINDOW = 2.0
STALLED_AFTER = 2.0
"""Seconds without a frame after which a connected camera counts as ``stalled``."""


@dataclass(slots=True)
class RecorderStatus:
    enabled: bool = True
    recording: bool = False
    error: str | None = None
    segments: int = 0
    bytes_written: int = 0
    current_segment: str | None = None
    skipped_packets: int = 0
    """Packets not recorded while storage was failing, or while waiting for a keyframe."""
    no_keyframe_cuts: int = 0
    """Segments cut at their size or time bound because no keyframe came to cut them at."""


@dataclass(slots=True)
class ForwardStatus:
    """The camera's forward to the centre: the one place status output and metrics read."""

    mode: ForwardMode = "off"
    state: ForwardState = "off"
    error: str | None = None
    since: float = field(default_factory=time.time)
    target: str | None = None
    """Display URL of the centre's endpoint for this camera (never with a password)."""
    session_id: str | None = None
    requested_by: str | None = None
    reason: str | None = None
    started: float | None = None
    ends: float | None = None
    """Wall time an on-demand session stops by itself (None: continuous or off)."""
    bytes_sent: int = 0
    """Bytes sent to the centre, all sessions since the daemon started."""
    dropped_frames: int = 0
    """Frames dropped because the uplink was slower than the camera, all sessions."""
    reconnects: int = 0
    sessions: int = 0
    suspended: str | None = None
    """Why no picture goes to the centre although a session is open (a privacy mask is
    missing), or None."""


@dataclass(frozen=True, slots=True)
class Shift:
    """How far the scene moved from the learned reference, as last measured."""

    dx: float
    """Pixels of the camera's picture, to the right > 0."""
    dy: float
    """Pixels, downwards > 0."""
    percent: float
    """Length of the shift in percent of the picture's width."""
    rotation: float
    """Degrees, counter-clockwise > 0."""


@dataclass(slots=True)
class TamperStatus:
    """Whether the camera still films what it should (see :mod:`gateway.watch`)."""

    state: TamperState = "off"
    since: float | None = None
    """Wall time ``state`` was entered."""
    conditions: tuple[str, ...] = ()
    """Every condition raised now (``covered``, ``defocused``, ``moved``,
    ``privacy_mask_missing``)."""
    shift: Shift | None = None
    """Measured on the last keyframe whose scene was recognised."""
    privacy: PrivacyState = "none"
    unmasked: tuple[str, ...] = ()
    """Privacy zones showing content on the last analysed keyframe."""
    error: str | None = None
    """Why keyframes cannot be analysed (a codec other than H.264/H.265, a damaged keyframe)."""
    keyframes: int = 0
    """Keyframes analysed, all workers since the daemon started."""
    analysed_at: float | None = None
    """Wall time of the last analysed keyframe."""


@dataclass(slots=True)
class WorkerStatus:
    """The camera's worker process, as the supervisor sees it."""

    pid: int | None = None
    started: float | None = None
    """Wall time the current worker started."""
    restarts: int = 0
    """Workers restarted after a failure (not counting planned stops)."""
    last_restart: str | None = None
    """Why the last worker was restarted."""
    resident_bytes: int = 0
    cpu: float = 0.0
    """Share of one core the worker used over the last second."""


@dataclass(slots=True)
class CameraStatus:
    """Everything known about one camera. One instance per camera for the daemon's lifetime."""

    id: str
    url: str
    """Display URL, never with a password."""
    state: CameraState = "starting"
    since: float = field(default_factory=time.time)
    error: str | None = None
    sessions: int = 0
    reconnects: int = 0
    frames: int = 0
    bytes_received: int = 0
    last_frame_monotonic: float | None = None
    codec: str | None = None
    width: int = 0
    height: int = 0
    fps: float = 0.0
    bitrate: float = 0.0
    """bits per second, all tracks."""
    timestamp_repairs: int = 0
    audio: bool = False
    """The camera's sound is kept (``cameras[].audio``)."""
    recorder: RecorderStatus = field(default_factory=RecorderStatus)
    forward: ForwardStatus = field(default_factory=ForwardStatus)
    worker: WorkerStatus = field(default_factory=WorkerStatus)
    tamper: TamperStatus = field(default_factory=TamperStatus)
    dropped_frames: dict[str, int] = field(default_factory=dict)
    """Video frames dropped per consumer (recorder, forwarder) because it fell behind."""
    compliance: dict[Rule, RuleStatus] = field(default_factory=dict)
    """The legal minima, rule by rule (see :mod:`gateway.telemetry.compliance`); judged by
    the supervisor, empty in a worker."""
    rate_window: float = 0.0
    """``time.monotonic()`` when ``fps`` and ``bitrate`` were last computed."""
    _window_start: float = 0.0
    _window_frames: int = 0
    _window_bytes: int = 0

    @property
    def last_frame(self) -> float | None:
        """Wall time of the last video frame."""
        if self.last_frame_monotonic is None:
            return None
        return wall_at(self.last_frame_monotonic)

    def set_state(self, state: CameraState, error: str | None = None) -> bool:
        """Change state; True if it changed."""
        changed = state != self.state
        if changed:
            self.state = state
            self.since = time.time()
        self.error = error
        return changed

    def session_started(self, info: SessionInfo) -> None:
        self.sessions += 1
        if self.sessions > 1:
            self.reconnects += 1
        video = info.video
        if video is not None:
            self.codec, self.width, self.height = video.codec, video.width, video.height
        self._window_start = time.monotonic()
        self._window_frames = self._window_bytes = 0

    def packet(self, packet: Packet) -> None:
        size = len(packet.data)
        self.bytes_received += size
        self._window_bytes += size
        if packet.is_video and not packet.continuation:
            self.frames += 1
            self._window_frames += 1
            self.last_frame_monotonic = packet.received
        elapsed = packet.received - self._window_start
        if elapsed >= _RATE_WINDOW:
            self.fps = self._window_frames / elapsed
            self.bitrate = self._window_bytes * 8 / elapsed
            self.rate_window = packet.received
            self._window_start = packet.received
            self._window_frames = self._window_bytes = 0

    def session_ended(self) -> None:
        self.fps = 0.0
        self.bitrate = 0.0


def camera_state(status: CameraStatus, now: float) -> str:
    """What a camera shows everywhere (status, MQTT, metrics): ``online``, ``stalled``
    (connected, no frame for :data:`STALLED_AFTER`), ``offline``, ``error`` or ``disabled``."""
    if status.state == "online":
        last = status.last_frame
        if last is not None and now - last > STALLED_AFTER:
            return "stalled"
        return "online"
    if status.state in ("error", "disabled"):
        return status.state
    return "offline"


@dataclass(frozen=True, slots=True)
class StorageUsage:
    """The storage area as status, metrics and MQTT report it."""

    used: int
    """Finished segments plus segments being written."""
    quota: int
    free: int | None
    segments: int
    oldest: float | None
    evictions: dict[str, int]
    error: str | None
    quarantined: int = 0
    """Files moved to the quarantine since the daemon started."""
    seal_error: str | None = None
    """Why segments are not being sealed (the signing key is unusable...), or None."""
