"""The camera's integrity watch: a fan-out consumer that analyses one keyframe per interval.

Packets that are not a keyframe due for analysis are let go on the source's thread at the cost
of one comparison (the reader's ``inline`` hook): the watch's thread wakes only for the keyframes
it decodes, one every ``interval`` seconds at most. It is a consumer like the others, behind its
own bounded queue: if it falls behind it drops, never holding up the recorder or the forward.

Each analysed keyframe goes through :class:`gateway.analysis.CameraMonitor`; the result is kept
in :attr:`IntegrityWatch.status` for the worker's report, and every condition raised or cleared
is handed to ``on_change`` with the keyframes before and after it, for the journal.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.analysis import (
    AnalysisError,
    CameraMonitor,
    Change,
    KeyframeDecoder,
    Settings,
    Status,
    Zone,
)
from gateway.analysis.decode import DECODABLE
from gateway.config.analysis import AnalysisConfig, CameraAnalysisConfig
from gateway.media.packet import Packet, SessionInfo
from gateway.ratelimit import RateLimitedLog
from gateway.telemetry.state import PrivacyState, Shift, TamperStatus
from gateway.watch.snapshot import Keyframe

__all__ = [
    "QUEUE_BYTES",
    "QUEUE_SECONDS",
    "IntegrityWatch",
    "Transition",
    "settings_of",
    "zones_of",
]

log = logging.getLogger(__name__)
_failed = RateLimitedLog(log, "%d more keyframes could not be analysed in the last minute")

QUEUE_SECONDS: Final = 4.0
"""Seconds of packets the watch may hold before it drops (it only ever holds keyframes)."""
QUEUE_BYTES: Final = 16 * 1024 * 1024
EARLY: Final = 0.2
"""Seconds before the interval is over that a keyframe is still taken (a 1 s GOP then gives
exactly one keyframe per 2 s interval, not one per 3 s)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition raised or cleared, with the pictures on either side of it."""

    change: Change
    status: Status
    before: Keyframe | None
    """Raised: the last keyframe analysed while no condition was raised or pending; cleared:
    the keyframe that raised it."""
    after: Keyframe


def settings_of(analysis: AnalysisConfig, camera: CameraAnalysisConfig) -> Settings:
    return Settings(
        min_duration=analysis.min_duration,
        interval=analysis.interval,
        move_percent=analysis.move_percent,
        move_degrees=analysis.move_degrees,
        zones=zones_of(camera),
    )


def zones_of(camera: CameraAnalysisConfig) -> tuple[Zone, ...]:
    return tuple(Zone(z.name, z.points) for z in camera.privacy_zones)


class IntegrityWatch:
    """One camera's integrity watch (a :class:`gateway.stream.Consumer`)."""

    name = "analysis"

    def __init__(
        self, camera_id: str, settings: Settings, on_change: Callable[[Transition], None]
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings
        self._on_change = on_change
        self.monitor = CameraMonitor(settings)
        self.status = TamperStatus(state="unknown", privacy="unknown" if settings.zones else "none")
        self.latest: Keyframe | None = None
        """The camera's last keyframe (analysed or not): what a snapshot shows."""
        self._decoder: KeyframeDecoder | None = None
        self._codec = ""
        self._extradata: bytes | None = None
        self._next_at = 0.0
        self._calm: Keyframe | None = None
        self._raised_by: dict[str, Keyframe] = {}
        self._masked_since: float | None = None
        self._relearn = threading.Event()
        self._last_key: float | None = None
        self._spacing: float | None = None
        """Seconds between the camera's last two keyframes."""

    # -- the source's thread -------------------------------------------------------------------

    def take_now(self, packet: Packet) -> bool:
        """The reader's inline hook: True (done with) for every packet but a keyframe due."""
        if not packet.starts_gop:
            return True
        if self._decoder is not None and packet.received >= self._next_at:
            return False
        self._space(packet)
        self.latest = self._keyframe(packet)
        return True

    # -- the watch's thread --------------------------------------------------------------------

    def on_session_start(self, info: SessionInfo) -> None:
        video = info.video
        self._decoder = None
        self._next_at = 0.0
        self._last_key = self._spacing = None
        if video is None:
            self.status.error = "the camera sends no video"
            return
        self._codec, self._extradata = video.codec_name, video.extradata
        if self._codec not in DECODABLE:
            self.status.error = f"{self._codec} video cannot be analysed (only H.264 and H.265)"
            log.warning("camera %s: %s", self.camera_id, self.status.error)
            return
        self._decoder = KeyframeDecoder(self._codec, self._extradata)
        self.status.error = None

    def on_packet(self, packet: Packet) -> None:
        if not packet.starts_gop:
            return
        self._space(packet)
        keyframe = self._keyframe(packet)
        self.latest = keyframe
        decoder = self._decoder
        if decoder is None or packet.received < self._next_at:
            return
        self._next_at = packet.received + self.settings.interval - EARLY
        self._follow_gop()
        if self._relearn.is_set():
            self._relearn.clear()
            self.monitor.relearn()
        try:
            frame = decoder.decode(packet)
        except AnalysisError as exc:
            self.status.error = str(exc)
            _failed.log("camera %s: keyframe not analysed: %s", self.camera_id, exc)
            return
        self.status.error = None
        result = self.monitor.observe(frame, keyframe.at)
        self._update(result, keyframe)

    def on_session_end(self, reason: str) -> None:
        self._decoder = None

    def on_tick(self) -> None:
        if self._relearn.is_set() and self._decoder is None:
            self._relearn.clear()
            self.monitor.relearn()

    def on_close(self) -> None:
        self._decoder = None

    # -- any thread ----------------------------------------------------------------------------

    def relearn(self) -> None:
        """Learn the camera's view again from its next healthy keyframes (after a re-aim)."""
        self._relearn.set()

    # -- inside ----------------------------------------------------------------------------------

    def _space(self, packet: Packet) -> None:
        if self._last_key is not None:
            self._spacing = packet.received - self._last_key
        self._last_key = packet.received

    def _follow_gop(self) -> None:
        """Keyframes further apart than the monitor allows between two looks (a camera with a
        long GOP) would have every condition forgotten before it holds: judge over them."""
        spacing, settings = self._spacing, self.monitor.settings
        if spacing is None or spacing <= settings.max_gap / 2 or self.monitor.reference is not None:
            return  # once learned, a long gap is a hiccup, not the camera's GOP
        slower = dataclasses.replace(settings, interval=1.1 * spacing)
        log.info(
            "camera %s: a keyframe every %.1f s, more than analysis.interval: each is analysed "
            "and conditions are judged over them (a change is told within min_duration + 2 "
            "keyframes)",
            self.camera_id,
            spacing,
        )
        self.monitor = CameraMonitor(slower)  # still learning: little is lost

    def _keyframe(self, packet: Packet) -> Keyframe:
        return Keyframe(bytes(packet.data), self._codec, self._extradata, time.time())

    def _update(self, result: Status, keyframe: Keyframe) -> None:
        status = self.status
        if result.state != status.state:
            status.since = keyframe.at
        status.state = result.state
        status.conditions = tuple(sorted(result.conditions))
        moved = result.judgement.displacement
        if moved is not None:
            status.shift = Shift(moved.dx, moved.dy, moved.percent, moved.rotation)
        elif result.judgement.covered or not result.judgement.recognised:
            status.shift = None
        status.unmasked = result.unmasked
        status.keyframes += 1
        status.analysed_at = keyframe.at
        if self.settings.zones:
            status.privacy = self._privacy(result, keyframe.at)
        for change in result.changes:
            before = self._raised_by.pop(change.condition, None) if not change.active else None
            if change.active:
                before = self._calm
                self._raised_by[change.condition] = keyframe
            self._report(Transition(change, result, before, keyframe))
        if not result.conditions and not result.unmasked and result.state == "ok":
            self._calm = keyframe

    def _privacy(self, result: Status, at: float) -> PrivacyState:
        """``missing`` while the condition is raised; ``ok`` once every zone has been seen
        masked for ``min_duration`` (a fresh worker cannot vouch for masks it has not watched);
        ``unknown`` until then."""
        if result.privacy_mask_missing:
            self._masked_since = None
            return "missing"
        if result.unmasked or result.judgement.covered:
            self._masked_since = None
        elif self._masked_since is None:
            self._masked_since = at
        if self._masked_since is not None and at - self._masked_since >= self.settings.min_duration:
            return "ok"
        return self.status.privacy if self.status.privacy == "ok" else "unknown"

    def _report(self, transition: Transition) -> None:
        try:
            self._on_change(transition)
        except Exception:
            log.exception("camera %s: integrity change not reported", self.camera_id)
