"""Forward commands, from any channel (the local control socket now, MQTT later): one model,
one validation, one result shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.config.model import Duration

__all__ = ["CommandError", "ForwardCommand", "ForwardResult", "parse_command"]


class CommandError(Exception):
    """A command that cannot be carried out; the message says why, for the requester."""


class ForwardCommand(BaseModel):
    """``start`` (needs ``duration`` and ``reason``) or ``stop`` one camera's forward."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["start", "stop"]
    camera: str = Field(min_length=1, max_length=32)
    duration: Duration | None = None
    reason: str | None = Field(default=None, max_length=500)
    requested_by: str = Field(min_length=1, max_length=200)
    origin: str = Field(default="unknown", max_length=200)
    """Which channel the command came through (set by the channel, not by the requester)."""

    @model_validator(mode="after")
    def _start_needs_duration_and_reason(self) -> ForwardCommand:
        if self.action == "start":
            if self.duration is None or self.duration <= 0:
                raise ValueError("a start needs a duration, e.g. 15m")
            if not (self.reason or "").strip():
                raise ValueError("a start needs a reason: the intervention it is for")
        return self


def parse_command(data: Mapping[str, Any]) -> ForwardCommand:
    """Validate a command; raise :class:`CommandError` naming what is wrong."""
    try:
        return ForwardCommand.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise CommandError("; ".join(problems)) from None


@dataclass(frozen=True, slots=True)
class ForwardResult:
    ok: bool
    message: str
    session: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "session": self.session}
