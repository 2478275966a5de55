"""Legal stream minima: is each camera's picture good enough to be used as evidence?

The arrêté of 3 August 2007 (normes techniques des systèmes de vidéoprotection) asks for at least
6 images per second and a picture of at least 704×576 (4CIF). Each camera is judged on two
rules, ``fps`` (the frame rate measured from the stream) and ``resolution`` (the picture size
from the SPS), against its ``cameras[].minimum``.

A rule is judged only while the camera is online (not stalled) and :data:`SETTLE` seconds after
it came online: the frame rate is counted over 2 s windows, and the first window of a session
holds the camera's connection burst. A verdict changes only once the new one has held for
:data:`HOLD` seconds, so a camera hovering at its minimum does not flap; and a camera that
reconnects is not announced again for what was already announced. The frame rate is allowed
:data:`FPS_TOLERANCE` below the minimum: a 2 s window counts whole frames, so a 6 fps camera
may measure 5.5.

For each rule, :class:`Share` keeps the part of the last 24 h that was compliant, weighted by
time and counting only time the rule was judged (the verdicts of each look, without the delay of
:data:`HOLD`), in one bucket a minute (1,441 at most).

Everything here takes the time (``time.monotonic()``) as an argument, for tests to pass a clock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from gateway.telemetry.events import EventSink

__all__ = [
    "FPS_TOLERANCE",
    "HOLD",
    "RULES",
    "SETTLE",
    "WINDOW",
    "Change",
    "Compliance",
    "Minimum",
    "Rule",
    "RulePayload",
    "RuleStatus",
    "Share",
    "announce",
    "compliance_document",
]

log = logging.getLogger(__name__)

Rule = Literal["fps", "resolution"]
RULES: tuple[Rule, ...] = ("fps", "resolution")
SETTLE = 5.0
"""Seconds online before a camera is judged: two 2 s frame-rate windows after the first one."""
HOLD = 5.0
"""Seconds a new verdict must hold before it is reported (two frame-rate windows)."""
FPS_TOLERANCE = 0.5
"""Frames per second a measured rate may fall short of its minimum: one frame in a 2 s window."""
WINDOW = 24 * 3600.0
"""The span of the compliant share: the last 24 h."""
_BUCKET = 60.0
_MAX_STEP = 5.0
"""Longest time between two observations counted: a supervision loop held up longer than this
(the box suspended, say) does not credit or charge the camera for time nobody watched."""


@dataclass(frozen=True, slots=True)
class Minimum:
    """A camera's minima (``cameras[].minimum``, resolved)."""

    fps: float = 6.0
    width: int = 704
    height: int = 576


class Share:
    """The compliant part of the last :data:`WINDOW` seconds, in one-minute buckets."""

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque(maxlen=int(WINDOW / _BUCKET) + 1)
        """``[minute, judged seconds, compliant seconds]``, oldest first."""

    def add(self, now: float, seconds: float, compliant: bool) -> None:
        """Count ``seconds`` (just before ``now``) of judged time, compliant or not."""
        if seconds <= 0:
            return
        minute = float(now // _BUCKET)
        if not self._buckets or self._buckets[-1][0] != minute:
            self._buckets.append([minute, 0.0, 0.0])
        bucket = self._buckets[-1]
        bucket[1] += seconds
        if compliant:
            bucket[2] += seconds

    def ratio(self, now: float) -> float | None:
        """Compliant share of the judged time of the last 24 h; None if none was judged."""
        oldest = now // _BUCKET - WINDOW / _BUCKET
        judged = compliant = 0.0
        for minute, seconds, good in self._buckets:
            if minute > oldest:
                judged += seconds
                compliant += good
        return None if judged <= 0 else compliant / judged


@dataclass(slots=True)
class RuleStatus:
    """One rule of one camera, as status, MQTT and metrics show it."""

    rule: Rule
    minimum: float | str
    """Frames per second for ``fps``, ``WIDTHxHEIGHT`` for ``resolution``."""
    measured: float | str | None = None
    """The last measured value (``5.8``, ``320x240``), None before any."""
    checked: bool = False
    """Judged now: the camera is online and past :data:`SETTLE`."""
    ok: bool = True
    """False only while the rule is broken (judged, and below its minimum for :data:`HOLD`)."""
    ratio: float | None = None
    """Compliant share of the last 24 h (judged time only), None before any judged time."""
    share: Share = field(default_factory=Share)
    judged: bool | None = None
    """The verdict of the last look, before :data:`HOLD` (None: not judged): the share counts
    the time until the next look with it."""
    pending: bool | None = None
    """A verdict other than ``ok`` seen since ``pending_since``, not yet held for :data:`HOLD`."""
    pending_since: float = 0.0
    reported: bool = True
    """The verdict last announced: a camera is presumed compliant until shown otherwise."""


@dataclass(frozen=True, slots=True)
class Change:
    """A rule's verdict changed: announce it (event and log line)."""

    rule: Rule
    ok: bool
    measured: float | str
    minimum: float | str


class Compliance:
    """The two rules of one camera, fed by the supervision loop from the camera's mirror."""

    def __init__(self, minimum: Minimum) -> None:
        self.minimum = minimum
        self.rules: dict[Rule, RuleStatus] = {
            "fps": RuleStatus("fps", minimum.fps),
            "resolution": RuleStatus("resolution", f"{minimum.width}x{minimum.height}"),
        }
        self._online_since: float | None = None
        self._last: float | None = None

    def set_minimum(self, minimum: Minimum) -> None:
        """Judge against ``minimum`` from the next look on; the shares so far are kept."""
        self.minimum = minimum
        self.rules["fps"].minimum = minimum.fps
        self.rules["resolution"].minimum = f"{minimum.width}x{minimum.height}"

    def observe(
        self, now: float, *, online: bool, fps: float, width: int, height: int
    ) -> list[Change]:
        """Judge the camera as of ``now`` (``online``: connected and not stalled, with the
        mirror's measured ``fps`` and picture size); the changes to announce."""
        step = 0.0 if self._last is None else min(max(0.0, now - self._last), _MAX_STEP)
        self._last = now
        if not online:
            self._online_since = None
        elif self._online_since is None:
            self._online_since = now
        settled = self._online_since is not None and now - self._online_since >= SETTLE
        minimum = self.minimum
        verdicts: dict[Rule, tuple[bool, float | str | None]] = {
            "fps": (fps >= minimum.fps - FPS_TOLERANCE, round(fps, 1)),
            "resolution": (
                width >= minimum.width and height >= minimum.height,
                f"{width}x{height}" if width > 0 else None,  # size not known yet
            ),
        }
        changes: list[Change] = []
        for name, status in self.rules.items():
            if status.judged is not None:  # the time since the last look, as it was then
                status.share.add(now, step, status.judged)
            good, measured = verdicts[name]
            if online and measured is not None:
                status.measured = measured
            if not settled or measured is None:
                status.checked, status.ok, status.pending, status.judged = False, True, None, None
            else:
                status.judged = good
                change = _judge(status, now, good)
                if change is not None:
                    changes.append(change)
            status.ratio = status.share.ratio(now)
        return changes


def _judge(status: RuleStatus, now: float, good: bool) -> Change | None:
    if not status.checked:
        # A new online spell starts from what was last announced: a camera that reconnects
        # still broken is shown broken at once, and is not announced again.
        status.checked, status.ok, status.pending = True, status.reported, None
    if good == status.ok:
        status.pending = None
        return None
    if status.pending != good:
        status.pending, status.pending_since = good, now
        return None
    if now - status.pending_since < HOLD:
        return None
    status.ok, status.pending = good, None
    if good == status.reported:
        return None
    status.reported = good
    measured = status.measured if status.measured is not None else "?"
    return Change(status.rule, good, measured, status.minimum)


class RulePayload(TypedDict):
    """One rule of a camera's ``compliance`` (status document and MQTT camera status)."""

    ok: bool
    """False only while the rule is broken."""
    checked: bool
    """Judged now (online, settled); while not, ``ok`` is true and says nothing."""
    measured: float | str | None
    minimum: float | str
    ratio_24h: float | None
    """Compliant share of the judged time of the last 24 h (0 to 1), None before any."""


def compliance_document(rules: Mapping[Rule, RuleStatus]) -> dict[str, RulePayload]:
    """``compliance`` as status and MQTT show it: one entry per rule."""
    return {
        name: {
            "ok": status.ok,
            "checked": status.checked,
            "measured": status.measured,
            "minimum": status.minimum,
            "ratio_24h": None if status.ratio is None else round(status.ratio, 4),
        }
        for name, status in rules.items()
    }


def announce(camera: str, change: Change, events: EventSink) -> None:
    """Say a change everywhere: a log line (warning when broken, info when back) and an event."""
    what = _WHAT[change.rule]
    if change.ok:
        log.info(
            "camera %s: %s back to %s (minimum %s)", camera, what, change.measured, change.minimum
        )
    else:
        log.warning(
            "camera %s: %s %s below the legal minimum of %s (arrêté of 3 August 2007)",
            camera,
            what,
            change.measured,
            change.minimum,
        )
    events.emit(
        "compliance_restored" if change.ok else "compliance_broken",
        camera=camera,
        rule=change.rule,
        measured=change.measured,
        minimum=change.minimum,
    )


_WHAT: dict[Rule, str] = {"fps": "frame rate (fps)", "resolution": "picture size"}
