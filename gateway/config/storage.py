"""The ``storage`` section: where and how much is recorded, and legal holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from gateway.config.fields import ByteSize, ConfigModel, Duration, NotEmpty, Positive, between

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

    max_age: Annotated[
        Duration, between(86400, HOLD_MAX_AGE_LIMIT, "1 day and 3 years (1096d)")
    ] = HOLD_MAX_AGE_DEFAULT
    quota: ByteSize | None = None
    """Bytes all holds may cover together; None: :data:`HOLD_QUOTA_SHARE` of the quota."""


class StorageConfig(ConfigModel):
    """Where and how much is recorded."""

    path: Annotated[Path, NotEmpty]
    quota: Annotated[ByteSize, Positive]
    max_age: Duration = MAX_AGE_LIMIT
    min_free: ByteSize = 1024**3
    segment_duration: Annotated[Duration, between(SEGMENT_MIN, SEGMENT_MAX, "1s and 1h")] = 60.0
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

    @field_validator("max_age")
    @classmethod
    def _max_age_legal(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value > MAX_AGE_LIMIT:
            raise ValueError(f"{value / 86400:.4g} days {LEGAL_MAX_AGE_REASON}")
        return value
