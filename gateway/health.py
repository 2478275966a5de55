"""Liveness of the daemon's own threads, for the systemd watchdog: dead or wedged is unhealthy.

Only the supervisor's control plane counts here: storage and retention, the camera supervision
loop, forward sessions, the control socket and MQTT. A camera's worker that wedges is killed and
restarted by the supervision loop (:mod:`gateway.workers.supervisor`); it never makes the daemon
look unhealthy, so a bad camera can never get the whole daemon, and every other camera's
recording, restarted by systemd.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["WEDGED_AFTER", "problems"]

WEDGED_AFTER = 30.0
MIN_WEDGED_AFTER = 5.0


def problems(gateway: Gateway, *, wedged_after: float = WEDGED_AFTER) -> list[str]:
    """What is dead or wedged, in words (empty when healthy)."""
    found = [f"{name} thread has died" for name, alive in gateway.service_threads() if not alive]
    stuck = time.monotonic() - gateway.workers.beat
    if gateway.workers.alive and stuck > wedged_after:
        found.append(f"camera supervision loop stuck for {stuck:.0f} s")
    return found
