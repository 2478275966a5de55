"""One camera as the supervisor sees it: its configuration, the mirror of its status (counters
summed over its successive workers), its current worker process, and the forward link the
forward manager drives."""

from __future__ import annotations

import contextlib
import pickle
import signal
import threading
from dataclasses import dataclass, field
from typing import Literal

from gateway.backoff import Backoff
from gateway.config import CameraConfig
from gateway.daemon.workers.channel import Channel, ChannelError
from gateway.daemon.workers.messages import (
    ForwardStart,
    ForwardStop,
    ForwardStopped,
    Relearn,
    Status,
    TamperReport,
    WorkerSettings,
)
from gateway.daemon.workers.snapshots import SnapshotRequests
from gateway.forward.target import ForwardTotals, UplinkTarget
from gateway.storage.store import STUCK_AFTER
from gateway.telemetry.compliance import Compliance, Minimum
from gateway.telemetry.state import CameraStatus, Shift, TamperStatus
from gateway.watch.snapshot import Snapshot, SnapshotError

__all__ = ["COMMAND_WAIT", "RESTART_INITIAL", "RESTART_MAX", "WorkerHandle", "WorkerProcess"]

RESTART_INITIAL, RESTART_MAX = 1.0, 30.0
"""Backoff of a camera's worker restarts, in seconds."""
COMMAND_WAIT = 1.0
"""Longest wait to hand a worker a command."""


@dataclass(slots=True)
class _Totals:
    """Counters of the camera's earlier workers, added to the current one's."""

    sessions: int = 0
    frames: int = 0
    bytes_received: int = 0
    timestamp_repairs: int = 0
    segments: int = 0
    bytes_written: int = 0
    skipped_packets: int = 0
    no_keyframe_cuts: int = 0
    bytes_sent: int = 0
    forward_dropped: int = 0
    forward_reconnects: int = 0
    keyframes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


Gate = Literal["suspended", "resumed"]
MASK_MISSING = "a privacy mask is missing: the centre may not be shown private areas"


@dataclass(slots=True)
class WorkerProcess:
    """A camera's current worker process, as its supervisor tends it."""

    pid: int
    pidfd: int
    channel: Channel
    started: float
    last_message: float
    report: Status | None = None
    report_at: float = 0.0
    kill_reason: str | None = None
    stopping: bool = False
    stop_deadline: float = 0.0
    termed: bool = False
    killed: bool = False
    clean: bool = False
    """It said :class:`Stopped`: every segment was finalised."""
    next_memory: float = 0.0
    channel_open: bool = True
    cpu_ticks: int = 0
    cpu_at: float = 0.0
    cpu_hot: int = 0
    niced: bool = False

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, number)

    def send(self, message: object) -> bool:
        """Send a command, waiting at most :data:`COMMAND_WAIT`: a worker that does not read
        its channel is caught by the liveness rules, not waited for."""
        if not self.channel_open:
            return False
        try:
            return self.channel.send(pickle.dumps(message), COMMAND_WAIT)
        except ChannelError:
            return False


class WorkerHandle:
    """One camera as the supervisor sees it: its configuration, the mirror of its status, and
    its current worker. The forward manager drives its forward through :meth:`start_forward`
    and :meth:`stop_forward`."""

    def __init__(self, camera: CameraConfig, settings: WorkerSettings) -> None:
        self.camera = camera
        self.settings = settings
        self.status = CameraStatus(id=camera.id, url=camera.display_url)
        self.status.recorder.enabled = camera.record
        self.status.audio = camera.audio
        self.compliance = Compliance(_minimum(camera))
        """Judged by the supervision loop from the mirror (:meth:`Supervisor._judge`)."""
        self.status.compliance = self.compliance.rules
        self.enabled = camera.record or settings.forwarded
        """False for a camera neither recorded nor forwarded: no worker at all."""
        if not self.enabled:
            self.status.set_state("disabled")
        self.first_attempt = threading.Event()
        self.ended = threading.Event()
        """Set once the handle is removed and its last worker is gone."""
        self.wanted = True
        self.stop_timeout = 5.0
        self.process: WorkerProcess | None = None
        self.restart_at = 0.0
        self.backoff = Backoff(initial=RESTART_INITIAL, maximum=RESTART_MAX)
        self._base = _Totals()
        self._forward: ForwardStart | None = None
        self._replies: dict[str, ForwardStopped] = {}
        self._awaited: set[str] = set()
        """Sessions whose stop waits for the worker's answer."""
        self.snapshots = SnapshotRequests()
        """Snapshots asked of the worker; its pieces are handed to :meth:`arrived`."""
        self._suspended: str | None = None
        """Why the forward is held back (a privacy mask is missing), or None."""
        self._gated: str | None = None
        """The session :meth:`gate_forward` last saw."""
        if camera.analysis.enabled and self.enabled:
            self.status.tamper = TamperStatus(
                state="unknown", privacy="unknown" if camera.analysis.privacy_zones else "none"
            )
        self._cond = threading.Condition()
        if not self.enabled:
            self.first_attempt.set()

    def judge_against(self, camera: CameraConfig) -> None:
        """The same camera with other minima (a reload): judged against them from now on, its
        worker left alone and its compliant shares kept."""
        self.camera = camera
        self.compliance.set_minimum(_minimum(camera))

    # -- the forward link --------------------------------------------------------------------

    def start_forward(self, session: str, target: UplinkTarget, queue: float) -> None:
        """Send the camera to the centre (again after each worker restart, until stopped)."""
        command = ForwardStart(session=session, target=target, queue=queue)
        with self._cond:
            self._forward = command
            held = self._suspended is not None
        process = self.process
        if process is not None and not held:
            process.send(command)

    def stop_forward(self, session: str, timeout: float = 2.0) -> ForwardTotals:
        """Stop the push; the counters when it stopped (the latest known if the worker does not
        answer in time)."""
        with self._cond:
            self._forward = None
            self._awaited.add(session)
        try:
            process = self.process
            reply = None
            if process is not None and process.send(ForwardStop(session=session)):
                with self._cond:
                    self._cond.wait_for(lambda: session in self._replies, timeout)
                    reply = self._replies.pop(session, None)
        finally:
            with self._cond:
                self._awaited.discard(session)
                self._replies.pop(session, None)
        if reply is not None:
            self._apply_forward(reply.bytes_sent, reply.dropped_frames, reply.reconnects)
        forward = self.status.forward
        return ForwardTotals(forward.bytes_sent, forward.dropped_frames, forward.reconnects)

    @property
    def forward_command(self) -> ForwardStart | None:
        """What a new worker is to push now (None while the forward is suspended)."""
        with self._cond:
            return None if self._suspended is not None else self._forward

    @property
    def forward_session(self) -> str | None:
        with self._cond:
            return None if self._forward is None else self._forward.session

    def gate_forward(self) -> Gate | None:
        """Hold the forward back while a privacy mask is missing (unless the camera's
        ``forward_when_unmasked``), let it go once the masks are seen back. What changed for
        the open session: ``suspended`` also when a session opens while the forward is held."""
        privacy = self.status.tamper.privacy
        if self.camera.analysis.forward_when_unmasked:
            privacy = "ok"
        send: object | None = None
        with self._cond:
            command = self._forward
            session = None if command is None else command.session
            change: Gate | None = None
            if privacy == "missing" and self._suspended is None:
                self._suspended, change = MASK_MISSING, "suspended"
                send = None if command is None else ForwardStop(session=command.session)
            elif privacy in ("ok", "none") and self._suspended is not None:
                self._suspended, change, send = None, "resumed", command
            elif self._suspended is not None and session != self._gated:
                change = "suspended"  # opened while held: start_forward did not send it
            self._gated = session
        process = self.process
        if send is not None and process is not None:
            process.send(send)
        self._show_suspension()
        return change if session is not None else None

    def _show_suspension(self) -> None:
        forward = self.status.forward
        forward.suspended = self._suspended
        if self._suspended is not None and self._forward is not None:
            forward.state, forward.error = "suspended", self._suspended

    # -- integrity ---------------------------------------------------------------------------

    def relearn(self) -> bool:
        """Have the watch learn the camera's view again; False if no worker took it."""
        process = self.process
        return process is not None and process.send(Relearn())

    def take_snapshot(self, timeout: float = 5.0) -> Snapshot:
        """The camera's last keyframe as a masked JPEG; :class:`SnapshotError` saying why not."""
        if not self.camera.analysis.enabled:
            raise SnapshotError(
                f"camera {self.camera.id} is not analysed (analysis.enabled is false)"
            )
        process = self.process
        if process is None:
            raise SnapshotError(f"camera {self.camera.id} has no worker running (offline)")
        return self.snapshots.take(self.camera.id, process.send, timeout)

    def forward_replied(self, reply: ForwardStopped) -> None:
        """A worker's answer to a stop; kept only while that stop waits for it, so an answer
        that comes after the wait gave up is dropped, not kept for ever."""
        with self._cond:
            if reply.session in self._awaited:
                self._replies[reply.session] = reply
                self._cond.notify_all()

    # -- the mirror ----------------------------------------------------------------------------

    def apply(self, report: Status) -> None:
        """Update the mirror from the current worker's report."""
        base, status = self._base, self.status
        camera = report.camera
        if status.state != camera.state:
            status.state, status.since = camera.state, camera.since
        if camera.error is not None or camera.state != "starting":
            status.error = camera.error  # a new worker's first words keep the restart reason
        status.sessions = base.sessions + camera.sessions
        status.reconnects = max(0, status.sessions - 1)
        status.frames = base.frames + camera.frames
        status.bytes_received = base.bytes_received + camera.bytes_received
        if camera.last_frame is not None:
            status.last_frame_monotonic = camera.last_frame
        if camera.codec is not None:
            status.codec, status.width, status.height = camera.codec, camera.width, camera.height
        status.fps, status.bitrate = camera.fps, camera.bitrate
        status.timestamp_repairs = base.timestamp_repairs + camera.timestamp_repairs
        recorder, rec = status.recorder, report.recorder
        recorder.recording, recorder.error = rec.recording, rec.error
        recorder.segments = base.segments + rec.segments
        recorder.bytes_written = base.bytes_written + rec.bytes_written
        recorder.current_segment = rec.current_segment
        recorder.skipped_packets = base.skipped_packets + rec.skipped_packets
        recorder.no_keyframe_cuts = base.no_keyframe_cuts + rec.no_keyframe_cuts
        if rec.stuck_for > STUCK_AFTER:
            recorder.recording = False
            recorder.error = f"storage not answering: a write has waited {rec.stuck_for:.0f} s"
        forward, fwd = status.forward, report.forward
        if forward.state != fwd.state:
            forward.state, forward.since = fwd.state, fwd.since
        forward.error = fwd.error
        self._apply_forward(fwd.bytes_sent, fwd.dropped_frames, fwd.reconnects)
        self._apply_tamper(report.tamper)
        self._show_suspension()
        dropped = dict(base.dropped)
        for name, count in report.dropped.items():
            dropped[name] = dropped.get(name, 0) + count
        status.dropped_frames = dropped
        if report.progress.attempted:
            self.first_attempt.set()

    def _apply_tamper(self, report: TamperReport) -> None:
        if report.state == "off" and not self.camera.analysis.enabled:
            return
        tamper = self.status.tamper
        tamper.state, tamper.since, tamper.conditions = (
            report.state,
            report.since,
            report.conditions,
        )
        shift = report.shift
        tamper.shift = (
            None if shift is None else Shift(shift.dx, shift.dy, shift.percent, shift.rotation)
        )
        if report.privacy != "unknown" or tamper.privacy != "missing":
            tamper.privacy = report.privacy  # a new worker cannot clear a missing mask
        tamper.unmasked, tamper.error = report.unmasked, report.error
        tamper.keyframes = self._base.keyframes + report.keyframes
        tamper.analysed_at = report.analysed_at or tamper.analysed_at

    def _apply_forward(self, sent: int, dropped: int, reconnects: int) -> None:
        forward, base = self.status.forward, self._base
        forward.bytes_sent = base.bytes_sent + sent
        forward.dropped_frames = base.forward_dropped + dropped
        forward.reconnects = base.forward_reconnects + reconnects

    def fold(self, report: Status | None) -> None:
        """The worker is gone: its counters become part of the base of the next one."""
        status = self.status
        if report is not None:
            self.apply(report)
        base = self._base
        base.sessions = status.sessions
        base.frames, base.bytes_received = status.frames, status.bytes_received
        base.timestamp_repairs = status.timestamp_repairs
        recorder = status.recorder
        base.segments, base.bytes_written = recorder.segments, recorder.bytes_written
        base.skipped_packets, base.no_keyframe_cuts = (
            recorder.skipped_packets,
            recorder.no_keyframe_cuts,
        )
        forward = status.forward
        base.bytes_sent, base.forward_dropped = forward.bytes_sent, forward.dropped_frames
        base.forward_reconnects = forward.reconnects
        base.dropped = dict(status.dropped_frames)
        base.keyframes = status.tamper.keyframes
        status.fps = status.bitrate = 0.0
        status.recorder.recording = False
        status.recorder.current_segment = None
        if forward.state != "off":
            forward.state = "connecting"


def _minimum(camera: CameraConfig) -> Minimum:
    minimum = camera.minimum
    return Minimum(minimum.fps, minimum.width, minimum.height)
