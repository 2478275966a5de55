"""Snapshots over MQTT: what the command thread is handed back for a request, and the bounds
of publishing one (the JPEG, then its result)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["PUBLISH_OVERHEAD", "SNAPSHOT_PUBLISH_WAIT", "SnapshotAnswer", "SnapshotHandler"]

PUBLISH_OVERHEAD = 16
"""Bytes of a QoS 1 PUBLISH packet besides its topic and payload (fixed header, topic length,
packet id, properties length: 10 at most), rounded up."""
SNAPSHOT_PUBLISH_WAIT = 10.0
"""Longest wait for the broker to acknowledge a snapshot (a megabyte over a slow uplink)."""


class SnapshotAnswer(Protocol):
    """What a snapshot request gets (``gateway.watch.commands.SnapshotResult``): the JPEG, if
    one was taken, and the result document published after it."""

    @property
    def jpeg(self) -> bytes | None: ...

    def as_dict(self) -> dict[str, Any]: ...


SnapshotHandler = Callable[[str, bytes, int | None], SnapshotAnswer]
"""Takes a snapshot: the camera id, the payload, and the largest JPEG the broker takes (None:
no limit known); returns what to publish."""
