"""Configuration models: site, storage, cameras, metrics, uplink, control and audit.

Sizes are stored as int bytes and durations as float seconds. Camera and uplink passwords are
resolved while validating (see :mod:`gateway.config.secrets`) and kept as
:class:`pydantic.SecretStr`; the stored camera URLs never contain credentials. The validation
context may carry ``base_dir``, the directory of the configuration file: relative ``password_file``
paths (without ``$CREDENTIALS_DIRECTORY``) and relative ``tls`` files (uplink and cameras) are
relative to it (default: the working directory). Secrets written in URLs (a password in the
userinfo, tokens in the query) are registered with :mod:`gateway.redact` as they are read.
"""

from __future__ import annotations

import ipaddress
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.cleartext import ConfigFile
from gateway.config.fields import (
    Bitrate,
    ByteSize,
    ConfigModel,
    Duration,
    PasswordSection,
    Rejected,
    base_dir,
    in_range,
    not_empty,
    refuse,
    resolve_password_fields,
)
from gateway.config.mqtt import MqttConfig
from gateway.config.tls import CameraTlsConfig, UplinkTlsConfig
from gateway.redact import mask_stream_key, redact_url, register_secret, secrets_in_url
from gateway.source.simurl import parse_sim_url
from gateway.units import format_duration

__all__ = [
    "DEFAULT_CONTROL_SOCKET",
    "LEGAL_MAX_AGE_REASON",
    "MAX_AGE_LIMIT",
    "UNIX_SOCKET_PATH_MAX",
    "UPLINK_PLACEHOLDERS",
    "UPLINK_SCHEMES",
    "URL_SCHEMES",
    "AuditConfig",
    "ByteSize",
    "CameraConfig",
    "CameraTlsConfig",
    "Config",
    "ConfigModel",
    "ControlConfig",
    "Duration",
    "ForwardMode",
    "MetricsConfig",
    "StorageConfig",
    "UplinkConfig",
    "UplinkTlsConfig",
    "WorkersConfig",
    "parse_listen",
]

MAX_AGE_LIMIT = 30 * 86400.0
LEGAL_MAX_AGE_REASON = (
    "exceeds the legal maximum of 30 days "
    "(images kept at most one month, Code de la sécurité intérieure L252-5)"
)
URL_SCHEMES = frozenset({"rtsp", "rtsps", "sim"})
SEGMENT_MIN, SEGMENT_MAX = 1.0, 3600.0
DEFAULT_LISTEN = "127.0.0.1:9108"

ForwardMode = Literal["continuous", "on_demand", "off"]
"""How a camera is forwarded to the centre: always, on request, or never."""
UPLINK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps"})
SECURE_UPLINK_SCHEMES = frozenset({"rtsps", "rtmps"})
UPLINK_PLACEHOLDERS = ("site_id", "camera_id")
MAX_SESSION_LIMIT = 12 * 3600.0
QUEUE_MIN, QUEUE_MAX = 0.5, 10.0
CONNECT_TIMEOUT_MIN, CONNECT_TIMEOUT_MAX = 1.0, 30.0
DEFAULT_CONTROL_SOCKET = Path("/run/camera-gateway/control.sock")
UNIX_SOCKET_PATH_MAX = 107
"""Longest Unix socket path in bytes (``sun_path`` is 108 bytes with the final NUL)."""
AUDIT_DIRECTORY = "audit"
"""Default audit directory name under ``storage.path``; no camera may use it as its id."""
DEFAULT_TIMEZONE = "Europe/Paris"
HOLD_MAX_AGE_DEFAULT = 365 * 86400.0
HOLD_MAX_AGE_LIMIT = 1096 * 86400.0
HOLD_QUOTA_SHARE = 0.2
"""Share of ``storage.quota`` that legal holds may take by default: recording keeps the rest."""
KEYS_DIRECTORY = "keys"
"""Default folder of the signing key under ``storage.path``."""
AUDIT_RETENTION_DEFAULT = 365 * 86400.0
AUDIT_RETENTION_MIN, AUDIT_RETENTION_MAX = 180 * 86400.0, 1096 * 86400.0
RESERVED_CAMERA_IDS = {
    AUDIT_DIRECTORY: "the audit log's default directory",
    KEYS_DIRECTORY: "the signing key's default directory",
    "quarantine": "the folder of unusable files under storage.path",
}
DEFAULT_MAX_BITRATE = 50e6
"""Bits per second above which a camera counts as flooding: well above any real 1080p or 4K
stream (4K H.264 at high quality is 25–30 Mbit/s)."""
BITRATE_MIN = 100e3
DEFAULT_WORKER_MEMORY = 512 * 1024**2
"""A camera worker's cap (data it may map, and resident memory). An RTSP camera's worker maps
about 55 MiB of data and holds 45 MiB resident (of which about 10 MiB is its own, the rest shared
with the other workers); its queues are bounded at 10 s or 64 MiB of video for the recorder and
2 s for the forward, and FFmpeg's allocations at 64 MiB each."""
WORKER_MEMORY_MIN = 128 * 1024**2

_SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_CAMERA_ID = re.compile(r"[a-z0-9_-]{1,32}")
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]+")


class HoldConfig(ConfigModel):
    """Legal holds: their hard limit, and the share of the quota they may take."""

    max_age: Duration = HOLD_MAX_AGE_DEFAULT
    quota: ByteSize | None = None
    """Bytes all holds may cover together; None: :data:`HOLD_QUOTA_SHARE` of the quota."""

    @field_validator("max_age")
    @classmethod
    def _max_age_range(cls, value: float) -> float:
        if not 86400 <= value <= HOLD_MAX_AGE_LIMIT:
            raise ValueError(
                f"must be between 1 day and 3 years (1096d), got {format_duration(value)}"
            )
        return value


class StorageConfig(ConfigModel):
    """Where and how much is recorded."""

    path: Path
    quota: ByteSize
    max_age: Duration = MAX_AGE_LIMIT
    min_free: ByteSize = 1024**3
    segment_duration: Duration = 60.0
    hold: HoldConfig = Field(default_factory=HoldConfig)

    @property
    def hold_quota(self) -> int:
        """Bytes all legal holds may cover together."""
        quota = self.hold.quota
        return int(self.quota * HOLD_QUOTA_SHARE) if quota is None else quota

    @model_validator(mode="after")
    def _hold_within_quota(self) -> StorageConfig:
        if self.hold.quota is not None and self.hold.quota > self.quota // 2:
            raise ValueError(
                "storage.hold.quota may be at most half of storage.quota: recording needs the rest"
            )
        return self

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
class _Defaulted:
    """A default path filled in by :class:`Config`; exempt from the "must be absolute" rule."""

    path: Path


def _with_userinfo(url: str, username: str | None, password: SecretStr | None) -> str:
    """``url`` with the user name and password embedded, percent-encoded."""
    if username is None and password is None:
        return url
    userinfo = quote(username or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password.get_secret_value(), safe="")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


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


_TWICE = {
    "url": "credentials given twice: in the URL and in username/password/password_file",
    "forward_url": (
        "credentials given twice: in forward_url and in url/username/password/password_file "
        "(the camera's credentials apply to both URLs)"
    ),
}


def _move_url_credentials(out: dict[str, Any], key: str) -> None:
    """Move the credentials embedded in ``out[key]`` to ``username``/``password``, in place.

    Credentials already set (by the keys, or by a URL moved before) make it a :class:`Rejected`.
    """
    url = out.get(key)
    if not isinstance(url, str):
        return
    _register_url_secrets(url)
    try:
        bare, url_user, url_password = _split_credentials(url)
    except ValueError:
        return  # reported by the URL validator
    if url_password is not None:
        register_secret(url_password)
    if url_user is None and url_password is None:
        return
    has_password = out.get("password") is not None or out.get("password_file") is not None
    if (url_user is not None and out.get("username") is not None) or (
        url_password is not None and has_password
    ):
        out[key] = Rejected(_TWICE[key])
        return
    out[key] = bare
    if url_user is not None:
        out["username"] = url_user
    if url_password is not None:
        out["password"] = url_password


def _register_url_secrets(url: str) -> None:
    """Register the tokens and keys a URL's query carries, so that no output shows them."""
    for secret in secrets_in_url(url):
        if "{" not in secret:  # a placeholder of a template is not a secret
            register_secret(secret)


class CameraConfig(ConfigModel):
    """One camera: where to pull its stream from, what to keep of it and how it is forwarded.

    ``username``, ``password`` and ``tls`` apply to ``url`` and ``forward_url`` alike (same
    device).
    """

    id: str
    url: str
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    record: bool = True
    audio: bool = True
    forward: ForwardMode = "on_demand"
    forward_url: str | None = None
    tls: CameraTlsConfig | None = None
    max_bitrate: Bitrate = DEFAULT_MAX_BITRATE
    """A camera sending more than this, for two rate windows in a row (4 s), is disconnected
    as flooding and retried slowly; what it sent before is kept."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_credentials(cls, data: Any, info: ValidationInfo) -> Any:
        """Resolve the password and move URL credentials out of ``url`` and ``forward_url``.

        Problems are recorded as :class:`Rejected` values so that they are reported on the
        field they belong to, together with every other problem of the camera.
        """
        if not isinstance(data, Mapping):
            return data
        out: dict[str, Any] = dict(data)
        resolve_password_fields(out, base_dir(info))
        _move_url_credentials(out, "url")
        _move_url_credentials(out, "forward_url")
        if out.get("forward") is False:
            out["forward"] = "off"  # YAML 1.1 reads an unquoted `off` as false
        return out

    @field_validator("url", "password", "password_file", "forward", "forward_url", mode="before")
    @classmethod
    def _refuse_rejected(cls, value: object) -> object:
        return refuse(value)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if _CAMERA_ID.fullmatch(value) is None:
            raise ValueError(
                f"invalid camera id {value!r}: use 1 to 32 characters among a-z, 0-9, '_' and '-'"
            )
        if value in RESERVED_CAMERA_IDS:
            raise ValueError(f"camera id {value!r} is reserved ({RESERVED_CAMERA_IDS[value]})")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _validate_url(value)

    @field_validator("forward_url")
    @classmethod
    def _check_forward_url(cls, value: str | None) -> str | None:
        return None if value is None else _validate_url(value)

    @field_validator("username")
    @classmethod
    def _username_not_empty(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("must not be empty")
        return value

    @field_validator("tls")
    @classmethod
    def _tls_needs_rtsps(
        cls, value: CameraTlsConfig | None, info: ValidationInfo
    ) -> CameraTlsConfig | None:
        if value is None or "url" not in info.data:  # an invalid url is reported on its own
            return value
        schemes = [urlsplit(info.data["url"]).scheme]
        if info.data.get("forward_url") is not None:
            schemes.append(urlsplit(info.data["forward_url"]).scheme)
        if "rtsps" not in schemes:
            raise ValueError(
                f"applies to rtsps:// cameras only, not {schemes[0]}:// "
                "(TLS settings need an rtsps:// url or forward_url)"
            )
        return value

    def source_url(self) -> str:
        """The URL with credentials embedded (percent-encoded), for the media library only."""
        return _with_userinfo(self.url, self.username, self.password)

    @property
    def display_url(self) -> str:
        """The URL safe to show: the user name if any, the password masked."""
        return redact_url(self.source_url())

    def forward_source_url(self) -> str | None:
        """``forward_url`` with credentials embedded, for the media library only; None if unset."""
        if self.forward_url is None:
            return None
        return _with_userinfo(self.forward_url, self.username, self.password)

    @property
    def display_forward_url(self) -> str | None:
        """``forward_url`` safe to show (password masked); None if unset."""
        url = self.forward_source_url()
        return None if url is None else redact_url(url)


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


def _check_placeholders(template: str) -> None:
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:
        raise ValueError("unbalanced '{' or '}' (write {{ or }} for a literal brace)") from None
    unknown: list[str] = []
    for name, spec, conversion in fields:
        if name not in UPLINK_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            if shown not in unknown:
                unknown.append(shown)
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join(unknown)}: only {{site_id}} and {{camera_id}} are "
            "allowed"
        )


def _fill_template(template: str, site_id: str, camera_id: str) -> str:
    return template.format(site_id=quote(site_id, safe=""), camera_id=quote(camera_id, safe=""))


def _validate_uplink_url(template: str) -> str:
    """Check an uplink URL template; error messages never quote it (it may hold a password)."""
    _register_url_secrets(template)
    _check_placeholders(template)
    url = _fill_template(template, "site", "camera")
    try:
        parts = urlsplit(url)
        template_scheme = urlsplit(template).scheme
    except ValueError:
        raise ValueError("not a valid URL (malformed host)") from None
    if template_scheme not in UPLINK_SCHEMES or parts.scheme != template_scheme:
        shown = f"'{template_scheme}'" if template_scheme else "missing"
        raise ValueError(f"scheme {shown} not allowed (use rtsp://, rtsps://, rtmp:// or rtmps://)")
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            register_secret(unquote(userinfo.partition(":")[2]))
        raise ValueError(
            "credentials in the URL are refused: put credentials in uplink.username and "
            "uplink.password"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL (invalid port)") from None
    if not parts.hostname:
        raise ValueError(f"missing host, e.g. {template_scheme}://csu.example.org/{{camera_id}}")
    if port == 0:
        raise ValueError("not a valid URL (port must be 1..65535)")
    return template


class UplinkConfig(PasswordSection):
    """Where camera streams are forwarded to: the centre's ingest server.

    ``url`` is a template: ``{site_id}`` and ``{camera_id}`` are replaced for each camera. It never
    holds credentials; ``username`` and ``password`` (resolved like a camera's) are embedded only by
    :meth:`push_url`.
    """

    url: str
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: UplinkTlsConfig | None = None
    max_session: Duration = 1800.0
    queue: Duration = 2.0
    connect_timeout: Duration = 5.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _validate_uplink_url(value)

    @field_validator("username")
    @classmethod
    def _username_not_empty(cls, value: str | None) -> str | None:
        return None if value is None else str(not_empty(value))

    @field_validator("tls")
    @classmethod
    def _tls_needs_secure_scheme(
        cls, value: UplinkTlsConfig | None, info: ValidationInfo
    ) -> UplinkTlsConfig | None:
        url = info.data.get("url")  # absent when the URL itself is invalid
        if value is not None and url is not None:
            scheme = urlsplit(url).scheme
            if scheme not in SECURE_UPLINK_SCHEMES:
                raise ValueError(f"applies to rtsps:// and rtmps:// only, not {scheme}://")
        return value

    @field_validator("max_session")
    @classmethod
    def _check_max_session(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value > MAX_SESSION_LIMIT:
            raise ValueError(f"must be at most 12h, got {format_duration(value)}")
        return value

    @field_validator("queue")
    @classmethod
    def _check_queue(cls, value: float) -> float:
        return in_range(value, QUEUE_MIN, QUEUE_MAX, "0.5s and 10s")

    @field_validator("connect_timeout")
    @classmethod
    def _check_connect_timeout(cls, value: float) -> float:
        return in_range(value, CONNECT_TIMEOUT_MIN, CONNECT_TIMEOUT_MAX, "1s and 30s")

    @property
    def scheme(self) -> str:
        """``rtsp``, ``rtsps``, ``rtmp`` or ``rtmps``."""
        return urlsplit(self.url).scheme

    @property
    def secure(self) -> bool:
        """True when the uplink is encrypted (``rtsps://`` or ``rtmps://``)."""
        return self.scheme in SECURE_UPLINK_SCHEMES

    def target_url(self, site_id: str, camera_id: str) -> str:
        """Where this camera goes: the template filled in, without credentials."""
        return _fill_template(self.url, site_id, camera_id)

    def push_url(self, site_id: str, camera_id: str) -> str:
        """:meth:`target_url` with the credentials embedded, for the media library only."""
        return _with_userinfo(self.target_url(site_id, camera_id), self.username, self.password)

    def display_target(self, site_id: str, camera_id: str) -> str:
        """:meth:`push_url` safe to show: the user name if any, the password and tokens masked.

        RTMP carries its credential in the path (the stream key), where no password rule can see
        it: the template's stream key is masked before the camera is filled in.
        """
        url = _fill_template(mask_stream_key(self.url), site_id, camera_id)
        return redact_url(_with_userinfo(url, self.username, self.password))


class ControlConfig(ConfigModel):
    """The local Unix socket the command-line tool talks to the daemon through."""

    socket: Path = DEFAULT_CONTROL_SOCKET

    @field_validator("socket", mode="before")
    @classmethod
    def _socket_not_empty(cls, value: object) -> object:
        return not_empty(value)

    @field_validator("socket")
    @classmethod
    def _check_socket(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        length = len(os.fsencode(value))
        if length > UNIX_SOCKET_PATH_MAX:
            raise ValueError(
                f"is {length} bytes long, a Unix socket path is at most "
                f"{UNIX_SOCKET_PATH_MAX} bytes"
            )
        return value


class WorkersConfig(ConfigModel):
    """Limits of each camera's worker process."""

    memory_max: ByteSize = DEFAULT_WORKER_MEMORY

    @field_validator("memory_max")
    @classmethod
    def _memory_enough(cls, value: int) -> int:
        if value < WORKER_MEMORY_MIN:
            raise ValueError("must be at least 128MiB (a worker maps about 55 MiB at rest)")
        return value


class AuditConfig(ConfigModel):
    """Where the audit journal and the seal chains are kept (by default ``<storage.path>/audit``),
    for how long, and where the box's signing key is (by default ``<storage.path>/keys``)."""

    path: Path
    retention: Duration = AUDIT_RETENTION_DEFAULT
    key_dir: Path

    @field_validator("retention")
    @classmethod
    def _retention_range(cls, value: float) -> float:
        if not AUDIT_RETENTION_MIN <= value <= AUDIT_RETENTION_MAX:
            raise ValueError(
                "must be between 6 months (180d) and 3 years (1096d): the CNIL recommends "
                f"keeping access journals 6 months to 1 year; got {format_duration(value)}"
            )
        return value

    @field_validator("path", "key_dir", mode="before")
    @classmethod
    def _absolute(cls, value: object) -> object:
        if isinstance(value, _Defaulted):
            return value.path  # joined to storage.path, which may be relative
        not_empty(value)
        if isinstance(value, str | PurePath) and not PurePath(value).is_absolute():
            raise ValueError("must be an absolute path")
        return value


_DEFAULTED_SECTIONS = ("cameras", "metrics", "control", "audit", "workers")


def _default_audit_path(data: dict[str, Any]) -> None:
    """Fill ``audit.path`` in (raw) ``data`` from ``storage.path`` when it is not given."""
    audit = data.get("audit", {})
    if not isinstance(audit, Mapping):
        return
    storage = data.get("storage")
    storage_path = storage.get("path") if isinstance(storage, Mapping) else None
    base = (
        Path(storage_path)
        if isinstance(storage_path, str | PurePath) and storage_path != ""
        else Path()  # storage.path is invalid and reported: any value does
    )
    filled = dict(audit)
    for key, name in (("path", AUDIT_DIRECTORY), ("key_dir", KEYS_DIRECTORY)):
        if key not in filled:
            filled[key] = _Defaulted(base / name)
    data["audit"] = filled


def _continuous_needs_uplink(data: dict[str, Any]) -> None:
    """Without an uplink section, reject ``forward: continuous`` on each camera of raw ``data``."""
    cameras = data.get("cameras")
    if data.get("uplink") is not None or not isinstance(cameras, list | tuple):
        return
    rejected = Rejected("continuous forwarding needs an uplink section")
    data["cameras"] = [
        {**camera, "forward": rejected}
        if isinstance(camera, Mapping) and camera.get("forward") == "continuous"
        else camera
        for camera in cameras
    ]


class Config(ConfigModel):
    """The whole gateway configuration."""

    site_id: str
    timezone: str = DEFAULT_TIMEZONE
    """IANA time zone of the site: the wall-clock track of exported clips shows local time."""
    storage: StorageConfig
    cameras: tuple[CameraConfig, ...] = ()
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    uplink: UplinkConfig | None = None
    control: ControlConfig = Field(default_factory=ControlConfig)
    mqtt: MqttConfig | None = None
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    audit: AuditConfig
    """Always present: filled in from ``storage.path`` when not given."""
    _file: ConfigFile | None = PrivateAttr(default=None)
    """The file it was loaded from (see :attr:`file`)."""

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        """Defaults and cross-section checks that must be done on the raw mapping.

        A section left empty (all entries commented out) means its default.
        """
        if not isinstance(data, Mapping):
            return data
        out = {
            key: value
            for key, value in data.items()
            if not (key in _DEFAULTED_SECTIONS and value is None)
        }
        _default_audit_path(out)
        _continuous_needs_uplink(out)
        return out

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Paris, UTC)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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

    @property
    def file(self) -> ConfigFile | None:
        """The file this configuration was read from, its mode and the secrets written in it in
        clear; None when it was not read from a file. Two loads of an unchanged file compare
        equal."""
        return self._file

    def loaded_from(self, file: ConfigFile | None) -> Config:
        """This configuration, as read from ``file``."""
        copy = self.model_copy()
        copy._file = file
        return copy

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with this id; raise KeyError if there is none."""
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)
