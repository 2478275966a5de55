"""A camera's section: its URLs, credentials, TLS, recording and forwarding."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.analysis import CameraAnalysisConfig
from gateway.config.fields import (
    Bitrate,
    ConfigModel,
    base_dir,
    refuse,
    resolve_password_fields,
    within,
)
from gateway.config.services import AUDIT_DIRECTORY, KEYS_DIRECTORY
from gateway.config.simurl import parse_sim_url
from gateway.config.tls import CameraTlsConfig
from gateway.config.urls import (
    move_url_credentials,
    with_userinfo,
)
from gateway.redact import redact_url

__all__ = [
    "BITRATE_MIN",
    "DEFAULT_MAX_BITRATE",
    "RESERVED_CAMERA_IDS",
    "URL_SCHEMES",
    "CameraConfig",
    "ForwardMode",
    "StreamMinimum",
]

URL_SCHEMES = frozenset({"rtsp", "rtsps", "sim"})
ForwardMode = Literal["continuous", "on_demand", "off"]
"""How a camera is forwarded to the centre: always, on request, or never."""
RESERVED_CAMERA_IDS = {
    AUDIT_DIRECTORY: "the audit log's default directory",
    KEYS_DIRECTORY: "the signing key's default directory",
    "quarantine": "the folder of unusable files under storage.path",
}
DEFAULT_MAX_BITRATE = 50e6
"""Bits per second above which a camera counts as flooding: well above any real 1080p or 4K
stream (4K H.264 at high quality is 25–30 Mbit/s)."""
BITRATE_MIN = 100e3
_CAMERA_ID = re.compile(r"[a-z0-9_-]{1,32}")


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


class StreamMinimum(ConfigModel):
    """The least a camera's stream must give (arrêté of 3 August 2007: 6 images per second and
    704×576), below which it is reported as non-compliant. Set site-wide under ``minimum`` and
    per camera under ``cameras[].minimum``, key by key."""

    fps: Annotated[float, within(1, 120, "frames per second")] = 6.0
    """Frames per second, measured from the stream."""
    width: Annotated[int, within(16, 8192, "pixels")] = 704
    height: Annotated[int, within(16, 8192, "pixels")] = 576
    """Picture size in pixels, from the stream's parameter sets."""


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
    audio: bool = False
    """Keep the camera's sound. Off unless asked for: the CNIL generally considers recording
    sound in video protection disproportionate."""
    forward: ForwardMode = "on_demand"
    forward_url: str | None = None
    tls: CameraTlsConfig | None = None
    max_bitrate: Bitrate = DEFAULT_MAX_BITRATE
    """A camera sending more than this, for two rate windows in a row (4 s), is disconnected
    as flooding and retried slowly; what it sent before is kept."""
    minimum: StreamMinimum = Field(default_factory=StreamMinimum)
    """The legal minima it is judged against; the site-wide ``minimum`` fills the keys it
    leaves out."""
    analysis: CameraAnalysisConfig = Field(default_factory=CameraAnalysisConfig)
    """Its integrity checks (covered, defocused, moved, privacy masks)."""

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
        move_url_credentials(out, "url")
        move_url_credentials(out, "forward_url")
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

    @field_validator("analysis")
    @classmethod
    def _substream_needs_forward_url(
        cls, value: CameraAnalysisConfig, info: ValidationInfo
    ) -> CameraAnalysisConfig:
        if value.source == "substream" and info.data.get("forward_url") is None:
            raise ValueError("source: substream needs the camera's forward_url (its substream)")
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
        return with_userinfo(self.url, self.username, self.password)

    @property
    def display_url(self) -> str:
        """The URL safe to show: the user name if any, the password masked."""
        return redact_url(self.source_url())

    def forward_source_url(self) -> str | None:
        """``forward_url`` with credentials embedded, for the media library only; None if unset."""
        if self.forward_url is None:
            return None
        return with_userinfo(self.forward_url, self.username, self.password)

    @property
    def display_forward_url(self) -> str | None:
        """``forward_url`` safe to show (password masked); None if unset."""
        url = self.forward_source_url()
        return None if url is None else redact_url(url)
