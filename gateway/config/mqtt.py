"""The ``mqtt:`` section: the broker the gateway publishes its status to and takes commands from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import SecretStr, field_validator

from gateway.config.fields import Duration, PasswordSection, between
from gateway.config.tls import TlsFilesConfig

__all__ = ["MqttConfig", "MqttTlsConfig"]

_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_HOST = re.compile(r"[A-Za-z0-9.:-]+")


class MqttTlsConfig(TlsFilesConfig):
    """TLS to the broker: the CA that signs its certificate, and an optional client certificate."""


class MqttConfig(PasswordSection):
    """Status and events published under ``<topic_prefix>/<site_id>/``; commands taken there."""

    host: str
    port: int | None = None
    """Default 1883, or 8883 with TLS."""
    tls: MqttTlsConfig | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    topic_prefix: str = "camera-gateway"
    client_id: str | None = None
    """Default ``camera-gateway-<site_id>``."""
    keepalive: Annotated[Duration, between(5.0, 600.0, "5s and 10m")] = 30.0
    status_interval: Annotated[Duration, between(1.0, 3600.0, "1s and 1h")] = 30.0
    """Unchanged status is republished this often (a change goes out at once): 30 s keeps a box
    of 6 cameras under one message a second at the centre's broker."""

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not _HOST.fullmatch(value):
            raise ValueError("expected a host name or an IP address")
        return value

    @field_validator("port")
    @classmethod
    def _check_port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError(f"port must be 1..65535, got {value}")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX.fullmatch(value):
            raise ValueError(
                "use letters, digits, '_', '.', '-' and '/' between levels; "
                "no wildcards (+, #), no leading or trailing '/'"
            )
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value.encode()) <= 128:
            raise ValueError("must be 1 to 128 bytes")
        return value

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    def prefix(self, site_id: str) -> str:
        """``<topic_prefix>/<site_id>``: the root of every topic of this gateway."""
        return f"{self.topic_prefix}/{site_id}"

    def effective_client_id(self, site_id: str) -> str:
        return self.client_id or f"camera-gateway-{site_id}"
