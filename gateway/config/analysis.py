"""Camera integrity: how often keyframes are analysed and how long a condition must hold
(site-wide ``analysis``), and each camera's own part (``cameras[].analysis``): whether it is
analysed, from which stream, its privacy zones, and whether it may be forwarded unmasked."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from gateway.config.fields import ByteSize, ConfigModel, Duration, between, within

__all__ = ["AnalysisConfig", "CameraAnalysisConfig", "PrivacyZoneConfig"]


class AnalysisConfig(ConfigModel):
    """Site-wide settings of the integrity checks (defaults measured on the labelled set)."""

    interval: Annotated[Duration, between(0.5, 60, "0.5s and 60s")] = 2.0
    """At most one keyframe per camera is analysed per interval."""
    min_duration: Annotated[Duration, between(2, 600, "2s and 10m")] = 10.0
    """How long a condition must hold, on every analysed keyframe, before it is raised or
    cleared (no flapping)."""
    move_percent: Annotated[float, within(1, 50, "percent of the picture's width")] = 5.0
    """``moved`` is raised past this shift of the scene."""
    move_degrees: Annotated[float, within(1, 45, "degrees")] = 5.0
    """... or past this rotation."""
    snapshot_width: Annotated[int, within(160, 3840, "pixels")] = 1280
    """Snapshots are scaled down to this width at most."""
    snapshot_max_bytes: Annotated[
        ByteSize, within(16 * 1024, 4 * 1024 * 1024, "bytes (16KiB to 4MiB)")
    ] = 1024 * 1024
    """Largest snapshot JPEG (its quality is lowered until it fits)."""


class PrivacyZoneConfig(ConfigModel):
    """A part of the picture the camera itself must mask, as a polygon in normalised
    coordinates (``[x, y]``, each in [0, 1], from the top left)."""

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_. -]+$")]
    points: Annotated[tuple[tuple[float, float], ...], Field(min_length=3, max_length=64)]

    @field_validator("points")
    @classmethod
    def _inside_picture(
        cls, points: tuple[tuple[float, float], ...]
    ) -> tuple[tuple[float, float], ...]:
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"point [{x}, {y}] is outside the picture: coordinates are fractions of "
                    "its width and height, from 0 to 1"
                )
        return points


class CameraAnalysisConfig(ConfigModel):
    """One camera's integrity checks."""

    enabled: bool = True
    source: Literal["main", "substream"] = "main"
    """Analyse the main stream's keyframes, or the substream's (``forward_url``), which is
    then pulled all the time: cheaper to decode, one more session on the camera."""
    privacy_zones: Annotated[tuple[PrivacyZoneConfig, ...], Field(max_length=16)] = ()
    forward_when_unmasked: bool = False
    """Keep forwarding to the centre while a privacy mask is missing. Off by default: the
    centre may not be shown private entrances (CCH L126-1-1), so the forward is suspended
    until the mask is back (recording goes on)."""

    @field_validator("privacy_zones")
    @classmethod
    def _unique_names(cls, zones: tuple[PrivacyZoneConfig, ...]) -> tuple[PrivacyZoneConfig, ...]:
        names = [zone.name for zone in zones]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"privacy zone names must be unique: {', '.join(repeated)} repeated")
        return zones
