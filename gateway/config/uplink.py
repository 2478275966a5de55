"""The ``uplink`` section: the supervision centre's ingest."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit

from pydantic import (
    SecretStr,
    ValidationInfo,
    field_validator,
)

from gateway.config.fields import (
    Duration,
    PasswordSection,
    between,
    not_empty,
)
from gateway.config.tls import UplinkTlsConfig
from gateway.config.urls import register_url_secrets, with_userinfo
from gateway.redact import mask_stream_key, redact_url, register_secret
from gateway.units import format_duration

__all__ = [
    "CONNECT_TIMEOUT_MAX",
    "CONNECT_TIMEOUT_MIN",
    "MAX_SESSION_LIMIT",
    "QUEUE_MAX",
    "QUEUE_MIN",
    "SECURE_UPLINK_SCHEMES",
    "UPLINK_PLACEHOLDERS",
    "UPLINK_SCHEMES",
    "UplinkConfig",
]

UPLINK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps"})
SECURE_UPLINK_SCHEMES = frozenset({"rtsps", "rtmps"})
UPLINK_PLACEHOLDERS = ("site_id", "camera_id")
MAX_SESSION_LIMIT = 12 * 3600.0
QUEUE_MIN, QUEUE_MAX = 0.5, 10.0
CONNECT_TIMEOUT_MIN, CONNECT_TIMEOUT_MAX = 1.0, 30.0


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
    register_url_secrets(template)
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
    queue: Annotated[Duration, between(QUEUE_MIN, QUEUE_MAX, "0.5s and 10s")] = 2.0
    connect_timeout: Annotated[
        Duration, between(CONNECT_TIMEOUT_MIN, CONNECT_TIMEOUT_MAX, "1s and 30s")
    ] = 5.0

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
        return with_userinfo(self.target_url(site_id, camera_id), self.username, self.password)

    def display_target(self, site_id: str, camera_id: str) -> str:
        """:meth:`push_url` safe to show: the user name if any, the password and tokens masked.

        RTMP carries its credential in the path (the stream key), where no password rule can see
        it: the template's stream key is masked before the camera is filled in.
        """
        url = _fill_template(mask_stream_key(self.url), site_id, camera_id)
        return redact_url(with_userinfo(url, self.username, self.password))
