"""Liveness of the daemon's threads, for the systemd watchdog: dead or wedged is unhealthy.

A thread counts as wedged when it has been inside one call for longer than the watchdog
timeout systemd gave us (or :data:`WEDGED_AFTER` without one): a recorder blocked on a dying
disk, a source stuck in a read. A camera that is offline and retrying, or a recorder waiting for
packets, is not wedged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["WEDGED_AFTER", "problems"]

WEDGED_AFTER = 30.0
MIN_WEDGED_AFTER = 5.0


def problems(gateway: Gateway, *, wedged_after: float = WEDGED_AFTER) -> list[str]:
    """What is dead or wedged, in words (empty when healthy)."""
    found = []
    for camera_id, runtime in list(gateway.cameras.items()):
        worker = runtime.worker
        if worker is not None:
            if not worker.alive:
                found.append(f"camera {camera_id}: source thread has died")
            elif (stuck := worker.stuck_for()) > wedged_after:
                found.append(f"camera {camera_id}: source stuck in one read for {stuck:.0f} s")
        for reader in runtime.stream.readers:
            if not reader.alive:
                found.append(f"camera {camera_id}: {reader.name} thread has died")
            elif (stuck := reader.stuck_for()) > wedged_after:
                found.append(f"camera {camera_id}: {reader.name} stuck for {stuck:.0f} s")
    for name, alive in gateway.service_threads():
        if not alive:
            found.append(f"{name} thread has died")
    return found
