"""One camera's pull loop: connect, normalise, publish to the fan-out, reconnect on failure.

Retries start fast (a camera that reboots is recorded again within about two seconds of
answering) and are capped at :data:`RETRY_MAX`; a camera refusing our credentials, or sending
more than its bitrate ceiling, is retried slowly, since retrying will not fix it, and logged
once rather than on every attempt.

The loop runs in the camera's worker process; :meth:`PullLoop.progress` tells the supervisor
whether it is stuck in a connection attempt or connected without pictures.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from gateway.backoff import Backoff
from gateway.config import CameraConfig
from gateway.host.threads import name_native_thread
from gateway.media.normalize import Normalizer
from gateway.media.packet import SessionInfo
from gateway.source import Source, SourceError, open_source
from gateway.stream import Stream
from gateway.telemetry.events import EventSink
from gateway.telemetry.state import CameraStatus
from gateway.units import format_duration

__all__ = ["RETRY_MAX", "Progress", "PullLoop"]

log = logging.getLogger(__name__)

RETRY_INITIAL = 0.2
RETRY_MAX = 1.0
AUTH_RETRY_MAX = 60.0
REMIND_EVERY = 300.0
"""Seconds between reminders that a camera is still offline."""
OVER_CEILING_WINDOWS = 2
"""Consecutive rate windows (2 s each) over the bitrate ceiling that end a session: a burst of
one window (a big keyframe after a scene change) is not a flood."""


@dataclass(frozen=True, slots=True)
class Progress:
    opening_for: float
    """Seconds inside the current connection attempt (0: not connecting)."""
    connected_for: float
    """Seconds since the current session opened (0: no session)."""
    picture_age: float | None
    """Seconds since the last video frame of this session (None: none yet)."""


class PullLoop:
    """Owns the source thread of one camera."""

    def __init__(
        self,
        config: CameraConfig,
        stream: Stream,
        status: CameraStatus,
        *,
        role: str = "",
        events: EventSink | None = None,
        max_bitrate: float = 0.0,
    ) -> None:
        self.config = config
        self._events = events
        self.stream = stream
        self.status = status
        self._label = f"camera {config.id}" + (f" ({role})" if role else "")
        self._stop = threading.Event()
        name = f"{config.id}/{role.replace(' ', '-') or 'source'}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._backoff = Backoff(initial=RETRY_INITIAL, maximum=RETRY_MAX)
        self._auth_backoff = Backoff(initial=5.0, maximum=AUTH_RETRY_MAX)
        self._last_reason: str | None = None
        self._last_remind = 0.0
        self._opening_since: float | None = None
        self._session_since: float | None = None
        self._max_bitrate = max_bitrate
        """Bits per second (0: no ceiling)."""
        self.first_attempt = threading.Event()
        """Set once the first connection attempt has finished, whatever its outcome."""

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> Progress:
        now = time.monotonic()
        opening, session = self._opening_since, self._session_since
        last = self.status.last_frame_monotonic
        age = None
        if session is not None and last is not None and last >= session:
            age = now - last
        return Progress(
            opening_for=0.0 if opening is None else now - opening,
            connected_for=0.0 if session is None else now - session,
            picture_age=age,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        name_native_thread()
        while not self._stop.is_set():
            source = open_source(self.config)
            try:
                self._session(source)
                reason = "stopped"
                auth = False
            except SourceError as exc:
                reason, auth = exc.reason, exc.auth
            except Exception as exc:  # a bug must not end the camera's thread
                log.exception("%s: unexpected error", self._label)
                reason, auth = f"internal error: {type(exc).__name__}", False
            finally:
                source.close()
                self.first_attempt.set()
            if self._stop.is_set():
                break
            self._offline(reason, auth=auth)
            delay = self._auth_backoff.next() if auth else self._backoff.next()
            if not auth:
                self._auth_backoff.reset()
            self._stop.wait(delay)

    def _session(self, source: Source) -> None:
        self._opening_since = time.monotonic()
        try:
            tracks = source.open()
        finally:
            self._opening_since = None
        self.first_attempt.set()
        self._session_since = time.monotonic()
        info = SessionInfo(
            camera_id=self.config.id, session=self.status.sessions + 1, tracks=tracks
        )
        self.status.session_started(info)
        self._online(info)
        normalizer = Normalizer(tracks, camera_id=self.config.id)
        self.stream.start_session(info)
        started = time.monotonic()
        ceiling = _Ceiling(self._max_bitrate)
        try:
            while not self._stop.is_set():
                raw = source.read()
                packet = normalizer.push(raw)
                if packet is not None:
                    self.status.packet(packet)
                    self.stream.publish(packet)
                    ceiling.check(self.status)
                if self._backoff.attempts and time.monotonic() - started > 5:
                    self._backoff.reset()  # a session that holds counts as a recovery
        finally:
            self._session_since = None
            self.status.timestamp_repairs += normalizer.repaired
            self.status.session_ended()
            self.stream.end_session("camera disconnected")

    def _online(self, info: SessionInfo) -> None:
        was_offline = self.status.state in ("offline", "error")
        offline_for = time.time() - self.status.since
        self.status.set_state("online")
        tracks = ", ".join(t.describe() for t in info.tracks)
        if was_offline:
            log.info(
                "%s: online again after %s offline (%s)",
                self._label,
                format_duration(offline_for),
                tracks,
            )
        else:
            log.info("%s: online (%s)", self._label, tracks)
        self._last_reason = None
        if self._events is not None:
            self._events.emit("camera_online", camera=self.config.id, tracks=tracks)

    def _offline(self, reason: str, *, auth: bool) -> None:
        changed = self.status.set_state("error" if auth else "offline", reason)
        if changed and self._events is not None:
            self._events.emit("camera_offline", camera=self.config.id, reason=reason)
        now = time.monotonic()
        if changed or reason != self._last_reason:
            log.warning("%s (%s): offline: %s; retrying", self._label, self.status.url, reason)
            self._last_remind = now
        elif now - self._last_remind >= REMIND_EVERY:
            log.warning(
                "%s: still offline after %s: %s",
                self._label,
                format_duration(time.time() - self.status.since),
                reason,
            )
            self._last_remind = now
        self._last_reason = reason


class _Ceiling:
    """Ends a session whose camera sends more than its bitrate ceiling, window after window."""

    def __init__(self, max_bitrate: float) -> None:
        self._max = max_bitrate
        self._window = 0.0
        self._over = 0

    def check(self, status: CameraStatus) -> None:
        if not self._max or status.rate_window == self._window:
            return
        self._window = status.rate_window
        self._over = self._over + 1 if status.bitrate > self._max else 0
        if self._over >= OVER_CEILING_WINDOWS:
            raise SourceError(
                f"sending {status.bitrate / 1e6:.1f} Mbit/s, over its ceiling of "
                f"{self._max / 1e6:g} Mbit/s (cameras[].max_bitrate)",
                auth=True,
            )
