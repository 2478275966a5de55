"""Snapshot and relearn commands, from any channel (the local control socket, MQTT): their
models, their validation, and a snapshot's result as every channel reports it.

A snapshot shows people (only the privacy zones are blacked out): like a forward, it is asked
for by someone, for a reason, and journalled. A relearn makes the watch take the camera's
current view as the right one, which would also hide a camera turned away on purpose: it too
needs a reason. A short one will do (a call number, "re-aimed by the installer"); blank will
not. Validation is :mod:`gateway.commands`': the only error is a :class:`CommandError` with a
short reason safe to log, journal and publish; rejections are logged at most once a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from gateway.clock import utc_iso
from gateway.commands import (
    CameraId,
    CommandError,
    Origin,
    Reason,
    RequestedBy,
    decode_payload,
    validate,
)
from gateway.ratelimit import RateLimitedLog
from gateway.text import clip, display

if TYPE_CHECKING:
    from gateway.watch.snapshot import Snapshot

__all__ = [
    "RelearnCommand",
    "SnapshotCommand",
    "SnapshotResult",
    "WatchCommand",
    "decode_mqtt_command",
    "parse_command",
]

log = logging.getLogger(__name__)

Command = TypeVar("Command", bound="WatchCommand")


class WatchCommand(BaseModel):
    """A request about one camera's integrity watch: who asks, why, through which channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str] = "command"
    """What the command is called in its refusals, the log and the events."""
    needs: ClassVar[str] = "a reason"
    """What the refusal of a command without a reason says it needs."""

    camera: CameraId
    reason: Reason = ""
    requested_by: RequestedBy
    origin: Origin = "unknown"
    """Which channel the command came through (set by the channel, not by the requester)."""

    @model_validator(mode="after")
    def _needs_a_reason(self) -> WatchCommand:
        if not self.reason.strip():
            raise ValueError(f"a {self.name} needs {self.needs}")
        return self


class SnapshotCommand(WatchCommand):
    """The camera's last keyframe as a JPEG, privacy zones blacked out."""

    name: ClassVar[str] = "snapshot"
    needs: ClassVar[str] = "a reason: it shows people (a call number is enough)"


class RelearnCommand(WatchCommand):
    """Learn the camera's view again, after an intentional re-aim."""

    name: ClassVar[str] = "relearn"
    needs: ClassVar[str] = "a reason: the re-aim or the work it follows"


_REJECTIONS = RateLimitedLog(
    log, "%d more snapshot or relearn commands rejected in the last minute"
)


def parse_command(model: type[Command], data: Mapping[str, Any]) -> Command:
    """Validate a command; raise :class:`CommandError` naming what is wrong, and nothing else."""
    try:
        return validate(model, data, failures=_REJECTIONS)
    except CommandError as exc:
        origin = data.get("origin") if isinstance(data, Mapping) else None
        _log_rejection(model, exc, origin if isinstance(origin, str) else "unknown")
        raise


def decode_mqtt_command(
    model: type[Command], camera_id: str, payload: bytes, *, origin: str
) -> Command:
    """An MQTT command payload for ``camera_id`` (from its topic) as a validated command; see
    :func:`gateway.commands.decode_payload`. Raise :class:`CommandError`, and nothing else."""
    try:
        return validate(
            model, decode_payload(camera_id, payload, origin=origin), failures=_REJECTIONS
        )
    except CommandError as exc:
        _log_rejection(model, exc, origin)
        raise
    except Exception:
        _REJECTIONS.log("MQTT %s command could not be decoded", model.name, exc_info=True)
        raise CommandError("the command could not be checked (internal error, logged)") from None


def _log_rejection(model: type[WatchCommand], error: CommandError, origin: str) -> None:
    _REJECTIONS.log(
        "%s command rejected (%s): %s", model.name, clip(display(origin), 120), error.reason
    )


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """What a snapshot request gets, whatever the channel: the JPEG (None when there is none)
    and what is said about it."""

    ok: bool
    message: str
    jpeg: bytes | None = None
    width: int | None = None
    height: int | None = None
    keyframe_at: str | None = None
    """When the keyframe shown was received (ISO, UTC)."""
    sha256: str | None = None
    requested_by: str | None = None

    @classmethod
    def taken(cls, snapshot: Snapshot, command: SnapshotCommand) -> SnapshotResult:
        return cls(
            ok=True,
            message="snapshot taken",
            jpeg=snapshot.jpeg,
            width=snapshot.width,
            height=snapshot.height,
            keyframe_at=utc_iso(snapshot.taken_at),
            sha256=snapshot.sha256,
            requested_by=command.requested_by,
        )

    @classmethod
    def refused(cls, message: str, command: SnapshotCommand | None = None) -> SnapshotResult:
        return cls(
            ok=False,
            message=message,
            requested_by=None if command is None else command.requested_by,
        )

    def as_dict(self) -> dict[str, Any]:
        """The result without the picture: what ``P/cameras/<id>/snapshot/result`` says and
        what the journal and the event are made of."""
        return {
            "ok": self.ok,
            "message": self.message,
            "sha256": self.sha256,
            "bytes": None if self.jpeg is None else len(self.jpeg),
            "width": self.width,
            "height": self.height,
            "keyframe_at": self.keyframe_at,
            "requested_by": self.requested_by,
        }
