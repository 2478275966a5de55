"""Building blocks shared by the configuration sections: the base model, sizes and durations,
the reusable constraints (:func:`between`, :data:`Positive`, :data:`NotEmpty`,
:data:`ReadableFile`), password fields, and how a problem found early is reported on its field."""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.secrets import SecretError, read_password_file, resolve_password
from gateway.units import format_duration, parse_bitrate, parse_duration, parse_size

__all__ = [
    "Bitrate",
    "ByteSize",
    "ConfigModel",
    "Duration",
    "NotEmpty",
    "PasswordSection",
    "Positive",
    "ReadableFile",
    "Rejected",
    "base_dir",
    "between",
    "not_empty",
    "readable_file",
    "refuse",
    "resolve_password_fields",
    "within",
]

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes; accepts an int or a string such as ``500MB`` or ``2GiB``."""
Duration = Annotated[float, AllowInfNan(False), BeforeValidator(parse_duration)]
"""A duration in seconds; accepts a number or a string such as ``90s``, ``15m`` or ``30d``."""
Bitrate = Annotated[float, AllowInfNan(False), BeforeValidator(parse_bitrate)]
"""Bits per second; accepts a number or a string such as ``800kbit/s`` or ``50Mbit/s``."""


class ConfigModel(BaseModel):
    """Base of every configuration model: unknown keys are refused, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordSection(ConfigModel):
    """A section with a ``password`` (literal or ``${ENV}``) or a ``password_file``, which its
    subclass declares; the password is resolved on load and problems are reported on the field
    they belong to."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_password(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        out: dict[str, Any] = dict(data)
        resolve_password_fields(out, base_dir(info))
        return out

    @field_validator("password", "password_file", mode="before", check_fields=False)
    @classmethod
    def _refuse_rejected(cls, value: object) -> object:
        return refuse(value)


@dataclass(frozen=True)
class Rejected:
    """Put in place of an input value by the camera pre-check; fails that field's validation."""

    reason: str


def base_dir(info: ValidationInfo) -> Path:
    """The directory relative file names are relative to: the validation context's ``base_dir``."""
    context = info.context if isinstance(info.context, Mapping) else {}
    return Path(context.get("base_dir") or Path.cwd())


def resolve_password_fields(out: dict[str, Any], base_dir: Path) -> None:
    """Resolve ``password`` (literal or ``${ENV}``) or ``password_file`` in ``out``, in place.

    The resolved password goes to ``out["password"]``; a problem is recorded as :class:`Rejected`
    on the field it belongs to.
    """
    password, password_file = out.get("password"), out.get("password_file")
    if password is not None and password_file is not None:
        out["password_file"] = Rejected("password and password_file are mutually exclusive")
    elif isinstance(password, str):
        try:
            out["password"] = resolve_password(password)
        except SecretError as exc:
            out["password"] = Rejected(str(exc))
    elif password_file == "":
        out["password_file"] = Rejected("must not be empty")
    elif isinstance(password_file, str | PurePath):
        try:
            out["password"] = read_password_file(Path(password_file), base_dir=base_dir)
        except SecretError as exc:
            out["password_file"] = Rejected(str(exc))


def refuse(value: object) -> object:
    """Raise the reason of a :class:`Rejected` value; pass any other value through."""
    if isinstance(value, Rejected):
        raise ValueError(value.reason)
    return value


def not_empty(value: object) -> object:
    if value == "":
        raise ValueError("must not be empty")
    return value


def readable_file(path: Path, base_dir: Path) -> Path:
    """``path`` made absolute against ``base_dir``; raise ValueError unless it can be read."""
    full_path = path if path.is_absolute() else base_dir / path
    try:
        if not stat.S_ISREG(full_path.stat().st_mode):
            raise ValueError(f"cannot read {full_path}: not a regular file")
        with full_path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {full_path}: {exc.strerror or type(exc).__name__}") from None
    return full_path


_Number = TypeVar("_Number", int, float)


def _range(low: float, high: float, bounds: str, show: Callable[[float], str]) -> AfterValidator:
    def check(value: _Number) -> _Number:
        if not low <= value <= high:
            raise ValueError(f"must be between {bounds}, got {show(value)}")
        return value

    return AfterValidator(check)


def between(low: float, high: float, bounds: str) -> AfterValidator:
    """Constraint of a :data:`Duration` to ``[low, high]``, ``bounds`` saying so to people:
    ``keepalive: Annotated[Duration, between(5, 600, "5s and 10m")]``."""
    return _range(low, high, bounds, format_duration)


def within(low: float, high: float, unit: str) -> AfterValidator:
    """Constraint of a plain number to ``[low, high]``, counted in ``unit`` (said to people):
    ``fps: Annotated[float, within(1, 120, "fps")]``; for durations, :func:`between`."""
    return _range(low, high, f"{low:g} and {high:g} {unit}", lambda value: f"{value:g}")


def _positive(value: _Number) -> _Number:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


Positive = AfterValidator(_positive)
"""Constraint: greater than 0 (``quota: Annotated[ByteSize, Positive]``)."""
NotEmpty = BeforeValidator(not_empty)
"""Constraint: an empty string is refused as such, not as whatever it fails to parse as."""


def _readable_config_file(value: Path, info: ValidationInfo) -> Path:
    return readable_file(value, base_dir(info))


ReadableFile = Annotated[Path, NotEmpty, AfterValidator(_readable_config_file)]
"""A file the daemon reads (a CA, a certificate, a key): relative names are relative to the
configuration file's directory, the stored path is absolute, and it was readable at load."""
