"""A condition raised only after it has held for a while, and cleared the same way.

Keyframes come every couple of seconds and a single picture can mislead (a hand passing over the
lens, a door opened in front of the camera, a frame smeared by the encoder): a condition is
raised when its raising test has held on every keyframe for ``min_duration`` seconds, and
cleared when its clearing test has held as long. The two tests are different thresholds
(hysteresis), so a value wandering about one threshold never makes the state flap. A pending
change is forgotten when a keyframe says otherwise, or when no keyframe came for ``max_gap``
seconds (the picture was not seen meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Debounce"]


@dataclass(slots=True)
class Debounce:
    """One condition's state; :meth:`update` with each keyframe's tests and time."""

    min_duration: float
    max_gap: float
    active: bool = False
    changed_at: float | None = None
    """When the condition was last raised or cleared."""
    pending_since: float | None = None
    """First keyframe of a run that would change the state, if one is under way."""
    last_seen: float | None = None

    def update(self, *, raising: bool, clearing: bool, at: float) -> bool:
        """Take one keyframe's tests at time ``at``; True when the state changed."""
        wants = clearing if self.active else raising
        gap = self.last_seen is not None and at - self.last_seen > self.max_gap
        self.last_seen = at
        if not wants:
            self.pending_since = None
            return False
        if self.pending_since is None or gap:
            self.pending_since = at
        if at - self.pending_since + 1e-9 < self.min_duration:
            return False
        self.active = not self.active
        self.changed_at = at
        self.pending_since = None
        return True

    def reset(self) -> None:
        """Back to cleared, nothing pending (after the reference is learned again)."""
        self.active = False
        self.changed_at = None
        self.pending_since = None
        self.last_seen = None

    def hold(self, at: float) -> None:
        """A keyframe on which the condition cannot be judged: any pending change is dropped
        and the state kept (a covered picture says nothing about focus or aim)."""
        self.pending_since = None
        self.last_seen = at
