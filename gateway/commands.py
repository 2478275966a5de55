"""What every command from an untrusted channel (the local control socket, MQTT) shares: its
error, the fields a requester fills in, the decoding of an MQTT payload and the validation.

Every field of a command comes from a client and is untrusted. Validation is total: whatever the
input (a 3 MB string, ``10**400``, 200 000 nested brackets, invalid UTF-8), the only error that
leaves :func:`decode_payload` or :func:`validate` is a :class:`CommandError`, whose reason is at
most :data:`MAX_REASON` characters, quotes no more than a few dozen characters of the input, and
is safe to log, journal and publish. Free-text fields are checked by
:func:`gateway.text.check_text`. The kinds of command are :mod:`gateway.forward.commands` and
:mod:`gateway.watch.commands`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from gateway.ratelimit import RateLimitedLog
from gateway.text import check_text, clip, display, excerpt

__all__ = [
    "MAX_MQTT_PAYLOAD",
    "MAX_REASON",
    "NOT_AN_OBJECT",
    "CameraId",
    "CommandError",
    "Origin",
    "Reason",
    "RequestedBy",
    "decode_payload",
    "describe",
    "not_blank",
    "validate",
]

MAX_MQTT_PAYLOAD = 16 * 1024
"""Bytes of an MQTT command payload, checked before parsing. A real command is under 300 bytes
(a 500-character reason at most, a 200-character name, an action and a duration); 16 KiB leaves
room for any of them in any encoding, and bounds what a hostile one costs to parse."""

MAX_REASON = 300
"""Characters of a rejection reason: enough for two or three problems with their field names,
small enough that the ``command_rejected`` event and the log line stay one short line."""

_SHOWN_PROBLEMS = 3
"""Problems listed in one rejection; the others are counted."""

NOT_AN_OBJECT = "the payload is not a JSON object"

Command = TypeVar("Command", bound=BaseModel)


class CommandError(Exception):
    """A command that cannot be carried out; ``reason`` says why, for the requester (short,
    and safe to show anywhere)."""

    def __init__(self, reason: str) -> None:
        self.reason = clip(display(reason), MAX_REASON)
        super().__init__(self.reason)


def not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


CameraId = Annotated[
    str, StringConstraints(min_length=1, max_length=32), AfterValidator(check_text)
]
"""A camera id as a client sends it; whether such a camera exists is the daemon's answer."""
RequestedBy = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(check_text),
    AfterValidator(not_blank),
]
"""Who asks, journalled with what it asks: a name, an operator number; one line, 200 characters."""
Reason = Annotated[str, StringConstraints(max_length=500), AfterValidator(check_text)]
"""What a command is for (a call number, a short description): one line."""
Origin = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_text)]
"""Which channel a command came through (set by the channel, not by the requester)."""


def decode_payload(camera_id: str, payload: bytes, *, origin: str) -> dict[str, Any]:
    """The fields of an MQTT command payload for ``camera_id`` (from its topic), not yet
    validated.

    The size is checked before parsing (:data:`MAX_MQTT_PAYLOAD`); the payload must be a JSON
    object; ``requested_by`` defaults to ``mqtt``; ``camera`` and ``origin`` are set from the
    topic and the channel, whatever the payload says.
    """
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


def validate(model: type[Command], data: object, *, failures: RateLimitedLog) -> Command:
    """``data`` as a ``model``; :class:`CommandError` naming what is wrong, and nothing else.
    A bug in a validator is logged on ``failures``."""
    if not isinstance(data, Mapping):
        raise CommandError("a command is a JSON object")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise CommandError(describe(exc.errors(include_url=False, include_input=False))) from None
    except RecursionError:
        raise CommandError("the command is nested too deeply") from None
    except Exception:
        # A bug in a validator must cost one refused command, not the channel's thread.
        failures.log("%s could not be checked", model.__name__, exc_info=True)
        raise CommandError("the command could not be checked (internal error, logged)") from None


def describe(errors: list[ErrorDetails]) -> str:
    """Pydantic's errors as one short line: the first few, each with its field, then a count."""
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
