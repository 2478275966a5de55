"""Forward commands, from any channel (the local control socket, MQTT): one model, one
validation, one result shape.

Validation is total, as for every command (:mod:`gateway.commands`): the only error that leaves
:func:`parse_command` or :func:`decode_mqtt_command` is a :class:`CommandError`, with a short
reason safe to log, journal and publish. Rejections are logged at most once a minute (with a
count).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from gateway.commands import (
    MAX_MQTT_PAYLOAD,
    MAX_REASON,
    CameraId,
    CommandError,
    Origin,
    Reason,
    RequestedBy,
    decode_payload,
    validate,
)
from gateway.config.fields import Duration
from gateway.ratelimit import RateLimitedLog
from gateway.text import clip, display

__all__ = [
    "MAX_MQTT_PAYLOAD",
    "MAX_REASON",
    "CommandError",
    "ForwardCommand",
    "ForwardResult",
    "decode_mqtt_command",
    "parse_command",
]

log = logging.getLogger(__name__)


class ForwardCommand(BaseModel):
    """``start`` (needs ``duration`` and ``reason``) or ``stop`` one camera's forward."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["start", "stop"]
    camera: CameraId
    duration: Duration | None = None
    reason: Reason | None = None
    requested_by: RequestedBy
    origin: Origin = "unknown"
    """Which channel the command came through (set by the channel, not by the requester)."""

    @model_validator(mode="after")
    def _start_needs_duration_and_reason(self) -> ForwardCommand:
        if self.action == "start":
            if self.duration is None or self.duration <= 0:
                raise ValueError("a start needs a duration, e.g. 15m")
            if not (self.reason or "").strip():
                raise ValueError("a start needs a reason: the intervention it is for")
        return self


_REJECTIONS = RateLimitedLog(log, "%d more forward commands rejected in the last minute")


def parse_command(data: Mapping[str, Any]) -> ForwardCommand:
    """Validate a command; raise :class:`CommandError` naming what is wrong, and nothing else."""
    try:
        return _validate(data)
    except CommandError as exc:
        origin = data.get("origin") if isinstance(data, Mapping) else None
        _log_rejection(exc, origin if isinstance(origin, str) else "unknown")
        raise


def decode_mqtt_command(camera_id: str, payload: bytes, *, origin: str) -> ForwardCommand:
    """Turn an MQTT command payload for ``camera_id`` (from its topic) into a validated command.

    The size is checked before parsing (:data:`MAX_MQTT_PAYLOAD`); the payload must be a JSON
    object; ``requested_by`` defaults to ``mqtt``; ``camera`` and ``origin`` are set from the
    topic and the channel, whatever the payload says. Raise :class:`CommandError`, and nothing
    else, for anything that is not a valid command.
    """
    try:
        return _validate(decode_payload(camera_id, payload, origin=origin))
    except CommandError as exc:
        _log_rejection(exc, origin)
        raise
    except Exception:
        _REJECTIONS.log("MQTT command for a camera could not be decoded", exc_info=True)
        raise CommandError("the command could not be checked (internal error, logged)") from None


def _validate(data: object) -> ForwardCommand:
    return validate(ForwardCommand, data, failures=_REJECTIONS)


def _log_rejection(error: CommandError, origin: str) -> None:
    _REJECTIONS.log("forward command rejected (%s): %s", clip(display(origin), 120), error.reason)


@dataclass(frozen=True, slots=True)
class ForwardResult:
    ok: bool
    message: str
    session: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "session": self.session}
