"""One camera's pull loop: connect, normalise, publish to the fan-out, reconnect on failure.

Retries start fast (a camera that reboots is recorded again within about two seconds of
answering) and are capped at :data:`RETRY_MAX`; a camera refusing our credentials is retried
slowly, since retrying will not fix it, and logged once rather than on every attempt.
"""

from __future__ import annotations

import logging
import threading
import time

from gateway.backoff import Backoff
from gateway.config import CameraConfig
from gateway.events import EventBus
from gateway.media.normalize import Normalizer
from gateway.media.packet import SessionInfo
from gateway.source import Source, SourceError, open_source
from gateway.state import CameraStatus
from gateway.stream import Stream
from gateway.threads import name_native_thread
from gateway.units import format_duration

__all__ = ["RETRY_MAX", "CameraWorker", "join_workers"]

log = logging.getLogger(__name__)

RETRY_INITIAL = 0.2
RETRY_MAX = 1.0
AUTH_RETRY_MAX = 60.0
REMIND_EVERY = 300.0
"""Seconds between reminders that a camera is still offline."""

_running: set[CameraWorker] = set()
_running_lock = threading.Lock()


def join_workers(timeout: float) -> list[str]:
    """Wait up to ``timeout`` for every stopped camera thread to leave FFmpeg and end.

    Returns the names of those still running: a connection attempt holds its thread in FFmpeg
    for up to the open timeout, and the interpreter cannot shut down safely around it.
    """
    deadline = time.monotonic() + timeout
    with _running_lock:
        stopped = [worker for worker in _running if worker.stopping]
    for worker in stopped:
        worker.join(max(0.0, deadline - time.monotonic()))
    return sorted(worker.name for worker in stopped if worker.alive)


class CameraWorker:
    """Owns the source thread of one camera."""

    def __init__(
        self,
        config: CameraConfig,
        stream: Stream,
        status: CameraStatus,
        *,
        role: str = "",
        events: EventBus | None = None,
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
        self._blocked_since: float | None = None
        self.first_attempt = threading.Event()
        """Set once the first connection attempt has finished, whatever its outcome."""

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def name(self) -> str:
        return self._thread.name

    def stuck_for(self) -> float:
        """Seconds the source has been inside one open or read (0 when it is not)."""
        since = self._blocked_since
        return 0.0 if since is None else time.monotonic() - since

    def start(self) -> None:
        with _running_lock:
            _running.add(self)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._pull()
        finally:
            with _running_lock:
                _running.discard(self)

    def _pull(self) -> None:
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
        self._blocked_since = time.monotonic()
        try:
            tracks = source.open()
        finally:
            self._blocked_since = None
        self.first_attempt.set()
        info = SessionInfo(
            camera_id=self.config.id, session=self.status.sessions + 1, tracks=tracks
        )
        self.status.session_started(info)
        self._online(info)
        normalizer = Normalizer(tracks, camera_id=self.config.id)
        self.stream.start_session(info)
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                self._blocked_since = time.monotonic()
                raw = source.read()
                self._blocked_since = None
                packet = normalizer.push(raw)
                if packet is not None:
                    self.status.packet(packet)
                    self.stream.publish(packet)
                if self._backoff.attempts and time.monotonic() - started > 5:
                    self._backoff.reset()  # a session that holds counts as a recovery
        finally:
            self._blocked_since = None
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
