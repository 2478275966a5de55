"""The ``storage`` section: where and how much is recorded, and legal holds."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from gateway.config.fields import (
    ByteSize,
    ConfigModel,
    Duration,
)
from gateway.units import format_duration

__all__ = [
    "HOLD_MAX_AGE_DEFAULT",
    "HOLD_MAX_AGE_LIMIT",
    "HOLD_QUOTA_SHARE",
    "LEGAL_MAX_AGE_REASON",
    "MAX_AGE_LIMIT",
    "SEGMENT_MAX",
    "SEGMENT_MIN",
    "HoldConfig",
    "StorageConfig",
]

MAX_AGE_LIMIT = 30 * 86400.0
LEGAL_MAX_AGE_REASON = (
    "exceeds the legal maximum of 30 days "
    "(images kept at most one month, Code de la sécurité intérieure L252-5)"
)
SEGMENT_MIN, SEGMENT_MAX = 1.0, 3600.0
HOLD_MAX_AGE_DEFAULT = 365 * 86400.0
HOLD_MAX_AGE_LIMIT = 1096 * 86400.0
HOLD_QUOTA_SHARE = 0.2
"""Share of ``storage.quota`` that legal holds may take by default: recording keeps the rest."""


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
