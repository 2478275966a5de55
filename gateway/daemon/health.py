"""Liveness of the daemon's own threads, for the systemd watchdog: dead or wedged is unhealthy.

Only the supervisor's control plane counts here: storage and retention, the camera supervision
loop, forward sessions, the control socket and MQTT. A camera's worker that wedges is killed
and restarted by the supervision loop (:mod:`gateway.daemon.workers.supervisor`); it never makes
the daemon look unhealthy, so a bad camera can never get the whole daemon, and every other
camera's recording, restarted by systemd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["MIN_WEDGED_AFTER", "WEDGED_AFTER", "Watch", "problems"]

WEDGED_AFTER = 30.0
MIN_WEDGED_AFTER = 5.0


def _never_stuck() -> float:
    return 0.0


@dataclass(frozen=True, slots=True)
class Watch:
    """One thing the watchdog watches: a long-lived thread of the daemon."""

    name: str
    alive: Callable[[], bool]
    stuck_for: Callable[[], float] = _never_stuck
    """Seconds it has been inside one turn of its loop (0 when idle, or when a long turn is not
    a wedge: the storage thread on a hung disk is reported, never restarted)."""


def problems(watched: Iterable[Watch], *, wedged_after: float = WEDGED_AFTER) -> list[str]:
    """What is dead or wedged, in words (empty when healthy)."""
    found: list[str] = []
    for watch in watched:
        if not watch.alive():
            found.append(f"{watch.name} thread has died")
            continue
        stuck = watch.stuck_for()
        if stuck > wedged_after:
            found.append(f"{watch.name} loop stuck for {stuck:.0f} s")
    return found
