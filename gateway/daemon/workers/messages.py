"""What a camera worker and its supervisor say to each other.

Upward messages (worker → supervisor) are JSON, validated against the models below: a worker
runs C code we do not own over a camera's bytes, so the supervisor takes nothing it says on
trust. Types are checked, numbers bounded, and text cleaned of control characters and capped,
before anything reaches the status, the logs, MQTT or the index. A message that does not
validate is a protocol error, and the worker is restarted.

Downward messages (supervisor → worker) are pickled dataclasses: the worker trusts its
supervisor, and they carry the camera's configuration and the uplink target with their secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from gateway.config.analysis import AnalysisConfig
from gateway.forward.target import UplinkTarget
from gateway.telemetry.events import WorkerEventKind
from gateway.text import clip, display

__all__ = [
    "UP_EVENTS",
    "CameraReport",
    "Event",
    "ForwardReport",
    "ForwardStart",
    "ForwardStop",
    "ForwardStopped",
    "Progress",
    "RecorderReport",
    "Relearn",
    "SegmentAborted",
    "SegmentFinished",
    "SegmentOpened",
    "SnapshotFailed",
    "SnapshotPart",
    "Status",
    "Stop",
    "Stopped",
    "StorageState",
    "TakeSnapshot",
    "TamperChanged",
    "TamperReport",
    "UpMessage",
    "WorkerSettings",
    "decode_up",
    "encode_up",
]

MAX_TEXT = 300
"""Longest text a worker may put in a status field; longer is cut."""
UP_EVENTS: frozenset[str] = frozenset(get_args(WorkerEventKind))
"""Events a worker may raise; the supervisor raises the others itself."""


def _clean(text: str) -> str:
    """A worker's text may quote what a camera sent: escaped (no control character reaches a
    log or a terminal) and capped."""
    return clip(display(text), MAX_TEXT)


_Text = Annotated[str, AfterValidator(_clean)]
_Count = Annotated[int, Field(ge=0, le=2**62)]
_Seconds = Annotated[float, Field(ge=0.0, le=1e12, allow_inf_nan=False)]
_Time = Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
_Size = Annotated[int, Field(ge=0, le=65536)]
_Path = Annotated[str, Field(min_length=1, max_length=1024)]


class _Up(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )


class CameraReport(_Up):
    """The camera's own fields of :class:`~gateway.telemetry.state.CameraStatus`, as the worker sees
    them; counters count from the worker's start."""

    state: Literal["starting", "online", "offline", "error", "disabled"]
    since: _Time
    error: _Text | None = None
    sessions: _Count = 0
    frames: _Count = 0
    bytes_received: _Count = 0
    last_frame: _Time | None = None
    """``time.monotonic()`` of the last video frame (one clock for every process)."""
    codec: Annotated[str, Field(max_length=32)] | None = None
    width: _Size = 0
    height: _Size = 0
    fps: Annotated[float, Field(ge=0.0, le=10000.0)] = 0.0
    bitrate: Annotated[float, Field(ge=0.0, le=1e12)] = 0.0
    timestamp_repairs: _Count = 0


class RecorderReport(_Up):
    recording: bool = False
    error: _Text | None = None
    segments: _Count = 0
    bytes_written: _Count = 0
    current_segment: _Text | None = None
    skipped_packets: _Count = 0
    no_keyframe_cuts: _Count = 0
    writing_bytes: _Count = 0
    """Size of the segment being written (for retention's accounting)."""
    stuck_for: _Seconds = 0.0
    """Seconds the recorder has been inside one call (a write or sync the disk does not
    answer)."""


class ForwardReport(_Up):
    state: Literal["off", "connecting", "live", "error", "suspended"] = "off"
    error: _Text | None = None
    since: _Time = 0.0
    bytes_sent: _Count = 0
    dropped_frames: _Count = 0
    reconnects: _Count = 0


_Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_Condition = Literal["covered", "defocused", "moved", "privacy_mask_missing"]
_ZoneName = Annotated[str, Field(max_length=32)]


class ShiftReport(_Up):
    dx: Annotated[float, Field(ge=-1e5, le=1e5, allow_inf_nan=False)]
    dy: Annotated[float, Field(ge=-1e5, le=1e5, allow_inf_nan=False)]
    percent: Annotated[float, Field(ge=0.0, le=1e5, allow_inf_nan=False)]
    rotation: Annotated[float, Field(ge=-360.0, le=360.0, allow_inf_nan=False)]


class TamperReport(_Up):
    """The camera's integrity, as its watch last judged it."""

    state: Literal["off", "unknown", "learning", "ok", "covered", "defocused", "moved"] = "off"
    since: _Time | None = None
    conditions: tuple[_Condition, ...] = Field(default=(), max_length=4)
    shift: ShiftReport | None = None
    privacy: Literal["none", "unknown", "ok", "missing"] = "none"
    unmasked: tuple[_ZoneName, ...] = Field(default=(), max_length=16)
    error: _Text | None = None
    keyframes: _Count = 0
    analysed_at: _Time | None = None


class Progress(_Up):
    """How the worker's pull is doing: what the supervisor's liveness rules look at."""

    opening_for: _Seconds = 0.0
    """Seconds inside the current connection attempt (0: not connecting)."""
    connected_for: _Seconds = 0.0
    """Seconds since the current camera session opened (0: no session)."""
    picture_age: _Seconds | None = None
    """Seconds since the last video frame of this session (None: none yet)."""
    attempted: bool = False
    """The first connection attempt is over, whatever its outcome (for readiness)."""
    threads_alive: bool = True


class Status(_Up):
    kind: Literal["status"] = "status"
    camera: CameraReport
    recorder: RecorderReport
    forward: ForwardReport
    tamper: TamperReport = Field(default_factory=TamperReport)
    dropped: dict[Annotated[str, Field(max_length=32)], _Count] = Field(
        default_factory=dict, max_length=8
    )
    """Video frames dropped per consumer because it fell behind."""
    progress: Progress


_EventValue = _Text | int | float | bool | None


class Event(_Up):
    kind: Literal["event"] = "event"
    event: WorkerEventKind
    fields: dict[Annotated[str, Field(max_length=32)], _EventValue] = Field(
        default_factory=dict, max_length=8
    )


class SegmentOpened(_Up):
    kind: Literal["segment_opened"] = "segment_opened"
    path: _Path
    expected: _Count
    """Bytes a full segment took last time: room retention makes at once."""


class SegmentFinished(_Up):
    kind: Literal["segment_finished"] = "segment_finished"
    path: _Path
    flags: tuple[Literal["no_keyframe"], ...] = ()
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """Hash of the file as written; taken only if ``bytes`` is the file's size."""
    bytes: _Count = 0
    clock_synced: bool | None = None
    ended: Literal["cut", "camera", "clock_step", "no_keyframe", "stopping"] = "cut"


class SegmentAborted(_Up):
    """Writing failed: what the ``.part`` holds is to be salvaged by the supervisor."""

    kind: Literal["segment_aborted"] = "segment_aborted"
    path: _Path


class ForwardStopped(_Up):
    kind: Literal["forward_stopped"] = "forward_stopped"
    session: Annotated[str, Field(max_length=64)]
    bytes_sent: _Count
    dropped_frames: _Count
    reconnects: _Count


class TamperChanged(_Up):
    """A condition of the camera's picture raised or cleared, with the hashes of the snapshots
    (:mod:`gateway.watch.snapshot`) of the keyframes before and after the change."""

    kind: Literal["tamper_changed"] = "tamper_changed"
    condition: _Condition
    active: bool
    at: _Time
    """Wall time of the keyframe that decided it."""
    state: Literal["learning", "ok", "covered", "defocused", "moved"]
    shift: ShiftReport | None = None
    unmasked: tuple[_ZoneName, ...] = Field(default=(), max_length=16)
    structure: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    sharpness_ratio: Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)] | None = None
    before_sha256: _Sha256 | None = None
    before_at: _Time | None = None
    after_sha256: _Sha256 | None = None
    after_at: _Time | None = None


SNAPSHOT_PART = 48 * 1024
"""Bytes of JPEG per :class:`SnapshotPart` message (base64 keeps it under the channel's cap)."""
MAX_SNAPSHOT = 4 * 1024 * 1024


class SnapshotPart(_Up):
    """One piece of a snapshot's JPEG (a channel message is at most 64 KiB)."""

    kind: Literal["snapshot_part"] = "snapshot_part"
    request: Annotated[str, Field(max_length=64)]
    index: Annotated[int, Field(ge=0, le=MAX_SNAPSHOT // SNAPSHOT_PART)]
    last: bool
    data: Annotated[bytes, Field(max_length=SNAPSHOT_PART)]
    """Base64 in the JSON (pydantic's ``ser_json_bytes``/``val_json_bytes``)."""
    width: _Size = 0
    height: _Size = 0
    taken_at: _Time = 0.0


class SnapshotFailed(_Up):
    kind: Literal["snapshot_failed"] = "snapshot_failed"
    request: Annotated[str, Field(max_length=64)]
    reason: _Text


class Stopped(_Up):
    """Last message of a worker asked to stop: every segment is finalised."""

    kind: Literal["stopped"] = "stopped"


UpMessage = Annotated[
    Status
    | Event
    | SegmentOpened
    | SegmentFinished
    | SegmentAborted
    | ForwardStopped
    | TamperChanged
    | SnapshotPart
    | SnapshotFailed
    | Stopped,
    Field(discriminator="kind"),
]
_UP: TypeAdapter[Any] = TypeAdapter(UpMessage)


def encode_up(message: _Up) -> bytes:
    return message.model_dump_json().encode()


def decode_up(data: bytes) -> Any:
    """One upward message; raises :class:`pydantic.ValidationError` (a ValueError) if invalid."""
    return _UP.validate_json(data)


# -- downward -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs besides its camera's configuration."""

    site_id: str
    storage_root: Path
    segment_duration: float
    segment_max_bytes: int
    """A segment is cut at the next keyframe past this size, and cut outright (flagged
    ``no_keyframe``) past twice this size without one."""
    memory_max: int
    """Bytes of data memory the worker may map (RLIMIT_DATA); the supervisor also kills a
    worker whose resident memory goes past it."""
    max_bitrate: float
    """Bits per second over which the camera's session is ended as a flood (0: none)."""
    forwarded: bool
    """The camera may be forwarded (an uplink exists and its forward is not off): its stream
    then keeps the GOP in progress, to replay when a session starts."""
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    """Timings and thresholds of the integrity watch (the camera's own part is in its
    configuration)."""


@dataclass(frozen=True, slots=True)
class StorageState:
    """Whether new segments may be opened now, and why not."""

    error: str | None
    segment_max_bytes: int


@dataclass(frozen=True, slots=True)
class ForwardStart:
    session: str
    target: UplinkTarget
    queue: float
    """Seconds of video the forwarder may hold before dropping whole GOPs."""


@dataclass(frozen=True, slots=True)
class ForwardStop:
    session: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Finish: stop pulling, finalise the open segment, say :class:`Stopped`, exit."""


@dataclass(frozen=True, slots=True)
class Relearn:
    """Learn the camera's view and sharpness again (after an intentional re-aim)."""


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Answer with the last keyframe as a masked JPEG (:class:`SnapshotPart` messages)."""

    request: str
