"""The small sections: metrics endpoint, control socket, camera workers, audit journal."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from pydantic import (
    field_validator,
)

from gateway.config.fields import (
    ByteSize,
    ConfigModel,
    Duration,
    not_empty,
)
from gateway.units import format_duration

__all__ = [
    "AUDIT_DIRECTORY",
    "AUDIT_RETENTION_DEFAULT",
    "AUDIT_RETENTION_MAX",
    "AUDIT_RETENTION_MIN",
    "DEFAULT_CONTROL_SOCKET",
    "DEFAULT_LISTEN",
    "DEFAULT_WORKER_MEMORY",
    "KEYS_DIRECTORY",
    "UNIX_SOCKET_PATH_MAX",
    "WORKER_MEMORY_MIN",
    "AuditConfig",
    "ControlConfig",
    "Defaulted",
    "MetricsConfig",
    "WorkersConfig",
    "parse_listen",
]

DEFAULT_LISTEN = "127.0.0.1:9108"
DEFAULT_CONTROL_SOCKET = Path("/run/camera-gateway/control.sock")
UNIX_SOCKET_PATH_MAX = 107
"""Longest Unix socket path in bytes (``sun_path`` is 108 bytes with the final NUL)."""
AUDIT_DIRECTORY = "audit"
"""Default audit directory name under ``storage.path``; no camera may use it as its id."""
KEYS_DIRECTORY = "keys"
"""Default folder of the signing key under ``storage.path``."""
AUDIT_RETENTION_DEFAULT = 365 * 86400.0
AUDIT_RETENTION_MIN, AUDIT_RETENTION_MAX = 180 * 86400.0, 1096 * 86400.0
DEFAULT_WORKER_MEMORY = 512 * 1024**2
"""A camera worker's cap (data it may map, and resident memory). An RTSP camera's worker maps
about 55 MiB of data and holds 45 MiB resident (of which about 10 MiB is its own, the rest shared
with the other workers); its queues are bounded at 10 s or 64 MiB of video for the recorder and
2 s for the forward, and FFmpeg's allocations at 64 MiB each."""
WORKER_MEMORY_MIN = 128 * 1024**2

_HOSTNAME = re.compile(r"[A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Defaulted:
    """A default path filled in by :class:`Config`; exempt from the "must be absolute" rule."""

    path: Path


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
        if isinstance(value, Defaulted):
            return value.path  # joined to storage.path, which may be relative
        not_empty(value)
        if isinstance(value, str | PurePath) and not PurePath(value).is_absolute():
            raise ValueError("must be an absolute path")
        return value
