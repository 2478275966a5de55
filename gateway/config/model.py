"""The whole configuration: site, time zone, and one section per concern, each in its module
(:mod:`.storage`, :mod:`.camera`, :mod:`.uplink`, :mod:`.mqtt`, :mod:`.services` for metrics,
control, workers and audit; :mod:`.tls` and :mod:`.urls` shared by cameras and uplink).

Sizes are stored as int bytes and durations as float seconds. Camera and uplink passwords are
resolved while validating (see :mod:`gateway.config.secrets`) and kept as
:class:`pydantic.SecretStr`; the stored camera URLs never contain credentials. The validation
context may carry ``base_dir``, the directory of the configuration file: relative ``password_file``
paths (without ``$CREDENTIALS_DIRECTORY``) and relative ``tls`` files (uplink and cameras) are
relative to it (default: the working directory). Secrets written in URLs (a password in the
userinfo, tokens in the query) are registered with :mod:`gateway.redact` as they are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from gateway.config.analysis import AnalysisConfig
from gateway.config.camera import (
    CameraConfig,
    StreamMinimum,
)
from gateway.config.cleartext import ConfigFile
from gateway.config.fields import (
    ConfigModel,
    Rejected,
)
from gateway.config.mqtt import MqttConfig
from gateway.config.services import (
    AUDIT_DIRECTORY,
    KEYS_DIRECTORY,
    AuditConfig,
    ControlConfig,
    Defaulted,
    MetricsConfig,
    WorkersConfig,
)
from gateway.config.storage import (
    StorageConfig,
)
from gateway.config.uplink import (
    UplinkConfig,
)

__all__ = ["DEFAULT_TIMEZONE", "Config"]

DEFAULT_TIMEZONE = "Europe/Paris"
_SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


_DEFAULTED_SECTIONS = (
    "cameras",
    "metrics",
    "control",
    "audit",
    "workers",
    "minimum",
    "analysis",
)


def _default_minimum(data: dict[str, Any]) -> None:
    """Fill each camera's ``minimum`` in raw ``data`` with the keys of the site-wide one that it
    leaves out. An invalid site-wide minimum is reported on its own, and not copied."""
    site, cameras = data.get("minimum"), data.get("cameras")
    if not isinstance(site, Mapping) or not isinstance(cameras, list | tuple):
        return
    try:
        StreamMinimum.model_validate(site)
    except ValueError:
        return
    data["cameras"] = [
        {**camera, "minimum": {**site, **camera.get("minimum", {})}}
        if isinstance(camera, Mapping) and isinstance(camera.get("minimum", {}), Mapping)
        else camera
        for camera in cameras
    ]


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
            filled[key] = Defaulted(base / name)
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
    minimum: StreamMinimum = Field(default_factory=StreamMinimum)
    """Site-wide legal stream minima, the default of each ``cameras[].minimum`` key."""
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    """Timings and thresholds of the camera integrity checks (each camera's own part is
    ``cameras[].analysis``)."""
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
        _default_minimum(out)
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
