"""What a forward session hands to the camera's worker (where to push), and gets back (the
camera's forward counters when it stops)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.push.transport import TlsPolicy

__all__ = ["ForwardTotals", "UplinkTarget"]


@dataclass(frozen=True, slots=True)
class UplinkTarget:
    """Where one camera is pushed. ``push_url`` may hold credentials: never show it."""

    push_url: str
    display: str
    tls: TlsPolicy | None
    connect_timeout: float


@dataclass(frozen=True, slots=True)
class ForwardTotals:
    """A camera's forward counters (all its sessions) at the moment a session stopped."""

    bytes_sent: int
    dropped_frames: int
    reconnects: int
