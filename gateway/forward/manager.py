"""Forward sessions: who may start them, how long they last, and the journal of each one.

French law (Code de la construction et de l'habitation, L126-1-1) allows images of a
residence's common areas to reach the police in real time and only for the time of an
intervention. So a forward is ``on_demand`` by default: a session is started by a command with a
reason and a duration capped by ``uplink.max_session``, stops by itself at the end, and can be
stopped early. ``continuous`` cameras forward from start to stop of the daemon. Every start,
extension and stop is written to the audit journal before it is reported done; a start that
cannot be journalled does not happen.

:meth:`ForwardManager.request` is the single entry point for every command channel.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.audit import AuditError, AuditLog
from gateway.clock import utc_iso
from gateway.config import CameraConfig, UplinkConfig
from gateway.events import EventBus
from gateway.forward.commands import ForwardCommand, ForwardResult
from gateway.forward.connection import TlsPolicy
from gateway.forward.target import ForwardTotals, UplinkTarget
from gateway.ratelimit import RateLimitedLog
from gateway.state import ForwardStatus
from gateway.units import format_duration, format_size

__all__ = ["ForwardLink", "ForwardManager"]

log = logging.getLogger(__name__)

STARTED, EXTENDED, STOPPED = "forward_started", "forward_extended", "forward_stopped"
_refusals = RateLimitedLog(log, "%d more forward commands refused in the last minute")


class ForwardLink(Protocol):
    """How a session reaches the camera's packet path (its worker process)."""

    def start_forward(self, session: str, target: UplinkTarget, queue: float) -> None:
        """Push the camera to ``target`` until stopped (across worker restarts)."""
        ...

    def stop_forward(self, session: str, timeout: float = 2.0) -> ForwardTotals:
        """Stop the push; the camera's forward counters when it stopped."""
        ...


@dataclass(slots=True)
class _Session:
    id: str
    camera: str
    origin: str
    requested_by: str
    reason: str
    requested: float | None
    started: float
    started_monotonic: float
    deadline: float | None
    bytes_at_start: int
    dropped_at_start: int = 0
    reconnects_at_start: int = 0


class ForwardManager:
    def __init__(
        self,
        *,
        site_id: str,
        uplink: UplinkConfig | None,
        cameras: Mapping[str, CameraConfig],
        statuses: Mapping[str, ForwardStatus],
        links: Mapping[str, ForwardLink],
        audit: AuditLog,
        events: EventBus | None = None,
    ) -> None:
        self.site_id = site_id
        self.events = events
        self.uplink = uplink
        self.cameras = dict(cameras)
        self.statuses = dict(statuses)
        self.links = dict(links)
        self.audit = audit
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="gateway:forward-sessions", daemon=True
        )

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._close_interrupted()
        for camera_id in list(self.cameras):
            self._prepare(camera_id)
        self._thread.start()

    def set_camera(
        self,
        camera_id: str,
        camera: CameraConfig | None,
        status: ForwardStatus | None = None,
        link: ForwardLink | None = None,
        *,
        reason: str = "camera_changed",
    ) -> None:
        """Add, replace (``camera`` given) or remove (None) a camera, on a reload.

        A session of a replaced or removed camera is stopped and journalled with ``reason``.
        """
        with self._lock:
            if camera_id in self._sessions:
                self._stop(camera_id, stop_reason=reason, command=None)
            if camera is None:
                self.cameras.pop(camera_id, None)
                self.statuses.pop(camera_id, None)
                self.links.pop(camera_id, None)
                return
            assert status is not None and link is not None
            self.cameras[camera_id] = camera
            self.statuses[camera_id] = status
            self.links[camera_id] = link
            self._prepare(camera_id)

    def _prepare(self, camera_id: str) -> None:
        """Set the camera's forward mode in its status; start it if continuous."""
        camera, status = self.cameras[camera_id], self.statuses[camera_id]
        status.mode = camera.forward if self.uplink is not None else "off"
        if self.uplink is not None and camera.forward != "off":
            status.target = self.uplink.display_target(self.site_id, camera_id)
        if self.uplink is None or camera.forward != "continuous":
            return
        log.warning(
            "camera %s forwards continuously: CCH L126-1-1 allows transmission to the "
            "police only in real time and for the time of an intervention",
            camera_id,
        )
        with self._lock:
            try:
                self._start(
                    camera_id,
                    origin="configuration",
                    requested_by="configuration",
                    reason="continuous forwarding set in the configuration",
                    duration=None,
                )
            except AuditError as exc:
                log.error("camera %s: continuous forward not started: %s", camera_id, exc)

    def stop_all(self, reason: str = "shutdown") -> None:
        with self._lock:
            self._stopping = True
            for camera_id in list(self._sessions):
                self._stop(camera_id, stop_reason=reason, command=None)
            self._wake.notify_all()

    # -- the entry point -----------------------------------------------------------------------

    def request(self, command: ForwardCommand) -> ForwardResult:
        """Carry out a validated command; the result says what happened or why not."""
        with self._lock:
            refusal = self._refusal(command)
            if refusal is not None:
                _refusals.log(
                    "forward %s for camera %s refused (%s, by %s): %s",
                    command.action,
                    command.camera,
                    command.origin,
                    command.requested_by,
                    refusal,
                )
                self.rejected(command.camera, refusal, origin=command.origin)
                return ForwardResult(False, refusal)
            try:
                if command.action == "stop":
                    return self._stop(command.camera, stop_reason="stopped", command=command)
                if command.camera in self._sessions:
                    return self._extend(command)
                return self._start(
                    command.camera,
                    origin=command.origin,
                    requested_by=command.requested_by,
                    reason=command.reason or "",
                    duration=command.duration,
                )
            except AuditError as exc:
                log.error(
                    "forward %s for camera %s not done: %s", command.action, command.camera, exc
                )
                return ForwardResult(False, f"{exc}; nothing was changed")

    def rejected(self, camera: str | None, reason: str, *, origin: str) -> None:
        """Report a refused command as an event (any channel may call it)."""
        if self.events is not None:
            self.events.emit(
                "command_rejected",
                camera=camera if camera in self.cameras else None,
                reason=reason,
                origin=origin,
            )

    def _refusal(self, command: ForwardCommand) -> str | None:
        camera = self.cameras.get(command.camera)
        if camera is None:
            known = ", ".join(sorted(self.cameras)) or "none"
            return f"unknown camera {command.camera!r} (cameras: {known})"
        if self.uplink is None:
            return "no uplink is configured on this gateway"
        if self._stopping:
            return "the gateway is stopping"
        if camera.forward == "off":
            return f"forwarding is off for camera {command.camera}"
        if camera.forward == "continuous":
            return (
                f"camera {command.camera} forwards continuously (configuration); "
                "change the configuration to stop it"
            )
        if command.action == "stop":
            if command.camera not in self._sessions:
                return f"no forward session is active for camera {command.camera}"
            return None
        duration = command.duration or 0.0
        if duration > self.uplink.max_session:
            return (
                f"duration {format_duration(duration)} exceeds uplink.max_session "
                f"({format_duration(self.uplink.max_session)}): transmission is limited to the "
                "time of the intervention"
            )
        return None

    # -- sessions ------------------------------------------------------------------------------

    def _start(
        self,
        camera_id: str,
        *,
        origin: str,
        requested_by: str,
        reason: str,
        duration: float | None,
    ) -> ForwardResult:
        """Journal, then attach a pusher; ``duration`` None means continuous."""
        assert self.uplink is not None
        session_id = uuid.uuid4().hex[:12]
        requested = duration
        target = self._target(camera_id)
        self.audit.append(
            STARTED,
            session=session_id,
            site=self.site_id,
            camera=camera_id,
            mode="continuous" if requested is None else "on_demand",
            origin=origin,
            requested_by=requested_by,
            reason=reason,
            requested_duration=requested,
            max_session=None if requested is None else self.uplink.max_session,
            target=target.display,
        )
        status = self.statuses[camera_id]
        self.links[camera_id].start_forward(session_id, target, self.uplink.queue)
        now, mono = time.time(), time.monotonic()
        session = _Session(
            id=session_id,
            camera=camera_id,
            origin=origin,
            requested_by=requested_by,
            reason=reason,
            requested=requested,
            started=now,
            started_monotonic=mono,
            deadline=None if requested is None else mono + requested,
            bytes_at_start=status.bytes_sent,
            dropped_at_start=status.dropped_frames,
            reconnects_at_start=status.reconnects,
        )
        self._sessions[camera_id] = session
        status.sessions += 1
        status.session_id = session_id
        status.requested_by = requested_by
        status.reason = reason
        status.started = now
        status.ends = None if requested is None else now + requested
        if status.state == "off":
            status.state = "connecting"
            status.since = now
        self._wake.notify_all()
        if self.events is not None:
            self.events.emit(
                "forward_started",
                camera=camera_id,
                session=session_id,
                requested_by=requested_by,
                duration=requested,
            )
        log.info(
            "camera %s: forward session %s started by %s (%s)%s",
            camera_id,
            session_id,
            requested_by,
            origin,
            "" if requested is None else f" for {format_duration(requested)}",
        )
        return ForwardResult(True, "forwarding started", self._describe(session))

    def _extend(self, command: ForwardCommand) -> ForwardResult:
        session = self._sessions[command.camera]
        if session.deadline is None:
            return ForwardResult(False, f"camera {command.camera} forwards continuously")
        assert command.duration is not None
        self.audit.append(
            EXTENDED,
            session=session.id,
            site=self.site_id,
            camera=command.camera,
            origin=command.origin,
            requested_by=command.requested_by,
            reason=command.reason,
            requested_duration=command.duration,
        )
        session.deadline = time.monotonic() + command.duration
        self.statuses[command.camera].ends = time.time() + command.duration
        self._wake.notify_all()
        log.info(
            "camera %s: forward session %s now ends in %s (asked by %s)",
            command.camera,
            session.id,
            format_duration(command.duration),
            command.requested_by,
        )
        return ForwardResult(True, "forwarding extended", self._describe(session))

    def _stop(
        self, camera_id: str, *, stop_reason: str, command: ForwardCommand | None
    ) -> ForwardResult:
        session = self._sessions.pop(camera_id)
        totals = self.links[camera_id].stop_forward(session.id)
        status = self.statuses[camera_id]
        duration = time.monotonic() - session.started_monotonic
        sent = totals.bytes_sent - session.bytes_at_start
        entry = {
            "session": session.id,
            "site": self.site_id,
            "camera": camera_id,
            "stop_reason": stop_reason,
            "origin": command.origin if command else "gateway",
            "stopped_by": command.requested_by if command else "gateway",
            "reason": command.reason if command else None,
            "started": utc_iso(session.started),
            "requested_duration": session.requested,
            "duration": round(duration, 3),
            "bytes_sent": sent,
            "dropped_frames": totals.dropped_frames - session.dropped_at_start,
            "reconnects": totals.reconnects - session.reconnects_at_start,
        }
        try:
            self.audit.append(STOPPED, **entry)
        except AuditError as exc:
            # The forward is stopped anyway: stopping can never be refused.
            log.error("forward session %s stopped but not journalled: %s", session.id, exc)
        status.session_id = status.requested_by = status.reason = None
        status.started = status.ends = None
        if self.events is not None:
            self.events.emit(
                "forward_stopped",
                camera=camera_id,
                session=session.id,
                stop_reason=stop_reason,
                duration=entry["duration"],
                bytes_sent=sent,
            )
        log.info(
            "camera %s: forward session %s stopped (%s) after %s, %s sent",
            camera_id,
            session.id,
            stop_reason,
            format_duration(duration),
            format_size(sent),
        )
        return ForwardResult(True, "forwarding stopped", entry)

    def _describe(self, session: _Session) -> dict[str, Any]:
        status = self.statuses[session.camera]
        return {
            "session": session.id,
            "camera": session.camera,
            "requested_by": session.requested_by,
            "started": utc_iso(session.started),
            "ends": utc_iso(status.ends) if status.ends else None,
            "target": status.target,
        }

    def _target(self, camera_id: str) -> UplinkTarget:
        assert self.uplink is not None
        tls = self.uplink.tls
        policy = None
        if self.uplink.secure:
            policy = TlsPolicy(
                ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
                pins=tuple(tls.pin_sha256) if tls else (),
                cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
                key_file=str(tls.key_file) if tls and tls.key_file else None,
            )
        return UplinkTarget(
            push_url=self.uplink.push_url(self.site_id, camera_id),
            display=self.uplink.display_target(self.site_id, camera_id),
            tls=policy,
            connect_timeout=self.uplink.connect_timeout,
        )

    # -- timer ---------------------------------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            while not self._stopping:
                now = time.monotonic()
                for camera_id, session in list(self._sessions.items()):
                    if session.deadline is not None and now >= session.deadline:
                        self._stop(camera_id, stop_reason="expired", command=None)
                deadlines = [s.deadline for s in self._sessions.values() if s.deadline]
                wait = min([1.0, *(d - time.monotonic() for d in deadlines)])
                self._wake.wait(max(0.05, wait))

    def _close_interrupted(self) -> None:
        try:
            unfinished = self.audit.unfinished(STARTED, STOPPED)
        except AuditError as exc:
            log.error("forward journal unreadable: %s", exc)
            return
        for entry in unfinished:
            try:
                self.audit.append(
                    STOPPED,
                    session=entry["session"],
                    site=entry.get("site", self.site_id),
                    camera=entry.get("camera"),
                    stop_reason="interrupted",
                    origin="gateway",
                    stopped_by="gateway",
                    reason="the gateway stopped without closing this session",
                    started=entry.get("time"),
                    requested_duration=entry.get("requested_duration"),
                    duration=None,
                    bytes_sent=None,
                    dropped_frames=None,
                    reconnects=None,
                )
            except AuditError as exc:
                log.error("cannot close interrupted forward sessions in the journal: %s", exc)
                return
            log.warning(
                "forward session %s of camera %s was interrupted (the gateway stopped); "
                "journalled as such",
                entry["session"],
                entry.get("camera"),
            )
