"""Longer than 400 lines: the session table and each session's life cycle (claim under the lock,
open, extend, close outside it) must be read together to check that no lock is held across I/O;
the policy and the journal are modules of their own.

Forward sessions: the table of them, their life cycle, and the one entry point of every command
channel (:meth:`ForwardManager.request`).

Whether a command may be carried out is :mod:`gateway.forward.policy` (CCH L126-1-1: on demand,
for the time of an intervention, capped by ``uplink.max_session``); what a session writes to the
audit journal is :mod:`gateway.forward.journal`. A start or an extension is journalled before it
is reported done, and one that cannot be journalled does not happen; a stop always happens.

**Nothing slow is done under the lock.** Under it: the decision, and a camera's session put in
or taken out of the table with its phase (:data:`~gateway.forward.policy.Phase`). Outside it:
the journal's ``fsync`` and the camera's link (its worker process), which may wait seconds when
the camera's pusher is wedged. A session in a busy phase (``starting``, ``extending``,
``stopping``) belongs to the one caller changing it. So the races this opens are met this way:

- two starts for one camera: the first marks it ``starting``; the second is answered at once
  that the session is being started. Likewise an extension or a stop during a start, or a start
  during a stop: a clear answer at once, never a wait, so no channel's thread waits on a camera.
- expiry while stopping: the timer takes only ``active`` sessions; a user's stop of a session
  the timer is stopping is answered that it is already being stopped. The timer stops each
  expired session on a thread of its own, so one wedged camera delays no other's expiry.
- a reload removing or changing a camera: the camera leaves the manager's cameras at once
  (commands for it get ``unknown camera`` until it is back), then the reload waits for a start
  or stop in progress on that camera alone, and stops the session that remains.
- shutdown: commands are refused, then the manager waits for what is in progress and stops
  every session at once, each on a thread of its own (wedged cameras cost their link's timeout
  once, not once each).

The lock is only ever taken alone: nothing done under it takes another lock of ours, logs, emits
an event, or calls a link or the journal.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.clock import utc_iso
from gateway.config import CameraConfig, UplinkConfig
from gateway.forward.commands import ForwardCommand, ForwardResult
from gateway.forward.journal import SessionJournal
from gateway.forward.policy import (
    BUSY,
    Extend,
    Phase,
    Refuse,
    Start,
    Stop,
    configured_start,
    decide,
    forward_mode,
    is_due,
)
from gateway.forward.target import ForwardTotals, UplinkTarget
from gateway.forward.uplink import uplink_target
from gateway.integrity.audit import AuditError, AuditLog
from gateway.ratelimit import RateLimitedLog
from gateway.telemetry.events import EventBus
from gateway.telemetry.state import ForwardStatus
from gateway.units import format_duration, format_size

__all__ = ["ForwardLink", "ForwardManager"]

log = logging.getLogger(__name__)

_refusals = RateLimitedLog(log, "%d more forward commands refused in the last minute")

TIMER_TICK = 1.0
"""Longest sleep of the expiry timer: it also wakes at every change and at the next deadline."""


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
    """One camera's session, from the moment a start is decided (``starting``) to its stop."""

    id: str
    camera: str
    origin: str
    requested_by: str
    reason: str
    requested: float | None
    deadline: float | None
    """Monotonic; None: continuous."""
    phase: Phase = "starting"
    started: float = 0.0
    started_monotonic: float = 0.0
    bytes_at_start: int = 0
    dropped_at_start: int = 0
    reconnects_at_start: int = 0


@dataclass(frozen=True, slots=True)
class _Held:
    """The parts of a camera a start or stop in progress works on, taken under the lock: a
    reload may replace the manager's entries for the camera meanwhile."""

    link: ForwardLink
    status: ForwardStatus


class ForwardManager:
    """Every camera's forward sessions; commands from any channel go through :meth:`request`,
    reloads through :meth:`set_camera`, and the expiry timer runs on its own thread."""

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
        self.journal = SessionJournal(audit, site_id=site_id)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        """Notified whenever a session changes phase or deadline: the timer and the callers
        waiting on a camera (reload, shutdown) wait on it."""
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="gateway:forward-sessions", daemon=True
        )

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self.journal.close_interrupted()
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
        Waits for a start or stop in progress on this camera only.
        """
        with self._changed:
            # From now on, commands for this camera are refused (unknown camera), so none can
            # start a session on the link the reload is about to throw away.
            self.cameras.pop(camera_id, None)
            self._changed.wait_for(lambda: not self._busy(camera_id))
            record = self._sessions.get(camera_id)
            held = self._held(camera_id) if record is not None else None
            if record is not None:
                record.phase = "stopping"
            self.statuses.pop(camera_id, None)
            self.links.pop(camera_id, None)
        if record is not None and held is not None:
            self._close(record, held, stop_reason=reason, command=None)
        if camera is None:
            return
        assert status is not None and link is not None  # noqa: S101 - for mypy: given with camera
        with self._lock:
            self.cameras[camera_id] = camera
            self.statuses[camera_id] = status
            self.links[camera_id] = link
        self._prepare(camera_id)

    def _prepare(self, camera_id: str) -> None:
        """Set the camera's forward mode in its status; start it if continuous."""
        with self._lock:
            camera, status = self.cameras[camera_id], self.statuses[camera_id]
            status.mode = forward_mode(camera, self.uplink)
            if self.uplink is not None and camera.forward != "off":
                status.target = self.uplink.display_target(self.site_id, camera_id)
            plan = configured_start(camera, self.uplink)
            record = held = None
            if plan is not None and not self._stopping and camera_id not in self._sessions:
                record = self._claim(
                    camera_id,
                    origin="configuration",
                    requested_by="configuration",
                    reason="continuous forwarding set in the configuration",
                    start=plan,
                )
                held = self._held(camera_id)
        if plan is not None:
            log.warning(
                "camera %s forwards continuously: CCH L126-1-1 allows transmission to the "
                "police only in real time and for the time of an intervention",
                camera_id,
            )
        if record is None or held is None:
            return
        try:
            self._open(record, held)
        except AuditError as exc:
            log.error("camera %s: continuous forward not started: %s", camera_id, exc)

    def stop_all(self, reason: str = "shutdown") -> None:
        """Refuse commands from now, then stop every session, all at once."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            self._changed.wait_for(
                lambda: not any(s.phase in BUSY for s in self._sessions.values())
            )
            closing = []
            for camera_id, record in self._sessions.items():
                record.phase = "stopping"
                closing.append((record, self._held(camera_id)))
        threads = [
            threading.Thread(
                target=self._close_quietly,
                args=(record, held, reason),
                name=f"gateway:forward-stop:{record.camera}",
                daemon=True,
            )
            for record, held in closing
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- the entry point -----------------------------------------------------------------------

    def request(self, command: ForwardCommand) -> ForwardResult:
        """Carry out a validated command; the result says what happened or why not."""
        with self._lock:
            record = self._sessions.get(command.camera)
            decision = decide(
                command,
                camera=self.cameras.get(command.camera),
                uplink=self.uplink,
                session=record,
                now=time.monotonic(),
                cameras=self.cameras.keys(),
                stopping=self._stopping,
            )
            if isinstance(decision, Start):
                record = self._claim(
                    command.camera,
                    origin=command.origin,
                    requested_by=command.requested_by,
                    reason=command.reason or "",
                    start=decision,
                )
            elif record is not None and not isinstance(decision, Refuse):
                record.phase = "extending" if isinstance(decision, Extend) else "stopping"
            held = None if isinstance(decision, Refuse) else self._held(command.camera)
        if isinstance(decision, Refuse):
            _refusals.log(
                "forward %s for camera %s refused (%s, by %s): %s",
                command.action,
                command.camera,
                command.origin,
                command.requested_by,
                decision.reason,
            )
            self.rejected(command.camera, decision.reason, origin=command.origin)
            return ForwardResult(False, decision.reason)
        assert record is not None and held is not None  # noqa: S101 - for mypy: set unless refused
        try:
            if isinstance(decision, Stop):
                return self._close(record, held, stop_reason="stopped", command=command)
            if isinstance(decision, Extend):
                return self._extend(record, held, decision, command)
            return self._open(record, held)
        except AuditError as exc:
            log.error("forward %s for camera %s not done: %s", command.action, command.camera, exc)
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

    # -- the table (under the lock) ------------------------------------------------------------

    def _busy(self, camera_id: str) -> bool:
        record = self._sessions.get(camera_id)
        return record is not None and record.phase in BUSY

    def _held(self, camera_id: str) -> _Held:
        return _Held(link=self.links[camera_id], status=self.statuses[camera_id])

    def _claim(
        self, camera_id: str, *, origin: str, requested_by: str, reason: str, start: Start
    ) -> _Session:
        """Put a ``starting`` session in the table: the camera is this start's until it is
        active or given up."""
        if camera_id in self._sessions:  # the decision was taken on this very table, locked
            raise RuntimeError(f"camera {camera_id} already has a session")
        record = _Session(
            id=uuid.uuid4().hex[:12],
            camera=camera_id,
            origin=origin,
            requested_by=requested_by,
            reason=reason,
            requested=start.duration,
            deadline=start.deadline,
        )
        self._sessions[camera_id] = record
        return record

    def _forget(self, record: _Session, status: ForwardStatus) -> None:
        """Take a session out of the table (a start given up, a stop done)."""
        with self._changed:
            if self._sessions.get(record.camera) is record:
                del self._sessions[record.camera]
            if status.session_id == record.id:
                status.session_id = status.requested_by = status.reason = None
                status.started = status.ends = None
            self._changed.notify_all()

    # -- sessions (outside the lock) -----------------------------------------------------------

    def _open(self, record: _Session, held: _Held) -> ForwardResult:
        """Journal, then attach a pusher; the session becomes ``active``."""
        assert self.uplink is not None  # noqa: S101 - for mypy: no uplink, no Start decision
        target = uplink_target(self.uplink, self.site_id, record.camera)
        try:
            self.journal.started(
                session=record.id,
                camera=record.camera,
                origin=record.origin,
                requested_by=record.requested_by,
                reason=record.reason,
                requested=record.requested,
                max_session=self.uplink.max_session,
                target=target.display,
            )
            held.link.start_forward(record.id, target, self.uplink.queue)
        except BaseException:
            self._forget(record, held.status)
            raise
        with self._changed:
            status = held.status
            now, mono = time.time(), time.monotonic()
            record.started, record.started_monotonic = now, mono
            record.bytes_at_start = status.bytes_sent
            record.dropped_at_start = status.dropped_frames
            record.reconnects_at_start = status.reconnects
            record.phase = "active"
            status.sessions += 1
            status.session_id = record.id
            status.requested_by = record.requested_by
            status.reason = record.reason
            status.started = now
            status.ends = None if record.deadline is None else now + record.deadline - mono
            if status.state == "off":
                status.state = "connecting"
                status.since = now
            described = _describe(record, status)
            self._changed.notify_all()
        if self.events is not None:
            self.events.emit(
                "forward_started",
                camera=record.camera,
                session=record.id,
                requested_by=record.requested_by,
                duration=record.requested,
            )
        log.info(
            "camera %s: forward session %s started by %s (%s)%s",
            record.camera,
            record.id,
            record.requested_by,
            record.origin,
            "" if record.requested is None else f" for {format_duration(record.requested)}",
        )
        return ForwardResult(True, "forwarding started", described)

    def _extend(
        self, record: _Session, held: _Held, decision: Extend, command: ForwardCommand
    ) -> ForwardResult:
        """Journal, then move the deadline; an extension not journalled leaves it as it was."""
        try:
            self.journal.extended(session=record.id, command=command)
        except BaseException:
            with self._changed:
                record.phase = "active"
                self._changed.notify_all()
            raise
        with self._changed:
            record.deadline = decision.deadline
            held.status.ends = time.time() + decision.deadline - time.monotonic()
            record.phase = "active"
            described = _describe(record, held.status)
            self._changed.notify_all()
        log.info(
            "camera %s: forward session %s now ends in %s (asked by %s)",
            record.camera,
            record.id,
            format_duration(decision.duration),
            command.requested_by,
        )
        return ForwardResult(True, "forwarding extended", described)

    def _close(
        self, record: _Session, held: _Held, *, stop_reason: str, command: ForwardCommand | None
    ) -> ForwardResult:
        """Detach the pusher (this may wait on a wedged one), journal, forget the session."""
        try:
            totals = held.link.stop_forward(record.id)
        except BaseException:
            self._forget(record, held.status)
            raise
        duration = time.monotonic() - record.started_monotonic
        sent = totals.bytes_sent - record.bytes_at_start
        entry = self.journal.stop_entry(
            session=record.id,
            camera=record.camera,
            stop_reason=stop_reason,
            command=command,
            started=record.started,
            requested=record.requested,
            duration=duration,
            bytes_sent=sent,
            dropped_frames=totals.dropped_frames - record.dropped_at_start,
            reconnects=totals.reconnects - record.reconnects_at_start,
        )
        try:
            self.journal.stopped(entry)
        except AuditError as exc:
            # The forward is stopped anyway: stopping can never be refused.
            log.error("forward session %s stopped but not journalled: %s", record.id, exc)
        self._forget(record, held.status)
        if self.events is not None:
            self.events.emit(
                "forward_stopped",
                camera=record.camera,
                session=record.id,
                stop_reason=stop_reason,
                duration=entry["duration"],
                bytes_sent=sent,
            )
        log.info(
            "camera %s: forward session %s stopped (%s) after %s, %s sent",
            record.camera,
            record.id,
            stop_reason,
            format_duration(duration),
            format_size(sent),
        )
        return ForwardResult(True, "forwarding stopped", entry)

    def _close_quietly(self, record: _Session, held: _Held, stop_reason: str) -> None:
        """:meth:`_close` on a thread of its own (expiry, shutdown): a failure is logged."""
        try:
            self._close(record, held, stop_reason=stop_reason, command=None)
        except Exception:
            log.exception("camera %s: forward session %s: stop failed", record.camera, record.id)

    # -- timer ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                if self._stopping:
                    return
                now = time.monotonic()
                due = [(s, self._held(c)) for c, s in self._sessions.items() if is_due(s, now)]
                for record, _ in due:
                    record.phase = "stopping"
                if not due:
                    deadlines = [
                        s.deadline
                        for s in self._sessions.values()
                        if s.phase == "active" and s.deadline is not None
                    ]
                    wait = min([TIMER_TICK, *(d - now for d in deadlines)])
                    self._changed.wait(max(0.05, wait))
                    continue
            for record, held in due:
                threading.Thread(
                    target=self._close_quietly,
                    args=(record, held, "expired"),
                    name=f"gateway:forward-expiry:{record.camera}",
                    daemon=True,
                ).start()


def _describe(session: _Session, status: ForwardStatus) -> dict[str, Any]:
    return {
        "session": session.id,
        "camera": session.camera,
        "requested_by": session.requested_by,
        "started": utc_iso(session.started),
        "ends": utc_iso(status.ends) if status.ends else None,
        "target": status.target,
    }
