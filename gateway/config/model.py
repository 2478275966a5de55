"""Configuration models: site, storage, cameras and metrics, validated and immutable.

Sizes are stored as int bytes and durations as float seconds. Camera passwords are resolved while
validating (see :mod:`gateway.config.secrets`) and kept as :class:`pydantic.SecretStr`; the stored
camera ``url`` never contains credentials. The validation context may carry ``base_dir``, the
directory that relative ``password_file`` paths are relative to (default: the working directory).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.secrets import SecretError, read_password_file, resolve_password
from gateway.redact import redact_url, register_secret
from gateway.source.simurl import parse_sim_url
from gateway.units import format_duration, parse_duration, parse_size

__all__ = [
    "LEGAL_MAX_AGE_REASON",
    "MAX_AGE_LIMIT",
    "URL_SCHEMES",
    "ByteSize",
    "CameraConfig",
    "Config",
    "ConfigModel",
    "Duration",
    "MetricsConfig",
    "StorageConfig",
    "parse_listen",
]

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes; accepts an int or a string such as ``500MB`` or ``2GiB``."""
Duration = Annotated[float, AllowInfNan(False), BeforeValidator(parse_duration)]
"""A duration in seconds; accepts a number or a string such as ``90s``, ``15m`` or ``30d``."""

MAX_AGE_LIMIT = 30 * 86400.0
LEGAL_MAX_AGE_REASON = (
    "exceeds the legal maximum of 30 days "
    "(images kept at most one month, Code de la sécurité intérieure L252-5)"
)
URL_SCHEMES = frozenset({"rtsp", "rtsps", "sim"})
SEGMENT_MIN, SEGMENT_MAX = 1.0, 3600.0
DEFAULT_LISTEN = "127.0.0.1:9108"

_SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_CAMERA_ID = re.compile(r"[a-z0-9_-]{1,32}")
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]+")


class ConfigModel(BaseModel):
    """Base of every configuration model: unknown keys are refused, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(ConfigModel):
    """Where and how much is recorded."""

    path: Path
    quota: ByteSize
    max_age: Duration = MAX_AGE_LIMIT
    min_free: ByteSize = 1024**3
    segment_duration: Duration = 60.0

    @field_validator("path", mode="before")
    @classmethod
    def _path_not_empty(cls, value: object) -> object:
        if value == "":
            raise ValueError("must not be empty")
        return value

    @field_validator("quota")
    @classmethod
    def _quota_positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("max_age")
    @classmethod
    def _max_age_legal(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value > MAX_AGE_LIMIT:
            raise ValueError(f"{value / 86400:.4g} days {LEGAL_MAX_AGE_REASON}")
        return value

    @field_validator("segment_duration")
    @classmethod
    def _segment_in_range(cls, value: float) -> float:
        if not SEGMENT_MIN <= value <= SEGMENT_MAX:
            raise ValueError(f"must be between 1s and 1h, got {format_duration(value)}")
        return value


@dataclass(frozen=True)
class _Rejected:
    """Put in place of an input value by the camera pre-check; fails that field's validation."""

    reason: str


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Return ``url`` without userinfo, and the (decoded) user name and password it held."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=hostport))
    return bare, unquote(user) or None, (unquote(password) or None) if has_password else None


def _validate_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # The text of these errors quotes at most the port; never the URL.
        reason = "invalid port" if "port" in str(exc).lower() else "malformed host"
        raise ValueError(f"not a valid URL ({reason})") from None
    if parts.scheme not in URL_SCHEMES:
        shown = f"'{parts.scheme}'" if parts.scheme else "missing"
        raise ValueError(f"scheme {shown} not allowed (use rtsp://, rtsps:// or sim://)")
    if not parts.hostname:
        if parts.scheme == "sim":
            raise ValueError("sim:// URL needs a name, e.g. sim://hall-a?fps=15")
        raise ValueError(f"missing host, e.g. {parts.scheme}://10.0.0.11:554/stream1")
    if port == 0:
        raise ValueError("not a valid URL (port must be 1..65535)")
    if parts.scheme == "sim":
        parse_sim_url(url)
    return url


class CameraConfig(ConfigModel):
    """One camera: where to pull its stream from and what to keep of it."""

    id: str
    url: str
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    record: bool = True
    audio: bool = True

    @model_validator(mode="before")
    @classmethod
    def _resolve_credentials(cls, data: Any, info: ValidationInfo) -> Any:
        """Resolve the password and move URL credentials out of ``url``.

        Problems are recorded as :class:`_Rejected` values so that they are reported on the
        field they belong to, together with every other problem of the camera.
        """
        if not isinstance(data, Mapping):
            return data
        out: dict[str, Any] = dict(data)
        context = info.context if isinstance(info.context, Mapping) else {}
        base_dir = Path(context.get("base_dir") or Path.cwd())
        password, password_file = out.get("password"), out.get("password_file")
        if password is not None and password_file is not None:
            out["password_file"] = _Rejected("password and password_file are mutually exclusive")
        elif isinstance(password, str):
            try:
                out["password"] = resolve_password(password)
            except SecretError as exc:
                out["password"] = _Rejected(str(exc))
        elif password_file == "":
            out["password_file"] = _Rejected("must not be empty")
        elif isinstance(password_file, str | PurePath):
            try:
                out["password"] = read_password_file(Path(password_file), base_dir=base_dir)
            except SecretError as exc:
                out["password_file"] = _Rejected(str(exc))

        url = out.get("url")
        if not isinstance(url, str):
            return out
        try:
            bare, url_user, url_password = _split_credentials(url)
        except ValueError:
            return out  # reported by the url validator
        if url_password is not None:
            register_secret(url_password)
        if url_user is None and url_password is None:
            return out
        if (url_user is not None and out.get("username") is not None) or (
            url_password is not None and (password is not None or password_file is not None)
        ):
            out["url"] = _Rejected(
                "credentials given twice: in the URL and in username/password/password_file"
            )
            return out
        out["url"] = bare
        if url_user is not None:
            out["username"] = url_user
        if url_password is not None:
            out["password"] = url_password
        return out

    @field_validator("url", "password", "password_file", mode="before")
    @classmethod
    def _refuse_rejected(cls, value: object) -> object:
        if isinstance(value, _Rejected):
            raise ValueError(value.reason)
        return value

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if _CAMERA_ID.fullmatch(value) is None:
            raise ValueError(
                f"invalid camera id {value!r}: use 1 to 32 characters among a-z, 0-9, '_' and '-'"
            )
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _validate_url(value)

    @field_validator("username")
    @classmethod
    def _username_not_empty(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("must not be empty")
        return value

    def source_url(self) -> str:
        """The URL with credentials embedded (percent-encoded), for the media library only."""
        if self.username is None and self.password is None:
            return self.url
        userinfo = quote(self.username or "", safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.get_secret_value(), safe="")
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))

    @property
    def display_url(self) -> str:
        """The URL safe to show: the user name if any, the password masked."""
        return redact_url(self.source_url())


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:9108``) into host and port; raise ValueError."""
    if listen.startswith("["):
        host, closed, rest = listen[1:].partition("]")
        if not closed or not rest.startswith(":"):
            raise ValueError(f"invalid address {listen!r}: expected [IPv6]:port, e.g. [::1]:9108")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r}") from None
        port_text = rest[1:]
    else:
        host, colon, port_text = listen.rpartition(":")
        if not colon or not host:
            raise ValueError(
                f"invalid address {listen!r}: expected host:port, e.g. {DEFAULT_LISTEN}"
            )
        if ":" in host:
            raise ValueError("IPv6 addresses go in brackets, e.g. [::1]:9108")
        if _HOSTNAME.fullmatch(host) is None:
            raise ValueError(f"invalid host {host!r}")
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port {port_text!r}: use 1..65535")
    return host, int(port_text)


class MetricsConfig(ConfigModel):
    """Where the Prometheus metrics endpoint listens."""

    listen: str = DEFAULT_LISTEN

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def host(self) -> str:
        """Host or IP address to bind, without brackets (``::1``)."""
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """TCP port to bind."""
        return parse_listen(self.listen)[1]


class Config(ConfigModel):
    """The whole gateway configuration."""

    site_id: str
    storage: StorageConfig
    cameras: tuple[CameraConfig, ...] = ()
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """``cameras:`` or ``metrics:`` left empty (all entries commented out) means the default."""
        if isinstance(data, Mapping):
            return {
                key: value
                for key, value in data.items()
                if not (key in ("cameras", "metrics") and value is None)
            }
        return data

    @field_validator("site_id")
    @classmethod
    def _check_site_id(cls, value: str) -> str:
        if _SITE_ID.fullmatch(value) is None:
            raise ValueError(
                f"invalid site id {value!r}: use 1 to 63 characters among a-z, 0-9 and '-', "
                "not starting with '-'"
            )
        return value

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        first_index: dict[str, int] = {}
        for index, camera in enumerate(cameras):
            if camera.id in first_index:
                raise ValueError(
                    f"duplicate camera id {camera.id!r} "
                    f"(cameras[{first_index[camera.id]}] and cameras[{index}])"
                )
            first_index[camera.id] = index
        return cameras

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with this id; raise KeyError if there is none."""
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)
