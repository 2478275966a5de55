"""Snapshot and relearn commands in the daemon: the one way each channel's goes (the command
line through the control socket, MQTT), from the validated command to the camera's worker, the
audit journal and the events.

A snapshot is journalled (``snapshot_taken``, with the picture's hash) before anyone gets it,
and one that cannot be journalled is not handed out: the journal is what shows a data
protection officer who took a picture of the residence, when and why. A relearn is journalled
before it is sent to the worker, and one that cannot be journalled is not done. A refused
command (invalid, an unknown camera, no picture to take) is journalled as nothing, logged at
most once a minute and announced as a ``command_rejected`` event.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any, Literal

from gateway.commands import CommandError
from gateway.daemon.control import Peer
from gateway.daemon.workers.handle import WorkerHandle
from gateway.integrity.audit import AuditError, AuditLog
from gateway.ratelimit import RateLimitedLog
from gateway.telemetry.events import EventBus
from gateway.text import clip, display
from gateway.watch.commands import (
    RelearnCommand,
    SnapshotCommand,
    SnapshotResult,
    decode_mqtt_command,
    parse_command,
)
from gateway.watch.snapshot import SnapshotError

__all__ = ["CONTROL_COMMANDS", "SNAPSHOT_WAIT", "IntegrityCommands"]

log = logging.getLogger(__name__)

CONTROL_COMMANDS = ("snapshot", "relearn")
"""The control socket's commands handled here (a tuple: a request's ``command`` may be any JSON
value, a list included, and ``in`` a tuple takes them all)."""
SNAPSHOT_WAIT = 5.0
"""Longest wait for a camera's worker to send its snapshot: it renders one keyframe, in tens of
milliseconds; a worker that takes longer is busy or wedged, and the requester is told so."""
MQTT = "mqtt"

_refusals = RateLimitedLog(log, "%d more snapshot or relearn commands refused in the last minute")

Kind = Literal["snapshot", "relearn"]


class IntegrityCommands:
    """Carries out snapshot and relearn commands against ``cameras`` (the daemon's own table,
    which a reload changes in place). Called from the control socket's threads and the MQTT
    command thread at once: it keeps no state of its own."""

    def __init__(
        self,
        *,
        site_id: str,
        cameras: Mapping[str, WorkerHandle],
        audit: AuditLog,
        events: EventBus,
    ) -> None:
        self.site_id = site_id
        self.cameras = cameras
        self.audit = audit
        self.events = events

    # -- the channels --------------------------------------------------------------------------

    def control(self, request: Mapping[str, Any], peer: Peer) -> dict[str, Any]:
        """A control socket request (``snapshot`` or ``relearn``); its answer. A snapshot's
        answer carries the JPEG in base64 (``jpeg``)."""
        fields = {k: v for k, v in request.items() if k != "command"}
        fields.setdefault("requested_by", peer.user)
        fields["origin"] = origin = f"command line, {peer.describe()}"
        if request.get("command") == "relearn":
            try:
                return self.relearn(parse_command(RelearnCommand, fields))
            except CommandError as exc:
                return self._rejected(
                    "relearn", fields.get("camera"), exc.reason, origin, logged=True
                )
        try:
            result = self.snapshot(parse_command(SnapshotCommand, fields))
        except CommandError as exc:
            camera = fields.get("camera")
            refusal = self._rejected("snapshot", camera, exc.reason, origin, logged=True)
            result = SnapshotResult.refused(refusal["message"])
        answer = result.as_dict()
        if result.jpeg is not None:
            answer["jpeg"] = base64.b64encode(result.jpeg).decode("ascii")
        return answer

    def mqtt_snapshot(self, camera_id: str, payload: bytes, room: int | None) -> SnapshotResult:
        """``P/cameras/<id>/snapshot/set``: what to publish. ``room``: the largest JPEG the
        broker takes (None: no limit known); a larger one is refused, and not journalled."""
        try:
            command = decode_mqtt_command(SnapshotCommand, camera_id, payload, origin=MQTT)
        except CommandError as exc:
            refusal = self._rejected("snapshot", camera_id, exc.reason, MQTT, logged=True)
            return SnapshotResult.refused(refusal["message"])
        return self.snapshot(command, room=room)

    def mqtt_relearn(self, camera_id: str, payload: bytes) -> dict[str, Any]:
        """``P/cameras/<id>/analysis/relearn/set``: its answer (``ok``, ``message``), also
        announced by an event, either way."""
        try:
            command = decode_mqtt_command(RelearnCommand, camera_id, payload, origin=MQTT)
        except CommandError as exc:
            return self._rejected("relearn", camera_id, exc.reason, MQTT, logged=True)
        return self.relearn(command)

    # -- the commands --------------------------------------------------------------------------

    def snapshot(self, command: SnapshotCommand, *, room: int | None = None) -> SnapshotResult:
        """Take the camera's snapshot, journal it, announce it; or why not."""
        camera = command.camera
        handle = self.cameras.get(camera)
        if handle is None:
            return self._refuse_snapshot(command, self._unknown(camera))
        try:
            snapshot = handle.take_snapshot(SNAPSHOT_WAIT)
        except SnapshotError as exc:
            return self._refuse_snapshot(command, str(exc))
        if room is not None and len(snapshot.jpeg) > room:
            return self._refuse_snapshot(
                command,
                f"the snapshot is {len(snapshot.jpeg)} bytes and the MQTT broker takes at most "
                f"{room}: lower analysis.snapshot_max_bytes or analysis.snapshot_width",
            )
        result = SnapshotResult.taken(snapshot, command)
        facts = {k: v for k, v in result.as_dict().items() if k not in ("ok", "message")}
        facts["origin"] = command.origin
        try:
            self.audit.append(
                "snapshot_taken", site=self.site_id, camera=camera, reason=command.reason, **facts
            )
        except AuditError as exc:
            log.error("audit journal: snapshot of camera %s not recorded: %s", camera, exc)
            return self._refuse_snapshot(
                command, "the audit journal cannot record it, so no snapshot is handed out"
            )
        log.info(
            "camera %s: snapshot for %s (%s): %s bytes, sha256 %s",
            camera,
            command.requested_by,
            command.origin,
            facts["bytes"],
            result.sha256,
        )
        self.events.emit("snapshot_taken", camera=camera, **facts)
        return result

    def relearn(self, command: RelearnCommand) -> dict[str, Any]:
        """Have the camera's watch learn its view again; the answer (``ok``, ``message``)."""
        camera, origin = command.camera, command.origin
        handle = self.cameras.get(camera)
        if handle is None:
            return self._rejected("relearn", camera, self._unknown(camera), origin)
        if not handle.camera.analysis.enabled:
            reason = f"camera {camera} is not analysed (analysis.enabled is false)"
            return self._rejected("relearn", camera, reason, origin)
        if handle.process is None:
            reason = f"camera {camera} has no worker running (offline)"
            return self._rejected("relearn", camera, reason, origin)
        facts = {"origin": origin, "requested_by": command.requested_by}
        try:
            self.audit.append(
                "analysis_relearned",
                site=self.site_id,
                camera=camera,
                reason=command.reason,
                **facts,
            )
        except AuditError as exc:
            log.error("audit journal: relearn of camera %s not recorded: %s", camera, exc)
            reason = "the audit journal cannot record it, so the view is not relearned"
            return self._rejected("relearn", camera, reason, origin)
        if not handle.relearn():
            self._journal_failed(camera, command)
            reason = f"camera {camera}'s worker did not take it (restarting?); try again"
            return self._rejected("relearn", camera, reason, origin)
        log.info(
            "camera %s: the watch learns the view again, for %s (%s)",
            camera,
            command.requested_by,
            origin,
        )
        self.events.emit("analysis_relearned", camera=camera, **facts)
        return {"ok": True, "message": f"camera {camera}: the watch learns the view again"}

    # -- inside --------------------------------------------------------------------------------

    def _unknown(self, camera: str) -> str:
        known = ", ".join(sorted(self.cameras)) or "none"
        return f"unknown camera {camera!r} (cameras: {known})"

    def _refuse_snapshot(self, command: SnapshotCommand, reason: str) -> SnapshotResult:
        message = self._rejected("snapshot", command.camera, reason, command.origin)["message"]
        return SnapshotResult.refused(message, command)

    def _rejected(
        self, kind: Kind, camera: object, reason: str, origin: str, *, logged: bool = False
    ) -> dict[str, Any]:
        """Announce a refusal, and log it unless it was (an invalid command is, by its
        validation); the answer that says it."""
        reason = CommandError(reason).reason  # one short, printable line
        known = camera if isinstance(camera, str) and camera in self.cameras else None
        if not logged:
            _refusals.log("%s refused (%s): %s", kind, clip(display(origin), 120), reason)
        self.events.emit(
            "command_rejected", camera=known, command=kind, reason=reason, origin=origin
        )
        return {"ok": False, "message": reason}

    def _journal_failed(self, camera: str, command: RelearnCommand) -> None:
        """A relearn journalled but not delivered: the journal says so too."""
        try:
            self.audit.append(
                "analysis_relearn_failed",
                site=self.site_id,
                camera=camera,
                origin=command.origin,
                requested_by=command.requested_by,
                reason="the camera's worker did not take it",
            )
        except AuditError as exc:
            log.error("audit journal: failed relearn of camera %s not recorded: %s", camera, exc)
