"""Snapshots and the keyframes they are made from, as both processes see them (made in the
camera's worker by :mod:`gateway.watch.render`; this module loads no media library, so the
supervisor can hold them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["Keyframe", "Snapshot", "SnapshotError"]


class SnapshotError(Exception):
    """No snapshot can be made; the message says why, for the requester."""


@dataclass(frozen=True, slots=True)
class Keyframe:
    """The last keyframe of a camera, as it came (one access unit)."""

    data: bytes
    codec: str
    extradata: bytes | None
    at: float
    """Wall time it was received."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    width: int
    height: int
    taken_at: float
    """Wall time of the keyframe."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpeg).hexdigest()
