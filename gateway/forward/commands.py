"""Forward commands, from any channel (the local control socket, MQTT): one model, one
validation, one result shape.

Every field of a command comes from a client and is untrusted. Validation is total: whatever the
input (a 3 MB string, ``10**400``, 200 000 nested brackets, invalid UTF-8), the only error that
leaves :func:`parse_command` or :func:`decode_mqtt_command` is a :class:`CommandError`, whose
reason is at most :data:`MAX_REASON` characters, quotes no more than a few dozen characters of
the input, and is safe to log, journal and publish. Free-text fields are checked by
:func:`gateway.text.check_text`. Rejections are logged at most once a minute (with a count).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from gateway.config.fields import Duration
from gateway.ratelimit import RateLimitedLog
from gateway.text import check_text, clip, display, excerpt

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

MAX_MQTT_PAYLOAD = 16 * 1024
"""Bytes of an MQTT command payload, checked before parsing. A real command is under 300 bytes
(action, duration, a 500-character reason at most and a 200-character name); 16 KiB leaves room
for any of them in any encoding, and bounds what a hostile one costs to parse."""

MAX_REASON = 300
"""Characters of a rejection reason: enough for two or three problems with their field names,
small enough that the ``command_rejected`` event and the log line stay one short line."""

_SHOWN_PROBLEMS = 3
"""Problems listed in one rejection; the others are counted."""

NOT_AN_OBJECT = "the payload is not a JSON object"


class CommandError(Exception):
    """A command that cannot be carried out; ``reason`` says why, for the requester (short,
    and safe to show anywhere)."""

    def __init__(self, reason: str) -> None:
        self.reason = clip(display(reason), MAX_REASON)
        super().__init__(self.reason)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


CameraId = Annotated[
    str, StringConstraints(min_length=1, max_length=32), AfterValidator(check_text)
]
"""A camera id as a client sends it; whether such a camera exists is the manager's answer."""
RequestedBy = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(check_text),
    AfterValidator(_not_blank),
]
"""Who asks, journalled with the session: a name, an operator number; one line, 200 characters."""
Reason = Annotated[str, StringConstraints(max_length=500), AfterValidator(check_text)]
"""The intervention a session is for (a call number, a short description): one line."""
Origin = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_text)]


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
        return _validate(_decode(camera_id, payload, origin=origin))
    except CommandError as exc:
        _log_rejection(exc, origin)
        raise
    except Exception:
        _REJECTIONS.log("MQTT command for a camera could not be decoded", exc_info=True)
        raise CommandError("the command could not be checked (internal error, logged)") from None


def _decode(camera_id: str, payload: bytes, *, origin: str) -> dict[str, Any]:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise CommandError(NOT_AN_OBJECT)
    if len(payload) > MAX_MQTT_PAYLOAD:
        raise CommandError(
            f"the payload is {len(payload)} bytes; a command is at most {MAX_MQTT_PAYLOAD}"
        )
    try:
        data = json.loads(bytes(payload))
    except RecursionError:
        raise CommandError(f"{NOT_AN_OBJECT}: nested too deeply") from None
    except ValueError:  # bad JSON, bad UTF-8, an integer of more than 4300 digits
        raise CommandError(NOT_AN_OBJECT) from None
    if not isinstance(data, dict):
        raise CommandError(NOT_AN_OBJECT)
    fields: dict[str, Any] = {**data, "camera": camera_id, "origin": origin}
    fields.setdefault("requested_by", "mqtt")
    return fields


def _validate(data: object) -> ForwardCommand:
    if not isinstance(data, Mapping):
        raise CommandError("a command is a JSON object")
    try:
        return ForwardCommand.model_validate(dict(data))
    except ValidationError as exc:
        raise CommandError(_describe(exc.errors(include_url=False, include_input=False))) from None
    except RecursionError:
        raise CommandError("the command is nested too deeply") from None
    except Exception:
        # A bug in a validator must cost one refused command, not the channel's thread.
        _REJECTIONS.log("forward command could not be checked", exc_info=True)
        raise CommandError("the command could not be checked (internal error, logged)") from None


def _describe(errors: list[ErrorDetails]) -> str:
    problems = []
    for error in errors[:_SHOWN_PROBLEMS]:
        where = ".".join(_name(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        else:
            message = clip(error["msg"].removeprefix("Value error, "), 160)
        problems.append(f"{where}: {message}" if where else message)
    if len(errors) > _SHOWN_PROBLEMS:
        more = len(errors) - _SHOWN_PROBLEMS
        problems.append(f"and {more} more problem{'s' if more > 1 else ''}")
    return "; ".join(problems)


def _name(part: str | int) -> str:
    """A field name as sent: shown as is when it looks like one, quoted and cut otherwise."""
    if isinstance(part, str) and part.isascii() and part.isidentifier() and len(part) <= 32:
        return part
    return excerpt(part)


def _log_rejection(error: CommandError, origin: str) -> None:
    _REJECTIONS.log("forward command rejected (%s): %s", clip(display(origin), 120), error.reason)


@dataclass(frozen=True, slots=True)
class ForwardResult:
    ok: bool
    message: str
    session: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "session": self.session}
